"""Conv2d: values and gradients against torch.nn.Conv2d for every argument, gradcheck, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from extensor import ExTensor, Tape
from extensor import nn as xnn
from extensor.autograd import gradcheck
from extensor.autograd.ops import _conv_kernels
from extensor.nn import functional as F

DTYPES = [np.float64, np.float32]

# (in, out, kernel, stride, padding, dilation, groups, bias, (H, W))
CONFIGS = [
    (1, 6, 5, 1, 2, 1, 1, True, (12, 12)),  # LeNet's first layer
    (6, 16, 5, 1, 0, 1, 1, True, (9, 9)),
    (3, 4, (3, 2), 1, (1, 0), 1, 1, False, (7, 6)),  # rectangular kernel and padding
    (2, 4, 3, 2, 1, 1, 1, True, (9, 8)),  # strided
    (2, 3, 3, (2, 1), 0, 1, 1, True, (8, 7)),  # different strides per axis
    (2, 2, 3, 1, 2, 2, 1, True, (7, 7)),  # dilated
    (4, 6, 3, 1, 1, 1, 2, True, (6, 5)),  # grouped
    (4, 4, 3, 2, 1, (2, 1), 4, True, (9, 9)),  # depthwise, strided and dilated
    (2, 3, 4, 1, "same", 1, 1, True, (6, 7)),  # even kernel: torch pads the extra row at the end
    (2, 3, 3, 1, "same", 2, 1, True, (6, 7)),
    (2, 3, 3, 1, "valid", 1, 1, True, (6, 7)),
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c[:8])))
def test_conv2d_matches_torch(layer_check, rng, dtype, config):
    cin, cout, kernel, stride, padding, dilation, groups, bias, hw = config
    kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups, "bias": bias}
    ours = xnn.Conv2d(cin, cout, kernel, dtype=dtype, generator=rng, **kwargs)
    theirs = torch.nn.Conv2d(cin, cout, kernel, **kwargs)
    layer_check(ours, theirs, rng.standard_normal((3, cin, *hw)), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_unbatched_input(layer_check, rng, dtype):
    ours = xnn.Conv2d(2, 3, 3, padding=1, dtype=dtype, generator=rng)
    layer_check(ours, torch.nn.Conv2d(2, 3, 3, padding=1), rng.standard_normal((2, 5, 6)), dtype)


def test_first_layer_input_needs_no_gradient(layer_check, rng):
    ours = xnn.Conv2d(1, 4, 3, dtype=np.float64, generator=rng)
    layer_check(
        ours, torch.nn.Conv2d(1, 4, 3), rng.standard_normal((2, 1, 6, 6)), np.float64, x_requires_grad=False
    )


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
    st.integers(1, 2), st.integers(0, 2), st.integers(1, 2), st.integers(0, 3), st.integers(0, 3),
    st.integers(0, 2**31),
)  # fmt: skip
def test_random_geometries_match_torch(cin, cout, kh, kw, stride, padding, dilation, extra_h, extra_w, seed):
    rng = np.random.default_rng(seed)
    h = dilation * (kh - 1) + 1 + extra_h
    w = dilation * (kw - 1) + 1 + extra_w
    x = rng.standard_normal((2, cin, h, w))
    weight = rng.standard_normal((cout, cin, kh, kw))
    bias = rng.standard_normal(cout)
    xe, we, be = (ExTensor(a, requires_grad=True) for a in (x, weight, bias))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
    tape = Tape()
    with tape:
        out = F.conv2d(xe, we, be, stride, padding, dilation)
    out_t = torch.nn.functional.conv2d(xt, wt, bt, stride, padding, dilation)
    g = rng.standard_normal(out.shape)
    tape.backward(out, g)
    out_t.backward(torch.from_numpy(g))
    for ours, theirs in ((out.data, out_t), (xe.grad, xt.grad), (we.grad, wt.grad), (be.grad, bt.grad)):
        scale = float(np.abs(theirs.detach().numpy()).max())
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-10, atol=1e-10 * scale)


def test_gradcheck_conv2d(rng):
    def tensor(*shape):
        return ExTensor(rng.standard_normal(shape), requires_grad=True)

    x, b = tensor(2, 2, 5, 4), tensor(4)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=(1, 2), padding=1), [x, tensor(4, 2, 3, 2), b])
    assert gradcheck(
        lambda x, w: F.conv2d(x, w, stride=2, dilation=(1, 2), groups=2), [x, tensor(4, 1, 2, 2)]
    )
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding="same", groups=2), [x, tensor(4, 1, 2, 3), b])


def test_one_layer_used_twice_in_one_graph(rng, close):
    # both calls keep their column buffers alive until backward: no scratch memory may be shared
    ours = xnn.Conv2d(2, 2, 3, padding=1, dtype=np.float64, generator=rng)
    theirs = torch.nn.Conv2d(2, 2, 3, padding=1).double()
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})
    x = rng.standard_normal((2, 2, 5, 5))
    xe, xt = ExTensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    tape = Tape()
    with tape:
        out = ours(ours(xe) * 0.5 + xe).sum()
    tape.backward(out)
    theirs(theirs(xt) * 0.5 + xt).sum().backward()
    close(xe.grad, xt.grad, np.float64)
    close(ours.weight.grad, theirs.weight.grad, np.float64)


def test_default_initialisation_bound_uses_fan_in():
    layer = xnn.Conv2d(6, 16, 5, generator=np.random.default_rng(1))
    bound = 1 / math.sqrt(6 * 5 * 5)
    assert layer.weight.shape == (16, 6, 5, 5)
    assert bound * 0.95 < np.abs(layer.weight.data).max() <= bound
    assert np.abs(layer.bias.data).max() <= bound


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 3},
        {
            "kernel_size": (3, 5),
            "stride": (2, 1),
            "padding": (1, 2),
            "dilation": 2,
            "groups": 2,
            "bias": False,
        },
        {"kernel_size": 4, "padding": "same"},
    ],
)
def test_repr_matches_torch(kwargs):
    assert repr(xnn.Conv2d(4, 6, **kwargs)) == repr(torch.nn.Conv2d(4, 6, **kwargs))


def test_channel_mismatch_names_shapes(rng):
    layer = xnn.Conv2d(3, 4, 3, generator=rng)
    with pytest.raises(ValueError, match=r"expects 3 input channels.*\(2, 2, 5, 5\)"):
        layer(np.zeros((2, 2, 5, 5), np.float32))


def test_bad_arguments_are_rejected(rng):
    with pytest.raises(ValueError, match="divisible by groups"):
        xnn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="strided"):
        xnn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding must be"):
        xnn.Conv2d(3, 4, 3, padding="full")
    with pytest.raises(ValueError, match="padding_mode"):
        xnn.Conv2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="kernel_size must be >= 1"):
        xnn.Conv2d(3, 4, 0)
    with pytest.raises(TypeError, match="kernel_size must be an int or a pair"):
        xnn.Conv2d(3, 4, (3, 3, 3))
    layer = xnn.Conv2d(1, 1, 5, generator=rng)
    with pytest.raises(ValueError, match="larger than the padded input"):
        layer(np.zeros((1, 1, 4, 9), np.float32))
    with pytest.raises(ValueError, match="4-D"):
        layer(np.zeros((9, 9), np.float32))


@settings(max_examples=25, deadline=None)
@given(
    c=st.integers(1, 3), n=st.integers(1, 3), kh=st.integers(1, 3), kw=st.integers(1, 3),
    dh=st.integers(1, 2), dw=st.integers(1, 2), extra_h=st.integers(0, 3), extra_w=st.integers(0, 3),
    dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_wide_copy_kernels_equal_the_slice_formulation_bit_for_bit(
    c, n, kh, kw, dh, dw, extra_h, extra_w, dtype, seed
):
    rng = np.random.default_rng(seed)
    hp, wp = dh * (kh - 1) + 1 + extra_h, dw * (kw - 1) + 1 + extra_w
    ho, wo = hp - dh * (kh - 1), wp - dw * (kw - 1)
    length, run = ho * wp, (ho - 1) * wp + wo
    planes = rng.standard_normal((n, c, hp * wp)).astype(dtype)
    cols = np.full((c, kh, kw, n, length), np.nan, dtype)
    _conv_kernels.im2col_wide(planes, cols, wp, dh, dw, run)
    expected = np.zeros_like(cols)
    for p in range(kh):
        for q in range(kw):
            offset = p * dh * wp + q * dw
            expected[:, p, q, :, :run] = planes[:, :, offset : offset + run].transpose(1, 0, 2)
    assert cols.tobytes() == expected.tobytes()

    grads = rng.standard_normal(cols.shape).astype(dtype)
    summed = np.zeros((c, n, hp * wp), dtype)
    _conv_kernels.col2im_wide(grads, summed, wp, dh, dw, run)
    reference = np.zeros_like(summed)
    for p in range(kh):  # one slice addition per tap, in row-major tap order
        for q in range(kw):
            offset = p * dh * wp + q * dw
            reference[:, :, offset : offset + run] += grads[:, p, q, :, :run]
    assert summed.tobytes() == reference.tobytes()


def test_float16_convolution_takes_the_strided_plan(rng):
    x = rng.standard_normal((2, 2, 6, 6)).astype(np.float16)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float16)
    xe, we = ExTensor(x, requires_grad=True), ExTensor(w, requires_grad=True)
    tape = Tape()
    with tape:
        out = F.conv2d(xe, we, padding=1)
    grads = tape.backward(out, np.ones(out.shape, np.float16))
    assert out.dtype == np.float16 and grads[xe].dtype == np.float16
    xt = torch.from_numpy(x.astype(np.float32)).requires_grad_()
    out_t = torch.nn.functional.conv2d(xt, torch.from_numpy(w.astype(np.float32)), padding=1)
    out_t.backward(torch.ones_like(out_t))
    np.testing.assert_allclose(out.data, out_t.detach().numpy(), rtol=1e-2, atol=2e-2)
    np.testing.assert_allclose(grads[xe], xt.grad.numpy(), rtol=1e-2, atol=2e-2)
