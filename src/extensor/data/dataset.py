"""Datasets: indexable collections of samples, and the array-backed ones the loader batches fast.

A dataset is anything with `__len__` and `__getitem__(i)` returning one sample, a tuple of fields
(`(input, target)` for supervised data). Subclasses of `Dataset` may also implement
`get_batch(indices)`, which returns a whole batch as one array per field: array-backed datasets
index their arrays with the batch's index array at once, so a `DataLoader` runs no per-sample
Python loop for them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from extensor.core.dtypes import to_array
from extensor.core.tensor import Array, ExTensor
from extensor.data.collate import collate

#: One sample: a tuple of fields, e.g. `(input, target)`.
Sample = tuple[Any, ...]


def check_index(index: Any, length: int) -> int:
    """Normalise a sample index like a Python sequence does: an int in [-length, length).

    Raises TypeError for anything that is not an integer (bools included) and IndexError for an
    integer out of range, so that `for sample in dataset` stops where it should.
    """
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"dataset indices must be integers, got {index!r} of type {type(index).__name__}")
    position = int(index)
    if not -length <= position < length:
        raise IndexError(f"index {position} is out of range for a dataset of {length} samples")
    return position + length if position < 0 else position


def as_index_array(indices: Any, length: int, what: str = "indices") -> Array:
    """`indices` as a 1-D int64 array, each in [0, length); a clear error otherwise."""
    array = np.asarray(indices)
    if array.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got an array of shape {array.shape}")
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{what} must be integers, got dtype {array.dtype}")
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= length:
        bad = low if low < 0 else high
        raise IndexError(f"{what} must lie in [0, {length}), got {bad}")
    return array.astype(np.int64, copy=False)


class Dataset(ABC):
    """A map-style dataset: `len(dataset)` samples, `dataset[i]` the i-th one as a tuple of fields.

    Subclasses implement `__len__` and `__getitem__`. They may override `get_batch` with a
    vectorised version; the default stacks `dataset[i]` for each index.
    """

    @abstractmethod
    def __len__(self) -> int:
        """The number of samples."""

    @abstractmethod
    def __getitem__(self, index: int) -> Sample:
        """The sample at `index` (a tuple of fields)."""

    def get_batch(self, indices: Array) -> tuple[Array, ...]:
        """The samples at `indices` (1-D int64 array, each in range) stacked field by field.

        Returns one array per field whose first dimension is `len(indices)`.
        """
        return collate([self[int(i)] for i in indices])


class TensorDataset(Dataset):
    """Samples are the rows of some arrays: `dataset[i] == tuple(t[i] for t in tensors)`.

    Args:
        *tensors: ExTensors or array-likes (Python floats become float32, ints int64), all with
            the same first dimension, the number of samples. ExTensors are used through their
            arrays (shared, not copied); batches are copies, so no gradient flows into them.

    Raises:
        ValueError: no tensors, a zero-dimensional one, or first dimensions that differ.
        TypeError: a tensor whose dtype is not bool, integer or floating point.
    """

    def __init__(self, *tensors: Any) -> None:
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        arrays: list[Array] = []
        for position, tensor in enumerate(tensors):
            try:
                arrays.append(tensor.data if isinstance(tensor, ExTensor) else to_array(tensor))
            except TypeError as error:
                raise TypeError(
                    f"TensorDataset tensor {position} has dtype {np.asarray(tensor).dtype}; expected bool, "
                    f"integer or floating point ({error})"
                ) from None
        for position, array in enumerate(arrays):
            if array.ndim == 0:
                raise ValueError(
                    f"TensorDataset tensor {position} is zero-dimensional; every tensor needs a first "
                    "dimension indexing the samples"
                )
        lengths = [int(a.shape[0]) for a in arrays]
        if len(set(lengths)) != 1:
            shapes = ", ".join(str(tuple(a.shape)) for a in arrays)
            raise ValueError(f"TensorDataset tensors must have the same first dimension, got shapes {shapes}")
        self._arrays: tuple[Array, ...] = tuple(arrays)
        self._length = lengths[0]

    @property
    def arrays(self) -> tuple[Array, ...]:
        """The underlying NumPy arrays, one per field."""
        return self._arrays

    @property
    def tensors(self) -> tuple[ExTensor, ...]:
        """The fields as ExTensors sharing the underlying arrays (PyTorch's attribute)."""
        return tuple(ExTensor(a) for a in self._arrays)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> tuple[ExTensor, ...]:
        position = check_index(index, self._length)
        return tuple(ExTensor(np.asarray(a[position])) for a in self._arrays)

    def get_batch(self, indices: Array) -> tuple[Array, ...]:
        """Every array indexed with the whole index array at once (fancy indexing: copies)."""
        return tuple(a[indices] for a in self._arrays)

    def __repr__(self) -> str:
        fields = ", ".join(f"{a.dtype}{list(a.shape[1:])}" for a in self._arrays)
        return f"{type(self).__name__}({self._length} samples: {fields})"


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order: `subset[i] == dataset[indices[i]]`.

    Args:
        dataset: any dataset (`__len__` and `__getitem__`).
        indices: integers in [0, len(dataset)); repeats are allowed.

    Batches of a subset of an array-backed dataset stay on the fast, vectorised path.
    """

    def __init__(self, dataset: Any, indices: Sequence[int] | Array) -> None:
        check_dataset(dataset)
        self.dataset = dataset
        self.indices: Array = as_index_array(indices, len(dataset), "Subset indices")

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, index: int) -> Sample:
        return self.dataset[int(self.indices[check_index(index, len(self))])]

    def get_batch(self, indices: Array) -> tuple[Array, ...]:
        """The parent dataset's batch at the mapped indices (vectorised when the parent is)."""
        return fetch(self.dataset, self.indices[indices])

    def __repr__(self) -> str:
        return f"Subset({len(self)} of {self.dataset!r})"


def check_dataset(dataset: Any) -> None:
    """Raise TypeError unless `dataset` has `__len__` and `__getitem__`."""
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise TypeError(f"expected a dataset with __len__ and __getitem__, got {type(dataset).__name__}")


def _defining_class(cls: type, name: str) -> type:
    """The class in `cls`'s MRO whose body defines `name`."""
    return next(klass for klass in cls.__mro__ if name in klass.__dict__)


def fetch(dataset: Any, indices: Array) -> tuple[Array, ...]:
    """The batch of `dataset` at `indices` (1-D int64, each in range), one array per field.

    Uses the dataset's vectorised `get_batch` unless a subclass overrode `__getitem__` below the
    class that defined `get_batch` (the vectorised path would then skip the new `__getitem__`);
    any other dataset is read sample by sample and collated.
    """
    if isinstance(dataset, Dataset):
        cls = type(dataset)
        getitem_owner = _defining_class(cls, "__getitem__")
        batch_owner = _defining_class(cls, "get_batch")
        if getitem_owner is batch_owner or not issubclass(getitem_owner, batch_owner):
            return dataset.get_batch(indices)
    return collate([dataset[int(i)] for i in indices])
