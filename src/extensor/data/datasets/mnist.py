"""Image datasets stored as MNIST-format IDX files in a local folder: `IDXDataset`, `MNIST`, `FashionMNIST`.

Nothing is ever downloaded: the files must already be on disk.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from extensor.core.tensor import Array, ExTensor
from extensor.data.dataset import Dataset, check_index
from extensor.data.datasets.idx import read_idx

_SCALE = np.float32(255.0)


class IDXDataset(Dataset):
    """Grey-scale images and class labels read from a pair of MNIST-format IDX files.

    The files are looked up in `root`, then in `root/<folder>/raw` (torchvision's layout, so a
    folder torchvision downloaded into works as is), each as `<name>` or `<name>.gz`. The default
    names are MNIST's: `train-images-idx3-ubyte` and `train-labels-idx1-ubyte` for the training
    split, `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte` for the test split.

    A sample is `(image, target)`: the image float32 of shape (1, H, W) scaled to [0, 1]
    (pixel / 255, as torchvision's `ToTensor`), the target an int64 class index. Batches are
    converted from the uint8 pixels on the fly, one vectorised operation per batch.

    Args:
        root: the folder holding the files.
        train: the training split (True) or the test split (False).
        images, labels: file names overriding the defaults (without ".gz").

    Attributes:
        data: uint8 array (N, H, W) of the raw pixels. targets: int64 array (N,).
        classes: the class names; index = label.

    Raises:
        FileNotFoundError: `root` or a file is missing.
        ValueError: a file that is not valid IDX (see `read_idx`), images that are not a uint8
            array of shape (N, H, W), labels that are not N integers, or a label out of range.
    """

    #: torchvision's folder name for this dataset (`root/<folder>/raw` is searched too).
    folder: str | None = None
    #: the class names, index = label; None means "0", "1", ... up to the largest label.
    known_classes: tuple[str, ...] | None = None

    def __init__(
        self,
        root: str | os.PathLike[str],
        train: bool = True,
        *,
        images: str | None = None,
        labels: str | None = None,
    ) -> None:
        if not isinstance(train, (bool, np.bool_)):
            raise TypeError(f"train must be a bool, got {train!r} of type {type(train).__name__}")
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{type(self).__name__}: the folder {root} does not exist")
        split = "train" if train else "t10k"
        images_path = self._find(root, images or f"{split}-images-idx3-ubyte")
        labels_path = self._find(root, labels or f"{split}-labels-idx1-ubyte")
        pixels, label_array = read_idx(images_path), read_idx(labels_path)
        if pixels.dtype != np.uint8 or pixels.ndim != 3:
            raise ValueError(
                f"{images_path}: images must be uint8 of shape (N, H, W), got {pixels.dtype} "
                f"of shape {pixels.shape}"
            )
        if label_array.dtype.kind not in "iu" or label_array.ndim != 1:
            raise ValueError(
                f"{labels_path}: labels must be integers of shape (N,), got {label_array.dtype} of shape "
                f"{label_array.shape}"
            )
        if label_array.shape[0] != pixels.shape[0]:
            raise ValueError(
                f"{images_path} holds {pixels.shape[0]} images but {labels_path} holds "
                f"{label_array.shape[0]} labels"
            )
        targets = label_array.astype(np.int64)
        if targets.size and int(targets.min()) < 0:
            raise ValueError(f"{labels_path}: labels must be non-negative, found {int(targets.min())}")
        largest = int(targets.max()) if targets.size else -1
        if self.known_classes is not None and largest >= len(self.known_classes):
            raise ValueError(
                f"{labels_path}: {type(self).__name__} has {len(self.known_classes)} classes, "
                f"found label {largest}"
            )
        self.root = root
        self.train = bool(train)
        self.data: Array = pixels
        self.targets: Array = targets
        self.classes: tuple[str, ...] = (
            self.known_classes
            if self.known_classes is not None
            else tuple(str(k) for k in range(largest + 1))
        )

    def _find(self, root: Path, name: str) -> Path:
        folders = [root] + ([root / self.folder / "raw"] if self.folder else [])
        for folder in folders:
            for candidate in (folder / name, folder / f"{name}.gz"):
                if candidate.is_file():
                    return candidate
        tried = " or ".join(str(folder / f"{name}[.gz]") for folder in folders)
        raise FileNotFoundError(
            f"{type(self).__name__}: no {tried}; extensor never downloads, put the IDX files there"
        )

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, index: int) -> tuple[ExTensor, ExTensor]:
        position = check_index(index, len(self))
        image = self.data[position][None].astype(np.float32) / _SCALE
        return ExTensor(image), ExTensor(self.targets[position : position + 1].reshape(()))

    def get_batch(self, indices: Array) -> tuple[Array, ...]:
        """Images (B, 1, H, W) float32 in [0, 1] and targets (B,) int64, indexed all at once."""
        return self.data[indices][:, None].astype(np.float32) / _SCALE, self.targets[indices]

    def __repr__(self) -> str:
        height, width = self.data.shape[1:]
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, train={self.train}: {len(self)} images of "
            f"1x{height}x{width}, {len(self.classes)} classes)"
        )


class MNIST(IDXDataset):
    """The MNIST handwritten digits (LeCun, Bottou, Bengio & Haffner, 1998) from local IDX files.

    60,000 training and 10,000 test images of 28x28; see `IDXDataset` for the files looked up,
    the sample format and the errors. Never downloads.
    """

    folder = "MNIST"
    known_classes = (
        "0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
        "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine",
    )  # fmt: skip


class FashionMNIST(IDXDataset):
    """Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017): Zalando article images in MNIST's IDX format.

    Same files, sizes and sample format as `MNIST` (see `IDXDataset`). Never downloads.
    """

    folder = "FashionMNIST"
    known_classes = (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    )  # fmt: skip
