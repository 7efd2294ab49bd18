"""The affine map of a Linear layer, fused into one recorded operation."""

from __future__ import annotations

from typing import Any

from extensor.autograd.function import as_tensor, record
from extensor.autograd.ops._layer_checks import require_floating, require_same_dtype
from extensor.core.dispatch import register
from extensor.core.tensor import Array, ExTensor


@register("linear")
def linear(input: Any, weight: Any, bias: Any = None) -> ExTensor:
    """y = x Wᵀ + b as one recorded node (torch.nn.functional.linear).

    Args:
        input: (*, in_features); every leading dimension is a batch dimension.
        weight: (out_features, in_features).
        bias: optional (out_features,).

    Returns:
        (*, out_features). The backward pass computes dx = g W, dW = gᵀ x and db = Σ g, skipping
        the ones whose tensor does not require a gradient (the data batch, typically).
    """
    x, w = as_tensor(input), as_tensor(weight)
    b = None if bias is None else as_tensor(bias)
    if w.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {w.shape}")
    out_features, in_features = w.shape
    if x.ndim == 0 or x.shape[-1] != in_features:
        raise ValueError(
            f"linear: shape mismatch, input of shape {x.shape} cannot be multiplied by a weight of shape "
            f"{w.shape} (the input's last dimension must be in_features={in_features})"
        )
    if b is not None and b.shape != (out_features,):
        raise ValueError(f"linear: bias must have shape ({out_features},), got {b.shape}")
    require_floating("input", x, "linear")
    require_same_dtype("linear", ("weight", w), ("input", x), ("bias", b))

    batch_shape = x.shape[:-1]
    x2 = x.data.reshape(-1, in_features)
    out = x2 @ w.data.T
    if b is not None:
        out += b.data

    def backward(g: Array) -> tuple[Array | None, ...]:
        g2 = g.reshape(-1, out_features)
        dx = (g2 @ w.data).reshape(x.shape) if x.requires_grad else None
        dw = g2.T @ x2 if w.requires_grad else None
        if b is None:
            return dx, dw
        db = g2.sum(axis=0) if b.requires_grad else None
        return dx, dw, db

    inputs = (x, w) if b is None else (x, w, b)
    return record(out.reshape(*batch_shape, out_features), inputs, backward)
