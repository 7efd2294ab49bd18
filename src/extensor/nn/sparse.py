"""`Embedding`: a lookup table of learned vectors, one row per token id."""

from __future__ import annotations

from typing import Any

import numpy as np

from extensor.autograd.ops.attention import embedding
from extensor.core.tensor import ExTensor
from extensor.nn import init
from extensor.nn.linear import check_device, floating_dtype, positive_int
from extensor.nn.module import Module
from extensor.nn.parameter import Parameter


class Embedding(Module):
    """``weight[ids]`` for integer ids of any shape, as torch.nn.Embedding.

    The weight (num_embeddings, embedding_dim) starts as N(0, 1) draws, with the row
    `padding_idx` (if given) zeroed; that row's gradient is always zero, so it stays as it is.
    The gradient of a row sums the output gradients of every position holding its id.

    Args:
        num_embeddings: the vocabulary size.
        embedding_dim: the length of each vector.
        padding_idx: an id in [-num_embeddings, num_embeddings) whose row gets no gradient.
        device: None or 'cpu'; dtype: float32 by default.
        generator: a numpy.random.Generator for the initial values.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        device: Any = None,
        dtype: Any = None,
        *,
        generator: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        check_device(device, "Embedding")
        self.num_embeddings = positive_int("num_embeddings", num_embeddings, "Embedding")
        self.embedding_dim = positive_int("embedding_dim", embedding_dim, "Embedding")
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)):
                raise TypeError(f"Embedding: padding_idx must be an int or None, got {padding_idx!r}")
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(
                    f"Embedding: padding_idx {padding_idx} must be within num_embeddings "
                    f"({self.num_embeddings})"
                )
            padding_idx = int(padding_idx) % self.num_embeddings  # torch stores it non-negative
        self.padding_idx = padding_idx
        resolved = floating_dtype(dtype, "Embedding")
        self.weight = Parameter(np.empty((self.num_embeddings, self.embedding_dim), dtype=resolved))
        self.reset_parameters(generator)

    def reset_parameters(self, generator: np.random.Generator | None = None) -> None:
        """N(0, 1) values, the padding row zeroed (torch's initialisation)."""
        init.normal_(self.weight, 0.0, 1.0, generator)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, input: Any) -> ExTensor:
        """The rows of `input`'s ids: shape ``input.shape + (embedding_dim,)``."""
        return embedding(input, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        padding = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{padding}"
