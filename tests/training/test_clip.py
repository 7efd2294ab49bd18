"""Gradient clipping against torch 2.13's clip_grad_norm_/clip_grad_value_, loose and flat-buffer grads."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from extensor.core.tensor import ExTensor
from extensor.training import clip as clip_module
from extensor.training import (
    clip_grad_norm,
    clip_grad_norm_,
    clip_grad_value,
    clip_grad_value_,
    clip_grads_with_norm_,
    grad_norm,
)
from extensor.training.optimizers import SGD

SHAPES = [(3, 4), (7,), (), (2, 3, 5), (11,), (1, 6)]
NONE_AT = {1, 4}
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-5, np.float16: 2e-3}
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32, np.float16: torch.float16}


def _gradients(dtypes: list[Any], seed: int, scale: float = 3.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    pairs = zip(SHAPES, dtypes, strict=True)
    return [np.asarray(rng.standard_normal(shape) * scale).astype(dtype) for shape, dtype in pairs]


def _ours(grads: list[np.ndarray], layout: str) -> tuple[list[ExTensor], Any]:
    """Parameters holding `grads` (None where NONE_AT), loose or packed by an optimizer."""
    params = [ExTensor(np.zeros(g.shape, g.dtype), requires_grad=True) for g in grads]
    optimizer = SGD(params, lr=0.1) if layout == "flat" else None
    for index, (param, grad) in enumerate(zip(params, grads, strict=True)):
        param.grad = None if index in NONE_AT else grad.copy()
    return params, optimizer


def _torch(grads: list[np.ndarray]) -> list[torch.Tensor]:
    params = [torch.zeros(g.shape, dtype=TORCH_DTYPE[g.dtype.type], requires_grad=True) for g in grads]
    for index, (param, grad) in enumerate(zip(params, grads, strict=True)):
        if index not in NONE_AT:
            param.grad = torch.from_numpy(grad.copy())
    return params


def _assert_grads(params: list[ExTensor], tparams: list[torch.Tensor], rtol: float) -> None:
    for param, tparam in zip(params, tparams, strict=True):
        if tparam.grad is None:
            assert param.grad is None
        else:
            assert param.grad is not None and param.grad.dtype == tparam.grad.numpy().dtype
            np.testing.assert_allclose(param.grad, tparam.grad.numpy(), rtol=rtol, atol=0)


@pytest.mark.parametrize("layout", ["loose", "flat"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, -math.inf, 0.0, 3.5, 0.5, -1.5, "inf"])
@pytest.mark.parametrize("max_norm", [1e-3, 0.5, 4.0, 1e3])
def test_clip_grad_norm_matches_torch(layout: str, dtype: Any, norm_type: Any, max_norm: float) -> None:
    grads = _gradients([dtype] * len(SHAPES), seed=int(max_norm * 1000) % 97)
    params, _ = _ours(grads, layout)
    tparams = _torch(grads)
    expected = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type=norm_type)
    total = clip_grad_norm(params, max_norm, norm_type=norm_type)
    assert isinstance(total, np.ndarray) and total.shape == () and total.dtype == np.dtype(dtype)
    np.testing.assert_allclose(total, expected.numpy(), rtol=TOLERANCE[dtype], atol=0)
    _assert_grads(params, tparams, TOLERANCE[dtype])


@pytest.mark.parametrize("layout", ["loose", "flat"])
def test_mixed_dtypes_promote_like_torch(layout: str) -> None:
    grads = _gradients([np.float32, np.float64] * 3, seed=5)
    params, _ = _ours(grads, layout)
    tparams = _torch(grads)
    for norm_type in [2.0, 1.0, math.inf]:
        expected = torch.nn.utils.clip_grad_norm_(tparams, 0.7, norm_type)
        total = clip_grad_norm_(params, 0.7, norm_type)
        assert total.dtype == np.float64 and expected.dtype == torch.float64
        np.testing.assert_allclose(total, expected.numpy(), rtol=1e-6)
        _assert_grads(params, tparams, 1e-5)


def test_float16_gradients_outside_buffers() -> None:
    grads = _gradients([np.float16] * len(SHAPES), seed=11, scale=1.0)
    params, _ = _ours(grads, "loose")
    tparams = _torch(grads)
    expected = torch.nn.utils.clip_grad_norm_(tparams, 0.5)
    total = clip_grad_norm(params, 0.5)
    assert total.dtype == np.float16
    np.testing.assert_allclose(total, expected.numpy(), rtol=TOLERANCE[np.float16])
    _assert_grads(params, tparams, TOLERANCE[np.float16])


def test_absent_gradients_in_a_buffer_are_neither_counted_nor_scaled() -> None:
    grads = _gradients([np.float64] * len(SHAPES), seed=3)
    params, _ = _ours([g for g in grads], "flat")
    for index in NONE_AT:  # give the slots values, then remove the gradients: stale values remain
        params[index].grad = np.full(grads[index].shape, 1e6)
        params[index].grad = None
    stale = [params[index].grad_slot.view.copy() for index in NONE_AT]  # type: ignore[union-attr]
    tparams = _torch(grads)
    expected = torch.nn.utils.clip_grad_norm_(tparams, 1.0)
    np.testing.assert_allclose(clip_grad_norm(params, 1.0), expected.numpy(), rtol=1e-12)
    for index, before in zip(sorted(NONE_AT), stale, strict=True):
        assert params[index].grad is None
        np.testing.assert_array_equal(params[index].grad_slot.view, before)  # type: ignore[union-attr]


def test_a_large_buffer_takes_the_parallel_path() -> None:
    """Above _PARALLEL_MIN elements the reductions run on every thread. The reference is torch in
    float64: torch's own float32 reduction drifts by ~3e-5 at this size, ours accumulates in float64."""
    size = clip_module._PARALLEL_MIN + 12345
    rng = np.random.default_rng(0)
    gradient = rng.standard_normal(size).astype(np.float32)
    gradient[size // 3] = -40.0
    param = ExTensor(np.zeros(size, np.float32), requires_grad=True)
    SGD([param], lr=0.1)
    tparam = torch.zeros(size, dtype=torch.float64, requires_grad=True)
    for norm_type in [2.0, 1.0, math.inf, -math.inf, 3.0]:
        param.grad = gradient
        tparam.grad = torch.from_numpy(gradient.astype(np.float64))
        expected = torch.nn.utils.clip_grad_norm_([tparam], 5.0, norm_type)
        np.testing.assert_allclose(clip_grad_norm([param], 5.0, norm_type), expected.numpy(), rtol=1e-6)
        np.testing.assert_allclose(param.grad, tparam.grad.numpy(), rtol=1e-6)


def test_single_tensor_generator_and_empty_inputs() -> None:
    param = ExTensor(np.zeros(4, np.float64), requires_grad=True)
    param.grad = np.array([3.0, 4.0, 0.0, 0.0])
    total = clip_grad_norm(param, 1.0)
    assert float(total) == 5.0
    np.testing.assert_allclose(param.grad, np.array([3.0, 4.0, 0, 0]) / (5.0 + 1e-6), rtol=1e-15)
    param.grad = np.array([3.0, 4.0, 0.0, 0.0])
    assert float(clip_grad_norm((p for p in [param]), 10.0)) == 5.0
    np.testing.assert_array_equal(param.grad, [3.0, 4.0, 0.0, 0.0])  # below max_norm: untouched
    empty = clip_grad_norm([], 1.0)
    assert empty.dtype == np.float32 and float(empty) == 0.0
    nothing = ExTensor(np.zeros(3, np.float32), requires_grad=True)
    assert float(clip_grad_norm([nothing], 1.0)) == 0.0 and nothing.grad is None
    with pytest.warns(UserWarning, match="empty generator"):
        clip_grad_norm((p for p in []), 1.0)


@pytest.mark.parametrize("bad", [math.inf, math.nan])
@pytest.mark.parametrize("layout", ["loose", "flat"])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_non_finite_gradients(bad: float, layout: str, norm_type: float) -> None:
    grads = _gradients([np.float32] * len(SHAPES), seed=2)
    grads[3][1, 2, 0] = bad
    params, _ = _ours(grads, layout)
    before = [None if p.grad is None else p.grad.copy() for p in params]
    with pytest.raises(RuntimeError, match=r"total norm of order .* is non-finite \((inf|nan)\)"):
        clip_grad_norm(params, 1.0, norm_type, error_if_nonfinite=True)
    for param, old in zip(params, before, strict=True):  # nothing was scaled
        assert (param.grad is None and old is None) or np.array_equal(param.grad, old, equal_nan=True)
    tparams = _torch(grads)
    expected = torch.nn.utils.clip_grad_norm_(tparams, 1.0, norm_type)
    total = clip_grad_norm(params, 1.0, norm_type)
    np.testing.assert_array_equal(total, expected.numpy())
    for param, tparam in zip(params, tparams, strict=True):
        if tparam.grad is not None:
            np.testing.assert_array_equal(param.grad, tparam.grad.numpy())  # NaN where torch has NaN


@pytest.mark.parametrize("layout", ["loose", "flat"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("clip_value", [0.0, 0.1, 1.0, 2.5, math.inf])
def test_clip_grad_value_matches_torch(layout: str, dtype: Any, clip_value: float) -> None:
    grads = _gradients([dtype] * len(SHAPES), seed=9)
    grads[0][1, 1] = math.nan
    params, _ = _ours(grads, layout)
    tparams = _torch(grads)
    torch.nn.utils.clip_grad_value_(tparams, clip_value)
    assert clip_grad_value(params, clip_value) is None
    for param, tparam in zip(params, tparams, strict=True):
        if tparam.grad is None:
            assert param.grad is None
        else:
            np.testing.assert_array_equal(param.grad, tparam.grad.numpy())


def test_fortran_ordered_loose_gradient_is_scaled_in_place() -> None:
    """A gradient that is not C-contiguous has no 1-D view: it must still be clipped in place."""
    param = ExTensor(np.zeros((3, 4), np.float64), requires_grad=True)
    param.accumulate_grad(np.asfortranarray(np.arange(12.0).reshape(3, 4)))
    other = ExTensor(np.zeros(2, np.float64), requires_grad=True)
    other.grad = np.array([1.0, -1.0])
    expected = np.arange(12.0).reshape(3, 4)
    total = clip_grad_norm([param, other], 1.0)
    norm = math.sqrt(float((expected**2).sum()) + 2.0)
    assert float(total) == pytest.approx(norm, rel=1e-14)
    np.testing.assert_allclose(param.grad, expected / (norm + 1e-6), rtol=1e-14)
    np.testing.assert_allclose(other.grad, np.array([1.0, -1.0]) / (norm + 1e-6), rtol=1e-14)
    clip_grad_value([param], 0.01)
    assert np.abs(param.grad).max() == 0.01  # type: ignore[union-attr]


def test_split_api_equals_clip_grad_norm() -> None:
    grads = _gradients([np.float32] * len(SHAPES), seed=4)
    first, _ = _ours(grads, "flat")
    second, _ = _ours(grads, "flat")
    total = grad_norm(first, 3.0)
    np.testing.assert_array_equal(total, clip_grad_norm(second, 0.3, 3.0))
    clip_grads_with_norm_(first, 0.3, total)
    for a, b in zip(first, second, strict=True):
        assert (a.grad is None and b.grad is None) or np.array_equal(a.grad, b.grad)
    assert clip_grad_value_ is clip_grad_value


def test_bad_arguments_raise_and_change_nothing() -> None:
    grads = _gradients([np.float32] * len(SHAPES), seed=1)
    params, _ = _ours(grads, "flat")
    before = [None if p.grad is None else p.grad.copy() for p in params]
    calls: list[tuple[Any, type[Exception], str]] = [
        (lambda: clip_grad_norm(params, -1.0), ValueError, "max_norm must be >= 0, got -1.0"),
        (lambda: clip_grad_norm(params, math.nan), ValueError, "max_norm"),
        (lambda: clip_grad_norm(params, "1"), TypeError, "max_norm must be a real number"),
        (lambda: clip_grad_norm(params, 1.0, norm_type="two"), TypeError, "norm_type"),
        (lambda: clip_grad_norm(params, 1.0, norm_type=math.nan), ValueError, "norm_type"),
        (lambda: clip_grad_norm(params, 1.0, foreach="yes"), TypeError, "foreach"),
        (lambda: clip_grad_norm([*params, np.ones(3)], 1.0), TypeError, r"parameters\[6\] is a ndarray"),
        (lambda: clip_grad_norm(3.0, 1.0), TypeError, "iterable of ExTensors"),
        (lambda: clip_grad_value(params, -0.5), ValueError, "clip_value must be >= 0"),
        (lambda: clip_grad_value(params, None), TypeError, "clip_value"),
        (lambda: clip_grads_with_norm_(params, 1.0, np.ones(2)), TypeError, "total_norm"),
    ]
    for call, error, message in calls:
        with pytest.raises(error, match=message):
            call()
    for param, old in zip(params, before, strict=True):
        assert (param.grad is None and old is None) or np.array_equal(param.grad, old)


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=6),
    scale=st.floats(1e-3, 1e3),
    max_norm=st.floats(1e-3, 1e3),
    norm_type=st.sampled_from([1.0, 2.0, 3.0, math.inf]),
    packed=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_clipping_properties(
    sizes: list[int], scale: float, max_norm: float, norm_type: float, packed: bool, seed: int
) -> None:
    """After clipping the norm is at most max_norm; below it nothing moves; directions are kept."""
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal(size) * scale for size in sizes]
    params = [ExTensor(np.zeros(size), requires_grad=True) for size in sizes]
    if packed:
        SGD(params, lr=0.1)
    for param, grad in zip(params, grads, strict=True):
        param.grad = grad
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        total = float(clip_grad_norm(params, max_norm, norm_type))
    after = float(grad_norm(params, norm_type))
    if total <= max_norm:
        for param, grad in zip(params, grads, strict=True):
            np.testing.assert_array_equal(param.grad, grad)
    else:
        assert after <= max_norm * (1 + 1e-12)
        ratio = max_norm / (total + 1e-6)
        for param, grad in zip(params, grads, strict=True):
            np.testing.assert_allclose(param.grad, grad * ratio, rtol=1e-12)


@pytest.mark.parametrize("layout", ["loose", "flat"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm_type", [1e-3, 1e-300, 5e-324, 1e-2, 0.1, -1e-3, -1e-300])
@pytest.mark.parametrize("scale", [3.0, 0.05])
def test_tiny_orders_give_torchs_number_not_an_overflow(
    layout: str, dtype: Any, norm_type: float, scale: float
) -> None:
    grads = _gradients([dtype] * len(SHAPES), seed=3, scale=scale)
    params, _ = _ours(grads, layout)
    tparams = _torch(grads)
    expected = torch.nn.utils.clip_grad_norm_(tparams, 1.0, norm_type=norm_type).numpy()
    total = clip_grad_norm(params, 1.0, norm_type=norm_type)
    assert total.dtype == np.dtype(dtype)
    if np.isfinite(expected):  # rounding is amplified by 1/|p| in the root
        np.testing.assert_allclose(total, expected, rtol=min(TOLERANCE[dtype] / abs(norm_type), 0.1), atol=0)
    else:
        assert total == expected
    _assert_grads(params, tparams, TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm_type", [1e-3, 1e-300])
@pytest.mark.parametrize(
    "values", [[[3.0]], [[0.0, 3.0]], [[3.0], [0.0]], [[0.5], [0.25]], [[0.0, 0.0]], [[0.0], [0.0]]]
)
def test_tiny_orders_on_small_gradients_match_torch(
    dtype: Any, norm_type: float, values: list[list[float]]
) -> None:
    """One element is its magnitude; an order below float32's range rounds to 0 in float32 (inf)."""
    grads = [np.array(v, dtype) for v in values]
    params = [ExTensor(np.zeros(g.shape, dtype), requires_grad=True) for g in grads]
    tparams = [torch.zeros(g.shape, dtype=TORCH_DTYPE[dtype], requires_grad=True) for g in grads]
    for param, tparam, grad in zip(params, tparams, grads, strict=True):
        param.grad, tparam.grad = grad.copy(), torch.from_numpy(grad.copy())
    expected = torch.nn.utils.clip_grad_norm_(tparams, 1.0, norm_type=norm_type).numpy()
    total = grad_norm(params, norm_type)
    if np.isfinite(expected):
        np.testing.assert_allclose(total, expected, rtol=1e-4, atol=0)
    else:
        assert total == expected
