"""The scratch-array pool behind conv and pooling: reuse only what nothing references."""

from __future__ import annotations

import numpy as np

from extensor.autograd.ops import _workspace


def test_an_array_in_use_is_never_handed_out_again():
    _workspace.clear()
    a = _workspace.take((3, 4), np.float32)
    b = _workspace.take((3, 4), np.float32)
    assert a is not b
    view = a[1:]
    del a
    c = _workspace.take((3, 4), np.float32)
    assert c is not b and c.base is None
    assert view.base is not c  # the array behind a live view stays reserved


def test_a_released_array_is_reused():
    _workspace.clear()
    a = _workspace.take((5,), np.float64)
    address = a.ctypes.data
    del a
    b = _workspace.take((5,), np.float64)
    assert b.ctypes.data == address
    assert _workspace.take((5,), np.float32).dtype == np.float32  # dtype is part of the key


def test_take_zeros_and_the_byte_cap():
    _workspace.clear()
    z = _workspace.take_zeros((4, 4), np.float64)
    np.testing.assert_array_equal(z, 0)
    big = _workspace.take((40 * 2**20,), np.float64)  # 320 MiB would exceed the pool's cap
    assert _workspace.pooled_bytes() < 2**28
    assert big.size == 40 * 2**20


def test_empty_pools_only_large_arrays():
    _workspace.clear()
    small = _workspace.empty((4, 4), np.float32)  # below 128 KiB: plain np.empty, never remembered
    assert small.shape == (4, 4) and _workspace.pooled_bytes() == 0
    large = _workspace.empty((256, 256), np.float32)  # 256 KiB
    address = large.ctypes.data
    assert _workspace.pooled_bytes() == large.nbytes
    del large
    assert _workspace.empty((256, 256), np.float32).ctypes.data == address
