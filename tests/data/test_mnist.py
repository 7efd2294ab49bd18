"""IDXDataset / MNIST / FashionMNIST on small IDX files the tests write."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from extensor.data import DataLoader
from extensor.data.datasets import MNIST, FashionMNIST, IDXDataset

WriteIdx = Callable[..., Path]


def make_split(
    write: WriteIdx, prefix: str, count: int, seed: int, folder: str = "", gz: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 6, 5), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count, dtype=np.uint8)
    write(f"{folder}{prefix}-images-idx3-ubyte", images, gz=gz)
    write(f"{folder}{prefix}-labels-idx1-ubyte", labels, gz=gz)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("train", [True, False])
def test_mnist_reads_its_split(train: bool, gz: bool, idx_file: WriteIdx, tmp_path: Path) -> None:
    train_images, train_labels = make_split(idx_file, "train", 11, seed=1, gz=gz)
    test_images, test_labels = make_split(idx_file, "t10k", 4, seed=2, gz=gz)
    images, labels = (train_images, train_labels) if train else (test_images, test_labels)
    dataset = MNIST(tmp_path, train=train)
    assert len(dataset) == len(labels)
    np.testing.assert_array_equal(dataset.data, images)
    assert dataset.targets.dtype == np.int64
    np.testing.assert_array_equal(dataset.targets, labels)
    assert dataset.classes[3] == "3 - three" and len(dataset.classes) == 10
    image, target = dataset[2]
    assert image.shape == (1, 6, 5) and image.dtype == np.float32
    # torchvision's ToTensor: uint8 -> float32 / 255
    expected = torch.from_numpy(images[2]).unsqueeze(0).float().div(255).numpy()
    np.testing.assert_array_equal(image.data, expected)
    assert target.shape == () and target.dtype == np.int64 and target.item() == labels[2]


def test_batches_equal_stacked_samples(idx_file: WriteIdx, tmp_path: Path) -> None:
    images, labels = make_split(idx_file, "train", 23, seed=3)
    dataset = MNIST(tmp_path)
    batches = list(DataLoader(dataset, batch_size=5, shuffle=True, seed=4))
    order = np.random.default_rng([4, 0]).permutation(23)
    seen = np.concatenate([b.target.data for b in batches])
    np.testing.assert_array_equal(seen, labels[order])
    first = batches[0]
    assert first.input.shape == (5, 1, 6, 5) and first.input.dtype == np.float32
    stacked = np.stack([dataset[int(i)][0].data for i in order[:5]])
    np.testing.assert_array_equal(first.input.data, stacked)
    np.testing.assert_array_equal(first.input.data, images[order[:5], None] / np.float32(255))


def test_torchvision_layout_and_fashion_classes(idx_file: WriteIdx, tmp_path: Path) -> None:
    make_split(idx_file, "t10k", 3, seed=5, folder="FashionMNIST/raw/", gz=True)
    dataset = FashionMNIST(tmp_path, train=False)
    assert len(dataset) == 3 and dataset.classes[9] == "Ankle boot"
    with pytest.raises(FileNotFoundError, match=r"MNIST: no .*t10k-images-idx3-ubyte\[\.gz\].*MNIST/raw"):
        MNIST(tmp_path, train=False)


def test_generic_idx_dataset_with_custom_names(idx_file: WriteIdx, tmp_path: Path) -> None:
    idx_file("letters-images", np.zeros((4, 2, 2), dtype=np.uint8))
    idx_file("letters-labels", np.array([0, 25, 3, 3], dtype=np.int32))
    dataset = IDXDataset(tmp_path, images="letters-images", labels="letters-labels")
    assert len(dataset.classes) == 26 and dataset.classes[25] == "25"
    np.testing.assert_array_equal(dataset.targets, [0, 25, 3, 3])


def test_missing_folder_and_files(idx_file: WriteIdx, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"the folder .*absent does not exist"):
        MNIST(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="never downloads"):
        MNIST(tmp_path)
    idx_file("train-images-idx3-ubyte", np.zeros((2, 3, 3), dtype=np.uint8))
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        MNIST(tmp_path)


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (
            np.zeros((2, 3, 3), np.float32),
            np.zeros(2, np.uint8),
            r"images must be uint8 of shape \(N, H, W\)",
        ),
        (np.zeros((2, 9), np.uint8), np.zeros(2, np.uint8), r"got uint8 of shape \(2, 9\)"),
        (np.zeros((2, 3, 3), np.uint8), np.zeros(3, np.uint8), "holds 2 images but .* holds 3 labels"),
        (
            np.zeros((2, 3, 3), np.uint8),
            np.zeros((2, 1), np.uint8),
            r"labels must be integers of shape \(N,\)",
        ),
        (np.zeros((2, 3, 3), np.uint8), np.zeros(2, np.float32), "labels must be integers"),
        (np.zeros((2, 3, 3), np.uint8), np.array([1, 10], np.uint8), "MNIST has 10 classes, found label 10"),
        (np.zeros((2, 3, 3), np.uint8), np.array([1, -1], np.int8), "labels must be non-negative, found -1"),
    ],
)
def test_invalid_contents(
    images: np.ndarray, labels: np.ndarray, message: str, idx_file: WriteIdx, tmp_path: Path
) -> None:
    idx_file("train-images-idx3-ubyte", images)
    idx_file("train-labels-idx1-ubyte", labels)
    with pytest.raises(ValueError, match=message):
        MNIST(tmp_path)


def test_bad_magic_surfaces_from_the_dataset(idx_file: WriteIdx, tmp_path: Path) -> None:
    make_split(idx_file, "train", 3, seed=0)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte: not an IDX file"):
        MNIST(tmp_path)


def test_train_must_be_bool(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="train must be a bool, got 'yes'"):
        MNIST(tmp_path, train="yes")  # type: ignore[arg-type]


def test_index_errors(idx_file: WriteIdx, tmp_path: Path) -> None:
    make_split(idx_file, "train", 3, seed=0)
    dataset = MNIST(tmp_path)
    np.testing.assert_array_equal(dataset[-1][0].data, dataset[2][0].data)
    with pytest.raises(IndexError, match="index 3 is out of range for a dataset of 3 samples"):
        dataset[3]
    with pytest.raises(TypeError, match=r"dataset indices must be integers, got 1\.0"):
        dataset[1.0]  # type: ignore[index]
