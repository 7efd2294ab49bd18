"""LARS: layer-wise adaptive rate scaling for large-batch training.

You, Gitman & Ginsburg, "Large Batch Training of Convolutional Networks" (arXiv:1708.03888,
2017). Each parameter tensor's update is rescaled by a *trust ratio* comparing the norm of its
weights with the norm of its gradient; the rest is SGD with momentum, so LARS runs SGD's
kernel with one scale per tensor. The per-tensor norms come from segment reductions over the
flat buffer (`Run.tensor_sums_of_squares`: one pass over weights and gradients), not from a
loop over tensors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np
from numba import njit

from extensor.core.tensor import Array, ExTensor
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Run, require_bool, require_real
from extensor.training.optimizers.sgd import SGD, momentum_sgd, validate_momentum

__all__ = ["LARS", "exclude_from_adaptation"]


class LARS(SGD):
    """LARS (You, Gitman & Ginsburg, 2017): SGD with momentum and a per-tensor trust ratio.

    For each parameter tensor w with gradient g::

        r = η ‖w‖ / (‖g‖ + λ ‖w‖ + ε)   if η > 0 and ‖w‖ > 0 and ‖g‖ > 0, else 1
        r = min(r / γ, 1)                if trust_clip (LARC) and the norms are non-zero
        d = (g + λ w) · r
        b = d on the first step, else μ b + (1 − τ) d
        d = d + μ b if nesterov else b
        w = w − γ d

    (trust_coefficient η, weight_decay λ, eps ε, lr γ, momentum μ, dampening τ.) The
    adaptation is always on, also with the default λ = 0; with η = 0 LARS is exactly
    `torch.optim.SGD` with the same momentum, dampening, nesterov and weight decay.

    Large-batch recipes exclude biases and normalisation weights (1-D tensors) from both the
    adaptation and the decay: build the groups with `exclude_from_adaptation`, or set
    ``lars_adaptation=False`` (and ``weight_decay=0``) in a parameter group yourself::

        optimizer = LARS(exclude_from_adaptation(model.parameters()), lr=0.1, weight_decay=1e-4)

    Args:
        params: iterable of ExTensors or of parameter-group dicts.
        lr: learning rate γ (required).
        momentum: μ (default 0.9).
        weight_decay: λ (default 0).
        trust_coefficient: η (default 0.001).
        nesterov: Nesterov momentum (keyword-only; needs μ > 0 and τ = 0).
        dampening: τ (keyword-only, default 0).
        eps: ε in the trust ratio's denominator (keyword-only, default 0).
        trust_clip: clip the ratio LARC-style, ``min(r / γ, 1)`` (keyword-only).

    Group option ``lars_adaptation`` (default True): False makes the group plain SGD (r = 1).
    State per parameter: ``momentum_buffer`` once stepped with μ ≠ 0.
    """

    uses_tensor_norms: ClassVar[bool] = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
        *,
        nesterov: bool = False,
        dampening: float = 0.0,
        eps: float = 0.0,
        trust_clip: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "trust_coefficient": trust_coefficient,
            "eps": eps,
            "trust_clip": trust_clip,
            "lars_adaptation": True,
        }
        Optimizer.__init__(self, params, defaults)  # SGD's constructor has other defaults

    def _validate_group(self, group: Mapping[str, Any]) -> None:
        validate_momentum(group)
        trust_coefficient = require_real(group["trust_coefficient"], "trust_coefficient")
        eps = require_real(group["eps"], "eps")
        require_bool(group["trust_clip"], "trust_clip")
        require_bool(group["lars_adaptation"], "lars_adaptation")
        if not trust_coefficient >= 0.0:
            raise ValueError(
                f"Invalid trust_coefficient value: {trust_coefficient} (expected trust_coefficient >= 0)"
            )
        if not eps >= 0.0:
            raise ValueError(f"Invalid epsilon value: {eps} (expected eps >= 0)")

    def _update(self, group: ParamGroup, run: Run) -> None:
        offsets = run.offsets
        count = offsets.size - 1
        trust_coefficient = float(group["trust_coefficient"])
        ratio = np.ones(count, dtype=run.dtype)
        if group["lars_adaptation"] and trust_coefficient > 0:
            _trust_ratios(
                run.tensor_sums_of_squares(),
                trust_coefficient,
                float(group["weight_decay"]),
                float(group["eps"]),
                float(group["lr"]),
                bool(group["trust_clip"]),
                ratio,
            )
        momentum_sgd(group, run, offsets, ratio)


@njit(cache=True)
def _trust_ratios(
    sums: Array,
    trust_coefficient: float,
    weight_decay: float,
    eps: float,
    lr: float,
    trust_clip: bool,
    out: Array,
) -> None:
    """out[k] = the trust ratio of tensor k from its sums of squares ``sums[k] = (‖w‖², ‖g‖²)``.

    ``r = η ‖w‖ / (‖g‖ + λ ‖w‖ + ε)`` in float64 when both norms are non-zero (else `out[k]` is
    left as it is, 1), then ``min(r / γ, 1)`` with `trust_clip` and γ > 0, rounded once to the
    dtype of `out`. One compiled loop: a dozen NumPy calls over the per-tensor arrays cost tens
    of microseconds per step over many small tensors.
    """
    for k in range(out.size):
        weight_norm = np.sqrt(sums[k, 0])
        grad_norm = np.sqrt(sums[k, 1])
        if weight_norm > 0 and grad_norm > 0:
            ratio = trust_coefficient * weight_norm / (grad_norm + weight_decay * weight_norm + eps)
            if trust_clip and lr > 0:
                ratio = ratio / lr
                if ratio > 1.0:  # a NaN ratio stays NaN, as np.minimum(ratio, 1) keeps it
                    ratio = 1.0
            out[k] = ratio


def exclude_from_adaptation(params: Iterable[ExTensor], weight_decay: float = 0.0) -> list[ParamGroup]:
    """Split parameters into two LARS groups: adapted tensors, and 1-D tensors that are not.

    Biases and normalisation weights (tensors with at most one dimension) go to a group with
    ``lars_adaptation=False`` and ``weight_decay`` (0 by default), as large-batch recipes do;
    the others keep the optimizer's defaults. Empty groups are left out.
    """
    params = list(params)
    for index, param in enumerate(params):
        if not isinstance(param, ExTensor):
            raise TypeError(
                f"exclude_from_adaptation expects ExTensors, parameter {index} is a {type(param).__name__}"
            )
    adapted = [p for p in params if p.ndim > 1]
    plain = [p for p in params if p.ndim <= 1]
    groups: list[ParamGroup] = []
    if adapted:
        groups.append({"params": adapted})
    if plain:
        groups.append({"params": plain, "lars_adaptation": False, "weight_decay": weight_decay})
    return groups
