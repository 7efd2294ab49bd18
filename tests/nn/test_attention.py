"""Embedding, scaled dot-product attention, MultiheadAttention and the Transformer block against torch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as tf

from extensor import ExTensor, Tape
from extensor import nn as xnn
from extensor.autograd.gradcheck import gradcheck
from extensor.nn import functional as xf

from .conftest import DTYPES, TORCH_DTYPE, assert_close, copy_into_torch


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_idx", [None, 3, -1])
def test_embedding_matches_torch(dtype: Any, padding_idx: int | None) -> None:
    ours = xnn.Embedding(10, 4, padding_idx=padding_idx, dtype=dtype)
    theirs = torch.nn.Embedding(10, 4, padding_idx=padding_idx).to(TORCH_DTYPE[np.dtype(dtype)])
    copy_into_torch(ours, theirs)
    assert ours.padding_idx == theirs.padding_idx
    if padding_idx is not None:
        assert not ours.weight.data[ours.padding_idx].any()
    ids = np.array([[1, 3, 3, 9], [0, 1, 1, 1]])  # repeated ids accumulate
    tape = Tape()
    with tape:
        out = ours(ExTensor(ids))
    upstream = np.random.default_rng(0).standard_normal(out.shape).astype(dtype)
    tape.backward(out, upstream)
    out_t = theirs(torch.from_numpy(ids))
    out_t.backward(torch.from_numpy(upstream))
    assert out.shape == (2, 4, 4)
    assert_close(out, out_t, dtype, "forward")
    assert_close(ours.weight.grad, theirs.weight.grad, dtype, "weight gradient")


def test_embedding_bad_input() -> None:
    layer = xnn.Embedding(5, 2)
    with pytest.raises(IndexError, match="token id 5 is out of range for an embedding of 5 rows"):
        layer(ExTensor(np.array([0, 5])))
    with pytest.raises(IndexError, match="token id -1"):
        layer(ExTensor(np.array([-1])))
    with pytest.raises(TypeError, match="token ids must be an integer tensor, got dtype float32"):
        layer(ExTensor(np.array([0.0], dtype=np.float32)))
    with pytest.raises(ValueError, match="padding_idx 5 must be within num_embeddings"):
        xnn.Embedding(5, 2, padding_idx=5)
    with pytest.raises(ValueError, match="embedding_dim must be a positive int"):
        xnn.Embedding(5, 0)


def _sdpa_case(dtype: Any, mask_kind: str, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((2, 3, n, 4)).astype(dtype) for n in (5, 6, 6))
    kwargs_ours: dict[str, Any] = {}
    kwargs_theirs: dict[str, Any] = {}
    if mask_kind == "causal":
        k, v = k[:, :, :5], v[:, :, :5]
        kwargs_ours["is_causal"] = kwargs_theirs["is_causal"] = True
    elif mask_kind == "bool":
        mask = rng.random((5, 6)) < 0.7
        mask[:, 0] = True  # no row fully masked
        kwargs_ours["attn_mask"], kwargs_theirs["attn_mask"] = mask, torch.from_numpy(mask)
    elif mask_kind == "float":
        mask = rng.standard_normal((2, 1, 5, 6)).astype(dtype)
        kwargs_ours["attn_mask"], kwargs_theirs["attn_mask"] = mask, torch.from_numpy(mask)
    ours = [ExTensor(a, requires_grad=True) for a in (q, k, v)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    tape = Tape()
    with tape:
        out = xf.scaled_dot_product_attention(*ours, **kwargs_ours)
    upstream = rng.standard_normal(out.shape).astype(dtype)
    tape.backward(out, upstream)
    out_t = tf.scaled_dot_product_attention(*theirs, **kwargs_theirs)
    out_t.backward(torch.from_numpy(upstream))
    assert_close(out, out_t, dtype, "output")
    for name, mine, their in zip("qkv", ours, theirs, strict=True):
        assert_close(mine.grad, their.grad, dtype, f"d{name}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask_kind", ["none", "causal", "bool", "float"])
def test_scaled_dot_product_attention_matches_torch(dtype: Any, mask_kind: str) -> None:
    _sdpa_case(dtype, mask_kind)


def test_scaled_dot_product_attention_gradcheck_and_dropout() -> None:
    rng = np.random.default_rng(1)
    q, k, v = (ExTensor(rng.standard_normal((1, 3, 2)), requires_grad=True) for _ in range(3))
    assert gradcheck(lambda a, b, c: xf.scaled_dot_product_attention(a, b, c, is_causal=True), [q, k, v])
    # dropout: the same generator draws the same mask, and the gradient uses that mask
    drop = np.random.default_rng(5)
    assert gradcheck(
        lambda a, b, c: xf.scaled_dot_product_attention(
            a, b, c, dropout_p=0.3, generator=np.random.default_rng(5)
        ),
        [q, k, v],
    )
    out = xf.scaled_dot_product_attention(q, k, v, dropout_p=1.0, generator=drop)
    assert not out.data.any()
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        xf.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 3), bool), is_causal=True)
    with pytest.raises(ValueError, match="query's last dimension 2 differs from key's 3"):
        xf.scaled_dot_product_attention(q, ExTensor(np.ones((1, 3, 3))), v)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("masking", ["none", "causal", "bool", "float"])
def test_multihead_self_attention_matches_torch(
    dtype: Any, batch_first: bool, need_weights: bool, masking: str
) -> None:
    rng = np.random.default_rng(2)
    ours = xnn.MultiheadAttention(8, 2, batch_first=batch_first, dtype=dtype)
    theirs = torch.nn.MultiheadAttention(8, 2, batch_first=batch_first).to(TORCH_DTYPE[np.dtype(dtype)])
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    copy_into_torch(ours, theirs)
    x = rng.standard_normal((3, 5, 8) if batch_first else (5, 3, 8)).astype(dtype)
    mask_ours: Any = None
    mask_theirs: Any = None
    causal = masking == "causal"
    if causal:
        mask = np.triu(np.ones((5, 5), bool), 1)
        mask_ours, mask_theirs = None, torch.from_numpy(mask)  # torch needs the mask with its hint
    elif masking == "bool":
        mask = rng.random((5, 5)) < 0.3
        mask[:, 0] = False
        mask_ours, mask_theirs = mask, torch.from_numpy(mask)
    elif masking == "float":
        mask = rng.standard_normal((3 * 2, 5, 5)).astype(dtype)
        mask_ours, mask_theirs = mask, torch.from_numpy(mask)
    xe = ExTensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    tape = Tape()
    with tape:
        out, weights = ours(xe, xe, xe, attn_mask=mask_ours, need_weights=need_weights, is_causal=causal)
    upstream = rng.standard_normal(out.shape).astype(dtype)
    tape.backward(out, upstream)
    out_t, weights_t = theirs(xt, xt, xt, attn_mask=mask_theirs, need_weights=need_weights, is_causal=causal)
    out_t.backward(torch.from_numpy(upstream))
    assert_close(out, out_t, dtype, "output")
    if need_weights:
        assert weights is not None and weights_t is not None
        assert_close(weights, weights_t, dtype, "weights")
    else:
        assert weights is None and weights_t is None
    assert_close(xe.grad, xt.grad, dtype, "input gradient")
    for name, param in theirs.named_parameters():
        mine = dict(ours.named_parameters())[name]
        assert_close(mine.grad, param.grad, dtype, f"gradient of {name}")


def test_multihead_cross_attention_and_unbatched() -> None:
    rng = np.random.default_rng(3)
    ours = xnn.MultiheadAttention(6, 3, dtype=np.float64)
    theirs = torch.nn.MultiheadAttention(6, 3).double()
    copy_into_torch(ours, theirs)
    q, k, v = rng.standard_normal((4, 2, 6)), rng.standard_normal((7, 2, 6)), rng.standard_normal((7, 2, 6))
    out, weights = ours(ExTensor(q), ExTensor(k), ExTensor(v), average_attn_weights=False)
    out_t, weights_t = theirs(*(torch.from_numpy(a) for a in (q, k, v)), average_attn_weights=False)
    assert_close(out, out_t, np.float64, "cross-attention output")
    assert_close(weights, weights_t, np.float64, "per-head weights")
    out, weights = ours(ExTensor(q[:, 0]), ExTensor(k[:, 0]), ExTensor(v[:, 0]))
    out_t, weights_t = theirs(*(torch.from_numpy(a[:, 0]) for a in (q, k, v)))
    assert_close(out, out_t, np.float64, "unbatched output")
    assert_close(weights, weights_t, np.float64, "unbatched weights")
    with pytest.raises(ValueError, match="embed_dim 6 must be divisible by num_heads 4"):
        xnn.MultiheadAttention(6, 4)
    with pytest.raises(ValueError, match="expected embed_dim 6, got query width 5"):
        ours(ExTensor(np.ones((2, 1, 5))), ExTensor(np.ones((2, 1, 5))), ExTensor(np.ones((2, 1, 5))))


class _TorchBlock(torch.nn.Module):
    """The same pre-norm block written with torch's layers, names matching `TransformerBlock`."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(d)
        self.attn = torch.nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln_2 = torch.nn.LayerNorm(d)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(d, 4 * d), torch.nn.GELU(), torch.nn.Linear(4 * d, d), torch.nn.Dropout(0.0)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        mask = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False, is_causal=True)[0]
        return x + self.mlp(self.ln_2(x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_transformer_block_matches_torch(dtype: Any) -> None:
    ours = xnn.TransformerBlock(8, 2, dtype=dtype)
    theirs = _TorchBlock(8, 2).to(TORCH_DTYPE[np.dtype(dtype)])
    copy_into_torch(ours, theirs)
    x = np.random.default_rng(4).standard_normal((2, 6, 8)).astype(dtype)
    xe, xt = ExTensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    tape = Tape()
    with tape:
        out = ours(xe)
        total = out.sum()
    tape.backward(total)
    out_t = theirs(xt)
    out_t.sum().backward()
    assert_close(out, out_t, dtype, "block output")
    assert_close(xe.grad, xt.grad, dtype, "block input gradient")
    for name, param in theirs.named_parameters():
        assert_close(dict(ours.named_parameters())[name].grad, param.grad, dtype, name)
