"""Samplers: the epoch permutation is a pure function of (seed, epoch)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extensor.data import RandomSampler, Sampler, SequentialSampler, epoch_permutation


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**64), epoch=st.integers(0, 10_000), length=st.integers(0, 200))
def test_epoch_permutation_is_a_pure_permutation(seed: int, epoch: int, length: int) -> None:
    order = epoch_permutation(seed, epoch, length)
    assert order.dtype == np.int64
    np.testing.assert_array_equal(np.sort(order), np.arange(length))
    np.testing.assert_array_equal(order, epoch_permutation(seed, epoch, length))
    np.testing.assert_array_equal(order, np.random.default_rng([seed, epoch]).permutation(length))


def test_epochs_and_seeds_give_different_orders() -> None:
    orders = {tuple(epoch_permutation(s, e, 50)) for s in range(3) for e in range(3)}
    assert len(orders) == 9


def test_random_sampler_follows_set_epoch() -> None:
    data = list(range(30))
    sampler = RandomSampler(data, seed=4)
    assert isinstance(sampler, Sampler) and len(sampler) == 30 and sampler.epoch == 0
    first = list(sampler)
    assert first == list(sampler)  # no set_epoch, no new order (DistributedSampler's contract)
    sampler.set_epoch(5)
    assert sampler.epoch == 5
    assert list(sampler) == epoch_permutation(4, 5, 30).tolist()
    np.testing.assert_array_equal(sampler.indices(), epoch_permutation(4, 5, 30))
    assert first == epoch_permutation(4, 0, 30).tolist()


def test_random_sampler_seed_sources() -> None:
    data = range(10)
    a = RandomSampler(data, generator=np.random.default_rng(1))
    b = RandomSampler(data, generator=np.random.default_rng(1))
    assert a.seed == b.seed and list(a) == list(b)
    fresh = RandomSampler(data)
    assert 0 <= fresh.seed < 2**63
    assert list(RandomSampler(data, seed=fresh.seed)) == list(fresh)


def test_sequential_sampler() -> None:
    sampler = SequentialSampler(range(4))
    assert isinstance(sampler, Sampler) and len(sampler) == 4
    assert list(sampler) == [0, 1, 2, 3]
    np.testing.assert_array_equal(sampler.indices(), np.arange(4))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"seed": -3}, ValueError, "seed must be a non-negative integer, got -3"),
        ({"seed": "1"}, TypeError, "seed must be a non-negative integer, got '1' of type str"),
        ({"seed": 1, "generator": np.random.default_rng()}, ValueError, "either seed or generator"),
        ({"generator": np.random.RandomState(0)}, TypeError, "numpy.random.Generator, got RandomState"),
    ],
)
def test_random_sampler_errors(kwargs: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        RandomSampler(range(3), **kwargs)


@pytest.mark.parametrize(
    ("epoch", "error"), [(-1, ValueError), (1.0, TypeError), (False, TypeError), (None, TypeError)]
)
def test_set_epoch_errors(epoch: Any, error: type) -> None:
    sampler = RandomSampler(range(3), seed=0)
    with pytest.raises(error, match="epoch must be a non-negative integer"):
        sampler.set_epoch(epoch)
    assert sampler.epoch == 0
