"""Samplers: the order in which a DataLoader visits a dataset's indices, epoch by epoch.

A sampler is any object with `__iter__` (yielding sample indices) and `__len__`; it may also have
`set_epoch(epoch)`, which the DataLoader calls before every epoch. Shuffling is a pure function of
`(seed, epoch)`, so an interrupted run that resumes at epoch k sees exactly the order an
uninterrupted run sees at epoch k.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any, Protocol, runtime_checkable

import numpy as np

from extensor.core.tensor import Array


@runtime_checkable
class Sampler(Protocol):
    """What a DataLoader needs from a sampler: the indices of one epoch, and how many there are.

    An optional `set_epoch(epoch: int)` method, when present, is called before each epoch.
    """

    def __iter__(self) -> Iterator[int]: ...

    def __len__(self) -> int: ...


def check_non_negative_int(value: Any, name: str) -> int:
    """`value` as a Python int; TypeError (not an integer, or a bool) or ValueError (negative), naming it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        kind = type(value).__name__
        raise TypeError(f"{name} must be a non-negative integer, got {value!r} of type {kind}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value}")
    return int(value)


def check_seed(seed: Any) -> int:
    """`seed` as a Python int; TypeError/ValueError unless it is a non-negative integer."""
    return check_non_negative_int(seed, "seed")


def check_epoch(epoch: Any) -> int:
    """`epoch` as a Python int; TypeError/ValueError unless it is a non-negative integer."""
    return check_non_negative_int(epoch, "epoch")


def resolve_seed(seed: Any = None, generator: Any = None) -> int:
    """The shuffling seed from an explicit `seed`, else one drawn from `generator`, else from OS entropy.

    Drawing from a generator advances it by one draw; with neither, the seed comes from the
    operating system (a fresh `numpy.random.default_rng()`), so the run is not reproducible
    unless that seed is saved (DataLoader keeps it in `seed` and `state_dict()`). Drawn seeds
    are below 2**63: they fit in an int64.
    """
    if seed is not None and generator is not None:
        raise ValueError("give either seed or generator, not both")
    if seed is not None:
        return check_seed(seed)
    if generator is not None:
        if not isinstance(generator, np.random.Generator):
            raise TypeError(f"generator must be a numpy.random.Generator, got {type(generator).__name__}")
        return int(generator.integers(0, 2**63 - 1))
    return int(np.random.default_rng().integers(0, 2**63 - 1))


def epoch_permutation(seed: int, epoch: int, length: int) -> Array:
    """The shuffled order of epoch `epoch`: `numpy.random.default_rng([seed, epoch]).permutation(length)`.

    A pure function of `(seed, epoch, length)`: any epoch can be reproduced without replaying
    the ones before it.
    """
    return np.random.default_rng([check_seed(seed), check_epoch(epoch)]).permutation(length)


class SequentialSampler:
    """Indices 0, 1, ..., len(data_source) - 1, the same every epoch."""

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def indices(self) -> Array:
        """This epoch's indices as an int64 array."""
        return np.arange(len(self.data_source), dtype=np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler:
    """A fresh permutation of the indices every epoch, a pure function of `(seed, epoch)`.

    Iterating yields `epoch_permutation(seed, epoch, len(data_source))` for the current `epoch`
    (0 until `set_epoch` is called); iterating twice without `set_epoch` repeats the order, as
    PyTorch's `DistributedSampler` does. The DataLoader calls `set_epoch` for you.

    Args:
        data_source: the dataset (anything with `__len__`).
        seed: non-negative integer; or
        generator: a `numpy.random.Generator` from which the seed is drawn once, now.
            With neither, the seed comes from fresh OS entropy (kept in `seed`).
    """

    def __init__(self, data_source: Sized, seed: int | None = None, generator: Any = None) -> None:
        self.data_source = data_source
        self.seed = resolve_seed(seed, generator)
        self._epoch = 0

    @property
    def epoch(self) -> int:
        """The epoch whose permutation iteration yields."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose permutation the next iteration yields."""
        self._epoch = check_epoch(epoch)

    def indices(self) -> Array:
        """This epoch's permutation as an int64 array."""
        return epoch_permutation(self.seed, self._epoch, len(self.data_source))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return len(self.data_source)
