"""`random_split`: cut a dataset into non-overlapping random subsets of given lengths or fractions."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from extensor.data.dataset import Subset, check_dataset
from extensor.data.sampler import check_seed


def _split_lengths(lengths: Sequence[Any], total: int) -> list[int]:
    """Counts from `lengths`, with PyTorch's rules for fractions (see `random_split`)."""
    for position, value in enumerate(lengths):
        if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ):
            raise TypeError(
                f"lengths must be integers or fractions, got {value!r} of type {type(value).__name__} "
                f"at index {position}"
            )
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = []
        for position, fraction in enumerate(lengths):
            if not 0 <= fraction <= 1:
                raise ValueError(f"fraction {fraction} at index {position} is not between 0 and 1")
            counts.append(math.floor(total * fraction))
        # hand out what flooring left over, one by one from the first split on (as PyTorch does)
        for i in range(total - sum(counts)):
            counts[i % len(counts)] += 1
        for position, count in enumerate(counts):
            if count == 0:
                warnings.warn(
                    f"split {position} of random_split is empty (length 0)", UserWarning, stacklevel=3
                )
        return counts
    if math.isclose(sum(lengths), 1):
        raise ValueError(
            f"fractions {list(lengths)} sum to {sum(lengths)!r}, more than 1; as in PyTorch, fractions must "
            "sum to 1 without exceeding it"
        )
    counts = []
    for position, value in enumerate(lengths):
        if not isinstance(value, (int, np.integer)):
            raise ValueError(
                f"lengths that do not sum to 1 must be integers, got {value!r} at index {position}"
            )
        if value < 0:
            raise ValueError(f"lengths must be non-negative, got {value} at index {position}")
        counts.append(int(value))
    if sum(counts) != total:
        raise ValueError(f"lengths {list(lengths)} sum to {sum(counts)}, but the dataset has {total} samples")
    return counts


def random_split(
    dataset: Any,
    lengths: Sequence[int | float],
    generator: np.random.Generator | None = None,
    seed: int | None = None,
) -> list[Subset]:
    """Randomly split `dataset` into non-overlapping `Subset`s of the given lengths (PyTorch's rules).

    `lengths` are sample counts summing to `len(dataset)`, or fractions summing to 1: then split
    i gets `floor(fraction_i * len(dataset))` samples and the remainder is handed out one by one,
    round robin from the first split (a split of length 0 warns). As in PyTorch, lengths that sum
    to 1 are read as fractions. The split follows one permutation of all indices, drawn from
    `generator`, or from `numpy.random.default_rng(seed)`, or from fresh entropy when neither
    is given: the same seed always gives the same split.

    Raises:
        TypeError: a length that is neither an integer nor a fraction, a bad generator or seed.
        ValueError: counts that do not sum to `len(dataset)`, a negative count, a fraction outside
            [0, 1], fractions whose sum exceeds 1 by rounding (PyTorch refuses them too), a
            non-integral length when they do not sum to 1, or both `generator` and `seed`.
    """
    check_dataset(dataset)
    if isinstance(lengths, (str, bytes)) or not isinstance(lengths, Sequence) or len(lengths) == 0:
        raise TypeError(f"lengths must be a non-empty sequence of integers or fractions, got {lengths!r}")
    if generator is not None and seed is not None:
        raise ValueError("give either generator or seed, not both")
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise TypeError(f"generator must be a numpy.random.Generator, got {type(generator).__name__}")
    rng = (
        generator
        if generator is not None
        else np.random.default_rng(None if seed is None else check_seed(seed))
    )
    total = len(dataset)
    counts = _split_lengths(lengths, total)
    order = rng.permutation(total)
    ends = np.cumsum(counts)
    return [Subset(dataset, order[end - count : end]) for end, count in zip(ends, counts, strict=True)]
