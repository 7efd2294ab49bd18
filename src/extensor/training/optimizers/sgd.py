"""Stochastic gradient descent with heavy-ball or Nesterov momentum, and its fused kernel.

The kernel is shared with LARS (`lars.py`), which is SGD whose gradient is rescaled per
tensor by a trust ratio: SGD passes one segment of scale 1 (multiplying by 1 is exact).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np
from numba import njit, prange

from extensor.core.tensor import Array
from extensor.training.flat import parallel_chunks
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Run, require_bool, require_real

__all__ = ["SGD", "momentum_sgd_kernel"]


@njit(cache=True, inline="always")
def _momentum_sgd_segment(
    param: Array,
    grad: Array,
    buf: Array,
    scale: Any,
    neg_lr: Any,
    weight_decay: Any,
    momentum: Any,
    dampening_keep: Any,
    nesterov: bool,
    maximize: bool,
    first: bool,
) -> None:
    # The loop runs from 0 over slices so that LLVM can prove indices non-negative and vectorise.
    for i in range(param.size):
        g = -grad[i] if maximize else grad[i]
        p = param[i]
        if weight_decay != 0:
            g = g + weight_decay * p  # L2 penalty, coupled into the gradient
        g = g * scale  # LARS trust ratio; exactly 1 for SGD
        if momentum != 0:
            # torch: the first momentum step copies the gradient
            b = g if first else buf[i] * momentum + dampening_keep * g
            buf[i] = b
            g = g + momentum * b if nesterov else b
        param[i] = p + neg_lr * g


@njit(parallel=True, cache=True, fastmath=False)
def momentum_sgd_kernel(
    param: Array,
    grad: Array,
    buf: Array,
    offsets: Array,
    scales: Array,
    n_chunks: int,
    neg_lr: Any,
    weight_decay: Any,
    momentum: Any,
    dampening_keep: Any,
    nesterov: bool,
    maximize: bool,
    first: bool,
) -> None:
    """One SGD step over a flat run of parameters, in place, in the parameters' dtype.

    Per element, with ``g`` the gradient and ``s`` the scale of the element's segment (tensor)::

        g = -g if maximize
        g = (g + weight_decay * p) * s
        if momentum != 0:
            b = g if first else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        p = p - lr * g

    `offsets` (int64, from 0 to ``param.size``) delimit the segments and `scales` holds one
    factor per segment. `buf` may be empty when ``momentum == 0``. The array is cut into
    `n_chunks` equal chunks processed in parallel; within a chunk each segment piece is one
    vectorised loop.
    """
    size = param.size
    for chunk in prange(n_chunks):
        lo = size * chunk // n_chunks
        hi = size * (chunk + 1) // n_chunks
        segment = np.searchsorted(offsets, lo, side="right") - 1
        position = lo
        while position < hi:
            stop = min(offsets[segment + 1], hi)
            if stop > position:
                _momentum_sgd_segment(
                    param[position:stop],
                    grad[position:stop],
                    buf[position:stop] if momentum != 0 else buf,
                    scales[segment],
                    neg_lr,
                    weight_decay,
                    momentum,
                    dampening_keep,
                    nesterov,
                    maximize,
                    first,
                )
                position = stop
            segment += 1


def momentum_sgd(group: ParamGroup, run: Run, offsets: Array, scales: Array) -> None:
    """Call `momentum_sgd_kernel` on `run` with `group`'s hyperparameters and per-segment `scales`."""
    momentum = float(group["momentum"])
    momentum_sgd_kernel(
        run.param,
        run.grad,
        run.buffer("momentum_buffer"),
        offsets,
        scales,
        parallel_chunks(run.param.size),
        run.scalar(-float(group["lr"])),
        run.scalar(group["weight_decay"]),
        run.scalar(momentum),
        run.scalar(1.0 - float(group["dampening"])),
        bool(group["nesterov"]),
        bool(group.get("maximize", False)),
        run.step == 1.0,
    )


def validate_momentum(group: Mapping[str, Any]) -> None:
    """The checks SGD and LARS share (torch's conditions and messages)."""
    lr = require_real(group["lr"], "lr")
    momentum = require_real(group["momentum"], "momentum")
    dampening = require_real(group["dampening"], "dampening")
    weight_decay = require_real(group["weight_decay"], "weight_decay")
    nesterov = require_bool(group["nesterov"], "nesterov")
    if not lr >= 0.0:
        raise ValueError(f"Invalid learning rate: {lr} (expected lr >= 0)")
    if not momentum >= 0.0:
        raise ValueError(f"Invalid momentum value: {momentum} (expected momentum >= 0)")
    if not weight_decay >= 0.0:
        raise ValueError(f"Invalid weight_decay value: {weight_decay} (expected weight_decay >= 0)")
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(
            f"Nesterov momentum requires a momentum and zero dampening (got momentum={momentum}, "
            f"dampening={dampening})"
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

    Note the positional order follows extensor's API (lr, momentum, weight_decay, nesterov),
    not torch's (lr, momentum, dampening, weight_decay, nesterov); `dampening` is keyword-only.
    State per parameter: ``momentum_buffer`` once stepped with μ ≠ 0.
    """

    state_names: ClassVar[tuple[str, ...]] = ("momentum_buffer",)
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
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _validate_group(self, group: Mapping[str, Any]) -> None:
        validate_momentum(group)
        require_bool(group["maximize"], "maximize")

    def _state_names(self, group: ParamGroup) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def _counts_steps(self, group: ParamGroup) -> bool:
        # torch keeps a momentum buffer (our only state) only for steps taken with momentum
        return bool(group["momentum"] != 0)

    def _run_key(self, steps: Array) -> Array:
        # only "has a momentum buffer yet" matters, not the exact count
        return np.minimum(steps, 1)

    def _update(self, group: ParamGroup, run: Run) -> None:
        whole_run = np.array([0, run.param.size], dtype=np.int64)
        momentum_sgd(group, run, whole_run, np.ones(1, dtype=run.dtype))
