"""Compact optimizer state codecs against a plain copy: bfloat16 and 8-bit block-wise quantisation.

    python benchmarks/compact_state.py            # 10M float32 elements
    python benchmarks/compact_state.py --quick    # 1M elements, fewer rounds

Times, in one process and alternating order, `np.copyto` of float32 (the streaming yardstick),
float32 -> bfloat16 -> float32, and 8-bit quantise / dequantise at block sizes 256 and 2048,
each on all threads (the size picks the parallel kernel) and on one (the serial kernel).
Bandwidth counts the bytes each pass must move (copy 8 B/element, bfloat16 6, quantise 5 plus
the absmax, dequantise 5). Then the error of each block size on Adam-like moments: m standard
normal with outliers, v its square. Medians over rounds; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from extensor.training.optimizers import compact


def median_seconds(run: Callable[[], Any], rounds: int, repeat: int) -> float:
    """Median over `rounds` of the mean time of `repeat` calls of `run` (after one warm-up)."""
    run()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            run()
        times.append((time.perf_counter() - start) / repeat)
    return statistics.median(times)


def cases(size: int) -> dict[str, tuple[int, Callable[[], Any], Callable[[], Any]]]:
    """name -> (bytes per element, all-threads call, one-thread call), on preallocated arrays."""
    rng = np.random.default_rng(0)
    values = rng.standard_normal(size).astype(np.float32)
    copy = np.empty_like(values)
    half = compact.to_bfloat16(values)
    back = np.empty_like(values)
    table: dict[str, tuple[int, Callable[[], Any], Callable[[], Any]]] = {
        "copy float32": (8, lambda: np.copyto(copy, values), lambda: np.copyto(copy, values)),
        "to bfloat16": (
            6,
            lambda: compact.to_bfloat16(values, half),
            lambda: compact._to_bfloat16_kernel.serial(values, half),
        ),
        "from bfloat16": (
            6,
            lambda: compact.from_bfloat16(half, back),
            lambda: compact._from_bfloat16_kernel.serial(half, back),
        ),
    }
    book = compact.SIGNED
    for block in (256, 2048):
        codes, absmax = compact.quantize_blockwise(values, True, block)
        table[f"quantize {block}"] = (
            5,
            lambda c=codes, a=absmax, b=block: compact.quantize_blockwise(values, True, b, codes=c, absmax=a),
            lambda c=codes, a=absmax, b=block: compact._quantize_kernel.serial(values, c, a, book, b),
        )
        table[f"dequantize {block}"] = (
            5,
            lambda c=codes, a=absmax, b=block: compact.dequantize_blockwise(c, a, True, b, out=back),
            lambda c=codes, a=absmax, b=block: compact._dequantize_kernel.serial(c, a, book, b, back),
        )
    return table


def errors(size: int) -> None:
    """Relative RMS and worst relative-to-absmax error of each block size on Adam-like moments."""
    rng = np.random.default_rng(1)
    m = rng.standard_normal(size) * np.where(rng.random(size) < 1e-3, 100.0, 1.0)  # rare outliers
    moments = {
        "m (signed)": (m.astype(np.float32), True),
        "v (unsigned)": ((m * m).astype(np.float32), False),
    }
    print(f"\n{'error':<14}{'block':>6}{'rms rel':>11}{'median |rel|':>14}")
    for name, (x, signed) in moments.items():
        for block in (256, 2048):
            codes, absmax = compact.quantize_blockwise(x, signed, block)
            decoded = compact.dequantize_blockwise(codes, absmax, signed, block)
            diff = decoded.astype(np.float64) - x
            rms = np.sqrt(np.mean(diff**2) / np.mean(x.astype(np.float64) ** 2))
            nonzero = x != 0
            median = np.median(np.abs(diff[nonzero] / x[nonzero]))
            print(f"{name:<14}{block:>6}{rms:>11.2e}{median:>14.2e}")


def main() -> None:
    """Run the timing table and the error table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M elements and fewer rounds")
    options = parser.parse_args()
    size = 1_000_000 if options.quick else 10_000_000
    rounds, repeat = (3, 3) if options.quick else (7, 5)
    table = cases(size)
    results: dict[str, list[float]] = {f"{name} {mode}": [] for name in table for mode in ("all", "one")}
    for _ in range(rounds):  # alternate the cases, each round a median of its own
        for name, (_, parallel, serial) in table.items():
            results[f"{name} all"].append(median_seconds(parallel, 1, repeat))
            results[f"{name} one"].append(median_seconds(serial, 1, repeat))
    print(f"{size:,} float32 elements, {numba.get_num_threads()} threads; medians of {rounds} rounds")
    print(f"{'pass':<16}{'B/el':>5}{'all threads':>24}{'one thread':>24}")
    for name, (bytes_per_element, _, _) in table.items():
        cells = []
        for mode in ("all", "one"):
            seconds = statistics.median(results[f"{name} {mode}"])
            rate = size * bytes_per_element / seconds / 1e9
            cells.append(f"{rate:7.1f} GB/s {seconds / size * 1e9:6.3f} ns/el")
        print(f"{name:<16}{bytes_per_element:>5}{cells[0]:>24}{cells[1]:>24}")
    errors(size)


if __name__ == "__main__":
    main()
