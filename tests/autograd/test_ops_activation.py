"""relu, sigmoid, tanh, gelu, softmax, log_softmax: values and gradients against torch, gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from extensor import ExTensor, Tape
from extensor.autograd import gradcheck

FLOATS = [np.float32, np.float64]

ACTIVATIONS = [
    ("relu", lambda x: x.relu(), torch.relu),
    ("sigmoid", lambda x: x.sigmoid(), torch.sigmoid),
    ("tanh", lambda x: x.tanh(), torch.tanh),
    ("gelu", lambda x: x.gelu(), F.gelu),
    ("gelu_tanh", lambda x: x.gelu("tanh"), lambda x: F.gelu(x, approximate="tanh")),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("name", "ex_fn", "torch_fn"), ACTIVATIONS)
def test_activation_matches_torch(check_parity, rng, dtype, name, ex_fn, torch_fn):
    x = 3 * rng.standard_normal((6, 7))
    x[0, 0] = 0.0  # relu's kink: torch's gradient there is 0
    check_parity(ex_fn, torch_fn, [x], dtype)


@pytest.mark.parametrize(("name", "ex_fn", "torch_fn"), ACTIVATIONS)
def test_activation_gradcheck(rng, name, ex_fn, torch_fn):
    x = rng.standard_normal((3, 4))
    x[np.abs(x) < 0.05] = 0.3  # keep finite differences away from relu's kink
    assert gradcheck(ex_fn, [ExTensor(x, requires_grad=True)])


@pytest.mark.parametrize("dtype", FLOATS)
def test_sigmoid_is_stable_for_extreme_inputs(dtype):
    x = np.array([-1000.0, -88.0, -30.0, 0.0, 30.0, 88.0, 1000.0], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = ExTensor(x).sigmoid().data
    expected = torch.sigmoid(torch.from_numpy(x)).numpy()
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-30)


def test_nan_propagates_through_activations_like_torch(check_parity):
    x = np.array([np.nan, -1.0, 0.0, 2.0])
    for _name, ex_fn, torch_fn in ACTIVATIONS:
        check_parity(ex_fn, torch_fn, [x], np.float64)


def test_int_relu_keeps_int_and_gelu_rejects_bad_mode():
    x = ExTensor(np.array([-2, 3]))
    assert x.relu().dtype == np.int64 and x.relu().tolist() == [0, 3]
    with pytest.raises(ValueError, match="approximate"):
        ExTensor(np.ones(2)).gelu("fast")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axis", [0, 1, -1, 2])
@pytest.mark.parametrize(
    ("ex_name", "torch_fn"), [("softmax", torch.softmax), ("log_softmax", torch.log_softmax)]
)
def test_softmax_family_matches_torch(check_parity, rng, dtype, axis, ex_name, torch_fn):
    x = 4 * rng.standard_normal((3, 4, 5))
    check_parity(lambda t: getattr(t, ex_name)(axis), lambda t: torch_fn(t, axis), [x], dtype)


@pytest.mark.parametrize("ex_name", ["softmax", "log_softmax"])
def test_softmax_family_gradcheck(rng, ex_name):
    x = ExTensor(rng.standard_normal((3, 5)), requires_grad=True)
    assert gradcheck(lambda t: getattr(t, ex_name)(0), [x])
    assert gradcheck(lambda t: getattr(t, ex_name)(-1), [x])


@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_is_stable_for_huge_logits(check_parity, dtype):
    x = np.array([[1000.0, 0.0, -1000.0], [-5e4, -5e4 + 1, -5e4 + 2]])
    with np.errstate(over="raise", invalid="raise"):
        check_parity(lambda t: t.log_softmax(1), lambda t: torch.log_softmax(t, 1), [x], dtype)
        check_parity(lambda t: t.softmax(1), lambda t: torch.softmax(t, 1), [x], dtype)


def test_softmax_of_a_zero_dim_tensor_and_bad_axis():
    x = ExTensor(np.array(2.5), requires_grad=True)
    tape = Tape()
    with tape:
        y = x.log_softmax(0)
    assert y.shape == () and y.item() == torch.log_softmax(torch.tensor(2.5), 0).item()
    tape.backward(y)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        ExTensor(np.ones((2, 2))).softmax(2)
