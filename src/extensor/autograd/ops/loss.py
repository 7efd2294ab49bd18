"""Numerically stable fused losses: cross-entropy, MSE, BCE with logits.

Each loss is one recorded node whose backward is written out by hand, so a training step never
materialises the softmax graph (log_softmax + gather + mean) node by node.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from extensor.autograd.function import as_tensor, record
from extensor.autograd.ops._layer_checks import reduction_mode, require_floating, require_same_dtype
from extensor.core.dispatch import register
from extensor.core.tensor import Array, ExTensor


def _class_targets(logits: ExTensor, target: ExTensor) -> None:
    """Check that `target` holds class indices shaped like `logits` without its class dimension."""
    if target.dtype.kind not in "iu":
        raise TypeError(
            f"cross_entropy: target must hold integer class indices, got dtype {target.dtype} "
            "(class-probability targets are not supported; convert labels with .astype(np.int64))"
        )
    if logits.ndim == 0:
        raise ValueError("cross_entropy: input must have a class dimension, got a 0-d tensor")
    expected = () if logits.ndim == 1 else (logits.shape[0], *logits.shape[2:])
    if target.shape != expected:
        raise ValueError(
            f"cross_entropy: input of shape {logits.shape} needs a target of shape {expected}, "
            f"got {target.shape}"
        )


@register("cross_entropy")
def cross_entropy(
    input: Any,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> ExTensor:
    """Cross-entropy between logits and class indices, log_softmax and NLL fused (torch's cross_entropy).

    With p = softmax(z) over the class dimension (dimension 1; or 0 for an unbatched (C,) input),
    class weights w (ones by default) and smoothing ε over C classes, sample i with target yᵢ costs

        ℓᵢ = (1 − ε) · (−w_yᵢ log p_yᵢ) + (ε / C) · (−Σ_c w_c log p_c),

    and 0 when yᵢ == ignore_index. 'mean' divides Σ ℓᵢ by Σ w_yᵢ over the kept samples (torch's
    weighted mean), 'sum' sums, 'none' returns ℓ with the target's shape.

    The gradient with respect to the logits is g·(p·Σ_c a_c − a) with a_c the coefficient of −log p_c
    in ℓᵢ. The class weights are constants (no gradient flows to them).

    Raises:
        TypeError: floating-point targets or a non-floating input.
        ValueError: mismatched shapes, class indices outside [0, C), bad reduction or smoothing.
    """
    logits, labels = as_tensor(input), as_tensor(target)
    mode = reduction_mode(reduction, "cross_entropy")
    require_floating("input", logits, "cross_entropy")
    _class_targets(logits, labels)
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    classes = logits.shape[0] if logits.ndim == 1 else logits.shape[1]
    class_weight = None if weight is None else as_tensor(weight)
    if class_weight is not None:
        if class_weight.shape != (classes,):
            raise ValueError(f"cross_entropy: weight must have shape ({classes},), got {class_weight.shape}")
        require_same_dtype("cross_entropy", ("input", logits), ("weight", class_weight))
    flat_target = labels.data.reshape(-1).astype(np.int64, copy=False)
    kept = flat_target != ignore_index
    out_of_range = kept & ((flat_target < 0) | (flat_target >= classes))
    if out_of_range.any():
        bad = int(flat_target[np.argmax(out_of_range)])
        raise ValueError(
            f"cross_entropy: target {bad} is out of range for {classes} classes (expected 0 <= target < "
            f"{classes}, or ignore_index={ignore_index})"
        )

    dtype = logits.dtype
    smoothing = dtype.type(label_smoothing)
    # rows = samples, columns = classes, whatever the input's layout
    z = logits.data.reshape(1, classes) if logits.ndim == 1 else np.moveaxis(logits.data, 1, -1)
    z = z.reshape(-1, classes)
    rows = np.arange(z.shape[0])
    safe_target = np.where(kept, flat_target, 0)
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    w_row = np.ones(classes, dtype) if class_weight is None else class_weight.data
    target_weight = np.where(kept, w_row[safe_target], dtype.type(0))
    nll = -log_p[rows, safe_target] * target_weight
    smooth = None
    if smoothing > 0:
        smooth = -(log_p * w_row).sum(axis=1) if class_weight is not None else -log_p.sum(axis=1)
        smooth = np.where(kept, smooth, dtype.type(0))
    per_class_smoothing = smoothing / dtype.type(classes)

    denominator = target_weight.sum()
    if mode == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):  # every target ignored: NaN, as torch
            nll_mean = nll.sum() / denominator
            loss = (1 - smoothing) * nll_mean if smooth is not None else nll_mean
            if smooth is not None:
                loss = loss + (smooth.sum() / denominator) * per_class_smoothing
    elif mode == "sum":
        loss = (1 - smoothing) * nll.sum() if smooth is not None else nll.sum()
        if smooth is not None:
            loss = loss + smooth.sum() * per_class_smoothing
    else:
        loss = (1 - smoothing) * nll if smooth is not None else nll
        if smooth is not None:
            loss = loss + smooth * per_class_smoothing
        loss = loss.reshape(labels.shape)

    def backward(g: Array) -> tuple[Array, None]:
        if mode == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                scale = np.full(z.shape[0], g / denominator, dtype=dtype)
        elif mode == "sum":
            scale = np.full(z.shape[0], g, dtype=dtype)
        else:
            scale = g.reshape(-1).astype(dtype, copy=False)
        # a = (1-ε)·w_y·onehot(y) + (ε/C)·w for kept rows; dz = scale·(p·Σa − a)
        target_coefficient = (1 - smoothing) * target_weight
        row_total = target_coefficient
        if smoothing > 0:
            row_total = row_total + per_class_smoothing * w_row.sum() * kept
        dz = np.exp(log_p)
        dz *= (scale * row_total)[:, None]
        dz[rows, safe_target] -= scale * target_coefficient
        if smoothing > 0:
            dz -= (scale * per_class_smoothing * kept)[:, None] * w_row
        if logits.ndim == 1:
            return dz.reshape(logits.shape), None
        spatial = np.moveaxis(logits.data, 1, -1).shape
        return np.moveaxis(dz.reshape(spatial), -1, 1), None

    return record(np.asarray(loss, dtype=dtype), (logits, labels), backward)


@register("mse_loss")
def mse_loss(input: Any, target: Any, reduction: str = "mean") -> ExTensor:
    """Mean squared error ℓ = (x − y)², reduced by 'mean' (default), 'sum' or 'none' (torch's mse_loss).

    Differently shaped operands broadcast, with a warning, as torch does. Gradients flow to both.
    """
    x, y = as_tensor(input), as_tensor(target)
    mode = reduction_mode(reduction, "mse_loss")
    require_floating("input", x, "mse_loss")
    require_floating("target", y, "mse_loss")
    require_same_dtype("mse_loss", ("input", x), ("target", y))
    try:
        shape = np.broadcast_shapes(x.shape, y.shape)
    except ValueError:
        raise ValueError(
            f"mse_loss: input of shape {x.shape} and target of shape {y.shape} cannot be broadcast together"
        ) from None
    if x.shape != y.shape:
        warnings.warn(
            f"mse_loss: target shape {y.shape} differs from input shape {x.shape}; they are broadcast to "
            f"{shape}, which is likely not what you want",
            UserWarning,
            stacklevel=2,
        )
    diff = x.data - y.data
    squared = diff * diff
    count = squared.size
    loss = squared.mean() if mode == "mean" else squared.sum() if mode == "sum" else squared

    def backward(g: Array) -> tuple[Array | None, Array | None]:
        norm = 2.0 / count if mode == "mean" else 2.0
        grad = diff * (g * x.dtype.type(norm))
        dx = _sum_to(grad, x.shape) if x.requires_grad else None
        dy = -_sum_to(grad, y.shape) if y.requires_grad else None
        return dx, dy

    return record(np.asarray(loss, dtype=x.dtype), (x, y), backward)


def _sum_to(gradient: Array, shape: tuple[int, ...]) -> Array:
    """Sum a broadcast gradient back to `shape`."""
    if gradient.shape == shape:
        return gradient
    extra = gradient.ndim - len(shape)
    summed = gradient.sum(axis=tuple(range(extra))) if extra else gradient
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and summed.shape[i] != 1)
    if stretched:
        summed = summed.sum(axis=stretched, keepdims=True)
    return summed.reshape(shape)


def _log_sigmoid(x: Array) -> Array:
    """log σ(x) = min(x, 0) − log1p(e^−|x|), exact for large |x| of either sign."""
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


@register("binary_cross_entropy_with_logits")
def binary_cross_entropy_with_logits(
    input: Any,
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> ExTensor:
    """Sigmoid and binary cross-entropy fused and stable (torch's binary_cross_entropy_with_logits).

    With l = 1 + (pos_weight − 1)·y (l = 1 without pos_weight) and elementwise weight w,

        ℓ = w · ((1 − y)·x − l · log σ(x)),

    where log σ(x) = min(x, 0) − log1p(e^−|x|) never overflows. `weight` broadcasts to the input,
    `pos_weight` along the last (class) dimension. Gradients flow to the input and the target;
    `weight` and `pos_weight` are constants.
    """
    x, y = as_tensor(input), as_tensor(target)
    mode = reduction_mode(reduction, "binary_cross_entropy_with_logits")
    op = "binary_cross_entropy_with_logits"
    require_floating("input", x, op)
    require_floating("target", y, op)
    if x.shape != y.shape:
        raise ValueError(f"{op}: target shape {y.shape} must equal the input shape {x.shape}")
    w = None if weight is None else as_tensor(weight)
    pw = None if pos_weight is None else as_tensor(pos_weight)
    require_same_dtype(op, ("input", x), ("target", y), ("weight", w), ("pos_weight", pw))
    for name, extra in (("weight", w), ("pos_weight", pw)):
        if extra is not None and np.broadcast_shapes(extra.shape, x.shape) != x.shape:
            raise ValueError(
                f"{op}: {name} of shape {extra.shape} does not broadcast to the input's {x.shape}"
            )

    xd, yd = x.data, y.data
    log_sig = _log_sigmoid(xd)
    log_weight = None if pw is None else 1 + (pw.data - 1) * yd
    elementwise = (1 - yd) * xd - (log_sig if log_weight is None else log_weight * log_sig)
    if w is not None:
        elementwise = elementwise * w.data
    loss = elementwise.mean() if mode == "mean" else elementwise.sum() if mode == "sum" else elementwise

    def backward(g: Array) -> tuple[Array | None, Array | None]:
        scale = g / xd.size if mode == "mean" else g
        if w is not None:
            scale = scale * w.data
        dx = dy = None
        if x.requires_grad:
            one_minus_sigmoid = np.exp(_log_sigmoid(-xd))
            dx = (1 - yd) - (one_minus_sigmoid if log_weight is None else log_weight * one_minus_sigmoid)
            dx = np.broadcast_to(dx * scale, x.shape).astype(x.dtype, copy=False)
        if y.requires_grad:
            dy = -xd if pw is None else -xd - (pw.data - 1) * log_sig
            dy = np.broadcast_to(dy * scale, y.shape).astype(y.dtype, copy=False)
        return dx, dy

    return record(np.asarray(loss, dtype=x.dtype), (x, y), backward)
