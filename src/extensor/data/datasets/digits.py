"""`Digits`: the 8x8 handwritten digits (1,797 images, 10 classes), bundled with the package."""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np

from extensor.core.tensor import Array
from extensor.data.dataset import TensorDataset

_FILE = "_files/digits.npz"
_SCALE = np.float32(16.0)  # pixel values are block counts in 0..16


@cache
def _load_bundle() -> tuple[Array, Array, Array]:
    """`(images uint8 (1797, 8, 8), labels uint8 (1797,), train bool (1797,))`, read-only, read once."""
    with (
        resources.files(__package__).joinpath(_FILE).open("rb") as handle,
        np.load(handle, allow_pickle=False) as bundle,
    ):
        images, labels, train = bundle["images"], bundle["labels"], bundle["train"]
    if images.shape != (1797, 8, 8) or images.dtype != np.uint8 or int(images.max()) > 16:
        raise ValueError(f"the bundled {_FILE} is corrupt: images {images.dtype}{images.shape}")
    if labels.shape != (1797,) or labels.dtype != np.uint8 or int(labels.max()) > 9:
        raise ValueError(f"the bundled {_FILE} is corrupt: labels {labels.dtype}{labels.shape}")
    if train.shape != (1797,) or train.dtype != np.bool_:
        raise ValueError(f"the bundled {_FILE} is corrupt: train flags {train.dtype}{train.shape}")
    for array in (images, labels, train):
        array.flags.writeable = False
    return images, labels, train


class Digits(TensorDataset):
    """The 8x8 handwritten digits of the UCI "Optical Recognition of Handwritten Digits" data.

    1,797 images of the digits 0..9 (about 180 each) by 13 writers, from Alpaydin & Kaynak (1998),
    UCI Machine Learning Repository, CC BY 4.0; the copy scikit-learn ships, bundled here so it
    works offline right after install. A stratified train/test split of 1,438 / 359 samples
    (20% of every class held out) is stored in the bundled file, so it never changes.

    A sample is `(image, target)`: the image float32 of shape (1, 8, 8) scaled to [0, 1]
    (pixel count / 16), the target an int64 class index.

    Args:
        train: the training split (True) or the test split (False).

    Attributes:
        data: uint8 array (N, 8, 8) of the raw pixel values 0..16.
        targets: int64 array (N,) of class indices.
        classes: the class names "0".."9" (index = digit).
    """

    classes: tuple[str, ...] = tuple(str(digit) for digit in range(10))

    def __init__(self, train: bool = True) -> None:
        if not isinstance(train, (bool, np.bool_)):
            raise TypeError(f"train must be a bool, got {train!r} of type {type(train).__name__}")
        images, labels, in_train = _load_bundle()
        chosen = in_train if train else ~in_train
        self.train = bool(train)
        self.data: Array = images[chosen]
        self.targets: Array = labels[chosen].astype(np.int64)
        super().__init__(self.data[:, None].astype(np.float32) / _SCALE, self.targets)

    def __repr__(self) -> str:
        return f"Digits(train={self.train}: {len(self)} images of 1x8x8, 10 classes)"
