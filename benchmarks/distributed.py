"""Data-parallel benchmark: collective times against buffer size, step-time overhead of DDP and of
ZeRO-1 sharding at 2 ranks against one process, and optimizer state bytes per rank.

    python benchmarks/distributed.py            # launches its own 2-rank MPI jobs
    python benchmarks/distributed.py --quick    # fewer sizes and repetitions

Figures are medians over repetitions; the machine is shared, so only ratios measured in the same
run mean anything. Nothing here is asserted: it prints.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

MiB = 2**20


def median_seconds(action: Callable[[], Any], repeat: int, barrier: Callable[[], None] = lambda: None) -> float:
    """Median wall time of `action` over `repeat` runs (after one warm-up), ranks aligned by `barrier`."""
    action()
    times = []
    for _ in range(repeat):
        barrier()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ---------------------------------------------------------------------------- workers (under mpiexec)
def collectives_worker(quick: bool) -> None:
    """Time one monolithic Allreduce, extensor's sliced all-reduce, reduce-scatter and all-gather."""
    from mpi4py import MPI

    from extensor.distributed import world

    comm = world()
    raw = comm.mpi_comm  # type: ignore[attr-defined]
    sizes = [2**k for k in range(12, 27, 2 if quick else 1)]  # bytes: 4 KiB .. 64 MiB
    repeat = 5 if quick else 11
    rows = []
    for size_bytes in sizes:
        buffer = np.ones(size_bytes // 4, dtype=np.float32)
        counts = tuple(len(part) for part in np.array_split(buffer, comm.size))
        shard = np.empty(counts[comm.rank], dtype=np.float32)
        row = {
            "bytes": size_bytes,
            "allreduce_one_call": median_seconds(
                lambda b=buffer: raw.Allreduce(MPI.IN_PLACE, b, op=MPI.SUM), repeat, comm.barrier),
            "allreduce_4MiB_slices": median_seconds(
                lambda b=buffer: comm.allreduce_sum_(b), repeat, comm.barrier),
            "reduce_scatter": median_seconds(
                lambda b=buffer, s=shard, c=counts: comm.reduce_scatter_sum(b, s, c), repeat, comm.barrier),
            "allgather": median_seconds(lambda b=buffer, c=counts: comm.allgather_(b, c), repeat, comm.barrier),
        }
        rows.append(row)
    if comm.rank == 0:
        print(json.dumps(rows))


WORKERS = {"collectives": collectives_worker}


# ---------------------------------------------------------------------------- the driver
def run_worker(name: str, quick: bool, processes: int = 2) -> Any:
    """Run this file as worker `name` on `processes` ranks; return rank 0's JSON output."""
    from extensor.distributed.launch import describe, run

    result = run(processes, [__file__, "--worker", name, *(["--quick"] if quick else [])], timeout=600)
    if result.returncode != 0:
        raise RuntimeError(describe(result))
    return json.loads(result.stdout.strip().splitlines()[-1])


def report_collectives(quick: bool) -> None:
    rows = run_worker("collectives", quick)
    print("## Collectives on float32 buffers, 2 ranks (MPICH), medians")
    print()
    print("| buffer | one Allreduce | sliced all-reduce (4 MiB) | sliced GB/s | one call / sliced "
          "| Reduce_scatter | Allgatherv | RS+AG / sliced AR |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        size = row["bytes"]
        label = f"{size / MiB:g} MiB" if size >= MiB else f"{size // 1024} KiB"
        sliced = row["allreduce_4MiB_slices"]
        print(
            f"| {label} | {row['allreduce_one_call'] * 1e3:.3f} ms | {sliced * 1e3:.3f} ms "
            f"| {size / sliced / 1e9:.2f} | {row['allreduce_one_call'] / sliced:.2f}x "
            f"| {row['reduce_scatter'] * 1e3:.3f} ms | {row['allgather'] * 1e3:.3f} ms "
            f"| {(row['reduce_scatter'] + row['allgather']) / sliced:.2f}x |"
        )
    print()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repetitions")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        WORKERS[args.worker](args.quick)
        return
    report_collectives(args.quick)


if __name__ == "__main__":
    main(sys.argv[1:])
