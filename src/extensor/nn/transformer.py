"""Attention layers: `MultiheadAttention` (torch's parameter layout) and a pre-norm `TransformerBlock`."""

from __future__ import annotations

from typing import Any

import numpy as np

from extensor.autograd.function import as_tensor
from extensor.autograd.ops.attention import packed_attention, scaled_dot_product_attention
from extensor.autograd.ops.dropout import dropout
from extensor.autograd.ops.linear import linear
from extensor.core.tensor import ExTensor
from extensor.nn import init
from extensor.nn.activation import GELU
from extensor.nn.container import Sequential
from extensor.nn.dropout import Dropout
from extensor.nn.linear import Linear, check_device, floating_dtype, positive_int
from extensor.nn.module import Module
from extensor.nn.normalization import LayerNorm
from extensor.nn.parameter import Parameter


class MultiheadAttention(Module):
    """Multi-head attention (Vaswani et al. 2017), as torch.nn.MultiheadAttention with one embed dim.

    ``softmax(Q Kᵀ / √d + mask) V`` in `num_heads` heads of ``d = embed_dim / num_heads``, the
    inputs projected by the stacked ``in_proj_weight`` (3·embed_dim, embed_dim) and the heads'
    outputs by ``out_proj``. Parameter names, shapes and initialisation are torch's
    (``in_proj_weight`` Xavier-uniform, ``in_proj_bias`` and ``out_proj.bias`` zero), so a torch
    layer's state_dict loads as it is. It works batch first inside; self-attention without
    `need_weights` (a Transformer block's case) is one input projection and one fused
    `packed_attention` node from the packed q, k, v to the merged heads.

    Args:
        embed_dim: model width; num_heads: heads (must divide embed_dim).
        dropout: dropout on the attention weights while training.
        bias: learn the projection biases.
        batch_first: inputs are (batch, sequence, feature) instead of torch's default
            (sequence, batch, feature).
        device, dtype: as torch (CPU; float32 by default).
        generator: a numpy.random.Generator for the initial values.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        batch_first: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        generator: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        check_device(device, "MultiheadAttention")
        self.embed_dim = positive_int("embed_dim", embed_dim, "MultiheadAttention")
        self.num_heads = positive_int("num_heads", num_heads, "MultiheadAttention")
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"MultiheadAttention: embed_dim {embed_dim} must be divisible by num_heads {num_heads}"
            )
        if isinstance(dropout, bool) or not 0.0 <= float(dropout) <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be a probability in [0, 1], got {dropout!r}")
        self.head_dim = self.embed_dim // self.num_heads
        self.dropout = float(dropout)
        self.batch_first = bool(batch_first)
        resolved = floating_dtype(dtype, "MultiheadAttention")
        self.in_proj_weight = Parameter(np.empty((3 * self.embed_dim, self.embed_dim), dtype=resolved))
        self.in_proj_bias = Parameter(np.zeros(3 * self.embed_dim, dtype=resolved)) if bias else None
        self.out_proj = Linear(self.embed_dim, self.embed_dim, bias=bias, dtype=resolved, generator=generator)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: np.random.Generator | None = None) -> None:
        """Xavier-uniform input projection, zero biases (torch's `_reset_parameters`)."""
        init.xavier_uniform_(self.in_proj_weight, generator=generator)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
        if self.out_proj.bias is not None:
            init.zeros_(self.out_proj.bias)

    def forward(
        self,
        query: Any,
        key: Any,
        value: Any,
        attn_mask: Any = None,
        need_weights: bool = True,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[ExTensor, ExTensor | None]:
        """Attend from `query` to `key`/`value`; returns ``(output, weights)`` as torch.

        Shapes (batch_first=False): query (L, N, E), key and value (S, N, E), output (L, N, E);
        unbatched (L, E) inputs are accepted too. `attn_mask` is (L, S) or (N·heads, L, S), bool
        (True = masked out, torch's convention here) or float (added). With `is_causal` (and no
        mask) position i attends to j <= i. The weights are (N, L, S) averaged over heads, or
        (N, heads, L, S), or None when not `need_weights`.
        """
        q_in, k_in, v_in = as_tensor(query), as_tensor(key), as_tensor(value)
        if q_in.ndim not in (2, 3):
            raise ValueError(f"MultiheadAttention: query must be 2-D or 3-D, got shape {q_in.shape}")
        if not (q_in.ndim == k_in.ndim == v_in.ndim):
            raise ValueError(
                f"MultiheadAttention: query, key and value must have the same rank, got shapes "
                f"{q_in.shape}, {k_in.shape}, {v_in.shape}"
            )
        self_attention = q_in is k_in and k_in is v_in
        # work batch first, (N, L, E): the layout of a Transformer's residual stream, so that the
        # projections read and write contiguous rows and nothing is transposed back and forth
        unbatched = q_in.ndim == 2
        if unbatched:
            q_in, k_in, v_in = (t.unsqueeze(0) for t in (q_in, k_in, v_in))
        elif not self.batch_first:
            q_in, k_in, v_in = (t.transpose(0, 1) for t in (q_in, k_in, v_in))
        batch, length, width = q_in.shape
        if width != self.embed_dim:
            raise ValueError(
                f"MultiheadAttention: expected embed_dim {self.embed_dim}, got query width {width}"
            )
        source = k_in.shape[1]
        e, h, d = self.embed_dim, self.num_heads, self.head_dim
        b = self.in_proj_bias
        w = self.in_proj_weight
        mask = _additive_mask(attn_mask, batch, h, length, source, q_in.dtype)
        causal = is_causal and mask is None
        p = self.dropout if self.training else 0.0
        weights: ExTensor | None = None
        if self_attention and not need_weights:  # one projection and one fused attention node
            packed = linear(q_in, w, b)
            merged = packed_attention(packed, h, attn_mask=mask, dropout_p=p, is_causal=causal)
        else:
            if self_attention:
                qkv = linear(q_in, w, b).reshape(batch, length, 3, h, d).permute(2, 0, 3, 1, 4)
                q, k, v = qkv[0], qkv[1], qkv[2]  # each (N, heads, L, d)
            else:
                q, k, v = (
                    linear(x, w[i * e : (i + 1) * e], None if b is None else b[i * e : (i + 1) * e])
                    .reshape(batch, x.shape[1], h, d)
                    .permute(0, 2, 1, 3)
                    for i, x in enumerate((q_in, k_in, v_in))
                )
            if need_weights:
                scores = (q @ k.transpose(-1, -2)) * (1.0 / float(np.sqrt(d)))
                if causal:
                    mask = np.triu(np.full((length, source), -np.inf, dtype=q.dtype), 1)
                if mask is not None:
                    scores = scores + ExTensor(mask)
                attention = scores.softmax(-1)
                weights = attention.mean(axis=1) if average_attn_weights else attention
                heads = dropout(attention, p, True) @ v if p > 0 else attention @ v
            else:
                heads = scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal)
            merged = heads.permute(0, 2, 1, 3).reshape(batch, length, e)
        out = self.out_proj(merged)
        if unbatched:
            out = out.squeeze(0)
            weights = None if weights is None else weights.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"


def _additive_mask(
    attn_mask: Any, batch: int, heads: int, length: int, source: int, dtype: np.dtype[Any]
) -> np.ndarray[Any, Any] | None:
    """torch's attn_mask (bool: True = masked; float: added), as a float array broadcasting to
    (N, heads, L, S), or None."""
    if attn_mask is None:
        return None
    mask = attn_mask.data if isinstance(attn_mask, ExTensor) else np.asarray(attn_mask)
    if mask.shape == (length, source):
        pass
    elif mask.shape == (batch * heads, length, source):
        mask = mask.reshape(batch, heads, length, source)
    else:
        raise ValueError(
            f"MultiheadAttention: attn_mask must have shape ({length}, {source}) or "
            f"({batch * heads}, {length}, {source}), got {mask.shape}"
        )
    if mask.dtype == np.bool_:
        return np.where(mask, dtype.type(-np.inf), dtype.type(0))
    return mask.astype(dtype, copy=False)


class TransformerBlock(Module):
    """A pre-norm Transformer block (GPT-2's): ``x + attn(LN(x))``, then ``x + MLP(LN(x))``.

    The MLP is Linear(d, 4d) → GELU → Linear(4d, d) → dropout; attention is causal
    `MultiheadAttention` (batch first) followed by dropout. Inputs are (batch, sequence, d_model).

    Args:
        d_model: width; num_heads: attention heads; dropout: residual and attention dropout.
        causal: mask future positions (a decoder block, as in GPT).
        mlp_ratio: hidden width of the MLP over d_model.
        dtype: float32 by default; generator: initial values.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dropout: float = 0.0,
        *,
        causal: bool = True,
        mlp_ratio: int = 4,
        dtype: Any = None,
        generator: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        self.causal = bool(causal)
        self.ln_1 = LayerNorm(d_model, dtype=dtype)
        self.attn = MultiheadAttention(
            d_model, num_heads, dropout=dropout, batch_first=True, dtype=dtype, generator=generator
        )
        self.ln_2 = LayerNorm(d_model, dtype=dtype)
        hidden = positive_int("mlp_ratio", mlp_ratio, "TransformerBlock") * d_model
        self.mlp = Sequential(
            Linear(d_model, hidden, dtype=dtype, generator=generator),
            GELU(),
            Linear(hidden, d_model, dtype=dtype, generator=generator),
            Dropout(dropout),
        )
        self.drop = Dropout(dropout)

    def forward(self, x: Any) -> ExTensor:
        """(batch, sequence, d_model) -> the same shape."""
        x = as_tensor(x)
        normed = self.ln_1(x)
        attended, _ = self.attn(normed, normed, normed, need_weights=False, is_causal=self.causal)
        x = x + self.drop(attended)
        return x + self.mlp(self.ln_2(x))
