"""`SWALR`: anneal every group's learning rate to a fixed SWA value (torch.optim.swa_utils.SWALR, 2.13).

Stochastic Weight Averaging (Izmailov et al. 2018) averages the weights visited at a constant
(or cyclical) learning rate; SWALR moves each group's lr from its current value to ``swa_lr``
over ``anneal_epochs`` epochs, by cosine or linear interpolation, then holds it there. The rate
is computed recursively from the group's current lr, as torch does, so the values are torch's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from extensor.training.schedulers._checks import is_integer, require_real
from extensor.training.schedulers.base import LRScheduler, Optimizer, per_group, require_optimizer

__all__ = ["SWALR"]

ANNEAL_STRATEGIES = ("cos", "linear")


def _non_negative_lr(name: str, value: object) -> float | int:
    """A real number >= 0 (torch accepts any number; a negative SWA learning rate is refused here)."""
    number = require_real(name, value)
    if number < 0:
        raise ValueError(f"{name} must be a learning rate >= 0, got {number}")
    return number


def _check_strategy(anneal_strategy: object) -> str:
    if anneal_strategy not in ANNEAL_STRATEGIES or not isinstance(anneal_strategy, str):
        raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
    return anneal_strategy


def _check_anneal_epochs(anneal_epochs: object) -> int:
    if not is_integer(anneal_epochs) or anneal_epochs < 0:  # type: ignore[operator]
        raise ValueError(f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}")
    return int(anneal_epochs)  # type: ignore[call-overload]


class SWALR(LRScheduler):
    """Anneal each param group's lr to ``swa_lr`` over `anneal_epochs` epochs, then keep it there.

    At scheduler step ``s`` (0 at construction), with ``t = clip(s / max(1, anneal_epochs), 0, 1)``
    and ``a(t) = (1 - cos(π t)) / 2`` ("cos") or ``t`` ("linear")::

        lr_start = (lr - a(t_prev) · swa_lr) / (1 - a(t_prev))     (swa_lr when a(t_prev) = 1)
        lr       = swa_lr · a(t) + lr_start · (1 - a(t))

    where ``lr`` is the group's current rate and ``t_prev`` the previous step's ``t``: the start
    value is recovered from the current rate, so the curve follows other schedulers' changes.
    Each group's target is stored in it as ``group["swa_lr"]``.

    Args:
        optimizer: the scheduled optimizer.
        swa_lr: the final learning rate, one for all groups or a list with one per group (>= 0).
        anneal_epochs: epochs of the annealing phase, an integer >= 0 (default 10).
        anneal_strategy: "cos" (default) or "linear".
        last_epoch: the index of the last epoch (-1 for a fresh run).

    Raises:
        TypeError: `optimizer` is not an extensor Optimizer, or a `swa_lr` is not a number.
        ValueError: torch's messages for a bad `anneal_strategy` or `anneal_epochs` and a `swa_lr`
            list of the wrong length; a negative `swa_lr` (torch accepts it). Nothing is written
            into the optimizer's groups then (torch writes ``swa_lr`` before checking the rest).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        swa_lr: float | list[float],
        anneal_epochs: int = 10,
        anneal_strategy: str = "cos",
        last_epoch: int = -1,
    ) -> None:
        optimizer = require_optimizer(optimizer)
        swa_lrs = per_group("swa_lr", swa_lr, optimizer, check=_non_negative_lr)
        self._anneal_strategy = _check_strategy(anneal_strategy)
        self.anneal_epochs = _check_anneal_epochs(anneal_epochs)
        for group, value in zip(optimizer.param_groups, swa_lrs, strict=True):
            group["swa_lr"] = value
        super().__init__(optimizer, last_epoch)

    @property
    def anneal_func(self) -> Callable[[float], float]:
        """The interpolation ``a(t)`` of the strategy: cosine or linear."""
        return self._cosine_anneal if self._anneal_strategy == "cos" else self._linear_anneal

    @staticmethod
    def _linear_anneal(t: float) -> float:
        return t

    @staticmethod
    def _cosine_anneal(t: float) -> float:
        return (1 - math.cos(math.pi * t)) / 2

    @staticmethod
    def _get_initial_lr(lr: float, swa_lr: float, alpha: float) -> float:
        """The lr the annealing started from, recovered from the current `lr` at interpolation `alpha`."""
        if alpha == 1:
            return swa_lr
        return (lr - alpha * swa_lr) / (1 - alpha)

    def _compute_lr(self) -> list[Any]:
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        anneal = self.anneal_func
        prev_alpha = anneal(max(0, min(1, (step - 1) / max(1, self.anneal_epochs))))
        groups = self.optimizer.param_groups
        starts = [self._get_initial_lr(group["lr"], group["swa_lr"], prev_alpha) for group in groups]
        alpha = anneal(max(0, min(1, step / max(1, self.anneal_epochs))))
        return [group["swa_lr"] * alpha + lr * (1 - alpha) for group, lr in zip(groups, starts, strict=True)]

    def _prepare_state(self, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        state = super()._prepare_state(state_dict)
        if "_anneal_strategy" in state:
            _check_strategy(state["_anneal_strategy"])
        if "anneal_epochs" in state:
            _check_anneal_epochs(state["anneal_epochs"])
        return state
