"""sum, mean, max, min, argmax, argmin against torch, including ties, NaN, keepdims and bad axes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extensor import ExTensor, Tape
from extensor.autograd import gradcheck

FLOATS = [np.float32, np.float64]
AXES = [None, 0, 1, -1, (0, 2), (), [1, 2]]


def _torch_dim(axis):
    return list(axis) if isinstance(axis, (tuple, list)) else axis


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("name", ["sum", "mean"])
def test_sum_mean_match_torch(check_parity, rng, dtype, axis, keepdims, name):
    x = rng.standard_normal((3, 4, 2))

    def torch_fn(t):
        if axis is None:
            out = getattr(t, name)()
            return out.reshape((1, 1, 1)) if keepdims else out
        return getattr(t, name)(dim=_torch_dim(axis), keepdim=keepdims)

    check_parity(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims), torch_fn, [x], dtype)


def test_sum_of_ints_and_bools_is_int64_and_mean_needs_floats():
    assert ExTensor(np.array([1, 2], dtype=np.int32)).sum().dtype == np.int64
    assert ExTensor(np.array([True, True, False])).sum().item() == 2
    with pytest.raises(TypeError, match="floating-point"):
        ExTensor(np.array([1, 2])).mean()


@pytest.mark.parametrize("axis", [3, -4, (0, 0)])
def test_bad_axes_are_value_errors(axis):
    with pytest.raises(ValueError, match="axis"):
        ExTensor(np.ones((2, 3, 4))).sum(axis=axis)


def test_axis_must_be_int_like():
    with pytest.raises(TypeError, match="axis"):
        ExTensor(np.ones((2, 3))).sum(axis=1.0)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_max_min_along_axis_follow_torch_max_dim(check_parity, rng, dtype, name, axis, keepdims):
    x = rng.integers(-2, 3, size=(4, 5)).astype(np.float64)  # plenty of ties: first index wins
    check_parity(
        lambda t: getattr(t, name)(axis=axis, keepdims=keepdims),
        lambda t: getattr(t, name)(dim=axis, keepdim=keepdims).values,
        [x],
        dtype,
    )


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", ["max", "min"])
def test_full_max_min_split_ties_evenly_like_torch(check_parity, dtype, name):
    x = np.array([[1.0, 3.0, 3.0], [-1.0, 3.0, -1.0]])
    check_parity(lambda t: getattr(t, name)(), lambda t: getattr(t, name)(), [x], dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("name", "torch_name"), [("max", "amax"), ("min", "amin")])
@pytest.mark.parametrize("keepdims", [False, True])
def test_max_min_over_several_axes_follow_amax(check_parity, rng, dtype, name, torch_name, keepdims):
    x = rng.integers(-1, 2, size=(2, 3, 4)).astype(np.float64)
    check_parity(
        lambda t: getattr(t, name)(axis=(0, 2), keepdims=keepdims),
        lambda t: getattr(torch, torch_name)(t, dim=(0, 2), keepdim=keepdims),
        [x],
        dtype,
    )


def test_max_propagates_nan_like_torch(check_parity):
    x = np.array([[1.0, np.nan, 2.0], [0.0, 5.0, 1.0]])
    check_parity(lambda t: t.max(axis=1), lambda t: t.max(dim=1).values, [x], np.float64)
    check_parity(lambda t: t.max(), lambda t: t.max(), [x], np.float64)


def test_max_of_empty_is_an_error_and_of_zero_dim_is_itself():
    with pytest.raises(ValueError, match="empty"):
        ExTensor(np.ones((0, 3))).max()
    x = ExTensor(np.array(4.0), requires_grad=True)
    tape = Tape()
    with tape:
        y = x.max(axis=0)
    assert y.item() == 4.0 and tape.backward(y)[x] == 1.0


def test_max_on_integers_has_no_gradient_but_works():
    x = ExTensor(np.array([[3, 9], [7, 1]]))
    assert x.max(axis=1).tolist() == [9, 7] and x.min().item() == 1


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
def test_reductions_gradcheck(rng, name):
    x = ExTensor(rng.standard_normal((3, 4)), requires_grad=True)
    assert gradcheck(lambda t: getattr(t, name)(axis=1), [x])
    assert gradcheck(lambda t: getattr(t, name)(), [x])
    assert gradcheck(lambda t: getattr(t, name)(axis=(0, 1), keepdims=True), [x])


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_argmax_argmin_match_torch(rng, name, axis, keepdims):
    x = rng.integers(0, 3, size=(4, 5)).astype(np.float32)
    out = getattr(ExTensor(x), name)(axis=axis, keepdims=keepdims)
    expected = getattr(torch.from_numpy(x), name)(dim=axis, keepdim=keepdims)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out.data, expected.numpy())


def test_argmax_records_nothing():
    x = ExTensor(np.ones((2, 2)), requires_grad=True)
    tape = Tape()
    with tape:
        index = x.argmax(axis=0)
    assert len(tape) == 0 and not index.requires_grad
