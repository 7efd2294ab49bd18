"""Schedule-Free AdamW and SGD: no learning-rate schedule, an online average in its place.

Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, "The Road Less Scheduled" (NeurIPS 2024).
Identical to the authors' `schedulefree` package 1.4.1 (`AdamWScheduleFree`, `SGDScheduleFree`).

Three sequences: the base iterate z takes the (adaptive) gradient steps, x is a weighted average
of the z's (the point to evaluate), and the gradient is taken at their interpolation y::

    y = (1 - β) z + β x
    z ← z - γ ĝ(y)
    x ← (1 - c) x + c z,      c = w_k / Σ_{i≤k} w_i,   w_k = (k + 1)^r · γ_max^p

The parameters hold y while training and x while evaluating (`train()` / `eval()` switch them,
given z); x is never stored. One kernel per run does the whole step: the second moment, the
normalised gradient, y's update expressed through y and z alone, and z's step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numba import njit, prange

from extensor.core.tensor import Array
from extensor.training.flat import sized_kernel
from extensor.training.optimizers.declare import Check, Flag, Integer, Numbers, Real
from extensor.training.optimizers.elementwise import lerp
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Run

__all__ = ["ScheduleFreeAdamW", "ScheduleFreeSGD", "schedule_free_kernel"]

#: The package's message when `step` is called in eval mode.
NOT_IN_TRAIN_MODE = (
    "Optimizer was not in train mode when step is called. "
    "Please insert .train() and .eval() calls on the optimizer. See documentation for details."
)

#: The group-level state the package keeps in each param group (checked on construction and load).
GROUP_STATE = (
    Integer("k", minimum=0),
    Flag("train_mode"),
    Real("weight_sum"),
    Real("lr_max"),
    Real("scheduled_lr"),
)
#: The averaging options both optimizers share.
AVERAGING = (Integer("warmup_steps", minimum=0), Real("r"), Real("weight_lr_power"))


@njit(cache=True, inline="always")
def _element(
    i: int, y: Array, grad: Array, z: Array, exp_avg_sq: Array, fresh: bool, adaptive: bool, scale: Any,
    beta2: Any, one_minus_beta2: Any, bias_correction2: Any, eps: Any, decay: Any,
    ckp1: Any, one_minus_ckp1: Any, y_step: Any, neg_lr: Any,
) -> None:  # fmt: skip
    if fresh:
        z[i] = y[i]  # the package's state["z"] = p.clone() on a parameter's first step
    p = y[i]
    g = grad[i] * scale  # a deferred clip (`Run.grad_scale`): rounds as the eager scaling did
    if adaptive:
        v = exp_avg_sq[i] * beta2 + one_minus_beta2 * g * g
        exp_avg_sq[i] = v
        g = g / (np.sqrt(v / bias_correction2) + eps)
    if decay != 0:  # the package adds no term at all without decay (0 · inf would be NaN)
        g = g + decay * p
    zi = z[i]
    y[i] = lerp(p, zi, ckp1, one_minus_ckp1) + y_step * g
    z[i] = zi + neg_lr * g


@sized_kernel(fastmath=False)
def schedule_free_kernel(
    y: Array, grad: Array, z: Array, exp_avg_sq: Array, fresh: bool, scale: Any,
    beta2: Any, one_minus_beta2: Any, bias_correction2: Any, eps: Any, decay: Any,
    ckp1: Any, one_minus_ckp1: Any, y_step: Any, neg_lr: Any,
) -> None:  # fmt: skip
    """One Schedule-Free step over a flat run, in place: AdamW's, or SGD's when `exp_avg_sq` is empty.

    Per element, in the package's order of operations (``y_step = γ(β(1 - c) - 1)``)::

        g = g · scale                             (a deferred clip; 1 without)
        z = y                                     (on the parameter's first step, `fresh`)
        v = β2 · v + (1 - β2) · g · g             (AdamW only)
        g = g / (sqrt(v / (1 - β2^(k+1))) + ε)    (AdamW only)
        g = g + λ · y                             (weight decay at y, only when λ ≠ 0)
        y = lerp(y, z, c) + y_step · g            (x's average and y's interpolation, x implicit)
        z = z - γ · g
    """
    n = y.size
    if exp_avg_sq.size == 0:
        for i in prange(n):
            _element(
                i, y, grad, z, exp_avg_sq, fresh, False, scale, beta2, one_minus_beta2, bias_correction2, eps,
                decay, ckp1, one_minus_ckp1, y_step, neg_lr,
            )  # fmt: skip
    else:
        for i in prange(n):
            _element(
                i, y, grad, z, exp_avg_sq, fresh, True, scale, beta2, one_minus_beta2, bias_correction2, eps,
                decay, ckp1, one_minus_ckp1, y_step, neg_lr,
            )  # fmt: skip


@njit(cache=True)
def _switch_kernel(param: Array, z: Array, offsets: Array, has_state: Array, weight: Any, rest: Any) -> None:
    """``p = lerp(p, z, weight)`` over the tensors that have state (``1 - weight`` is `rest`)."""
    for t in range(has_state.size):
        if has_state[t]:
            for i in range(offsets[t], offsets[t + 1]):
                param[i] = lerp(param[i], z[i], weight, rest)


class _ScheduleFree(Optimizer):
    """What both Schedule-Free optimizers share: the averaging weights, the modes, the step."""

    step_in_state = False
    #: (γ_k, c, γ_k (β (1 − c) − 1)) of the group being stepped, computed once per group step
    _scalars: tuple[float, float, float]
    fuses_grad_scale = True  # the kernel multiplies each gradient by `Run.grad_scale` as it reads it

    def _momentum(self, group: ParamGroup) -> float:
        """β, the interpolation between z and x."""
        raise NotImplementedError

    def _switch(self, to_train: bool) -> None:
        """Move the parameters of every group not yet in that mode to y (train) or x (eval)."""
        self._check_packed()
        for group, packs in zip(self.param_groups, self._packs, strict=True):
            if bool(group["train_mode"]) == to_train:
                continue
            beta = self._momentum(group)
            weight = 1 - beta if to_train else 1 - 1 / beta
            for pack in packs:
                z = pack.state.get("z")
                if z is not None:
                    scalar = pack.buffer.dtype.type
                    rest = scalar(1) - scalar(weight)
                    _switch_kernel(
                        pack.buffer.data, z, pack.buffer.offsets, pack.steps != 0, scalar(weight), rest
                    )
            group["train_mode"] = to_train

    def train(self) -> None:
        """Put the parameters at y, where gradients are taken (call before training steps)."""
        self._switch(True)

    def eval(self) -> None:
        """Put the parameters at x, the averaged point (call before evaluating or checkpointing)."""
        self._switch(False)

    def step(self, closure: Any = None) -> Any:
        """One Schedule-Free step of every group; RuntimeError unless group 0 is in train mode."""
        if not self.param_groups[0]["train_mode"]:
            raise RuntimeError(NOT_IN_TRAIN_MODE)
        loss = closure() if closure is not None else None
        self._check_packed()
        for group, packs in zip(self.param_groups, self._packs, strict=True):
            k = group["k"]
            warmup_steps = group["warmup_steps"]
            lr = group["lr"] * ((k + 1) / warmup_steps if k < warmup_steps else 1.0)
            group["scheduled_lr"] = lr
            lr_max = group["lr_max"] = max(lr, group["lr_max"])
            weight = ((k + 1) ** group["r"]) * (lr_max ** group["weight_lr_power"])
            weight_sum = group["weight_sum"] = group["weight_sum"] + weight
            ckp1 = weight / weight_sum if weight_sum != 0 else 0  # the package: ZeroDivisionError -> 0
            self._scalars = (lr, ckp1, lr * (self._momentum(group) * (1 - ckp1) - 1))
            for pack in packs:
                self._step_pack(group, pack)
            group["k"] = k + 1
        return loss

    def _run_key(self, steps: Array) -> Array:
        # the algorithm's step count is the group's k; parameters differ only in having state yet
        return np.minimum(steps, np.float32(1))

    def _update(self, group: ParamGroup, run: Run) -> None:
        lr, ckp1, y_step = self._scalars
        beta2 = float(group["betas"][1]) if "betas" in group else 0.0
        schedule_free_kernel(
            run.param,
            run.grad,
            run.state["z"],
            run.buffer("exp_avg_sq"),  # empty for SGD
            run.step == 1,
            run.grad_scale,
            run.scalar(beta2),
            run.scalar(1 - beta2),
            run.scalar(1 - beta2 ** (group["k"] + 1)),
            run.scalar(group.get("eps", 0.0)),
            run.scalar(group["weight_decay"]),
            run.scalar(ckp1),
            run.scalar(1) - run.scalar(ckp1),
            run.scalar(y_step),
            run.scalar(-lr),
        )

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """As `Optimizer.load_state_dict`; the package's state dicts load too (minus its 'foreach')."""
        if isinstance(state_dict, Mapping) and isinstance(state_dict.get("param_groups"), list):
            groups = [
                {key: value for key, value in group.items() if key != "foreach"}
                if isinstance(group, Mapping)
                else group
                for group in state_dict["param_groups"]
            ]
            state_dict = {**state_dict, "param_groups": groups}
        super().load_state_dict(state_dict)


def _defaults(**options: Any) -> dict[str, Any]:
    """`options` and the package's initial group-level state."""
    return {
        **options,
        "k": 0,
        "train_mode": False,
        "weight_sum": 0.0,
        "lr_max": -1.0,
        "scheduled_lr": 0.0,
    }


class ScheduleFreeAdamW(_ScheduleFree):
    """Schedule-Free AdamW (Defazio et al., 2024), identical to `schedulefree.AdamWScheduleFree`.

    At group step k (from 0), with warm-up ``γ_k = γ · min(1, (k + 1) / warmup_steps)``,
    ``γ_max = max_i γ_i``, ``w_k = (k + 1)^r · γ_max^p`` and ``c = w_k / Σ_{i≤k} w_i``::

        v ← β2 v + (1 − β2) g²                       (g taken at y, the parameters)
        ĝ ← g / (√(v / (1 − β2^(k+1))) + ε) + λ y
        y ← (1 − c) y + c z + γ_k (β1 (1 − c) − 1) ĝ
        z ← z − γ_k ĝ

    Call `train()` before training steps (the package starts in eval mode; `step` refuses to run
    otherwise) and `eval()` before evaluating or saving: they set the parameters to y and to
    ``x = (y − (1 − β1) z) / β1``.

    Args:
        params: iterable of ExTensors or of parameter-group dicts.
        lr: learning rate γ (default 0.0025).
        betas: (β1, β2): β1 in (0, 1) interpolates y between z and x, β2 in [0, 1) (default (0.9, 0.999)).
        eps: ε added to the denominator (default 1e-8).
        weight_decay: λ, evaluated at y (default 0).
        warmup_steps: linear warm-up length in steps (default 0).
        r: polynomial weighting power of the average (default 0).
        weight_lr_power: p, the power of γ_max in the averaging weights (default 2).

    State per parameter: ``z``, ``exp_avg_sq``. Per group, in ``param_groups`` as the package keeps
    them: ``k``, ``train_mode``, ``weight_sum``, ``lr_max``, ``scheduled_lr``.
    """

    hyperparameters = (
        Check("lr >= 0", "learning rate"),
        Check("eps >= 0", "epsilon value"),
        Numbers("betas", 2),
        Check("0 < betas[0] < 1", "beta parameter at index 0"),
        Check("0 <= betas[1] < 1", "beta parameter at index 1"),
        Check("weight_decay >= 0", "weight_decay value"),
        *AVERAGING,
        *GROUP_STATE,
    )
    buffers = ("z", "exp_avg_sq")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
    ) -> None:
        defaults = _defaults(
            lr=lr, betas=betas, eps=eps, r=r, warmup_steps=warmup_steps,
            weight_lr_power=weight_lr_power, weight_decay=weight_decay,
        )  # fmt: skip
        super().__init__(params, defaults)

    def _momentum(self, group: ParamGroup) -> float:
        return float(group["betas"][0])


class ScheduleFreeSGD(_ScheduleFree):
    """Schedule-Free SGD (Defazio et al., 2024), identical to `schedulefree.SGDScheduleFree`.

    As `ScheduleFreeAdamW` without the second moment: ``ĝ = g + λ y``, then
    ``y ← (1 − c) y + c z + γ_k (β (1 − c) − 1) ĝ`` and ``z ← z − γ_k ĝ``, β being `momentum`.

    Args:
        params: iterable of ExTensors or of parameter-group dicts.
        lr: learning rate γ (default 1.0).
        momentum: β, in (0, 1) (default 0.9).
        weight_decay: λ, evaluated at y (default 0).
        warmup_steps: linear warm-up length in steps (default 0).
        r: polynomial weighting power of the average (default 0).
        weight_lr_power: p, the power of γ_max in the averaging weights (default 2).

    State per parameter: ``z``. Per group: ``k``, ``train_mode``, ``weight_sum``, ``lr_max``,
    ``scheduled_lr``, as `ScheduleFreeAdamW`.
    """

    hyperparameters = (
        Check("lr >= 0", "learning rate"),
        Check("weight_decay >= 0", "weight_decay value"),
        Check("0 < momentum < 1", "Momentum must be between 0 and 1 exclusive", sentence=True),
        *AVERAGING,
        *GROUP_STATE,
    )
    buffers = ("z",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2,
    ) -> None:
        defaults = _defaults(
            lr=lr, momentum=momentum, r=r, warmup_steps=warmup_steps,
            weight_lr_power=weight_lr_power, weight_decay=weight_decay,
        )  # fmt: skip
        super().__init__(params, defaults)

    def _momentum(self, group: ParamGroup) -> float:
        return float(group["momentum"])
