"""Adamax: Adam with the second moment replaced by an exponentially weighted infinity norm.

Kingma & Ba, "Adam: A Method for Stochastic Optimization" (ICLR 2015), section 7.1, algorithm 2.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from numba import prange

from extensor.core.tensor import Array
from extensor.training.flat import sized_kernel
from extensor.training.optimizers.adam import ADAM_CHECKS
from extensor.training.optimizers.declare import Flag, Rules
from extensor.training.optimizers.elementwise import lerp, nan_maximum
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Run

__all__ = ["Adamax", "adamax_kernel"]


@sized_kernel(fastmath=False)
def adamax_kernel(
    param: Array,
    grad: Array,
    exp_avg: Array,
    exp_inf: Array,
    sign: Any,
    weight_decay: Any,
    beta1_weight: Any,
    one_minus_beta1_weight: Any,
    beta2: Any,
    eps: Any,
    neg_clr: Any,
) -> None:
    """One Adamax step over a flat run of parameters, in place, in the parameters' dtype.

    Per element, as torch.optim.Adamax (``sign = -1`` to maximise; ``clr = lr / (1 - β1^t)``)::

        g = sign · g + λ · p                (the decay term only when λ ≠ 0)
        m = lerp(m, g, 1 - β1)
        u = maximum(β2 · u, |g| + eps)      (NaN if either is NaN, as torch.maximum)
        p = p - clr · m / u
    """
    for i in prange(param.size):
        p = param[i]
        g = sign * grad[i]
        if weight_decay != 0:  # as torch, no term at all without decay: 0 · inf would turn an inf into NaN
            g = g + weight_decay * p
        m = lerp(exp_avg[i], g, beta1_weight, one_minus_beta1_weight)
        u = nan_maximum(exp_inf[i] * beta2, abs(g) + eps)
        exp_avg[i] = m
        exp_inf[i] = u
        param[i] = p + neg_clr * m / u


class Adamax(Optimizer):
    """Adamax (Kingma & Ba, 2015), identical to `torch.optim.Adamax`.

    With ``g = ∇f(θ)`` (negated when `maximize`), at step t of a parameter::

        g ← g + λ θ                            (weight_decay λ)
        m ← β1 m + (1 − β1) g
        u ← max(β2 u, |g| + ε)
        θ ← θ − γ / (1 − β1^t) · m / u

    Args:
        params: iterable of ExTensors or of parameter-group dicts.
        lr: learning rate γ (default 2e-3).
        betas: (β1, β2), each in [0, 1) (default (0.9, 0.999)).
        eps: ε added to |g| (default 1e-8).
        weight_decay: λ (default 0).
        maximize: maximise the objective instead (keyword-only).

    State per parameter: ``step``, ``exp_avg`` (m), ``exp_inf`` (u).
    """

    fuses_grad_scale = True  # a deferred clip rides on the sign (`Run.gradient_sign`)
    hyperparameters: ClassVar[Rules] = (*ADAM_CHECKS, Flag("maximize"))
    buffers = ("exp_avg", "exp_inf")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "maximize": maximize}
        super().__init__(params, defaults)

    def _update(self, group: ParamGroup, run: Run) -> None:
        beta1, beta2 = float(group["betas"][0]), float(group["betas"][1])
        beta1_weight = run.scalar(1 - beta1)
        adamax_kernel(
            run.param,
            run.grad,
            run.buffer("exp_avg"),
            run.buffer("exp_inf"),
            run.gradient_sign(group["maximize"]),
            run.scalar(group["weight_decay"]),
            beta1_weight,
            run.scalar(1) - beta1_weight,
            run.scalar(beta2),
            run.scalar(group["eps"]),
            run.scalar(-float(group["lr"]) / (1 - beta1**run.step)),  # torch: Python double, then cast
        )
