"""Token embedding lookup and scaled dot-product attention, each one recorded operation.

`embedding` gathers rows of a table; its backward scatters the output gradient back, summing
the rows of repeated ids. `scaled_dot_product_attention` is torch.nn.functional's: the scores,
mask, softmax, dropout and weighted sum are one node whose backward is written out, so a
Transformer block records four nodes for attention instead of a dozen. `packed_attention` is the
same node for self-attention reading q, k and v straight from the packed input projection
(batch, time, 3·width) and writing the heads merged (batch, time, width): no head split, merge or
gradient scatter is recorded or copied. Scaling, the causal mask and the softmax (and its
backward) are one compiled pass over the scores, which skips the masked upper triangle.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

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


@njit(cache=True, nogil=True)
def _add_rows(table: Array, index: Array, rows: Array) -> None:  # pragma: no cover
    """table[index[n]] += rows[n] for every n in order (np.add.at's result, without its overhead)."""
    for n in range(index.size):
        table[index[n]] += rows[n]


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
        _add_rows(grad, flat, np.ascontiguousarray(g).reshape(-1, dim))
        if padding_idx is not None:
            grad[padding_idx] = 0
        return None, grad

    return record(out, (ids, w), backward)


@njit(cache=True, nogil=True)
def _scale_and_shift(scores: Array, factor: Any, causal: bool) -> None:  # pragma: no cover
    """In place over (batch, L, S): scores · factor minus the row's maximum, -inf where masked (with
    `causal` the positions j > i of row i: torch's top-left causal mask)."""
    batch, length, source = scores.shape
    for b in range(batch):
        for i in range(length):
            row = scores[b, i]
            stop = min(i + 1, source) if causal else source
            top = scores.dtype.type(-np.inf)
            for j in range(stop):
                row[j] *= factor
                top = max(top, row[j])
            for j in range(stop):
                row[j] -= top
            for j in range(stop, source):
                row[j] = -np.inf


@njit(cache=True, nogil=True)
def _normalize_rows(weights: Array, causal: bool) -> None:  # pragma: no cover
    """In place over (batch, L, S): divide each row by its sum (of the unmasked positions)."""
    batch, length, source = weights.shape
    for b in range(batch):
        for i in range(length):
            row = weights[b, i]
            stop = min(i + 1, source) if causal else source
            total = weights.dtype.type(0)
            for j in range(stop):
                total += row[j]
            for j in range(stop):
                row[j] /= total


def _softmax_rows(scores: Array, factor: Any, causal: bool) -> None:
    """In place over (batch, L, S): softmax(scores · factor) along the last axis; with `causal` only
    the positions j <= i of row i count and the rest become 0. A row whose scores are all -inf gives
    NaN, as in torch. The exponential is NumPy's (SIMD, several times a compiled scalar loop's)."""
    _scale_and_shift(scores, factor, causal)
    np.exp(scores, out=scores)
    _normalize_rows(scores, causal)


@njit(cache=True, nogil=True)
def _softmax_rows_backward(
    weights: Array, grad: Array, factor: Any, causal: bool
) -> None:  # pragma: no cover
    """In place over (batch, L, S): the gradient of the scores from the gradient `grad` of the
    softmax `weights`, ``w ⊙ (∂w − Σ ∂w ⊙ w) · factor`` (masked entries get 0)."""
    batch, length, source = weights.shape
    zero = weights.dtype.type(0)
    for b in range(batch):
        for i in range(length):
            w, d = weights[b, i], grad[b, i]
            stop = min(i + 1, source) if causal else source
            dot = zero
            for j in range(stop):
                dot += d[j] * w[j]
            for j in range(stop):
                d[j] = w[j] * (d[j] - dot) * factor
            for j in range(stop, source):
                d[j] = zero


def _as_rows(a: Array) -> Array:
    """A C-contiguous array viewed as (batch, L, S) for the softmax kernels."""
    return a.reshape(-1, a.shape[-2], a.shape[-1])


def _dropout_scale(
    shape: tuple[int, ...], dropout_p: float, dtype: Any, generator: np.random.Generator | None
) -> Array:
    """The kept-and-rescaled mask of attention dropout: 1/(1-p) where kept, 0 elsewhere."""
    draws = resolve_generator(generator).random(shape, dtype=np.float64).astype(dtype)
    keep = dtype.type(1 - dropout_p)
    return ((draws < keep) / keep if keep > 0 else np.zeros_like(draws)).astype(dtype)


def _attend(
    q: Array,
    k: Array,
    v: Array,
    mask: Array | None,
    causal: bool,
    factor: float,
    dropout_p: float,
    generator: np.random.Generator | None,
    out: Array | None = None,
) -> tuple[Array, Array, Array | None]:
    """softmax(q kᵀ · factor + mask) v for arrays (..., L, E), (..., S, E), (..., S, Ev), written
    into `out` when given; returns the output, the softmax weights and the dropout scale (or None)."""
    dtype = q.dtype
    scores = np.matmul(q, np.swapaxes(k, -1, -2))
    if mask is not None:
        if mask.dtype == np.bool_:
            scores = np.where(mask, scores, dtype.type(-np.inf))
        else:  # torch scales the scores before it adds the mask
            scores *= dtype.type(factor)
            scores = scores + mask.astype(dtype, copy=False)
            factor = 1.0
        scores = np.ascontiguousarray(scores)
    _softmax_rows(_as_rows(scores), dtype.type(factor), causal)
    weights = scores
    keep_scale = None
    if dropout_p > 0:
        keep_scale = _dropout_scale(weights.shape, dropout_p, dtype, generator)
        weights = weights * keep_scale
    result = np.matmul(weights, v, out=out)
    return result, scores, keep_scale


def _attend_backward(
    g: Array,
    q: Array,
    k: Array,
    v: Array,
    weights: Array,
    keep_scale: Array | None,
    causal: bool,
    factor: float,
    outs: tuple[Array | None, Array | None, Array | None] = (None, None, None),
) -> tuple[Array, Array, Array]:
    """(dq, dk, dv) of `_attend` for its output gradient `g`, written into `outs` where given."""
    dtype = q.dtype
    dropped = weights if keep_scale is None else weights * keep_scale
    dv = np.matmul(np.swapaxes(dropped, -1, -2), g, out=outs[2])
    d_weights = np.matmul(g, np.swapaxes(v, -1, -2))
    if keep_scale is not None:
        d_weights *= keep_scale
    _softmax_rows_backward(_as_rows(weights), _as_rows(d_weights), dtype.type(factor), causal)
    dq = np.matmul(d_weights, k, out=outs[0])
    dk = np.matmul(np.swapaxes(d_weights, -1, -2), q, out=outs[1])
    return dq, dk, dv


def _check_dropout(dropout_p: Any, op: str) -> None:
    if isinstance(dropout_p, bool) or not 0.0 <= float(dropout_p) <= 1.0:
        raise ValueError(f"{op}: dropout_p must be in [0, 1], got {dropout_p!r}")


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
    _check_dropout(dropout_p, "scaled_dot_product_attention")
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: give either attn_mask or is_causal, not both")
    factor = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    mask = None
    if attn_mask is not None:
        mask = attn_mask.data if isinstance(attn_mask, ExTensor) else np.asarray(attn_mask)
    out, weights, keep_scale = _attend(
        q.data, k.data, v.data, mask, bool(is_causal), factor, float(dropout_p), generator
    )

    def backward(g: Array) -> tuple[Array | None, Array | None, Array | None]:
        dq, dk, dv = _attend_backward(g, q.data, k.data, v.data, weights, keep_scale, bool(is_causal), factor)
        return (
            unbroadcast(dq, q.shape) if q.requires_grad else None,
            unbroadcast(dk, k.shape) if k.requires_grad else None,
            unbroadcast(dv, v.shape) if v.requires_grad else None,
        )

    return record(out, (q, k, v), backward)


def _split_heads(packed: Array, heads: int) -> tuple[Array, Array, Array]:
    """Views q, k, v (batch, heads, time, head_dim) of a packed (batch, time, 3·width) array."""
    batch, length, triple = packed.shape
    parts = packed.reshape(batch, length, 3, heads, triple // (3 * heads)).transpose(2, 0, 3, 1, 4)
    return parts[0], parts[1], parts[2]


def packed_attention(
    qkv: Any,
    num_heads: int,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    *,
    generator: np.random.Generator | None = None,
) -> ExTensor:
    """Multi-head self-attention from a packed projection, as one recorded operation.

    Args:
        qkv: (batch, time, 3·width): the queries, keys and values side by side, each `num_heads`
            heads of width / num_heads features (the output of MultiheadAttention's in_proj).
        attn_mask: as `scaled_dot_product_attention`'s, broadcastable to (batch, heads, time, time).
        dropout_p, is_causal, generator: as `scaled_dot_product_attention`'s.

    Returns:
        (batch, time, width): every head's softmax(q kᵀ/√d + mask) v, heads side by side (ready for
        the output projection). The gradient is one (batch, time, 3·width) array.
    """
    x = as_tensor(qkv)
    require_floating("qkv", x, "packed_attention")
    if x.ndim != 3 or x.shape[2] % (3 * num_heads):
        raise ValueError(
            f"packed_attention: qkv must be (batch, time, 3·width) with width divisible by {num_heads} "
            f"heads, got shape {x.shape}"
        )
    _check_dropout(dropout_p, "packed_attention")
    if is_causal and attn_mask is not None:
        raise ValueError("packed_attention: give either attn_mask or is_causal, not both")
    batch, length, triple = x.shape
    width = triple // 3
    factor = 1.0 / math.sqrt(width // num_heads)
    mask = None
    if attn_mask is not None:
        mask = attn_mask.data if isinstance(attn_mask, ExTensor) else np.asarray(attn_mask)
    data = np.ascontiguousarray(x.data)
    q, k, v = _split_heads(data, num_heads)
    merged = np.empty((batch, length, width), dtype=data.dtype)
    heads_view = merged.reshape(batch, length, num_heads, -1).transpose(0, 2, 1, 3)
    _, weights, keep_scale = _attend(
        q, k, v, mask, bool(is_causal), factor, float(dropout_p), generator, out=heads_view
    )

    def backward(g: Array) -> tuple[Array]:
        grad = np.empty_like(data)
        dq, dk, dv = _split_heads(grad, num_heads)
        g_heads = np.ascontiguousarray(g).reshape(batch, length, num_heads, -1).transpose(0, 2, 1, 3)
        _attend_backward(g_heads, q, k, v, weights, keep_scale, bool(is_causal), factor, outs=(dq, dk, dv))
        return (grad,)

    return record(merged, (x,), backward)
