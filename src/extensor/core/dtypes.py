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


def to_array(value: Any, dtype: Any = None) -> np.ndarray[Any, Any]:
    """Convert `value` to a NumPy array following PyTorch's rules for `torch.tensor`.

    NumPy arrays keep their dtype; Python floats (and nested lists containing one) become
    float32, Python ints int64 and bools bool. An explicit `dtype` always wins.
    """
    if dtype is not None:
        return np.asarray(value, dtype=np.dtype(dtype))
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, np.generic):
        return np.asarray(value)
    array = np.asarray(value)
    if array.dtype == float64:
        return array.astype(DEFAULT_FLOAT)
    if array.dtype.kind in "iu" and array.dtype != int64:
        return array.astype(int64)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"cannot make a tensor from {type(value).__name__} (array dtype {array.dtype})")
    return array
