"""Batch and layer normalisation, fused forward and backward.

Both normalise x̂ = (x − μ) / √(σ² + ε) over some axes and apply an optional affine map
y = γ x̂ + β. With M elements per statistic, the shared backward is

    dx = (1/√(σ² + ε)) · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂)),   dx̂ = γ · g,

(Ioffe & Szegedy 2015, "Batch Normalization", arXiv:1502.03167; Ba et al. 2016, "Layer
Normalization", arXiv:1607.06450), one node instead of the dozen a composed graph would record.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from extensor.autograd.function import as_tensor, record
from extensor.autograd.ops._layer_checks import require_floating, require_same_dtype
from extensor.core.dispatch import register
from extensor.core.tensor import Array, ExTensor


def _affine_check(
    op: str, x: ExTensor, shape: tuple[int, ...], weight: ExTensor | None, bias: ExTensor | None
) -> None:
    for name, tensor in (("weight", weight), ("bias", bias)):
        if tensor is not None and tensor.shape != shape:
            raise ValueError(f"{op}: {name} must have shape {shape}, got {tensor.shape}")
    require_same_dtype(op, ("input", x), ("weight", weight), ("bias", bias))


def _normalized_backward(g_hat: Array, x_hat: Array, inv_std: Array, axes: tuple[int, ...]) -> Array:
    """dx from dx̂ for statistics taken over `axes` (the formula in the module docstring)."""
    mean_g = g_hat.mean(axis=axes, keepdims=True)
    mean_gx = (g_hat * x_hat).mean(axis=axes, keepdims=True)
    return inv_std * (g_hat - mean_g - x_hat * mean_gx)


@register("batch_norm")
def batch_norm(
    input: Any,
    running_mean: ExTensor | None,
    running_var: ExTensor | None,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> ExTensor:
    """Batch normalisation over every axis but the channel axis 1 (torch.nn.functional.batch_norm).

    Training: normalise with the batch mean and biased variance, and update the running statistics
    in place (when given): r_μ ← (1 − m)·r_μ + m·μ, r_σ² ← (1 − m)·r_σ² + m·σ²·M/(M − 1), the
    unbiased variance as torch does. Evaluation: normalise with the running statistics.

    Args:
        input: (N, C) or (N, C, *) with at least one more element per channel when training.
        running_mean, running_var: (C,) tensors updated in place, or None (training only).
        weight, bias: optional (C,) affine parameters γ and β.
        momentum: the factor m of the running-average update.
        eps: added to the variance for stability.
    """
    op = "batch_norm"
    x = as_tensor(input)
    gamma = None if weight is None else as_tensor(weight)
    beta = None if bias is None else as_tensor(bias)
    require_floating("input", x, op)
    if x.ndim < 2:
        raise ValueError(f"{op}: expected an input of shape (N, C) or (N, C, *), got shape {x.shape}")
    channels = x.shape[1]
    _affine_check(op, x, (channels,), gamma, beta)
    for name, stat in (("running_mean", running_mean), ("running_var", running_var)):
        if stat is not None and (stat.shape != (channels,) or stat.dtype != x.dtype):
            raise ValueError(
                f"{op}: {name} must have shape ({channels},) and dtype {x.dtype}, "
                f"got shape {stat.shape} and dtype {stat.dtype}"
            )
    axes = (0, *range(2, x.ndim))
    count = x.size // channels
    if training and count <= 1:
        raise ValueError(
            f"{op}: expected more than 1 value per channel when training, got input of shape {x.shape}"
        )
    if not training and (running_mean is None or running_var is None):
        raise ValueError(f"{op}: running_mean and running_var are required when not training")
    broadcast = (1, channels) + (1,) * (x.ndim - 2)
    xd = x.data
    dtype = xd.dtype.type

    if training:
        mean = xd.mean(axis=axes)
        centered = xd - mean.reshape(broadcast)
        var = (centered * centered).mean(axis=axes)
        m = dtype(momentum)
        if running_mean is not None:
            running_mean.data[...] = (1 - m) * running_mean.data + m * mean
        if running_var is not None:
            running_var.data[...] = (1 - m) * running_var.data + m * (var * dtype(count / (count - 1)))
    else:
        assert running_mean is not None and running_var is not None
        mean, var = running_mean.data.copy(), running_var.data.copy()
        centered = xd - mean.reshape(broadcast)
    inv_std = (1 / np.sqrt(var + dtype(eps))).reshape(broadcast)
    x_hat = centered * inv_std
    out = x_hat * gamma.data.reshape(broadcast) if gamma is not None else x_hat.copy()
    if beta is not None:
        out += beta.data.reshape(broadcast)

    def backward(g: Array) -> tuple[Array | None, ...]:
        dx = dgamma = dbeta = None
        if x.requires_grad:
            g_hat = g * gamma.data.reshape(broadcast) if gamma is not None else g
            dx = _normalized_backward(g_hat, x_hat, inv_std, axes) if training else g_hat * inv_std
        if gamma is not None and gamma.requires_grad:
            dgamma = (g * x_hat).sum(axis=axes)
        if beta is not None and beta.requires_grad:
            dbeta = g.sum(axis=axes)
        return dx, dgamma, dbeta

    return record(
        out, (x, *(t for t in (gamma, beta) if t is not None)), _only_present(backward, gamma, beta)
    )


@register("layer_norm")
def layer_norm(
    input: Any,
    normalized_shape: Any,
    weight: Any = None,
    bias: Any = None,
    eps: float = 1e-5,
) -> ExTensor:
    """Layer normalisation over the trailing `normalized_shape` axes (torch.nn.functional.layer_norm).

    Each sample is normalised with its own mean and biased variance over those axes; γ and β, when
    given, have shape `normalized_shape`.
    """
    op = "layer_norm"
    x = as_tensor(input)
    gamma = None if weight is None else as_tensor(weight)
    beta = None if bias is None else as_tensor(bias)
    require_floating("input", x, op)
    shape = (
        (int(normalized_shape),)
        if isinstance(normalized_shape, (int, np.integer))
        else tuple(int(n) for n in normalized_shape)
    )
    if not shape or x.shape[x.ndim - len(shape) :] != shape or len(shape) > x.ndim:
        raise ValueError(f"{op}: input of shape {x.shape} does not end with normalized_shape {shape}")
    _affine_check(op, x, shape, gamma, beta)
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    xd = x.data
    mean = xd.mean(axis=axes, keepdims=True)
    centered = xd - mean
    var = (centered * centered).mean(axis=axes, keepdims=True)
    inv_std = 1 / np.sqrt(var + xd.dtype.type(eps))
    x_hat = centered * inv_std
    out = x_hat * gamma.data if gamma is not None else x_hat.copy()
    if beta is not None:
        out += beta.data
    batch_axes = tuple(range(x.ndim - len(shape)))

    def backward(g: Array) -> tuple[Array | None, ...]:
        dx = dgamma = dbeta = None
        if x.requires_grad:
            g_hat = g * gamma.data if gamma is not None else g
            dx = _normalized_backward(g_hat, x_hat, inv_std, axes)
        if gamma is not None and gamma.requires_grad:
            dgamma = (g * x_hat).sum(axis=batch_axes)
        if beta is not None and beta.requires_grad:
            dbeta = g.sum(axis=batch_axes)
        return dx, dgamma, dbeta

    return record(
        out, (x, *(t for t in (gamma, beta) if t is not None)), _only_present(backward, gamma, beta)
    )


def _only_present(backward: Any, gamma: ExTensor | None, beta: ExTensor | None) -> Any:
    """Adapt a (dx, dγ, dβ) backward to the inputs actually recorded (γ and β are optional)."""
    keep = (True, gamma is not None, beta is not None)

    def adapted(g: Array) -> tuple[Array | None, ...]:
        return tuple(grad for grad, present in zip(backward(g), keep, strict=True) if present)

    return adapted
