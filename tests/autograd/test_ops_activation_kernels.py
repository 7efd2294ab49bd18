"""relu's compiled loop and pooled buffers: bit for bit torch's relu and threshold_backward, any layout,
and no result ever shares memory with another live one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from extensor import ExTensor, Tape

SPECIALS = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-30, -1e-30]


def relu_both(x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(value, gradient) of relu in extensor and in torch for input `x` and upstream `g`."""
    leaf = ExTensor(x, requires_grad=True)
    tape = Tape()
    with tape:
        y = leaf.relu()
    grad = tape.backward(y, g)[leaf]
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = torch.relu(tx)
    ty.backward(torch.from_numpy(g.copy()))
    assert tx.grad is not None
    return y.data, grad, ty.detach().numpy(), tx.grad.numpy()


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == np.ascontiguousarray(b).tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(16,), (64, 6, 28, 28)])  # a small array and one from the pool
def test_relu_is_bitwise_torch_with_special_values(rng, dtype, shape):
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[: len(SPECIALS)] = SPECIALS
    g = rng.standard_normal(shape).astype(dtype)
    g.reshape(-1)[len(SPECIALS) : 2 * len(SPECIALS)] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, 2.0]
    y, dx, ty, tdx = relu_both(x, g)
    assert same_bits(y, ty)  # NaN and -0.0 pass as in torch
    assert same_bits(dx, tdx)  # 0 where y <= 0, g (even inf or NaN) elsewhere


@settings(max_examples=40, deadline=None)
@given(
    x=hnp.arrays(
        st.sampled_from([np.float32, np.float64]),
        hnp.array_shapes(min_dims=0, max_dims=3, max_side=5),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=32),
    ),
    transpose=st.booleans(),
)
def test_relu_any_layout_is_bitwise_torch(x, transpose):
    x = x.T if transpose else x  # strided input: the kernel reads a contiguous copy
    g = np.asarray(np.arange(x.size).reshape(x.shape) - x.size / 2, dtype=x.dtype)
    g = g.T.copy().T if transpose else g  # and a strided upstream gradient
    y, dx, ty, tdx = relu_both(x, g)
    assert same_bits(y, ty) and same_bits(dx, tdx)


def test_relu_outside_the_kernel_dtypes_keeps_numpy_rules():
    assert ExTensor(np.array([-2, 3], dtype=np.int32)).relu().data.dtype == np.int32
    x = np.array([-1.5, -0.0, 0.0, 2.5, np.nan], dtype=np.float16)
    y = ExTensor(x).relu().data
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, torch.relu(torch.from_numpy(x)).numpy())


def test_pooled_results_never_alias_live_arrays(rng):
    shape = (64, 6, 28, 28)  # over the pool's size threshold
    xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(6)]
    held = [ExTensor(x).relu() for x in xs]  # more live results than the pool keeps per shape
    addresses = {h.data.ctypes.data for h in held}
    assert len(addresses) == len(held)
    for h, x in zip(held, xs, strict=True):
        assert same_bits(h.data, np.where(x < 0, np.float32(0), x))
    released = held.pop().data.ctypes.data
    fresh = ExTensor(xs[0]).relu()  # the released buffer may come back, a live one never
    assert fresh.data.ctypes.data not in {h.data.ctypes.data for h in held}
    assert fresh.data.ctypes.data == released or fresh.data.ctypes.data not in addresses


def test_gradients_returned_by_backward_are_not_recycled(rng):
    shape = (64, 6, 28, 28)
    leaf = ExTensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
    grads = []
    for _ in range(3):
        tape = Tape()
        with tape:
            y = leaf.relu()
        grads.append(tape.backward(y, np.ones(shape, np.float32))[leaf])
    expected = (leaf.data > 0).astype(np.float32)
    for grad in grads:
        assert same_bits(grad, expected)
    assert len({g.ctypes.data for g in grads}) == 3
