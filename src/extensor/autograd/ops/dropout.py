"""Inverted dropout with an explicit random Generator."""

from __future__ import annotations

from typing import Any

import numpy as np

from extensor.autograd.function import as_tensor, record
from extensor.autograd.ops._layer_checks import require_floating
from extensor.core.dispatch import register
from extensor.core.random import resolve_generator
from extensor.core.tensor import Array, ExTensor


@register("dropout")
def dropout(
    input: Any, p: float = 0.5, training: bool = True, generator: np.random.Generator | None = None
) -> ExTensor:
    """Zero each element with probability p and scale the survivors by 1/(1 − p) (Srivastava et al. 2014).

    y = x · m / (1 − p) with m ~ Bernoulli(1 − p) drawn from `generator` (the default generator when
    None), so E[y] = x; the gradient is g · m / (1 − p). When not `training`, or when p = 0, the
    input is returned unchanged; p = 1 gives zeros.
    """
    x = as_tensor(input)
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"dropout: probability p must be a number in [0, 1], got {p!r}")
    require_floating("input", x, "dropout")
    if generator is not None:
        resolve_generator(generator)  # type check before anything else
    if not training or p == 0:
        return x
    source = resolve_generator(generator)
    dtype = x.dtype
    if p == 1:
        scaled_mask = np.zeros(x.shape, dtype=dtype)
    else:
        draws = source.random(x.shape, dtype=np.float32 if dtype == np.float32 else np.float64)
        keep = dtype.type(1 - p)
        scaled_mask = (draws < keep) * (1 / keep)
        scaled_mask = scaled_mask.astype(dtype, copy=False)

    def backward(g: Array) -> tuple[Array]:
        return (g * scaled_mask,)

    return record(x.data * scaled_mask, (x,), backward)
