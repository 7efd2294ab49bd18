"""DLPack both ways with torch, without copies: the memory is shared (checked by pointer and by writes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import extensor as et
from extensor import ExTensor


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64, torch.bool, torch.uint8])
def test_torch_to_extensor_shares_memory(dtype):
    t = torch.arange(6).reshape(2, 3).to(dtype)
    e = et.from_dlpack(t)
    assert e.shape == (2, 3) and str(e.dtype) == str(dtype).removeprefix("torch.")
    assert e.data.ctypes.data == t.data_ptr()
    if dtype != torch.bool:
        e.data[0, 0] = 5
        assert t[0, 0].item() == 5


def test_extensor_to_torch_shares_memory():
    e = ExTensor(np.arange(6.0).reshape(3, 2))
    t = torch.from_dlpack(e)
    assert t.data_ptr() == e.data.ctypes.data and t.dtype == torch.float64
    t[1, 1] = -1.0
    assert e.data[1, 1] == -1.0
    assert e.__dlpack_device__() == (1, 0)


def test_round_trip_and_non_contiguous_views():
    t = torch.randn(4, 5)[:, ::2]  # strided: shared as a view, not copied
    e = et.from_dlpack(t)
    np.testing.assert_array_equal(e.data, t.numpy())
    back = torch.from_dlpack(e)
    assert back.data_ptr() == t.data_ptr() and back.stride() == t.stride()


def test_tensor_that_requires_grad_is_detached_first_and_grad_can_be_asked():
    t = torch.ones(3, requires_grad=True)
    e = et.from_dlpack(t, requires_grad=True)
    assert e.requires_grad and e.data.ctypes.data == t.data_ptr()


def test_from_dlpack_of_an_extensor_and_of_a_numpy_array():
    a = np.ones(3)
    assert et.from_dlpack(a).data.ctypes.data == a.ctypes.data
    e = ExTensor(a)
    assert np.shares_memory(et.from_dlpack(e).data, a)


class _Gpu:
    def __dlpack__(self, **kwargs):
        raise AssertionError("must not be called")

    def __dlpack_device__(self):
        return (2, 0)


def test_errors():
    with pytest.raises(TypeError, match="__dlpack__"):
        et.from_dlpack([1.0, 2.0])
    with pytest.raises(ValueError, match="on the CPU"):
        et.from_dlpack(_Gpu())
    with pytest.raises(TypeError, match="complex"):
        et.from_dlpack(torch.ones(2, dtype=torch.complex64))


def _aligned(values: np.ndarray, alignment: int = 64) -> np.ndarray:
    """A copy of `values` whose first byte is `alignment`-aligned (XLA shares only such buffers)."""
    raw = np.empty(values.size + alignment, dtype=values.dtype)
    skip = (-raw.ctypes.data % alignment) // values.dtype.itemsize
    aligned = raw[skip : skip + values.size].reshape(values.shape)
    aligned[...] = values
    return aligned


def test_jax_to_extensor_shares_memory():
    jnp = pytest.importorskip("jax.numpy")
    j = jnp.arange(12, dtype=jnp.float32).reshape(3, 4)
    e = et.from_dlpack(j)
    assert e.shape == (3, 4) and e.dtype == np.float32
    assert e.data.ctypes.data == j.unsafe_buffer_pointer()
    np.testing.assert_array_equal(e.data, np.asarray(j))


def test_extensor_to_jax_shares_aligned_memory():
    jnp = pytest.importorskip("jax.numpy")
    e = ExTensor(_aligned(np.arange(6.0, dtype=np.float32).reshape(2, 3)))
    j = jnp.from_dlpack(e)
    assert j.unsafe_buffer_pointer() == e.data.ctypes.data
    np.testing.assert_array_equal(np.asarray(j), e.data)
