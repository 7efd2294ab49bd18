"""ReduceLROnPlateau: cut the lr when a monitored metric stops improving."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar, SupportsFloat

from extensor.training.schedulers._checks import require_integer, require_real
from extensor.training.schedulers.base import (
    EPOCH_DEPRECATION_WARNING,
    LRScheduler,
    Optimizer,
    group_values,
    per_group,
    require_optimizer,
)

__all__ = ["ReduceLROnPlateau"]


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by `factor` after more than `patience` epochs without improvement.

    ``step(metric)`` is called once per epoch with the monitored value. An epoch improves on the
    best value so far when, for ``mode="min"``, ``metric < best * (1 - threshold)``
    (``threshold_mode="rel"``) or ``metric < best - threshold`` (``"abs"``); mirrored for
    ``"max"``. When the number of bad epochs exceeds `patience`, every group's lr becomes
    ``max(lr * factor, min_lr)`` — unless that changes it by no more than `eps` — and the next
    `cooldown` epochs are not counted as bad.

    Unlike the other schedulers it does not use ``initial_lr``/``base_lrs`` and performs no
    initial step (torch 2.13's behaviour).

    Args:
        optimizer: the scheduled optimizer.
        mode: ``"min"`` (default) or ``"max"``.
        factor: the reduction factor, in [0, 1) (default 0.1).
        patience: bad epochs tolerated before a reduction (default 10).
        threshold: the significance of an improvement (default 1e-4).
        threshold_mode: ``"rel"`` (default) or ``"abs"``.
        cooldown: epochs to wait after a reduction before counting bad epochs again (default 0).
        min_lr: a lower bound on the lr, one value or one per group (default 0).
        eps: the smallest change of lr worth applying (default 1e-8).

    Raises:
        ValueError: ``factor >= 1`` (torch's condition) or negative, an unknown mode, negative
            patience/cooldown/eps, or a `min_lr` list of the wrong length.
    """

    _per_group_state: ClassVar[frozenset[str]] = frozenset({"_last_lr"})

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: list[float] | float = 0,
        eps: float = 1e-8,
    ) -> None:
        factor = require_real("factor", factor)
        if factor >= 1.0:
            raise ValueError(f"Factor should be < 1.0, got factor={factor}")
        if factor < 0:
            raise ValueError(f"factor must be >= 0, got factor={factor}")
        optimizer = require_optimizer(optimizer)
        min_lrs = per_group("min_lr", min_lr, optimizer)
        patience = require_integer("patience", patience, minimum=0)
        cooldown = require_integer("cooldown", cooldown, minimum=0)
        eps = require_real("eps", eps)
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got eps={eps}")
        threshold = require_real("threshold", threshold)
        _check_modes(mode, threshold_mode)

        self.factor = factor
        self.optimizer = optimizer
        self.default_min_lr = None if isinstance(min_lr, (list, tuple)) else min_lrs[0]
        self.min_lrs = min_lrs
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = group_values(optimizer, "lr")
        self._init_is_better(mode, threshold, threshold_mode)
        self._reset()

    def _reset(self) -> None:
        """Forget the best value and the counters."""
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics: SupportsFloat, epoch: int | None = None) -> None:  # type: ignore[override]
        """Record this epoch's `metrics` value and reduce the lr if it has plateaued.

        Args:
            metrics: the monitored value (anything `float()` accepts: a number, a 1-element array).
            epoch: deprecated (as in torch): set ``last_epoch`` explicitly.
        """
        try:
            current = float(metrics)
        except (TypeError, ValueError) as error:
            raise TypeError(f"metrics must be a number, got {metrics!r}") from error
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            epoch = require_integer("epoch", epoch, minimum=0)
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self.last_epoch = epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs are not counted during the cooldown
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = group_values(self.optimizer, "lr")

    def _reduce_lr(self) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(
                    f"The number of param groups in the optimizer ({len(groups)}) differs from when "
                    f"ReduceLROnPlateau was created ({len(self.min_lrs)}), usually because a param group "
                    "was added: set `min_lrs` to one value per group"
                )
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs, strict=True):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr

    @property
    def in_cooldown(self) -> bool:
        """True while epochs after a reduction are still being skipped."""
        return self.cooldown_counter > 0

    def _is_better(self, value: float, best: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return value < best * (1.0 - self.threshold)
        if self.mode == "min":
            return value < best - self.threshold
        if self.threshold_mode == "rel":
            return value > best * (self.threshold + 1.0)
        return value > best + self.threshold

    def _init_is_better(self, mode: str, threshold: float, threshold_mode: str) -> None:
        _check_modes(mode, threshold_mode)
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode

    def _compute_lr(self) -> list[Any]:
        raise NotImplementedError("ReduceLROnPlateau has no lr formula: its lr depends on the metrics")

    def _prepare_state(self, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        state = super()._prepare_state(state_dict)
        _check_modes(state["mode"], state["threshold_mode"])
        return state

    def _apply_state(self, state: dict[str, Any]) -> None:
        super()._apply_state(state)
        self._init_is_better(self.mode, self.threshold, self.threshold_mode)


def _check_modes(mode: object, threshold_mode: object) -> None:
    if mode not in ("min", "max"):
        raise ValueError(f"mode {mode!r} is unknown: expected 'min' or 'max'")
    if threshold_mode not in ("rel", "abs"):
        raise ValueError(f"threshold mode {threshold_mode!r} is unknown: expected 'rel' or 'abs'")
