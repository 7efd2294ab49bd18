"""Cosine annealing (SGDR; Loshchilov & Hutter, 2017, arXiv:1608.03983): CosineAnnealingLR and
CosineAnnealingWarmRestarts.
"""

from __future__ import annotations

import math
from typing import Any

from extensor.training.schedulers import curves
from extensor.training.schedulers._checks import require_integer, require_positive, require_real
from extensor.training.schedulers.base import LRScheduler, Optimizer, group_values

__all__ = ["CosineAnnealingLR", "CosineAnnealingWarmRestarts"]


class CosineAnnealingLR(LRScheduler):
    """Anneal the lr from its initial value to `eta_min` along half a cosine over `T_max` epochs:
    ``lr_e = eta_min + (base_lr - eta_min) * (1 + cos(pi * e / T_max)) / 2``.

    Stepped, the lr is updated recursively from the current one, as torch does:
    ``lr_e = eta_min + (lr_{e-1} - eta_min) * (1 + cos(pi e / T)) / (1 + cos(pi (e-1) / T))``
    (with an additive form at the bottom of the cosine, where that ratio is undefined), so other
    changes to the lr are carried along. The numbers are torch's, including the rounding by which
    this recursion drifts from the closed form. Past `T_max` the cosine continues (the lr rises).

    Args:
        optimizer: the scheduled optimizer.
        T_max: the half-period in epochs (> 0).
        eta_min: the minimum lr (default 0).
        last_epoch: the index of the last epoch (-1 for a fresh run).
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        self.T_max = require_positive("T_max", T_max)
        self.eta_min = require_real("eta_min", eta_min)
        super().__init__(optimizer, last_epoch)

    def _compute_lr(self) -> list[Any]:
        epoch, T_max, eta_min = self.last_epoch, self.T_max, self.eta_min
        groups = self.optimizer.param_groups
        if self._is_initial:
            return group_values(self.optimizer, "lr")
        if self._step_count == 1 and epoch > 0:
            # the first step after a resume: jump to the closed form
            return [
                eta_min + (base - eta_min) * (1 + math.cos(epoch * math.pi / T_max)) / 2
                for base in self.base_lrs
            ]
        if (epoch - 1 - T_max) % (2 * T_max) == 0:
            # leaving the bottom of the cosine, where the recursive ratio would be 0/0
            return [
                group["lr"] + (base - eta_min) * (1 - math.cos(math.pi / T_max)) / 2
                for base, group in zip(self.base_lrs, groups, strict=True)
            ]
        ratio = (1 + math.cos(math.pi * epoch / T_max)) / (1 + math.cos(math.pi * (epoch - 1) / T_max))
        return [ratio * (group["lr"] - eta_min) + eta_min for group in groups]

    def _closed_form_lr(self) -> list[Any]:
        return [
            curves.cosine_annealing_lr(self.last_epoch, base, self.T_max, self.eta_min)
            for base in self.base_lrs
        ]


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing with warm restarts (SGDR): the lr anneals from its initial value to
    `eta_min` over ``T_i`` epochs, then restarts; ``T_0`` is the first period and each next one
    is `T_mult` times longer. ``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi T_cur / T_i)) / 2``.

    ``step(epoch)`` may be given a fractional epoch (e.g. ``epoch + batch / batches``) to anneal
    within an epoch, as in torch (this form is not deprecated here).

    Args:
        optimizer: the scheduled optimizer.
        T_0: the first period, a positive integer.
        T_mult: the growth of the period after each restart, an integer >= 1 (default 1).
        eta_min: the minimum lr (default 0).
        last_epoch: the index of the last epoch (-1 for a fresh run).

    Raises:
        ValueError: `T_0` or `T_mult` out of range (torch's conditions; a non-integer raises an
            error that is both a TypeError and a ValueError).
    """

    def __init__(
        self, optimizer: Optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0, last_epoch: int = -1
    ) -> None:
        self.T_0 = require_integer("T_0", T_0, minimum=1)
        self.T_i: float = self.T_0
        self.T_mult = require_integer("T_mult", T_mult, minimum=1)
        self.eta_min = require_real("eta_min", eta_min)
        self.T_cur: float = require_integer("last_epoch", last_epoch, minimum=-1)
        super().__init__(optimizer, last_epoch)

    def _compute_lr(self) -> list[Any]:
        return [curves.warm_restart_value(base, self.eta_min, self.T_cur, self.T_i) for base in self.base_lrs]

    def _check_epoch(self, epoch: object) -> Any:
        number = require_real("epoch", epoch)
        if number < 0:
            raise ValueError(f"Expected non-negative epoch, but got {epoch}")
        return number

    def step(self, epoch: float | None = None) -> None:
        """Advance one epoch, or go to `epoch` (which may be fractional) and set the lrs.

        Raises:
            ValueError: `epoch` is negative (nothing is changed then).
        """
        if epoch is not None:
            epoch = self._check_epoch(epoch)
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        elif epoch >= self.T_0:
            if self.T_mult == 1:
                self.T_cur = epoch % self.T_0
            else:
                # torch's formula (float logarithm included): the number of completed periods
                n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
                self.T_cur = epoch - self.T_0 * (self.T_mult**n - 1) / (self.T_mult - 1)
                self.T_i = self.T_0 * self.T_mult**n
        else:
            self.T_i = self.T_0
            self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        self._get_lr_called_within_step = True
        try:
            values = self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = group_values(self.optimizer, "lr")
