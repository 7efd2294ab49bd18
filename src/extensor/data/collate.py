"""Collation: a list of samples becomes one stacked array per field (the per-sample fallback path)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from extensor.core.dtypes import to_array
from extensor.core.tensor import Array, ExTensor


def _fields(sample: Any) -> tuple[Any, ...]:
    """A sample's fields: a tuple or list is a sequence of fields, anything else one field."""
    return tuple(sample) if isinstance(sample, (tuple, list)) else (sample,)


def _as_array(value: Any) -> Array:
    """One field value as an array (ExTensor's array; Python floats float32, ints int64)."""
    return value.data if isinstance(value, ExTensor) else to_array(value)


def collate(samples: Sequence[Any]) -> tuple[Array, ...]:
    """Stack samples field by field: `collate([(x0, y0), (x1, y1)]) == (stack([x0, x1]), stack([y0, y1]))`.

    A sample is a tuple or list of fields (anything else counts as one field). Each field may
    be an ExTensor, a NumPy array or scalar, or a Python number (floats become float32, ints
    int64, as in `extensor.tensor`). Returns one array per field with a new leading batch
    dimension.

    Raises:
        ValueError: no samples, samples with different numbers of fields, or a field whose
            values have different shapes.
    """
    if len(samples) == 0:
        raise ValueError("cannot collate an empty list of samples")
    rows = [_fields(s) for s in samples]
    arity = len(rows[0])
    for position, row in enumerate(rows):
        if len(row) != arity:
            raise ValueError(
                f"samples must all have the same number of fields: sample 0 has {arity}, "
                f"sample {position} has {len(row)}"
            )
    batch = []
    for field in range(arity):
        arrays = [_as_array(row[field]) for row in rows]
        first = arrays[0].shape
        for position, array in enumerate(arrays):
            if array.shape != first:
                raise ValueError(
                    f"field {field} has shape {first} in sample 0 but {array.shape} in sample {position}; "
                    "samples of one batch must have equal shapes"
                )
        batch.append(np.stack(arrays))
    return tuple(batch)
