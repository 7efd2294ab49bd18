"""Warm-up schedules: ConstantLR and LinearLR scale the lr by a factor for the first epochs.

Typically combined with a decay through `SequentialLR` (warm-up, then cosine).
"""

from __future__ import annotations

from typing import Any

from extensor.training.schedulers import curves
from extensor.training.schedulers._checks import require_integer, require_real
from extensor.training.schedulers.base import LRScheduler, Optimizer, group_values

__all__ = ["ConstantLR", "LinearLR"]


class ConstantLR(LRScheduler):
    """Scale the lr by `factor` until epoch `total_iters`, then restore it:
    ``lr_e = base_lr * factor`` for ``e < total_iters``, ``base_lr`` after.

    Args:
        optimizer: the scheduled optimizer.
        factor: the scale, in [0, 1] (default 1/3).
        total_iters: the epoch at which the lr is restored (default 5).
        last_epoch: the index of the last epoch (-1 for a fresh run).

    Raises:
        ValueError: `factor` outside [0, 1] (torch's condition) or `total_iters` < 0.
    """

    def __init__(
        self, optimizer: Optimizer, factor: float = 1.0 / 3, total_iters: int = 5, last_epoch: int = -1
    ) -> None:
        factor = require_real("factor", factor)
        if factor > 1.0 or factor < 0:
            raise ValueError(
                f"Constant multiplicative factor expected to be between 0 and 1, got factor={factor}"
            )
        self.factor = factor
        self.total_iters = require_integer("total_iters", total_iters, minimum=0)
        super().__init__(optimizer, last_epoch)

    def _compute_lr(self) -> list[Any]:
        if self.last_epoch == 0:
            return [group["lr"] * self.factor for group in self.optimizer.param_groups]
        if self.last_epoch != self.total_iters:
            return group_values(self.optimizer, "lr")
        if self.factor == 0:
            # torch divides by the factor here; the lr it would restore is lost (it is 0).
            raise ValueError(
                f"ConstantLR(factor=0) cannot restore the lr at epoch total_iters={self.total_iters}: "
                "the stepped form divides the current lr by the factor"
            )
        return [group["lr"] * (1.0 / self.factor) for group in self.optimizer.param_groups]

    def _closed_form_lr(self) -> list[Any]:
        return [
            curves.constant_lr(self.last_epoch, base, self.factor, self.total_iters) for base in self.base_lrs
        ]


class LinearLR(LRScheduler):
    """Scale the lr by a factor that moves linearly from `start_factor` to `end_factor` over
    `total_iters` epochs: ``lr_e = base_lr * (s + (t - s) * min(e, T) / T)``.

    Stepped, the current lr is multiplied by ``1 + (t - s) / (T * s + (e - 1) * (t - s))`` (torch's
    chainable form).

    Args:
        optimizer: the scheduled optimizer.
        start_factor: the factor at epoch 0, in (0, 1] (default 1/3).
        end_factor: the factor from epoch `total_iters` on, in [0, 1] (default 1.0).
        total_iters: the length of the ramp in epochs (default 5).
        last_epoch: the index of the last epoch (-1 for a fresh run).

    Raises:
        ValueError: a factor outside its range (torch's conditions) or `total_iters` < 0.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        start_factor = require_real("start_factor", start_factor)
        end_factor = require_real("end_factor", end_factor)
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError(
                "Starting multiplicative factor expected to be greater than 0 and less or equal to 1, "
                f"got start_factor={start_factor}"
            )
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError(
                f"Ending multiplicative factor expected to be between 0 and 1, got end_factor={end_factor}"
            )
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = require_integer("total_iters", total_iters, minimum=0)
        super().__init__(optimizer, last_epoch)

    def _compute_lr(self) -> list[Any]:
        if self.last_epoch == 0:
            return [group["lr"] * self.start_factor for group in self.optimizer.param_groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return group_values(self.optimizer, "lr")
        delta = self.end_factor - self.start_factor
        multiplier = 1.0 + delta / (self.total_iters * self.start_factor + (self.last_epoch - 1) * delta)
        return [group["lr"] * multiplier for group in self.optimizer.param_groups]

    def _closed_form_lr(self) -> list[Any]:
        return [
            curves.linear_lr(self.last_epoch, base, self.start_factor, self.end_factor, self.total_iters)
            for base in self.base_lrs
        ]
