"""nn.init: gains and fans equal torch's; each initialiser's distribution, bounds and determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from extensor import ExTensor
from extensor import nn as xnn
from extensor.nn import init


@pytest.mark.parametrize(
    ("nonlinearity", "param"),
    [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None), ("selu", None),
     ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 3), ("conv_transpose3d", None)],
)  # fmt: skip
def test_calculate_gain_equals_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-15
    )


def test_calculate_gain_rejects_unknown_names_and_bad_slopes():
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", True)


@pytest.mark.parametrize("shape", [(3, 4), (6, 2, 5, 5), (4, 3, 2), (1, 1, 1, 1, 7)])
def test_fans_equal_torch(shape):
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init.calculate_fan_in_and_fan_out(np.empty(shape)) == expected


def test_fans_need_two_dimensions():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.calculate_fan_in_and_fan_out(np.empty(5))


def _gen(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize(
    ("fill", "bound"),
    [
        (lambda t: init.xavier_uniform_(t, gain=2.0, generator=_gen()), 2.0 * math.sqrt(6 / (300 + 200))),
        (lambda t: init.kaiming_uniform_(t, a=math.sqrt(5), generator=_gen()), 1 / math.sqrt(200)),
        (lambda t: init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu", generator=_gen()),
         math.sqrt(2) * math.sqrt(3 / 300)),
        (lambda t: init.uniform_(t, -0.3, 0.3, generator=_gen()), 0.3),
    ],
)  # fmt: skip
def test_uniform_initialisers_fill_their_interval(fill, bound):
    tensor = xnn.Parameter(np.zeros((300, 200), np.float32))
    assert fill(tensor) is tensor
    values = tensor.data.astype(np.float64)
    assert np.abs(values).max() <= bound * (1 + 1e-6)
    assert np.abs(values).max() > 0.99 * bound
    assert abs(values.var() - bound**2 / 3) < 0.03 * bound**2 / 3  # U(-b, b) has variance b²/3


@pytest.mark.parametrize(
    ("fill", "std"),
    [
        (lambda t: init.xavier_normal_(t, generator=_gen()), math.sqrt(2 / (300 + 200))),
        (lambda t: init.kaiming_normal_(t, nonlinearity="relu", generator=_gen()), math.sqrt(2 / 200)),
        (lambda t: init.kaiming_normal_(t, a=0.1, mode="fan_out", generator=_gen()),
         math.sqrt(2 / (1 + 0.01)) / math.sqrt(300)),
        (lambda t: init.normal_(t, 0.0, 0.02, generator=_gen()), 0.02),
    ],
)  # fmt: skip
def test_normal_initialisers_have_the_right_spread(fill, std):
    tensor = fill(np.zeros((300, 200)))
    assert abs(tensor.mean()) < 5 * std / math.sqrt(tensor.size)
    assert abs(tensor.std() / std - 1) < 0.02


def test_constant_fills_and_orthogonal():
    t = ExTensor(np.empty((3, 4)))
    np.testing.assert_array_equal(init.zeros_(t).data, 0)
    np.testing.assert_array_equal(init.ones_(t).data, 1)
    np.testing.assert_array_equal(init.constant_(t, 2.5).data, 2.5)
    for shape in [(4, 6), (6, 4), (3, 2, 2)]:
        w = init.orthogonal_(np.empty(shape), gain=2.0, generator=_gen()).reshape(shape[0], -1)
        small = w @ w.T if shape[0] <= w.shape[1] else w.T @ w
        np.testing.assert_allclose(small, 4.0 * np.eye(small.shape[0]), atol=1e-12)


def test_same_generator_state_is_bit_identical_and_dtype_is_kept():
    a = init.kaiming_uniform_(np.empty((5, 7), np.float32), generator=_gen(3))
    b = init.kaiming_uniform_(np.empty((5, 7), np.float32), generator=_gen(3))
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)


def test_filling_keeps_the_storage():
    param = xnn.Parameter(np.zeros((4, 4)))
    storage = param.data
    init.xavier_uniform_(param, generator=_gen())
    assert param.data is storage and storage.any()


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode must be"):
        init.kaiming_normal_(np.empty((3, 3)), mode="fan_avg")
    with pytest.raises(ValueError, match="a <= b"):
        init.uniform_(np.empty(3), 1.0, 0.0)
    with pytest.raises(ValueError, match="std >= 0"):
        init.normal_(np.empty(3), 0.0, -1.0)
    with pytest.raises(TypeError, match="ExTensor or a NumPy array"):
        init.zeros_([1.0, 2.0])
    with pytest.warns(UserWarning, match="zero-element"):
        init.kaiming_uniform_(np.empty((0, 3)))
