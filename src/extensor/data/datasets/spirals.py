"""`Spirals`: the classic synthetic dataset of interleaved spiral arms, one arm per class."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from extensor.core.tensor import Array
from extensor.data.dataset import TensorDataset
from extensor.data.sampler import check_seed


def _positive_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"{name} must be an integer >= {minimum}, got {value!r} of type {type(value).__name__}"
        )
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def _real(value: Any, name: str, positive: bool) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        expected = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {expected}, got {value}")
    return number


class Spirals(TensorDataset):
    """Points on `n_classes` interleaved spiral arms in the plane; the class is the arm.

    Each point draws a radius r ~ U(0, 1); a point of class k lies at angle
    theta = 2*pi*k/n_classes + 2*pi*turns*r + noise*eps with eps ~ N(0, 1), i.e. at
    (r sin theta, r cos theta): the arms are Archimedean spirals rotated evenly about the origin,
    blurred by angular noise (in radians), as in CS231n's classic spiral data. Classes are
    balanced (sizes differ by at most one) and listed class by class.

    Deterministic: the points are drawn from `numpy.random.default_rng([seed, 0])` for the
    training split and `[seed, 1]` for the test split, two independent samples of the same
    distribution.

    A sample is `(point, target)`: point float32 of shape (2,), target int64.

    Args:
        n_samples: number of points in this split (>= n_classes).
        n_classes: number of arms (>= 2).
        noise: standard deviation of the angular noise in radians (>= 0).
        turns: how many full turns an arm makes from the centre to radius 1 (> 0).
        seed: non-negative integer.
        train: the training sample (True) or the test sample (False).

    Attributes:
        data: float32 array (n_samples, 2); targets: int64 array (n_samples,); classes: names.
    """

    def __init__(
        self,
        n_samples: int = 300,
        n_classes: int = 3,
        noise: float = 0.2,
        turns: float = 1.0,
        seed: int = 0,
        train: bool = True,
    ) -> None:
        n_classes = _positive_int(n_classes, "n_classes", 2)
        n_samples = _positive_int(n_samples, "n_samples", n_classes)
        noise = _real(noise, "noise", positive=False)
        turns = _real(turns, "turns", positive=True)
        seed = check_seed(seed)
        if not isinstance(train, (bool, np.bool_)):
            raise TypeError(f"train must be a bool, got {train!r} of type {type(train).__name__}")
        rng = np.random.default_rng([seed, 0 if train else 1])
        targets = np.repeat(np.arange(n_classes, dtype=np.int64), _class_sizes(n_samples, n_classes))
        radius = rng.random(n_samples)
        angle = 2 * np.pi * (targets / n_classes + turns * radius) + noise * rng.standard_normal(n_samples)
        points = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1).astype(np.float32)
        self.train = bool(train)
        self.data: Array = points
        self.targets: Array = targets
        self.classes: tuple[str, ...] = tuple(str(k) for k in range(n_classes))
        super().__init__(points, targets)

    def __repr__(self) -> str:
        return f"Spirals(train={self.train}: {len(self)} points, {len(self.classes)} classes)"


def _class_sizes(n_samples: int, n_classes: int) -> list[int]:
    """Balanced class sizes: the first `n_samples % n_classes` classes get one more."""
    base, extra = divmod(n_samples, n_classes)
    return [base + (k < extra) for k in range(n_classes)]
