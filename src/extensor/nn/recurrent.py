"""Recurrent layers as torch.nn: `RNN`, `LSTM`, `GRU` and their one-step cells.

Parameter names, shapes, gate order and initialisation are torch's (``weight_ih_l0``,
``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ``..._reverse`` for the backward direction;
every weight and bias ~ U(−1/√hidden, 1/√hidden)), so the state_dict of a torch layer loads as
it is and gives the same outputs. Each layer and direction runs as one recorded operation
(`extensor.autograd.ops.recurrent.recurrent_layer`): one matrix product for the input
projections of the whole sequence, then per step one product and the gates' pointwise math.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from extensor.autograd.function import as_tensor
from extensor.autograd.ops.dropout import dropout as dropout_op
from extensor.autograd.ops.recurrent import GATES, recurrent_layer
from extensor.autograd.ops.shape import concatenate, stack
from extensor.core.random import resolve_generator
from extensor.core.tensor import ExTensor
from extensor.nn.linear import check_device, floating_dtype, positive_int
from extensor.nn.module import Module
from extensor.nn.parameter import Parameter

__all__ = ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNBase", "RNNCell"]


def _nonlinearity_mode(nonlinearity: Any, layer: str) -> str:
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"{layer}: unknown nonlinearity {nonlinearity!r}; use 'tanh' or 'relu'")
    return "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"


def _flag(name: str, value: Any, layer: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{layer}: {name} must be a bool, got {value!r}")
    return bool(value)


class _Recurrent(Module):
    """What layers and cells share: the mode, sizes and torch's uniform initialisation."""

    mode: str
    bias: bool

    def _make_weights(self, suffix: str, input_size: int, bias: bool, dtype: np.dtype[Any]) -> None:
        rows = GATES[self.mode] * self.hidden_size
        setattr(self, f"weight_ih{suffix}", Parameter(np.empty((rows, input_size), dtype=dtype)))
        setattr(self, f"weight_hh{suffix}", Parameter(np.empty((rows, self.hidden_size), dtype=dtype)))
        if bias:
            setattr(self, f"bias_ih{suffix}", Parameter(np.empty(rows, dtype=dtype)))
            setattr(self, f"bias_hh{suffix}", Parameter(np.empty(rows, dtype=dtype)))

    def reset_parameters(self, generator: np.random.Generator | None = None) -> None:
        """Draw every weight and bias from U(−1/√hidden, 1/√hidden), as torch does."""
        rng = resolve_generator(generator)
        bound = 1 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            param.data[...] = rng.uniform(-bound, bound, param.shape)

    def _layer_weights(self, suffix: str) -> tuple[Any, Any, Any, Any]:
        """(weight_ih, weight_hh, bias_ih, bias_hh) of one layer and direction; None biases without bias."""
        w_ih, w_hh = getattr(self, f"weight_ih{suffix}"), getattr(self, f"weight_hh{suffix}")
        if not self.bias:
            return w_ih, w_hh, None, None
        return w_ih, w_hh, getattr(self, f"bias_ih{suffix}"), getattr(self, f"bias_hh{suffix}")

    def _check_input(self, x: ExTensor, batched_rank: int, expected_features: int) -> bool:
        """Whether `x` is batched; a clear error for another rank or feature size."""
        name = type(self).__name__
        if x.ndim not in (batched_rank - 1, batched_rank):
            raise ValueError(
                f"{name}: expected input to be {batched_rank - 1}-D or {batched_rank}-D, "
                f"got {x.ndim}-D with shape {x.shape}"
            )
        if x.shape[-1] != expected_features:
            raise ValueError(
                f"{name}: input.size(-1) must be equal to input_size. Expected {expected_features}, "
                f"got {x.shape[-1]}"
            )
        return x.ndim == batched_rank


class RNNBase(_Recurrent):
    """A stack of recurrent layers over sequences (the shared body of `RNN`, `LSTM` and `GRU`).

    Args:
        input_size: features of each input step; hidden_size: features of the hidden state.
        num_layers: stacked layers, each reading the previous one's outputs.
        bias: learn the biases b_ih and b_hh.
        batch_first: inputs and outputs are (batch, time, features) instead of (time, batch, features).
        dropout: dropout probability on the outputs of every layer but the last, while training.
        bidirectional: also run each layer from the last step to the first and concatenate.
        device, dtype: as torch (CPU; float32 by default).
        generator: a numpy.random.Generator for the initial values and the dropout masks.
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        generator: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        check_device(device, name)
        self.mode = mode
        self.input_size = positive_int("input_size", input_size, name)
        self.hidden_size = positive_int("hidden_size", hidden_size, name)
        self.num_layers = positive_int("num_layers", num_layers, name)
        self.bias = _flag("bias", bias, name)
        self.batch_first = _flag("batch_first", batch_first, name)
        self.bidirectional = _flag("bidirectional", bidirectional, name)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout should be a number in range [0, 1], got {dropout!r}")
        self.dropout = float(dropout)
        self.generator = generator
        resolved = floating_dtype(dtype, name)
        directions = 2 if self.bidirectional else 1
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else self.hidden_size * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                self._make_weights(suffix, layer_input, self.bias, resolved)
        self.reset_parameters(generator)

    def _initial_state(self, given: Any, what: str, batch: int, batched: bool, dtype: Any) -> ExTensor:
        directions = 2 if self.bidirectional else 1
        shape = (self.num_layers * directions, batch, self.hidden_size)
        if given is None:
            return ExTensor(np.zeros(shape, dtype=dtype))
        state = as_tensor(given)
        expected = shape if batched else (shape[0], shape[2])
        if state.shape != expected:
            raise ValueError(f"{type(self).__name__}: expected {what} of shape {expected}, got {state.shape}")
        return state if batched else state.unsqueeze(1)

    def _run(self, input: Any, hx: Any, cx: Any | None) -> tuple[ExTensor, ExTensor, ExTensor | None]:
        x = as_tensor(input)
        batched = self._check_input(x, 3, self.input_size)
        if not batched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        batch = x.shape[1]
        h0 = self._initial_state(hx, "hidden state h0", batch, batched, x.dtype)
        c0 = None
        if self.mode == "LSTM":
            c0 = self._initial_state(cx, "cell state c0", batch, batched, x.dtype)
        directions = 2 if self.bidirectional else 1
        steps = x.shape[0]
        finals_h: list[ExTensor] = []
        finals_c: list[ExTensor] = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                k = layer * directions + direction
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                c_init = None if c0 is None else c0[k]
                packed = recurrent_layer(
                    self.mode, x, h0[k], c_init, *self._layer_weights(suffix), reverse=bool(direction)
                )
                outputs.append(packed[:steps])
                finals_h.append(packed[0 if direction else steps - 1])
                if self.mode == "LSTM":
                    finals_c.append(packed[steps])
            x = outputs[0] if directions == 1 else concatenate(outputs, axis=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = dropout_op(x, self.dropout, True, self.generator)
        h_n, c_n = stack(finals_h), (stack(finals_c) if finals_c else None)
        if not batched:
            return x.squeeze(1), h_n.squeeze(1), None if c_n is None else c_n.squeeze(1)
        if self.batch_first:
            x = x.transpose(0, 1)
        return x, h_n, c_n

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        for name, default in (("bias", True), ("batch_first", False), ("bidirectional", False)):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)}"
        if self.dropout:
            text += f", dropout={self.dropout}"
        return text


class RNN(RNNBase):
    """Elman RNN, as torch.nn.RNN: ``h_t = tanh(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh)`` (or ReLU).

    ``rnn(input, h0=None)`` returns ``(output, h_n)``: output (time, batch, D·hidden) — the last
    layer's h_t for every t — and h_n (D·num_layers, batch, hidden), D = 2 if bidirectional.
    Unbatched inputs (time, features) give unbatched results.

    Args: as `RNNBase`, with `nonlinearity` "tanh" (default) or "relu" after `num_layers`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        generator: np.random.Generator | None = None,
    ) -> None:
        super().__init__(
            _nonlinearity_mode(nonlinearity, "RNN"), input_size, hidden_size, num_layers, bias, batch_first,
            dropout, bidirectional, device, dtype, generator=generator,
        )  # fmt: skip
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Any = None) -> tuple[ExTensor, ExTensor]:
        """(output, h_n) for `input` (time, batch, features) and the optional initial state `hx`."""
        output, h_n, _ = self._run(input, hx, None)
        return output, h_n


class LSTM(RNNBase):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), as torch.nn.LSTM::

        i, f, o = σ(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh) blocks;  g = tanh(the g block)
        c_t = f ⊙ c_{t-1} + i ⊙ g;   h_t = o ⊙ tanh(c_t)

    ``lstm(input, (h0, c0)=None)`` returns ``(output, (h_n, c_n))`` with torch's shapes.

    Args: as `RNNBase` (no `proj_size`).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        generator: np.random.Generator | None = None,
    ) -> None:
        super().__init__(
            "LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            device, dtype, generator=generator,
        )  # fmt: skip

    def forward(self, input: Any, hx: Any = None) -> tuple[ExTensor, tuple[ExTensor, ExTensor]]:
        """(output, (h_n, c_n)) for `input` and the optional initial states ``hx = (h0, c0)``."""
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTM: hx must be a tuple (h0, c0), got {type(hx).__name__}")
        h0, c0 = (None, None) if hx is None else hx
        output, h_n, c_n = self._run(input, h0, c0)
        assert c_n is not None
        return output, (h_n, c_n)


class GRU(RNNBase):
    """Gated recurrent unit (Cho et al. 2014), as torch.nn.GRU::

        r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr);   z = σ(x W_izᵀ + b_iz + h W_hzᵀ + b_hz)
        n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn));   h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}

    ``gru(input, h0=None)`` returns ``(output, h_n)`` with torch's shapes.

    Args: as `RNNBase`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        generator: np.random.Generator | None = None,
    ) -> None:
        super().__init__(
            "GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            device, dtype, generator=generator,
        )  # fmt: skip

    def forward(self, input: Any, hx: Any = None) -> tuple[ExTensor, ExTensor]:
        """(output, h_n) for `input` and the optional initial state `hx`."""
        output, h_n, _ = self._run(input, hx, None)
        return output, h_n


class _Cell(_Recurrent):
    """One step of a recurrent layer: parameters ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``."""

    mode_name: ClassVar[str]

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        bias: bool,
        device: Any,
        dtype: Any,
        generator: np.random.Generator | None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        check_device(device, name)
        self.mode = mode
        self.input_size = positive_int("input_size", input_size, name)
        self.hidden_size = positive_int("hidden_size", hidden_size, name)
        self.bias = _flag("bias", bias, name)
        self._make_weights("", self.input_size, self.bias, floating_dtype(dtype, name))
        self.reset_parameters(generator)

    def _step(self, input: Any, hx: Any, cx: Any) -> tuple[ExTensor, ExTensor | None]:
        x = as_tensor(input)
        batched = self._check_input(x, 2, self.input_size)
        if not batched:
            x = x.unsqueeze(0)
        states: list[ExTensor | None] = [None, None]
        wanted = [(0, hx, "hidden state")] + ([(1, cx, "cell state")] if self.mode == "LSTM" else [])
        for slot, given, what in wanted:
            if given is None:
                states[slot] = ExTensor(np.zeros((x.shape[0], self.hidden_size), dtype=x.dtype))
                continue
            state = as_tensor(given)
            expected = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
            if state.shape != expected:
                raise ValueError(
                    f"{type(self).__name__}: expected {what} of shape {expected}, got {state.shape}"
                )
            states[slot] = state if batched else state.unsqueeze(0)
        packed = recurrent_layer(self.mode, x.unsqueeze(0), states[0], states[1], *self._layer_weights(""))
        h, c = packed[0], (packed[1] if self.mode == "LSTM" else None)
        if not batched:
            return h.squeeze(0), None if c is None else c.squeeze(0)
        return h, c

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(_Cell):
    """One Elman RNN step, as torch.nn.RNNCell: ``h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`` (or ReLU).

    ``cell(input, hx=None)`` with input (batch, features) or (features,) returns h'.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: Any = None,
        dtype: Any = None,
        *,
        generator: np.random.Generator | None = None,
    ) -> None:
        mode = _nonlinearity_mode(nonlinearity, "RNNCell")
        super().__init__(mode, input_size, hidden_size, bias, device, dtype, generator)
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Any = None) -> ExTensor:
        """The next hidden state."""
        return self._step(input, hx, None)[0]


class LSTMCell(_Cell):
    """One LSTM step, as torch.nn.LSTMCell: ``cell(input, (h, c)=None)`` returns ``(h', c')``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        generator: np.random.Generator | None = None,
    ) -> None:
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype, generator)

    def forward(self, input: Any, hx: Any = None) -> tuple[ExTensor, ExTensor]:
        """The next (hidden, cell) states."""
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTMCell: hx must be a tuple (h, c), got {type(hx).__name__}")
        h0, c0 = (None, None) if hx is None else hx
        h, c = self._step(input, h0, c0)
        assert c is not None
        return h, c


class GRUCell(_Cell):
    """One GRU step, as torch.nn.GRUCell: ``cell(input, hx=None)`` returns h'."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        generator: np.random.Generator | None = None,
    ) -> None:
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype, generator)

    def forward(self, input: Any, hx: Any = None) -> ExTensor:
        """The next hidden state."""
        return self._step(input, hx, None)[0]
