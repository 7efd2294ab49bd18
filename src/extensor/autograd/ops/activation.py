"""Activations: relu, sigmoid, tanh, gelu, softmax, log_softmax — each forward beside its backward.

All are numerically stable for any finite input: sigmoid never evaluates exp of a positive
number, and softmax/log_softmax subtract the row maximum before exponentiating.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from extensor.autograd.function import as_float_tensor, as_tensor, normalize_axis, record
from extensor.autograd.ops import _activation_kernels, _workspace
from extensor.core.dispatch import register
from extensor.core.tensor import Array, ExTensor

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_CUBIC = 0.044715

kernels: Any = _activation_kernels  # numba dispatchers; their call signatures are not visible to mypy


_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _flat(array: Array) -> Array:
    """`array` as a 1-D C-contiguous view (a copy only when it is strided)."""
    return np.ascontiguousarray(array).reshape(-1)


@register("relu")
def relu(a: Any) -> ExTensor:
    """max(x, 0) as torch.relu (NaN and −0.0 pass); the gradient passes unless relu(x) <= 0: 0 at
    x = 0, passed at NaN (as PyTorch).

    Float32/64 run a compiled loop into a pooled buffer (`_activation_kernels`, `_workspace`); other
    dtypes use NumPy.
    """
    x = as_tensor(a)
    xd = x.data
    dtype = xd.dtype
    if dtype in _KERNEL_DTYPES:
        y = _workspace.empty(xd.shape, dtype)
        kernels.relu_forward(_flat(xd), y.reshape(-1))
    else:
        y = np.maximum(xd, 0)

    def backward(g: Array) -> tuple[Array]:
        if dtype in _KERNEL_DTYPES and g.dtype == dtype:
            grad = _workspace.empty(y.shape, dtype)
            kernels.relu_backward(y.reshape(-1), _flat(g), grad.reshape(-1))
            return (grad,)
        return (np.where(y <= 0, 0, g),)

    return record(y, (x,), backward)


@register("sigmoid")
def sigmoid(a: Any) -> ExTensor:
    """σ(x) = 1 / (1 + e**-x), evaluated as e**min(x,0) / (1 + e**-|x|); σ' = σ(1 - σ)."""
    x = as_float_tensor(a)
    xd = x.data
    e = np.exp(-np.abs(xd))
    y = np.where(xd >= 0, 1, e) / (1 + e)

    def backward(g: Array) -> tuple[Array]:
        return (g * y * (1 - y),)

    return record(y, (x,), backward)


@register("tanh")
def tanh(a: Any) -> ExTensor:
    """Hyperbolic tangent; tanh' = 1 - tanh²."""
    x = as_float_tensor(a)
    y = np.tanh(x.data)

    def backward(g: Array) -> tuple[Array]:
        return (g * (1 - y * y),)

    return record(y, (x,), backward)


@register("gelu")
def gelu(a: Any, approximate: str = "none") -> ExTensor:
    """Gaussian error linear unit (Hendrycks & Gimpel, 2016, arXiv:1606.08415), as torch.nn.functional.gelu.

    approximate="none":  x Φ(x) = x/2 (1 + erf(x/√2)),   derivative Φ(x) + x φ(x).
    approximate="tanh":  x/2 (1 + tanh(√(2/π)(x + 0.044715 x³))).
    """
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu's approximate must be 'none' or 'tanh', got {approximate!r}")
    x = as_float_tensor(a)
    xd = x.data
    dtype = xd.dtype.type
    if approximate == "none":
        flat = np.ascontiguousarray(xd).reshape(-1)
        y = np.empty_like(flat)
        cdf = np.empty_like(flat)
        _activation_kernels.gelu_forward(flat, dtype(_INV_SQRT_2), y, cdf)

        def backward(g: Array) -> tuple[Array]:
            grad = np.empty_like(flat)
            upstream = np.ascontiguousarray(g).reshape(-1)
            _activation_kernels.gelu_backward(flat, cdf, upstream, dtype(_INV_SQRT_2PI), grad)
            return (grad.reshape(xd.shape),)

        return record(y.reshape(xd.shape), (x,), backward)

    inner = dtype(_SQRT_2_OVER_PI) * (xd + dtype(_GELU_CUBIC) * xd * xd * xd)
    t = np.tanh(inner)
    y = 0.5 * xd * (1 + t)

    def backward_tanh(g: Array) -> tuple[Array]:
        d_inner = dtype(_SQRT_2_OVER_PI) * (1 + dtype(3 * _GELU_CUBIC) * xd * xd)
        return (g * (0.5 * (1 + t) + 0.5 * xd * (1 - t * t) * d_inner),)

    return record(y, (x,), backward_tanh)


def _shifted(xd: Array, axis: int) -> Array:
    """x minus its maximum along `axis`, so exp never overflows (an all -inf row gives NaN, as in PyTorch)."""
    return xd - xd.max(axis=axis, keepdims=True)


@register("softmax")
def softmax(a: Any, axis: int = -1) -> ExTensor:
    """softmax(x)_i = e**x_i / Σ_j e**x_j along `axis`; backward y ⊙ (g - Σ g ⊙ y)."""
    x = as_float_tensor(a)
    ax = normalize_axis(axis, x.ndim)
    xd = x.data if x.ndim else x.data.reshape(1)
    e = np.exp(_shifted(xd, ax))
    y = e / e.sum(axis=ax, keepdims=True)

    def backward(g: Array) -> tuple[Array]:
        g = g.reshape(y.shape)
        return ((y * (g - (g * y).sum(axis=ax, keepdims=True))).reshape(x.shape),)

    return record(y.reshape(x.shape), (x,), backward)


@register("log_softmax")
def log_softmax(a: Any, axis: int = -1) -> ExTensor:
    """log softmax(x) = x - max - log Σ e**(x - max) along `axis`; backward g - softmax ⊙ Σ g."""
    x = as_float_tensor(a)
    ax = normalize_axis(axis, x.ndim)
    xd = x.data if x.ndim else x.data.reshape(1)
    shifted = _shifted(xd, ax)
    y = shifted - np.log(np.exp(shifted).sum(axis=ax, keepdims=True))

    def backward(g: Array) -> tuple[Array]:
        g = g.reshape(y.shape)
        return ((g - np.exp(y) * g.sum(axis=ax, keepdims=True)).reshape(x.shape),)

    return record(y.reshape(x.shape), (x,), backward)
