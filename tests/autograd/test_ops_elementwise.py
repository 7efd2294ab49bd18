"""exp, log, sqrt, abs, clip, maximum, minimum, where, astype: values and gradients against torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import extensor as et
from extensor import ExTensor
from extensor.autograd import gradcheck

FLOATS = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    ("name", "ex_fn", "torch_fn", "positive"),
    [
        ("exp", lambda x: x.exp(), torch.exp, False),
        ("log", lambda x: x.log(), torch.log, True),
        ("sqrt", lambda x: x.sqrt(), torch.sqrt, True),
        ("abs", lambda x: x.abs(), torch.abs, False),
        ("abs_dunder", lambda x: abs(x), torch.abs, False),
    ],
)
def test_unary_matches_torch(check_parity, rng, dtype, name, ex_fn, torch_fn, positive):
    x = rng.standard_normal((4, 5))
    if positive:
        x = np.abs(x) + 0.1
    check_parity(ex_fn, torch_fn, [x], dtype)


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "abs"])
def test_unary_gradcheck(rng, name):
    x = np.abs(rng.standard_normal((3, 4))) + 0.2
    x[0] *= -1 if name in ("exp", "abs") else 1
    assert gradcheck(lambda t: getattr(t, name)(), [ExTensor(x, requires_grad=True)])


def test_abs_gradient_is_zero_at_zero(check_parity):
    check_parity(lambda x: x.abs(), torch.abs, [np.array([-1.0, 0.0, 2.0])], np.float64)


def test_log_and_sqrt_at_zero_and_below_match_torch(check_parity):
    x = np.array([0.0, -1.0, 4.0])
    check_parity(lambda t: t.log(), torch.log, [x], np.float64)
    check_parity(lambda t: t.sqrt(), torch.sqrt, [x], np.float64)


@pytest.mark.parametrize("dtype", FLOATS)
def test_integer_input_is_computed_in_float32(dtype):
    x = ExTensor(np.array([1, 2, 3]))
    for name in ("exp", "log", "sqrt"):
        out = getattr(x, name)()
        expected = getattr(torch, name)(torch.tensor([1, 2, 3]))
        assert out.dtype == np.float32 and expected.dtype == torch.float32
        np.testing.assert_allclose(out.data, expected.numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("low", "high"), [(-0.5, 0.5), (None, 0.3), (-0.2, None), (0.5, -0.5)])
def test_clip_scalar_bounds(check_parity, rng, dtype, low, high):
    x = rng.standard_normal((5, 6))
    x[0, :3] = [-0.5, 0.5, 0.3]  # values exactly on the bounds: the gradient passes (inclusive)
    check_parity(lambda t: t.clip(low, high), lambda t: torch.clamp(t, low, high), [x], dtype)


def test_clamp_is_clip(check_parity, rng):
    check_parity(lambda t: t.clamp(min=0.0), lambda t: t.clamp(min=0.0), [rng.standard_normal(7)], np.float64)


@pytest.mark.parametrize("dtype", FLOATS)
def test_clip_tensor_bounds_receive_gradients(check_parity, rng, dtype):
    x = rng.standard_normal((4, 3))
    low = rng.standard_normal((1, 3)) - 0.5
    high = rng.standard_normal((4, 1)) + 0.5
    high[0] = -3.0  # max below min in one row: every element becomes max
    check_parity(
        lambda t, lo, hi: t.clip(lo, hi), lambda t, lo, hi: torch.clamp(t, lo, hi), [x, low, high], dtype
    )


def test_clip_needs_a_bound():
    with pytest.raises(ValueError, match="min and max"):
        ExTensor(np.ones(3)).clip()


def test_clip_gradcheck(rng):
    x = ExTensor(rng.standard_normal((3, 4)), requires_grad=True)
    lo = ExTensor(rng.standard_normal((3, 1)) - 1.0, requires_grad=True)
    assert gradcheck(lambda t, b: t.clip(b, 0.7), [x, lo])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("ex_fn", "torch_fn"), [(et.maximum, torch.maximum), (et.minimum, torch.minimum)])
def test_maximum_minimum_split_ties(check_parity, rng, dtype, ex_fn, torch_fn):
    a = rng.integers(-2, 3, size=(4, 5)).astype(np.float64)  # many exact ties
    b = rng.integers(-2, 3, size=(5,)).astype(np.float64)
    check_parity(ex_fn, torch_fn, [a, b], dtype)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shapes=mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3),
    seed=st.integers(0, 99),
)
def test_where_broadcasts_like_torch(check_parity, shapes, seed):
    rng = np.random.default_rng(seed)
    cond_shape, a_shape, b_shape = shapes.input_shapes
    cond = np.asarray(rng.random(cond_shape) < 0.5)
    check_parity(
        lambda a, b: et.where(ExTensor(cond), a, b),
        lambda a, b: torch.where(torch.from_numpy(cond), a, b),
        [rng.standard_normal(a_shape), rng.standard_normal(b_shape)],
        np.float64,
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
    seed=st.integers(0, 99),
)
def test_maximum_broadcasts_like_torch(check_parity, shapes, seed):
    rng = np.random.default_rng(seed)
    a_shape, b_shape = shapes.input_shapes
    check_parity(
        et.maximum, torch.maximum, [rng.standard_normal(a_shape), rng.standard_normal(b_shape)], np.float64
    )


def test_where_needs_a_boolean_condition():
    with pytest.raises(TypeError, match="boolean condition"):
        et.where(ExTensor(np.array([1, 0])), ExTensor(np.ones(2)), 0.0)


def test_where_and_maximum_gradcheck(rng):
    a = ExTensor(rng.standard_normal((3, 4)), requires_grad=True)
    b = ExTensor(rng.standard_normal((4,)), requires_grad=True)
    cond = ExTensor(rng.random((3, 4)) < 0.5)
    assert gradcheck(lambda x, y: et.where(cond, x, y), [a, b])
    assert gradcheck(lambda x, y: et.maximum(x, y) + et.minimum(x, y) * 2, [a, b])


@pytest.mark.parametrize(("source", "target"), [(np.float32, np.float64), (np.float64, np.float32)])
def test_astype_between_floats_is_differentiable(check_parity, rng, source, target):
    check_parity(
        lambda t: t.astype(target) * 3,
        lambda t: t.to(torch.float64 if target == np.float64 else torch.float32) * 3,
        [rng.standard_normal((3, 2))],
        source,
    )


def test_astype_to_int_carries_no_gradient():
    x = ExTensor(np.array([1.7, -2.2]), requires_grad=True)
    with et.Tape():
        y = x.astype(np.int64)
    assert y.dtype == np.int64 and not y.requires_grad
    np.testing.assert_array_equal(y.data, torch.tensor([1.7, -2.2]).to(torch.int64).numpy())


def test_astype_rejects_unsupported_dtypes():
    with pytest.raises(TypeError, match="complex128"):
        ExTensor(np.ones(2)).astype(np.complex128)
