"""The Tape's contract: the returned dict, in-place accumulation, errors, no_grad, detach, nesting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extensor import ExTensor, Tape, no_grad
from extensor.autograd import is_grad_enabled
from extensor.core import GradSlot


def _leaf(rng, shape=(3, 2), dtype=np.float64):
    return ExTensor(rng.standard_normal(shape).astype(dtype), requires_grad=True)


def test_backward_returns_leaf_gradients_and_accumulates_in_place(rng):
    w = _leaf(rng)
    x = ExTensor(rng.standard_normal((4, 3)))
    tape = Tape()
    with tape:
        loss = ((x @ w) ** 2).mean()
    grads = tape.backward(loss)
    assert list(grads) == [w]
    assert grads[w].shape == w.shape and grads[w].dtype == w.dtype
    first = w.grad
    np.testing.assert_array_equal(first, grads[w])

    tape2 = Tape()
    with tape2:
        loss2 = ((x @ w) ** 2).mean()
    grads2 = tape2.backward(loss2)
    assert w.grad is first, "the second backward must add into the same array, not rebind .grad"
    np.testing.assert_allclose(w.grad, grads[w] + grads2[w], rtol=1e-12)

    tw = torch.tensor(w.data, requires_grad=True)
    ((torch.from_numpy(x.data) @ tw) ** 2).mean().backward()
    np.testing.assert_allclose(grads2[w], tw.grad.numpy(), rtol=1e-10)


def test_fan_out_sums_gradients(rng, check_parity):
    check_parity(
        lambda t: t * t.sum() + t.exp() * t,
        lambda t: t * t.sum() + t.exp() * t,
        [rng.standard_normal(4)],
        np.float64,
    )


def test_returned_gradients_do_not_alias(rng):
    a, b = _leaf(rng), _leaf(rng)
    tape = Tape()
    with tape:
        y = (a.reshape(6) + b.reshape(6)).sum()
    grads = tape.backward(y)
    grads[a][...] = 100.0
    np.testing.assert_array_equal(grads[b], np.ones((3, 2)))
    np.testing.assert_array_equal(b.grad, np.ones((3, 2)))
    assert grads[a].flags.writeable and grads[b].flags.writeable


def test_leaves_that_do_not_require_grad_are_left_alone(rng):
    w = _leaf(rng)
    c = ExTensor(rng.standard_normal((3, 2)))
    tape = Tape()
    with tape:
        y = (w * c).sum()
    grads = tape.backward(y)
    assert c not in grads and c.grad is None


def test_backward_twice_is_an_error(rng):
    w = _leaf(rng)
    tape = Tape()
    with tape:
        y = w.sum()
    tape.backward(y)
    with pytest.raises(RuntimeError, match="already"):
        tape.backward(y)
    with pytest.raises(RuntimeError, match="already run backward"), tape:
        pass


def test_loss_not_recorded_on_the_tape_is_an_error(rng):
    w = _leaf(rng)
    outside = w.sum()  # no tape active: nothing recorded
    tape = Tape()
    with tape:
        constant = ExTensor(np.ones(3)).sum()
    with pytest.raises(RuntimeError, match="not produced by an operation recorded"):
        tape.backward(outside)
    with pytest.raises(RuntimeError, match="not produced by an operation recorded"):
        tape.backward(constant)
    with pytest.raises(TypeError, match="ExTensor"):
        tape.backward(np.ones(()))


def test_returned_gradients_do_not_alias_the_seed(rng):
    w = _leaf(rng)
    tape = Tape()
    with tape:
        y = w.reshape(6)
    seed = np.ones(6)
    grads = tape.backward(y, seed)
    seed[...] = 7.0
    np.testing.assert_array_equal(grads[w], np.ones((3, 2)))


def test_non_scalar_loss_needs_a_seed_of_its_shape(rng):
    w = _leaf(rng)
    tape = Tape()
    with tape:
        y = w * 2
    with pytest.raises(ValueError, match=r"non-scalar tensor of shape \(3, 2\)"):
        tape.backward(y)
    with pytest.raises(ValueError, match=r"seed gradient has shape \(2, 3\)"):
        tape.backward(y, np.ones((2, 3)))
    grads = tape.backward(y, ExTensor(np.full((3, 2), 0.5)))
    np.testing.assert_array_equal(grads[w], np.ones((3, 2)))


def test_a_failed_backward_leaves_gradients_untouched(rng):
    w = _leaf(rng)
    tape = Tape()
    with tape:
        y = w * 2
    with pytest.raises(ValueError):
        tape.backward(y)
    assert w.grad is None
    tape.backward(y, np.ones((3, 2)))  # the tape is still usable after a rejected call
    assert w.grad is not None


def test_no_grad_records_nothing(rng):
    w = _leaf(rng)
    tape = Tape()
    with tape:
        with no_grad():
            assert not is_grad_enabled()
            y = (w * 2).sum()
        assert is_grad_enabled()
    assert len(tape) == 0 and not y.requires_grad and y.is_leaf


def test_detach_shares_data_and_stops_gradients(rng):
    w = _leaf(rng)
    tape = Tape()
    with tape:
        d = w.detach()
        y = (w * d).sum()
    assert not d.requires_grad and np.shares_memory(d.data, w.data)
    grads = tape.backward(y)
    np.testing.assert_allclose(grads[w], w.data)  # d is a constant: d/dw (w * d) = d


def test_nested_tapes_record_on_every_active_tape(rng):
    w = _leaf(rng)
    outer, inner = Tape(), Tape()
    with outer:
        h = w * 3
        with inner:
            z = (h * w).sum()
        loss = z * 2
    assert len(inner) == 2 and len(outer) == 4
    # the inner tape never saw h = 3w being made: h is a constant to it
    inner_grads = inner.backward(z)
    np.testing.assert_allclose(inner_grads[w], 3 * w.data)
    outer_grads = outer.backward(loss)
    np.testing.assert_allclose(outer_grads[w], 12 * w.data)
    np.testing.assert_allclose(w.grad, 15 * w.data)


def test_tapes_must_exit_in_order():
    a, b = Tape(), Tape()
    a.__enter__()
    b.__enter__()
    with pytest.raises(RuntimeError, match="reverse order"):
        a.__exit__(None, None, None)
    b.__exit__(None, None, None)
    a.__exit__(None, None, None)


def test_outputs_of_recorded_ops_are_non_leaves(rng):
    w = _leaf(rng)
    with Tape():
        y = w + 1
    assert w.is_leaf and not y.is_leaf and y.requires_grad


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        ExTensor(np.array([1, 2]), requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        ExTensor(np.array([True])).requires_grad_()


def test_data_and_grad_assignment_copy_and_check(rng):
    w = _leaf(rng, dtype=np.float32)
    storage = w.data
    w.data = np.ones((3, 2), dtype=np.float32)
    assert w.data is storage and np.all(storage == 1)
    with pytest.raises(ValueError, match=r"shape \(3, 2\), got an array of shape \(2, 3\)"):
        w.data = np.ones((2, 3), dtype=np.float32)
    with pytest.raises(TypeError, match="dtype float32, got float64"):
        w.data = np.ones((3, 2))
    w.grad = ExTensor(np.full((3, 2), 2.0, dtype=np.float32))
    assert np.all(w.grad == 2)
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        w.grad = np.ones(6, dtype=np.float32)
    with pytest.raises(TypeError, match="dtype float32"):
        w.grad = np.ones((3, 2), dtype=np.float64)
    w.grad = None
    assert w.grad is None


def test_backward_accumulates_into_a_bound_flat_buffer(rng):
    w = _leaf(rng)
    flat_data, flat_grad, present = np.zeros(10), np.zeros(10), np.zeros(2, dtype=bool)
    w.bind_storage(
        flat_data[2:8].reshape(3, 2), GradSlot(flat_grad[2:8].reshape(3, 2), present, 1, owner=None)
    )
    for expected in (1.0, 2.0):
        tape = Tape()
        with tape:
            y = (w * 1.0).sum()
        tape.backward(y)
        assert present[1]
        np.testing.assert_array_equal(flat_grad[2:8], expected)
    w.grad = None
    assert not present[1] and w.grad is None
    w.data = np.full((3, 2), 7.0)  # assignment writes through to the flat buffer, never rebinds
    np.testing.assert_array_equal(flat_data[2:8], 7.0)
    w.grad = np.full((3, 2), 0.5)
    assert present[1]
    np.testing.assert_array_equal(flat_grad[2:8], 0.5)
