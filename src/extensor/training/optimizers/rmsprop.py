"""RMSprop: gradient scaled by a running root mean square, optionally centered and with momentum.

Hinton, Srivastava & Swersky, "Neural Networks for Machine Learning", lecture 6e (2012); the
centered variant from Graves, "Generating Sequences With Recurrent Neural Networks" (2013).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from numba import njit, prange

from extensor.core.tensor import Array
from extensor.training.flat import sized_kernel
from extensor.training.optimizers.declare import Check, Flag, State
from extensor.training.optimizers.elementwise import lerp
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Run

__all__ = ["RMSprop", "rmsprop_kernel"]


@njit(cache=True, inline="always")
def _rmsprop_element(
    i: int,
    param: Array,
    grad: Array,
    square_avg: Array,
    grad_avg: Array,
    momentum_buffer: Array,
    sign: Any,
    neg_lr: Any,
    weight_decay: Any,
    alpha: Any,
    one_minus_alpha: Any,
    alpha_complement: Any,
    eps: Any,
    momentum: Any,
    centered: bool,
    use_momentum: bool,
) -> None:
    p = param[i]
    g = sign * grad[i]
    if weight_decay != 0:  # as torch, no term at all without decay: 0 · inf would turn an inf into NaN
        g = g + weight_decay * p
    s = square_avg[i] * alpha + one_minus_alpha * g * g
    square_avg[i] = s
    if centered:
        a = lerp(grad_avg[i], g, one_minus_alpha, alpha_complement)
        grad_avg[i] = a
        d = np.sqrt(s + -a * a) + eps
    else:
        d = np.sqrt(s) + eps
    if use_momentum:
        b = momentum_buffer[i] * momentum + g / d
        momentum_buffer[i] = b
        param[i] = p + neg_lr * b
    else:
        param[i] = p + neg_lr * g / d


@sized_kernel(fastmath=False)
def rmsprop_kernel(
    param: Array,
    grad: Array,
    square_avg: Array,
    grad_avg: Array,
    momentum_buffer: Array,
    sign: Any,
    neg_lr: Any,
    weight_decay: Any,
    alpha: Any,
    one_minus_alpha: Any,
    alpha_complement: Any,
    eps: Any,
    momentum: Any,
) -> None:
    """One RMSprop step over a flat run of parameters, in place, in the parameters' dtype.

    Per element, as torch.optim.RMSprop (``eps`` outside the square root; the momentum
    buffer starts at zero; ``sign = -1`` to maximise)::

        g = sign · g + weight_decay · p                    (the decay term only when it is ≠ 0)
        s = α s + (1 - α) g²
        a = lerp(a, g, 1 - α); d = sqrt(s - a²) + eps     if centered
        d = sqrt(s) + eps                                  otherwise
        b = μ b + g / d; p = p - lr · b                    with momentum
        p = p - lr · g / d                                 otherwise

    Centering is on when `grad_avg` is not empty, momentum when `momentum_buffer` is not;
    each of the four combinations is its own loop, so that it vectorises (the weight-decay
    branch is loop-invariant: LLVM unswitches it or makes it a select).
    ``alpha_complement`` is ``1 - (1 - α)`` in the element dtype (lerp's second formula).
    """
    n = param.size
    centered = grad_avg.size != 0
    use_momentum = momentum_buffer.size != 0
    if centered and use_momentum:
        for i in prange(n):
            _rmsprop_element(
                i, param, grad, square_avg, grad_avg, momentum_buffer, sign, neg_lr, weight_decay, alpha,
                one_minus_alpha, alpha_complement, eps, momentum, True, True,
            )  # fmt: skip
    elif centered:
        for i in prange(n):
            _rmsprop_element(
                i, param, grad, square_avg, grad_avg, momentum_buffer, sign, neg_lr, weight_decay, alpha,
                one_minus_alpha, alpha_complement, eps, momentum, True, False,
            )  # fmt: skip
    elif use_momentum:
        for i in prange(n):
            _rmsprop_element(
                i, param, grad, square_avg, grad_avg, momentum_buffer, sign, neg_lr, weight_decay, alpha,
                one_minus_alpha, alpha_complement, eps, momentum, False, True,
            )  # fmt: skip
    else:
        for i in prange(n):
            _rmsprop_element(
                i, param, grad, square_avg, grad_avg, momentum_buffer, sign, neg_lr, weight_decay, alpha,
                one_minus_alpha, alpha_complement, eps, momentum, False, False,
            )  # fmt: skip


class RMSprop(Optimizer):
    """RMSprop, identical to `torch.optim.RMSprop`.

    With ``g = ∇f(θ)`` (negated when `maximize`)::

        g ← g + λ θ                                   (weight_decay λ)
        s ← α s + (1 − α) g²
        d ← √(s − ḡ²) + ε with ḡ ← α ḡ + (1 − α) g    (centered)
        d ← √s + ε                                     (otherwise)
        b ← μ b + g / d;  θ ← θ − γ b                  (momentum μ > 0, b starts at 0)
        θ ← θ − γ g / d                                (otherwise)

    Args:
        params: iterable of ExTensors or of parameter-group dicts.
        lr: learning rate γ (default 0.01).
        alpha: smoothing constant α (default 0.99).
        eps: ε added outside the square root (default 1e-8).
        momentum: μ (default 0).
        weight_decay: λ (default 0).
        centered: normalise by the estimated variance instead of the raw second moment
            (keyword-only).
        maximize: maximise the objective instead (keyword-only).

    Note the positional order follows extensor's API (..., eps, momentum, weight_decay), not
    torch's (..., eps, weight_decay, momentum). State per parameter: ``step``, ``square_avg``,
    ``momentum_buffer`` (μ > 0), ``grad_avg`` (centered).
    """

    fuses_grad_scale = True  # a deferred clip rides on the sign (`Run.gradient_sign`)
    hyperparameters = (
        Check("lr >= 0", "learning rate"),
        Check("eps >= 0", "epsilon value"),
        Check("momentum >= 0", "momentum value"),
        Check("weight_decay >= 0", "weight_decay value"),
        Check("alpha >= 0", "alpha value"),
        Flag("centered"),
        Flag("maximize"),
    )
    buffers = (
        "square_avg",
        State("momentum_buffer", when="momentum > 0"),
        State("grad_avg", when="centered"),
    )

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        *,
        centered: bool = False,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "alpha": alpha,
            "eps": eps,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "centered": centered,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _update(self, group: ParamGroup, run: Run) -> None:
        alpha = float(group["alpha"])
        one_minus_alpha = run.scalar(1 - alpha)
        rmsprop_kernel(
            run.param,
            run.grad,
            run.buffer("square_avg"),
            run.buffer("grad_avg"),
            run.buffer("momentum_buffer"),
            run.gradient_sign(group["maximize"]),
            run.scalar(-float(group["lr"])),
            run.scalar(group["weight_decay"]),
            run.scalar(alpha),
            one_minus_alpha,
            run.scalar(1) - one_minus_alpha,
            run.scalar(group["eps"]),
            run.scalar(group["momentum"]),
        )
