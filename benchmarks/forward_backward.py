"""Forward + backward time of extensor against PyTorch CPU, measured in the same run.

    python benchmarks/forward_backward.py               # 1 and 2 threads, 15 rounds each
    python benchmarks/forward_backward.py --quick       # 5 rounds
    python benchmarks/forward_backward.py --threads 2   # one thread setting

Two float32 networks, the same weights in both libraries:

- MLP 784-512-512-10 with ReLU, batch 128;
- LeNet-5-style CNN on 1x28x28 inputs, batch 64: Conv(1->6, 5x5, pad 2) ReLU MaxPool2 ->
  Conv(6->16, 5x5) ReLU MaxPool2 -> Flatten -> Linear 400-120-84-10 with ReLU.

One step is: drop the gradients, forward, cross-entropy loss, backward (gradients accumulated into
every parameter's `.grad`).

How it is timed. Each library runs in its own worker process (the extensor worker never imports
torch), so neither library's thread pool competes with the other's inside one process. A
coordinator loads the same weights and batch into both, then asks them in turn to time 10 steps;
a round is one batch of each, the order alternating between rounds, so both see the same machine
load. Before each batch it pauses, so the idle worker's BLAS/OpenMP threads have stopped spinning.
The table shows the median per-step times and the median over rounds of the per-round ratio
extensor / torch. Targets: MLP <= 1.3x, CNN <= 2x. Nothing is asserted: it prints.

Threads: both workers of a setting get OPENBLAS_NUM_THREADS = OMP_NUM_THREADS = the setting (and
torch.set_num_threads). On a machine shared with other work the 1-thread figures are the steadier
ones: a multi-threaded call waits for its slowest thread, and a thread that loses its core stalls
it. If the environment sets OPENBLAS_CORETYPE, run this command with it (and OPENBLAS_L2_SIZE)
unset to measure NumPy's best kernel (see the project README).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

NETWORKS = {
    "mlp": ("MLP 784-512-512-10, batch 128", (128, 784), 1.3),
    "cnn": ("LeNet-5 CNN 1x28x28, batch 64", (64, 1, 28, 28), 2.0),
}
STEPS_PER_BATCH = 10
PAUSE = 0.25  # seconds between batches: OpenBLAS workers spin for ~0.1 s after a call before sleeping


def build(name: str, lib: Any) -> Any:
    """The network `name` built from `lib` (extensor.nn or torch.nn): same layers, same names."""
    if name == "mlp":
        return lib.Sequential(
            lib.Linear(784, 512), lib.ReLU(), lib.Linear(512, 512), lib.ReLU(), lib.Linear(512, 10)
        )
    return lib.Sequential(
        lib.Conv2d(1, 6, 5, padding=2), lib.ReLU(), lib.MaxPool2d(2),
        lib.Conv2d(6, 16, 5), lib.ReLU(), lib.MaxPool2d(2),
        lib.Flatten(),
        lib.Linear(400, 120), lib.ReLU(), lib.Linear(120, 84), lib.ReLU(), lib.Linear(84, 10),
    )  # fmt: skip


def seconds_per_step(step: Callable[[], None], count: int) -> float:
    """Mean wall time of `count` consecutive steps."""
    start = time.perf_counter()
    for _ in range(count):
        step()
    return (time.perf_counter() - start) / count


def extensor_steps(folder: Path) -> dict[str, Callable[[], None]]:
    """One training step (without the optimizer) per network, in extensor."""
    from extensor import Tape, nn

    steps = {}
    for name in NETWORKS:
        data = np.load(folder / f"{name}.npz")
        model = build(name, nn)
        model.load_state_dict({key[2:]: data[key] for key in data.files if key.startswith("w.")})
        x, y, criterion = data["x"], data["y"], nn.CrossEntropyLoss()

        def step(model: Any = model, x: Any = x, y: Any = y, criterion: Any = criterion) -> None:
            model.zero_grad()
            tape = Tape()
            with tape:
                loss = criterion(model(x), y)
            tape.backward(loss)

        steps[name] = step
    return steps


def torch_steps(folder: Path, threads: int) -> dict[str, Callable[[], None]]:
    """The same steps in PyTorch."""
    import torch

    torch.set_num_threads(threads)
    steps = {}
    for name in NETWORKS:
        data = np.load(folder / f"{name}.npz")
        model = build(name, torch.nn)
        model.load_state_dict(
            {key[2:]: torch.from_numpy(data[key]) for key in data.files if key.startswith("w.")}
        )
        x, y, criterion = (
            torch.from_numpy(data["x"]),
            torch.from_numpy(data["y"]),
            torch.nn.CrossEntropyLoss(),
        )

        def step(model: Any = model, x: Any = x, y: Any = y, criterion: Any = criterion) -> None:
            model.zero_grad(set_to_none=True)
            criterion(model(x), y).backward()

        steps[name] = step
    return steps


def worker(library: str, folder: Path, threads: int) -> None:
    """Serve the coordinator: for each network name read on stdin, print the seconds per step."""
    steps = extensor_steps(folder) if library == "extensor" else torch_steps(folder, threads)
    for step in steps.values():  # warm-up: compilation, allocator, thread pools
        seconds_per_step(step, 5)
    print("ready", flush=True)
    for line in sys.stdin:
        print(seconds_per_step(steps[line.strip()], STEPS_PER_BATCH), flush=True)


def write_inputs(folder: Path) -> None:
    """Weights (extensor's default initialisation, seed 0) and one batch per network, as .npz files."""
    from extensor import nn
    from extensor.core.random import manual_seed

    manual_seed(0)
    rng = np.random.default_rng(0)
    for name, (_, shape, _) in NETWORKS.items():
        weights = {f"w.{key}": np.array(value) for key, value in build(name, nn).state_dict().items()}
        x = rng.standard_normal(shape, dtype=np.float32)
        np.savez(folder / f"{name}.npz", x=x, y=rng.integers(0, 10, shape[0]), **weights)


def measure(folder: Path, threads: int, rounds: int) -> list[dict[str, Any]]:
    """Run both workers with `threads` threads and time every network over `rounds` rounds."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    workers = {
        library: subprocess.Popen(
            [sys.executable, __file__, "--worker", library, str(folder), str(threads)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for library in ("extensor", "torch")
    }
    try:
        for process in workers.values():
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"

        def ask(library: str, network: str) -> float:
            process = workers[library]
            assert process.stdin is not None and process.stdout is not None
            time.sleep(PAUSE)  # let the other worker's idle BLAS/OpenMP threads stop spinning
            process.stdin.write(network + "\n")
            process.stdin.flush()
            return float(process.stdout.readline())

        rows = []
        for network, (title, _, target) in NETWORKS.items():
            ours, theirs, ratios = [], [], []
            for r in range(rounds):
                order = ("extensor", "torch") if r % 2 == 0 else ("torch", "extensor")
                times = {library: ask(library, network) for library in order}
                ours.append(times["extensor"])
                theirs.append(times["torch"])
                ratios.append(times["extensor"] / times["torch"])
            rows.append({
                "name": title, "threads": threads, "target": target, "ratio": statistics.median(ratios),
                "extensor_ms": statistics.median(ours) * 1e3, "torch_ms": statistics.median(theirs) * 1e3,
            })  # fmt: skip
        return rows
    finally:
        for process in workers.values():
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 15")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to measure")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        library, folder, threads = args.worker
        worker(library, Path(folder), int(threads))
        return
    rounds = 5 if args.quick else 15
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs, {rounds} rounds of {STEPS_PER_BATCH} steps each")
    if os.environ.get("OPENBLAS_CORETYPE"):
        coretype = os.environ["OPENBLAS_CORETYPE"]
        print(f"note: OPENBLAS_CORETYPE={coretype} is set; NumPy may not use its best kernel")
    with tempfile.TemporaryDirectory() as folder:
        write_inputs(Path(folder))
        rows = [row for threads in args.threads for row in measure(Path(folder), threads, rounds)]
    print("\n| network | threads | extensor ms/step | torch ms/step | ratio | target |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['name']} | {row['threads']} | {row['extensor_ms']:.2f} | {row['torch_ms']:.2f} | "
            f"{row['ratio']:.2f}x | <= {row['target']}x |"
        )


if __name__ == "__main__":
    main()
