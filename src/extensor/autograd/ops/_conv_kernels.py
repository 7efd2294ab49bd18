"""The copy loops of a stride-1 ("wide") convolution, compiled with numba: im2col and col2im.

Why: in the wide layout (see `conv._ColumnPlan`) every column of tap (p, q) is one contiguous run
of the flattened padded input plane, at offset p·dh·Wp + q·dw. NumPy does the copy (im2col) and
the kh·kw slice additions (col2im) as 4-D strided operations whose inner runs are only Ho·Wp long,
so its per-run overhead dominates; a plain loop over the runs is several times faster. Each run
is taken as a view starting at its offset, so the loop index is provably non-negative and the
copy vectorises (an `offset + m` index would keep NumPy's negative-index check in the loop).

col2im adds the taps into each element in the same (p, q) order as one slice addition per tap,
so its sums are bit for bit those of the NumPy formulation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

Array = np.ndarray[Any, Any]


@njit(cache=True, nogil=True)
def im2col_wide(planes: Array, cols: Array, row: int, dh: int, dw: int, run: int) -> None:
    """cols[c, p, q, n, :run] = planes[n, c, o : o + run] with o = p·dh·row + q·dw, and 0 past `run`.

    planes: (N, C, Hp·Wp) padded input; cols: (C, kh, kw, N, L) with L >= run.
    """
    channels, kh, kw, batch, length = cols.shape
    zero = cols.dtype.type(0)
    for c in range(channels):
        for p in range(kh):
            for q in range(kw):
                offset = p * dh * row + q * dw
                for n in range(batch):
                    source = planes[n, c, offset : offset + run]
                    target = cols[c, p, q, n]
                    for m in range(run):
                        target[m] = source[m]
                    for m in range(run, length):
                        target[m] = zero


@njit(cache=True, nogil=True)
def col2im_wide(cols: Array, planes: Array, row: int, dh: int, dw: int, run: int) -> None:
    """planes[c, n, o : o + run] += cols[c, p, q, n, :run] for every tap (p, q) in row-major order,
    o = p·dh·row + q·dw. cols: (C, kh, kw, N, L); planes: (C, N, Hp·Wp), zero on entry."""
    channels, kh, kw, batch, _ = cols.shape
    for c in range(channels):
        for n in range(batch):
            for p in range(kh):
                for q in range(kw):
                    offset = p * dh * row + q * dw
                    target = planes[c, n, offset : offset + run]
                    source = cols[c, p, q, n]
                    for m in range(run):
                        target[m] += source[m]
