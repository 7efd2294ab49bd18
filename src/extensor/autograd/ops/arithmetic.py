"""Broadcasting arithmetic and the matrix product, each forward beside its backward."""

from __future__ import annotations

from typing import Any

import numpy as np

from extensor.autograd.function import as_tensor, as_tensors, record, unbroadcast
from extensor.core.dispatch import register
from extensor.core.tensor import Array, ExTensor


@register("add")
def add(a: Any, b: Any) -> ExTensor:
    """a + b with broadcasting."""
    x, y = as_tensors(a, b)

    def backward(g: Array) -> tuple[Array, Array]:
        return unbroadcast(g, x.shape), unbroadcast(g, y.shape)

    return record(x.data + y.data, (x, y), backward)


@register("sub")
def sub(a: Any, b: Any) -> ExTensor:
    """a - b with broadcasting."""
    x, y = as_tensors(a, b)

    def backward(g: Array) -> tuple[Array, Array]:
        return unbroadcast(g, x.shape), unbroadcast(-g, y.shape)

    return record(x.data - y.data, (x, y), backward)


@register("mul")
def mul(a: Any, b: Any) -> ExTensor:
    """a * b with broadcasting."""
    x, y = as_tensors(a, b)

    def backward(g: Array) -> tuple[Array, Array]:
        return unbroadcast(g * y.data, x.shape), unbroadcast(g * x.data, y.shape)

    return record(x.data * y.data, (x, y), backward)


@register("div")
def div(a: Any, b: Any) -> ExTensor:
    """a / b with broadcasting."""
    x, y = as_tensors(a, b)
    quotient = x.data / y.data

    def backward(g: Array) -> tuple[Array, Array]:
        g_over_y = g / y.data
        return unbroadcast(g_over_y, x.shape), unbroadcast(-g_over_y * quotient, y.shape)

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
    """a ** b with broadcasting; differentiable in both the base and the exponent."""
    x, y = as_tensors(a, b)
    result = np.power(x.data, y.data)

    def backward(g: Array) -> tuple[Array, Array | None]:
        dx = unbroadcast(g * y.data * np.power(x.data, y.data - 1), x.shape)
        if not y.requires_grad:
            return dx, None
        with np.errstate(divide="ignore", invalid="ignore"):
            log_x = np.where(x.data > 0, np.log(np.where(x.data > 0, x.data, 1)), 0)
        return dx, unbroadcast(g * result * log_x, y.shape)

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

    def backward(g: Array) -> tuple[Array, Array]:
        xd, yd = x.data, y.data
        # Promote 1-D operands to matrices so one formula serves every case.
        x2 = xd[None, :] if xd.ndim == 1 else xd
        y2 = yd[:, None] if yd.ndim == 1 else yd
        g2 = g
        if xd.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if yd.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        dx = g2 @ np.swapaxes(y2, -1, -2)
        dy = np.swapaxes(x2, -1, -2) @ g2
        if xd.ndim == 1:
            dx = dx.squeeze(-2)
        if yd.ndim == 1:
            dy = dy.squeeze(-1)
        return unbroadcast(dx, x.shape), unbroadcast(dy, y.shape)

    return record(x.data @ y.data, (x, y), backward)
