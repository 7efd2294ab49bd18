"""Scalar formulas shared by the optimizer kernels, written as ATen computes them.

Inlined into the numba kernels; each matches the element formula of the PyTorch operation
named in its docstring, so that the kernels reproduce torch.optim's arithmetic.
"""

from __future__ import annotations

from typing import Any

from numba import njit

__all__ = ["lerp", "nan_maximum"]


@njit(cache=True, inline="always")
def lerp(start: Any, end: Any, weight: Any, one_minus_weight: Any) -> Any:
    """``torch.lerp(start, end, weight)``: ``start + weight * (end - start)``.

    ATen switches formula at ``|weight| = 0.5`` for accuracy; `one_minus_weight` is ``1 - weight``
    computed in the element dtype by the caller (once per step, not per element). Both
    formulas are computed and one is selected, so a loop calling this stays branch-free.
    """
    diff = end - start
    small = start + weight * diff
    large = end - diff * one_minus_weight
    return small if abs(weight) < 0.5 else large


@njit(cache=True, inline="always")
def nan_maximum(a: Any, b: Any) -> Any:
    """``torch.maximum(a, b)``: the larger value, NaN if either is NaN."""
    if a != a or b != b:
        return a + b
    return a if a >= b else b
