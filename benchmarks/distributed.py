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
GLOBAL_BATCH = 64


def median_seconds(action: Callable[[], Any], repeat: int, barrier: Callable[[], None]) -> float:
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
                lambda b=buffer: raw.Allreduce(MPI.IN_PLACE, b, op=MPI.SUM), repeat, comm.barrier
            ),
            "allreduce_4MiB_slices": median_seconds(
                lambda b=buffer: comm.allreduce_sum_(b), repeat, comm.barrier
            ),
            "reduce_scatter": median_seconds(
                lambda b=buffer, s=shard, c=counts: comm.reduce_scatter_sum(b, s, c), repeat, comm.barrier
            ),
            "allgather": median_seconds(
                lambda b=buffer, c=counts: comm.allgather_(b, c), repeat, comm.barrier
            ),
        }
        rows.append(row)
    if comm.rank == 0:
        print(json.dumps(rows))


def time_step(comm: Any, optimizer_name: str, mode: str, batch: int, repeat: int) -> dict[str, Any]:
    """Median times of one training step and of its averaging + update part, and the state bytes.

    `mode`: "single" (plain optimizer), "ddp" (DistributedDataParallel) or "sharded" (ZeRO-1).
    """
    from extensor import ExTensor, Tape
    from extensor.distributed import DistributedDataParallel
    from extensor.distributed.sharded import ShardedOptimizer, state_bytes
    from extensor.nn import CrossEntropyLoss, Linear, ReLU, Sequential
    from extensor.training import optimizers

    rng = np.random.default_rng(0)
    x = ExTensor(rng.standard_normal((batch, 512)).astype(np.float32))
    y = ExTensor(rng.integers(0, 10, batch))
    generator = np.random.default_rng(1)
    model = Sequential(
        Linear(512, 2048, generator=generator),
        ReLU(),
        Linear(2048, 2048, generator=generator),
        ReLU(),
        Linear(2048, 10, generator=generator),
    )
    criterion = CrossEntropyLoss()
    network: Any = DistributedDataParallel(model) if mode == "ddp" else model
    optimizer: Any = getattr(optimizers, optimizer_name)(model.parameters(), lr=1e-3)
    if mode == "sharded":
        optimizer = ShardedOptimizer(optimizer)

    def backward() -> None:
        tape = Tape()
        with tape:
            loss = criterion(network(x), y)
        optimizer.zero_grad()
        tape.backward(loss)

    def update() -> None:  # what follows backward: averaging (if any) and the step
        if mode == "ddp":
            network.reduce_gradients()
        optimizer.step()

    def full_step() -> None:
        backward()
        update()

    step_time = median_seconds(full_step, repeat, comm.barrier)
    update_times = []
    for _ in range(repeat):
        backward()
        comm.barrier()
        start = time.perf_counter()
        update()
        update_times.append(time.perf_counter() - start)
    return {
        "optimizer": optimizer_name,
        "mode": mode,
        "parameters": sum(p.size for p in model.parameters()),
        "step": step_time,
        "update": statistics.median(update_times),
        "state_bytes": state_bytes(optimizer),
    }


def steps_worker(quick: bool) -> None:
    """Time training steps of an MLP: one process on the global batch, or each rank on its share."""
    from extensor.distributed import world

    comm = world()
    batch = GLOBAL_BATCH // comm.size
    repeat = 5 if quick else 15
    modes = ["single"] if comm.size == 1 else ["ddp", "sharded"]
    results = [time_step(comm, name, mode, batch, repeat) for name in ("AdamW", "LARS") for mode in modes]
    if comm.rank == 0:
        print(json.dumps(results))


WORKERS = {"collectives": collectives_worker, "steps": steps_worker}


# ---------------------------------------------------------------------------- the driver
def run_worker(name: str, quick: bool, processes: int = 2, threads: int = 1) -> Any:
    """Run this file as worker `name` on `processes` ranks; return rank 0's JSON output."""
    from extensor.distributed.launch import describe, run

    env = {key: str(threads) for key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    argv = [__file__, "--worker", name, *(["--quick"] if quick else [])]
    result = run(processes, argv, timeout=900, env=env)
    if result.returncode != 0:
        raise RuntimeError(describe(result))
    return json.loads(result.stdout.strip().splitlines()[-1])


def report_collectives(quick: bool) -> None:
    rows = run_worker("collectives", quick)
    print("## Collectives on float32 buffers, 2 ranks (MPICH), medians")
    print()
    print(
        "| buffer | one Allreduce | sliced all-reduce (4 MiB) | sliced GB/s | one call / sliced "
        "| Reduce_scatter | Allgatherv | RS+AG / sliced AR |"
    )
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


def report_steps(quick: bool) -> None:
    from extensor.distributed.threads import available_cores

    cores = available_cores()
    single = run_worker("steps", quick, processes=1, threads=1)
    rows = [dict(row, mode="1 process, 1 thread") for row in single]
    if cores > 1:
        threaded = run_worker("steps", quick, processes=1, threads=cores)
        rows += [dict(row, mode=f"1 process, {cores} threads") for row in threaded]
    rows += [dict(row, mode=f"2 ranks, {row['mode']}") for row in run_worker("steps", quick, processes=2)]
    print(
        f"## Training step of a {single[0]['parameters']:,}-parameter float32 MLP, global batch "
        f"{GLOBAL_BATCH} (2 ranks: 1 thread and batch {GLOBAL_BATCH // 2} each)"
    )
    print()
    print("| optimizer | run | step | vs 1 process | averaging + update | vs 1 process | state / rank |")
    print("|---|---|---|---|---|---|---|")
    reference = {row["optimizer"]: row for row in single}
    for row in sorted(rows, key=lambda r: r["optimizer"]):
        base = reference[row["optimizer"]]
        print(
            f"| {row['optimizer']} | {row['mode']} | {row['step'] * 1e3:.1f} ms "
            f"| {row['step'] / base['step']:.2f}x | {row['update'] * 1e3:.1f} ms "
            f"| {row['update'] / base['update']:.2f}x | {row['state_bytes'] / MiB:.1f} MiB |"
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
    report_steps(args.quick)


if __name__ == "__main__":
    main(sys.argv[1:])
