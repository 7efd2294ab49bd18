"""Functions that create tensors: from data, filled, ranges, random draws, and across DLPack.

Dtype rules follow PyTorch: Python floats give float32, ints int64, bools bool; NumPy arrays
keep their dtype; an explicit `dtype` (a NumPy dtype, its name, or `float`/`int`/`bool`) wins.
Shapes may be given as separate ints or as one sequence: `zeros(2, 3)` is `zeros((2, 3))`.
Random functions draw from `generator` (a `numpy.random.Generator`) or, when None, from the
library's default generator (`extensor.core.random`). Only floating tensors can `requires_grad`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from extensor.core import dispatch
from extensor.core.dtypes import DEFAULT_FLOAT, int64, scalar_dtype, to_array
from extensor.core.random import resolve_generator
from extensor.core.tensor import Array, ExTensor

_CPU = 1  # kDLCPU in DLPack's device enumeration


def _dtype(dtype: Any, default: np.dtype[Any] | None = None) -> np.dtype[Any] | None:
    """`dtype` as a NumPy dtype that a tensor can hold, or `default` when it is None."""
    if dtype is None:
        return default
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a NumPy dtype (or its name), got {dtype!r}") from None
    if resolved.kind not in "biuf":
        raise TypeError(f"tensors hold bool, integer or floating dtypes, got {resolved}")
    return resolved


def parse_dims(args: tuple[Any, ...], what: str) -> tuple[int, ...]:
    """`f(2, 3)` and `f((2, 3))` both mean the dimensions (2, 3); each must be an int (not a bool).

    Shared by the creation functions and the shape operations (reshape, permute), which take
    their dimensions either way, as PyTorch's do.
    """
    if len(args) == 1 and isinstance(args[0], (Sequence, np.ndarray)) and not isinstance(args[0], str):
        args = tuple(args[0])
    dims = []
    for d in args:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"{what} must be ints, got {d!r} in {args}")
        dims.append(int(d))
    return tuple(dims)


def _shape(shape: tuple[Any, ...], name: str) -> tuple[int, ...]:
    """The shape `name` was given (see `parse_dims`), every dimension non-negative."""
    dims = parse_dims(shape, f"{name}: a shape's dimensions")
    for d in dims:
        if d < 0:
            raise ValueError(f"{name}: negative dimension {d} in shape {dims}")
    return dims


def _make(array: Array, requires_grad: bool) -> ExTensor:
    return ExTensor(array, requires_grad=requires_grad)


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> ExTensor:
    """A new tensor holding a *copy* of `data` (a number, nested lists, an array, or a tensor)."""
    source = data.data if isinstance(data, ExTensor) else data
    array = to_array(source, _dtype(dtype))
    return _make(np.array(array, copy=True), requires_grad)


def zeros(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> ExTensor:
    """A tensor of zeros (float32 unless `dtype` is given)."""
    return _make(np.zeros(_shape(shape, "zeros"), dtype=_dtype(dtype, DEFAULT_FLOAT)), requires_grad)


def ones(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> ExTensor:
    """A tensor of ones (float32 unless `dtype` is given)."""
    return _make(np.ones(_shape(shape, "ones"), dtype=_dtype(dtype, DEFAULT_FLOAT)), requires_grad)


def _fill_dtype(fill_value: Any) -> np.dtype[Any]:
    value = fill_value.item() if isinstance(fill_value, ExTensor) else fill_value
    try:
        return scalar_dtype(value)
    except TypeError:
        raise TypeError(f"fill_value must be a bool, int or float, got {fill_value!r}") from None


def full(shape: Any, fill_value: Any, dtype: Any = None, requires_grad: bool = False) -> ExTensor:
    """A tensor of `shape` filled with `fill_value`; the dtype follows the value (float32, int64, bool)."""
    dims = _shape((shape,), "full")
    resolved = _dtype(dtype) or _fill_dtype(fill_value)
    value = fill_value.item() if isinstance(fill_value, ExTensor) else fill_value
    return _make(np.full(dims, value, dtype=resolved), requires_grad)


def arange(
    start: float, end: float | None = None, step: float = 1, dtype: Any = None, requires_grad: bool = False
) -> ExTensor:
    """Values start, start+step, ... below `end` (`arange(n)` is 0..n-1), as `torch.arange`.

    The length is ceil((end - start) / step). The dtype is int64 when start, end and step are all
    integers, float32 otherwise, unless `dtype` is given.
    """
    if end is None:
        start, end = 0, start
    for name, value in (("start", start), ("end", end), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"arange's {name} must be a number, got {value!r}")
        if not np.isfinite(value):
            raise ValueError(f"arange's {name} must be finite, got {value}")
    if step == 0:
        raise ValueError("arange's step must be nonzero")
    if (end - start) * step < 0:
        raise ValueError(f"arange's step {step} has the wrong sign for the range from {start} to {end}")
    integral = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    resolved = _dtype(dtype) or (int64 if integral else DEFAULT_FLOAT)
    values: Array
    if integral:
        values = np.arange(int(start), int(end), int(step), dtype=np.int64)
    else:
        # computed in float64 and rounded once, as PyTorch does for float32 ranges
        count = int(np.ceil((float(end) - float(start)) / float(step)))
        values = float(start) + float(step) * np.arange(count, dtype=np.float64)
    return _make(values.astype(resolved, copy=False), requires_grad)


def _float_dtype(dtype: Any, name: str) -> np.dtype[Any]:
    resolved = _dtype(dtype, DEFAULT_FLOAT)
    assert resolved is not None
    if resolved.kind != "f" or resolved.itemsize < 4:
        raise TypeError(f"{name} draws float32 or float64 values, got dtype {resolved}")
    return resolved


def randn(
    *shape: Any, dtype: Any = None, generator: np.random.Generator | None = None, requires_grad: bool = False
) -> ExTensor:
    """Samples of the standard normal distribution N(0, 1)."""
    dims = _shape(shape, "randn")
    resolved = _float_dtype(dtype, "randn")
    return _make(resolve_generator(generator).standard_normal(dims, dtype=resolved), requires_grad)


def rand(
    *shape: Any, dtype: Any = None, generator: np.random.Generator | None = None, requires_grad: bool = False
) -> ExTensor:
    """Samples of the uniform distribution on [0, 1)."""
    dims = _shape(shape, "rand")
    resolved = _float_dtype(dtype, "rand")
    return _make(resolve_generator(generator).random(dims, dtype=resolved), requires_grad)


def _like(reference: Any, name: str) -> ExTensor:
    if isinstance(reference, ExTensor):
        return reference
    if isinstance(reference, np.ndarray):
        return ExTensor(reference)
    raise TypeError(f"{name} needs an ExTensor or a NumPy array, got {type(reference).__name__}")


def zeros_like(reference: Any, dtype: Any = None, requires_grad: bool = False) -> ExTensor:
    """Zeros with the shape (and, unless given, the dtype) of `reference`."""
    ref = _like(reference, "zeros_like")
    return zeros(ref.shape, dtype=_dtype(dtype, ref.dtype), requires_grad=requires_grad)


def ones_like(reference: Any, dtype: Any = None, requires_grad: bool = False) -> ExTensor:
    """Ones with the shape (and, unless given, the dtype) of `reference`."""
    ref = _like(reference, "ones_like")
    return ones(ref.shape, dtype=_dtype(dtype, ref.dtype), requires_grad=requires_grad)


def full_like(reference: Any, fill_value: Any, dtype: Any = None, requires_grad: bool = False) -> ExTensor:
    """`fill_value` everywhere, with the shape (and, unless given, the dtype) of `reference`."""
    ref = _like(reference, "full_like")
    _fill_dtype(fill_value)
    return full(ref.shape, fill_value, dtype=_dtype(dtype, ref.dtype), requires_grad=requires_grad)


def randn_like(
    reference: Any,
    dtype: Any = None,
    generator: np.random.Generator | None = None,
    requires_grad: bool = False,
) -> ExTensor:
    """Standard normal samples with the shape (and, unless given, the floating dtype) of `reference`."""
    ref = _like(reference, "randn_like")
    return randn(ref.shape, dtype=_dtype(dtype, ref.dtype), generator=generator, requires_grad=requires_grad)


def rand_like(
    reference: Any,
    dtype: Any = None,
    generator: np.random.Generator | None = None,
    requires_grad: bool = False,
) -> ExTensor:
    """Uniform [0, 1) samples with the shape (and, unless given, the floating dtype) of `reference`."""
    ref = _like(reference, "rand_like")
    return rand(ref.shape, dtype=_dtype(dtype, ref.dtype), generator=generator, requires_grad=requires_grad)


def from_numpy(array: Array, requires_grad: bool = False) -> ExTensor:
    """A tensor sharing `array`'s memory (no copy), keeping its dtype, as `torch.from_numpy`."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy needs a numpy.ndarray, got {type(array).__name__}")
    _dtype(array.dtype)
    return ExTensor(array, requires_grad=requires_grad)


def from_dlpack(source: Any, requires_grad: bool = False) -> ExTensor:
    """A tensor over the memory of a DLPack producer (a torch or JAX array, an ExTensor...), without a copy.

    The producer must live on the CPU and hold a bool, integer or float dtype. A torch tensor that
    requires gradients is detached first (its values are shared; its graph is not).
    """
    if isinstance(source, ExTensor):
        return ExTensor(source.data, requires_grad=requires_grad)
    if not hasattr(source, "__dlpack__"):
        raise TypeError(f"from_dlpack needs an object with __dlpack__, got {type(source).__name__}")
    if getattr(source, "requires_grad", False) and callable(getattr(source, "detach", None)):
        source = source.detach()
    device = source.__dlpack_device__() if hasattr(source, "__dlpack_device__") else (_CPU, 0)
    if int(device[0]) != _CPU:
        raise ValueError(f"from_dlpack needs memory on the CPU, got DLPack device {tuple(device)}")
    try:
        array = np.from_dlpack(source)
    except (TypeError, BufferError, RuntimeError) as error:
        message = f"cannot share the memory of {type(source).__name__} through DLPack: {error}"
        raise TypeError(message) from error
    _dtype(array.dtype)
    return ExTensor(array, requires_grad=requires_grad)


def concatenate(tensors: Sequence[Any], axis: int = 0) -> ExTensor:
    """Join tensors along an existing `axis` (differentiable; dtypes are promoted as in PyTorch)."""
    result: ExTensor = dispatch.call("concatenate", tensors, axis)
    return result


cat = concatenate


def stack(tensors: Sequence[Any], axis: int = 0) -> ExTensor:
    """Join tensors of one shape along a new `axis` (differentiable; dtypes are promoted as in PyTorch)."""
    result: ExTensor = dispatch.call("stack", tensors, axis)
    return result
