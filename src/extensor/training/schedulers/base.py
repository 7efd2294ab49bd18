"""`LRScheduler`: the contract every epoch-indexed learning-rate scheduler follows.

The semantics are those of `torch.optim.lr_scheduler.LRScheduler` in PyTorch 2.13:

* Construction performs the initial step. With ``last_epoch=-1`` (a fresh run) every param group
  gets ``initial_lr = lr`` (kept if already there), ``base_lrs`` is read from the groups'
  ``initial_lr`` and ``last_epoch`` becomes 0. Resuming with ``last_epoch >= 0`` requires
  ``initial_lr`` in every group.
* ``step()`` adds one to ``last_epoch`` and writes the new learning rates into
  ``optimizer.param_groups[i]["lr"]``. Most schedulers compute the new rate *recursively* from
  the group's current rate (torch's "chainable" form, so that several schedulers can act on one
  optimizer); the values are those torch produces, floating-point rounding included.
* ``step(epoch)`` (deprecated in torch, still supported there) jumps to ``epoch`` using the
  scheduler's closed form when it has one, and warns.
* The first ``step()`` after construction warns (torch's UserWarning, same text) when the
  optimizer has not stepped yet: the schedule's first value would be skipped. The optimizer is
  watched as torch does, by a hook on the instance that marks ``optimizer._opt_called`` (see
  `watch_first_step`).
* ``get_last_lr()`` returns the rates of the last step; ``state_dict()``/``load_state_dict()``
  save and restore everything but the optimizer, as JSON-able Python values.

A scheduler reads and writes only ``optimizer.param_groups`` (``lr``, ``initial_lr`` and, for
the cyclic schedulers, ``momentum``/``betas`` and their anchors).
"""

from __future__ import annotations

import copy
import warnings
import weakref
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from extensor.training.optimizers.optimizer import Optimizer
from extensor.training.schedulers._checks import is_real, require_integer, require_real

ParamGroup = dict[str, Any]

EPOCH_DEPRECATION_WARNING = (
    "Passing an epoch to `scheduler.step()` is deprecated (as in PyTorch): the scheduler then "
    "jumps to that epoch with its closed form where it has one instead of its chainable form. "
    "Call `scheduler.step()` without arguments instead."
)

#: torch 2.13's warning when the first ``scheduler.step()`` comes before any ``optimizer.step()``.
STEP_ORDER_WARNING = (
    "Detected call of `lr_scheduler.step()` before `optimizer.step()`. "
    "In PyTorch 1.1.0 and later, you should call them in the opposite order: "
    "`optimizer.step()` before `lr_scheduler.step()`.  Failure to do this "
    "will result in PyTorch skipping the first value of the learning rate schedule. "
    "See more details at "
    "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate"
)


class _FirstStepWatch:
    """Stands in for an optimizer's ``_step_pack`` until its first call, which marks the optimizer
    as stepped (``_opt_called = True``, torch's attribute), puts the real method back and runs it.

    ``_step_pack`` rather than ``step``: every update goes through it, including the distributed
    `ShardedOptimizer`'s, which steps the wrapped optimizer's packs without calling its ``step``.
    After the first call nothing is left on the hot path. The watch holds the optimizer weakly
    (a strong reference from the optimizer's own attribute would be a reference cycle); a deep
    copy of the optimizer gets a watch of the copy.
    """

    __slots__ = ("_optimizer", "_previous")

    def __init__(self, optimizer: Optimizer, previous: Any = None) -> None:
        self._optimizer = weakref.ref(optimizer)
        self._previous = previous  # an instance-level `_step_pack` installed before the watch

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        optimizer = self._optimizer()
        if optimizer is None:
            raise ReferenceError("the optimizer this step watch belongs to no longer exists")
        optimizer._opt_called = True  # type: ignore[attr-defined]
        if self._previous is None:
            optimizer.__dict__.pop("_step_pack", None)
        else:
            optimizer.__dict__["_step_pack"] = self._previous
        return optimizer._step_pack(*args, **kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> _FirstStepWatch:
        copied = memo.get(id(self._optimizer()))
        if copied is None:
            return self
        return _FirstStepWatch(copied, copy.deepcopy(self._previous, memo))


def watch_first_step(optimizer: Optimizer) -> None:
    """Make `optimizer` record its first step in ``optimizer._opt_called`` (idempotent, as torch)."""
    if getattr(optimizer, "_opt_called", False):
        return
    installed = optimizer.__dict__.get("_step_pack")
    if isinstance(installed, _FirstStepWatch):
        return
    optimizer.__dict__["_step_pack"] = _FirstStepWatch(optimizer, installed)


def require_optimizer(optimizer: object) -> Optimizer:
    """Return `optimizer` if it is an extensor `Optimizer`; raise TypeError otherwise (as torch does)."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"{type(optimizer).__name__} is not an Optimizer: schedulers drive an "
            "extensor.training.optimizers.Optimizer"
        )
    return optimizer


def per_group(
    name: str,
    value: object,
    optimizer: Optimizer,
    check: Callable[[str, object], Any] = require_real,
) -> list[Any]:
    """One value per param group: a list/tuple of exactly that length, or one value repeated.

    Each value goes through `check` (a real number by default) and the checked values are returned.
    """
    count = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(
                f"{name} must have the same length as optimizer.param_groups: {name} has "
                f"{len(value)} values ({list(value)!r}), param_groups has {count}"
            )
        return [check(f"{name}[{index}]", item) for index, item in enumerate(value)]
    checked = check(name, value)
    return [checked] * count


def check_last_epoch(optimizer: Optimizer, last_epoch: object) -> int:
    """Validate `last_epoch` (-1 for a fresh run, or the epoch to resume from).

    Resuming needs ``initial_lr`` in every group, written by the scheduler of the interrupted run
    and restored with the optimizer's state dict; a KeyError (torch's type) says which group lacks it.
    """
    epoch = require_integer("last_epoch", last_epoch, minimum=-1)
    if epoch != -1:
        for index, group in enumerate(optimizer.param_groups):
            if "initial_lr" not in group:
                raise KeyError(
                    f"param 'initial_lr' is not specified in param_groups[{index}] when resuming a "
                    f"scheduler with last_epoch={epoch}: load the optimizer's state dict first, or "
                    "use last_epoch=-1 for a fresh run"
                )
    return epoch


def group_values(optimizer: Optimizer, key: str) -> list[Any]:
    """``[group[key] for group in optimizer.param_groups]``."""
    return [group[key] for group in optimizer.param_groups]


def set_momentum(group: ParamGroup, use_beta1: bool, momentum: float) -> None:
    """Write a cycled momentum: ``betas[0]`` for Adam-like optimizers, ``momentum`` otherwise."""
    if use_beta1:
        group["betas"] = (momentum, *group["betas"][1:])
    else:
        group["momentum"] = momentum


def start_momentum_cycle(
    optimizer: Optimizer, use_beta1: bool, max_momentums: list[float], base_momentums: list[float]
) -> None:
    """A fresh run of a momentum-cycling scheduler (CyclicLR, OneCycleLR), as torch: every group
    starts at its ``max_momentum`` and records ``max_momentum`` / ``base_momentum``."""
    for group, high, low in zip(optimizer.param_groups, max_momentums, base_momentums, strict=True):
        set_momentum(group, use_beta1, high)
        group["max_momentum"] = high
        group["base_momentum"] = low


def supports_momentum_cycling(optimizer: Optimizer, scheduler: str) -> bool:
    """Whether to cycle ``betas[0]`` (True) or ``momentum`` (False); ValueError if neither exists."""
    defaults = optimizer.defaults
    if "momentum" not in defaults and "betas" not in defaults:
        raise ValueError(
            f"{scheduler} with cycle_momentum=True needs an optimizer with a 'momentum' or 'betas' "
            f"hyperparameter; {type(optimizer).__name__} has neither (pass cycle_momentum=False)"
        )
    return "betas" in defaults


def _same_kind(name: str, current: object, new: object) -> None:
    """Raise ValueError unless a loaded state value `new` has the kind of the current value."""
    if current is None or new is None:
        return
    if isinstance(current, bool):
        ok = isinstance(new, bool)
    elif is_real(current):
        ok = is_real(new)
    elif isinstance(current, str):
        ok = isinstance(new, str)
    elif isinstance(current, (list, tuple)):
        ok = isinstance(new, (list, tuple))
    elif isinstance(current, Mapping):
        ok = isinstance(new, Mapping)
    else:
        ok = True
    if not ok:
        raise ValueError(
            f"state_dict[{name!r}] must be a {type(current).__name__} like this scheduler's, "
            f"got {new!r} of type {type(new).__name__}"
        )


# ----------------------------------------------------------------------------------- the base
class LRScheduler:
    """Base class of the learning-rate schedulers (torch 2.13's `LRScheduler` contract).

    Subclasses set their own attributes, validate their arguments, then call
    ``super().__init__(optimizer, last_epoch)``, which performs the initial step. They implement
    `_compute_lr` (the value of every group's lr at ``last_epoch``, usually computed from the
    group's current lr) and, when a closed form exists, `_closed_form_lr`.

    Args:
        optimizer: the optimizer whose ``param_groups`` are scheduled.
        last_epoch: the index of the last epoch, -1 for a fresh run.

    Raises:
        TypeError: `optimizer` is not an extensor Optimizer, or `last_epoch` is not an integer.
        ValueError: `last_epoch` < -1.
        KeyError: resuming (``last_epoch >= 0``) and a group has no ``initial_lr``.
    """

    optimizer: Optimizer
    base_lrs: list[Any]
    last_epoch: int
    _step_count: int
    _last_lr: list[Any]
    _is_initial: bool = False
    _get_lr_called_within_step: bool = False

    #: Attributes left out of `state_dict` (the optimizer, callables).
    _unsaved: ClassVar[frozenset[str]] = frozenset({"optimizer"})
    #: State entries holding one value per param group; their length is checked on load.
    _per_group_state: ClassVar[frozenset[str]] = frozenset({"base_lrs", "_last_lr"})
    #: State entries that only some life cycles create (e.g. a composite's initial step).
    _optional_state: ClassVar[frozenset[str]] = frozenset(
        {"_step_count", "_is_initial", "_get_lr_called_within_step"}
    )

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        optimizer = require_optimizer(optimizer)
        last_epoch = check_last_epoch(optimizer, last_epoch)
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        self.optimizer = optimizer
        self.base_lrs = group_values(optimizer, "initial_lr")
        self.last_epoch = last_epoch
        watch_first_step(optimizer)
        self._initial_step()

    # ---------------------------------------------------------------------------- stepping
    def _initial_step(self) -> None:
        """The step construction performs: ``last_epoch`` -1 -> 0 and the initial learning rates."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (or, deprecated, jump to `epoch`) and write the new lrs into the groups.

        Warns (UserWarning, torch's text) on the first call after construction if the optimizer
        has not stepped yet: call ``optimizer.step()`` before ``scheduler.step()``.

        Raises:
            ValueError: the schedule has no value there (e.g. OneCycleLR stepped past
                ``total_steps``), or `epoch` is negative. Nothing is changed then.
        """
        if epoch is not None:
            epoch = self._check_epoch(epoch)
        if self._step_count == 1 and not getattr(self.optimizer, "_opt_called", False):
            warnings.warn(STEP_ORDER_WARNING, UserWarning, stacklevel=2)
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._step_count += 1
        try:
            self._update_lr(epoch)
        except BaseException:
            self._step_count -= 1
            raise

    def _check_epoch(self, epoch: object) -> Any:
        """Validate an explicit epoch passed to `step`."""
        return require_integer("epoch", epoch, minimum=0)

    def _update_lr(self, epoch: Any = None) -> None:
        """Move to the next epoch (or to `epoch`), compute the lrs and write them into the groups.

        The lrs are computed before anything is written: if that fails, ``last_epoch`` is restored.
        """
        previous = self.last_epoch
        self._get_lr_called_within_step = True
        try:
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch
                closed = self._closed_form_lr()
                values = self.get_lr() if closed is None else closed
        except BaseException:
            self.last_epoch = previous
            raise
        finally:
            self._get_lr_called_within_step = False
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = group_values(self.optimizer, "lr")

    def get_lr(self) -> list[Any]:
        """The lrs at ``last_epoch`` as computed inside `step` (warns when called from outside it).

        Use `get_last_lr` to read the current rates; like torch, calling this outside `step` may
        have side effects (the cyclic schedulers write momentum) and warns.
        """
        if not self._get_lr_called_within_step:
            warnings.warn(
                "To get the last learning rate computed by the scheduler, please use `get_last_lr()`.",
                UserWarning,
                stacklevel=2,
            )
        return self._compute_lr()

    def _compute_lr(self) -> list[Any]:
        """Every group's lr at ``last_epoch`` (the chainable form)."""
        raise NotImplementedError(f"{type(self).__name__} does not define _compute_lr")

    def _closed_form_lr(self) -> list[Any] | None:
        """Every group's lr at ``last_epoch`` from ``base_lrs`` alone, or None if there is no closed form."""
        return None

    def get_last_lr(self) -> list[Any]:
        """The learning rate of every param group after the last step (a new list)."""
        return list(self._last_lr)

    # ------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer (and callables), as JSON-able Python values (deep copies).

        The keys are those of the torch 2.13 scheduler of the same name.
        """
        return {key: copy.deepcopy(value) for key, value in vars(self).items() if key not in self._unsaved}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a `state_dict`; it is validated completely before anything changes.

        Raises:
            TypeError: `state_dict` is not a mapping.
            ValueError: a key is missing or unknown, a value has the wrong kind, or a per-group
                list has the wrong length.
        """
        self._apply_state(self._prepare_state(state_dict))

    def _prepare_state(self, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        """Validate `state_dict` against this scheduler and return a private copy ready to apply."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        own = self.state_dict()
        missing = sorted(set(own) - set(state_dict) - self._optional_state)
        unknown = sorted(set(state_dict) - set(own) - self._optional_state)
        if missing or unknown:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: "
                + (f"missing keys {missing}" if missing else "")
                + ("; " if missing and unknown else "")
                + (f"unexpected keys {unknown}" if unknown else "")
            )
        groups = len(self.optimizer.param_groups)
        for key, value in state_dict.items():
            if key in own:
                _same_kind(key, own[key], value)
            if key in self._per_group_state and value is not None and len(value) != groups:
                raise ValueError(
                    f"state_dict[{key!r}] must hold one value per param group ({groups}), got {len(value)}"
                )
        if "last_epoch" in state_dict and not is_real(state_dict["last_epoch"]):
            raise ValueError(f"state_dict['last_epoch'] must be a number, got {state_dict['last_epoch']!r}")
        return {key: copy.deepcopy(value) for key, value in state_dict.items()}

    def _apply_state(self, state: dict[str, Any]) -> None:
        """Install a state prepared by `_prepare_state` (cannot fail)."""
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={getattr(self, 'last_epoch', None)})"
