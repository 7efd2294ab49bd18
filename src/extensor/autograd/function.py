"""What every differentiable operation uses: turning inputs into tensors and recording itself.

An operation computes its result with NumPy, defines its vector-Jacobian product right beside
it, and hands both to `record`::

    @register("mul")
    def mul(a, b):
        a, b = as_tensors(a, b)
        def backward(g):
            return unbroadcast(g * b.data, a.shape), unbroadcast(g * a.data, b.shape)
        return record(a.data * b.data, (a, b), backward)

Type promotion follows PyTorch (`torch.result_type`), not NumPy: operands fall into three
priority classes — tensors with dimensions, zero-dimensional tensors, and Python (or NumPy)
scalars — and a lower class only changes the result's dtype when it is of a higher category
(bool < integer < floating). So `float32 tensor * 2.0` stays float32, `int64 tensor * 2.5` is
float32 (the default float), and `float32 tensor + float64 0-d tensor` is float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from extensor.autograd.tape import Backward, active_tapes
from extensor.core import dispatch
from extensor.core.dtypes import DEFAULT_FLOAT, is_floating, scalar_dtype
from extensor.core.tensor import Array, ExTensor

_SCALAR_TYPES = (bool, int, float, np.generic)
_PY_NUMBERS = (int, float)  # exact types: bool, a subclass of int, promotes differently
_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}


def category(dtype: np.dtype[Any]) -> int:
    """0 for bool, 1 for integers, 2 for floating point (PyTorch's promotion categories)."""
    try:
        return _CATEGORY[dtype.kind]
    except KeyError:
        raise TypeError(f"unsupported tensor dtype {dtype}") from None


def promote_types(a: np.dtype[Any], b: np.dtype[Any]) -> np.dtype[Any]:
    """`torch.promote_types`: the smallest dtype holding both; across categories the higher wins.

    Unlike NumPy, int64 with float32 gives float32 (not float64).
    """
    if a == b:
        return a
    ca, cb = category(a), category(b)
    if ca == cb:
        return np.promote_types(a, b)
    return a if ca > cb else b


def _combine(higher: np.dtype[Any] | None, lower: np.dtype[Any] | None) -> np.dtype[Any] | None:
    """Merge a higher-priority class's dtype with a lower one's (PyTorch's combine_categories)."""
    if higher is None:
        return lower
    if lower is None or category(higher) >= category(lower):
        return higher
    return promote_types(higher, lower)


def result_type(*operands: Any) -> np.dtype[Any]:
    """`torch.result_type` for any mix of ExTensors, NumPy arrays and Python/NumPy scalars."""
    dims: np.dtype[Any] | None = None
    zeros: np.dtype[Any] | None = None
    scalars: np.dtype[Any] | None = None
    for value in operands:
        if isinstance(value, (ExTensor, np.ndarray)):
            dtype = value.dtype
            if value.ndim:
                dims = dtype if dims is None else promote_types(dims, dtype)
            else:
                zeros = dtype if zeros is None else promote_types(zeros, dtype)
        elif isinstance(value, _SCALAR_TYPES):
            dtype = scalar_dtype(value)
            scalars = dtype if scalars is None else promote_types(scalars, dtype)
        else:
            dtype = ExTensor(value).dtype
            dims = dtype if dims is None else promote_types(dims, dtype)
    result = _combine(dims, _combine(zeros, scalars))
    if result is None:
        raise ValueError("result_type needs at least one operand")
    return result


def convert(value: Any, dtype: np.dtype[Any]) -> ExTensor:
    """`value` as an ExTensor of `dtype`; converting a tensor that requires gradients is recorded."""
    if isinstance(value, ExTensor):
        if value.dtype == dtype:
            return value
        if value.requires_grad and is_floating(dtype):
            result: ExTensor = dispatch.call("astype", value, dtype)
            return result
        return ExTensor._wrap(value.data.astype(dtype))
    return ExTensor._wrap(np.asarray(value.data if isinstance(value, ExTensor) else value, dtype=dtype))


def as_tensor(value: Any, like: ExTensor | None = None) -> ExTensor:
    """`value` as an ExTensor; Python scalars take the dtype of `like` when that is of their category
    or higher (as PyTorch does)."""
    if isinstance(value, ExTensor):
        return value
    if like is not None and isinstance(value, _SCALAR_TYPES):
        return convert(value, result_type(like, value))
    return ExTensor(value)


def as_tensors(a: Any, b: Any) -> tuple[ExTensor, ExTensor]:
    """Both operands of a binary operation as ExTensors of their common (PyTorch-promoted) dtype."""
    # fast paths: two tensors of one dtype, or a floating tensor and a Python number
    if isinstance(a, ExTensor):
        if isinstance(b, ExTensor):
            if a._data.dtype == b._data.dtype:
                return a, b
        elif type(b) in _PY_NUMBERS and a._data.dtype.kind == "f":
            return a, ExTensor._wrap(np.array(b, dtype=a._data.dtype))
    elif isinstance(b, ExTensor) and type(a) in _PY_NUMBERS and b._data.dtype.kind == "f":
        return ExTensor._wrap(np.array(a, dtype=b._data.dtype)), b
    dtype = result_type(a, b)
    return convert(a, dtype), convert(b, dtype)


def as_float_tensor(value: Any) -> ExTensor:
    """`value` as an ExTensor, converted to float32 when it is a bool or integer one (as PyTorch's
    transcendental functions compute integer inputs)."""
    x = as_tensor(value)
    return x if x.dtype.kind == "f" else convert(x, DEFAULT_FLOAT)


def as_float_tensors(*values: Any) -> list[ExTensor]:
    """The operands as ExTensors of their common dtype, made floating (default float32) if it is not."""
    dtype = result_type(*values)
    if not is_floating(dtype):
        dtype = DEFAULT_FLOAT
    return [convert(v, dtype) for v in values]


def unbroadcast(gradient: Array, shape: tuple[int, ...]) -> Array:
    """Sum `gradient` over the axes that broadcasting added or stretched to reach it from `shape`."""
    if gradient.shape == shape:
        return gradient
    extra = gradient.ndim - len(shape)
    if extra > 0:
        gradient = gradient.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and gradient.shape[i] != 1)
    if stretched:
        gradient = gradient.sum(axis=stretched, keepdims=True)
    return gradient.reshape(shape)


def normalize_axis(axis: int, ndim: int, what: str = "axis") -> int:
    """`axis` as a non-negative index into `ndim` dimensions, or a ValueError naming both."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {axis!r}")
    if not -max(ndim, 1) <= axis < max(ndim, 1):
        raise ValueError(f"{what} {axis} is out of range for a tensor with {ndim} dimensions")
    return int(axis) % ndim if ndim else 0


def normalize_axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """The axes an `axis` argument names (all of them for None or an empty sequence, as in PyTorch)."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        return (normalize_axis(axis, ndim),)
    if not isinstance(axis, Sequence):
        raise TypeError(f"axis must be an int, a sequence of ints or None, got {axis!r}")
    axes = tuple(normalize_axis(a, ndim) for a in axis)
    if len(set(axes)) != len(axes):
        raise ValueError(f"axis {tuple(axis)} names a dimension more than once")
    return axes if axes else tuple(range(ndim))


def record(result: Any, inputs: tuple[ExTensor, ...], backward: Backward) -> ExTensor:
    """Wrap `result` in an ExTensor and, when a tape is recording, record how to differentiate it.

    The output requires gradients when a tape is active, the output is floating and any input
    requires gradients; it is then recorded on every active tape (they nest). Outside a tape (or
    inside `no_grad`) nothing is recorded, and the output is a plain tensor.
    """
    output = ExTensor._wrap(result if type(result) is np.ndarray else np.asarray(result))
    tapes = active_tapes()
    if tapes and output._data.dtype.kind == "f":
        for t in inputs:
            if t.requires_grad:
                output.requires_grad = True
                output._is_leaf = False
                for tape in tapes:
                    tape.record(output, inputs, backward)
                break
    return output


def constant(result: Any) -> ExTensor:
    """Wrap the result of a non-differentiable operation (comparisons, argmax)."""
    return ExTensor._wrap(result if type(result) is np.ndarray else np.asarray(result))
