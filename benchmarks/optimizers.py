"""Optimizer step time: extensor's kernels against torch.optim (fused, foreach) and the memory bandwidth.

    python benchmarks/optimizers.py            # 10M float32 parameters, and 1,000 tensors of 100
    python benchmarks/optimizers.py --quick    # fewer repetitions

For one tensor of 10M float32 parameters, each optimizer's step time against torch with
``fused=True`` (where torch has it) and ``foreach=True``; an in-place read-modify-write probe
``a[i] += s * b[i]`` (numba, same threads) gives the machine's bandwidth, and each optimizer's
achieved bandwidth is counted at the bytes per parameter its algorithm must move (Adam 28 B:
read p, g, m, v; write p, m, v). Then 1,000 tensors of 100 floats, where the flat buffer turns a
thousand small updates into one kernel call.

The machine is shared: every case is timed once per round, rounds interleave the cases, and the
table reports medians. Only ratios measured in the same run mean anything. Nothing is asserted.
"""

from __future__ import annotations

import os

# Sleeping OpenMP workers for both numba and torch (see extensor/training/flat.py); set before either loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import torch
from numba import njit, prange

from extensor.core.tensor import ExTensor
from extensor.training.optimizers import LARS, SGD, Adam, AdamW, RMSprop


@njit(parallel=True, cache=True)
def probe(a: np.ndarray, b: np.ndarray, s: Any) -> None:  # pragma: no cover - benchmark kernel
    """The bandwidth reference: 12 bytes per element (read a, b; write a)."""
    for i in prange(a.size):
        a[i] = a[i] + s * b[i]


#: name, extensor factory, torch factory, options, bytes moved per parameter by the algorithm
CASES: list[tuple[str, type, Any, dict[str, Any], int]] = [
    ("SGD momentum", SGD, torch.optim.SGD, {"lr": 0.01, "momentum": 0.9}, 20),
    ("Adam", Adam, torch.optim.Adam, {"lr": 1e-3}, 28),
    ("AdamW", AdamW, torch.optim.AdamW, {"lr": 1e-3}, 28),
    ("RMSprop", RMSprop, torch.optim.RMSprop, {"lr": 1e-2}, 20),
    ("LARS", LARS, None, {"lr": 0.1}, 28),  # norms pass (p, g: 8 B) + SGD momentum (20 B)
]
HAS_FUSED = {"SGD momentum", "Adam", "AdamW"}


def extensor_step(
    cls: type, options: dict[str, Any], sizes: list[int], rng: np.random.Generator
) -> Callable[[], Any]:
    params = [ExTensor(rng.standard_normal(n).astype(np.float32), requires_grad=True) for n in sizes]
    optimizer = cls(params, **options)
    for p in params:
        p.grad = rng.standard_normal(p.shape).astype(np.float32)
    optimizer.step()  # state allocated, kernels loaded
    return optimizer.step


def torch_step(cls: Any, options: dict[str, Any], sizes: list[int], mode: str) -> Callable[[], Any]:
    params = [torch.randn(n).requires_grad_() for n in sizes]
    for p in params:
        p.grad = torch.randn_like(p)
    optimizer = cls(params, **options, **{mode: True})
    optimizer.step()
    return optimizer.step


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(actions: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median seconds per action, the actions interleaved round by round."""
    samples: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(rounds):
        for name, action in actions.items():
            samples[name].append(timed(action))
    return {name: statistics.median(values) for name, values in samples.items()}


def big(rounds: int) -> None:
    n = 10_000_000
    rng = np.random.default_rng(0)
    a = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    actions: dict[str, Callable[[], Any]] = {"probe": lambda: probe(a, b, np.float32(1e-9))}
    for name, ours, theirs, options, _ in CASES:
        actions[f"{name}/extensor"] = extensor_step(ours, options, [n], rng)
        if theirs is not None:
            if name in HAS_FUSED:
                actions[f"{name}/fused"] = torch_step(theirs, options, [n], "fused")
            actions[f"{name}/foreach"] = torch_step(theirs, options, [n], "foreach")
    times = measure(actions, rounds)
    probe_rate = 12 * n / times["probe"]
    print(f"\n### 10M float32 parameters, one tensor (medians of {rounds} interleaved rounds)\n")
    print(f"Bandwidth probe `a[i] += s*b[i]` (numba, {numba.get_num_threads()} threads): "
          f"{times['probe'] * 1e3:.2f} ms, {probe_rate / 1e9:.1f} GB/s\n")  # fmt: skip
    print("| optimizer | extensor | torch fused | torch foreach | vs fused | vs foreach ", end="")
    print("| GB/s (B/param) | of probe |")
    print("|---|---|---|---|---|---|---|---|")
    for name, *_, nbytes in CASES:
        ours = times[f"{name}/extensor"]
        fused = times.get(f"{name}/fused")
        foreach = times.get(f"{name}/foreach")
        rate = nbytes * n / ours
        print(
            f"| {name} | {ours * 1e3:.2f} ms | {_ms(fused)} | {_ms(foreach)} | {_ratio(ours, fused)} | "
            f"{_ratio(ours, foreach)} | {rate / 1e9:.1f} ({nbytes}) | {100 * rate / probe_rate:.0f}% |"
        )


def small(rounds: int) -> None:
    sizes = [100] * 1000
    rng = np.random.default_rng(1)
    actions: dict[str, Callable[[], Any]] = {}
    for name, ours, theirs, options, _ in CASES:
        actions[f"{name}/extensor"] = extensor_step(ours, options, sizes, rng)
        if theirs is not None:
            if name in HAS_FUSED:
                actions[f"{name}/fused"] = torch_step(theirs, options, sizes, "fused")
            actions[f"{name}/foreach"] = torch_step(theirs, options, sizes, "foreach")
    times = measure(actions, rounds)
    print(f"\n### 1,000 tensors of 100 float32 (medians of {rounds} interleaved rounds)\n")
    print("| optimizer | extensor | torch fused | torch foreach | vs fused | vs foreach |")
    print("|---|---|---|---|---|---|")
    for name, *_ in CASES:
        ours = times[f"{name}/extensor"]
        fused = times.get(f"{name}/fused")
        foreach = times.get(f"{name}/foreach")
        print(
            f"| {name} | {ours * 1e3:.3f} ms | {_ms(fused)} | {_ms(foreach)} | {_ratio(ours, fused)} | "
            f"{_ratio(ours, foreach)} |"
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


def _ratio(ours: float, theirs: float | None) -> str:
    return "—" if theirs is None else f"{ours / theirs:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    policy = os.environ.get("OMP_WAIT_POLICY")
    print(f"torch {torch.__version__}, numba {numba.__version__}, numpy {np.__version__}, "
          f"torch threads {torch.get_num_threads()}, OMP_WAIT_POLICY={policy}")  # fmt: skip
    big(5 if args.quick else 15)
    small(10 if args.quick else 40)
    first_step()


if __name__ == "__main__":
    main()
