"""extensor.models' language models: shapes, context limits, sampling, and that they learn text."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from extensor import ExTensor, Tape, nn
from extensor.data.datasets import TinyShakespeare
from extensor.models import GPT, CharLSTM, generate
from extensor.training.optimizers import AdamW

VOCAB = 65


def _tiny(kind: str) -> Any:
    rng = np.random.default_rng(0)
    if kind == "gpt":
        return GPT(VOCAB, block_size=16, n_layer=1, n_head=2, n_embd=32, generator=rng)
    return CharLSTM(VOCAB, block_size=16, embedding_dim=16, hidden_size=64, num_layers=1, generator=rng)


@pytest.mark.parametrize("kind", ["gpt", "lstm"])
def test_logits_shape_and_context_limit(kind: str) -> None:
    model = _tiny(kind)
    ids = ExTensor(np.zeros((3, 16), np.int64))
    assert model(ids).shape == (3, 16, VOCAB)
    with pytest.raises(ValueError, match="17 tokens is longer than the model's context of 16"):
        model(ExTensor(np.zeros((1, 17), np.int64)))
    with pytest.raises(ValueError, match=r"shape \(batch, time\)"):
        model(ExTensor(np.zeros(5, np.int64)))
    with pytest.raises(IndexError, match="token id 65 is out of range"):
        model(ExTensor(np.full((1, 4), VOCAB, np.int64)))


@pytest.mark.parametrize("kind", ["gpt", "lstm"])
def test_a_tiny_model_learns_shakespeare(kind: str) -> None:
    """A few dozen AdamW steps take the loss well below the uniform log(65) = 4.17 nats."""
    data = TinyShakespeare("train", block_size=16)
    model = _tiny(kind)
    optimizer = AdamW(model.parameters(), lr=1e-2 if kind == "gpt" else 2e-2, weight_decay=0.0)
    criterion = nn.CrossEntropyLoss()
    rng = np.random.default_rng(1)
    losses = []
    for _ in range(60):
        x, y = data.get_batch(rng.integers(0, len(data), 16))
        tape = Tape()
        with tape:
            logits = model(ExTensor(x))
            loss = criterion(logits.reshape(-1, VOCAB), ExTensor(y.reshape(-1)))
        optimizer.zero_grad()
        tape.backward(loss)
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 3.9
    assert np.mean(losses[-10:]) < 3.2, losses[-10:]


def test_gpt_tied_and_untied_heads() -> None:
    tied = GPT(VOCAB, block_size=8, n_layer=1, n_head=2, n_embd=16)
    untied = GPT(VOCAB, block_size=8, n_layer=1, n_head=2, n_embd=16, tie_weights=False)
    assert "head.weight" not in dict(tied.named_parameters())
    assert dict(untied.named_parameters())["head.weight"].shape == (VOCAB, 16)
    std = dict(tied.named_parameters())["blocks.0.attn.out_proj.weight"].data.std()
    assert std < 0.02  # GPT-2's scaled residual projections


def test_generate_is_seeded_and_checks_its_arguments() -> None:
    model = _tiny("gpt")
    first = generate(model, [1, 2, 3], 30, top_k=5, generator=np.random.default_rng(3))
    second = generate(model, [1, 2, 3], 30, top_k=5, generator=np.random.default_rng(3))
    np.testing.assert_array_equal(first, second)
    assert first.shape == (33,) and list(first[:3]) == [1, 2, 3]
    assert model.training  # restored
    for kwargs, match in [
        ({"prompt": [], "length": 3}, "non-empty"),
        ({"prompt": [1], "length": -1}, "length"),
        ({"prompt": [1], "length": 3, "temperature": 0.0}, "temperature"),
        ({"prompt": [1], "length": 3, "top_k": 0}, "top_k"),
    ]:
        with pytest.raises(ValueError, match=match):
            generate(model, **kwargs)
