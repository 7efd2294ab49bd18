"""OneCycleLR: the 1cycle policy (Smith & Topin, 2017, "Super-Convergence", arXiv:1708.07120).

The lr rises from ``max_lr / div_factor`` to `max_lr`, then anneals far below the start, while
the momentum (SGD's ``momentum``, Adam's ``betas[0]``) moves the opposite way. Stepped once per
batch, `total_steps` times; the values are computed from the step (`curves.one_cycle_position`
and `curves.anneal`), reading the anchors ``initial_lr``/``max_lr``/``min_lr`` and
``max_momentum``/``base_momentum`` that construction writes into every param group.
"""

from __future__ import annotations

from typing import Any

from extensor.training.schedulers import curves
from extensor.training.schedulers._checks import require_integer, require_positive, require_real
from extensor.training.schedulers.base import (
    LRScheduler,
    Optimizer,
    check_last_epoch,
    per_group,
    require_optimizer,
    set_momentum,
    start_momentum_cycle,
    supports_momentum_cycling,
)

__all__ = ["OneCycleLR"]


class OneCycleLR(LRScheduler):
    """The 1cycle learning-rate policy, with momentum cycling.

    Args:
        optimizer: the scheduled optimizer.
        max_lr: the peak lr, one value or one per param group.
        total_steps: the number of steps in the cycle; or give `epochs` and `steps_per_epoch`.
        epochs, steps_per_epoch: ``total_steps = epochs * steps_per_epoch`` when `total_steps` is None.
        pct_start: the fraction of the cycle spent increasing the lr (default 0.3).
        anneal_strategy: ``"cos"`` (default) or ``"linear"``.
        cycle_momentum: cycle the momentum (SGD ``momentum``) or beta1 (Adam-like ``betas[0]``)
            inversely to the lr, between `max_momentum` and `base_momentum` (default True).
        base_momentum, max_momentum: the momentum bounds, one value or one per group.
        div_factor: ``initial_lr = max_lr / div_factor`` (default 25).
        final_div_factor: ``min_lr = initial_lr / final_div_factor`` (default 1e4).
        three_phase: use fastai's three phases (up, symmetric down to ``initial_lr``, then to
            ``min_lr``) instead of two.
        last_epoch: the index of the last step (-1 for a fresh run).

    Raises:
        ValueError: invalid arguments (torch's conditions), an optimizer with neither ``momentum``
            nor ``betas`` with ``cycle_momentum=True``, a phase without any step, or — when
            stepping — a step past `total_steps` ("Tried to step ... times").
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | list[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.85,
        max_momentum: float | list[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        optimizer = require_optimizer(optimizer)
        last_epoch = check_last_epoch(optimizer, last_epoch)
        if total_steps is not None:
            total = require_integer("total_steps", total_steps, minimum=1)
        elif epochs is not None and steps_per_epoch is not None:
            total = require_integer("epochs", epochs, minimum=1) * require_integer(
                "steps_per_epoch", steps_per_epoch, minimum=1
            )
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        pct_start = require_real("pct_start", pct_start)
        if pct_start < 0 or pct_start > 1:
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy!r}"
            )
        max_lrs = per_group("max_lr", max_lr, optimizer)
        div_factor = require_positive("div_factor", div_factor)
        final_div_factor = require_positive("final_div_factor", final_div_factor)
        phases = curves.one_cycle_phases(total, pct_start, bool(three_phase))
        first = last_epoch + 1
        if first > total:
            raise ValueError(f"Tried to step {first} times. The specified number of total steps is {total}")
        curves.one_cycle_position(first, phases)  # raises if the first step falls in an empty phase
        if last_epoch != -1:
            anchors = ["max_lr", "min_lr"] + (["max_momentum", "base_momentum"] if cycle_momentum else [])
            for index, group in enumerate(optimizer.param_groups):
                missing = [key for key in anchors if key not in group]
                if missing:
                    raise KeyError(
                        f"param_groups[{index}] lacks {missing}, needed to resume OneCycleLR with "
                        f"last_epoch={last_epoch}: load the optimizer's state dict first"
                    )
        use_beta1 = False
        if cycle_momentum:
            use_beta1 = supports_momentum_cycling(optimizer, "OneCycleLR")
            max_momentums = per_group("max_momentum", max_momentum, optimizer)
            base_momentums = per_group("base_momentum", base_momentum, optimizer)

        # everything is valid: from here on the param groups are written
        self.optimizer = optimizer
        self.total_steps = total
        self._schedule_phases = phases
        self._anneal_func_type = anneal_strategy
        self.cycle_momentum = bool(cycle_momentum)
        if last_epoch == -1:
            for group, peak in zip(optimizer.param_groups, max_lrs, strict=True):
                group["initial_lr"] = peak / div_factor
                group["max_lr"] = peak
                group["min_lr"] = group["initial_lr"] / final_div_factor
        if self.cycle_momentum:
            self.use_beta1 = use_beta1
            if last_epoch == -1:
                start_momentum_cycle(optimizer, use_beta1, max_momentums, base_momentums)
        super().__init__(optimizer, last_epoch)

    def _compute_lr(self) -> list[Any]:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(
                f"Tried to step {step} times. The specified number of total steps is {self.total_steps}"
            )
        phase, pct = curves.one_cycle_position(step, self._schedule_phases)
        strategy = self._anneal_func_type
        lrs = []
        for group in self.optimizer.param_groups:
            lrs.append(curves.anneal(strategy, group[phase["start_lr"]], group[phase["end_lr"]], pct))
            if self.cycle_momentum:
                momentum = curves.anneal(
                    strategy, group[phase["start_momentum"]], group[phase["end_momentum"]], pct
                )
                set_momentum(group, self.use_beta1, momentum)
        return lrs
