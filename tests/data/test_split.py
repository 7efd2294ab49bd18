"""random_split: lengths exactly as torch computes them, a partition, determinism, errors."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from extensor.data import Subset, TensorDataset, random_split


def torch_lengths(n: int, lengths: list[Any]) -> list[int] | str:
    """The split sizes torch produces, or the name of the error it raises."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parts = torch.utils.data.random_split(
                range(n), lengths, generator=torch.Generator().manual_seed(0)
            )
        except (TypeError, ValueError) as error:
            return type(error).__name__
    return [len(p) for p in parts]


def our_lengths(n: int, lengths: list[Any]) -> list[int] | str:
    """The split sizes random_split produces, or the name of the error it raises."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parts = random_split(TensorDataset(np.arange(n)), lengths, seed=0)
        except (TypeError, ValueError) as error:
            return type(error).__name__
    return [len(p) for p in parts]


@settings(max_examples=80, deadline=None)
@given(n=st.integers(0, 300), weights=st.lists(st.integers(0, 50), min_size=1, max_size=6))
def test_fraction_lengths_match_torch(n: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        weights = [1, *weights[1:]]
    fractions = [w / sum(weights) for w in weights]  # may sum to 1 + 1 ulp: both refuse that
    assert our_lengths(n, fractions) == torch_lengths(n, fractions)


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(0, 40), min_size=1, max_size=5))
def test_integer_lengths_match_torch(counts: list[int]) -> None:
    n = sum(counts)
    assert our_lengths(n, counts) == torch_lengths(n, counts)


@pytest.mark.parametrize(
    ("n", "lengths"),
    [
        (5, [0, 1]),
        (10, [0.3, 0.3, 0.4]),
        (7, [1.0]),
        (3, [0.5, 0.5]),
        (0, [14 / 113, 46 / 113, 46 / 113, 7 / 113]),
    ],
)
def test_torch_quirks(n: int, lengths: list[Any]) -> None:
    # integers summing to 1 are fractions; fractions summing to 1 + 1 ulp are refused, as in torch
    assert our_lengths(n, lengths) == torch_lengths(n, lengths)


def test_empty_split_warns_like_torch() -> None:
    with pytest.warns(UserWarning, match="of random_split is empty") as caught:
        random_split(TensorDataset(np.arange(2)), [0.9, 0.05, 0.05], seed=1)
    assert [str(w.message) for w in caught] == [
        f"split {i} of random_split is empty (length 0)" for i in (1, 2)
    ]
    assert all(w.filename == __file__ for w in caught)  # points at the caller


def test_split_is_a_partition_following_one_permutation() -> None:
    dataset = TensorDataset(np.arange(50) * 3)
    parts = random_split(dataset, [0.5, 0.3, 0.2], seed=11)
    assert all(isinstance(p, Subset) and p.dataset is dataset for p in parts)
    joined = np.concatenate([p.indices for p in parts])
    np.testing.assert_array_equal(joined, np.random.default_rng(11).permutation(50))
    assert [len(p) for p in parts] == [25, 15, 10]
    np.testing.assert_array_equal(parts[1].get_batch(np.arange(15))[0], joined[25:40] * 3)


def test_seed_and_generator_are_deterministic() -> None:
    dataset = TensorDataset(np.arange(40))
    a = random_split(dataset, [30, 10], seed=5)
    b = random_split(dataset, [30, 10], seed=5)
    c = random_split(dataset, [30, 10], seed=6)
    np.testing.assert_array_equal(a[0].indices, b[0].indices)
    assert not np.array_equal(a[0].indices, c[0].indices)
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    np.testing.assert_array_equal(
        random_split(dataset, [0.25, 0.75], generator=g1)[1].indices,
        random_split(dataset, [0.25, 0.75], generator=g2)[1].indices,
    )
    unseeded = [np.concatenate([p.indices for p in random_split(dataset, [20, 20])]) for _ in range(2)]
    assert sorted(unseeded[0]) == list(range(40))


@pytest.mark.parametrize(
    ("lengths", "kwargs", "error", "message"),
    [
        ([3, 4], {}, ValueError, r"lengths \[3, 4\] sum to 7, but the dataset has 10 samples"),
        ([12, -2], {}, ValueError, "lengths must be non-negative, got -2 at index 1"),
        ([1.5, -0.5], {}, ValueError, "fraction 1.5 at index 0 is not between 0 and 1"),
        ([0.5, 0.4], {}, ValueError, "lengths that do not sum to 1 must be integers, got 0.5 at index 0"),
        ([14 / 113, 46 / 113, 46 / 113, 7 / 113], {}, ValueError, "sum to 1.0000000000000002, more than 1"),
        ([5, "5"], {}, TypeError, "lengths must be integers or fractions, got '5' of type str at index 1"),
        ([True, 9], {}, TypeError, "got True of type bool at index 0"),
        ([], {}, TypeError, "lengths must be a non-empty sequence"),
        ("55", {}, TypeError, "lengths must be a non-empty sequence"),
        ([5, 5], {"seed": 1, "generator": np.random.default_rng()}, ValueError, "either generator or seed"),
        ([5, 5], {"seed": -1}, ValueError, "seed must be a non-negative integer, got -1"),
        ([5, 5], {"seed": 1.0}, TypeError, "seed must be a non-negative integer, got 1.0"),
        ([5, 5], {"generator": 3}, TypeError, "generator must be a numpy.random.Generator, got int"),
    ],
)
def test_errors(lengths: Any, kwargs: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        random_split(TensorDataset(np.arange(10)), lengths, **kwargs)


def test_generator_untouched_on_error() -> None:
    generator = np.random.default_rng(3)
    state = generator.bit_generator.state
    with pytest.raises(ValueError, match="sum to"):
        random_split(TensorDataset(np.arange(10)), [3, 3], generator=generator)
    assert generator.bit_generator.state == state


def test_not_a_dataset() -> None:
    with pytest.raises(TypeError, match="expected a dataset with __len__ and __getitem__, got int"):
        random_split(5, [2, 3])
