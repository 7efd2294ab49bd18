"""DistributedSampler: torch's shards without shuffling; disjoint, equal-length shards of one permutation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from extensor.data import DataLoader, TensorDataset, epoch_permutation
from extensor.distributed import DistributedSampler


@settings(max_examples=60, deadline=None)
@given(length=st.integers(1, 50), replicas=st.integers(1, 7), drop_last=st.booleans(), data=st.data())
def test_unshuffled_shards_equal_torch(
    length: int, replicas: int, drop_last: bool, data: st.DataObject
) -> None:
    if drop_last and length < replicas:
        return
    rank = data.draw(st.integers(0, replicas - 1))
    ours = DistributedSampler(length, num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last)
    theirs = torch.utils.data.DistributedSampler(
        range(length), num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last
    )
    assert list(ours) == list(theirs)
    assert len(ours) == len(theirs)


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(1, 60),
    replicas=st.integers(1, 6),
    drop_last=st.booleans(),
    seed=st.integers(0, 2**31),
    epoch=st.integers(0, 100),
)
def test_shuffled_shards_partition_one_permutation(
    length: int, replicas: int, drop_last: bool, seed: int, epoch: int
) -> None:
    if drop_last and length < replicas:
        return
    shards = []
    for rank in range(replicas):
        sampler = DistributedSampler(length, num_replicas=replicas, rank=rank, seed=seed, drop_last=drop_last)
        sampler.set_epoch(epoch)
        shards.append(sampler.indices())
    assert len({len(shard) for shard in shards}) == 1
    interleaved = np.stack(shards, axis=1).reshape(-1)  # step k of rank r is element k*R + r
    order = epoch_permutation(seed, epoch, length)
    if drop_last:
        np.testing.assert_array_equal(interleaved, order[: len(interleaved)])
    else:
        np.testing.assert_array_equal(interleaved, np.resize(order, len(interleaved)))
        assert set(interleaved.tolist()) == set(range(length))


def test_one_replica_visits_the_order_of_a_shuffling_loader() -> None:
    dataset = TensorDataset(np.arange(20.0).reshape(10, 2), np.arange(10))
    loader = DataLoader(dataset, batch_size=3, shuffle=True, seed=5)
    sampled = DataLoader(dataset, batch_size=3, sampler=DistributedSampler(dataset, 1, 0, seed=5))
    for _ in range(2):
        for a, b in zip(loader, sampled, strict=True):
            np.testing.assert_array_equal(a.target.data, b.target.data)


def test_epochs_differ_and_repeat() -> None:
    sampler = DistributedSampler(100, num_replicas=2, rank=1, seed=3)
    first = sampler.indices()
    sampler.set_epoch(1)
    assert not np.array_equal(first, sampler.indices())
    sampler.set_epoch(0)
    np.testing.assert_array_equal(first, sampler.indices())


def test_defaults_come_from_the_world() -> None:
    sampler = DistributedSampler(list(range(5)))
    assert (sampler.num_replicas, sampler.rank) == (1, 0)
    assert sorted(sampler) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dataset": 10, "num_replicas": 0, "rank": 0}, ValueError, "num_replicas must be an integer >= 1"),
        ({"dataset": 10, "num_replicas": 2, "rank": 2}, ValueError, r"rank must be in \[0, 2\), got 2"),
        ({"dataset": 10, "num_replicas": 2, "rank": -1}, ValueError, "rank must be an integer >= 0, got -1"),
        ({"dataset": 10, "num_replicas": 2.0, "rank": 0}, TypeError, "num_replicas must be an integer"),
        ({"dataset": 10, "num_replicas": 2, "rank": 0, "seed": -3}, ValueError, "seed must be a non-neg"),
        ({"dataset": 3, "num_replicas": 4, "rank": 0, "drop_last": True}, ValueError, "leave nothing"),
        ({"dataset": object(), "num_replicas": 2, "rank": 0}, TypeError, "must have a length"),
        ({"dataset": -1, "num_replicas": 2, "rank": 0}, ValueError, "dataset size must be an integer >= 0"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        DistributedSampler(**kwargs)  # type: ignore[arg-type]


def test_bad_epoch() -> None:
    sampler = DistributedSampler(10, 2, 0)
    with pytest.raises(ValueError, match="epoch must be a non-negative integer, got -1"):
        sampler.set_epoch(-1)
    assert sampler.epoch == 0
