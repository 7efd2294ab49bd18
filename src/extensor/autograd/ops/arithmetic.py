"""Broadcasting arithmetic and the matrix product, each forward beside its backward."""

from __future__ import annotations

from typing import Any

import numpy as np

from extensor.autograd.function import as_float_tensors, as_tensor, as_tensors, record, unbroadcast
from extensor.core.dispatch import register
from extensor.core.tensor import Array, ExTensor


@register("add")
def add(a: Any, b: Any) -> ExTensor:
    """a + b with broadcasting."""
    x, y = as_tensors(a, b)

    def backward(g: Array) -> tuple[Array | None, Array | None]:
        return (
            unbroadcast(g, x.shape) if x.requires_grad else None,
            unbroadcast(g, y.shape) if y.requires_grad else None,
        )

    return record(x.data + y.data, (x, y), backward)


@register("sub")
def sub(a: Any, b: Any) -> ExTensor:
    """a - b with broadcasting."""
    x, y = as_tensors(a, b)

    def backward(g: Array) -> tuple[Array | None, Array | None]:
        return (
            unbroadcast(g, x.shape) if x.requires_grad else None,
            unbroadcast(-g, y.shape) if y.requires_grad else None,
        )

    return record(x.data - y.data, (x, y), backward)


@register("mul")
def mul(a: Any, b: Any) -> ExTensor:
    """a * b with broadcasting."""
    x, y = as_tensors(a, b)

    def backward(g: Array) -> tuple[Array | None, Array | None]:
        return (
            unbroadcast(g * y.data, x.shape) if x.requires_grad else None,
            unbroadcast(g * x.data, y.shape) if y.requires_grad else None,
        )

    return record(x.data * y.data, (x, y), backward)


@register("div")
def div(a: Any, b: Any) -> ExTensor:
    """a / b with broadcasting; true division, so integer operands give float32 (as in PyTorch)."""
    x, y = as_tensors(a, b)
    if x.dtype.kind != "f":
        x, y = as_float_tensors(x, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        quotient = x.data / y.data

    def backward(g: Array) -> tuple[Array | None, Array | None]:
        with np.errstate(divide="ignore", invalid="ignore"):
            g_over_y = g / y.data
            gy = unbroadcast(-g_over_y * quotient, y.shape) if y.requires_grad else None
        return unbroadcast(g_over_y, x.shape), gy

    return record(quotient, (x, y), backward)


@register("neg")
def neg(a: Any) -> ExTensor:
    """-a."""
    x = as_tensor(a)

    def backward(g: Array) -> tuple[Array]:
        return (-g,)

    return record(-x.data, (x,), backward)


@register("pow")
def pow(a: Any, b: Any) -> ExTensor:
    """a ** b with broadcasting; differentiable in both the base and the exponent.

    As PyTorch: d/da = b a**(b-1), taken as 0 where b == 0; d/db = a**b log(a), taken as 0 where
    a == 0 and b >= 0 (and NaN for a negative base).
    """
    x, y = as_tensors(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.power(x.data, y.data)

    def backward(g: Array) -> tuple[Array | None, Array | None]:
        xd, yd = x.data, y.data
        with np.errstate(divide="ignore", invalid="ignore"):
            dx = None
            if x.requires_grad:
                dx = unbroadcast(np.where(yd == 0, 0, g * yd * np.power(xd, yd - 1)).astype(g.dtype), x.shape)
            dy = None
            if y.requires_grad:
                dy_full = np.where((xd == 0) & (yd >= 0), 0, g * result * np.log(xd)).astype(g.dtype)
                dy = unbroadcast(dy_full, y.shape)
        return dx, dy

    return record(result, (x, y), backward)


@register("matmul")
def matmul(a: Any, b: Any) -> ExTensor:
    """Matrix product with NumPy's rules (1-D operands, batched stacks of matrices)."""
    x, y = as_tensors(a, b)
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(
            f"matmul needs operands with at least one dimension, got shapes {x.shape} and {y.shape}"
        )
    inner_x = x.shape[-1]
    inner_y = y.shape[0] if y.ndim == 1 else y.shape[-2]
    if inner_x != inner_y:
        raise ValueError(
            f"matmul shape mismatch: {x.shape} @ {y.shape} (inner dimensions {inner_x} and {inner_y} differ)"
        )

    def backward(g: Array) -> tuple[Array | None, Array | None]:
        xd, yd = x.data, y.data
        if xd.ndim == 1 and yd.ndim == 1:  # a dot product: g is a scalar
            return (g * yd if x.requires_grad else None, g * xd if y.requires_grad else None)
        # Promote 1-D operands to matrices so one formula serves every case.
        x2 = xd[None, :] if xd.ndim == 1 else xd
        y2 = yd[:, None] if yd.ndim == 1 else yd
        g2 = g
        if xd.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if yd.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        dx = dy = None
        if x.requires_grad:
            dx = g2 @ np.swapaxes(y2, -1, -2)
            dx = unbroadcast(dx.squeeze(-2) if xd.ndim == 1 else dx, x.shape)
        if y.requires_grad:
            dy = np.swapaxes(x2, -1, -2) @ g2
            dy = unbroadcast(dy.squeeze(-1) if yd.ndim == 1 else dy, y.shape)
        return dx, dy

    return record(x.data @ y.data, (x, y), backward)
