"""== != < <= > >= : boolean results as torch's, with broadcasting and promotion, and no gradient."""

from __future__ import annotations

import operator

import numpy as np
import pytest
import torch

from extensor import ExTensor, Tape

OPS = [operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize(
    "other",
    [np.array([[0.0], [1.0]]), 1, 0.5, np.array([1, 0, 2]), np.array(1.0, dtype=np.float32)],
)
def test_comparisons_match_torch(rng, op, other):
    x = rng.integers(0, 3, size=(2, 3)).astype(np.float64)
    expected = op(torch.from_numpy(x), torch.from_numpy(other) if isinstance(other, np.ndarray) else other)
    result = op(ExTensor(x), ExTensor(other) if isinstance(other, np.ndarray) else other)
    assert result.dtype == np.bool_
    np.testing.assert_array_equal(result.data, expected.numpy())


@pytest.mark.parametrize("op", OPS)
def test_reflected_comparisons_with_scalars(op):
    x = np.array([0.0, 1.0, 2.0])
    np.testing.assert_array_equal(op(1.0, ExTensor(x)).data, op(1.0, torch.from_numpy(x)).numpy())


def test_comparisons_record_nothing_and_none_is_not_equal():
    x = ExTensor(np.ones(2), requires_grad=True)
    tape = Tape()
    with tape:
        mask = x > 0
    assert len(tape) == 0 and not mask.requires_grad
    assert (x == None) is False  # noqa: E711 - the behaviour under test
    assert (x != None) is True  # noqa: E711
