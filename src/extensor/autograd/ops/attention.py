"""Token embedding lookup and scaled dot-product attention, each one recorded operation.

`embedding` gathers rows of a table; its backward scatters the output gradient back, summing
the rows of repeated ids. `scaled_dot_product_attention` is torch.nn.functional's: the scores,
mask, softmax, dropout and weighted sum are one node whose backward is written out, so a
Transformer block records four nodes for attention instead of a dozen.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from extensor.autograd.function import as_tensor, record, unbroadcast
from extensor.autograd.ops._layer_checks import require_floating, require_same_dtype
from extensor.core.dispatch import register
from extensor.core.random import resolve_generator
from extensor.core.tensor import Array, ExTensor


def check_token_ids(ids: ExTensor, vocabulary: int, op: str) -> Array:
    """The ids as an int64 array, or a clear error for a non-integer tensor or an id outside
    ``[0, vocabulary)`` (naming the first bad id)."""
    data = ids.data
    if data.dtype.kind not in "iu":
        raise TypeError(f"{op}: token ids must be an integer tensor, got dtype {data.dtype}")
    if data.size:
        low, high = int(data.min()), int(data.max())
        if low < 0 or high >= vocabulary:
            bad = low if low < 0 else high
            raise IndexError(f"{op}: token id {bad} is out of range for an embedding of {vocabulary} rows")
    return data.astype(np.int64, copy=False)


@register("embedding")
def embedding(input: Any, weight: Any, padding_idx: int | None = None) -> ExTensor:
    """``weight[input]``: the rows of `weight` (num_embeddings, dim) for integer ids of any shape.

    As torch.nn.functional.embedding: the result has shape ``input.shape + (dim,)``; the
    gradient of row r is the sum of the output gradients at every position whose id is r, and
    the row `padding_idx` gets no gradient.
    """
    ids, w = as_tensor(input), as_tensor(weight)
    if w.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, dim), got shape {w.shape}")
    require_floating("weight", w, "embedding")
    rows, dim = w.shape
    index = check_token_ids(ids, rows, "embedding")
    flat = index.reshape(-1)
    out = w.data[flat].reshape(*index.shape, dim)

    def backward(g: Array) -> tuple[None, Array]:
        grad = np.zeros_like(w.data)
        np.add.at(grad, flat, g.reshape(-1, dim))
        if padding_idx is not None:
            grad[padding_idx] = 0
        return None, grad

    return record(out, (ids, w), backward)


@register("scaled_dot_product_attention")
def scaled_dot_product_attention(
    query: Any,
    key: Any,
    value: Any,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    *,
    generator: np.random.Generator | None = None,
) -> ExTensor:
    """softmax(q kᵀ · scale + mask) v over the last two dimensions, as torch.nn.functional's.

    Args:
        query: (..., L, E); key: (..., S, E); value: (..., S, Ev); leading dimensions broadcast.
        attn_mask: a bool mask (True = attend) or a float mask added to the scores, broadcastable
            to (..., L, S); not together with `is_causal`.
        dropout_p: dropout probability on the attention weights (training only: pass 0 in eval).
        is_causal: position i attends to positions j <= i only (the top-left causal mask).
        scale: the score scale; default 1/√E.
        generator: the dropout generator (the default generator when None).

    Returns:
        (..., L, Ev). A row whose every score is masked gives NaN, as in torch.
    """
    q, k, v = as_tensor(query), as_tensor(key), as_tensor(value)
    for name, t in (("query", q), ("key", k), ("value", v)):
        if t.ndim < 2:
            raise ValueError(
                f"scaled_dot_product_attention: {name} must have at least 2 dimensions, got {t.shape}"
            )
    require_floating("query", q, "scaled_dot_product_attention")
    require_same_dtype("scaled_dot_product_attention", ("query", q), ("key", k), ("value", v))
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"scaled_dot_product_attention: query's last dimension {q.shape[-1]} differs from key's "
            f"{k.shape[-1]}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"scaled_dot_product_attention: key has {k.shape[-2]} positions but value has {v.shape[-2]}"
        )
    if isinstance(dropout_p, bool) or not 0.0 <= float(dropout_p) <= 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1], got {dropout_p!r}")
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: give either attn_mask or is_causal, not both")
    dtype = q.dtype
    factor = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    length, source = q.shape[-2], k.shape[-2]

    scores = np.matmul(q.data, np.swapaxes(k.data, -1, -2)) * dtype.type(factor)
    if is_causal:
        allowed = np.tril(np.ones((length, source), dtype=np.bool_))
        scores = np.where(allowed, scores, dtype.type(-np.inf))
    elif attn_mask is not None:
        mask = attn_mask.data if isinstance(attn_mask, ExTensor) else np.asarray(attn_mask)
        if mask.dtype == np.bool_:
            scores = np.where(mask, scores, dtype.type(-np.inf))
        else:
            scores = scores + mask.astype(dtype, copy=False)
    shifted = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(shifted)
    weights /= weights.sum(axis=-1, keepdims=True)
    dropped = weights
    keep_scale: Array | None = None
    if dropout_p > 0:
        draws = resolve_generator(generator).random(weights.shape, dtype=np.float64).astype(dtype)
        keep = dtype.type(1 - dropout_p)
        keep_scale = ((draws < keep) / keep if keep > 0 else np.zeros_like(draws)).astype(dtype)
        dropped = weights * keep_scale
    out = np.matmul(dropped, v.data)

    def backward(g: Array) -> tuple[Array | None, Array | None, Array | None]:
        dv = np.matmul(np.swapaxes(dropped, -1, -2), g) if v.requires_grad else None
        d_dropped = np.matmul(g, np.swapaxes(v.data, -1, -2))
        d_weights = d_dropped if keep_scale is None else d_dropped * keep_scale
        # softmax: ds = w ⊙ (dw − Σ dw ⊙ w); masked entries have w = 0 and get 0
        d_scores = weights * (d_weights - (d_weights * weights).sum(axis=-1, keepdims=True))
        d_scores *= dtype.type(factor)
        dq = np.matmul(d_scores, k.data) if q.requires_grad else None
        dk = np.matmul(np.swapaxes(d_scores, -1, -2), q.data) if k.requires_grad else None
        return (
            None if dq is None else unbroadcast(dq, q.shape),
            None if dk is None else unbroadcast(dk, k.shape),
            None if dv is None else unbroadcast(dv, v.shape),
        )

    return record(out, (q, k, v), backward)
