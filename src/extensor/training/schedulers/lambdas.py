"""User-defined schedules: LambdaLR (``lr = base_lr * f(epoch)``) and MultiplicativeLR (``lr *= f(epoch)``).

As in torch, a plain function or lambda is not saved by `state_dict` (an entry of None); a
callable *object* has its ``__dict__`` saved and restored.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from extensor.training.schedulers._checks import require_callable
from extensor.training.schedulers.base import LRScheduler, Optimizer, group_values, require_optimizer

__all__ = ["LambdaLR", "MultiplicativeLR"]

EpochFunction = Callable[[int], float]


class _FunctionScheduler(LRScheduler):
    """Shared machinery: one function of the epoch per param group, saved like torch saves it."""

    _unsaved: ClassVar[frozenset[str]] = frozenset({"optimizer", "lr_lambdas"})
    _per_group_state: ClassVar[frozenset[str]] = frozenset({"base_lrs", "_last_lr", "lr_lambdas"})

    def __init__(
        self, optimizer: Optimizer, lr_lambda: EpochFunction | list[EpochFunction], last_epoch: int
    ) -> None:
        optimizer = require_optimizer(optimizer)
        count = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != count:
                raise ValueError(
                    f"Expected {count} lr_lambdas (one per param group), but got {len(lr_lambda)}"
                )
            functions = list(lr_lambda)
        else:
            functions = [lr_lambda] * count
        for index, function in enumerate(functions):
            require_callable(f"lr_lambda[{index}]", function)
        self.lr_lambdas: list[EpochFunction] = functions
        super().__init__(optimizer, last_epoch)

    def state_dict(self) -> dict[str, Any]:
        """As `LRScheduler.state_dict`, plus ``lr_lambdas``: None for plain functions and lambdas
        (and callables without attributes), a copy of ``__dict__`` for callable objects."""
        state = super().state_dict()
        state["lr_lambdas"] = [
            None
            if isinstance(function, types.FunctionType) or not hasattr(function, "__dict__")
            else dict(vars(function))
            for function in self.lr_lambdas
        ]
        return state

    def _prepare_state(self, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        state = super()._prepare_state(state_dict)
        for index, saved in enumerate(state["lr_lambdas"]):
            if saved is not None and not isinstance(saved, Mapping):
                raise ValueError(f"state_dict['lr_lambdas'][{index}] must be None or a dict, got {saved!r}")
            if saved is not None and not hasattr(self.lr_lambdas[index], "__dict__"):
                raise ValueError(f"lr_lambda {index} has no attributes to restore the saved {saved!r} into")
        return state

    def _apply_state(self, state: dict[str, Any]) -> None:
        saved_functions = state.pop("lr_lambdas")
        super()._apply_state(state)
        for function, saved in zip(self.lr_lambdas, saved_functions, strict=True):
            if saved is not None:
                vars(function).update(saved)


class LambdaLR(_FunctionScheduler):
    """Set the lr to the initial lr times a function of the epoch: ``lr_e = base_lr * lr_lambda(e)``.

    Args:
        optimizer: the scheduled optimizer.
        lr_lambda: a function of the epoch, or a list with one per param group.
        last_epoch: the index of the last epoch (-1 for a fresh run).
    """

    def __init__(
        self, optimizer: Optimizer, lr_lambda: EpochFunction | list[EpochFunction], last_epoch: int = -1
    ) -> None:
        super().__init__(optimizer, lr_lambda, last_epoch)

    def _compute_lr(self) -> list[Any]:
        return [
            base * function(self.last_epoch)
            for function, base in zip(self.lr_lambdas, self.base_lrs, strict=True)
        ]


class MultiplicativeLR(_FunctionScheduler):
    """Multiply the current lr by a function of the epoch: ``lr_e = lr_{e-1} * lr_lambda(e)`` (e >= 1).

    Args:
        optimizer: the scheduled optimizer.
        lr_lambda: a function of the epoch, or a list with one per param group.
        last_epoch: the index of the last epoch (-1 for a fresh run).
    """

    def __init__(
        self, optimizer: Optimizer, lr_lambda: EpochFunction | list[EpochFunction], last_epoch: int = -1
    ) -> None:
        super().__init__(optimizer, lr_lambda, last_epoch)

    def _compute_lr(self) -> list[Any]:
        if self._is_initial:
            return group_values(self.optimizer, "lr")
        return [
            group["lr"] * function(self.last_epoch)
            for function, group in zip(self.lr_lambdas, self.optimizer.param_groups, strict=True)
        ]
