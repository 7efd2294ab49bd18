"""Character-level language models: a small GPT and an LSTM, and sampling text from either.

Both map token ids (batch, time) to next-token logits (batch, time, vocabulary) and know the
longest context they read (`block_size`), so one training loop and one sampler serve both.

- `GPT`: token and position embeddings, `n_layer` pre-norm `TransformerBlock`s with causal
  attention, a final LayerNorm and a linear head, tied to the token embedding by default
  (Radford et al. 2019, GPT-2; sizes as Karpathy's nanoGPT "baby GPT" for Shakespeare).
  Weights start as GPT-2's: N(0, 0.02), with the residual projections scaled by 1/√(2·n_layer).
- `CharLSTM`: embedding, a multi-layer `LSTM`, dropout and a linear head (Karpathy's char-rnn).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from extensor.autograd.function import as_tensor
from extensor.autograd.ops.linear import linear
from extensor.autograd.tape import no_grad
from extensor.core.random import resolve_generator
from extensor.core.tensor import ExTensor
from extensor.nn import (
    LSTM,
    Dropout,
    Embedding,
    LayerNorm,
    Linear,
    Module,
    ModuleList,
    TransformerBlock,
    init,
)
from extensor.nn.linear import positive_int

__all__ = ["GPT", "CharLSTM", "LanguageModel", "generate"]


class LanguageModel(Module):
    """A next-token predictor: ``model(ids)`` of shape (batch, time) gives logits (batch, time, vocab).

    Subclasses set `vocab_size` and `block_size` (the longest context; longer inputs are refused).
    """

    vocab_size: int
    block_size: int

    def _check_ids(self, ids: Any) -> ExTensor:
        x = as_tensor(ids)
        if x.ndim != 2:
            raise ValueError(
                f"{type(self).__name__}: expected token ids of shape (batch, time), got {x.shape}"
            )
        if x.shape[1] > self.block_size:
            raise ValueError(
                f"{type(self).__name__}: a sequence of {x.shape[1]} tokens is longer than the model's "
                f"context of {self.block_size} (block_size)"
            )
        return x


class GPT(LanguageModel):
    """A decoder-only Transformer over tokens (GPT-2's layout, pre-norm).

    Args:
        vocab_size: tokens; block_size: the longest context (position embeddings).
        n_layer, n_head, n_embd: blocks, attention heads and width (default: nanoGPT's Shakespeare
            "baby GPT" at CPU size, 4 layers of 128 with 4 heads).
        dropout: on embeddings, attention weights and residual branches while training.
        tie_weights: share the token embedding with the output head (GPT-2 does).
        dtype: float32 by default; generator: initial values.
    """

    def __init__(
        self,
        vocab_size: int,
        block_size: int = 64,
        n_layer: int = 4,
        n_head: int = 4,
        n_embd: int = 128,
        dropout: float = 0.0,
        *,
        tie_weights: bool = True,
        dtype: Any = None,
        generator: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        self.vocab_size = positive_int("vocab_size", vocab_size, "GPT")
        self.block_size = positive_int("block_size", block_size, "GPT")
        self.n_layer = positive_int("n_layer", n_layer, "GPT")
        self.tie_weights = bool(tie_weights)
        self.token_embedding = Embedding(vocab_size, n_embd, dtype=dtype, generator=generator)
        self.position_embedding = Embedding(block_size, n_embd, dtype=dtype, generator=generator)
        self.drop = Dropout(dropout)
        self.blocks = ModuleList()
        for _ in range(self.n_layer):
            self.blocks.append(TransformerBlock(n_embd, n_head, dropout, dtype=dtype, generator=generator))
        self.ln_f = LayerNorm(n_embd, dtype=dtype)
        self.head = None if self.tie_weights else Linear(n_embd, vocab_size, bias=False, dtype=dtype)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: np.random.Generator | None = None) -> None:
        """GPT-2's initialisation: weights N(0, 0.02), biases 0, residual projections / √(2·n_layer)."""
        rng = resolve_generator(generator)
        for name, param in self.named_parameters():
            if name.startswith("ln_") or ".ln_" in name:
                continue  # LayerNorms keep weight 1, bias 0
            if name.endswith("bias"):
                init.zeros_(param)
            elif name.endswith(("out_proj.weight", "mlp.2.weight")):  # the residual projections
                init.normal_(param, 0.0, 0.02 / math.sqrt(2 * self.n_layer), generator=rng)
            else:
                init.normal_(param, 0.0, 0.02, generator=rng)

    def forward(self, ids: Any) -> ExTensor:
        """Logits (batch, time, vocab_size) for token ids (batch, time), time <= block_size."""
        x = self._check_ids(ids)
        positions = ExTensor(np.arange(x.shape[1]))
        h = self.drop(self.token_embedding(x) + self.position_embedding(positions))
        for block in self.blocks:
            h = block(h)
        h = self.ln_f(h)
        if self.head is None:  # h @ Eᵀ as one affine node: one 2-D product each way, no transposed copy
            return linear(h, self.token_embedding.weight)
        return self.head(h)

    def extra_repr(self) -> str:
        return f"vocab_size={self.vocab_size}, block_size={self.block_size}, tie_weights={self.tie_weights}"


class CharLSTM(LanguageModel):
    """Embedding → multi-layer LSTM → dropout → linear head over characters (char-rnn).

    Args:
        vocab_size: tokens; block_size: the context it is trained on and samples with.
        embedding_dim, hidden_size, num_layers: sizes (default 2 layers of 256).
        dropout: between LSTM layers and before the head, while training.
        dtype: float32 by default; generator: initial values and dropout masks.
    """

    def __init__(
        self,
        vocab_size: int,
        block_size: int = 64,
        embedding_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.0,
        *,
        dtype: Any = None,
        generator: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        self.vocab_size = positive_int("vocab_size", vocab_size, "CharLSTM")
        self.block_size = positive_int("block_size", block_size, "CharLSTM")
        self.embedding = Embedding(vocab_size, embedding_dim, dtype=dtype, generator=generator)
        between = dropout if num_layers > 1 else 0.0
        self.lstm = LSTM(
            embedding_dim, hidden_size, num_layers, batch_first=True, dropout=between, dtype=dtype,
            generator=generator,
        )  # fmt: skip
        self.drop = Dropout(dropout, generator=generator)
        self.head = Linear(hidden_size, vocab_size, dtype=dtype, generator=generator)

    def forward(self, ids: Any) -> ExTensor:
        """Logits (batch, time, vocab_size) for token ids (batch, time), time <= block_size."""
        x = self._check_ids(ids)
        out, _ = self.lstm(self.embedding(x))
        return self.head(self.drop(out))


def generate(
    model: LanguageModel,
    prompt: Any,
    length: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: np.random.Generator | None = None,
) -> np.ndarray:
    """Sample `length` tokens after `prompt` (a 1-D sequence of ids); return prompt and sample.

    Each new token is drawn from softmax(logits / temperature) of the model's last position,
    reading at most `block_size` tokens of context, restricted to the `top_k` likeliest tokens
    when given. The model is put in eval mode while sampling and restored afterwards.

    Raises:
        ValueError: an empty or non-1-D prompt, a negative length, temperature <= 0, top_k < 1.
    """
    ids = np.asarray(prompt, dtype=np.int64)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"generate: the prompt must be a non-empty 1-D id sequence, got shape {ids.shape}")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise ValueError(f"generate: length must be a non-negative int, got {length!r}")
    if not temperature > 0:
        raise ValueError(f"generate: temperature must be positive, got {temperature!r}")
    bad_k = isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k <= 0
    if top_k is not None and bad_k:
        raise ValueError(f"generate: top_k must be a positive int or None, got {top_k!r}")
    rng = resolve_generator(generator)
    was_training = model.training
    model.eval()
    tokens = list(ids)
    try:
        with no_grad():
            for _ in range(int(length)):
                context = np.asarray(tokens[-model.block_size :], dtype=np.int64)[None, :]
                logits = model(ExTensor(context)).data[0, -1].astype(np.float64) / temperature
                if top_k is not None and top_k < logits.size:
                    cutoff = np.partition(logits, -top_k)[-top_k]
                    logits = np.where(logits < cutoff, -np.inf, logits)
                probabilities = np.exp(logits - logits.max())
                probabilities /= probabilities.sum()
                tokens.append(int(rng.choice(probabilities.size, p=probabilities)))
    finally:
        model.train(was_training)
    return np.asarray(tokens, dtype=np.int64)
