"""Comparisons producing boolean tensors, which carry no gradient.

Operands broadcast and are promoted as in PyTorch before comparing. Comparing with None
(`x == None`) is not an elementwise operation: it returns NotImplemented so that Python falls
back to identity, giving False, as for a torch tensor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from extensor.autograd.function import as_tensors, constant
from extensor.core.dispatch import register
from extensor.core.tensor import Array, ExTensor


def _compare(a: Any, b: Any, op: Callable[[Array, Array], Array]) -> Any:
    if a is None or b is None:
        return NotImplemented
    x, y = as_tensors(a, b)
    return constant(op(x.data, y.data))


@register("eq")
def eq(a: Any, b: Any) -> ExTensor:
    """Elementwise `a == b` with broadcasting, as a bool tensor (no gradient)."""
    return _compare(a, b, np.equal)


@register("ne")
def ne(a: Any, b: Any) -> ExTensor:
    """Elementwise `a != b` with broadcasting, as a bool tensor (no gradient)."""
    return _compare(a, b, np.not_equal)


@register("lt")
def lt(a: Any, b: Any) -> ExTensor:
    """Elementwise `a < b` with broadcasting, as a bool tensor (no gradient)."""
    return _compare(a, b, np.less)


@register("le")
def le(a: Any, b: Any) -> ExTensor:
    """Elementwise `a <= b` with broadcasting, as a bool tensor (no gradient)."""
    return _compare(a, b, np.less_equal)


@register("gt")
def gt(a: Any, b: Any) -> ExTensor:
    """Elementwise `a > b` with broadcasting, as a bool tensor (no gradient)."""
    return _compare(a, b, np.greater)


@register("ge")
def ge(a: Any, b: Any) -> ExTensor:
    """Elementwise `a >= b` with broadcasting, as a bool tensor (no gradient)."""
    return _compare(a, b, np.greater_equal)
