"""Lion: evolved sign momentum.

Chen et al., "Symbolic Discovery of Optimization Algorithms" (NeurIPS 2023, arXiv:2302.06675).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from numba import prange

from extensor.core.tensor import Array
from extensor.training.flat import sized_kernel
from extensor.training.optimizers.declare import Check, Flag, Numbers
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Run

__all__ = ["Lion", "lion_kernel"]


@sized_kernel(fastmath=False)
def lion_kernel(
    param: Array, grad: Array, exp_avg: Array, sign: Any, decay: Any, neg_lr: Any,
    beta1: Any, one_minus_beta1: Any, beta2: Any, one_minus_beta2: Any,
) -> None:  # fmt: skip
    """One Lion step over a flat run of parameters, in place, in their dtype: the class's equations."""
    for i in prange(param.size):
        g = sign * grad[i]
        m = exp_avg[i]
        c = np.sign(beta1 * m + one_minus_beta1 * g)  # sign(NaN) = NaN, as jnp.sign
        param[i] = param[i] * decay + neg_lr * c
        exp_avg[i] = beta2 * m + one_minus_beta2 * g


class Lion(Optimizer):
    """Lion (Chen et al., 2023), identical to `lion_pytorch.Lion` and `optax.lion`.

    With ``g = ∇f(θ)`` (negated when `maximize`), per element::

        c ← sign(β1 m + (1 − β1) g)
        θ ← θ (1 − γλ) − γ c
        m ← β2 m + (1 − β2) g

    Use a γ 3-10x smaller than AdamW's and a λ 3-10x larger. Where the references differ:
    ``sign(NaN)`` is NaN here and in optax, 0 in lion-pytorch (torch.sign), which freezes the
    weight; lion-pytorch refuses γ = 0 and has no `maximize`; optax's λ defaults to 1e-3.

    Args:
        params: iterable of ExTensors or of parameter-group dicts.
        lr: learning rate γ (default 1e-4).
        betas: (β1, β2), each in [0, 1] (default (0.9, 0.99)).
        weight_decay: λ (default 0).
        maximize: maximise the objective instead (keyword-only).

    State per parameter: ``exp_avg`` (m).
    """

    fuses_grad_scale = True  # a deferred clip rides on the sign (`Run.gradient_sign`)
    hyperparameters = (
        Check("lr >= 0", "learning rate"),
        Numbers("betas", 2),
        Check("0 <= betas[0] <= 1", "beta parameter at index 0"),
        Check("0 <= betas[1] <= 1", "beta parameter at index 1"),
        Check("weight_decay >= 0", "weight_decay value"),
        Flag("maximize"),
    )
    buffers = ("exp_avg",)
    step_in_state = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {"lr": lr, "betas": betas, "weight_decay": weight_decay, "maximize": maximize}
        super().__init__(params, defaults)

    def _run_key(self, steps: Array) -> Array:
        return np.zeros_like(steps)  # the update does not depend on the step count: one run per pack

    def _update(self, group: ParamGroup, run: Run) -> None:
        lr, (beta1, beta2) = float(group["lr"]), map(float, group["betas"])
        s = run.scalar  # scalars in double precision, cast once to the run's dtype
        lion_kernel(
            run.param, run.grad, run.buffer("exp_avg"), run.gradient_sign(group["maximize"]),
            s(1 - lr * float(group["weight_decay"])), s(-lr), s(beta1), s(1 - beta1), s(beta2), s(1 - beta2),
        )  # fmt: skip
