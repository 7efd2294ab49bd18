"""Stochastic gradient descent with heavy-ball or Nesterov momentum, and its fused kernel.

The element loop (`momentum_sgd_piece`) and the mapping from torch's options to its
coefficients (`momentum_coefficients`) are shared with LARS (`lars.py`), which is SGD whose
gradient is rescaled per tensor by a trust ratio.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np
from numba import njit, prange

from extensor.core.tensor import Array
from extensor.training.flat import parallel_chunks, sized_kernel
from extensor.training.optimizers.compact import BLOCK_SIZE
from extensor.training.optimizers.compact_state import (
    check_state_dtype,
    chunk_blocks,
    chunk_count,
    load_block,
    store_block,
)
from extensor.training.optimizers.declare import Check, Flag, Real, Rules, State
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Run

__all__ = ["MOMENTUM_CHECKS", "SGD", "momentum_coefficients", "momentum_sgd_kernel", "momentum_sgd_piece"]


@njit(cache=True, inline="always")
def momentum_sgd_piece(
    param: Array,
    grad: Array,
    buf: Array,
    scale: Any,
    sign: Any,
    neg_lr: Any,
    weight_decay: Any,
    momentum: Any,
    one_minus_dampening: Any,
    nesterov: bool,
    first: bool,
) -> None:
    """The update of `momentum_sgd_kernel` over equal-length slices, the gradient scaled by `scale`.

    A numba function (inlined into the SGD and LARS kernels). `buf` is empty when no momentum
    buffer is kept; `first` says the buffer is new (torch then copies the gradient into it).
    """
    # Loops run from 0 over slices so that LLVM can prove indices non-negative and vectorise.
    # The branches follow torch's: a term torch skips is skipped, not multiplied by 0, so that
    # infinities, NaNs and -0.0 come out as in torch (0 · inf = NaN, 0 · 0 + -0.0 = +0.0). They
    # are loop-invariant: LLVM unswitches them or turns them into selects, and the loops vectorise.
    decay = weight_decay != 0
    if buf.size == 0:
        for i in range(param.size):
            p = param[i]
            g = sign * grad[i]
            if decay:
                g = g + weight_decay * p
            param[i] = p + neg_lr * (g * scale)
    else:
        for i in range(param.size):
            p = param[i]
            g = sign * grad[i]
            if decay:
                g = g + weight_decay * p
            g = g * scale
            b = g if first else momentum * buf[i] + one_minus_dampening * g
            buf[i] = b
            if nesterov:
                param[i] = p + neg_lr * (g + momentum * b)
            else:
                param[i] = p + neg_lr * b


@sized_kernel(fastmath=False)
def momentum_sgd_kernel(
    param: Array,
    grad: Array,
    buf: Array,
    n_chunks: int,
    sign: Any,
    neg_lr: Any,
    weight_decay: Any,
    momentum: Any,
    one_minus_dampening: Any,
    nesterov: bool,
    first: bool,
) -> None:
    """One SGD step over a flat run of parameters, in place, in the parameters' dtype.

    Per element, as torch.optim.SGD (``sign = -1`` to maximise)::

        g = sign · g + weight_decay · p            (the decay term only when weight_decay ≠ 0)
        b = g if first else μ · b + (1 - τ) · g    (only when `buf` is not empty)
        p = p - lr · (g + μ · b if nesterov else b)    (p = p - lr · g without a buffer)

    The array is cut into `n_chunks` equal chunks processed in parallel, each one vectorised loop.
    """
    size = param.size
    one = param.dtype.type(1)
    for chunk in prange(n_chunks):
        lo = size * chunk // n_chunks
        hi = size * (chunk + 1) // n_chunks
        momentum_sgd_piece(
            param[lo:hi], grad[lo:hi], buf[lo:hi] if buf.size != 0 else buf, one,
            sign, neg_lr, weight_decay, momentum, one_minus_dampening, nesterov, first,
        )  # fmt: skip


@sized_kernel(fastmath=False)
def momentum_sgd_compact_kernel(
    param: Array,
    grad: Array,
    buf: tuple[Array, Array, Array, Array],
    blocks: tuple[Array, Array, Array, int, int, int],
    bf16: bool,
    book: Any,
    tensor_of_block: Array,
    scales: Array,
    sgd: tuple[Any, ...],
) -> None:
    """`momentum_sgd_kernel` with the momentum buffer stored compactly (`compact_state`): per block,
    decode it into float32 scratch, run `momentum_sgd_piece`, encode it. The update of a block of
    tensor k is scaled by ``scales[k]`` when `scales` is not empty (LARS's trust ratios), else by 1.
    ``blocks`` as in `adam.adam_compact_kernel`."""
    lo, hi, slot, _, _, base = blocks
    sign, neg_lr, weight_decay, momentum, one_minus_dampening, nesterov, first_step = sgd
    n_chunks = chunk_count(blocks)
    one = param.dtype.type(1)
    for chunk in prange(n_chunks):
        b = np.empty(BLOCK_SIZE, dtype=np.float32)
        for j in range(*chunk_blocks(blocks, chunk, n_chunks)):
            start, stop, s = lo[j], hi[j], slot[j]
            load_block(buf, bf16, start, stop, s, book, b)
            scale = one if scales.size == 0 else scales[tensor_of_block[j]]
            momentum_sgd_piece(
                param[start - base : stop - base], grad[start - base : stop - base], b[: stop - start], scale,
                sign, neg_lr, weight_decay, momentum, one_minus_dampening, nesterov, first_step,
            )  # fmt: skip
            store_block(buf, bf16, start, stop, s, book, b)


def compact_momentum_step(group: ParamGroup, run: Run, scales: Array) -> None:
    """SGD's step of `run` with its momentum buffer stored compactly (`run.compact`), tensor k's
    update scaled by ``scales[k]`` (pack index; empty for 1): SGD's and LARS's compact path."""
    assert run.compact is not None
    store = run.compact.store
    momentum_sgd_compact_kernel(
        run.param,
        run.grad,
        store.state("momentum_buffer", signed=True),
        run.compact.blocks,
        store.bf16,
        store.book("momentum_buffer"),
        store.tensor,
        scales,
        momentum_coefficients(group, run),
    )


def momentum_coefficients(group: ParamGroup, run: Run) -> tuple[Any, ...]:
    """The arguments ``(sign, neg_lr, weight_decay, momentum, one_minus_dampening, nesterov, first)``
    of `momentum_sgd_piece` for `group`'s hyperparameters at `run`'s step (scalars in `run`'s dtype).
    """
    maximize = bool(group.get("maximize", False))
    scalar = run.scalar
    return (
        run.gradient_sign(maximize),
        scalar(-float(group["lr"])),
        scalar(group["weight_decay"]),
        scalar(group["momentum"]),
        scalar(1.0 - float(group["dampening"])),
        bool(group["nesterov"]),
        run.step == 1.0,
    )


#: The checks SGD and LARS share (torch's conditions and messages).
MOMENTUM_CHECKS: Rules = (
    Check("lr >= 0", "learning rate"),
    Check("momentum >= 0", "momentum value"),
    Check("weight_decay >= 0", "weight_decay value"),
    Real("dampening"),
    Flag("nesterov"),
    Check(
        "not nesterov or (momentum > 0 and dampening == 0)",
        "Nesterov momentum requires a momentum and zero dampening",
        sentence=True,
    ),
)


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum (heavy ball or Nesterov).

    With ``g = ∇f(θ)`` (negated when `maximize`), as `torch.optim.SGD`::

        g ← g + λ θ                                   (weight_decay λ, L2 coupled into g)
        b ← g on the first step, else μ b + (1 − τ) g (momentum μ, dampening τ)
        g ← g + μ b if nesterov else b                 (when μ ≠ 0)
        θ ← θ − γ g                                    (lr γ)

    Nesterov momentum follows Sutskever et al., "On the importance of initialization and
    momentum in deep learning" (ICML 2013), in PyTorch's formulation.

    Args:
        params: iterable of ExTensors or of parameter-group dicts.
        lr: learning rate γ (required).
        momentum: momentum factor μ (default 0).
        weight_decay: L2 penalty λ (default 0).
        nesterov: use Nesterov momentum (needs μ > 0 and τ = 0).
        dampening: dampening τ of the momentum (keyword-only, default 0).
        maximize: maximise the objective instead (keyword-only).
        state_dtype: how the momentum buffer is stored (keyword-only): None (the parameters'
            dtype), ``"bfloat16"`` or ``"int8"``, as in `Adam`.

    Note the positional order follows extensor's API (lr, momentum, weight_decay, nesterov),
    not torch's (lr, momentum, dampening, weight_decay, nesterov); `dampening` is keyword-only.
    State per parameter: ``momentum_buffer`` once stepped with μ ≠ 0.
    """

    fuses_grad_scale = True  # a deferred clip rides on the sign (`Run.gradient_sign`)
    hyperparameters: ClassVar[Rules] = (*MOMENTUM_CHECKS, Flag("maximize"))
    buffers = (State("momentum_buffer", when="momentum != 0"),)
    step_in_state: ClassVar[bool] = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        dampening: float = 0.0,
        maximize: bool = False,
        state_dtype: str | None = None,
    ) -> None:
        self.state_dtype = check_state_dtype(state_dtype)
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _counts_steps(self, group: ParamGroup) -> bool:
        # torch keeps a momentum buffer (our only state) only for steps taken with momentum
        return bool(group["momentum"] != 0)

    def _run_key(self, steps: Array) -> Array:
        # only "has a momentum buffer yet" matters, not the exact count
        return np.minimum(steps, 1)

    def _update(self, group: ParamGroup, run: Run) -> None:
        if run.compact is not None and group["momentum"] != 0:
            compact_momentum_step(group, run, np.empty(0, dtype=run.dtype))
            return
        momentum_sgd_kernel(
            run.param,
            run.grad,
            run.buffer("momentum_buffer"),  # empty without momentum: the kernel then keeps none
            parallel_chunks(run.param.size),
            *momentum_coefficients(group, run),
        )
