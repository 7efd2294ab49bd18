"""Dataset, TensorDataset, Subset and collate: contents, torch parity, the fast path, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from extensor import ExTensor
from extensor.data import Dataset, Subset, TensorDataset, collate
from extensor.data.dataset import fetch


def test_tensor_dataset_matches_torch() -> None:
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((7, 3, 2))
    targets = rng.integers(0, 4, size=7)
    ours = TensorDataset(ExTensor(inputs), targets)
    theirs = torch.utils.data.TensorDataset(torch.from_numpy(inputs), torch.from_numpy(targets))
    assert len(ours) == len(theirs) == 7
    for i in [0, 3, 6, -1, -7]:
        for mine, reference in zip(ours[i], theirs[i], strict=True):
            assert isinstance(mine, ExTensor)
            assert mine.shape == tuple(reference.shape)
            np.testing.assert_array_equal(mine.data, reference.numpy())
    x, y = ours[2]
    assert x.dtype == np.float64 and y.dtype == np.int64 and y.shape == ()


def test_tensor_dataset_converts_like_tensor() -> None:
    dataset = TensorDataset([[0.5, 1.5], [2.5, 3.5]], [1, 2])
    x, y = dataset.arrays
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert [t.shape for t in dataset.tensors] == [(2, 2), (2,)]


def test_tensor_dataset_batches_are_copies() -> None:
    inputs = np.arange(12.0).reshape(6, 2)
    dataset = TensorDataset(inputs, np.arange(6))
    x, _ = dataset.get_batch(np.array([4, 1, 4]))
    np.testing.assert_array_equal(x, inputs[[4, 1, 4]])
    x[:] = -1
    assert inputs.min() == 0


@pytest.mark.parametrize(
    ("tensors", "error", "message"),
    [
        ((), ValueError, "needs at least one tensor"),
        ((np.zeros((3, 2)), np.zeros(4)), ValueError, r"same first dimension, got shapes \(3, 2\), \(4,\)"),
        ((np.zeros(3), np.float32(1.0)), ValueError, "tensor 1 is zero-dimensional"),
        ((np.array(["a", "b"]),), TypeError, "tensor 0 has dtype <U1; expected bool, integer or floating"),
        ((np.zeros(2), [{}, {}]), TypeError, "cannot make a tensor"),
    ],
)
def test_tensor_dataset_errors(tensors: tuple[Any, ...], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        TensorDataset(*tensors)


@pytest.mark.parametrize(
    ("index", "error", "message"),
    [
        (5, IndexError, "index 5 is out of range for a dataset of 5 samples"),
        (-6, IndexError, "index -6 is out of range"),
        (1.0, TypeError, "dataset indices must be integers, got 1.0 of type float"),
        (True, TypeError, "got True of type bool"),
        (slice(0, 2), TypeError, "dataset indices must be integers"),
    ],
)
def test_index_errors(index: Any, error: type, message: str) -> None:
    dataset = TensorDataset(np.zeros((5, 2)), np.zeros(5))
    with pytest.raises(error, match=message):
        dataset[index]


def test_iteration_stops_at_the_end() -> None:
    dataset = TensorDataset(np.arange(3), np.arange(3) * 10)
    assert [(int(x), int(y)) for x, y in dataset] == [(0, 0), (1, 10), (2, 20)]


def test_subset_maps_indices_like_torch() -> None:
    base = TensorDataset(np.arange(10) * 2, np.arange(10))
    indices = [9, 0, 3, 3]
    ours = Subset(base, indices)
    theirs = torch.utils.data.Subset(
        torch.utils.data.TensorDataset(torch.arange(10) * 2, torch.arange(10)), indices
    )
    assert len(ours) == len(theirs) == 4
    for i in range(4):
        assert [int(t) for t in ours[i]] == [int(t) for t in theirs[i]]
    x, _ = ours.get_batch(np.array([3, 0]))
    np.testing.assert_array_equal(x, [6, 18])
    nested = Subset(ours, [1, 0])
    np.testing.assert_array_equal(nested.get_batch(np.array([0, 1]))[1], [0, 9])


@pytest.mark.parametrize(
    ("indices", "error", "message"),
    [
        ([0, 10], IndexError, r"Subset indices must lie in \[0, 10\), got 10"),
        ([-1], IndexError, r"Subset indices must lie in \[0, 10\), got -1"),
        ([0.5], TypeError, "Subset indices must be integers, got dtype float64"),
        ([[0, 1]], ValueError, r"Subset indices must be one-dimensional, got an array of shape \(1, 2\)"),
    ],
)
def test_subset_errors(indices: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        Subset(TensorDataset(np.zeros(10)), indices)
    with pytest.raises(TypeError, match="expected a dataset with __len__ and __getitem__, got int"):
        Subset(3, [0])


def test_empty_subset() -> None:
    subset = Subset(TensorDataset(np.zeros(4)), [])
    assert len(subset) == 0


class Squares(Dataset):
    """A dataset with only __len__ and __getitem__: samples (float, int)."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.calls = 0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        self.calls += 1
        return np.full(2, index * 0.5, dtype=np.float64), index * index


def test_default_get_batch_collates_samples() -> None:
    dataset = Squares(5)
    x, y = dataset.get_batch(np.array([3, 1]))
    np.testing.assert_array_equal(x, [[1.5, 1.5], [0.5, 0.5]])
    assert x.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_array_equal(y, [9, 1])
    assert dataset.calls == 2


class NoisyDigits(TensorDataset):
    """A TensorDataset subclass that changes samples in __getitem__ only."""

    def __getitem__(self, index: int) -> tuple[ExTensor, ...]:
        x, y = super().__getitem__(index)
        return ExTensor(x.data + 100), y


class FastNoisy(NoisyDigits):
    """... and one that also provides the matching vectorised path."""

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        x, y = self.arrays
        return x[indices] + 100, y[indices]


def test_fetch_respects_an_overridden_getitem() -> None:
    arrays = (np.arange(4.0), np.arange(4))
    slow = NoisyDigits(*arrays)
    np.testing.assert_array_equal(fetch(slow, np.array([1, 2]))[0], [101, 102])
    np.testing.assert_array_equal(fetch(Subset(slow, [3, 2]), np.array([0]))[0], [103])
    fast = FastNoisy(*arrays)
    np.testing.assert_array_equal(fetch(fast, np.array([1, 2]))[0], [101, 102])


def test_fetch_uses_the_vectorised_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Any, index: int) -> Any:
        raise AssertionError("the per-sample path was taken")

    dataset = TensorDataset(np.arange(6.0), np.arange(6))
    monkeypatch.setattr(TensorDataset, "__getitem__", refuse)
    np.testing.assert_array_equal(fetch(Subset(dataset, [5, 4]), np.array([1, 0]))[0], [4.0, 5.0])


def test_fetch_duck_typed_dataset() -> None:
    samples = [(np.ones(2) * i, float(i)) for i in range(4)]
    x, y = fetch(samples, np.array([2, 0]))
    np.testing.assert_array_equal(x, [[2, 2], [0, 0]])
    assert y.dtype == np.float32  # Python floats -> float32, as extensor.tensor does


def test_collate_fields() -> None:
    x, y, z = collate([(ExTensor(np.ones(3)), 1, True), [np.zeros(3), 2, False]])
    assert x.shape == (2, 3) and y.dtype == np.int64 and z.dtype == np.bool_
    (single,) = collate([np.ones(2), np.zeros(2)])
    assert single.shape == (2, 2)


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        ([], "cannot collate an empty list"),
        ([(1, 2), (1, 2, 3)], "sample 0 has 2, sample 1 has 3"),
        ([(np.ones(2), 0), (np.ones(3), 1)], r"field 0 has shape \(2,\) in sample 0 but \(3,\) in sample 1"),
    ],
)
def test_collate_errors(samples: list[Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        collate(samples)


@settings(max_examples=30, deadline=None)
@given(
    length=st.integers(1, 40),
    picks=st.lists(st.integers(0, 10_000), min_size=1, max_size=20),
)
def test_fast_and_sample_paths_agree(length: int, picks: list[int]) -> None:
    rng = np.random.default_rng(length)
    arrays = (rng.standard_normal((length, 3)).astype(np.float32), rng.integers(0, 5, length))
    indices = np.array(picks) % length
    fast = TensorDataset(*arrays).get_batch(indices)
    slow = collate([TensorDataset(*arrays)[int(i)] for i in indices])
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
