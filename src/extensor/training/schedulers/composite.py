"""Schedulers made of schedulers: SequentialLR (one after another) and ChainedScheduler (all at once)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from extensor.training.schedulers._checks import require_integer
from extensor.training.schedulers.base import (
    LRScheduler,
    Optimizer,
    check_last_epoch,
    group_values,
    require_optimizer,
)
from extensor.training.schedulers.plateau import ReduceLROnPlateau

__all__ = ["ChainedScheduler", "SequentialLR"]


def _check_children(kind: str, schedulers: object, optimizer: Optimizer | None) -> list[LRScheduler]:
    """The schedulers as a list, checked: at least one, all LRSchedulers on `optimizer`, no plateau."""
    if not isinstance(schedulers, Sequence) or isinstance(schedulers, (str, bytes)):
        raise TypeError(f"{kind} expects a list of schedulers, got {type(schedulers).__name__}")
    if len(schedulers) < 1:
        raise ValueError(f"{kind} expects at least one scheduler, but got no scheduler")
    children = list(schedulers)
    for index, scheduler in enumerate(children):
        if not isinstance(scheduler, LRScheduler):
            raise TypeError(
                f"{kind}: the scheduler at index {index} is a {type(scheduler).__name__}, not an LRScheduler"
            )
        if isinstance(scheduler, ReduceLROnPlateau):
            raise ValueError(
                f"{kind} does not support ReduceLROnPlateau (its step needs the metrics), but got one "
                f"at index {index} of the given schedulers"
            )
        if optimizer is not None and scheduler.optimizer is not optimizer:
            raise ValueError(
                f"{kind} expects all schedulers to belong to the same optimizer, but the scheduler "
                f"{type(scheduler).__name__} at index {index} drives another optimizer"
            )
    return children


class _Composite(LRScheduler):
    """State handling shared by the composites: the children's state dicts are nested."""

    _schedulers: list[LRScheduler]
    _unsaved: ClassVar[frozenset[str]] = frozenset({"optimizer", "_schedulers"})

    def state_dict(self) -> dict[str, Any]:
        """As `LRScheduler.state_dict`, plus ``_schedulers``: the children's state dicts, in order."""
        state = super().state_dict()
        state["_schedulers"] = [scheduler.state_dict() for scheduler in self._schedulers]
        return state

    def _prepare_state(self, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        state = super()._prepare_state(state_dict)
        children = state["_schedulers"]
        if len(children) != len(self._schedulers):
            raise ValueError(
                f"state_dict['_schedulers'] holds {len(children)} scheduler states, this "
                f"{type(self).__name__} has {len(self._schedulers)} schedulers"
            )
        state["_schedulers"] = [
            scheduler._prepare_state(child)
            for scheduler, child in zip(self._schedulers, children, strict=True)
        ]
        return state

    def _apply_state(self, state: dict[str, Any]) -> None:
        children = state.pop("_schedulers")
        super()._apply_state(state)
        for scheduler, child in zip(self._schedulers, children, strict=True):
            scheduler._apply_state(child)

    def _compute_lr(self) -> list[Any]:
        raise NotImplementedError(f"{type(self).__name__} takes its lrs from its schedulers")


class SequentialLR(_Composite):
    """Run schedulers one after another: ``schedulers[i]`` drives the lr from ``milestones[i-1]``.

    At each milestone the next scheduler starts from its epoch 0 (its closed form at 0, e.g. the
    initial lr for a cosine). The usual recipe is a warm-up then a decay::

        warmup = LinearLR(optimizer, start_factor=0.01, total_iters=5)
        cosine = CosineAnnealingLR(optimizer, T_max=95)
        scheduler = SequentialLR(optimizer, [warmup, cosine], milestones=[5])

    Args:
        optimizer: the optimizer every scheduler drives.
        schedulers: the schedulers, in order (not ReduceLROnPlateau).
        milestones: the epochs at which to switch, one fewer than schedulers, non-decreasing.
        last_epoch: the index of the last epoch (-1 for a fresh run).

    Raises:
        TypeError: a scheduler is not an LRScheduler.
        ValueError: no schedulers, one drives another optimizer, a ReduceLROnPlateau, or milestones
            of the wrong length or not sorted.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        schedulers: Sequence[LRScheduler],
        milestones: Sequence[int],
        last_epoch: int = -1,
    ) -> None:
        optimizer = require_optimizer(optimizer)
        children = _check_children("SequentialLR", schedulers, optimizer)
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence):
            raise TypeError(f"milestones must be a list of integers, got {milestones!r}")
        if len(milestones) != len(children) - 1:
            raise ValueError(
                "SequentialLR expects one milestone fewer than schedulers, but got "
                f"{len(children)} schedulers and {len(milestones)} milestones ({list(milestones)!r})"
            )
        points = [require_integer(f"milestones[{index}]", value) for index, value in enumerate(milestones)]
        if points != sorted(points):
            raise ValueError(f"milestones must be in non-decreasing order, got {points}")
        last_epoch = check_last_epoch(optimizer, last_epoch)
        for index, group in enumerate(optimizer.param_groups):
            if "initial_lr" not in group:
                raise KeyError(f"param_groups[{index}] has no 'initial_lr': construct the schedulers first")

        self._schedulers = children
        self._milestones = points
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        # every child has already taken its initial step: undo them and start the first afresh
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self._undo_initial_steps(self)
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def _undo_initial_steps(self, scheduler: LRScheduler) -> None:
        """Move every leaf scheduler (recursively through composites) one epoch back."""
        if isinstance(scheduler, _Composite):
            for child in scheduler._schedulers:
                self._undo_initial_steps(child)
        elif hasattr(scheduler, "last_epoch"):
            scheduler.last_epoch -= 1

    def step(self) -> None:  # type: ignore[override]
        """Advance one epoch: step the current scheduler, or start the next one at a milestone."""
        self.last_epoch += 1
        try:
            index = bisect_right(self._milestones, self.last_epoch)
            scheduler = self._schedulers[index]
            if index > 0 and self._milestones[index - 1] == self.last_epoch:
                scheduler._update_lr(0)
            else:
                scheduler.step()
        except BaseException:
            self.last_epoch -= 1
            raise
        self._last_lr = scheduler.get_last_lr()


class ChainedScheduler(_Composite):
    """Step several schedulers together, each multiplying in its change (chainable forms).

    Example: ``ChainedScheduler([ConstantLR(opt, factor=0.1, total_iters=2), ExponentialLR(opt, 0.9)])``.

    Args:
        schedulers: the schedulers, stepped in order (not ReduceLROnPlateau).
        optimizer: the optimizer they drive (default: the first scheduler's).

    Raises:
        TypeError: a scheduler is not an LRScheduler.
        ValueError: no schedulers, one drives another optimizer, or a ReduceLROnPlateau.
    """

    def __init__(self, schedulers: Sequence[LRScheduler], optimizer: Optimizer | None = None) -> None:
        if optimizer is not None:
            optimizer = require_optimizer(optimizer)
        children = _check_children("ChainedScheduler", schedulers, None)
        optimizer = optimizer if optimizer is not None else children[0].optimizer
        _check_children("ChainedScheduler", children, optimizer)
        self._schedulers = children
        self.optimizer = optimizer
        self._last_lr = group_values(optimizer, "lr")

    def step(self) -> None:  # type: ignore[override]
        """Step every scheduler once, in order."""
        for scheduler in self._schedulers:
            scheduler.step()
        self._last_lr = group_values(self.optimizer, "lr")
