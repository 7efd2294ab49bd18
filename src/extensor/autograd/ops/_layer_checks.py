"""Argument checks shared by the fused layer operations (linear, conv, pooling, normalisation, losses).

Each check raises a ValueError or TypeError that names the offending value and what was expected,
before the operation computes or changes anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from extensor.core.dtypes import is_floating
from extensor.core.tensor import ExTensor


def require_floating(name: str, tensor: ExTensor, op: str) -> None:
    """Raise TypeError unless `tensor` holds floating-point values."""
    if not is_floating(tensor.dtype):
        raise TypeError(f"{op}: {name} must be a floating-point tensor, got dtype {tensor.dtype}")


def require_same_dtype(
    op: str, reference: tuple[str, ExTensor], *others: tuple[str, ExTensor | None]
) -> None:
    """Raise TypeError unless every tensor in `others` has the dtype of `reference` (as torch requires)."""
    ref_name, ref = reference
    for name, tensor in others:
        if tensor is not None and tensor.dtype != ref.dtype:
            raise TypeError(
                f"{op}: {name} has dtype {tensor.dtype} but {ref_name} has dtype {ref.dtype}; "
                "they must match (convert one with .astype)"
            )


def pair(name: str, value: Any, op: str, minimum: int) -> tuple[int, int]:
    """`value` (an int or a pair of ints) as a pair of ints, each at least `minimum`."""
    items: Sequence[Any]
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        items = (value, value)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        items = value
    else:
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    result = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, np.integer)):
            raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
        if item < minimum:
            raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
        result.append(int(item))
    return result[0], result[1]


def reduction_mode(reduction: Any, op: str) -> str:
    """Check that `reduction` is one of 'mean', 'sum' or 'none'."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return str(reduction)


def spatial_input(x: ExTensor, op: str) -> bool:
    """Check that `x` is (N, C, H, W) or unbatched (C, H, W); True when it is unbatched."""
    if x.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a 4-D (N, C, H, W) or 3-D (C, H, W) input, got shape {x.shape}")
    return x.ndim == 3
