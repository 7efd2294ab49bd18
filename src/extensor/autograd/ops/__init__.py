"""Differentiable operations, one module per family; importing this registers them all."""

from extensor.autograd.ops import arithmetic

__all__ = ["arithmetic"]
