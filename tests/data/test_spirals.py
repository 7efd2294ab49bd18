"""Spirals: deterministic, balanced, points on their arms."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from extensor.data.datasets import Spirals


@pytest.mark.parametrize(("n_samples", "n_classes"), [(300, 3), (101, 4), (2, 2)])
def test_shapes_and_balance(n_samples: int, n_classes: int) -> None:
    dataset = Spirals(n_samples=n_samples, n_classes=n_classes)
    assert len(dataset) == n_samples
    assert dataset.data.shape == (n_samples, 2) and dataset.data.dtype == np.float32
    assert dataset.targets.dtype == np.int64
    counts = np.bincount(dataset.targets, minlength=n_classes)
    assert counts.sum() == n_samples and counts.max() - counts.min() <= 1
    assert len(dataset.classes) == n_classes
    point, target = dataset[0]
    assert point.shape == (2,) and target.dtype == np.int64


def test_deterministic_and_split_dependent() -> None:
    a, b = Spirals(seed=3), Spirals(seed=3)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.targets, b.targets)
    assert not np.array_equal(a.data, Spirals(seed=4).data)
    assert not np.array_equal(a.data, Spirals(seed=3, train=False).data)


@pytest.mark.parametrize(("n_classes", "turns"), [(3, 1.0), (5, 0.5), (2, 2.0)])
def test_noiseless_points_lie_on_their_arm(n_classes: int, turns: float) -> None:
    dataset = Spirals(n_samples=200, n_classes=n_classes, noise=0.0, turns=turns, seed=1)
    x, y = dataset.data.astype(np.float64).T
    radius = np.hypot(x, y)
    assert radius.max() <= 1.0
    angle = np.arctan2(x, y)  # the point is (r sin theta, r cos theta)
    expected = 2 * np.pi * (dataset.targets / n_classes + turns * radius)
    residual = np.angle(np.exp(1j * (angle - expected)))  # difference wrapped to (-pi, pi]
    keep = radius > 1e-3  # the angle of a point at the centre is ill-conditioned
    assert np.abs(residual[keep]).max() < 1e-3


def test_noise_spreads_the_arms() -> None:
    quiet = Spirals(noise=0.0, seed=2)
    noisy = Spirals(noise=0.5, seed=2)
    np.testing.assert_allclose(np.hypot(*quiet.data.T), np.hypot(*noisy.data.T), rtol=1e-6)
    assert not np.allclose(quiet.data, noisy.data)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_classes": 1}, ValueError, "n_classes must be an integer >= 2, got 1"),
        ({"n_samples": 2, "n_classes": 3}, ValueError, "n_samples must be an integer >= 3, got 2"),
        ({"n_samples": 10.0}, TypeError, "n_samples must be an integer >= 3, got 10.0"),
        ({"noise": -0.1}, ValueError, "noise must be a finite number >= 0, got -0.1"),
        ({"noise": float("nan")}, ValueError, "noise must be a finite number >= 0, got nan"),
        ({"noise": "0.1"}, TypeError, "noise must be a real number, got '0.1'"),
        ({"turns": 0}, ValueError, "turns must be a finite number > 0, got 0"),
        ({"seed": -1}, ValueError, "seed must be a non-negative integer, got -1"),
        ({"train": None}, TypeError, "train must be a bool, got None"),
    ],
)
def test_errors(kwargs: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        Spirals(**kwargs)
