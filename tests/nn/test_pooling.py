"""MaxPool2d and AvgPool2d: values and gradients against torch for every argument, ties, NaN, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from extensor import ExTensor, Tape
from extensor import nn as xnn
from extensor.autograd import gradcheck
from extensor.nn import functional as F

DTYPES = [np.float64, np.float32]

# (kernel, stride, padding, dilation, ceil_mode, (H, W))
MAX_CONFIGS = [
    (2, None, 0, 1, False, (8, 8)),
    (2, None, 0, 1, False, (7, 9)),  # odd sizes: the last row/column is dropped
    (3, 2, 1, 1, False, (7, 8)),  # overlapping windows with padding
    (3, 2, 1, 1, True, (8, 8)),  # ceil mode: a last window hanging over the edge
    ((3, 2), (2, 1), (1, 0), (2, 1), False, (9, 6)),
    (2, 3, 1, 1, True, (10, 10)),  # stride larger than the kernel
    (1, 1, 0, 1, False, (3, 4)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", MAX_CONFIGS, ids=str)
def test_max_pool_matches_torch(layer_check, rng, dtype, config):
    kernel, stride, padding, dilation, ceil_mode, hw = config
    kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "ceil_mode": ceil_mode}
    layer_check(
        xnn.MaxPool2d(kernel, **kwargs),
        torch.nn.MaxPool2d(kernel, **kwargs),
        rng.standard_normal((2, 3, *hw)),
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_ties_send_the_gradient_where_torch_does(layer_check, rng, dtype):
    # after a ReLU most windows hold equal zeros; small integers make ties everywhere
    x = np.maximum(rng.integers(-2, 3, (2, 2, 8, 8)), 0).astype(np.float64)
    layer_check(xnn.MaxPool2d(2), torch.nn.MaxPool2d(2), x, dtype)
    layer_check(xnn.MaxPool2d(3, 1, 1), torch.nn.MaxPool2d(3, 1, 1), x, dtype)


def test_max_pool_propagates_nan_like_torch(rng):
    x = rng.standard_normal((1, 1, 4, 4))
    x[0, 0, 0, 1] = np.nan
    x[0, 0, 1, 0] = np.nan
    x[0, 0, 3, 3] = np.inf
    xe, xt = ExTensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    tape = Tape()
    with tape:
        out = F.max_pool2d(xe, 2)
    tape.backward(out, np.ones(out.shape))
    out_t = torch.nn.functional.max_pool2d(xt, 2)
    out_t.backward(torch.ones_like(out_t))
    np.testing.assert_array_equal(out.data, out_t.detach().numpy())
    np.testing.assert_array_equal(xe.grad, xt.grad.numpy())


@pytest.mark.parametrize("config", MAX_CONFIGS, ids=str)
def test_max_pool_without_a_tape_matches_torch(rng, config):
    # outside a tape no winner is tracked (a vectorised path when windows lie inside the input)
    kernel, stride, padding, dilation, ceil_mode, hw = config
    x = rng.standard_normal((2, 3, *hw))
    x[0, 0, 1, 1] = np.nan
    x[1, 2, 0, :] = 0.0
    ours = F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)
    theirs = torch.nn.functional.max_pool2d(torch.from_numpy(x), kernel, stride, padding, dilation, ceil_mode)
    assert not ours.requires_grad
    np.testing.assert_array_equal(ours.data, theirs.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_unbatched(layer_check, rng, dtype):
    layer_check(xnn.MaxPool2d(2), torch.nn.MaxPool2d(2), rng.standard_normal((3, 6, 5)), dtype)


# (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, (H, W))
AVG_CONFIGS = [
    (2, None, 0, False, True, None, (8, 8)),
    (3, 2, 1, False, True, None, (7, 8)),
    (3, 2, 1, False, False, None, (7, 8)),
    (3, 2, 1, True, True, None, (8, 8)),
    (3, 2, 1, True, False, None, (8, 8)),
    ((3, 2), (1, 2), (1, 1), True, True, None, (5, 7)),
    (2, 2, 1, False, True, 3, (6, 6)),
    (2, 3, 1, True, False, None, (10, 10)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", AVG_CONFIGS, ids=str)
def test_avg_pool_matches_torch(layer_check, rng, dtype, config):
    kernel, stride, padding, ceil_mode, include, divisor, hw = config
    kwargs = {
        "stride": stride, "padding": padding, "ceil_mode": ceil_mode,
        "count_include_pad": include, "divisor_override": divisor,
    }  # fmt: skip
    layer_check(
        xnn.AvgPool2d(kernel, **kwargs),
        torch.nn.AvgPool2d(kernel, **kwargs),
        rng.standard_normal((2, 3, *hw)),
        dtype,
    )


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["max", "avg"]),
    st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2),
    st.integers(1, 2), st.booleans(), st.booleans(), st.integers(0, 5), st.integers(0, 5),
    st.integers(0, 2**31),
)  # fmt: skip
def test_random_geometries_match_torch(kind, kh, kw, sh, sw, pad, dil, ceil, include, eh, ew, seed):
    rng = np.random.default_rng(seed)
    ph, pw = min(pad, kh // 2), min(pad, kw // 2)
    if kind == "avg":
        dil = 1
    x = rng.standard_normal((2, 2, dil * (kh - 1) + 1 + eh, dil * (kw - 1) + 1 + ew))
    xe, xt = ExTensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    tape = Tape()
    with tape:
        if kind == "max":
            out = F.max_pool2d(xe, (kh, kw), (sh, sw), (ph, pw), dil, ceil)
        else:
            out = F.avg_pool2d(xe, (kh, kw), (sh, sw), (ph, pw), ceil, include)
    if kind == "max":
        out_t = torch.nn.functional.max_pool2d(xt, (kh, kw), (sh, sw), (ph, pw), dil, ceil)
    else:
        out_t = torch.nn.functional.avg_pool2d(xt, (kh, kw), (sh, sw), (ph, pw), ceil, include)
    g = rng.standard_normal(out.shape)
    tape.backward(out, g)
    out_t.backward(torch.from_numpy(g))
    np.testing.assert_allclose(out.data, out_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xe.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_return_indices_match_torch(rng):
    x = rng.standard_normal((2, 3, 7, 6))
    out, index = xnn.MaxPool2d(3, 2, 1, return_indices=True)(x)
    out_t, index_t = torch.nn.MaxPool2d(3, 2, 1, return_indices=True)(torch.from_numpy(x))
    np.testing.assert_array_equal(out.data, out_t.numpy())
    np.testing.assert_array_equal(index.data, index_t.numpy())
    assert index.dtype == np.int64 and not index.requires_grad


def test_gradcheck_pooling(rng):
    x = ExTensor(rng.standard_normal((1, 2, 5, 6)), requires_grad=True)
    assert gradcheck(lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True), [x])
    assert gradcheck(lambda x: F.avg_pool2d(x, (3, 2), 2, 1, ceil_mode=True, count_include_pad=False), [x])
    assert gradcheck(lambda x: F.avg_pool2d(x, 2, divisor_override=3), [x])


def test_reprs_match_torch():
    assert repr(xnn.MaxPool2d(2)) == repr(torch.nn.MaxPool2d(2))
    assert repr(xnn.MaxPool2d(3, 2, 1, 2, ceil_mode=True)) == repr(
        torch.nn.MaxPool2d(3, 2, 1, 2, ceil_mode=True)
    )
    assert repr(xnn.AvgPool2d(2)) == repr(torch.nn.AvgPool2d(2))
    assert repr(xnn.AvgPool2d(3, 1, 1)) == repr(torch.nn.AvgPool2d(3, 1, 1))


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="at most half of the kernel"):
        xnn.MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match="at most half of the kernel"):
        F.avg_pool2d(np.zeros((1, 1, 4, 4)), 3, padding=2)
    with pytest.raises(ValueError, match="kernel_size must be >= 1"):
        xnn.AvgPool2d(0)
    with pytest.raises(ValueError, match="too small"):
        F.max_pool2d(np.zeros((1, 1, 2, 2)), 3)
    with pytest.raises(ValueError, match="4-D"):
        F.max_pool2d(np.zeros((4, 4)), 2)
    with pytest.raises(TypeError, match="floating-point"):
        F.max_pool2d(np.zeros((1, 1, 4, 4), dtype=np.int64), 2)
    with pytest.raises(ValueError, match="divisor_override"):
        F.avg_pool2d(np.zeros((1, 1, 4, 4)), 2, divisor_override=0)


@settings(max_examples=30, deadline=None)
@given(
    dtype=st.sampled_from([np.float32, np.float64]),
    hw=st.tuples(st.integers(2, 9), st.integers(2, 9)),
    special=st.sampled_from([None, np.nan, np.inf, -np.inf, -0.0]),
    seed=st.integers(0, 2**16),
)
def test_2x2_fast_path_is_bitwise_torch(dtype, hw, special, seed):
    # 2x2 windows at stride 2 take a branch-free kernel; ties (small integers, ±0) and non-finite
    # values (which send it back to the general kernel) must give torch's values, winners and grads
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (2, 3, *hw)).astype(dtype)
    x[x == 0] = np.where(rng.random(int((x == 0).sum())) < 0.5, -0.0, 0.0)
    if special is not None:
        x.reshape(-1)[rng.integers(0, x.size, 3)] = special
    g = rng.standard_normal((2, 3, hw[0] // 2, hw[1] // 2)).astype(dtype)
    xe = ExTensor(x, requires_grad=True)
    tape = Tape()
    with tape:
        out, index = F.max_pool2d(xe, 2, return_indices=True)
    tape.backward(out, g)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    out_t, index_t = torch.nn.functional.max_pool2d(xt, 2, return_indices=True)
    out_t.backward(torch.from_numpy(g))
    assert out.data.tobytes() == out_t.detach().numpy().tobytes()
    np.testing.assert_array_equal(index.data, index_t.numpy())
    assert xe.grad.tobytes() == xt.grad.numpy().tobytes()
