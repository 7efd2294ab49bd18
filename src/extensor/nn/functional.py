"""`extensor.nn.functional`: the layers' operations as plain functions (torch.nn.functional's names).

Each is one recorded operation with a hand-written backward; see the op modules in
`extensor.autograd.ops` for the formulas.
"""

from __future__ import annotations

from typing import Any

from extensor.autograd.function import as_tensor
from extensor.autograd.ops.attention import embedding, scaled_dot_product_attention
from extensor.autograd.ops.conv import conv2d
from extensor.autograd.ops.dropout import dropout
from extensor.autograd.ops.linear import linear
from extensor.autograd.ops.loss import binary_cross_entropy_with_logits, cross_entropy, mse_loss
from extensor.autograd.ops.normalization import batch_norm, layer_norm
from extensor.autograd.ops.pooling import avg_pool2d, max_pool2d
from extensor.core.tensor import ExTensor


def relu(input: Any) -> ExTensor:
    """max(x, 0)."""
    return as_tensor(input).relu()


def sigmoid(input: Any) -> ExTensor:
    """1 / (1 + e^−x)."""
    return as_tensor(input).sigmoid()


def tanh(input: Any) -> ExTensor:
    """Hyperbolic tangent."""
    return as_tensor(input).tanh()


def gelu(input: Any, approximate: str = "none") -> ExTensor:
    """x·Φ(x), exact ('none') or with the 'tanh' approximation."""
    return as_tensor(input).gelu(approximate)


def softmax(input: Any, dim: int) -> ExTensor:
    """Softmax along `dim`."""
    return as_tensor(input).softmax(dim)


def log_softmax(input: Any, dim: int) -> ExTensor:
    """Log-softmax along `dim`."""
    return as_tensor(input).log_softmax(dim)


__all__ = [
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy_with_logits",
    "conv2d",
    "cross_entropy",
    "dropout",
    "embedding",
    "gelu",
    "layer_norm",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mse_loss",
    "relu",
    "scaled_dot_product_attention",
    "sigmoid",
    "softmax",
    "tanh",
]
