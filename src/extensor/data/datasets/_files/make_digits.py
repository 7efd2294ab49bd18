"""Build `digits.npz`, the bundled copy of the 8x8 handwritten digits, with its baked train/test split.

Run once by a maintainer (needs scikit-learn, which is not a dependency of extensor):

    python src/extensor/data/datasets/_files/make_digits.py

Source: the UCI ML Repository's "Optical Recognition of Handwritten Digits" (E. Alpaydin and
C. Kaynak, 1998; CC BY 4.0), the copy scikit-learn ships as `sklearn.datasets.load_digits`
(1,797 images of 8x8 pixels valued 0..16, 10 classes). The output keeps the samples in that
order and stores:

- `images`: uint8 (1797, 8, 8), pixel values 0..16;
- `labels`: uint8 (1797,), the digit 0..9;
- `train`: bool (1797,), the split: in every class, round(20%) of the samples, chosen at random
  with a fixed seed, are test samples, the rest training samples.

The split is computed here, once, and stored: it never depends on the NumPy version that loads it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TEST_FRACTION = 0.2
SPLIT_SEED = 20_251_125


def build() -> dict[str, np.ndarray]:
    """The arrays of `digits.npz`, from scikit-learn's copy of the data."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.asarray(bunch.data)
    labels = np.asarray(bunch.target)
    if pixels.shape != (1797, 64) or labels.shape != (1797,):
        raise ValueError(f"unexpected digits shapes {pixels.shape} and {labels.shape}")
    if not np.array_equal(pixels, np.round(pixels)) or pixels.min() < 0 or pixels.max() > 16:
        raise ValueError("digits pixels must be integers in 0..16")
    if set(labels.tolist()) != set(range(10)):
        raise ValueError("digits labels must be 0..9")
    rng = np.random.default_rng(SPLIT_SEED)
    train = np.ones(labels.shape[0], dtype=bool)
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        test = rng.choice(members, size=round(TEST_FRACTION * members.size), replace=False)
        train[test] = False
    return {
        "images": pixels.reshape(-1, 8, 8).astype(np.uint8),
        "labels": labels.astype(np.uint8),
        "train": train,
    }


def main() -> None:
    """Write `digits.npz` next to this script."""
    target = Path(__file__).with_name("digits.npz")
    arrays = build()
    np.savez_compressed(target, **arrays)  # type: ignore[arg-type]
    print(
        f"wrote {target} ({target.stat().st_size} bytes): {int(arrays['train'].sum())} train, "
        f"{int((~arrays['train']).sum())} test"
    )


if __name__ == "__main__":
    main()
