"""Dropout: train/eval behaviour, the mask and its gradient, seeding, errors."""

from __future__ import annotations

import numpy as np
import pytest

from extensor import ExTensor, Tape
from extensor import nn as xnn
from extensor.core.random import manual_seed
from extensor.nn import functional as F


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_training_mask_scales_survivors_and_gradient_matches(rng, dtype, p):
    x = ExTensor(rng.uniform(1, 2, (200, 300)).astype(dtype), requires_grad=True)
    layer = xnn.Dropout(p, generator=np.random.default_rng(1))
    tape = Tape()
    with tape:
        y = layer(x)
    tape.backward(y, np.ones(y.shape, dtype))
    assert y.dtype == dtype
    kept = y.data != 0
    scale = dtype(1) / dtype(1 - p)  # 1/(1 - p) rounded to the dtype, as torch scales
    np.testing.assert_array_equal(y.data[kept], x.data[kept] * scale)
    # the kept fraction is Binomial(60000, 1 - p)/60000: within 5 standard deviations
    assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / kept.size)
    np.testing.assert_array_equal(x.grad, np.where(kept, scale, 0).astype(dtype))


def test_eval_mode_and_zero_probability_are_the_identity(rng):
    x = rng.standard_normal((4, 5))
    layer = xnn.Dropout(0.5).eval()
    np.testing.assert_array_equal(layer(x).data, x)
    np.testing.assert_array_equal(xnn.Dropout(0.0)(x).data, x)
    xe = ExTensor(x)
    assert F.dropout(xe, 0.5, training=False) is xe


def test_probability_one_gives_zeros_and_zero_gradient(rng):
    x = ExTensor(rng.standard_normal((3, 4)), requires_grad=True)
    tape = Tape()
    with tape:
        y = F.dropout(x, 1.0)
    tape.backward(y, np.ones((3, 4)))
    np.testing.assert_array_equal(y.data, 0)
    np.testing.assert_array_equal(x.grad, 0)


def test_same_seed_same_mask():
    x = np.ones((50, 50))
    a = xnn.Dropout(0.3, generator=np.random.default_rng(7))(x)
    b = xnn.Dropout(0.3, generator=np.random.default_rng(7))(x)
    np.testing.assert_array_equal(a.data, b.data)
    manual_seed(5)
    c = xnn.Dropout(0.3)(x)
    manual_seed(5)
    d = xnn.Dropout(0.3)(x)
    np.testing.assert_array_equal(c.data, d.data)
    assert not np.array_equal(a.data, c.data) or not np.array_equal(c.data, xnn.Dropout(0.3)(x).data)


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", True, None])
def test_bad_probability_is_rejected(p):
    with pytest.raises(ValueError, match="probability"):
        xnn.Dropout(p)
    with pytest.raises(ValueError, match="probability"):
        F.dropout(np.ones(3), p)


def test_bad_generator_is_rejected():
    with pytest.raises(TypeError, match="Generator"):
        xnn.Dropout(0.5, generator=np.random.RandomState(0))
    with pytest.raises(TypeError, match="Generator"):
        F.dropout(np.ones(3), 0.5, generator=42)
    with pytest.raises(TypeError, match="floating-point"):
        F.dropout(np.ones(3, np.int64), 0.5)


def test_repr():
    assert repr(xnn.Dropout(0.25)) == "Dropout(p=0.25)"


def test_gradcheck_with_a_fixed_mask(rng):
    from extensor.autograd import gradcheck

    x = ExTensor(rng.standard_normal((4, 5)), requires_grad=True)
    # a fresh generator with the same seed draws the same mask at every evaluation
    assert gradcheck(lambda x: F.dropout(x, 0.3, generator=np.random.default_rng(0)), [x])
