"""+ - * / ** neg @ with broadcasting, against torch; PyTorch's type promotion; matmul errors."""

from __future__ import annotations

import operator

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

from extensor import ExTensor, Tape
from extensor.autograd import gradcheck

FLOATS = [np.float32, np.float64]

BINARY = [
    ("add", lambda a, b: a + b),
    ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b),
    ("pow", lambda a, b: a**b),
]


def _operands(rng, shapes, name):
    a, b = (rng.standard_normal(s) for s in shapes)
    if name == "pow":
        a = np.abs(a) + 0.5
    if name == "div":
        b = np.sign(b) * (np.abs(b) + 0.5)
    return [a, b]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3),
    op=st.sampled_from(BINARY),
    dtype=st.sampled_from(FLOATS),
    seed=st.integers(0, 1000),
)
def test_binary_ops_broadcast_like_torch(check_parity, shapes, op, dtype, seed):
    name, fn = op
    check_parity(fn, fn, _operands(np.random.default_rng(seed), shapes.input_shapes, name), dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("name", "fn"), BINARY)
def test_reflected_operators_with_scalars(check_parity, rng, dtype, name, fn):
    x = _operands(rng, [(3, 4), ()], name)[0]
    check_parity(lambda t: fn(2.5, t), lambda t: fn(2.5, t), [x], dtype)
    check_parity(lambda t: fn(t, 3), lambda t: fn(t, 3), [x], dtype)


@pytest.mark.parametrize(("name", "fn"), BINARY)
def test_binary_gradcheck(rng, name, fn):
    a, b = _operands(rng, [(3, 1, 2), (4, 1)], name)
    assert gradcheck(fn, [ExTensor(a, requires_grad=True), ExTensor(b, requires_grad=True)])


def test_neg_and_pos(check_parity, rng):
    check_parity(lambda t: -t, lambda t: -t, [rng.standard_normal((2, 3))], np.float64)
    x = ExTensor(np.ones(2))
    assert +x is x


def test_pow_edge_cases_match_torch(check_parity):
    base = np.array([0.0, -2.0, 3.0, 0.0, 0.0, 2.0])
    exponent = np.array([0.0, 2.0, 0.5, 2.0, 1.0, 0.0])
    check_parity(lambda a, b: a**b, lambda a, b: a**b, [base, exponent], np.float64)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    ("shape_a", "shape_b"),
    [
        ((3, 4), (4, 5)),
        ((4,), (4, 5)),
        ((3, 4), (4,)),
        ((4,), (4,)),
        ((2, 3, 4), (4, 5)),
        ((2, 1, 3, 4), (5, 4, 2)),
    ],
)
def test_matmul_matches_torch(check_parity, rng, dtype, shape_a, shape_b):
    check_parity(
        lambda a, b: a @ b,
        lambda a, b: a @ b,
        [rng.standard_normal(shape_a), rng.standard_normal(shape_b)],
        dtype,
    )


def test_matmul_gradcheck_and_rmatmul(rng):
    a = ExTensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    b = ExTensor(rng.standard_normal((4, 2)), requires_grad=True)
    assert gradcheck(lambda x, y: x.matmul(y), [a, b])
    result = rng.standard_normal((3, 2)) @ ExTensor(rng.standard_normal((2, 2)))
    assert isinstance(result, ExTensor)


def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\) @ \(5, 2\)"):
        ExTensor(np.ones((3, 4))) @ ExTensor(np.ones((5, 2)))
    with pytest.raises(ValueError, match="at least one dimension"):
        ExTensor(np.ones(3)) @ ExTensor(np.array(2.0))


def test_constant_operand_gets_no_gradient():
    x = ExTensor(np.ones((2, 2)), requires_grad=True)
    w = ExTensor(np.full((2, 2), 3.0))
    tape = Tape()
    with tape:
        y = (x @ w).sum()
    grads = tape.backward(y)
    assert list(grads) == [x] and w.grad is None


PROMOTION_CASES = [
    (np.ones(3, np.float32), 2.0),
    (np.ones(3, np.float32), 2),
    (np.ones(3, np.int64), 2.5),
    (np.ones(3, np.int32), 5),
    (np.ones(3, np.bool_), 1),
    (np.ones(3, np.float32), np.array(2.0, np.float64)),
    (np.ones(3, np.int64), np.array(2.0, np.float64)),
    (np.ones(3, np.float32), np.ones(3, np.float64)),
    (np.ones(3, np.int64), np.ones(3, np.float32)),
    (np.ones(3, np.float64), np.float32(2.0)),
    (np.ones(3, np.uint8), np.ones(3, np.int8)),
]


@pytest.mark.parametrize(("a", "b"), PROMOTION_CASES)
@pytest.mark.parametrize("op", [operator.add, operator.mul, operator.truediv, operator.sub])
def test_type_promotion_matches_torch(a, b, op):
    if op is operator.sub and (a.dtype == np.bool_ or getattr(b, "dtype", None) == np.bool_):
        return  # subtracting booleans is an error in both libraries
    ta = torch.from_numpy(a)
    tb = torch.from_numpy(b) if isinstance(b, np.ndarray) else b
    ea = ExTensor(a)
    eb = ExTensor(b) if isinstance(b, np.ndarray) else b
    expected = op(ta, tb)
    result = op(ea, eb)
    assert str(result.dtype) == str(expected.dtype).removeprefix("torch.")
    np.testing.assert_allclose(result.data, expected.numpy(), rtol=1e-6)


def test_mixed_precision_gradient_reaches_the_float64_leaf(check_parity, rng):
    small = ExTensor(rng.standard_normal(3).astype(np.float32))
    check_parity(
        lambda t: t * small, lambda t: t * torch.from_numpy(small.data), [rng.standard_normal(())], np.float64
    )


@settings(max_examples=30, deadline=None)
@given(
    a_shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
    b_shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
    op=st.sampled_from(BINARY),
)
def test_incompatible_shapes_raise_a_value_error_naming_them(a_shape, b_shape, op):
    try:
        np.broadcast_shapes(a_shape, b_shape)
    except ValueError:
        pass
    else:
        return
    _, fn = op
    a = ExTensor(np.ones(a_shape) + 1, requires_grad=True)
    with Tape(), pytest.raises(ValueError) as info:
        fn(a, ExTensor(np.ones(b_shape) + 1))
    message = str(info.value).replace(",)", ")").replace(" ", "")
    for shape in (a_shape, b_shape):
        assert str(shape).replace(",)", ")").replace(" ", "") in message
