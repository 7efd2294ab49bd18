"""Flat buffers: binding, copy-on-assign, re-binding, gradient runs and segment reductions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extensor.core.tensor import ExTensor
from extensor.training.flat import (
    FlatBuffer,
    grad_runs,
    present_runs,
    segment_sum_squares,
    sum_squares,
)


def make_tensors(shapes: list[tuple[int, ...]], dtype: type = np.float32, seed: int = 0) -> list[ExTensor]:
    rng = np.random.default_rng(seed)
    return [ExTensor(rng.standard_normal(shape).astype(dtype), requires_grad=True) for shape in shapes]


def test_binding_keeps_values_and_gradients() -> None:
    tensors = make_tensors([(2, 3), (4,), (), (1, 2, 2)])
    before = [t.data.copy() for t in tensors]
    tensors[1].grad = np.arange(4, dtype=np.float32)
    buffer = FlatBuffer(tensors)
    assert buffer.data.size == 6 + 4 + 1 + 4
    assert list(buffer.offsets) == [0, 6, 10, 11, 15]
    for tensor, value, index in zip(tensors, before, range(4), strict=True):
        np.testing.assert_array_equal(tensor.data, value)
        assert np.shares_memory(tensor.data, buffer.data)
        np.testing.assert_array_equal(buffer.data[buffer.segment(index)], value.reshape(-1))
    assert list(buffer.present) == [False, True, False, False]
    np.testing.assert_array_equal(tensors[1].grad, np.arange(4, dtype=np.float32))
    assert tensors[0].grad is None


def test_assignment_copies_into_the_buffer() -> None:
    tensors = make_tensors([(3,), (2, 2)])
    buffer = FlatBuffer(tensors)
    tensors[1].data = np.full((2, 2), 7.0, dtype=np.float32)
    np.testing.assert_array_equal(buffer.data[3:], np.full(4, 7.0))
    tensors[0].grad = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    assert buffer.present[0] and not buffer.present[1]
    np.testing.assert_array_equal(buffer.grad[:3], [1.0, 2.0, 3.0])
    tensors[0].grad = None
    assert not buffer.present[0]
    assert tensors[0].grad is None
    tensors[0].accumulate_grad(np.ones(3, dtype=np.float32))
    np.testing.assert_array_equal(tensors[0].grad, np.ones(3))
    with pytest.raises(ValueError, match="shape"):
        tensors[0].grad = np.ones(4, dtype=np.float32)
    with pytest.raises(TypeError, match="dtype"):
        tensors[0].data = np.ones(3, dtype=np.float64)


def test_zero_grad_is_one_fill_or_flag_reset() -> None:
    tensors = make_tensors([(3,), (2,)])
    buffer = FlatBuffer(tensors)
    tensors[0].grad = np.ones(3, dtype=np.float32)
    buffer.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(tensors[0].grad, np.zeros(3))
    assert tensors[1].grad is None  # absent stays absent, as in torch
    buffer.zero_grad()
    assert tensors[0].grad is None and not buffer.present.any()


def test_rebinding_invalidates_the_old_buffer() -> None:
    tensors = make_tensors([(3,), (2,)])
    old = FlatBuffer(tensors)
    tensors[1].grad = np.array([5.0, 6.0], dtype=np.float32)
    tensors[1].data = np.array([1.0, 2.0], dtype=np.float32)
    old.check_valid()
    new = FlatBuffer([tensors[1]])
    assert not old.valid and new.valid
    np.testing.assert_array_equal(tensors[1].data, [1.0, 2.0])
    np.testing.assert_array_equal(tensors[1].grad, [5.0, 6.0])
    assert np.shares_memory(tensors[1].data, new.data)
    with pytest.raises(RuntimeError, match="now managed by another optimizer"):
        old.check_valid()
    # the tensor that stayed is still bound to the old buffer and untouched
    assert np.shares_memory(tensors[0].data, old.data)


def test_invalid_construction() -> None:
    with pytest.raises(ValueError, match="empty"):
        FlatBuffer([])
    t = make_tensors([(2,)])[0]
    with pytest.raises(ValueError, match="twice"):
        FlatBuffer([t, t])
    with pytest.raises(TypeError, match="one dtype"):
        FlatBuffer([t, *make_tensors([(2,)], np.float64)])
    with pytest.raises(TypeError, match="float32 or float64"):
        FlatBuffer([ExTensor(np.ones(2, dtype=np.float16))])
    with pytest.raises(TypeError, match="ExTensors"):
        FlatBuffer([np.ones(2)])  # type: ignore[list-item]


def test_non_contiguous_tensor_is_copied_in() -> None:
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    tensor = ExTensor(base.T)  # a non-contiguous view of someone else's array
    FlatBuffer([tensor])
    np.testing.assert_array_equal(tensor.data, base.T)
    tensor.data = np.zeros((4, 3))
    np.testing.assert_array_equal(base, np.arange(12).reshape(3, 4))  # the source is untouched


def test_grad_runs_coalesce_consecutive_present_tensors() -> None:
    a = make_tensors([(2,), (3,), (1,), (4,)], seed=1)
    b = make_tensors([(5,)], seed=2)
    free = ExTensor(np.zeros(2, dtype=np.float32), requires_grad=True)
    buffer = FlatBuffer(a)
    for t in a:
        t.grad = np.ones(t.shape, dtype=np.float32)
    FlatBuffer(b)
    b[0].grad = np.full(5, 2.0, dtype=np.float32)
    free.grad = np.full(2, 3.0, dtype=np.float32)

    runs = grad_runs([*a, *b, free])
    assert [r.size for r in runs] == [10, 5, 2]
    assert np.shares_memory(runs[0], buffer.grad)

    a[2].grad = None
    runs = grad_runs([*a, free, *b])
    assert [r.size for r in runs] == [5, 4, 2, 5]
    # out of order within a buffer: no coalescing across the jump
    runs = grad_runs([a[3], a[0], a[1]])
    assert [r.size for r in runs] == [4, 5]
    for run in grad_runs([*a, *b, free]):
        run *= 0.5  # the runs are views: writing scales the gradients themselves
    np.testing.assert_array_equal(a[0].grad, [0.5, 0.5])
    np.testing.assert_array_equal(free.grad, [1.5, 1.5])
    np.testing.assert_array_equal(b[0].grad, np.ones(5))
    assert grad_runs([ExTensor(np.zeros(2, dtype=np.float32))]) == []


def test_present_runs() -> None:
    assert present_runs(np.array([True, True, False, True, False, False, True])) == [(0, 2), (3, 4), (6, 7)]
    assert present_runs(np.ones(3, dtype=bool)) == [(0, 3)]
    assert present_runs(np.zeros(3, dtype=bool)) == []


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 40_000), min_size=1, max_size=8),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**16),
)
def test_segment_sum_squares_matches_float64_reference(sizes: list[int], dtype: type, seed: int) -> None:
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    values = np.random.default_rng(seed).standard_normal(int(offsets[-1])).astype(dtype)
    got = segment_sum_squares(values, offsets)
    wide = values.astype(np.float64)
    reference = np.array([np.dot(wide[a:b], wide[a:b]) for a, b in itertools.pairwise(offsets)])
    np.testing.assert_allclose(got, reference, rtol=1e-12)
    np.testing.assert_allclose(sum_squares(values), reference.sum(), rtol=1e-12)


def test_segment_sum_squares_rejects_bad_offsets() -> None:
    with pytest.raises(ValueError, match="offsets"):
        segment_sum_squares(np.ones(4, dtype=np.float32), np.array([0, 3], dtype=np.int64))
    with pytest.raises(ValueError, match="non-decreasing"):
        segment_sum_squares(np.ones(4, dtype=np.float32), np.array([0, 3, 1, 4], dtype=np.int64))
    with pytest.raises(ValueError, match="1-D"):
        segment_sum_squares(np.ones((2, 2), dtype=np.float32), np.array([0, 4], dtype=np.int64))
