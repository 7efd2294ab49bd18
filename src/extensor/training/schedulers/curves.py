"""Learning-rate (and momentum) schedules as pure functions of the step.

Each function returns the value a PyTorch 2.13 scheduler of the same family holds after `step`
calls of ``scheduler.step()`` (``last_epoch == step``), computed from the step alone — the closed
form. No optimizer is needed, so the CLI can tabulate or plot a schedule directly; `CURVES` maps
each scheduler's class name to its curve.

The stateful schedulers in this package use these very functions wherever torch itself computes
from the step (OneCycleLR, CyclicLR, CosineAnnealingWarmRestarts), so the two agree exactly
there. Where torch updates the rate recursively from the previous one (StepLR, CosineAnnealingLR,
...), the recursion and the closed form agree to within floating-point rounding (about 1e-15
relative after a thousand steps).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypedDict

from extensor.training.schedulers._checks import require_integer, require_real

__all__ = [
    "CURVES",
    "OneCyclePhase",
    "anneal",
    "constant_lr",
    "cosine_annealing_lr",
    "cosine_annealing_warm_restarts_lr",
    "cyclic_lr",
    "cyclic_momentum",
    "cyclic_position",
    "cyclic_scale_function",
    "exponential_lr",
    "linear_lr",
    "multistep_lr",
    "one_cycle_lr",
    "one_cycle_momentum",
    "one_cycle_phases",
    "one_cycle_position",
    "polynomial_lr",
    "step_lr",
    "warm_restart_position",
    "warm_restart_value",
]


def _step(step: object) -> int:
    return require_integer("step", step, minimum=0)


# ------------------------------------------------------------------------------ decays
def step_lr(step: int, base_lr: float, step_size: int, gamma: float = 0.1) -> float:
    """StepLR: ``base_lr * gamma ** (step // step_size)``."""
    step = _step(step)
    step_size = require_integer("step_size", step_size, minimum=1)
    return base_lr * gamma ** (step // step_size)


def multistep_lr(step: int, base_lr: float, milestones: Iterable[int], gamma: float = 0.1) -> float:
    """MultiStepLR: ``base_lr * gamma ** (number of milestones <= step)`` (repeats count repeatedly)."""
    step = _step(step)
    ordered = sorted(require_integer("milestone", m) for m in milestones)
    return base_lr * gamma ** bisect_right(ordered, step)


def exponential_lr(step: int, base_lr: float, gamma: float) -> float:
    """ExponentialLR: ``base_lr * gamma ** step``."""
    return base_lr * gamma ** _step(step)


def constant_lr(step: int, base_lr: float, factor: float = 1.0 / 3, total_iters: int = 5) -> float:
    """ConstantLR: ``base_lr * factor`` before `total_iters`, ``base_lr`` from then on."""
    step = _step(step)
    return base_lr * (factor + (step >= total_iters) * (1 - factor))


def linear_lr(
    step: int, base_lr: float, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5
) -> float:
    """LinearLR: the factor goes linearly from `start_factor` to `end_factor` over `total_iters` steps.

    ``base_lr * (start + (end - start) * min(total_iters, step) / total_iters)``; with
    ``total_iters == 0`` the factor stays at `start_factor`, as torch's stepped scheduler does.
    """
    step = _step(step)
    if total_iters == 0:
        return base_lr * start_factor
    return base_lr * (start_factor + (end_factor - start_factor) * min(total_iters, step) / total_iters)


def polynomial_lr(step: int, base_lr: float, total_iters: int = 5, power: float = 1.0) -> float:
    """PolynomialLR: ``base_lr * (1 - min(total_iters, step) / total_iters) ** power``.

    With ``total_iters == 0`` the rate stays at `base_lr`, as torch's stepped scheduler does.
    """
    step = _step(step)
    if total_iters == 0:
        return base_lr
    return base_lr * (1.0 - min(total_iters, step) / total_iters) ** power


# ------------------------------------------------------------------------------ cosine
def cosine_annealing_lr(step: int, base_lr: float, T_max: float, eta_min: float = 0.0) -> float:
    """CosineAnnealingLR (SGDR without restarts; Loshchilov & Hutter, 2017, arXiv:1608.03983).

    ``eta_min + (base_lr - eta_min) * (1 + cos(pi * step / T_max)) / 2`` — past `T_max` the
    cosine keeps going (the rate climbs back), exactly as torch's recursive form does.
    """
    step = _step(step)
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * step / T_max)) / 2


def warm_restart_position(step: int, T_0: int, T_mult: int = 1) -> tuple[int, int]:
    """``(T_cur, T_i)`` of CosineAnnealingWarmRestarts after `step` steps, in exact integer arithmetic.

    Period ``i`` lasts ``T_0 * T_mult ** i`` steps; `T_cur` counts the steps since the last restart.
    """
    step = _step(step)
    if T_mult == 1:
        return step % T_0, T_0
    period, position = T_0, step
    while position >= period:
        position -= period
        period *= T_mult
    return position, period


def warm_restart_value(base_lr: float, eta_min: float, T_cur: float, T_i: float) -> float:
    """``eta_min + (base_lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2`` (SGDR's annealing)."""
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * T_cur / T_i)) / 2


def cosine_annealing_warm_restarts_lr(
    step: int, base_lr: float, T_0: int, T_mult: int = 1, eta_min: float = 0.0
) -> float:
    """CosineAnnealingWarmRestarts (SGDR, Loshchilov & Hutter, 2017): cosine annealing restarted
    after ``T_0``, ``T_0 * T_mult``, ``T_0 * T_mult**2``, ... steps."""
    T_0 = require_integer("T_0", T_0, minimum=1)
    T_mult = require_integer("T_mult", T_mult, minimum=1)
    T_cur, T_i = warm_restart_position(step, T_0, T_mult)
    return warm_restart_value(base_lr, eta_min, T_cur, T_i)


# ------------------------------------------------------------------------------ one cycle
class OneCyclePhase(TypedDict):
    """One phase of the 1cycle policy: annealing from the ``start_*`` anchors to the ``end_*`` ones
    until step `end_step`. The anchors name param-group keys (``initial_lr``, ``max_lr``, ...)."""

    end_step: float
    start_lr: str
    end_lr: str
    start_momentum: str
    end_momentum: str


def one_cycle_phases(total_steps: int, pct_start: float, three_phase: bool) -> list[OneCyclePhase]:
    """The phases of OneCycleLR (torch's layout, so its state dicts read the same).

    Two phases: warm up from ``initial_lr`` to ``max_lr`` for ``pct_start`` of the steps (momentum
    from max to base), then anneal to ``min_lr`` (momentum back to max). Three phases (fastai's
    original): up, back down to ``initial_lr`` symmetrically, then annihilate to ``min_lr``.
    """
    warmup_end = float(pct_start * total_steps) - 1
    if three_phase:
        return [
            OneCyclePhase(
                end_step=warmup_end,
                start_lr="initial_lr",
                end_lr="max_lr",
                start_momentum="max_momentum",
                end_momentum="base_momentum",
            ),
            OneCyclePhase(
                end_step=float(2 * pct_start * total_steps) - 2,
                start_lr="max_lr",
                end_lr="initial_lr",
                start_momentum="base_momentum",
                end_momentum="max_momentum",
            ),
            OneCyclePhase(
                end_step=total_steps - 1,
                start_lr="initial_lr",
                end_lr="min_lr",
                start_momentum="max_momentum",
                end_momentum="max_momentum",
            ),
        ]
    return [
        OneCyclePhase(
            end_step=warmup_end,
            start_lr="initial_lr",
            end_lr="max_lr",
            start_momentum="max_momentum",
            end_momentum="base_momentum",
        ),
        OneCyclePhase(
            end_step=total_steps - 1,
            start_lr="max_lr",
            end_lr="min_lr",
            start_momentum="base_momentum",
            end_momentum="max_momentum",
        ),
    ]


def one_cycle_position(step: float, phases: list[OneCyclePhase]) -> tuple[OneCyclePhase, float]:
    """The phase `step` falls in and the fraction of that phase done (``pct``, 0 at its start).

    A step belongs to the first phase whose ``end_step`` it does not exceed (the last phase takes
    everything after). Raises ValueError when that phase is empty (it ends where it starts), which
    happens when ``pct_start * total_steps`` is 1, or when ``pct_start`` leaves the last phase empty.
    """
    start = 0.0
    last = len(phases) - 1
    for index, phase in enumerate(phases):
        end = phase["end_step"]
        if step <= end or index == last:
            if end == start:
                raise ValueError(
                    f"OneCycleLR phase {index} is empty (it ends at step {end}, where it starts), so "
                    f"step {step} has no value: choose pct_start so that every phase spans at least "
                    "one step"
                )
            return phase, (step - start) / (end - start)
        start = end
    raise AssertionError("unreachable: the last phase takes every step")


def anneal(strategy: str, start: float, end: float, pct: float) -> float:
    """Interpolate from `start` (pct=0) to `end` (pct=1): ``"cos"`` (half a cosine) or ``"linear"``."""
    if strategy == "cos":
        cos_out = math.cos(math.pi * pct) + 1
        return end + (start - end) / 2.0 * cos_out
    if strategy == "linear":
        return (end - start) * pct + start
    raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', got {strategy!r}")


def _one_cycle_check(step: object, total_steps: object) -> tuple[int, int]:
    total = require_integer("total_steps", total_steps, minimum=1)
    position = _step(step)
    if position > total:
        raise ValueError(f"Tried to step {position} times. The specified number of total steps is {total}")
    return position, total


def one_cycle_lr(
    step: int,
    max_lr: float,
    total_steps: int,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> float:
    """OneCycleLR's learning rate (the 1cycle policy; Smith & Topin, 2017, arXiv:1708.07120).

    Starts at ``max_lr / div_factor``, rises to `max_lr`, ends at
    ``max_lr / div_factor / final_div_factor``. Defined for ``0 <= step <= total_steps``.
    """
    step, total = _one_cycle_check(step, total_steps)
    initial_lr = max_lr / div_factor
    anchors = {"initial_lr": initial_lr, "max_lr": max_lr, "min_lr": initial_lr / final_div_factor}
    phase, pct = one_cycle_position(step, one_cycle_phases(total, pct_start, three_phase))
    return anneal(anneal_strategy, anchors[phase["start_lr"]], anchors[phase["end_lr"]], pct)


def one_cycle_momentum(
    step: int,
    total_steps: int,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    three_phase: bool = False,
) -> float:
    """OneCycleLR's momentum (or Adam's beta1): it moves inversely to the learning rate, between
    `max_momentum` and `base_momentum`."""
    step, total = _one_cycle_check(step, total_steps)
    anchors = {"base_momentum": base_momentum, "max_momentum": max_momentum}
    phase, pct = one_cycle_position(step, one_cycle_phases(total, pct_start, three_phase))
    return anneal(anneal_strategy, anchors[phase["start_momentum"]], anchors[phase["end_momentum"]], pct)


# ------------------------------------------------------------------------------ cyclic
def cyclic_position(step: float, total_size: float, step_ratio: float) -> tuple[int, float]:
    """``(cycle, scale_factor)`` of CyclicLR at `step`: the 1-based cycle number and how far up the
    triangle the rate is (0 at the base, 1 at the peak)."""
    cycle = math.floor(1 + step / total_size)
    x = 1.0 + step / total_size - cycle
    if x <= step_ratio:
        return cycle, x / step_ratio
    return cycle, (x - 1) / (step_ratio - 1)


def cyclic_scale_function(
    mode: str, gamma: float, scale_fn: Callable[[float], float] | None, scale_mode: str
) -> tuple[Callable[[float], float], str]:
    """The amplitude scaling of CyclicLR (Smith, 2017, arXiv:1506.01186) and what it is a function of.

    ``triangular``: 1 (per cycle); ``triangular2``: halved every cycle; ``exp_range``:
    ``gamma ** iteration``. A custom `scale_fn` overrides `mode` and uses `scale_mode`.
    """
    if scale_fn is not None:
        return scale_fn, scale_mode
    if mode == "triangular":
        return (lambda x: 1.0), "cycle"
    if mode == "triangular2":
        return (lambda x: 1 / (2.0 ** (x - 1))), "cycle"
    if mode == "exp_range":
        return (lambda x: gamma**x), "iterations"
    raise ValueError(
        f"mode must be 'triangular', 'triangular2' or 'exp_range' (or pass scale_fn), got {mode!r}"
    )


def _cyclic_setup(
    step: object,
    step_size_up: float,
    step_size_down: float | None,
    mode: str,
    gamma: float,
    scale_fn: Callable[[float], float] | None,
    scale_mode: str,
) -> tuple[int, float, float]:
    """The cycle, the position in it, and the amplitude scale at `step`."""
    position = _step(step)
    up = float(require_real("step_size_up", step_size_up))
    down = float(require_real("step_size_down", step_size_down)) if step_size_down is not None else up
    if up <= 0 or down < 0:
        raise ValueError(f"step_size_up must be > 0 and step_size_down >= 0, got {up} and {down}")
    total_size = up + down
    function, resolved_mode = cyclic_scale_function(mode, gamma, scale_fn, scale_mode)
    cycle, factor = cyclic_position(position, total_size, up / total_size)
    scale = function(cycle) if resolved_mode == "cycle" else function(position)
    return cycle, factor, scale


def cyclic_lr(
    step: int,
    base_lr: float,
    max_lr: float,
    step_size_up: float = 2000,
    step_size_down: float | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
    scale_fn: Callable[[float], float] | None = None,
    scale_mode: str = "cycle",
) -> float:
    """CyclicLR's learning rate: triangles between `base_lr` and `max_lr` (Smith, 2017).

    ``base_lr + (max_lr - base_lr) * scale_factor * scale(cycle or step)``.
    """
    _, factor, scale = _cyclic_setup(step, step_size_up, step_size_down, mode, gamma, scale_fn, scale_mode)
    base_height = (max_lr - base_lr) * factor
    return base_lr + base_height * scale


def cyclic_momentum(
    step: int,
    base_momentum: float = 0.8,
    max_momentum: float = 0.9,
    step_size_up: float = 2000,
    step_size_down: float | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
    scale_fn: Callable[[float], float] | None = None,
    scale_mode: str = "cycle",
) -> float:
    """CyclicLR's momentum: the mirror image of the rate, ``max_momentum`` at the base of a cycle."""
    _, factor, scale = _cyclic_setup(step, step_size_up, step_size_down, mode, gamma, scale_fn, scale_mode)
    base_height = (max_momentum - base_momentum) * factor
    return max_momentum - base_height * scale


#: Each scheduler's learning-rate curve by class name (LambdaLR is ``base_lr * lr_lambda(step)``;
#: MultiplicativeLR, ReduceLROnPlateau and the composites have no closed form).
CURVES: Mapping[str, Callable[..., Any]] = {
    "StepLR": step_lr,
    "MultiStepLR": multistep_lr,
    "ExponentialLR": exponential_lr,
    "ConstantLR": constant_lr,
    "LinearLR": linear_lr,
    "PolynomialLR": polynomial_lr,
    "CosineAnnealingLR": cosine_annealing_lr,
    "CosineAnnealingWarmRestarts": cosine_annealing_warm_restarts_lr,
    "OneCycleLR": one_cycle_lr,
    "CyclicLR": cyclic_lr,
}
