"""LAMB: Adam's direction with LARS's per-tensor trust ratio.

You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes" (ICLR 2020,
arXiv:1904.00962).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np
from numba import prange

from extensor.core.tensor import Array
from extensor.training.flat import class_bounds, parallel_chunks, segment_sum_squares_pair, sized_kernel
from extensor.training.optimizers.adam import ADAM_CHECKS
from extensor.training.optimizers.declare import Check, Flag, Rules
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Run, Window, _Pack

__all__ = ["LAMB", "lamb_apply_kernel", "lamb_direction_kernel"]


@sized_kernel(fastmath=False)
def lamb_direction_kernel(
    param: Array, grad: Array, exp_avg: Array, exp_avg_sq: Array, update: Array, sign: Any,
    beta1: Any, one_minus_beta1: Any, beta2: Any, one_minus_beta2: Any,
    bias_correction1: Any, bias_correction2: Any, eps: Any, eps_root: Any, weight_decay: Any,
) -> None:  # fmt: skip
    """Update the moments and write the decayed Adam direction u of every element (optax's order)."""
    for i in prange(param.size):
        g = sign * grad[i]
        m = one_minus_beta1 * g + beta1 * exp_avg[i]
        v = one_minus_beta2 * (g * g) + beta2 * exp_avg_sq[i]
        exp_avg[i] = m
        exp_avg_sq[i] = v
        direction = (m / bias_correction1) / (np.sqrt(v / bias_correction2 + eps_root) + eps)
        if weight_decay != 0:  # as optax, no term without decay: 0 · inf would turn an inf into NaN
            direction = direction + weight_decay * param[i]
        update[i] = direction


@sized_kernel(fastmath=False)
def lamb_apply_kernel(param: Array, update: Array, offsets: Array, ratio: Array, bounds: Array) -> None:
    """``θ ← θ + ratio[k] · u`` over each tensor k (`ratio` holds −γ·trust), in parallel chunks."""
    for chunk in prange(bounds.size - 1):
        lo, hi = bounds[chunk], bounds[chunk + 1]
        k = np.searchsorted(offsets, lo, side="right") - 1
        i = lo
        while i < hi:
            stop = min(offsets[k + 1], hi)
            scale = ratio[k]
            for j in range(i, stop):
                param[j] = param[j] + update[j] * scale
            i = stop
            k += 1


class LAMB(Optimizer):
    """LAMB (You et al., 2020), identical to ``optax.lamb`` (optax 0.2.8).

    With ``g = ∇f(θ)`` (negated when `maximize`), at step t, per tensor::

        m ← β1 m + (1 − β1) g;   v ← β2 v + (1 − β2) g²
        u = (m / (1 − β1^t)) / (√(v / (1 − β2^t) + ε_root) + ε) + λ θ
        r = ‖θ‖ / ‖u‖, or 1 when either norm is 0           (the trust ratio of the whole tensor)
        θ ← θ − γ r u

    timm's ``Lamb`` differs: it clips the global gradient norm first (``max_grad_norm=1``), can
    skip bias correction, and clamps r to ``trust_clip``; optax, the reference here, does none.
    Biases and normalisation weights are usually given their own group with ``weight_decay=0``
    (optax's ``mask``).

    Args:
        params: iterable of ExTensors or of parameter-group dicts.
        lr: learning rate γ (default 1e-3).
        betas: (β1, β2), each in [0, 1) (optax's ``b1``, ``b2``; default (0.9, 0.999)).
        eps: ε outside the square root (default 1e-6); eps_root: ε_root inside it (default 0).
        weight_decay: λ, added to the direction before the trust ratio (default 0).
        maximize: maximise the objective instead (keyword-only).

    State per parameter: ``step``, ``exp_avg`` (optax's ``mu``), ``exp_avg_sq`` (``nu``).
    One step reads and writes each element in three parallel passes (direction, norms, update),
    48 bytes per float32 parameter; it cannot run sharded (the norms need whole tensors).
    """

    fuses_grad_scale = True  # a deferred clip rides on the sign (`Run.gradient_sign`)
    hyperparameters: ClassVar[Rules] = (
        *ADAM_CHECKS,
        Check("eps_root >= 0", "eps_root value"),
        Flag("maximize"),
    )
    buffers = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        eps_root: float = 0.0,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "eps_root": eps_root,
            "maximize": maximize,
        }  # fmt: skip
        self._scratch: dict[np.dtype[Any], Array] = {}
        super().__init__(params, defaults)

    def _step_pack(
        self, group: ParamGroup, pack: _Pack, window: Window | None = None, sums: Array | None = None
    ) -> None:
        if window is not None:
            raise NotImplementedError("LAMB needs whole tensors for its trust ratios; it cannot be sharded")
        super()._step_pack(group, pack)

    def _update(self, group: ParamGroup, run: Run) -> None:
        lr, (beta1, beta2) = float(group["lr"]), (float(b) for b in group["betas"])
        s = run.scalar  # scalars in double precision, cast once to the run's dtype
        scratch = self._scratch.get(run.dtype)
        if scratch is None or scratch.size < run.param.size:
            scratch = self._scratch[run.dtype] = np.empty(run.param.size, dtype=run.dtype)
        update = scratch[: run.param.size]
        lamb_direction_kernel(
            run.param, run.grad, run.buffer("exp_avg"), run.buffer("exp_avg_sq"), update,
            run.gradient_sign(group["maximize"]), s(beta1), s(1 - beta1), s(beta2), s(1 - beta2),
            s(1 - beta1**run.step), s(1 - beta2**run.step), s(group["eps"]), s(group["eps_root"]),
            s(group["weight_decay"]),
        )  # fmt: skip
        offsets = run.offsets
        norms = np.sqrt(segment_sum_squares_pair(run.param, update, offsets))
        with np.errstate(divide="ignore", invalid="ignore"):
            trust = norms[:, 0] / norms[:, 1]
        trust = np.where((norms[:, 0] == 0) | (norms[:, 1] == 0), 1.0, trust)
        ratio = (trust.astype(run.dtype) * s(-lr)).astype(run.dtype)  # optax: (u · r) · (−γ)
        everything = np.ones(offsets.size - 1, dtype=np.bool_)
        bounds = class_bounds(offsets, everything, False, parallel_chunks(run.param.size))
        lamb_apply_kernel(run.param, update, offsets, ratio, bounds)
