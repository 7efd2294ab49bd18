"""Shape operations: reshape, transpose, permute, flatten, squeeze, unsqueeze, indexing, concatenate, stack.

Each moves elements without changing them, so each backward moves the gradient back the same
way: a reshape is undone by a reshape, a permutation by its inverse, indexing by scattering
the gradient into zeros (`np.add.at` for integer-array indices, which may repeat an element).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from extensor.autograd.function import convert, normalize_axis, record, result_type
from extensor.core.creation import parse_dims
from extensor.core.dispatch import register
from extensor.core.tensor import Array, ExTensor


def _tensor(a: Any) -> ExTensor:
    return a if isinstance(a, ExTensor) else ExTensor(a)


@register("reshape")
def reshape(a: Any, *shape: Any) -> ExTensor:
    """The same elements in a new shape; one dimension may be -1 (inferred)."""
    x = _tensor(a)
    new_shape = parse_dims(shape, "reshape dimensions")
    known = 1
    inferred = 0
    for d in new_shape:
        if d == -1:
            inferred += 1
        elif d < 0:
            raise ValueError(f"invalid dimension {d} in shape {new_shape}")
        else:
            known *= d
    if inferred > 1:
        raise ValueError(f"only one dimension can be -1, got shape {new_shape}")
    if (known != x.size) if not inferred else (known == 0 or x.size % known):
        raise ValueError(
            f"cannot reshape a tensor of shape {x.shape} ({x.size} elements) into shape {new_shape}"
        )
    old_shape = x.shape

    def backward(g: Array) -> tuple[Array]:
        return (g.reshape(old_shape),)

    return record(x.data.reshape(new_shape), (x,), backward)


@register("transpose")
def transpose(a: Any, dim0: int = -2, dim1: int = -1) -> ExTensor:
    """Swap dimensions `dim0` and `dim1`."""
    x = _tensor(a)
    if x.ndim < 2 and (dim0, dim1) == (-2, -1):
        return permute(x, *range(x.ndim))
    d0, d1 = normalize_axis(dim0, x.ndim, "dim0"), normalize_axis(dim1, x.ndim, "dim1")
    if x.ndim == 0:
        return permute(x)

    def backward(g: Array) -> tuple[Array]:
        return (np.swapaxes(g, d0, d1),)

    return record(np.swapaxes(x.data, d0, d1), (x,), backward)


@register("permute")
def permute(a: Any, *dims: Any) -> ExTensor:
    """Reorder the dimensions: output dimension i is input dimension dims[i]."""
    x = _tensor(a)
    order = parse_dims(dims, "permute dimensions")
    if len(order) != x.ndim:
        raise ValueError(f"permute needs {x.ndim} dimensions for a tensor of shape {x.shape}, got {order}")
    axes = tuple(normalize_axis(d, x.ndim, "permute dimension") for d in order)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"permute dimensions {order} are not a permutation of range({x.ndim})")
    inverse = tuple(int(i) for i in np.argsort(axes))

    def backward(g: Array) -> tuple[Array]:
        return (np.transpose(g, inverse),)

    return record(np.transpose(x.data, axes), (x,), backward)


@register("flatten")
def flatten(a: Any, start_dim: int = 0, end_dim: int = -1) -> ExTensor:
    """Merge dimensions start_dim..end_dim (inclusive) into one; a 0-d tensor becomes shape (1,)."""
    x = _tensor(a)
    if x.ndim == 0:
        normalize_axis(start_dim, 0, "start_dim")
        normalize_axis(end_dim, 0, "end_dim")
        return reshape(x, 1)
    start = normalize_axis(start_dim, x.ndim, "start_dim")
    end = normalize_axis(end_dim, x.ndim, "end_dim")
    if start > end:
        raise ValueError(f"flatten's start_dim ({start_dim}) must not come after end_dim ({end_dim})")
    shape = x.shape
    merged = 1
    for n in shape[start : end + 1]:
        merged *= n
    return reshape(x, (*shape[:start], merged, *shape[end + 1 :]))


@register("squeeze")
def squeeze(a: Any, axis: int | Sequence[int] | None = None) -> ExTensor:
    """Drop dimensions of size one: all of them, or those among `axis` (others are kept, as in PyTorch)."""
    x = _tensor(a)
    if axis is None:
        drop = {i for i, n in enumerate(x.shape) if n == 1}
    else:
        named = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        positions = [normalize_axis(d, x.ndim) for d in named]
        if len(set(positions)) != len(positions):
            raise ValueError(f"squeeze's axis {tuple(named)} names a dimension more than once")
        drop = {i for i in positions if x.ndim and x.shape[i] == 1}
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in drop))


@register("unsqueeze")
def unsqueeze(a: Any, axis: int) -> ExTensor:
    """Insert a dimension of size one at `axis` (in -ndim-1 .. ndim)."""
    x = _tensor(a)
    position = normalize_axis(axis, x.ndim + 1)
    shape = list(x.shape)
    shape.insert(position, 1)
    return reshape(x, tuple(shape))


def _index_part(part: Any) -> Any:
    if isinstance(part, ExTensor):
        return part.data
    if isinstance(part, list):
        return np.asarray(part)
    return part


def _is_advanced(part: Any) -> bool:
    return isinstance(part, np.ndarray)


@register("getitem")
def getitem(a: Any, index: Any) -> ExTensor:
    """NumPy/PyTorch indexing: ints, slices, None, Ellipsis, integer arrays and boolean masks.

    Basic indexing returns a view; the gradient is written into the selected region of zeros.
    With integer arrays an element can be selected several times, so the gradient is
    scattered with `np.add.at`, which adds repeated contributions.
    """
    x = _tensor(a)
    parts = tuple(_index_part(p) for p in index) if isinstance(index, tuple) else _index_part(index)
    advanced = any(_is_advanced(p) for p in parts) if isinstance(parts, tuple) else _is_advanced(parts)
    result = x.data[parts]
    shape = x.shape

    def backward(g: Array) -> tuple[Array]:
        grad = np.zeros(shape, dtype=g.dtype)
        if advanced:
            np.add.at(grad, parts, g)
        else:
            grad[parts] = g
        return (grad,)

    return record(result, (x,), backward)


def _same_dtype(tensors: Any, name: str) -> list[ExTensor]:
    if isinstance(tensors, (ExTensor, np.ndarray)) or not isinstance(tensors, Sequence):
        raise TypeError(f"{name} needs a sequence of tensors, got {type(tensors).__name__}")
    if not tensors:
        raise ValueError(f"{name} needs at least one tensor")
    items = [_tensor(t) for t in tensors]
    dtype = result_type(*items)
    return [convert(t, dtype) for t in items]


@register("concatenate")
def concatenate(tensors: Sequence[Any], axis: int = 0) -> ExTensor:
    """Join tensors along an existing `axis`; all other dimensions must agree. Dtypes are promoted."""
    items = _same_dtype(tensors, "concatenate")
    first = items[0]
    if first.ndim == 0:
        raise ValueError("zero-dimensional tensors cannot be concatenated; use stack")
    ax = normalize_axis(axis, first.ndim)
    for i, t in enumerate(items):
        if t.ndim != first.ndim or any(
            n != m for d, (n, m) in enumerate(zip(t.shape, first.shape, strict=True)) if d != ax
        ):
            raise ValueError(
                f"concatenate along axis {axis}: tensor {i} has shape {t.shape}, "
                f"incompatible with tensor 0's shape {first.shape}"
            )
    splits = np.cumsum([t.shape[ax] for t in items])[:-1]

    def backward(g: Array) -> tuple[Array, ...]:
        return tuple(np.split(g, splits, axis=ax))

    return record(np.concatenate([t.data for t in items], axis=ax), tuple(items), backward)


@register("stack")
def stack(tensors: Sequence[Any], axis: int = 0) -> ExTensor:
    """Join tensors of one shape along a new `axis` (in -ndim-1 .. ndim). Dtypes are promoted."""
    items = _same_dtype(tensors, "stack")
    first = items[0]
    ax = normalize_axis(axis, first.ndim + 1)
    for i, t in enumerate(items):
        if t.shape != first.shape:
            raise ValueError(
                f"stack needs tensors of one shape: tensor {i} has shape {t.shape}, tensor 0 {first.shape}"
            )

    def backward(g: Array) -> tuple[Array, ...]:
        return tuple(np.moveaxis(g, ax, 0))

    return record(np.stack([t.data for t in items], axis=ax), tuple(items), backward)
