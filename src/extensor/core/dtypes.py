"""Which NumPy dtypes an ExTensor holds, and how Python values become arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

#: The dtype Python floats (and lists of them) become, as in PyTorch.
DEFAULT_FLOAT = float32

#: Dtypes a gradient can flow through.
FLOATING = (np.dtype(np.float16), float32, float64)


def is_floating(dtype: np.dtype[Any]) -> bool:
    """True when `dtype` is a floating-point dtype that can carry gradients."""
    return bool(np.issubdtype(dtype, np.floating))


def scalar_dtype(value: Any) -> np.dtype[Any]:
    """The dtype PyTorch gives a Python or NumPy scalar: bool -> bool, int -> int64, float -> float32.

    Raises TypeError for anything else (complex numbers, strings, None...).
    """
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return int64
    if isinstance(value, (float, np.floating)):
        return DEFAULT_FLOAT
    raise TypeError(f"expected a bool, int or float scalar, got {value!r} of type {type(value).__name__}")


def to_array(value: Any, dtype: Any = None) -> np.ndarray[Any, Any]:
    """Convert `value` to a NumPy array following PyTorch's rules for `torch.tensor`.

    NumPy arrays keep their dtype; Python floats (and nested lists containing one) become
    float32, Python ints int64 and bools bool. An explicit `dtype` always wins. The result is
    always a bool, integer or floating array: anything else (strings, objects, complex) is a
    TypeError.
    """
    if dtype is not None:
        array = np.asarray(value, dtype=np.dtype(dtype))
    elif isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, np.generic):
        array = np.asarray(value)
    else:
        array = np.asarray(value)
        if array.dtype == float64:
            array = array.astype(DEFAULT_FLOAT)
        elif array.dtype.kind in "iu" and array.dtype != int64:
            array = array.astype(int64)
    if array.dtype.kind not in "fiub":
        raise TypeError(
            f"cannot make a tensor from {type(value).__name__} of dtype {array.dtype}; "
            "expected bool, integer or floating values"
        )
    return array
