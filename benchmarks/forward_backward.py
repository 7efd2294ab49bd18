"""Forward + backward time of extensor against PyTorch CPU, measured in the same run.

    python benchmarks/forward_backward.py               # 1 and 2 threads, 15 interleaved rounds each
    python benchmarks/forward_backward.py --quick       # 5 rounds
    python benchmarks/forward_backward.py --threads 2   # one thread setting

Two float32 networks, the same weights in both libraries:

- MLP 784-512-512-10 with ReLU, batch 128;
- LeNet-5-style CNN on 1x28x28 inputs, batch 64: Conv(1->6, 5x5, pad 2) ReLU MaxPool2 ->
  Conv(6->16, 5x5) ReLU MaxPool2 -> Flatten -> Linear 400-120-84-10 with ReLU.

One step is: drop the gradients, forward, cross-entropy loss, backward (gradients accumulated into
every parameter's `.grad`). Each round times 10 steps of one library then 10 of the other (the
order alternates between rounds), so both see the same machine load; the table shows the median
per-step times and the median over rounds of the per-round ratio extensor / torch. Targets:
MLP <= 1.3x, CNN <= 2x. Nothing is asserted: it prints.

Threads: each setting runs in a fresh process with OPENBLAS_NUM_THREADS / OMP_NUM_THREADS and
torch.set_num_threads equal to it, so NumPy's BLAS and torch use the same number of threads. On a
machine shared with other work, the 1-thread figures are the steadier ones: a multi-threaded BLAS
call waits for its slowest thread, and a thread that loses its core stalls the call. If the
environment sets OPENBLAS_CORETYPE, run this command with it (and OPENBLAS_L2_SIZE) unset to
measure NumPy's best kernel (see the project README).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from extensor import Tape, nn


def mlp_pair() -> tuple[nn.Module, torch.nn.Module]:
    """The MLP in both libraries."""
    ours = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    theirs = torch.nn.Sequential(
        torch.nn.Linear(784, 512),
        torch.nn.ReLU(),
        torch.nn.Linear(512, 512),
        torch.nn.ReLU(),
        torch.nn.Linear(512, 10),
    )
    return ours, theirs


def lenet_pair() -> tuple[nn.Module, torch.nn.Module]:
    """The LeNet-5-style CNN for 1x28x28 inputs in both libraries."""

    def build(lib: Any) -> Any:
        return lib.Sequential(
            lib.Conv2d(1, 6, 5, padding=2), lib.ReLU(), lib.MaxPool2d(2),
            lib.Conv2d(6, 16, 5), lib.ReLU(), lib.MaxPool2d(2),
            lib.Flatten(),
            lib.Linear(400, 120), lib.ReLU(), lib.Linear(120, 84), lib.ReLU(), lib.Linear(84, 10),
        )  # fmt: skip

    return build(nn), build(torch.nn)


def extensor_step(model: nn.Module, criterion: nn.Module, x: np.ndarray, y: np.ndarray) -> Callable[[], None]:
    """One extensor training step without the optimizer."""

    def step() -> None:
        model.zero_grad()
        tape = Tape()
        with tape:
            loss = criterion(model(x), y)
        tape.backward(loss)

    return step


def torch_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """The same step in PyTorch."""
    criterion = torch.nn.CrossEntropyLoss()

    def step() -> None:
        model.zero_grad(set_to_none=True)
        criterion(model(x), y).backward()

    return step


def seconds_per_step(step: Callable[[], None], count: int) -> float:
    """Mean wall time of `count` consecutive steps."""
    start = time.perf_counter()
    for _ in range(count):
        step()
    return (time.perf_counter() - start) / count


def compare(
    name: str, pair: tuple[nn.Module, torch.nn.Module], input_shape: tuple[int, ...], rounds: int
) -> dict[str, Any]:
    """Time both libraries on the same weights and batch, interleaved; return medians and the ratio.

    The ratio is the median over rounds of (extensor time / torch time) within the round, so a
    burst of load from other processes affects both sides of the quotient.
    """
    ours, theirs = pair
    theirs.load_state_dict({key: torch.from_numpy(value.copy()) for key, value in ours.state_dict().items()})
    rng = np.random.default_rng(0)
    x = rng.standard_normal(input_shape, dtype=np.float32)
    y = rng.integers(0, 10, input_shape[0])
    ours_step = extensor_step(ours, nn.CrossEntropyLoss(), x, y)
    theirs_step = torch_step(theirs, torch.from_numpy(x), torch.from_numpy(y))
    for step in (ours_step, theirs_step):  # warm-up: compilation, allocator, BLAS threads
        seconds_per_step(step, 5)
    count = 10
    ours_times, theirs_times, ratios = [], [], []
    for r in range(rounds):
        if r % 2 == 0:
            a = seconds_per_step(ours_step, count)
            b = seconds_per_step(theirs_step, count)
        else:
            b = seconds_per_step(theirs_step, count)
            a = seconds_per_step(ours_step, count)
        ours_times.append(a)
        theirs_times.append(b)
        ratios.append(a / b)
    return {
        "name": name,
        "extensor_ms": statistics.median(ours_times) * 1e3,
        "torch_ms": statistics.median(theirs_times) * 1e3,
        "ratio": statistics.median(ratios),
    }


def worker(threads: int, rounds: int) -> None:
    """Measure both networks with `threads` threads per library; print one JSON line per network."""
    torch.set_num_threads(threads)
    for name, pair, shape in (
        ("MLP 784-512-512-10, batch 128", mlp_pair(), (128, 784)),
        ("LeNet-5 CNN 1x28x28, batch 64", lenet_pair(), (64, 1, 28, 28)),
    ):
        print(json.dumps({"threads": threads, **compare(name, pair, shape, rounds)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 15")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to measure")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    rounds = args.rounds or (5 if args.quick else 15)
    if args.worker is not None:
        worker(args.worker, rounds)
        return
    print(f"numpy {np.__version__}, torch {torch.__version__}, {os.cpu_count()} CPUs")
    if os.environ.get("OPENBLAS_CORETYPE"):
        coretype = os.environ["OPENBLAS_CORETYPE"]
        print(f"note: OPENBLAS_CORETYPE={coretype} is set; NumPy may not use its best kernel")
    rows = []
    for threads in args.threads:
        # thread pools are sized when the libraries load, so each setting runs in a fresh process
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        command = [sys.executable, __file__, "--worker", str(threads), "--rounds", str(rounds)]
        output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
        rows += [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    targets = {"MLP": 1.3, "LeNet": 2.0}
    print("\n| network | threads | extensor ms/step | torch ms/step | ratio | target |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        target = targets[row["name"].split()[0].split("-")[0]]
        print(
            f"| {row['name']} | {row['threads']} | {row['extensor_ms']:.2f} | {row['torch_ms']:.2f} | "
            f"{row['ratio']:.2f}x | <= {target}x |"
        )


if __name__ == "__main__":
    main()
