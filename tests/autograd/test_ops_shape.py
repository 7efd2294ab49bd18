"""reshape, transpose, permute, flatten, squeeze, unsqueeze, indexing, concatenate and stack against torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import extensor as et
from extensor import ExTensor
from extensor.autograd import gradcheck

FLOATS = [np.float32, np.float64]

SHAPE_OPS = [
    ("reshape", lambda t: t.reshape(4, 6), lambda t: t.reshape(4, 6)),
    ("reshape_tuple_infer", lambda t: t.reshape((-1, 3)), lambda t: t.reshape(-1, 3)),
    ("view", lambda t: t.view(24), lambda t: t.view(24)),
    ("transpose", lambda t: t.transpose(0, 2), lambda t: t.transpose(0, 2)),
    ("transpose_default", lambda t: t.transpose(), lambda t: t.transpose(-2, -1)),
    ("T", lambda t: t.T, lambda t: t.permute(2, 1, 0)),
    ("permute", lambda t: t.permute(1, 2, 0), lambda t: t.permute(1, 2, 0)),
    ("permute_tuple", lambda t: t.permute((2, 0, 1)), lambda t: t.permute(2, 0, 1)),
    ("flatten", lambda t: t.flatten(), lambda t: t.flatten()),
    ("flatten_1", lambda t: t.flatten(1), lambda t: t.flatten(1)),
    ("flatten_0_1", lambda t: t.flatten(0, 1), lambda t: t.flatten(0, 1)),
    ("unsqueeze", lambda t: t.unsqueeze(1), lambda t: t.unsqueeze(1)),
    ("unsqueeze_end", lambda t: t.unsqueeze(-1), lambda t: t.unsqueeze(-1)),
    ("squeeze_noop", lambda t: t.squeeze(0), lambda t: t.squeeze(0)),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("name", "ex_fn", "torch_fn"), SHAPE_OPS)
def test_shape_ops_match_torch(check_parity, rng, dtype, name, ex_fn, torch_fn):
    check_parity(ex_fn, torch_fn, [rng.standard_normal((2, 3, 4))], dtype)


@pytest.mark.parametrize("axis", [None, 0, 2, (0, 2), -1])
def test_squeeze_matches_torch(check_parity, rng, axis):
    torch_fn = (lambda t: t.squeeze()) if axis is None else (lambda t: t.squeeze(axis))
    check_parity(lambda t: t.squeeze(axis), torch_fn, [rng.standard_normal((1, 3, 1))], np.float64)


def test_shape_ops_gradcheck(rng):
    x = ExTensor(rng.standard_normal((2, 3, 2)), requires_grad=True)
    assert gradcheck(lambda t: t.permute(2, 0, 1).reshape(4, 3).transpose().flatten().unsqueeze(0) * 1.5, [x])


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((5, 5), "cannot reshape"),
        ((-1, -1), "only one dimension"),
        ((-2, 12), "invalid dimension"),
        ((7, -1), r"\(24 elements\) into shape \(7, -1\)"),
    ],
)
def test_reshape_errors_name_the_shapes(shape, message):
    with pytest.raises(ValueError, match=message):
        ExTensor(np.ones((2, 3, 4))).reshape(*shape)


def test_permute_flatten_unsqueeze_errors():
    x = ExTensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match="not a permutation"):
        x.permute(0, 0)
    with pytest.raises(ValueError, match="needs 2 dimensions"):
        x.permute(0, 1, 2)
    with pytest.raises(ValueError, match="start_dim"):
        x.flatten(1, 0)
    with pytest.raises(ValueError, match="out of range"):
        x.unsqueeze(3)
    with pytest.raises(TypeError, match="ints"):
        x.reshape(2.0, 3)
    with pytest.raises(ValueError, match="more than once"):  # torch: "dim 0 appears multiple times"
        ExTensor(np.ones((1, 2))).squeeze((0, -2))


def test_zero_dim_flatten_and_transpose_like_torch():
    x = ExTensor(np.array(3.0))
    assert x.flatten().shape == tuple(torch.tensor(3.0).flatten().shape)
    assert ExTensor(np.ones(4)).transpose().shape == (4,)


INDICES = [
    ("int", 1),
    ("negative_int", -1),
    ("slice", slice(1, None)),
    ("step_slice", (slice(None), slice(0, None, 2))),
    ("none", (None, 0)),
    ("ellipsis", (Ellipsis, 1)),
    ("ellipsis_none", (0, Ellipsis, None)),
    ("int_array_repeats", np.array([0, 2, 0, 0])),
    ("int_list", [1, 1]),
    ("two_int_arrays", (np.array([0, 2, 2]), np.array([1, 1, 3]))),
    ("array_and_slice", (slice(None), np.array([[0, 1], [1, 1]]))),
    ("bool_mask_rows", np.array([True, False, True])),
    ("bool_mask_full", "full_mask"),
    ("int_tensor", "int_tensor"),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("name", "index"), INDICES)
def test_getitem_matches_torch(check_parity, rng, dtype, name, index):
    x = rng.standard_normal((3, 4, 5))
    if isinstance(index, str) and index == "full_mask":
        mask = x > 0
        check_parity(lambda t: t[ExTensor(mask)], lambda t: t[torch.from_numpy(mask)], [x], dtype)
        return
    if isinstance(index, str) and index == "int_tensor":
        idx = np.array([2, 0, 2])
        check_parity(lambda t: t[ExTensor(idx)], lambda t: t[torch.from_numpy(idx)], [x], dtype)
        return

    def to_torch(i):
        if isinstance(i, tuple):
            return tuple(to_torch(p) for p in i)
        return torch.from_numpy(i) if isinstance(i, np.ndarray) else i

    check_parity(lambda t: t[index], lambda t: t[to_torch(index)], [x], dtype)


def test_getitem_gradcheck_with_repeated_indices(rng):
    x = ExTensor(rng.standard_normal((4, 3)), requires_grad=True)
    assert gradcheck(lambda t: t[np.array([0, 0, 3, 1])] * t[1:3].sum(), [x])


def test_getitem_out_of_range_is_an_index_error():
    with pytest.raises(IndexError):
        ExTensor(np.ones((2, 3)))[5]


def test_iteration_yields_rows():
    x = ExTensor(np.arange(6.0).reshape(3, 2))
    assert [row.tolist() for row in x] == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_matches_torch_cat(check_parity, rng, dtype, axis):
    shapes = {0: [(2, 3), (1, 3), (4, 3)], 1: [(2, 1), (2, 3), (2, 2)], -1: [(2, 1), (2, 3), (2, 2)]}[axis]
    check_parity(
        lambda a, b, c: et.concatenate([a, b, c], axis=axis),
        lambda a, b, c: torch.cat([a, b, c], dim=axis),
        [rng.standard_normal(s) for s in shapes],
        dtype,
    )


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack_matches_torch(check_parity, rng, dtype, axis):
    check_parity(
        lambda a, b: et.stack((a, b), axis),
        lambda a, b: torch.stack((a, b), axis),
        [rng.standard_normal((2, 3)), rng.standard_normal((2, 3))],
        dtype,
    )


def test_cat_promotes_dtypes_and_mixes_constants(check_parity, rng):
    a = rng.standard_normal((2, 2))
    check_parity(
        lambda t: et.cat([t, ExTensor(np.ones((1, 2), dtype=np.float32))]),
        lambda t: torch.cat([t, torch.ones(1, 2)]),
        [a],
        np.float64,
    )


def test_concatenate_and_stack_gradcheck(rng):
    a = ExTensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = ExTensor(rng.standard_normal((2, 3)), requires_grad=True)
    assert gradcheck(lambda x, y: et.stack([x, y * y], 1).sum(0) + et.cat([x, y], 1)[:, 1:4], [a, b])


def test_concatenate_and_stack_errors():
    a, b = ExTensor(np.ones((2, 3))), ExTensor(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"tensor 1 has shape \(3, 2\)"):
        et.concatenate([a, b], axis=1)
    with pytest.raises(ValueError, match="one shape"):
        et.stack([a, b])
    with pytest.raises(ValueError, match="at least one"):
        et.stack([])
    with pytest.raises(TypeError, match="sequence of tensors"):
        et.cat(a)
    with pytest.raises(ValueError, match="zero-dimensional"):
        et.cat([ExTensor(np.array(1.0))])
