"""Optimizer step time: extensor's kernels against torch.optim (fused, foreach) and the memory bandwidth.

    python benchmarks/optimizers.py            # 10M float32 parameters, and 1,000 tensors of 100
    python benchmarks/optimizers.py --quick    # fewer rounds

For one tensor of 10M float32 parameters, each optimizer's step time against torch with
``fused=True`` (where torch has it) and ``foreach=True``; an in-place read-modify-write probe
``a[i] += s * b[i]`` (numba, same threads) gives the machine's bandwidth, and each optimizer's
achieved bandwidth is counted at the bytes per parameter its algorithm must move (Adam 28 B:
read p, g, m, v; write p, m, v). Then 1,000 tensors of 100 floats, where the flat buffer turns a
thousand small updates into one kernel call.

How it is timed. Each library runs in its own worker process with its own default OpenMP
settings (extensor's import sets OMP_WAIT_POLICY=PASSIVE for its process; the torch worker keeps
libgomp's default, active waiting, unless the caller's environment sets a policy), so neither
library's thread pool disturbs the other's and neither gets the other's handicap. The probe runs
in the extensor worker. A coordinator asks the workers in turn to time a batch of steps of one
case; a round times every case once, the order of the two workers alternating between rounds,
with a pause before each batch so that the other worker's idle threads have stopped spinning.
The table shows median times and the median over rounds of the per-round ratios. Only ratios
measured in the same run mean anything. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

#: name, extensor class name, torch class name (None: torch has none), options, bytes moved per parameter
CASES: list[tuple[str, str, str | None, dict[str, Any], int]] = [
    ("SGD momentum", "SGD", "SGD", {"lr": 0.01, "momentum": 0.9}, 20),
    ("Adam", "Adam", "Adam", {"lr": 1e-3}, 28),
    ("AdamW", "AdamW", "AdamW", {"lr": 1e-3}, 28),
    ("RMSprop", "RMSprop", "RMSprop", {"lr": 1e-2}, 20),
    ("LARS", "LARS", None, {"lr": 0.1}, 28),  # norms pass (p, g: 8 B) + SGD momentum (20 B)
]
HAS_FUSED = {"SGD momentum", "Adam", "AdamW"}
#: the two problem sizes: tensor sizes, steps timed per request
SIZES = {"big": ([10_000_000], 5), "small": ([100] * 1000, 20)}
#: seconds between requests: libgomp's active waiters spin a while after a parallel region
PAUSE = 0.05


# ------------------------------------------------------------------------------ workers
def extensor_actions(sizes: list[int]) -> dict[str, Callable[[], Any]]:
    """The step of every extensor optimizer on float32 tensors of `sizes`, plus the bandwidth probe."""
    import numpy as np

    import extensor.training.optimizers as optimizers
    from extensor.core.tensor import ExTensor

    rng = np.random.default_rng(0)
    actions: dict[str, Callable[[], Any]] = {}
    if len(sizes) == 1:
        probe = bandwidth_probe()
        a = rng.standard_normal(sizes[0]).astype(np.float32)
        b = rng.standard_normal(sizes[0]).astype(np.float32)
        actions["probe"] = lambda: probe(a, b, np.float32(1e-9))
    for name, ours, _, options, _ in CASES:
        params = [ExTensor(rng.standard_normal(n).astype(np.float32), requires_grad=True) for n in sizes]
        optimizer = getattr(optimizers, ours)(params, **options)
        for p in params:
            p.grad = rng.standard_normal(p.shape).astype(np.float32)
        actions[name] = optimizer.step
    return actions


def bandwidth_probe() -> Callable[..., None]:
    """A numba kernel moving 12 bytes per element (read a, b; write a): the bandwidth reference."""
    from numba import njit, prange

    @njit(parallel=True, cache=True)
    def probe(a: Any, b: Any, s: Any) -> None:  # pragma: no cover - benchmark kernel
        for i in prange(a.size):
            a[i] = a[i] + s * b[i]

    return probe


def torch_actions(sizes: list[int]) -> dict[str, Callable[[], Any]]:
    """The step of every torch optimizer (fused where torch has it, and foreach) on tensors of `sizes`."""
    import torch

    torch.manual_seed(0)
    actions: dict[str, Callable[[], Any]] = {}
    for name, _, theirs, options, _ in CASES:
        if theirs is None:
            continue
        modes = ("fused", "foreach") if name in HAS_FUSED else ("foreach",)
        for mode in modes:
            params = [torch.randn(n).requires_grad_() for n in sizes]
            for p in params:
                p.grad = torch.randn_like(p)
            optimizer = getattr(torch.optim, theirs)(params, **options, **{mode: True})
            actions[f"{name}/{mode}"] = optimizer.step
    return actions


def worker(library: str, size: str) -> None:
    """Serve the coordinator: for each case name read on stdin, print the mean seconds per step."""
    sizes, steps = SIZES[size]
    actions = extensor_actions(sizes) if library == "extensor" else torch_actions(sizes)
    for action in actions.values():  # warm-up: state allocation, compilation, thread pools
        for _ in range(3):
            action()
    print("\t".join(actions), flush=True)  # case names contain spaces
    for line in sys.stdin:
        action = actions[line.strip()]
        start = time.perf_counter()
        for _ in range(steps):
            action()
        print((time.perf_counter() - start) / steps, flush=True)


# ------------------------------------------------------------------------------ coordinator
class Worker:
    """One worker process (`library`, `size`), driven over its stdin/stdout."""

    def __init__(self, library: str, size: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", library, size],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.cases = self.process.stdout.readline().rstrip("\n").split("\t")

    def time(self, case: str) -> float:
        assert self.process.stdin is not None and self.process.stdout is not None
        time.sleep(PAUSE)
        self.process.stdin.write(case + "\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def measure(size: str, rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per step of every case and median per-round ratios (keys 'ours/theirs')."""
    workers = {library: Worker(library, size) for library in ("extensor", "torch")}
    try:
        samples: dict[str, list[float]] = {}
        ratios: dict[str, list[float]] = {}
        for r in range(rounds):
            order = ("extensor", "torch") if r % 2 == 0 else ("torch", "extensor")
            times = {
                case: workers[library].time(case) for library in order for case in workers[library].cases
            }
            for case, seconds in times.items():
                samples.setdefault(case, []).append(seconds)
            for name, *_ in CASES:
                for other in ("fused", "foreach", "probe"):
                    theirs = times.get("probe" if other == "probe" else f"{name}/{other}")
                    if theirs is not None:
                        ratios.setdefault(f"{name}/{other}", []).append(times[name] / theirs)
        medians = {case: statistics.median(values) for case, values in samples.items()}
        return medians, {key: statistics.median(values) for key, values in ratios.items()}
    finally:
        for process in workers.values():
            process.close()


def big(rounds: int) -> None:
    n = SIZES["big"][0][0]
    times, ratios = measure("big", rounds)
    probe_rate = 12 * n / times["probe"]
    print(f"\n### 10M float32 parameters, one tensor (medians of {rounds} alternating rounds)\n")
    print(f"Bandwidth probe `a[i] += s*b[i]` (numba, extensor worker): {times['probe'] * 1e3:.2f} ms, "
          f"{probe_rate / 1e9:.1f} GB/s\n")  # fmt: skip
    print("| optimizer | extensor | torch fused | torch foreach | vs fused | vs foreach ", end="")
    print("| GB/s (B/param) | of probe |")
    print("|---|---|---|---|---|---|---|---|")
    for name, *_, nbytes in CASES:
        ours = times[name]
        rate = nbytes * n / ours
        # probe time / our time, scaled by bytes moved: the per-round fraction of the probe's bandwidth
        of_probe = nbytes / 12 / ratios[f"{name}/probe"]
        print(
            f"| {name} | {ours * 1e3:.2f} ms | {_ms(times.get(name + '/fused'))} | "
            f"{_ms(times.get(name + '/foreach'))} | {_ratio(ratios.get(name + '/fused'))} | "
            f"{_ratio(ratios.get(name + '/foreach'))} | {rate / 1e9:.1f} ({nbytes}) | {100 * of_probe:.0f}% |"
        )


def small(rounds: int) -> None:
    times, ratios = measure("small", rounds)
    print(f"\n### 1,000 tensors of 100 float32 (medians of {rounds} alternating rounds)\n")
    print("| optimizer | extensor | torch fused | torch foreach | vs fused | vs foreach |")
    print("|---|---|---|---|---|---|")
    for name, *_ in CASES:
        print(
            f"| {name} | {times[name] * 1e3:.3f} ms | {_ms(times.get(name + '/fused'))} | "
            f"{_ms(times.get(name + '/foreach'))} | {_ratio(ratios.get(name + '/fused'), 3)} | "
            f"{_ratio(ratios.get(name + '/foreach'), 3)} |"
        )


FIRST_STEP = """
import time
start = time.perf_counter()
import numpy as np
from extensor.core.tensor import ExTensor
from extensor.training.optimizers import Adam
imported = time.perf_counter()
p = ExTensor(np.ones(1000, dtype=np.float32), requires_grad=True)
p.grad = np.ones(1000, dtype=np.float32)
optimizer = Adam([p])
before = time.perf_counter()
optimizer.step()
first = time.perf_counter()
optimizer.step()
print(imported - start, first - before, time.perf_counter() - first)
"""


def first_step() -> None:
    """Import time and first-step time of a fresh process, with the kernel cache warm."""
    subprocess.run([sys.executable, "-c", FIRST_STEP], check=True, capture_output=True)  # warms the cache
    results = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", FIRST_STEP], check=True, capture_output=True, text=True)
        results.append([float(x) for x in out.stdout.split()])
    imported, first, second = (statistics.median(column) for column in zip(*results, strict=True))
    print("\n### A fresh process, kernel cache warm (medians of 3 processes)\n")
    print(f"import extensor.training.optimizers: {imported:.2f} s; first Adam step: {first:.3f} s "
          "(numba's one-time start-up and loading the cached kernel); "
          f"second step: {second * 1e3:.3f} ms")  # fmt: skip


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:.2f} ms"


def _ratio(ratio: float | None, digits: int = 2) -> str:
    return "—" if ratio is None else f"{ratio:.{digits}f}x"


def versions() -> str:
    """Library versions and thread counts, from a throwaway process (the coordinator imports neither)."""
    code = (
        "import numba, numpy, torch; "
        "print(f'torch {torch.__version__}, numba {numba.__version__}, numpy {numpy.__version__}, "
        "threads: torch {torch.get_num_threads()}, numba {numba.get_num_threads()}')"
    )
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    policy = os.environ.get("OMP_WAIT_POLICY")
    print(f"{versions()}; OMP_WAIT_POLICY in the environment: {policy} "
          "(extensor's worker sets PASSIVE for itself when unset)")  # fmt: skip
    big(5 if args.quick else 15)
    small(10 if args.quick else 30)
    first_step()


if __name__ == "__main__":
    main()
