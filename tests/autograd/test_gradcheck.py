"""gradcheck: accepts correct gradients, pinpoints wrong ones, validates its arguments."""

from __future__ import annotations

import numpy as np
import pytest

from extensor import ExTensor
from extensor.autograd import GradcheckError, gradcheck
from extensor.autograd.function import record


def _scaled_square(x: ExTensor, backward_factor: float) -> ExTensor:
    """x² with a backward of `backward_factor`·x (correct when the factor is 2)."""
    return record(x.data**2, (x,), lambda g: (g * backward_factor * x.data,))


def test_correct_gradients_pass(rng):
    x = ExTensor(rng.standard_normal((2, 3)), requires_grad=True)
    y = ExTensor(rng.standard_normal(3), requires_grad=True)
    assert gradcheck(lambda a, b: (a * b).sum(0) / (1 + b * b), (x, y)) is True
    assert gradcheck(lambda a: _scaled_square(a, 2.0), x)


def test_wrong_gradient_is_named_precisely(rng):
    x = ExTensor(np.array([[1.0, 2.0]]), requires_grad=True)
    c = ExTensor(np.ones(2))
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda k, a: _scaled_square(a, 3.0) * k, [c, x])
    message = str(info.value)
    assert "input 1 element (0, 0)" in message and "output 0 element (0, 0)" in message
    assert "analytic 3, numeric 2 (" in message
    assert gradcheck(lambda a: _scaled_square(a, 3.0), [x], raise_exception=False) is False


def test_several_outputs_and_constant_outputs(rng):
    x = ExTensor(rng.standard_normal(3), requires_grad=True)
    assert gradcheck(lambda a: (a.exp(), a.argmax(), ExTensor(np.ones(2)), a.sum()), [x])


def test_float32_inputs_are_checked_in_float64_without_touching_them(rng):
    data = rng.standard_normal((2, 2)).astype(np.float32)
    x = ExTensor(data.copy(), requires_grad=True)
    seen = []

    def fn(a: ExTensor) -> ExTensor:
        seen.append(a.dtype)
        return a.tanh()

    assert gradcheck(fn, [x])
    assert set(seen) == {np.dtype(np.float64)}
    np.testing.assert_array_equal(x.data, data)
    assert x.grad is None


def test_argument_errors():
    x = ExTensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="requires_grad=True"):
        gradcheck(lambda a: a * 2, [ExTensor(np.ones(2))])
    with pytest.raises(ValueError, match="eps must be a finite positive"):
        gradcheck(lambda a: a * 2, [x], eps=0.0)
    with pytest.raises(ValueError, match="atol"):
        gradcheck(lambda a: a * 2, [x], atol=-1.0)
    with pytest.raises(TypeError, match="not ExTensor"):
        gradcheck(lambda a: a.data * 2, [x])
