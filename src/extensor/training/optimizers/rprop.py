"""Rprop: resilient backpropagation, a per-weight step size adapted from the gradient's sign alone.

Riedmiller & Braun, "A Direct Adaptive Method for Faster Backpropagation Learning: The RPROP
Algorithm" (IEEE ICNN 1993), in the variant without weight backtracking that torch.optim
implements (iRprop⁻ of Igel & Hüsken, "Improving the Rprop Learning Algorithm", NC 2000): after
a sign change the step size shrinks, the weight is left alone and the stored gradient is zeroed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from numba import njit, prange

from extensor.core.tensor import Array
from extensor.training.flat import sized_kernel
from extensor.training.optimizers.declare import Check, Flag, Numbers
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Run

__all__ = ["Rprop", "rprop_kernel"]


@njit(cache=True, inline="always")
def _rprop_element(
    i: int,
    param: Array,
    grad: Array,
    prev: Array,
    step_size: Array,
    sign: Any,
    etaminus: Any,
    etaplus: Any,
    one: Any,
    zero: Any,
    smallest: Any,
    largest: Any,
    lr: Any,
    first: bool,
) -> None:
    g = sign * grad[i]
    product = g * prev[i]
    # torch.sign of the product (NaN gives 0), then > 0 → η+, < 0 → η-, == 0 → 1
    factor = etaplus if product > 0 else (etaminus if product < 0 else one)
    s = (lr if first else step_size[i]) * factor
    if s < smallest:  # clamp: max with the lower bound, then min with the upper one; NaN stays NaN
        s = smallest
    if s > largest:
        s = largest
    step_size[i] = s
    if factor == etaminus:  # a sign change: no step, and no sign to compare with next time
        g = zero
    direction = one if g > 0 else (-one if g < 0 else zero)
    param[i] = param[i] - direction * s
    prev[i] = g


@sized_kernel(fastmath=False)
def rprop_kernel(
    param: Array,
    grad: Array,
    prev: Array,
    step_size: Array,
    sign: Any,
    etaminus: Any,
    etaplus: Any,
    smallest: Any,
    largest: Any,
    lr: Any,
    first: bool,
) -> None:
    """One Rprop step over a flat run of parameters, in place, in the parameters' dtype.

    Per element, as torch.optim.Rprop (``sign = -1`` to maximise; on a parameter's first step
    the step size starts at ``lr``, the previous gradient at 0)::

        g = sign · g
        f = η+ if g · g_prev > 0, η- if g · g_prev < 0, else 1    (also 1 for a NaN product)
        Δ = clamp(Δ · f, Δmin, Δmax)
        g = 0 where f = η-                                          (sign change: skip)
        p = p - sign(g) · Δ
        g_prev = g
    """
    one = param.dtype.type(1)
    zero = param.dtype.type(0)
    if first:
        for i in prange(param.size):
            _rprop_element(
                i, param, grad, prev, step_size, sign, etaminus, etaplus, one, zero, smallest, largest, lr,
                True,
            )  # fmt: skip
    else:
        for i in prange(param.size):
            _rprop_element(
                i, param, grad, prev, step_size, sign, etaminus, etaplus, one, zero, smallest, largest, lr,
                False,
            )  # fmt: skip


class Rprop(Optimizer):
    """Rprop (Riedmiller & Braun, 1993), identical to `torch.optim.Rprop`.

    With ``g = ∇f(θ)`` (negated when `maximize`) and per-weight step sizes Δ (``lr`` at a
    parameter's first step) and previous gradients g' (0 at first)::

        f = η+ if g g' > 0,  η− if g g' < 0,  else 1
        Δ ← clamp(Δ f, Δmin, Δmax)
        g ← 0 where g g' < 0
        θ ← θ − sign(g) Δ
        g' ← g

    Only the gradient's sign is used, and the learning rate only to initialise Δ: changing
    ``lr`` later (a scheduler) has no effect on parameters already stepped, as in torch.

    Args:
        params: iterable of ExTensors or of parameter-group dicts.
        lr: the initial step size (default 0.01).
        etas: (η−, η+), the multiplicative decrease and increase factors, 0 < η− < 1 < η+
            (default (0.5, 1.2)).
        step_sizes: (Δmin, Δmax), the bounds of the step size (default (1e-6, 50)).
        maximize: maximise the objective instead (keyword-only).

    State per parameter: ``step``, ``prev`` (g'), ``step_size`` (Δ).
    """

    fuses_grad_scale = True  # a deferred clip rides on the sign (`Run.gradient_sign`)
    hyperparameters = (
        Check("lr >= 0", "learning rate"),
        Numbers("etas", 2),
        Check("0 < etas[0] < 1 < etas[1]", "eta values"),
        Numbers("step_sizes", 2),
        Flag("maximize"),
    )
    buffers = ("prev", "step_size")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-6, 50),
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {"lr": lr, "etas": etas, "step_sizes": step_sizes, "maximize": maximize}
        super().__init__(params, defaults)

    def _update(self, group: ParamGroup, run: Run) -> None:
        etaminus, etaplus = group["etas"]
        smallest, largest = group["step_sizes"]
        rprop_kernel(
            run.param,
            run.grad,
            run.buffer("prev"),
            run.buffer("step_size"),
            run.gradient_sign(group["maximize"]),
            run.scalar(etaminus),
            run.scalar(etaplus),
            run.scalar(smallest),
            run.scalar(largest),
            run.scalar(group["lr"]),
            run.step == 1,
        )
