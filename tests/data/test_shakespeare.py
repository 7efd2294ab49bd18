"""TinyShakespeare: the bundled corpus, its vocabulary, the 90/10 split and next-character samples."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from extensor.data import DataLoader
from extensor.data.datasets import CharVocabulary, TinyShakespeare
from extensor.data.datasets.shakespeare import SHA256, corpus

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "tinyshakespeare" / "input.txt"


def test_the_bundle_is_the_published_corpus() -> None:
    text = corpus()
    assert len(text) == 1_115_394
    assert hashlib.sha256(text.encode("ascii")).hexdigest() == SHA256
    if SHARED.exists():  # the workplace's copy of karpathy/char-rnn's file
        assert SHARED.read_text(encoding="ascii") == text
    assert text.startswith("First Citizen:\nBefore we proceed any further, hear me speak.")


def test_vocabulary_and_split() -> None:
    train, val = TinyShakespeare("train", block_size=8), TinyShakespeare("val", block_size=8)
    assert len(train.vocabulary) == 65 and train.vocabulary.chars == tuple(sorted(set(corpus())))
    assert train.vocabulary.chars[:2] == ("\n", " ")
    assert train.data.size == 1_003_854 and val.data.size == 111_540  # int(0.9 * n), nanoGPT's cut
    assert train.decode(np.concatenate([train.data, val.data])) == corpus()


def test_samples_are_windows_and_their_next_characters() -> None:
    data = TinyShakespeare("val", block_size=16)
    assert len(data) == (data.data.size - 17) // 16 + 1
    x, y = data[3]
    assert x.shape == y.shape == (16,) and x.dtype == np.int64
    np.testing.assert_array_equal(x, data.data[48:64])
    np.testing.assert_array_equal(y, data.data[49:65])
    _, last_y = data[-1]
    assert last_y[-1] == data.data[(len(data) - 1) * 16 + 16]  # the last target exists
    every = TinyShakespeare("val", block_size=16, stride=1)
    assert len(every) == data.data.size - 16
    xs, ys = every.get_batch(np.array([0, 5, 7]))
    for row, start in enumerate([0, 5, 7]):
        np.testing.assert_array_equal(xs[row], every.data[start : start + 16])
        np.testing.assert_array_equal(ys[row], every.data[start + 1 : start + 17])


def test_loader_epochs_are_deterministic() -> None:
    data = TinyShakespeare("val", block_size=32)
    first = [x.data.copy() for x, _ in DataLoader(data, batch_size=64, shuffle=True, seed=3)]
    again = [x.data.copy() for x, _ in DataLoader(data, batch_size=64, shuffle=True, seed=3)]
    assert first[0].shape == (64, 32)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_encode_decode_round_trip_and_errors() -> None:
    vocabulary = TinyShakespeare("val", block_size=4).vocabulary
    ids = vocabulary.encode("ROMEO:\nO, she doth teach the torches to burn bright!")
    assert vocabulary.decode(ids) == "ROMEO:\nO, she doth teach the torches to burn bright!"
    with pytest.raises(ValueError, match=r"character 'é' \(at position 1\) is not in the vocabulary"):
        vocabulary.encode("hé")
    with pytest.raises(ValueError, match=r"token id 65 is outside the vocabulary's range \[0, 65\)"):
        vocabulary.decode([1, 65])
    with pytest.raises(ValueError, match="token id -1"):
        vocabulary.decode(np.array([-1]))
    with pytest.raises(TypeError, match="integers"):
        vocabulary.decode(np.array([1.5]))
    with pytest.raises(ValueError, match="distinct single characters"):
        CharVocabulary("aab")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "test"}, "split must be 'train' or 'val', got 'test'"),
        ({"block_size": 0}, "block_size must be a positive int, got 0"),
        ({"block_size": True}, "block_size must be a positive int, got True"),
        ({"stride": -2}, "stride must be a positive int, got -2"),
        ({"split": "val", "block_size": 200_000}, "block_size 200000 is too long for the val split"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TinyShakespeare(**kwargs)  # type: ignore[arg-type]
