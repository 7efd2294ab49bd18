"""ADOPT: Adam that normalises the gradient by the *previous* second moment, identical to `optax.adopt`.

Taniguchi, Harada, Minegishi, Oshima, Jeong, Nagahara, Iiyama, Suzuki, Iwasawa & Matsuo, "ADOPT:
Modified Adam Can Converge with Any β2 with the Optimal Rate" (NeurIPS 2024), with the clipping
of its revised version (clip value step^(1/4)). The gradient preparation (sign, weight decay) is
the Adam family's `adam_gradient`; the moments are ADOPT's own: m averages the normalised
gradient, v is updated after it is used, both in optax's ``(1 - b)·x + b·t`` form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np
from numba import prange

from extensor.core.tensor import Array
from extensor.training.flat import sized_kernel
from extensor.training.optimizers.adam import ADAM_CHECKS, adam_gradient
from extensor.training.optimizers.declare import Flag, Rules, require_real
from extensor.training.optimizers.elementwise import nan_maximum
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Run

__all__ = ["ADOPT", "adopt_kernel"]


@sized_kernel(fastmath=False)
def adopt_kernel(
    param: Array,
    grad: Array,
    exp_avg: Array,
    exp_avg_sq: Array,
    sign: Any,
    decay: Any,
    l2: Any,
    beta1: Any,
    one_minus_beta1: Any,
    beta2: Any,
    one_minus_beta2: Any,
    eps: Any,
    clip: Any,
    neg_lr: Any,
    nesterov: bool,
) -> None:
    """One ADOPT step over a flat run of parameters, in place, in the parameters' dtype.

    Per element, after `adam_gradient` (sign and weight decay), in optax's order::

        u = clip(g / max(sqrt(v), eps), -c, c)     (c = inf without clipping; v is the old one)
        v = (1 - β2) · g² + β2 · v
        m = (1 - β1) · u + β1 · m
        p = p - lr · ((1 - β1) · u + β1 · m  if nesterov else  m)

    The first step passes β1 = 1, β2 = 0 and c = clip(0): v becomes g², m and p stay. The
    maximum and minimum propagate NaN as JAX's do. `nesterov` selects one of two loops.
    """
    n = param.size
    if nesterov:
        for i in prange(n):
            p, g = adam_gradient(i, param, grad, sign, decay, l2)
            u = -nan_maximum(-nan_maximum(g / nan_maximum(np.sqrt(exp_avg_sq[i]), eps), -clip), -clip)
            exp_avg_sq[i] = one_minus_beta2 * (g * g) + beta2 * exp_avg_sq[i]
            m = one_minus_beta1 * u + beta1 * exp_avg[i]
            exp_avg[i] = m
            param[i] = p + neg_lr * (one_minus_beta1 * u + beta1 * m)
    else:
        for i in prange(n):
            p, g = adam_gradient(i, param, grad, sign, decay, l2)
            u = -nan_maximum(-nan_maximum(g / nan_maximum(np.sqrt(exp_avg_sq[i]), eps), -clip), -clip)
            exp_avg_sq[i] = one_minus_beta2 * (g * g) + beta2 * exp_avg_sq[i]
            m = one_minus_beta1 * u + beta1 * exp_avg[i]
            exp_avg[i] = m
            param[i] = p + neg_lr * m


class ADOPT(Optimizer):
    """ADOPT (Taniguchi et al., 2024), identical to ``optax.contrib.adopt`` (optax 0.2.8).

    With ``g = ∇f(θ)`` (negated when `maximize`), at the step after k completed ones::

        k = 0:   v ← g²                                  (no update: θ and m stay)
        k ≥ 1:   u = clip(g / max(√v, ε), −c_k, c_k)     (c_k = k^clip_exp; no clip if None)
                 m ← β1 m + (1 − β1) u
                 v ← β2 v + (1 − β2) g²
                 θ ← θ − γ (β1 m + (1 − β1) u if nesterov else m)

    Weight decay is optional (optax's ADOPT has none): L2 (``g ← g + λθ`` first, as chaining
    ``optax.add_decayed_weights`` before it), or with `decoupled_weight_decay` ``θ ← θ(1 − γλ)``
    every step, the first included, as AdamW (optax: ``add_decayed_weights`` between ADOPT and the
    learning rate; equal up to rounding).

    Args:
        params: iterable of ExTensors or of parameter-group dicts.
        lr: learning rate γ (optax's ``learning_rate``; default 1e-3).
        betas: (β1, β2), each in [0, 1) (optax's ``b1``, ``b2``; default (0.9, 0.9999)).
        eps: ε, the floor of √v (default 1e-6).
        weight_decay: λ (default 0).
        decoupled_weight_decay: decay the weights directly instead of adding λθ to g.
        clip_exp: the clip value after k completed steps is ``k ** clip_exp`` (default 0.25,
            optax's default ``clip_value_fn``; timm's ``clip_exp``), or None for no clipping
            (optax's ``use_clipping=False``). A number rather than optax's function, so that the
            group stays a plain value that state dicts and checkpoints hold. Keyword-only, as
            the following.
        nesterov: Nesterov momentum (optax's ``nesterov``).
        maximize: maximise the objective instead.

    State per parameter: ``step``, ``exp_avg`` (optax's ``mu``), ``exp_avg_sq`` (``nu``), in the
    parameter's dtype (optax's ``mu_dtype`` is not offered).

    Scalars such as 1 − β2 are computed in double precision and cast once, as optax does with
    ``jax_enable_x64`` (and as torch does). In JAX's default 32-bit mode optax computes 1 − β2
    in float32 from the rounded β2 instead, 1.7e-4 too large relatively for β2 = 0.9999.
    """

    fuses_grad_scale = True  # a deferred clip rides on the sign (`Run.gradient_sign`)
    hyperparameters: ClassVar[Rules] = (
        *ADAM_CHECKS,
        Flag("decoupled_weight_decay"),
        Flag("nesterov"),
        Flag("maximize"),
    )
    buffers = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.9999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        *,
        clip_exp: float | None = 0.25,
        nesterov: bool = False,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "clip_exp": clip_exp,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _validate_group(self, group: Mapping[str, Any]) -> None:
        super()._validate_group(group)
        clip_exp = group["clip_exp"]
        if clip_exp is not None:
            require_real(clip_exp, "clip_exp")
            if not clip_exp >= 0:
                raise ValueError(f"Invalid clip_exp value: {clip_exp} (expected clip_exp >= 0 or None)")

    def _update(self, group: ParamGroup, run: Run) -> None:
        lr = float(group["lr"])
        weight_decay = float(group["weight_decay"])
        decoupled = bool(group["decoupled_weight_decay"])
        completed = int(run.step) - 1  # optax's count: steps completed before this one
        first = completed == 0
        beta1 = 1.0 if first else float(group["betas"][0])
        beta2 = 0.0 if first else float(group["betas"][1])
        clip_exp = group["clip_exp"]
        clip = np.inf if clip_exp is None else float(completed) ** float(clip_exp)
        adopt_kernel(
            run.param,
            run.grad,
            run.buffer("exp_avg"),
            run.buffer("exp_avg_sq"),
            run.gradient_sign(group["maximize"]),
            run.scalar(1 - lr * weight_decay if decoupled else 1.0),
            run.scalar(0.0 if decoupled else weight_decay),
            run.scalar(beta1),
            run.scalar(1 - beta1),  # in double, then cast: optax under jax_enable_x64 (see the class)
            run.scalar(beta2),
            run.scalar(1 - beta2),
            run.scalar(group["eps"]),
            run.scalar(clip),
            run.scalar(-lr),
            bool(group["nesterov"]),
        )
