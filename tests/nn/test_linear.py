"""Linear: values and gradients against torch.nn.Linear, gradcheck, initialisation, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from extensor import ExTensor, Tape
from extensor import nn as xnn
from extensor.autograd import gradcheck
from extensor.core.random import manual_seed
from extensor.nn import functional as F

DTYPES = [np.float64, np.float32]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch_shape", [(5,), (2, 3), ()])
def test_linear_matches_torch(layer_check, rng, dtype, bias, batch_shape):
    ours = xnn.Linear(7, 4, bias=bias, dtype=dtype, generator=rng)
    theirs = torch.nn.Linear(7, 4, bias=bias)
    layer_check(ours, theirs, rng.standard_normal((*batch_shape, 7)), dtype)


def test_input_without_grad_still_gives_parameter_grads(layer_check, rng):
    ours = xnn.Linear(6, 3, dtype=np.float64, generator=rng)
    layer_check(ours, torch.nn.Linear(6, 3), rng.standard_normal((4, 6)), np.float64, x_requires_grad=False)


def test_gradcheck_linear(rng):
    x = ExTensor(rng.standard_normal((3, 4)), requires_grad=True)
    w = ExTensor(rng.standard_normal((2, 4)), requires_grad=True)
    b = ExTensor(rng.standard_normal(2), requires_grad=True)
    assert gradcheck(F.linear, [x, w, b])
    assert gradcheck(lambda x, w: F.linear(x, w), [x, w])


def test_same_generator_seed_gives_identical_layers():
    a = xnn.Linear(20, 10, generator=np.random.default_rng(3))
    b = xnn.Linear(20, 10, generator=np.random.default_rng(3))
    c = xnn.Linear(20, 10, generator=np.random.default_rng(4))
    assert np.array_equal(a.weight.data, b.weight.data) and np.array_equal(a.bias.data, b.bias.data)
    assert not np.array_equal(a.weight.data, c.weight.data)


def test_default_generator_follows_manual_seed():
    manual_seed(11)
    a = xnn.Linear(5, 5)
    manual_seed(11)
    b = xnn.Linear(5, 5)
    assert np.array_equal(a.weight.data, b.weight.data) and np.array_equal(a.bias.data, b.bias.data)


def test_default_initialisation_bounds_are_torchs():
    # kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the bias uses the same bound
    layer = xnn.Linear(400, 300, generator=np.random.default_rng(0))
    bound = 1 / math.sqrt(400)
    for values in (layer.weight.data, layer.bias.data):
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() > 0.95 * bound
    assert layer.weight.dtype == np.float32  # torch's default dtype
    # the variance of U(-b, b) is b²/3
    assert abs(layer.weight.data.var() - bound**2 / 3) < 0.05 * bound**2 / 3


def test_repr_matches_torch():
    assert repr(xnn.Linear(3, 2)) == repr(torch.nn.Linear(3, 2))
    assert repr(xnn.Linear(3, 2, bias=False)) == repr(torch.nn.Linear(3, 2, bias=False))


def test_shape_mismatch_names_both_shapes(rng):
    layer = xnn.Linear(4, 2, generator=rng)
    with pytest.raises(ValueError, match=r"\(3, 5\).*\(2, 4\)"):
        layer(rng.standard_normal((3, 5)).astype(np.float32))


def test_dtype_mismatch_and_integer_input_are_type_errors(rng):
    layer = xnn.Linear(4, 2, generator=rng)
    with pytest.raises(TypeError, match=r"float64.*float32|float32.*float64"):
        layer(rng.standard_normal((3, 4)))
    with pytest.raises(TypeError, match="floating-point"):
        layer(np.ones((3, 4), dtype=np.int64))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "4"])
def test_bad_sizes_are_rejected(bad):
    with pytest.raises(ValueError, match="in_features"):
        xnn.Linear(bad, 3)


def test_functional_linear_checks_bias_and_weight_shapes(rng):
    x = rng.standard_normal((2, 3))
    with pytest.raises(ValueError, match="bias must have shape"):
        F.linear(x, rng.standard_normal((4, 3)), rng.standard_normal(3))
    with pytest.raises(ValueError, match="weight must be 2-D"):
        F.linear(x, rng.standard_normal(3))


def test_no_node_is_recorded_outside_a_tape(rng):
    layer = xnn.Linear(3, 2, dtype=np.float64, generator=rng)
    out = layer(rng.standard_normal((2, 3)))
    assert not out.requires_grad
    tape = Tape()
    with tape:
        out = layer(rng.standard_normal((2, 3)))
    assert out.requires_grad and len(tape) == 1  # one fused node
