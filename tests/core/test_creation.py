"""tensor, zeros, ones, full, arange, randn, rand, *_like, from_numpy: dtypes, shapes and values as torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import extensor as et
from extensor import ExTensor


@pytest.mark.parametrize(
    "data",
    [
        1.5,
        3,
        True,
        [1.0, 2.0],
        [[1, 2], [3, 4]],
        [[1, 2.0], [3, 4]],
        [1, True],
        np.arange(3, dtype=np.int32),
        np.ones(2, dtype=np.float64),
        np.float64(2.5),
        [],
        [[True, False]],
    ],
)
def test_tensor_dtype_follows_torch(data):
    result = et.tensor(data)
    expected = torch.tensor(data)
    assert str(result.dtype) == str(expected.dtype).removeprefix("torch.")
    assert result.shape == tuple(expected.shape)
    np.testing.assert_array_equal(result.data, expected.numpy())


def test_tensor_copies_and_takes_dtype_and_requires_grad():
    source = np.ones(3)
    t = et.tensor(source, dtype=np.float32, requires_grad=True)
    assert t.dtype == np.float32 and t.requires_grad and not np.shares_memory(t.data, source)
    u = et.tensor(t)
    assert not np.shares_memory(u.data, t.data) and not u.requires_grad
    with pytest.raises(TypeError, match="floating-point"):
        et.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="dtype"):
        et.tensor([1.0], dtype="complex64")


@pytest.mark.parametrize("name", ["zeros", "ones"])
@pytest.mark.parametrize("shape", [(2, 3), ((2, 3),), ([4],), ((),), (0, 2)])
@pytest.mark.parametrize("dtype", [None, np.float64, np.int64, bool])
def test_zeros_ones_match_torch(name, shape, dtype):
    torch_dtype = {None: None, np.float64: torch.float64, np.int64: torch.int64, bool: torch.bool}[dtype]
    result = getattr(et, name)(*shape, dtype=dtype)
    expected = getattr(torch, name)(*shape, dtype=torch_dtype)
    assert str(result.dtype) == str(expected.dtype).removeprefix("torch.")
    np.testing.assert_array_equal(result.data, expected.numpy())


def test_shape_errors_name_the_offending_value():
    with pytest.raises(ValueError, match="negative dimension -1"):
        et.zeros(2, -1)
    with pytest.raises(TypeError, match=r"ints, got 2\.0"):
        et.ones(2.0)
    with pytest.raises(TypeError, match="ints"):
        et.randn("3")


@pytest.mark.parametrize("fill", [2.5, 7, True, np.float64(1.25)])
def test_full_dtype_follows_the_value(fill):
    result, expected = et.full((2, 2), fill), torch.full((2, 2), fill)
    assert str(result.dtype) == str(expected.dtype).removeprefix("torch.")
    np.testing.assert_array_equal(result.data, expected.numpy())
    assert et.full(3, 1.0, dtype=np.float64).dtype == np.float64
    with pytest.raises(TypeError, match="fill_value"):
        et.full(2, "x")


@pytest.mark.parametrize(
    "args",
    [(5,), (2, 7), (1, 2.5, 0.5), (5, 0, -2), (0, 1, 0.3), (0.0, 1.0, 0.1), (-3, 3, 0.7), (10, 10), (1.5,)],
)
def test_arange_matches_torch(args):
    result, expected = et.arange(*args), torch.arange(*args)
    assert str(result.dtype) == str(expected.dtype).removeprefix("torch.")
    assert result.shape == tuple(expected.shape)
    np.testing.assert_allclose(result.data, expected.numpy(), rtol=1e-7, atol=0)
    assert et.arange(4, dtype=np.float64).dtype == np.float64


def test_arange_errors():
    with pytest.raises(ValueError, match="nonzero"):
        et.arange(0, 3, 0)
    with pytest.raises(ValueError, match="wrong sign"):
        et.arange(0, 3, -1)
    with pytest.raises(ValueError, match="finite"):
        et.arange(0, float("inf"))
    with pytest.raises(TypeError, match="number"):
        et.arange("3")


@pytest.mark.parametrize("name", ["randn", "rand"])
def test_random_creation_is_reproducible_and_typed(name):
    fn = getattr(et, name)
    a = fn(3, 4, generator=np.random.default_rng(7))
    b = fn((3, 4), generator=np.random.default_rng(7))
    assert a.dtype == np.float32 and a.shape == (3, 4)
    np.testing.assert_array_equal(a.data, b.data)
    c = fn(1000, dtype=np.float64, generator=np.random.default_rng(8), requires_grad=True)
    assert c.dtype == np.float64 and c.requires_grad
    with pytest.raises(TypeError, match="float32 or float64"):
        fn(2, dtype=np.int64)
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        fn(2, generator=7)


def test_random_distributions_have_the_right_moments():
    normal = et.randn(200_000, dtype=np.float64, generator=np.random.default_rng(1)).data
    uniform = et.rand(200_000, dtype=np.float64, generator=np.random.default_rng(2)).data
    assert abs(normal.mean()) < 0.01 and abs(normal.std() - 1) < 0.01
    assert uniform.min() >= 0 and uniform.max() < 1 and abs(uniform.mean() - 0.5) < 0.005


def test_random_creation_uses_the_default_generator(restore_default_generator):
    et.manual_seed(11)
    first = et.randn(5).data
    et.manual_seed(11)
    np.testing.assert_array_equal(et.randn(5).data, first)
    assert not np.array_equal(et.randn(5).data, first)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_like_functions_take_shape_and_dtype(dtype):
    ref = ExTensor(np.ones((2, 3), dtype=dtype))
    for fn, value in ((et.zeros_like, 0), (et.ones_like, 1)):
        out = fn(ref)
        assert out.shape == (2, 3) and out.dtype == dtype and np.all(out.data == value)
    full = et.full_like(ref, 3)
    assert full.dtype == dtype and np.all(full.data == 3)
    assert et.zeros_like(ref, dtype=np.float32).dtype == np.float32
    if dtype != np.int64:
        r = et.randn_like(ref, generator=np.random.default_rng(0))
        u = et.rand_like(ref.data, generator=np.random.default_rng(0))
        assert r.dtype == dtype and u.dtype == dtype and r.shape == u.shape == (2, 3)
    else:
        with pytest.raises(TypeError, match="float32 or float64"):
            et.randn_like(ref)
    with pytest.raises(TypeError, match="ExTensor or a NumPy array"):
        et.zeros_like([1, 2])


def test_from_numpy_shares_memory():
    array = np.arange(4.0)
    t = et.from_numpy(array)
    array[0] = 9
    assert t.data[0] == 9 and t.data is array
    with pytest.raises(TypeError, match=r"numpy\.ndarray"):
        et.from_numpy([1.0])
    with pytest.raises(TypeError, match="complex"):
        et.from_numpy(np.ones(2, dtype=np.complex64))
