"""Elementwise functions (exp, log, sqrt, abs, clip, where, maximum, minimum, astype) with their backwards.

Integer inputs to the transcendental functions are computed in float32, as in PyTorch.
Gradients at the kinks follow PyTorch exactly: |x|' = sign(x) (0 at 0); `clip` passes the
gradient where min <= x <= max (inclusive); `maximum`/`minimum` split it in half between tied
operands.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from extensor.autograd.function import (
    as_float_tensor,
    as_tensor,
    as_tensors,
    convert,
    record,
    result_type,
    unbroadcast,
)
from extensor.core.dispatch import register
from extensor.core.tensor import Array, ExTensor


@register("exp")
def exp(a: Any) -> ExTensor:
    """e**x; d/dx = e**x."""
    x = as_float_tensor(a)
    y = np.exp(x.data)

    def backward(g: Array) -> tuple[Array]:
        return (g * y,)

    return record(y, (x,), backward)


@register("log")
def log(a: Any) -> ExTensor:
    """Natural logarithm; d/dx = 1/x (-inf at 0 and nan below, as in PyTorch)."""
    x = as_float_tensor(a)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(x.data)

    def backward(g: Array) -> tuple[Array]:
        with np.errstate(divide="ignore", invalid="ignore"):
            return (g / x.data,)

    return record(y, (x,), backward)


@register("sqrt")
def sqrt(a: Any) -> ExTensor:
    """Square root; d/dx = 1 / (2 sqrt(x)) (inf at 0, as in PyTorch)."""
    x = as_float_tensor(a)
    with np.errstate(invalid="ignore"):
        y = np.sqrt(x.data)

    def backward(g: Array) -> tuple[Array]:
        with np.errstate(divide="ignore", invalid="ignore"):
            return (g / (2 * y),)

    return record(y, (x,), backward)


@register("abs")
def abs(a: Any) -> ExTensor:
    """|x|; d/dx = sign(x), which is 0 at 0 (PyTorch's convention)."""
    x = as_tensor(a)

    def backward(g: Array) -> tuple[Array]:
        return (g * np.sign(x.data),)

    return record(np.abs(x.data), (x,), backward)


@register("clip")
def clip(a: Any, min: Any = None, max: Any = None) -> ExTensor:
    """Clamp to [min, max] (either may be None; scalars or broadcastable tensors).

    As `torch.clamp`: when min > max every element becomes max. The gradient reaches x where
    min <= x <= max; a tensor `min` receives it where x < min (and min < max); a tensor `max`
    where x > max or max < min.
    """
    if min is None and max is None:
        raise ValueError("clip needs at least one of min and max")
    x = as_tensor(a)
    bounds = [b for b in (min, max) if b is not None]
    dtype = result_type(x, *bounds)
    x = convert(x, dtype)
    lo = None if min is None else convert(min, dtype)
    hi = None if max is None else convert(max, dtype)
    xd = x.data
    y = xd
    if lo is not None:
        y = np.maximum(y, lo.data)
    if hi is not None:
        y = np.minimum(y, hi.data)
    if y is xd:
        y = xd.copy()

    inputs = tuple(t for t in (x, lo, hi) if t is not None)

    def backward(g: Array) -> tuple[Array | None, ...]:
        inside = np.ones(g.shape, dtype=bool)
        if lo is not None:
            inside &= xd >= lo.data
        if hi is not None:
            inside &= xd <= hi.data
        grads: list[Array | None] = [np.where(inside, g, 0).astype(g.dtype, copy=False)]
        if lo is not None:
            below = xd < lo.data
            if hi is not None:
                below = below & (lo.data < hi.data)
            grads.append(
                unbroadcast(np.where(below, g, 0).astype(g.dtype, copy=False), lo.shape)
                if lo.requires_grad
                else None
            )
        if hi is not None:
            above = xd > hi.data
            if lo is not None:
                above = above | (hi.data < lo.data)
            grads.append(
                unbroadcast(np.where(above, g, 0).astype(g.dtype, copy=False), hi.shape)
                if hi.requires_grad
                else None
            )
        grads[0] = unbroadcast(grads[0], x.shape)  # type: ignore[arg-type]
        return tuple(grads)

    return record(y, inputs, backward)


def _split_ties(g: Array, wins: Array, ties: Array) -> Array:
    """The gradient of one operand of maximum/minimum: all of g where it wins, half where tied."""
    return np.where(wins, g, np.where(ties, g * 0.5, 0)).astype(g.dtype, copy=False)


@register("maximum")
def maximum(a: Any, b: Any) -> ExTensor:
    """Elementwise maximum with broadcasting; ties split the gradient in half (as torch.maximum)."""
    x, y = as_tensors(a, b)

    def backward(g: Array) -> tuple[Array | None, Array | None]:
        ties = x.data == y.data
        gx = unbroadcast(_split_ties(g, x.data > y.data, ties), x.shape) if x.requires_grad else None
        gy = unbroadcast(_split_ties(g, y.data > x.data, ties), y.shape) if y.requires_grad else None
        return gx, gy

    return record(np.maximum(x.data, y.data), (x, y), backward)


@register("minimum")
def minimum(a: Any, b: Any) -> ExTensor:
    """Elementwise minimum with broadcasting; ties split the gradient in half (as torch.minimum)."""
    x, y = as_tensors(a, b)

    def backward(g: Array) -> tuple[Array | None, Array | None]:
        ties = x.data == y.data
        gx = unbroadcast(_split_ties(g, x.data < y.data, ties), x.shape) if x.requires_grad else None
        gy = unbroadcast(_split_ties(g, y.data < x.data, ties), y.shape) if y.requires_grad else None
        return gx, gy

    return record(np.minimum(x.data, y.data), (x, y), backward)


@register("where")
def where(condition: Any, a: Any, b: Any) -> ExTensor:
    """`a` where `condition` is true, else `b` (all three broadcast); the gradient follows the choice."""
    cond = condition.data if isinstance(condition, ExTensor) else np.asarray(condition)
    if cond.dtype != np.bool_:
        raise TypeError(f"where needs a boolean condition, got dtype {cond.dtype}")
    x, y = as_tensors(a, b)

    def backward(g: Array) -> tuple[Array | None, Array | None]:
        zero = np.zeros((), dtype=g.dtype)
        gx = unbroadcast(np.where(cond, g, zero), x.shape) if x.requires_grad else None
        gy = unbroadcast(np.where(cond, zero, g), y.shape) if y.requires_grad else None
        return gx, gy

    return record(np.where(cond, x.data, y.data), (x, y), backward)


@register("astype")
def astype(a: Any, dtype: Any) -> ExTensor:
    """A copy converted to `dtype`; between floating dtypes the gradient is cast back."""
    x = as_tensor(a)
    target = np.dtype(dtype)
    if target.kind not in "biuf":
        raise TypeError(f"cannot convert a tensor to dtype {target}; expected a bool, integer or float dtype")
    source = x.dtype

    def backward(g: Array) -> tuple[Array]:
        return (g.astype(source),)

    return record(x.data.astype(target), (x,), backward)
