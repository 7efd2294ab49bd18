"""RNN, LSTM, GRU and their cells against torch.nn: values and gradients, torch's weights loaded."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from extensor import ExTensor, Tape
from extensor import nn as xnn
from extensor.autograd.gradcheck import gradcheck
from extensor.autograd.ops.recurrent import recurrent_layer

from .conftest import DTYPES, TORCH_DTYPE, assert_close, copy_into_torch

LAYERS = {"RNN": (xnn.RNN, torch.nn.RNN), "LSTM": (xnn.LSTM, torch.nn.LSTM), "GRU": (xnn.GRU, torch.nn.GRU)}
CELLS = {
    "RNNCell": (xnn.RNNCell, torch.nn.RNNCell),
    "LSTMCell": (xnn.LSTMCell, torch.nn.LSTMCell),
    "GRUCell": (xnn.GRUCell, torch.nn.GRUCell),
}


def _flat(result: Any) -> list[Any]:
    """(output, h) or (output, (h, c)) or (h, c) or h as a flat list of tensors."""
    if isinstance(result, (tuple, list)):
        return [t for item in result for t in _flat(item)]
    return [result]


def _weighted_sum(outputs: list[ExTensor], weights: list[np.ndarray]) -> Any:
    total = None
    for out, w in zip(outputs, weights, strict=True):
        term = (out * ExTensor(w)).sum()
        total = term if total is None else total + term
    return total


def _compare(
    ours: xnn.Module, theirs: torch.nn.Module, dtype: Any, x: np.ndarray, states: list[np.ndarray] | None,
    lstm: bool, seed: int = 0,
) -> None:  # fmt: skip
    """Same weights, same inputs: outputs, input/state gradients and every weight gradient agree."""
    theirs = theirs.to(TORCH_DTYPE[np.dtype(dtype)])
    copy_into_torch(ours, theirs)
    xe, xt = ExTensor(x.astype(dtype), requires_grad=True), torch.tensor(x.astype(dtype), requires_grad=True)
    se = [ExTensor(s.astype(dtype), requires_grad=True) for s in states or []]
    st = [torch.tensor(s.astype(dtype), requires_grad=True) for s in states or []]
    args_e: tuple[Any, ...] = (xe,)
    args_t: tuple[Any, ...] = (xt,)
    if states:
        args_e += (tuple(se) if lstm else se[0],)
        args_t += (tuple(st) if lstm else st[0],)
    tape = Tape()
    with tape:
        out_e = _flat(ours(*args_e))
        rng = np.random.default_rng(seed)
        weights = [rng.standard_normal(o.shape).astype(dtype) for o in out_e]
        loss = _weighted_sum(out_e, weights)
    tape.backward(loss)
    out_t = _flat(theirs(*args_t))
    sum((o * torch.from_numpy(w)).sum() for o, w in zip(out_t, weights, strict=True)).backward()
    for k, (a, b) in enumerate(zip(out_e, out_t, strict=True)):
        assert_close(a, b, dtype, f"output {k}")
    assert_close(xe.grad, xt.grad, dtype, "input gradient")
    for k, (a, b) in enumerate(zip(se, st, strict=True)):
        assert_close(a.grad, b.grad, dtype, f"initial state {k} gradient")
    mine = dict(ours.named_parameters())
    for name, param in theirs.named_parameters():
        assert_close(mine[name].grad, param.grad, dtype, name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"num_layers": 2, "batch_first": True},
        {"num_layers": 2, "bidirectional": True},
        {"bias": False, "batch_first": True, "bidirectional": True},
    ],
    ids=["default", "2-layers-batch-first", "2-layers-bidirectional", "no-bias-bidirectional"],
)
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
def test_layers_match_torch(kind: str, options: dict[str, Any], with_state: bool, dtype: Any) -> None:
    ours_cls, torch_cls = LAYERS[kind]
    ours = ours_cls(5, 4, dtype=dtype, **options)
    theirs = torch_cls(5, 4, **options)
    rng = np.random.default_rng(1)
    steps, batch = 6, 3
    shape = (batch, steps, 5) if options.get("batch_first") else (steps, batch, 5)
    x = rng.standard_normal(shape)
    layers = options.get("num_layers", 1) * (2 if options.get("bidirectional") else 1)
    states = None
    if with_state:
        states = [rng.standard_normal((layers, batch, 4)) for _ in range(2 if kind == "LSTM" else 1)]
    _compare(ours, theirs, dtype, x, states, kind == "LSTM")


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_relu_rnn_and_unbatched_input(kind: str) -> None:
    ours_cls, torch_cls = LAYERS[kind]
    extra = {"nonlinearity": "relu"} if kind == "RNN" else {}
    ours = ours_cls(3, 5, num_layers=2, dtype=np.float64, **extra)
    theirs = torch_cls(3, 5, num_layers=2, **extra)
    x = np.random.default_rng(2).standard_normal((7, 3))  # unbatched (time, features)
    states = [np.random.default_rng(3).standard_normal((2, 5)) for _ in range(2 if kind == "LSTM" else 1)]
    _compare(ours, theirs, np.float64, x, states, kind == "LSTM")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_state", [False, True])
def test_cells_match_torch(kind: str, batched: bool, with_state: bool, dtype: Any) -> None:
    ours_cls, torch_cls = CELLS[kind]
    ours, theirs = ours_cls(5, 4, dtype=dtype), torch_cls(5, 4)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 5) if batched else (5,))
    states = None
    if with_state:
        shape = (3, 4) if batched else (4,)
        states = [rng.standard_normal(shape) for _ in range(2 if kind == "LSTMCell" else 1)]
    _compare(ours, theirs, dtype, x, states, kind == "LSTMCell")


def test_dropout_between_layers_only_while_training() -> None:
    gen = np.random.default_rng(0)
    lstm = xnn.LSTM(3, 4, num_layers=2, dropout=0.5, dtype=np.float64, generator=gen)
    x = ExTensor(np.random.default_rng(1).standard_normal((5, 2, 3)))
    first, _ = lstm(x)
    second, _ = lstm(x)
    assert not np.allclose(first.data, second.data)  # a fresh mask each call
    lstm.eval()
    third, _ = lstm(x)
    fourth, _ = lstm(x)
    np.testing.assert_array_equal(third.data, fourth.data)
    theirs = torch.nn.LSTM(3, 4, num_layers=2, dropout=0.5).double().eval()
    copy_into_torch(lstm, theirs)
    assert_close(third, theirs(torch.from_numpy(x.data))[0], np.float64, "eval output")


@pytest.mark.parametrize("mode", ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"])
@pytest.mark.parametrize("reverse", [False, True])
def test_recurrent_layer_gradcheck(mode: str, reverse: bool) -> None:
    rng = np.random.default_rng(5)
    gates = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}[mode]
    hidden, features, steps, batch = 3, 2, 4, 2

    def tensor(*shape: int) -> ExTensor:
        return ExTensor(rng.standard_normal(shape) * 0.7, requires_grad=True)

    rows = gates * hidden
    inputs = [
        tensor(steps, batch, features), tensor(batch, hidden), tensor(batch, hidden),
        tensor(rows, features), tensor(rows, hidden), tensor(rows), tensor(rows),
    ]  # fmt: skip

    def run(x: Any, h: Any, c: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any) -> Any:
        return recurrent_layer(mode, x, h, c if mode == "LSTM" else None, w_ih, w_hh, b_ih, b_hh, reverse)

    if mode != "LSTM":
        inputs[2] = ExTensor(inputs[2].data)  # not an input of these cells
    assert gradcheck(run, inputs)


def test_torch_state_dict_loads_and_names_match() -> None:
    theirs = torch.nn.GRU(4, 6, num_layers=2, bidirectional=True).double()
    ours = xnn.GRU(4, 6, num_layers=2, bidirectional=True, dtype=np.float64)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(6).standard_normal((5, 2, 4))
    out, h = ours(ExTensor(x))
    out_t, h_t = theirs(torch.from_numpy(x))
    assert_close(out, out_t, np.float64, "output")
    assert_close(h, h_t, np.float64, "h_n")


def test_initialisation_is_torch_uniform() -> None:
    lstm = xnn.LSTM(10, 25, generator=np.random.default_rng(0))
    for name, param in lstm.named_parameters():
        assert np.abs(param.data).max() <= 1 / 5, name
        assert param.data.std() > 0.1, name


def _zeros(*shape: int, dtype: Any = np.float32) -> ExTensor:
    return ExTensor(np.zeros(shape, dtype))


BAD_INPUTS: dict[str, tuple[Any, type[Exception], str]] = {
    "rank": (lambda: xnn.LSTM(3, 4)(_zeros(2, 3, 3, 3)), ValueError, "2-D or 3-D, got 4-D"),
    "features": (lambda: xnn.GRU(3, 4)(_zeros(2, 3, 5)), ValueError, "Expected 3, got 5"),
    "h0-shape": (lambda: xnn.RNN(3, 4)(_zeros(2, 3, 3), _zeros(2, 3, 4)), ValueError, r"got \(2, 3, 4\)"),
    "hx-not-tuple": (lambda: xnn.LSTM(3, 4)(_zeros(2, 3, 3), np.zeros((1, 3, 4))), TypeError, "tuple"),
    "nonlinearity": (lambda: xnn.RNN(3, 4, nonlinearity="sigmoid"), ValueError, "nonlinearity 'sigmoid'"),
    "dropout": (lambda: xnn.LSTM(3, 4, dropout=1.5), ValueError, "dropout"),
    "hidden": (lambda: xnn.GRU(3, 0), ValueError, "hidden_size must be a positive int, got 0"),
    "cell-rank": (lambda: xnn.LSTMCell(3, 4)(_zeros(2, 2, 3)), ValueError, "1-D or 2-D"),
    "cell-state": (lambda: xnn.GRUCell(3, 4)(_zeros(2, 3), _zeros(3, 4)), ValueError, r"got \(3, 4\)"),
    "dtype-mismatch": (lambda: xnn.LSTM(3, 4)(_zeros(2, 3, 3, dtype=np.float64)), TypeError, "dtype"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input(case: str) -> None:
    call, error, match = BAD_INPUTS[case]
    with pytest.raises(error, match=match):
        call()
