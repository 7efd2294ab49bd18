"""CrossEntropyLoss, MSELoss, BCEWithLogitsLoss against torch; stability; gradcheck; bad targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from extensor import ExTensor, Tape
from extensor import nn as xnn
from extensor.autograd import gradcheck
from extensor.nn import functional as F

DTYPES = [np.float64, np.float32]
REDUCTIONS = ["mean", "sum", "none"]


def _targets(rng, shape, classes, ignore=None):
    t = rng.integers(0, classes, shape)
    if ignore is not None:
        t.reshape(-1)[::3] = ignore
    return t


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", [None, 2, -100])
def test_cross_entropy_matches_torch(fn_check, rng, dtype, reduction, smoothing, weighted, ignore):
    logits = 3 * rng.standard_normal((7, 5))
    target = _targets(rng, 7, 5, ignore)
    weight = rng.uniform(0.2, 2.0, 5).astype(dtype) if weighted else None
    kwargs = {"reduction": reduction, "label_smoothing": smoothing}
    if ignore is not None:
        kwargs["ignore_index"] = ignore
    ours = xnn.CrossEntropyLoss(weight=weight, **kwargs)
    theirs = torch.nn.CrossEntropyLoss(weight=None if weight is None else torch.from_numpy(weight), **kwargs)
    fn_check(ours, theirs, [logits, target], dtype, [True, False])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_with_spatial_dimensions(fn_check, rng, dtype, reduction):
    logits = rng.standard_normal((2, 4, 3, 5))
    target = _targets(rng, (2, 3, 5), 4, ignore=1)
    kwargs = {"reduction": reduction, "label_smoothing": 0.1, "ignore_index": 1}
    fn_check(
        xnn.CrossEntropyLoss(**kwargs),
        torch.nn.CrossEntropyLoss(**kwargs),
        [logits, target],
        dtype,
        [True, False],
    )


def test_cross_entropy_unbatched(fn_check, rng):
    fn_check(
        xnn.CrossEntropyLoss(label_smoothing=0.3), torch.nn.CrossEntropyLoss(label_smoothing=0.3),
        [rng.standard_normal(6), np.array(4)], np.float64, [True, False],
    )  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_is_stable_for_huge_logits(rng, dtype, close):
    logits = np.array([[1e4, -1e4, 0.0], [-3e4, 3e4, 2e4]])
    target = np.array([1, 0])
    xe = ExTensor(logits.astype(dtype), requires_grad=True)
    xt = torch.tensor(logits.astype(dtype), requires_grad=True)
    tape = Tape()
    with tape:
        loss = F.cross_entropy(xe, target, label_smoothing=0.1)
    tape.backward(loss)
    loss_t = torch.nn.functional.cross_entropy(xt, torch.from_numpy(target), label_smoothing=0.1)
    loss_t.backward()
    assert np.isfinite(loss.item()) and np.all(np.isfinite(xe.grad))
    close(loss, loss_t, dtype)
    close(xe.grad, xt.grad, dtype)


def test_cross_entropy_mean_over_all_ignored_targets_is_nan_like_torch():
    logits = np.zeros((2, 3))
    target = np.array([-100, -100])
    assert np.isnan(F.cross_entropy(logits, target).item())
    assert torch.isnan(torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(target)))


def test_gradcheck_losses(rng):
    z = ExTensor(rng.standard_normal((4, 3)), requires_grad=True)
    t = rng.integers(0, 3, 4)
    t[1] = -100
    w = rng.uniform(0.5, 2, 3)
    assert gradcheck(lambda z: F.cross_entropy(z, t, weight=w, label_smoothing=0.25), [z])
    assert gradcheck(lambda z: F.cross_entropy(z, t, reduction="none", label_smoothing=0.1), [z])
    y = ExTensor(rng.uniform(0, 1, (4, 3)), requires_grad=True)
    assert gradcheck(lambda z, y: F.mse_loss(z, y), [z, y])
    assert gradcheck(lambda z, y: F.mse_loss(z, y, reduction="none"), [z, y])
    pw = rng.uniform(0.5, 3, 3)
    assert gradcheck(lambda z, y: F.binary_cross_entropy_with_logits(z, y, weight=w, pos_weight=pw), [z, y])
    assert gradcheck(lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction="sum"), [z, y])


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 6), st.integers(1, 5), st.sampled_from(REDUCTIONS), st.floats(0, 1), st.integers(0, 2**31)
)
def test_cross_entropy_random_cases_match_torch(n, classes, reduction, smoothing, seed):
    rng = np.random.default_rng(seed)
    logits = 5 * rng.standard_normal((n, classes))
    target = rng.integers(0, classes, n)
    xe, xt = ExTensor(logits, requires_grad=True), torch.tensor(logits, requires_grad=True)
    tape = Tape()
    with tape:
        loss = F.cross_entropy(xe, target, reduction=reduction, label_smoothing=smoothing)
    g = rng.standard_normal(loss.shape)
    tape.backward(loss, g)
    loss_t = torch.nn.functional.cross_entropy(
        xt, torch.from_numpy(target), reduction=reduction, label_smoothing=smoothing
    )
    loss_t.backward(torch.from_numpy(g))
    np.testing.assert_allclose(loss.data, loss_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xe.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_float_targets_are_a_type_error(rng):
    with pytest.raises(TypeError, match="integer class indices, got dtype float32"):
        xnn.CrossEntropyLoss()(
            rng.standard_normal((3, 4)).astype(np.float32), np.array([0.0, 1.0, 2.0], np.float32)
        )


@pytest.mark.parametrize("bad", [4, -1, 10])
def test_out_of_range_class_index_names_it(rng, bad):
    target = np.array([0, bad, 1])
    with pytest.raises(ValueError, match=f"target {bad} is out of range for 4 classes"):
        xnn.CrossEntropyLoss()(rng.standard_normal((3, 4)), target)


def test_cross_entropy_argument_errors(rng):
    logits = rng.standard_normal((3, 4))
    with pytest.raises(ValueError, match=r"needs a target of shape \(3,\), got \(4,\)"):
        F.cross_entropy(logits, np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="reduction"):
        xnn.CrossEntropyLoss(reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        xnn.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\)"):
        F.cross_entropy(logits, np.zeros(3, np.int64), weight=np.ones(3))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_matches_torch_with_gradients_to_both(fn_check, rng, dtype, reduction):
    fn_check(
        xnn.MSELoss(reduction), torch.nn.MSELoss(reduction=reduction),
        [rng.standard_normal((4, 3)), rng.standard_normal((4, 3))], dtype, [True, True],
    )  # fmt: skip


def test_mse_broadcast_warns_and_matches_torch(fn_check, rng):
    with pytest.warns(UserWarning, match="broadcast"):
        fn_check(
            xnn.MSELoss(), torch.nn.MSELoss(), [rng.standard_normal((4, 3)), rng.standard_normal((1, 3))],
            np.float64, [True, True],
        )  # fmt: skip
    with pytest.raises(ValueError, match="cannot be broadcast"):
        F.mse_loss(np.zeros((4, 3)), np.zeros((2, 3)))
    with pytest.raises(TypeError, match="floating-point"):
        F.mse_loss(np.zeros((4, 3)), np.zeros((4, 3), np.int64))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("pos_weighted", [False, True])
def test_bce_with_logits_matches_torch(fn_check, rng, dtype, reduction, weighted, pos_weighted):
    weight = rng.uniform(0.5, 2, (1, 3)).astype(dtype) if weighted else None
    pos_weight = rng.uniform(0.5, 3, 3).astype(dtype) if pos_weighted else None
    ours = xnn.BCEWithLogitsLoss(weight=weight, reduction=reduction, pos_weight=pos_weight)
    theirs = torch.nn.BCEWithLogitsLoss(
        weight=None if weight is None else torch.from_numpy(weight),
        reduction=reduction,
        pos_weight=None if pos_weight is None else torch.from_numpy(pos_weight),
    )
    logits = 4 * rng.standard_normal((5, 3))
    logits[0] = [60.0, -60.0, 0.0]  # saturated sigmoid on both sides
    fn_check(ours, theirs, [logits, rng.uniform(0, 1, (5, 3))], dtype, [True, True])


def test_bce_shape_mismatch(rng):
    with pytest.raises(ValueError, match=r"target shape \(3,\) must equal the input shape \(3, 1\)"):
        F.binary_cross_entropy_with_logits(np.zeros((3, 1)), np.zeros(3))


def test_loss_weights_are_buffers_like_torch(rng):
    w = rng.uniform(0.5, 2, 3)
    assert list(xnn.CrossEntropyLoss(weight=w).state_dict()) == list(
        torch.nn.CrossEntropyLoss(torch.from_numpy(w)).state_dict()
    )
    ours = xnn.BCEWithLogitsLoss(weight=w, pos_weight=w)
    theirs = torch.nn.BCEWithLogitsLoss(torch.from_numpy(w), pos_weight=torch.from_numpy(w))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(xnn.CrossEntropyLoss()) == repr(torch.nn.CrossEntropyLoss())
