"""DataLoader: batches like torch's, reproducible and resumable epochs, pluggable samplers, errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from extensor import ExTensor
from extensor.data import Batch, DataLoader, Subset, TensorDataset, epoch_permutation


def make_dataset(n: int, seed: int = 0) -> tuple[TensorDataset, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    inputs = rng.standard_normal((n, 3)).astype(np.float32)
    targets = rng.integers(0, 5, size=n)
    return TensorDataset(inputs, targets), inputs, targets


def epoch_targets(loader: DataLoader) -> np.ndarray:
    return np.concatenate([b.target.data for b in loader] or [np.zeros(0, np.int64)])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 40), batch_size=st.integers(1, 15), drop_last=st.booleans())
def test_sequential_batches_match_torch(n: int, batch_size: int, drop_last: bool) -> None:
    dataset, inputs, targets = make_dataset(n)
    ours = DataLoader(dataset, batch_size=batch_size, drop_last=drop_last)
    theirs = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(inputs), torch.from_numpy(targets)),
        batch_size=batch_size,
        drop_last=drop_last,
    )
    assert len(ours) == len(theirs)
    batches = list(ours)
    assert len(batches) == len(ours)
    for mine, (x, y) in zip(batches, theirs, strict=True):
        np.testing.assert_array_equal(mine.input.data, x.numpy())
        np.testing.assert_array_equal(mine.target.data, y.numpy())


def test_batch_is_a_named_pair_of_extensors() -> None:
    dataset, _, _ = make_dataset(10)
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert isinstance(batch, Batch) and isinstance(batch, tuple)
    assert isinstance(batch.input, ExTensor) and isinstance(batch.target, ExTensor)
    assert batch.input.dtype == np.float32 and batch.target.dtype == np.int64
    assert not batch.input.requires_grad
    x, y = batch
    assert x is batch.input and y is batch.target
    for x, y in DataLoader(dataset, batch_size=4):
        assert x.shape[0] == y.shape[0]


def test_shuffled_epoch_k_is_the_seeded_permutation() -> None:
    dataset, _, targets = make_dataset(37)
    loader = DataLoader(dataset, batch_size=8, shuffle=True, seed=123)
    for k in range(3):
        np.testing.assert_array_equal(epoch_targets(loader), targets[epoch_permutation(123, k, 37)])
        assert loader.epoch == k


def test_same_seed_same_batches_and_different_seed_differs() -> None:
    dataset, _, _ = make_dataset(50)
    runs = []
    for seed in (7, 7, 8):
        loader = DataLoader(dataset, batch_size=6, shuffle=True, seed=seed)
        runs.append([[b.input.data.copy() for b in loader] for _ in range(3)])
    for epoch in range(3):
        for a, b in zip(runs[0][epoch], runs[1][epoch], strict=True):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(runs[0][0][0], runs[2][0][0])
    assert not np.array_equal(runs[0][0][0], runs[0][1][0])  # a new order every epoch


def test_resume_at_epoch_k_sees_the_uninterrupted_order() -> None:
    dataset, _, _ = make_dataset(45)
    uninterrupted = DataLoader(dataset, batch_size=10, shuffle=True, seed=5, drop_last=True)
    full = [epoch_targets(uninterrupted) for _ in range(6)]
    resumed = DataLoader(dataset, batch_size=10, shuffle=True, seed=5, drop_last=True)
    resumed.set_epoch(3)
    for k in (3, 4, 5):
        np.testing.assert_array_equal(epoch_targets(resumed), full[k])
        assert resumed.epoch == k


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 40),
    batch_size=st.integers(1, 12),
    drop_last=st.booleans(),
    shuffle=st.booleans(),
    epoch=st.integers(0, 5),
    data=st.data(),
)
def test_start_batch_yields_the_rest_of_an_uninterrupted_epoch(
    n: int, batch_size: int, drop_last: bool, shuffle: bool, epoch: int, data: st.DataObject
) -> None:
    dataset, _, _ = make_dataset(n)
    seed = 3 if shuffle else None
    uninterrupted = DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed
    )
    uninterrupted.set_epoch(epoch)
    full, following = list(uninterrupted), list(uninterrupted)
    start = data.draw(st.integers(0, len(full)), label="start_batch")
    resumed = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed)
    resumed.set_epoch(epoch, start_batch=start)
    rest = list(resumed)
    assert resumed.epoch == epoch and len(rest) == len(full) - start
    for ours, theirs in zip(rest, full[start:], strict=True):
        np.testing.assert_array_equal(ours.input.data, theirs.input.data)
        np.testing.assert_array_equal(ours.target.data, theirs.target.data)
    # start_batch is for that one iteration: the next epoch is whole again
    for ours, theirs in zip(resumed, following, strict=True):
        np.testing.assert_array_equal(ours.target.data, theirs.target.data)
    assert resumed.epoch == epoch + 1


class CountingDataset(TensorDataset):
    """A TensorDataset that records every index the loader fetches (vectorised or one by one)."""

    fetched: list[int]

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        self.fetched.extend(int(i) for i in indices)
        return super().get_batch(indices)


@pytest.mark.parametrize("vectorised", [True, False])
def test_start_batch_fetches_only_the_remaining_samples(vectorised: bool) -> None:
    _, inputs, targets = make_dataset(23)
    counting = CountingDataset(inputs, targets)
    counting.fetched = []
    samples = [(inputs[i], targets[i]) for i in range(23)]
    fetched_one_by_one: list[int] = []

    class Recording:
        def __len__(self) -> int:
            return 23

        def __getitem__(self, index: int) -> Any:
            fetched_one_by_one.append(index)
            return samples[index]

    dataset: Any = counting if vectorised else Recording()
    loader = DataLoader(dataset, batch_size=5, shuffle=True, seed=8)
    loader.set_epoch(2, start_batch=3)
    rest = list(loader)
    order = epoch_permutation(8, 2, 23)
    fetched = counting.fetched if vectorised else fetched_one_by_one
    assert fetched == order[15:].tolist()
    np.testing.assert_array_equal(np.concatenate([b.target.data for b in rest]), targets[order[15:]])


def test_start_batch_with_a_custom_sampler() -> None:
    dataset, _, targets = make_dataset(21)
    sampler = RankSampler(21, rank=1, world=2, seed=9)
    loader = DataLoader(dataset, batch_size=4, sampler=sampler)
    loader.set_epoch(4, start_batch=1)
    np.testing.assert_array_equal(epoch_targets(loader), targets[epoch_permutation(9, 4, 21)[1::2][4:]])
    assert sampler.epochs == [4]


@pytest.mark.parametrize(
    ("epoch", "start_batch", "error", "message"),
    [
        (1, -1, ValueError, "start_batch must be a non-negative integer, got -1"),
        (1, 4, ValueError, "start_batch must be at most the 3 batches of an epoch, got 4"),
        (1, 1.0, TypeError, "start_batch must be a non-negative integer, got 1.0 of type float"),
        (1, True, TypeError, "start_batch must be a non-negative integer, got True"),
        (-2, 0, ValueError, "epoch must be a non-negative integer, got -2"),
    ],
)
def test_set_epoch_validates_before_changing(epoch: Any, start_batch: Any, error: type, message: str) -> None:
    dataset, _, targets = make_dataset(10)
    loader = DataLoader(dataset, batch_size=4, shuffle=True, seed=1)
    loader.set_epoch(6, start_batch=2)
    with pytest.raises(error, match=message):
        loader.set_epoch(epoch, start_batch=start_batch)
    assert loader.epoch == 6
    np.testing.assert_array_equal(epoch_targets(loader), targets[epoch_permutation(1, 6, 10)[8:]])


def test_state_dict_round_trip_resumes_with_an_entropy_seed() -> None:
    dataset, _, _ = make_dataset(30)
    first = DataLoader(dataset, batch_size=4, shuffle=True)
    assert isinstance(first.seed, int)
    assert first.state_dict() == {"epoch": 0, "seed": first.seed}
    for _ in range(2):
        epoch_targets(first)
    state = first.state_dict()
    assert state == {"epoch": 2, "seed": first.seed}
    expected = epoch_targets(first)
    second = DataLoader(dataset, batch_size=4, shuffle=True)
    second.load_state_dict(state)
    assert second.seed == first.seed and second.epoch == 2
    np.testing.assert_array_equal(epoch_targets(second), expected)


def test_explicit_set_epoch_every_epoch_does_not_double_advance() -> None:
    dataset, _, targets = make_dataset(20)
    loader = DataLoader(dataset, batch_size=3, shuffle=True, seed=2)
    for k in range(3):
        loader.set_epoch(k)
        np.testing.assert_array_equal(epoch_targets(loader), targets[epoch_permutation(2, k, 20)])
    loader.set_epoch(1)
    again = epoch_targets(loader)
    loader.set_epoch(1)
    np.testing.assert_array_equal(epoch_targets(loader), again)


def test_epoch_bookkeeping() -> None:
    dataset, _, _ = make_dataset(20)
    loader = DataLoader(dataset, batch_size=3, shuffle=True, seed=2)
    assert loader.epoch == 0
    iterator = iter(loader)
    assert loader.epoch == 0 and loader.state_dict()["epoch"] == 1
    next(iterator)  # abandoned part-way: the next iteration still starts a new epoch
    list(loader)
    assert loader.epoch == 1
    loader.set_epoch(7)
    assert loader.epoch == 7 and loader.state_dict()["epoch"] == 7
    list(loader)
    list(loader)
    assert loader.epoch == 8


def test_generator_seeds_once() -> None:
    dataset, _, _ = make_dataset(25)
    a = DataLoader(dataset, batch_size=5, shuffle=True, generator=np.random.default_rng(3))
    b = DataLoader(dataset, batch_size=5, shuffle=True, generator=np.random.default_rng(3))
    assert a.seed == b.seed
    for _ in range(2):
        np.testing.assert_array_equal(epoch_targets(a), epoch_targets(b))


class RankSampler:
    """A DistributedSampler-like sampler: every `world`-th index of the epoch's permutation."""

    def __init__(self, length: int, rank: int, world: int, seed: int) -> None:
        self.length, self.rank, self.world, self.seed = length, rank, world, seed
        self.epochs: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __iter__(self) -> Iterator[int]:
        order = epoch_permutation(self.seed, self.epochs[-1] if self.epochs else 0, self.length)
        return iter(order[self.rank :: self.world].tolist())

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world))


def test_custom_sampler_is_told_the_epoch() -> None:
    dataset, _, targets = make_dataset(21)
    samplers = [RankSampler(21, rank, 2, seed=9) for rank in range(2)]
    loaders = [DataLoader(dataset, batch_size=4, sampler=s) for s in samplers]
    assert [len(loader) for loader in loaders] == [3, 3]
    assert loaders[0].seed is None
    loaders[0].set_epoch(4)
    loaders[1].set_epoch(4)
    seen = np.concatenate([epoch_targets(loader) for loader in loaders])
    np.testing.assert_array_equal(np.sort(seen), np.sort(targets))
    np.testing.assert_array_equal(epoch_targets(loaders[0]), targets[epoch_permutation(9, 5, 21)[0::2]])
    assert samplers[0].epochs == [4, 5]


def test_plain_sampler_without_set_epoch() -> None:
    dataset, _, targets = make_dataset(6)
    loader = DataLoader(dataset, batch_size=4, sampler=[5, 0, 0, 2])
    np.testing.assert_array_equal(epoch_targets(loader), targets[[5, 0, 0, 2]])
    assert len(loader) == 1


class LyingSampler:
    def __init__(self, indices: list[int], length: int) -> None:
        self.indices, self.length = indices, length

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return self.length


@pytest.mark.parametrize(
    ("sampler", "error", "message"),
    [
        (LyingSampler([0, 6], 2), IndexError, r"sampler indices must lie in \[0, 6\), got 6"),
        (LyingSampler([0, -1], 2), IndexError, r"sampler indices must lie in \[0, 6\), got -1"),
        (LyingSampler([0, 1, 2], 2), ValueError, "the sampler yielded 3 indices but its len"),
    ],
)
def test_bad_sampler_output(sampler: Any, error: type, message: str) -> None:
    dataset, _, _ = make_dataset(6)
    with pytest.raises(error, match=message):
        list(DataLoader(dataset, sampler=sampler))


def test_duck_typed_dataset_uses_the_sample_path() -> None:
    samples = [(np.full((2, 2), i, dtype=np.float64), i % 3) for i in range(7)]
    batches = list(DataLoader(samples, batch_size=3))
    assert [b.input.shape for b in batches] == [(3, 2, 2), (3, 2, 2), (1, 2, 2)]
    assert batches[0].input.dtype == np.float64 and batches[0].target.dtype == np.int64
    np.testing.assert_array_equal(batches[2].target.data, [0])


def test_array_datasets_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, inputs, _ = make_dataset(12)

    def refuse(self: Any, index: int) -> Any:
        raise AssertionError("per-sample __getitem__ called")

    monkeypatch.setattr(TensorDataset, "__getitem__", refuse)
    subset = Subset(dataset, np.arange(12)[::-1])
    batches = list(DataLoader(subset, batch_size=5, shuffle=True, seed=0))
    np.testing.assert_array_equal(
        np.concatenate([b.input.data for b in batches]), inputs[::-1][epoch_permutation(0, 0, 12)]
    )


def test_samples_must_be_pairs() -> None:
    triples = TensorDataset(np.zeros(4), np.zeros(4), np.zeros(4))
    loader = DataLoader(triples, batch_size=2)
    with pytest.raises(ValueError, match=r"samples must be pairs; this dataset's samples have 3 field"):
        next(iter(loader))


def test_empty_dataset() -> None:
    loader = DataLoader(TensorDataset(np.zeros((0, 2)), np.zeros(0)), batch_size=4, shuffle=True, seed=1)
    assert len(loader) == 0 and list(loader) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be a positive integer, got 0"),
        ({"batch_size": 2.0}, TypeError, "batch_size must be a positive integer, got 2.0 of type float"),
        ({"batch_size": True}, TypeError, "batch_size must be a positive integer, got True"),
        ({"shuffle": "yes"}, TypeError, "shuffle must be a bool, got 'yes'"),
        ({"drop_last": 1}, TypeError, "drop_last must be a bool, got 1"),
        ({"shuffle": True, "seed": -1}, ValueError, "seed must be a non-negative integer, got -1"),
        ({"seed": 1, "generator": np.random.default_rng()}, ValueError, "either seed or generator"),
        ({"shuffle": True, "generator": 5}, TypeError, "generator must be a numpy.random.Generator"),
        ({"shuffle": True, "sampler": [0]}, ValueError, "sampler and shuffle=True are mutually exclusive"),
        ({"seed": 3, "sampler": [0]}, ValueError, "seed and generator only apply to shuffle=True"),
        ({"sampler": 5}, TypeError, "sampler must have __iter__ and __len__, got int"),
    ],
)
def test_constructor_errors(kwargs: dict[str, Any], error: type, message: str) -> None:
    dataset, _, _ = make_dataset(4)
    with pytest.raises(error, match=message):
        DataLoader(dataset, **kwargs)


def test_not_a_dataset() -> None:
    with pytest.raises(TypeError, match="expected a dataset with __len__ and __getitem__, got float"):
        DataLoader(1.5)


@pytest.mark.parametrize(
    ("shuffle", "state", "error", "message"),
    [
        (True, {"epoch": 1}, ValueError, r"exactly the keys 'epoch' and 'seed', got \['epoch'\]"),
        (True, {"epoch": 1, "seed": 2, "x": 0}, ValueError, "exactly the keys"),
        (True, {"epoch": -1, "seed": 2}, ValueError, "epoch must be a non-negative integer, got -1"),
        (True, {"epoch": 1, "seed": None}, ValueError, "the state's seed must be an integer, got None"),
        (True, {"epoch": 1, "seed": "2"}, TypeError, "seed must be a non-negative integer, got '2'"),
        (
            False,
            {"epoch": 1, "seed": 2},
            ValueError,
            "does not shuffle with a seed, but the state has seed 2",
        ),
        (True, [("epoch", 1)], TypeError, "state must be a mapping, got list"),
    ],
)
def test_load_state_dict_validates_before_changing(
    shuffle: bool, state: Any, error: type, message: str
) -> None:
    dataset, _, _ = make_dataset(4)
    loader = DataLoader(dataset, shuffle=shuffle, seed=11 if shuffle else None)
    loader.set_epoch(3)
    before = loader.state_dict()
    with pytest.raises(error, match=message):
        loader.load_state_dict(state)
    assert loader.state_dict() == before


def test_repr_and_len() -> None:
    dataset, _, _ = make_dataset(10)
    loader = DataLoader(dataset, batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert repr(loader).startswith("DataLoader(TensorDataset(10 samples: float32[3], int64[])")
