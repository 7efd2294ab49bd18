"""Multiplicative decays: StepLR, MultiStepLR, ExponentialLR, PolynomialLR.

Each multiplies the group's *current* lr at the epochs where the schedule changes (torch's
chainable form), so it composes with other schedulers acting on the same optimizer; the closed
forms in `curves` give the same values up to rounding.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from extensor.training.schedulers import curves
from extensor.training.schedulers._checks import require_integer, require_real
from extensor.training.schedulers.base import LRScheduler, Optimizer, group_values

__all__ = ["ExponentialLR", "MultiStepLR", "PolynomialLR", "StepLR"]


class StepLR(LRScheduler):
    """Multiply the lr by `gamma` every `step_size` epochs: ``lr_e = base_lr * gamma ** (e // step_size)``.

    Args:
        optimizer: the scheduled optimizer.
        step_size: the period of the decay, an integer >= 1.
        gamma: the multiplicative factor (default 0.1).
        last_epoch: the index of the last epoch (-1 for a fresh run).
    """

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        self.step_size = require_integer("step_size", step_size, minimum=1)
        self.gamma = require_real("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def _compute_lr(self) -> list[Any]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return group_values(self.optimizer, "lr")
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _closed_form_lr(self) -> list[Any]:
        return [curves.step_lr(self.last_epoch, base, self.step_size, self.gamma) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the lr by `gamma` at each milestone: ``lr_e = base_lr * gamma ** #{m in milestones: m <= e}``.

    A milestone listed n times multiplies by ``gamma ** n`` (as in torch).

    Args:
        optimizer: the scheduled optimizer.
        milestones: epoch indices (integers, any order, repeats allowed).
        gamma: the multiplicative factor (default 0.1).
        last_epoch: the index of the last epoch (-1 for a fresh run).
    """

    def __init__(
        self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Iterable):
            raise TypeError(f"milestones must be an iterable of integers, got {milestones!r}")
        self.milestones: Counter[int] = Counter(
            require_integer(f"milestones[{index}]", value) for index, value in enumerate(milestones)
        )
        self.gamma = require_real("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def _compute_lr(self) -> list[Any]:
        if self.last_epoch not in self.milestones:
            return group_values(self.optimizer, "lr")
        factor = self.gamma ** self.milestones[self.last_epoch]
        return [group["lr"] * factor for group in self.optimizer.param_groups]

    def _closed_form_lr(self) -> list[Any]:
        milestones = list(self.milestones.elements())
        return [curves.multistep_lr(self.last_epoch, base, milestones, self.gamma) for base in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        """As `LRScheduler.state_dict`; ``milestones`` is a plain ``{epoch: count}`` dict (JSON turns
        its keys into strings, which `load_state_dict` accepts)."""
        state = super().state_dict()
        state["milestones"] = dict(self.milestones)
        return state

    def _prepare_state(self, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        state = super()._prepare_state(state_dict)
        milestones = state["milestones"]
        try:
            state["milestones"] = Counter({int(epoch): int(count) for epoch, count in milestones.items()})
        except (TypeError, ValueError, AttributeError) as error:
            raise ValueError(
                f"state_dict['milestones'] must map epochs to counts, got {milestones!r}"
            ) from error
        return state


class ExponentialLR(LRScheduler):
    """Multiply the lr by `gamma` every epoch: ``lr_e = base_lr * gamma ** e``.

    Args:
        optimizer: the scheduled optimizer.
        gamma: the multiplicative factor.
        last_epoch: the index of the last epoch (-1 for a fresh run).
    """

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = require_real("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def _compute_lr(self) -> list[Any]:
        if self._is_initial:
            return group_values(self.optimizer, "lr")
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _closed_form_lr(self) -> list[Any]:
        return [curves.exponential_lr(self.last_epoch, base, self.gamma) for base in self.base_lrs]


class PolynomialLR(LRScheduler):
    """Polynomial decay to zero over `total_iters` epochs:
    ``lr_e = base_lr * (1 - min(e, total_iters) / total_iters) ** power``.

    Stepped, each epoch multiplies the current lr by
    ``((1 - e / T) / (1 - (e - 1) / T)) ** power`` (torch's chainable form).

    Args:
        optimizer: the scheduled optimizer.
        total_iters: the number of decaying epochs (default 5); 0 leaves the lr alone.
        power: the power of the polynomial (default 1.0, linear decay).
        last_epoch: the index of the last epoch (-1 for a fresh run).
    """

    def __init__(
        self, optimizer: Optimizer, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1
    ) -> None:
        self.total_iters = require_integer("total_iters", total_iters, minimum=0)
        self.power = require_real("power", power)
        super().__init__(optimizer, last_epoch)

    def _compute_lr(self) -> list[Any]:
        if self._is_initial or self.last_epoch > self.total_iters:
            return group_values(self.optimizer, "lr")
        decay_factor = (
            (1.0 - self.last_epoch / self.total_iters) / (1.0 - (self.last_epoch - 1) / self.total_iters)
        ) ** self.power
        return [group["lr"] * decay_factor for group in self.optimizer.param_groups]

    def _closed_form_lr(self) -> list[Any]:
        return [
            curves.polynomial_lr(self.last_epoch, base, self.total_iters, self.power)
            for base in self.base_lrs
        ]
