"""Digits: the bundled 8x8 digits, its baked stratified split, and agreement with scikit-learn's copy."""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from extensor.data import DataLoader
from extensor.data.datasets import Digits

FILES = resources.files("extensor.data.datasets").joinpath("_files")


def test_shapes_dtypes_and_scaling() -> None:
    train, test = Digits(), Digits(train=False)
    assert (len(train), len(test)) == (1438, 359)
    image, target = train[0]
    assert image.shape == (1, 8, 8) and image.dtype == np.float32
    assert target.shape == () and target.dtype == np.int64
    for split in (train, test):
        assert split.data.shape == (len(split), 8, 8) and split.data.dtype == np.uint8
        assert split.targets.dtype == np.int64 and set(split.targets.tolist()) == set(range(10))
        inputs, targets = split.arrays
        np.testing.assert_array_equal(inputs, split.data[:, None].astype(np.float32) / 16)
        assert inputs.min() == 0.0 and inputs.max() == 1.0
        np.testing.assert_array_equal(targets, split.targets)
    assert train.classes == tuple("0123456789")


def test_split_is_stratified_about_80_20() -> None:
    train, test = Digits(), Digits(train=False)
    train_counts = np.bincount(train.targets, minlength=10)
    test_counts = np.bincount(test.targets, minlength=10)
    totals = train_counts + test_counts
    assert totals.sum() == 1797 and totals.min() >= 170
    np.testing.assert_array_equal(test_counts, [round(0.2 * c) for c in totals])


def test_instances_do_not_share_mutable_state() -> None:
    first = Digits()
    first.data[0] = 99
    first.arrays[0][0] = -1.0
    second = Digits()
    assert second.data.max() <= 16 and second.arrays[0].min() == 0.0


def test_labels_belong_to_their_images() -> None:
    # a nearest-centroid classifier fitted on train separates the test split well only if the
    # labels are aligned with the images and both splits come from the same distribution
    train, test = Digits(), Digits(train=False)
    x_train = train.data.reshape(len(train), -1).astype(np.float64)
    x_test = test.data.reshape(len(test), -1).astype(np.float64)
    centroids = np.stack([x_train[train.targets == k].mean(axis=0) for k in range(10)])
    distances = ((x_test[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    accuracy = (distances.argmin(axis=1) == test.targets).mean()
    assert accuracy > 0.85


def test_loader_over_digits() -> None:
    loader = DataLoader(Digits(), batch_size=64, shuffle=True, seed=0)
    batches = list(loader)
    assert len(batches) == len(loader) == 23
    assert batches[0].input.shape == (64, 1, 8, 8) and batches[-1].input.shape == (30, 1, 8, 8)
    assert sum(b.target.shape[0] for b in batches) == 1438


def test_bundle_is_shipped_with_its_licence_note() -> None:
    assert FILES.joinpath("digits.npz").is_file()
    note = FILES.joinpath("README.md").read_text()
    assert "CC BY 4.0" in note and "Alpaydin" in note and "Kaynak" in note


def test_train_must_be_bool() -> None:
    with pytest.raises(TypeError, match="train must be a bool, got 1 of type int"):
        Digits(train=1)  # type: ignore[arg-type]


needs_sklearn = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None, reason="scikit-learn (the data's source) is not installed"
)


@needs_sklearn
def test_bundle_equals_scikit_learn_copy() -> None:
    from sklearn.datasets import load_digits

    source = load_digits()
    train, test = Digits(), Digits(train=False)
    ours = np.concatenate(
        [np.concatenate([s.data.reshape(len(s), 64), s.targets[:, None]], axis=1) for s in (train, test)]
    ).astype(np.int64)
    theirs = np.concatenate([source.data, source.target[:, None]], axis=1).astype(np.int64)
    np.testing.assert_array_equal(ours[np.lexsort(ours.T)], theirs[np.lexsort(theirs.T)])


@needs_sklearn
def test_bundle_is_what_the_script_builds() -> None:
    spec = importlib.util.spec_from_file_location("make_digits", Path(str(FILES.joinpath("make_digits.py"))))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = module.build()
    with FILES.joinpath("digits.npz").open("rb") as handle, np.load(handle, allow_pickle=False) as stored:
        assert sorted(stored.files) == sorted(built)
        for name, array in built.items():
            assert stored[name].dtype == array.dtype
            np.testing.assert_array_equal(stored[name], array)
