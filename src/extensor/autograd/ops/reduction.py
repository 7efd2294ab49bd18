"""Reductions: sum, mean, max, min (differentiable) and argmax, argmin (integer indices, no gradient).

`axis` is an int, a sequence of ints, or None for every axis; an empty sequence also means every
axis, as in PyTorch. Integer and bool tensors sum to int64; `mean` needs a floating tensor.

Gradients of max/min follow PyTorch:
  * `axis=None` (`torch.max(x)`): the gradient is split evenly among all tied extrema;
  * an int `axis` (`torch.max(x, dim)`): the whole gradient goes to the *first* extremum along
    the axis — the element `argmax`/`argmin` returns;
  * a sequence of axes (`torch.amax(x, dims)`): split evenly among the tied extrema of each slice.
NaN propagates: a slice containing NaN reduces to NaN and its gradient goes to the NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from extensor.autograd.function import as_tensor, constant, normalize_axes, normalize_axis, record
from extensor.core.dispatch import register
from extensor.core.tensor import Array, ExTensor

Axis = int | Sequence[int] | None


def _expand(g: Array, axes: tuple[int, ...], keepdims: bool, ndim: int) -> Array:
    """Re-insert the reduced axes into g (as size-one dimensions) so it broadcasts against the input."""
    if keepdims or not axes:
        return g
    shape = list(g.shape)
    for a in sorted(axes):
        shape.insert(a, 1)
    return g.reshape(shape) if shape else g.reshape((1,) * ndim)


def _int_result(x: ExTensor, data: Array) -> Array:
    # torch sums bool and every integer dtype to int64
    return data.astype(np.int64, copy=False) if x.dtype.kind in "biu" else data


@register("sum")
def sum(a: Any, axis: Axis = None, keepdims: bool = False) -> ExTensor:
    """Σ x over `axis`; the gradient broadcasts back over the summed axes."""
    x = as_tensor(a)
    axes = normalize_axes(axis, x.ndim)
    shape = x.shape
    xd = x.data
    result = xd.sum(axis=axes, keepdims=keepdims, dtype=np.int64 if xd.dtype.kind in "biu" else None)

    def backward(g: Array) -> tuple[Array]:
        return (np.broadcast_to(_expand(g, axes, keepdims, len(shape)), shape),)

    return record(result, (x,), backward)


@register("mean")
def mean(a: Any, axis: Axis = None, keepdims: bool = False) -> ExTensor:
    """Σ x / n over `axis` (n = number of elements reduced); the gradient is g / n on each of them."""
    x = as_tensor(a)
    if x.dtype.kind != "f":
        raise TypeError(f"mean needs a floating-point tensor, got dtype {x.dtype}; convert it with astype")
    axes = normalize_axes(axis, x.ndim)
    shape = x.shape
    count = 1
    for ax in axes:
        count *= shape[ax]
    result = x.data.mean(axis=axes, keepdims=keepdims)

    def backward(g: Array) -> tuple[Array]:
        return (np.broadcast_to(_expand(g / count, axes, keepdims, len(shape)), shape),)

    return record(result, (x,), backward)


def _extremum(
    a: Any, axis: Axis, keepdims: bool, reduce: Callable[..., Array], arg: Callable[..., Array], name: str
) -> ExTensor:
    x = as_tensor(a)
    xd = x.data
    if xd.size == 0:
        raise ValueError(f"{name} of an empty tensor of shape {x.shape} is undefined")
    shape = x.shape
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        ax = normalize_axis(axis, x.ndim)
        if xd.ndim == 0:
            return record(xd.copy(), (x,), lambda g: (g.reshape(()),))
        index = np.expand_dims(arg(xd, axis=ax), ax)
        result = np.take_along_axis(xd, index, axis=ax)

        def backward_first(g: Array) -> tuple[Array]:
            grad = np.zeros(shape, dtype=g.dtype)
            np.put_along_axis(grad, index, g if keepdims else np.expand_dims(g, ax), axis=ax)
            return (grad,)

        return record(result if keepdims else result.squeeze(ax), (x,), backward_first)

    axes = normalize_axes(axis, x.ndim)
    result = reduce(xd, axis=axes, keepdims=True)

    def backward_even(g: Array) -> tuple[Array]:
        ties = xd == result
        if xd.dtype.kind == "f":
            ties |= np.isnan(xd) & np.isnan(result)
        count = ties.sum(axis=axes, keepdims=True)
        share = (g if keepdims else _expand(g, axes, False, len(shape))) / count
        return (np.where(ties, share, 0).astype(g.dtype, copy=False),)

    return record(
        result if keepdims else result.reshape([n for i, n in enumerate(shape) if i not in axes]),
        (x,),
        backward_even,
    )


@register("max")
def max(a: Any, axis: Axis = None, keepdims: bool = False) -> ExTensor:
    """Maximum over `axis`. Gradient: to the first maximum for an int axis (torch.max(x, dim)),
    split evenly among tied maxima for None or a sequence of axes (torch.max(x), torch.amax)."""
    return _extremum(a, axis, keepdims, np.max, np.argmax, "max")


@register("min")
def min(a: Any, axis: Axis = None, keepdims: bool = False) -> ExTensor:
    """Minimum over `axis`. Gradient: to the first minimum for an int axis (torch.min(x, dim)),
    split evenly among tied minima for None or a sequence of axes (torch.min(x), torch.amin)."""
    return _extremum(a, axis, keepdims, np.min, np.argmin, "min")


def _arg(a: Any, axis: int | None, keepdims: bool, arg: Callable[..., Array], name: str) -> ExTensor:
    x = as_tensor(a)
    if x.size == 0:
        raise ValueError(f"{name} of an empty tensor of shape {x.shape} is undefined")
    if axis is None:
        flat = np.asarray(arg(x.data.reshape(-1)), dtype=np.int64)
        return constant(flat.reshape((1,) * x.ndim) if keepdims else flat)
    ax = normalize_axis(axis, x.ndim)
    if x.ndim == 0:
        return constant(np.zeros((), dtype=np.int64))
    return constant(arg(x.data, axis=ax, keepdims=keepdims).astype(np.int64, copy=False))


@register("argmax")
def argmax(a: Any, axis: int | None = None, keepdims: bool = False) -> ExTensor:
    """Index of the first maximum along `axis` (of the flattened tensor when None); int64, no gradient."""
    return _arg(a, axis, keepdims, np.argmax, "argmax")


@register("argmin")
def argmin(a: Any, axis: int | None = None, keepdims: bool = False) -> ExTensor:
    """Index of the first minimum along `axis` (of the flattened tensor when None); int64, no gradient."""
    return _arg(a, axis, keepdims, np.argmin, "argmin")
