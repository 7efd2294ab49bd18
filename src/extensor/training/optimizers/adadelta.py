"""Adadelta: per-weight steps from the ratio of running RMS of past updates and of gradients.

Zeiler, "ADADELTA: An Adaptive Learning Rate Method" (arXiv:1212.5701, 2012), algorithm 1, with
torch's learning rate γ scaling the computed update.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from numba import prange

from extensor.core.tensor import Array
from extensor.training.flat import sized_kernel
from extensor.training.optimizers.declare import Check, Flag
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Run

__all__ = ["Adadelta", "adadelta_kernel"]


@sized_kernel(fastmath=False)
def adadelta_kernel(
    param: Array,
    grad: Array,
    square_avg: Array,
    acc_delta: Array,
    sign: Any,
    weight_decay: Any,
    rho: Any,
    one_minus_rho: Any,
    eps: Any,
    neg_lr: Any,
) -> None:
    """One Adadelta step over a flat run of parameters, in place, in the parameters' dtype.

    Per element, as torch.optim.Adadelta (``sign = -1`` to maximise)::

        g = sign · g + λ · p                          (the decay term only when λ ≠ 0)
        E[g²] = ρ · E[g²] + (1 - ρ) · g · g
        Δ = sqrt(E[Δ²] + eps) / sqrt(E[g²] + eps) · g
        E[Δ²] = ρ · E[Δ²] + (1 - ρ) · Δ · Δ
        p = p - lr · Δ
    """
    for i in prange(param.size):
        p = param[i]
        g = sign * grad[i]
        if weight_decay != 0:  # as torch, no term at all without decay: 0 · inf would turn an inf into NaN
            g = g + weight_decay * p
        s = square_avg[i] * rho + one_minus_rho * g * g
        a = acc_delta[i]
        delta = np.sqrt(a + eps) / np.sqrt(s + eps) * g
        square_avg[i] = s
        acc_delta[i] = a * rho + one_minus_rho * delta * delta
        param[i] = p + neg_lr * delta


class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012), identical to `torch.optim.Adadelta`.

    With ``g = ∇f(θ)`` (negated when `maximize`)::

        g ← g + λ θ                                  (weight_decay λ)
        v ← ρ v + (1 − ρ) g²
        Δ ← √(u + ε) / √(v + ε) · g
        u ← ρ u + (1 − ρ) Δ²
        θ ← θ − γ Δ

    Args:
        params: iterable of ExTensors or of parameter-group dicts.
        lr: γ, the factor scaling Δ before it is applied (default 1.0).
        rho: ρ, the decay of both running averages, in [0, 1] (default 0.9).
        eps: ε, inside both square roots (default 1e-6).
        weight_decay: λ (default 0).
        maximize: maximise the objective instead (keyword-only).

    State per parameter: ``step``, ``square_avg`` (v), ``acc_delta`` (u).
    """

    fuses_grad_scale = True  # a deferred clip rides on the sign (`Run.gradient_sign`)
    hyperparameters = (
        Check("lr >= 0", "learning rate"),
        Check("0 <= rho <= 1", "rho value"),
        Check("eps >= 0", "epsilon value"),
        Check("weight_decay >= 0", "weight_decay value"),
        Flag("maximize"),
    )
    buffers = ("square_avg", "acc_delta")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay, "maximize": maximize}
        super().__init__(params, defaults)

    def _update(self, group: ParamGroup, run: Run) -> None:
        rho = float(group["rho"])
        adadelta_kernel(
            run.param,
            run.grad,
            run.buffer("square_avg"),
            run.buffer("acc_delta"),
            run.gradient_sign(group["maximize"]),
            run.scalar(group["weight_decay"]),
            run.scalar(rho),
            run.scalar(1 - rho),
            run.scalar(group["eps"]),
            run.scalar(-float(group["lr"])),
        )
