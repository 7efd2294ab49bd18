"""Differentiable operations, one module per family; importing this registers them all."""

from extensor.autograd.ops import (
    activation,
    arithmetic,
    attention,
    comparison,
    conv,
    dropout,
    elementwise,
    linear,
    loss,
    normalization,
    pooling,
    recurrent,
    reduction,
    shape,
)

__all__ = [
    "activation",
    "arithmetic",
    "attention",
    "comparison",
    "conv",
    "dropout",
    "elementwise",
    "linear",
    "loss",
    "normalization",
    "pooling",
    "recurrent",
    "reduction",
    "shape",
]
