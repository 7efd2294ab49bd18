"""RMSprop: gradient scaled by a running root mean square, optionally centered and with momentum.

Hinton, Srivastava & Swersky, "Neural Networks for Machine Learning", lecture 6e (2012); the
centered variant from Graves, "Generating Sequences With Recurrent Neural Networks" (2013).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from numba import njit, prange

from extensor.core.tensor import Array
from extensor.training.flat import sized_kernel
from extensor.training.optimizers.compact import BLOCK_SIZE, SIGNED, UNSIGNED
from extensor.training.optimizers.compact_state import (
    check_state_dtype,
    chunk_blocks,
    chunk_count,
    load_block,
    store_block,
)
from extensor.training.optimizers.declare import Check, Flag, State
from extensor.training.optimizers.elementwise import lerp
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Run

__all__ = ["RMSprop", "rmsprop_kernel"]


@njit(cache=True, inline="always")
def _rmsprop_element(
    i: int,
    param: Array,
    grad: Array,
    square_avg: Array,
    grad_avg: Array,
    momentum_buffer: Array,
    sign: Any,
    neg_lr: Any,
    weight_decay: Any,
    alpha: Any,
    one_minus_alpha: Any,
    alpha_complement: Any,
    eps: Any,
    momentum: Any,
    centered: bool,
    use_momentum: bool,
) -> None:
    p = param[i]
    g = sign * grad[i]
    if weight_decay != 0:  # as torch, no term at all without decay: 0 · inf would turn an inf into NaN
        g = g + weight_decay * p
    s = square_avg[i] * alpha + one_minus_alpha * g * g
    square_avg[i] = s
    if centered:
        a = lerp(grad_avg[i], g, one_minus_alpha, alpha_complement)
        grad_avg[i] = a
        d = np.sqrt(s + -a * a) + eps
    else:
        d = np.sqrt(s) + eps
    if use_momentum:
        b = momentum_buffer[i] * momentum + g / d
        momentum_buffer[i] = b
        param[i] = p + neg_lr * b
    else:
        param[i] = p + neg_lr * g / d


@sized_kernel(fastmath=False)
def rmsprop_kernel(
    param: Array,
    grad: Array,
    square_avg: Array,
    grad_avg: Array,
    momentum_buffer: Array,
    sign: Any,
    neg_lr: Any,
    weight_decay: Any,
    alpha: Any,
    one_minus_alpha: Any,
    alpha_complement: Any,
    eps: Any,
    momentum: Any,
) -> None:
    """One RMSprop step over a flat run of parameters, in place, in the parameters' dtype.

    Per element, as torch.optim.RMSprop (``eps`` outside the square root; the momentum
    buffer starts at zero; ``sign = -1`` to maximise)::

        g = sign · g + weight_decay · p                    (the decay term only when it is ≠ 0)
        s = α s + (1 - α) g²
        a = lerp(a, g, 1 - α); d = sqrt(s - a²) + eps     if centered
        d = sqrt(s) + eps                                  otherwise
        b = μ b + g / d; p = p - lr · b                    with momentum
        p = p - lr · g / d                                 otherwise

    Centering is on when `grad_avg` is not empty, momentum when `momentum_buffer` is not;
    each of the four combinations is its own loop, so that it vectorises (the weight-decay
    branch is loop-invariant: LLVM unswitches it or makes it a select).
    ``alpha_complement`` is ``1 - (1 - α)`` in the element dtype (lerp's second formula).
    """
    n = param.size
    centered = grad_avg.size != 0
    use_momentum = momentum_buffer.size != 0
    if centered and use_momentum:
        for i in prange(n):
            _rmsprop_element(
                i, param, grad, square_avg, grad_avg, momentum_buffer, sign, neg_lr, weight_decay, alpha,
                one_minus_alpha, alpha_complement, eps, momentum, True, True,
            )  # fmt: skip
    elif centered:
        for i in prange(n):
            _rmsprop_element(
                i, param, grad, square_avg, grad_avg, momentum_buffer, sign, neg_lr, weight_decay, alpha,
                one_minus_alpha, alpha_complement, eps, momentum, True, False,
            )  # fmt: skip
    elif use_momentum:
        for i in prange(n):
            _rmsprop_element(
                i, param, grad, square_avg, grad_avg, momentum_buffer, sign, neg_lr, weight_decay, alpha,
                one_minus_alpha, alpha_complement, eps, momentum, False, True,
            )  # fmt: skip
    else:
        for i in prange(n):
            _rmsprop_element(
                i, param, grad, square_avg, grad_avg, momentum_buffer, sign, neg_lr, weight_decay, alpha,
                one_minus_alpha, alpha_complement, eps, momentum, False, False,
            )  # fmt: skip


_rmsprop_serial = rmsprop_kernel.serial  # a dispatcher the compact kernel calls per block


@sized_kernel(fastmath=False)
def rmsprop_compact_kernel(
    param: Array,
    grad: Array,
    square_avg: tuple[Array, Array, Array, Array],
    grad_avg: tuple[Array, Array, Array, Array],
    momentum_buffer: tuple[Array, Array, Array, Array],
    kept: tuple[bool, bool],
    blocks: tuple[Array, Array, Array, int, int, int],
    bf16: bool,
    signed: Any,
    unsigned: Any,
    coefficients: tuple[Any, ...],
) -> None:
    """`rmsprop_kernel` with its buffers stored compactly (`compact_state`): per block, decode them
    into float32 scratch, run the float32 kernel's loop on the block, encode them. ``kept`` says
    whether `grad_avg` (centered) and `momentum_buffer` exist; ``blocks`` as in
    `adam.adam_compact_kernel`."""
    lo, hi, slot, _, _, base = blocks
    centered, use_momentum = kept
    n_chunks = chunk_count(blocks)
    none = np.empty(0, dtype=np.float32)
    for chunk in prange(n_chunks):
        s_block = np.empty(BLOCK_SIZE, dtype=np.float32)
        a_block = np.empty(BLOCK_SIZE if centered else 0, dtype=np.float32)
        b_block = np.empty(BLOCK_SIZE if use_momentum else 0, dtype=np.float32)
        for j in range(*chunk_blocks(blocks, chunk, n_chunks)):
            start, stop, code = lo[j], hi[j], slot[j]
            n = stop - start
            load_block(square_avg, bf16, start, stop, code, unsigned, s_block)
            if centered:
                load_block(grad_avg, bf16, start, stop, code, signed, a_block)
            if use_momentum:
                load_block(momentum_buffer, bf16, start, stop, code, signed, b_block)
            _rmsprop_serial(
                param[start - base : stop - base], grad[start - base : stop - base], s_block[:n],
                a_block[:n] if centered else none, b_block[:n] if use_momentum else none, *coefficients,
            )  # fmt: skip
            store_block(square_avg, bf16, start, stop, code, unsigned, s_block)
            if centered:
                store_block(grad_avg, bf16, start, stop, code, signed, a_block)
            if use_momentum:
                store_block(momentum_buffer, bf16, start, stop, code, signed, b_block)


class RMSprop(Optimizer):
    """RMSprop, identical to `torch.optim.RMSprop`.

    With ``g = ∇f(θ)`` (negated when `maximize`)::

        g ← g + λ θ                                   (weight_decay λ)
        s ← α s + (1 − α) g²
        d ← √(s − ḡ²) + ε with ḡ ← α ḡ + (1 − α) g    (centered)
        d ← √s + ε                                     (otherwise)
        b ← μ b + g / d;  θ ← θ − γ b                  (momentum μ > 0, b starts at 0)
        θ ← θ − γ g / d                                (otherwise)

    Args:
        params: iterable of ExTensors or of parameter-group dicts.
        lr: learning rate γ (default 0.01).
        alpha: smoothing constant α (default 0.99).
        eps: ε added outside the square root (default 1e-8).
        momentum: μ (default 0).
        weight_decay: λ (default 0).
        centered: normalise by the estimated variance instead of the raw second moment
            (keyword-only).
        maximize: maximise the objective instead (keyword-only).
        state_dtype: how the buffers are stored (keyword-only): None, ``"bfloat16"`` or ``"int8"``,
            as in `Adam` (``square_avg`` on the unsigned map, the others on the signed one).

    Note the positional order follows extensor's API (..., eps, momentum, weight_decay), not
    torch's (..., eps, weight_decay, momentum). State per parameter: ``step``, ``square_avg``,
    ``momentum_buffer`` (μ > 0), ``grad_avg`` (centered).
    """

    fuses_grad_scale = True  # a deferred clip rides on the sign (`Run.gradient_sign`)
    hyperparameters = (
        Check("lr >= 0", "learning rate"),
        Check("eps >= 0", "epsilon value"),
        Check("momentum >= 0", "momentum value"),
        Check("weight_decay >= 0", "weight_decay value"),
        Check("alpha >= 0", "alpha value"),
        Flag("centered"),
        Flag("maximize"),
    )
    buffers = (
        "square_avg",
        State("momentum_buffer", when="momentum > 0"),
        State("grad_avg", when="centered"),
    )

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        *,
        centered: bool = False,
        maximize: bool = False,
        state_dtype: str | None = None,
    ) -> None:
        self.state_dtype = check_state_dtype(state_dtype)
        defaults = {
            "lr": lr,
            "alpha": alpha,
            "eps": eps,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "centered": centered,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _update(self, group: ParamGroup, run: Run) -> None:
        alpha = float(group["alpha"])
        one_minus_alpha = run.scalar(1 - alpha)
        coefficients = (
            run.gradient_sign(group["maximize"]),
            run.scalar(-float(group["lr"])),
            run.scalar(group["weight_decay"]),
            run.scalar(alpha),
            one_minus_alpha,
            run.scalar(1) - one_minus_alpha,
            run.scalar(group["eps"]),
            run.scalar(group["momentum"]),
        )
        if run.compact is not None:
            store = run.compact.store
            centered, use_momentum = bool(group["centered"]), group["momentum"] > 0
            none = store.state("square_avg", signed=False)  # stands in for a buffer not kept
            rmsprop_compact_kernel(
                run.param,
                run.grad,
                store.state("square_avg", signed=False),
                store.state("grad_avg", signed=True) if centered else none,
                store.state("momentum_buffer", signed=True) if use_momentum else none,
                (centered, use_momentum),
                run.compact.blocks,
                store.bf16,
                SIGNED,
                UNSIGNED,
                coefficients,
            )
            return
        rmsprop_kernel(
            run.param,
            run.grad,
            run.buffer("square_avg"),
            run.buffer("grad_avg"),
            run.buffer("momentum_buffer"),
            *coefficients,
        )
