"""The loops of 2-D pooling, compiled with numba: one pass over the windows, torch's CPU semantics.

Inputs are viewed as stacks of planes (N·C, H, W). Window (i, j) covers rows i·sh − ph + p·dh and
columns j·sw − pw + q·dw; taps that fall in the padding are skipped, exactly as torch's kernels
(aten/src/ATen/native/cpu/MaxPoolKernel.cpp, AvgPoolKernel.cpp) clamp them, so the same elements
are visited in the same order and accumulated in the input's dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

Array = np.ndarray[Any, Any]


@njit(cache=True, nogil=True)
def _first_tap(start: int, step: int) -> int:
    """The first tap index whose position start + tap·step is not in the leading padding."""
    tap = 0
    while start + tap * step < 0:
        tap += 1
    return tap


@njit(cache=True, nogil=True)
def max_pool_forward(
    x: Array, out: Array, index: Array, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, dh: int, dw: int
) -> None:
    """out[k, i, j] = max of window (i, j) of plane k; index = flat position (row·W + col) of the winner.

    The winner is the first maximal element in row-major order, or the last NaN (torch's rule
    `val > max || isnan(val)`), so the gradient goes where torch sends it.
    """
    planes, height, width = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    for k in range(planes):
        for i in range(out_h):
            top = i * sh - ph
            p0 = _first_tap(top, dh)
            for j in range(out_w):
                left = j * sw - pw
                q0 = _first_tap(left, dw)
                row, col = top + p0 * dh, left + q0 * dw
                if row >= height or col >= width:  # no real element (cannot happen with torch's checks)
                    out[k, i, j] = -np.inf
                    index[k, i, j] = -1
                    continue
                best = x[k, row, col]
                where = row * width + col
                for p in range(p0, kh):
                    row = top + p * dh
                    if row >= height:
                        break
                    for q in range(q0, kw):
                        col = left + q * dw
                        if col >= width:
                            break
                        value = x[k, row, col]
                        if value > best or value != value:
                            best = value
                            where = row * width + col
                out[k, i, j] = best
                index[k, i, j] = where


@njit(cache=True, nogil=True)
def max_pool_2x2_forward(x: Array, out: Array, index: Array) -> bool:
    """`max_pool_forward` for 2x2 windows at stride 2 inside the input (the common pooling layer), when
    every input is finite; returns False, with `out` and `index` unusable, when one is not.

    Why: with the four taps written out and the winner chosen by selects rather than branches the
    loop has no data-dependent jumps (random data mispredicts one per window), about 10x faster than
    the general loop. For finite values `v > best` in row-major order picks the same first maximum
    as torch's rule; NaN would need its `isnan(val)` branch, so a non-finite input is detected
    (x − x is NaN exactly for NaN and ±inf) and the caller runs the general kernel instead.
    """
    planes, width = x.shape[0], x.shape[2]
    out_h, out_w = out.shape[1], out.shape[2]
    non_finite = x.dtype.type(0)
    for k in range(planes):
        for i in range(out_h):
            top = 2 * i * width
            for j in range(out_w):
                left = 2 * j
                a, b = x[k, 2 * i, left], x[k, 2 * i, left + 1]
                c, d = x[k, 2 * i + 1, left], x[k, 2 * i + 1, left + 1]
                non_finite += (a - a) + (b - b) + (c - c) + (d - d)
                best, where = a, top + left
                take = b > best
                best = b if take else best
                where = top + left + 1 if take else where
                take = c > best
                best = c if take else best
                where = top + width + left if take else where
                take = d > best
                best = d if take else best
                where = top + width + left + 1 if take else where
                out[k, i, j] = best
                index[k, i, j] = where
    return non_finite == 0


@njit(cache=True, nogil=True)
def max_pool_backward(grad: Array, index: Array, grad_input: Array) -> None:
    """grad_input[k].flat[index[k, i, j]] += grad[k, i, j] (grad_input starts at zero)."""
    planes, out_h, out_w = grad.shape
    for k in range(planes):
        plane = grad_input[k]
        for i in range(out_h):
            for j in range(out_w):
                if index[k, i, j] >= 0:
                    plane[index[k, i, j]] += grad[k, i, j]


@njit(cache=True, nogil=True)
def _window(start: int, size: int, pad: int, length: int, count_include_pad: bool) -> tuple[int, int, int]:
    """(first, end, divisor share) of a window along one axis, as torch's avg_pool2d computes them."""
    end = min(start + size, length + pad)
    padded_extent = end - start
    first = max(start, 0)
    end = min(end, length)
    return first, end, padded_extent if count_include_pad else end - first


@njit(cache=True, nogil=True)
def avg_pool_forward(
    x: Array, out: Array, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
    count_include_pad: bool, divisor_override: int,
) -> None:  # fmt: skip
    """out[k, i, j] = (Σ window) / divisor, `out` starting at 0; divisor_override > 0 replaces the divisor."""
    planes, height, width = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    for k in range(planes):
        for i in range(out_h):
            r0, r1, rows = _window(i * sh - ph, kh, ph, height, count_include_pad)
            for j in range(out_w):
                c0, c1, cols = _window(j * sw - pw, kw, pw, width, count_include_pad)
                if r0 >= r1 or c0 >= c1:  # a window wholly in the padding stays 0, as in torch
                    continue
                total = out[k, i, j]  # zero, in the input's dtype: accumulate as torch does
                for row in range(r0, r1):
                    for col in range(c0, c1):
                        total += x[k, row, col]
                divisor = divisor_override if divisor_override > 0 else rows * cols
                out[k, i, j] = total / divisor


@njit(cache=True, nogil=True)
def avg_pool_backward(
    grad: Array, grad_input: Array, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
    count_include_pad: bool, divisor_override: int,
) -> None:  # fmt: skip
    """Spread grad[k, i, j] / divisor over window (i, j) of grad_input (which starts at zero)."""
    planes, out_h, out_w = grad.shape
    height, width = grad_input.shape[1], grad_input.shape[2]
    for k in range(planes):
        for i in range(out_h):
            r0, r1, rows = _window(i * sh - ph, kh, ph, height, count_include_pad)
            for j in range(out_w):
                c0, c1, cols = _window(j * sw - pw, kw, pw, width, count_include_pad)
                if r0 >= r1 or c0 >= c1:
                    continue
                divisor = divisor_override if divisor_override > 0 else rows * cols
                share = grad[k, i, j] / divisor
                for row in range(r0, r1):
                    for col in range(c0, c1):
                        grad_input[k, row, col] += share
