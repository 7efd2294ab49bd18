"""One recurrent layer over a whole sequence (Elman RNN, LSTM, GRU) as one recorded operation.

The input projections of every time step are one matrix product, ``X W_ihᵀ`` over the
(time × batch) rows, before the time loop; each step then costs one (batch × hidden) product
with ``W_hh`` (against a contiguous copy of ``W_hhᵀ``: a plain GEMM) and the gates' pointwise
math (for LSTM the σ/tanh activations in NumPy's SIMD loops, which are several times faster than
a compiled scalar exp, and one compiled pass for the cell update; for GRU one compiled kernel).
Backpropagation through time mirrors it: the loop carries only ``∂h`` (and ``∂c``) backwards
through ``W_hh``, and the weight gradients are two matrix products over the stacked per-step gate
gradients afterwards.

Gate layouts are torch's: LSTM ``(i, f, g, o)``, GRU ``(r, z, n)``, each a block of `hidden`
rows of the weights, so torch's weights load unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from extensor.autograd.function import as_tensor, record
from extensor.autograd.ops._layer_checks import require_floating, require_same_dtype
from extensor.core.dispatch import register
from extensor.core.tensor import Array, ExTensor

#: The recurrent cells and the number of gate blocks of their weights.
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


@njit(cache=True, inline="always")
def _sigmoid(x: Any) -> Any:
    return 1 / (1 + np.exp(-x))


def _sigmoid_in_place(x: Array) -> None:
    """x ← 1 / (1 + exp(−x)), in NumPy's SIMD loops (several times a compiled scalar exp's speed)."""
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += 1
    np.reciprocal(x, out=x)


@njit(cache=True, nogil=True)
def _lstm_cell(act: Array, c_prev: Array, c: Array) -> None:  # pragma: no cover
    """c_t = f c_{t-1} + i g from the activated gates `act` (batch, 4H) = (i, f, g, o)."""
    batch, hidden = c.shape
    for b in range(batch):
        for j in range(hidden):
            c[b, j] = act[b, hidden + j] * c_prev[b, j] + act[b, j] * act[b, 2 * hidden + j]


def _lstm_step(gates: Array, c_prev: Array, c: Array, h: Array, tanh_c: Array) -> None:
    """Activate the pre-activation `gates` (batch, 4H) in place and write c_t, h_t, tanh(c_t)::

    i, f, o = σ(·), g = tanh(·);  c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)
    """
    hidden = c.shape[1]
    _sigmoid_in_place(gates[:, : 2 * hidden])
    _sigmoid_in_place(gates[:, 3 * hidden :])
    g = gates[:, 2 * hidden : 3 * hidden]
    np.tanh(g, out=g)
    _lstm_cell(gates, c_prev, c)
    np.tanh(c, out=tanh_c)
    np.multiply(gates[:, 3 * hidden :], tanh_c, out=h)


@njit(cache=True)
def _lstm_backward(
    dh: Array, dc: Array, act: Array, c_prev: Array, tanh_c: Array, dgates: Array
) -> None:  # pragma: no cover
    """From ∂h_t, ∂c_t (updated in place to ∂c_{t-1}) write the pre-activation gate gradients."""
    batch, hidden = dh.shape
    for b in range(batch):
        for j in range(hidden):
            i, f = act[b, j], act[b, hidden + j]
            g, o = act[b, 2 * hidden + j], act[b, 3 * hidden + j]
            t = tanh_c[b, j]
            d_cell = dc[b, j] + dh[b, j] * o * (1 - t * t)
            dgates[b, j] = d_cell * g * i * (1 - i)
            dgates[b, hidden + j] = d_cell * c_prev[b, j] * f * (1 - f)
            dgates[b, 2 * hidden + j] = d_cell * i * (1 - g * g)
            dgates[b, 3 * hidden + j] = dh[b, j] * t * o * (1 - o)
            dc[b, j] = d_cell * f


@njit(cache=True)
def _gru_forward(gi: Array, gh: Array, h_prev: Array, h: Array, act: Array) -> None:  # pragma: no cover
    """h_t from the input part `gi` and hidden part `gh` (batch, 3H) of the gates; `act` keeps
    (r, z, n, gh_n) for the backward pass::

    r = σ(gi_r + gh_r);  z = σ(gi_z + gh_z);  n = tanh(gi_n + r gh_n);  h_t = (1 − z) n + z h_{t-1}
    """
    batch, hidden = h.shape
    for b in range(batch):
        for j in range(hidden):
            r = _sigmoid(gi[b, j] + gh[b, j])
            z = _sigmoid(gi[b, hidden + j] + gh[b, hidden + j])
            ghn = gh[b, 2 * hidden + j]
            n = np.tanh(gi[b, 2 * hidden + j] + r * ghn)
            act[b, j], act[b, hidden + j], act[b, 2 * hidden + j], act[b, 3 * hidden + j] = r, z, n, ghn
            h[b, j] = (1 - z) * n + z * h_prev[b, j]


@njit(cache=True)
def _gru_backward(
    dh: Array, act: Array, h_prev: Array, dgi: Array, dgh: Array, dh_prev: Array
) -> None:  # pragma: no cover
    """From ∂h_t write the gradients of gi and gh and the direct part z ∂h_t of ∂h_{t-1}."""
    batch, hidden = dh.shape
    for b in range(batch):
        for j in range(hidden):
            r, z = act[b, j], act[b, hidden + j]
            n, ghn = act[b, 2 * hidden + j], act[b, 3 * hidden + j]
            d = dh[b, j]
            dn = d * (1 - z) * (1 - n * n)
            dz = d * (h_prev[b, j] - n) * z * (1 - z)
            dr = dn * ghn * r * (1 - r)
            dgi[b, j], dgi[b, hidden + j], dgi[b, 2 * hidden + j] = dr, dz, dn
            dgh[b, j], dgh[b, hidden + j], dgh[b, 2 * hidden + j] = dr, dz, dn * r
            dh_prev[b, j] = d * z


def _check_weights(
    mode: str, x: ExTensor, h0: ExTensor, w_ih: ExTensor, w_hh: ExTensor, op: str
) -> tuple[int, int]:
    gates = GATES[mode]
    if x.ndim != 3:
        raise ValueError(f"{op}: input must be (time, batch, features), got shape {x.shape}")
    hidden = w_hh.shape[-1]
    if w_ih.shape != (gates * hidden, x.shape[2]) or w_hh.shape != (gates * hidden, hidden):
        raise ValueError(
            f"{op}: weights of shapes {w_ih.shape} and {w_hh.shape} do not fit input features "
            f"{x.shape[2]} and {gates} gate(s) of {hidden}"
        )
    if h0.shape != (x.shape[1], hidden):
        raise ValueError(f"{op}: initial state must have shape {(x.shape[1], hidden)}, got {h0.shape}")
    return gates, hidden


@register("recurrent_layer")
def recurrent_layer(
    mode: str,
    input: Any,
    h0: Any,
    c0: Any,
    weight_ih: Any,
    weight_hh: Any,
    bias_ih: Any = None,
    bias_hh: Any = None,
    reverse: bool = False,
) -> ExTensor:
    """Run one layer of an RNN (`mode` "RNN_TANH"/"RNN_RELU"), "LSTM" or "GRU" over a sequence.

    Args:
        input: (time, batch, features). h0, c0: initial states (batch, hidden); c0 only for LSTM.
        weight_ih, weight_hh: (gates·hidden, features) and (gates·hidden, hidden), torch's layout.
        bias_ih, bias_hh: (gates·hidden,) or None.
        reverse: process the sequence from its last step to its first (a bidirectional layer's
            backward direction); outputs stay indexed by input time.

    Returns:
        (time, batch, hidden) hidden states h_t, followed for LSTM by one more row, the last
        cell state: (time + 1, batch, hidden). The final hidden state is row ``time - 1`` (row 0
        when `reverse`).
    """
    op = mode.lower()
    if mode not in GATES:
        raise ValueError(f"recurrent_layer: mode must be one of {sorted(GATES)}, got {mode!r}")
    x, h_init, w_ih, w_hh = (as_tensor(v) for v in (input, h0, weight_ih, weight_hh))
    named = [("input", x), ("h0", h_init), ("weight_ih", w_ih), ("weight_hh", w_hh)]
    c_init = as_tensor(c0) if mode == "LSTM" else None
    if c_init is not None:
        named.append(("c0", c_init))
    if (bias_ih is None) != (bias_hh is None):
        raise ValueError(f"{op}: give both biases or neither")
    biases = [as_tensor(b) for b in (bias_ih, bias_hh) if b is not None]
    named += list(zip(("bias_ih", "bias_hh"), biases, strict=False))
    for name, tensor in named:
        require_floating(name, tensor, op)
    require_same_dtype(op, named[0], *named[1:])
    tensors = [tensor for _, tensor in named]
    gates, hidden = _check_weights(mode, x, h_init, w_ih, w_hh, op)
    if c_init is not None and c_init.shape != h_init.shape:
        raise ValueError(f"{op}: initial cell state must have shape {h_init.shape}, got {c_init.shape}")
    steps, batch, features = x.shape
    dtype = x.dtype
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    w_hh_t = np.ascontiguousarray(w_hh.data.T)  # h @ W_hhᵀ as a plain (not transposed) BLAS product
    x_data = np.ascontiguousarray(x.data)
    # every step's input projection in one product; the hidden bias joins it unless GRU needs it apart
    projected = (x_data.reshape(steps * batch, features) @ w_ih.data.T).reshape(steps, batch, gates * hidden)
    if biases:
        projected += biases[0].data
        if mode != "GRU":
            projected += biases[1].data
    out = np.empty((steps + (mode == "LSTM"), batch, hidden), dtype=dtype)
    h_prev_all = np.empty((steps, batch, hidden), dtype=dtype)  # h_{t-1} of each step, for backward
    h = np.ascontiguousarray(h_init.data)
    if mode == "LSTM":
        assert c_init is not None
        act = projected  # activated in place
        cells = np.empty((steps, batch, hidden), dtype=dtype)
        tanh_c = np.empty((steps, batch, hidden), dtype=dtype)
        c = np.ascontiguousarray(c_init.data)
        c_prev_all = np.empty((steps, batch, hidden), dtype=dtype)
        for t in order:
            h_prev_all[t], c_prev_all[t] = h, c
            act[t] += h @ w_hh_t
            _lstm_step(act[t], c, cells[t], out[t], tanh_c[t])
            h, c = out[t], cells[t]
        out[steps] = c
    elif mode == "GRU":
        act = np.empty((steps, batch, 4 * hidden), dtype=dtype)
        for t in order:
            h_prev_all[t] = h
            gh = h @ w_hh_t
            if biases:
                gh += biases[1].data
            _gru_forward(projected[t], gh, h, out[t], act[t])
            h = out[t]
    else:
        for t in order:
            h_prev_all[t] = h
            pre = projected[t] + h @ w_hh_t
            out[t] = np.tanh(pre) if mode == "RNN_TANH" else np.maximum(pre, 0)
            h = out[t]

    def backward(g: Array) -> tuple[Array | None, ...]:
        d_out = g[:steps]
        d_gates = np.empty((steps, batch, gates * hidden), dtype=dtype)
        d_hidden_gates = np.empty_like(d_gates) if mode == "GRU" else d_gates
        dh = np.zeros((batch, hidden), dtype=dtype)
        dc = np.array(g[steps], dtype=dtype) if mode == "LSTM" else None
        direct = np.empty((batch, hidden), dtype=dtype)
        for t in reversed(order):
            dh += d_out[t]
            if mode == "LSTM":
                assert dc is not None
                _lstm_backward(dh, dc, act[t], c_prev_all[t], tanh_c[t], d_gates[t])
                dh = d_gates[t] @ w_hh.data
            elif mode == "GRU":
                _gru_backward(dh, act[t], h_prev_all[t], d_gates[t], d_hidden_gates[t], direct)
                dh = direct + d_hidden_gates[t] @ w_hh.data
            else:
                h_t = out[t]
                d_gates[t] = dh * (1 - h_t * h_t) if mode == "RNN_TANH" else dh * (h_t > 0)
                dh = d_gates[t] @ w_hh.data
        rows = steps * batch
        flat_gates = d_gates.reshape(rows, gates * hidden)
        flat_hidden = d_hidden_gates.reshape(rows, gates * hidden)
        grads: list[Array | None] = [
            (flat_gates @ w_ih.data).reshape(x.shape),
            dh,
            flat_gates.T @ x_data.reshape(rows, features),
            flat_hidden.T @ h_prev_all.reshape(rows, hidden),
        ]
        if c_init is not None:
            grads.append(dc)
        if biases:
            grads += [flat_gates.sum(axis=0), flat_hidden.sum(axis=0)]
        return tuple(grads)

    return record(out, tuple(tensors), backward)
