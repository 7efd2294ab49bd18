"""LARS on a real network's tensors: one visit per cache-sized tensor against two passes.

    python benchmarks/lars.py            # ResNet-50's 161 parameter tensors (25.6M float32)
    python benchmarks/lars.py --quick    # fewer rounds

LARS needs each tensor's weight and gradient norms before it can update the tensor, so w and g
are read twice. `lars_kernel` sums and updates each tensor of at most `CACHE_RESIDENT_BYTES`
(w and g together) in one visit, so that the second read comes from cache; the alternative is
one reduction pass over every tensor, then one update pass. This script times both on the
parameter shapes of ResNet-50 (He et al., 2016), where most tensors are small enough, against
SGD with momentum on the same tensors: SGD moves the 20 bytes per parameter that LARS cannot
avoid (read w, g, b; write w, b), so ``LARS / SGD`` near 1 means the norms cost nothing.

All three run in one process, in alternating order, each round timing a few steps of each;
the table shows medians of per-round ratios (only ratios from one run mean anything on a shared
machine). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import extensor.training.optimizers.lars as lars
from extensor.core.tensor import ExTensor
from extensor.training.optimizers import LARS, SGD


def resnet50_shapes() -> list[tuple[int, ...]]:
    """The parameter shapes of torchvision's ResNet-50 in definition order (conv, BN weight and bias, fc)."""
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]
    channels = 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for block in range(blocks):
            out = width * 4
            shapes += [(width, channels, 1, 1), (width,), (width,)]
            shapes += [(width, width, 3, 3), (width,), (width,)]
            shapes += [(out, width, 1, 1), (out,), (out,)]
            if block == 0:  # the projection shortcut
                shapes += [(out, channels, 1, 1), (out,), (out,)]
            channels = out
    return [*shapes, (1000, 2048), (1000,)]


def make_step(kind: str, shapes: list[tuple[int, ...]]) -> Callable[[], Any]:
    """A step function of `kind` ('one visit', 'two passes' or 'SGD') over float32 tensors of `shapes`."""
    rng = np.random.default_rng(0)
    params = [ExTensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in shapes]
    optimizer: Any
    if kind == "SGD":
        optimizer = SGD(params, lr=0.1, momentum=0.9)
    else:
        optimizer = LARS(params, lr=0.1, weight_decay=1e-4)
    for p in params:
        p.grad = rng.standard_normal(p.shape).astype(np.float32)
    if kind != "two passes":
        return optimizer.step
    budget = lars.CACHE_RESIDENT_BYTES

    def two_passes() -> None:
        lars.CACHE_RESIDENT_BYTES = 0  # no tensor is resident: one reduction, then one update
        try:
            optimizer.step()
        finally:
            lars.CACHE_RESIDENT_BYTES = budget

    return two_passes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    rounds, steps = (8, 3) if args.quick else (25, 3)
    shapes = resnet50_shapes()
    n = sum(int(np.prod(s)) for s in shapes)
    kinds = ("one visit", "two passes", "SGD")
    steppers = {kind: make_step(kind, shapes) for kind in kinds}
    for step in steppers.values():  # compilation, state allocation
        step()
        step()
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for r in range(rounds):
        for kind in kinds if r % 2 == 0 else kinds[::-1]:
            start = time.perf_counter()
            for _ in range(steps):
                steppers[kind]()
            times[kind].append((time.perf_counter() - start) / steps)

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))

    limit = lars.CACHE_RESIDENT_BYTES // 8
    resident = sum(int(np.prod(s)) for s in shapes if int(np.prod(s)) <= limit)
    print(f"ResNet-50: {len(shapes)} tensors, {n / 1e6:.1f}M float32 parameters, {100 * resident / n:.0f}% "
          f"of them in tensors of at most {limit:,} elements (cache-resident)\n")  # fmt: skip
    print(f"| step ({rounds} rounds) | median time | GB/s at 20 B/param | vs SGD momentum |")
    print("|---|---|---|---|")
    for kind in kinds:
        seconds = statistics.median(times[kind])
        print(f"| {kind if kind == 'SGD' else 'LARS, ' + kind} | {seconds * 1e3:.2f} ms | "
              f"{20 * n / seconds / 1e9:.1f} | {ratio(kind, 'SGD'):.2f}x |")  # fmt: skip
    print(f"\nOne visit / two passes: {ratio('one visit', 'two passes'):.2f}x")


if __name__ == "__main__":
    main()
