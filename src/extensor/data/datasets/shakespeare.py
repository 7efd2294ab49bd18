"""`TinyShakespeare`: the character-level language-modelling corpus, bundled and checked."""

from __future__ import annotations

import hashlib
import lzma
from collections.abc import Iterable
from functools import cache
from importlib import resources

import numpy as np

from extensor.core.tensor import Array
from extensor.data.dataset import Dataset, as_index_array, check_index

__all__ = ["CharVocabulary", "TinyShakespeare"]

_FILE = "_files/tinyshakespeare.txt.xz"
#: SHA-256 of the decompressed corpus (karpathy/char-rnn's data/tinyshakespeare/input.txt).
SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
#: the usual split: the first 90% of the characters train, the last 10% validate
TRAIN_FRACTION = 0.9
SPLITS = ("train", "val")


@cache
def corpus() -> str:
    """The whole corpus (1,115,394 characters), decompressed and verified once per process.

    Raises:
        ValueError: the bundled file does not decompress to the published text (its SHA-256 differs).
    """
    with resources.files(__package__).joinpath(_FILE).open("rb") as handle:
        raw = lzma.decompress(handle.read())
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SHA256:
        raise ValueError(f"the bundled {_FILE} is corrupt: SHA-256 {digest}, expected {SHA256}")
    return raw.decode("ascii")


class CharVocabulary:
    """A character vocabulary: id ``i`` is the i-th character of `chars` (sorted, as nanoGPT's).

    Args:
        chars: the distinct characters, in id order.
    """

    def __init__(self, chars: Iterable[str]) -> None:
        self.chars: tuple[str, ...] = tuple(chars)
        if len(set(self.chars)) != len(self.chars) or any(len(c) != 1 for c in self.chars):
            raise ValueError("a vocabulary needs distinct single characters")
        self._ids = {c: i for i, c in enumerate(self.chars)}
        # a code-point lookup table: encoding a megabyte is one NumPy gather, not a Python loop
        self._table = np.full(max(map(ord, self.chars)) + 1, -1, dtype=np.int64)
        for i, c in enumerate(self.chars):
            self._table[ord(c)] = i

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> Array:
        """The ids of `text`'s characters (int64); ValueError naming a character outside the vocabulary."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        known = codes < self._table.size
        ids = np.where(known, self._table[np.where(known, codes, 0)], -1)
        if (ids < 0).any():
            position = int(np.argmax(ids < 0))
            raise ValueError(
                f"character {text[position]!r} (at position {position}) is not in the vocabulary of "
                f"{len(self)} characters"
            )
        return ids

    def decode(self, ids: Iterable[int] | Array) -> str:
        """The text of `ids` (any integer sequence or array); ValueError for an id out of range."""
        array = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids).reshape(-1)
        if array.size and (array.dtype.kind not in "iu" or array.min() < 0 or array.max() >= len(self)):
            if array.dtype.kind not in "iu":
                raise TypeError(f"token ids must be integers, got dtype {array.dtype}")
            bad = int(array[(array < 0) | (array >= len(self))][0])
            raise ValueError(f"token id {bad} is outside the vocabulary's range [0, {len(self)})")
        return "".join(self.chars[int(i)] for i in array)

    def __repr__(self) -> str:
        return f"CharVocabulary({len(self)} characters)"


class TinyShakespeare(Dataset):
    """Tiny Shakespeare for next-character prediction (Karpathy's char-rnn corpus), bundled.

    The 1.1 MB corpus ships xz-compressed with the package and is checked against its SHA-256
    on first use. The vocabulary is the corpus's 65 distinct characters, sorted; the first 90%
    of the characters are the ``"train"`` split, the last 10% ``"val"`` (nanoGPT's split).

    Sample ``i`` is ``(x, y)``: ``x`` the `block_size` character ids starting at
    ``i * stride``, ``y`` the same window shifted by one (each position's next character), both
    int64 arrays of shape (block_size,). With the default ``stride = block_size`` the windows
    tile the split without overlap, so an epoch reads every character once; ``stride=1`` gives
    every window. Shuffled batches come from `DataLoader(..., shuffle=True, seed=...)`,
    deterministic per seed and epoch.

    Args:
        split: ``"train"`` or ``"val"``.
        block_size: characters per sample (the model's context length).
        stride: characters between the starts of consecutive samples (default: `block_size`).

    Attributes:
        vocabulary: the `CharVocabulary` (``encode``/``decode``).
        data: the split's ids, int64 array.
    """

    def __init__(self, split: str = "train", block_size: int = 64, stride: int | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        for name, value in (("block_size", block_size), ("stride", stride)):
            if value is None and name == "stride":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        text = corpus()
        self.vocabulary = _vocabulary()
        ids = _ids()
        cut = int(TRAIN_FRACTION * len(text))
        self.split = split
        self.data: Array = ids[:cut] if split == "train" else ids[cut:]
        self.block_size = int(block_size)
        self.stride = int(stride) if stride is not None else self.block_size
        if self.data.size < self.block_size + 1:
            raise ValueError(
                f"block_size {block_size} is too long for the {split} split ({self.data.size} characters)"
            )
        self._count = (self.data.size - self.block_size - 1) // self.stride + 1

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> tuple[Array, Array]:
        start = check_index(index, self._count) * self.stride
        window = self.data[start : start + self.block_size + 1]
        return window[:-1], window[1:]

    def get_batch(self, indices: Array) -> tuple[Array, Array]:
        """Samples `indices` as two (len(indices), block_size) int64 arrays, gathered at once."""
        starts = as_index_array(indices, self._count) * self.stride
        windows = self.data[starts[:, None] + np.arange(self.block_size + 1)]
        return windows[:, :-1], windows[:, 1:]

    def decode(self, ids: Iterable[int] | Array) -> str:
        """Text of `ids` (the vocabulary's `decode`)."""
        return self.vocabulary.decode(ids)

    def encode(self, text: str) -> Array:
        """Ids of `text` (the vocabulary's `encode`)."""
        return self.vocabulary.encode(text)

    def __repr__(self) -> str:
        return (
            f"TinyShakespeare(split={self.split!r}: {len(self)} samples of {self.block_size} characters, "
            f"vocabulary {len(self.vocabulary)})"
        )


@cache
def _vocabulary() -> CharVocabulary:
    return CharVocabulary(sorted(set(corpus())))


@cache
def _ids() -> Array:
    ids = _vocabulary().encode(corpus())
    ids.flags.writeable = False
    return ids
