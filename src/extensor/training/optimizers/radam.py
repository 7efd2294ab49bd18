"""RAdam: Adam with the variance of its adaptive learning rate rectified, identical to `torch.optim.RAdam`.

Liu, Jiang, He, Chen, Liu, Gao & Han, "On the Variance of the Adaptive Learning Rate and
Beyond" (ICLR 2020); decoupled weight decay as in Loshchilov & Hutter (ICLR 2019). The moments
are Adam's (`adam_moments`, shared with Adam, AdamW and NAdam); only the parameter update differs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np
from numba import prange

from extensor.core.tensor import Array
from extensor.training.flat import sized_kernel
from extensor.training.optimizers.adam import ADAM_CHECKS, adam_moments, moment_coefficients
from extensor.training.optimizers.declare import Flag, Rules
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Run

__all__ = ["RAdam", "radam_kernel"]


@sized_kernel(fastmath=False)
def radam_kernel(
    param: Array,
    grad: Array,
    exp_avg: Array,
    exp_avg_sq: Array,
    sign: Any,
    decay: Any,
    l2: Any,
    beta1_weight: Any,
    one_minus_beta1_weight: Any,
    beta2: Any,
    one_minus_beta2: Any,
    bias_correction1: Any,
    lr: Any,
    one: Any,
    bias_correction2_sqrt: Any,
    eps: Any,
    rectification: Any,
    rectify: bool,
) -> None:
    """One RAdam step over a flat run of parameters, in place, in the parameters' dtype.

    Per element, after Adam's moments (`adam_moments`), in the order of torch's operations::

        rectify:    p = p - m / (1 - β1^t) · lr · ((1 / (sqrt(v) + eps)) · sqrt(1 - β2^t)) · r_t
        otherwise:  p = p - m / (1 - β1^t) · lr                   (SGD with momentum)

    `one` is 1 in the element dtype. `rectify` (ρ_t > 5) selects one of two loops.
    """
    n = param.size
    if rectify:
        for i in prange(n):
            p, _, m, v = adam_moments(
                i, param, grad, exp_avg, exp_avg_sq, sign, decay, l2, beta1_weight, one_minus_beta1_weight,
                beta2, one_minus_beta2,
            )  # fmt: skip
            adaptive = (one / (np.sqrt(v) + eps)) * bias_correction2_sqrt
            param[i] = p - m / bias_correction1 * lr * adaptive * rectification
    else:
        for i in prange(n):
            p, _, m, _ = adam_moments(
                i, param, grad, exp_avg, exp_avg_sq, sign, decay, l2, beta1_weight, one_minus_beta1_weight,
                beta2, one_minus_beta2,
            )  # fmt: skip
            param[i] = p - m / bias_correction1 * lr


class RAdam(Optimizer):
    """RAdam (Liu et al., 2020), identical to `torch.optim.RAdam`.

    With ``g = ∇f(θ)`` (negated when `maximize`), at step t of a parameter::

        θ ← θ (1 − γλ) if decoupled_weight_decay, else g ← g + λ θ
        m ← β1 m + (1 − β1) g
        v ← β2 v + (1 − β2) g²
        ρ_∞ = 2 / (1 − β2) − 1,   ρ_t = ρ_∞ − 2 t β2^t / (1 − β2^t)
        if ρ_t > 5:  r_t = √((ρ_t − 4)(ρ_t − 2) ρ_∞ / ((ρ_∞ − 4)(ρ_∞ − 2) ρ_t))
                     θ ← θ − γ m / (1 − β1^t) · r_t √(1 − β2^t) / (√v + ε)
        else:        θ ← θ − γ m / (1 − β1^t)

    Args:
        params: iterable of ExTensors or of parameter-group dicts.
        lr: learning rate γ (default 1e-3).
        betas: (β1, β2), each in [0, 1) (default (0.9, 0.999)).
        eps: ε added to the denominator (default 1e-8).
        weight_decay: λ (default 0).
        decoupled_weight_decay: decay the weights directly as AdamW does ("RAdamW").
        maximize: maximise the objective instead (keyword-only).

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq``.
    """

    fuses_grad_scale = True  # a deferred clip rides on the sign (`Run.gradient_sign`)
    hyperparameters: ClassVar[Rules] = (*ADAM_CHECKS, Flag("decoupled_weight_decay"), Flag("maximize"))
    buffers = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _update(self, group: ParamGroup, run: Run) -> None:
        step = run.step
        beta1, beta2 = float(group["betas"][0]), float(group["betas"][1])
        # the scalars in Python double precision, as torch computes them
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2**step) / bias_correction2
        rectify = rho_t > 5.0
        rectification = (
            ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            if rectify
            else 1.0
        )
        radam_kernel(
            run.param,
            run.grad,
            run.buffer("exp_avg"),
            run.buffer("exp_avg_sq"),
            *moment_coefficients(group, run, bool(group["decoupled_weight_decay"])),
            run.scalar(bias_correction1),
            run.scalar(group["lr"]),
            run.scalar(1),
            run.scalar(bias_correction2**0.5),
            run.scalar(group["eps"]),
            run.scalar(rectification),
            rectify,
        )
