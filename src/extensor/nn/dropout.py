"""`Dropout`: inverted dropout in training mode, the identity in evaluation mode."""

from __future__ import annotations

from typing import Any

import numpy as np

from extensor.autograd.ops.dropout import dropout
from extensor.core.random import resolve_generator
from extensor.core.tensor import ExTensor
from extensor.nn.module import Module


class Dropout(Module):
    """Zero each element with probability p while training and scale the rest by 1/(1 − p).

    Srivastava et al. (2014), "Dropout: a simple way to prevent neural networks from overfitting".
    Masks are drawn from `generator`, or the default generator when None, so a seeded run repeats.
    """

    def __init__(self, p: float = 0.5, generator: np.random.Generator | None = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: probability p must be in [0, 1], got {p!r}")
        if generator is not None:
            resolve_generator(generator)
        self.p = float(p)
        self.generator = generator

    def forward(self, input: Any) -> ExTensor:
        """Apply dropout in training mode; return the input unchanged in evaluation mode."""
        return dropout(input, self.p, self.training, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}"
