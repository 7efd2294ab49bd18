"""What every differentiable operation uses: turning inputs into tensors and recording itself.

An operation computes its result with NumPy, defines its vector-Jacobian product right beside
it, and hands both to `record`::

    @register("mul")
    def mul(a, b):
        a, b = as_tensors(a, b)
        def backward(g):
            return unbroadcast(g * b.data, a.shape), unbroadcast(g * a.data, b.shape)
        return record(a.data * b.data, (a, b), backward)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from extensor.autograd.tape import Backward, active_tape
from extensor.core.dtypes import is_floating
from extensor.core.tensor import Array, ExTensor


def as_tensor(value: Any, like: ExTensor | None = None) -> ExTensor:
    """`value` as an ExTensor; Python scalars take the dtype of `like` (as PyTorch does)."""
    if isinstance(value, ExTensor):
        return value
    if like is not None and isinstance(value, (int, float, bool)) and is_floating(like.dtype):
        return ExTensor(np.asarray(value, dtype=like.dtype))
    return ExTensor(value)


def as_tensors(a: Any, b: Any) -> tuple[ExTensor, ExTensor]:
    """Both operands of a binary operation as ExTensors, scalars taking the other's dtype."""
    ta = a if isinstance(a, ExTensor) else None
    tb = b if isinstance(b, ExTensor) else None
    return as_tensor(a, tb), as_tensor(b, ta)


def unbroadcast(gradient: Array, shape: tuple[int, ...]) -> Array:
    """Sum `gradient` over the axes that broadcasting added or stretched to reach it from `shape`."""
    if gradient.shape == shape:
        return gradient
    extra = gradient.ndim - len(shape)
    if extra > 0:
        gradient = gradient.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and gradient.shape[i] != 1)
    if stretched:
        gradient = gradient.sum(axis=stretched, keepdims=True)
    return gradient.reshape(shape)


def record(result: Any, inputs: tuple[ExTensor, ...], backward: Backward) -> ExTensor:
    """Wrap `result` in an ExTensor and, when a tape is recording, record how to differentiate it.

    The output requires gradients when a tape is active and any input does; outside a tape (or
    inside `no_grad`) nothing is recorded, and the output is a plain tensor.
    """
    output = ExTensor(np.asarray(result))
    tape = active_tape()
    if tape is not None and any(t.requires_grad for t in inputs) and is_floating(output.dtype):
        output.requires_grad = True
        output._mark_non_leaf()
        tape.record(output, inputs, backward)
    return output


def constant(result: Any) -> ExTensor:
    """Wrap the result of a non-differentiable operation (comparisons, argmax)."""
    return ExTensor(np.asarray(result))
