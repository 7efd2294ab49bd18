"""CyclicLR: cyclical learning rates (Smith, 2017, "Cyclical Learning Rates for Training Neural
Networks", arXiv:1506.01186), with the momentum cycled inversely.

The lr climbs from `base_lr` to `max_lr` over `step_size_up` steps and back over
`step_size_down`; the amplitude is scaled per cycle (``triangular``, ``triangular2``) or per
step (``exp_range``) or by a custom function. Stepped once per batch. The values come from the
step (`curves.cyclic_position`), so they equal `curves.cyclic_lr` exactly.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from extensor.training.schedulers import curves
from extensor.training.schedulers._checks import require_callable, require_positive, require_real
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

__all__ = ["CyclicLR"]

_MODES = ("triangular", "triangular2", "exp_range")


class CyclicLR(LRScheduler):
    """Cycle the lr between `base_lr` and `max_lr` (and the momentum between `max_momentum` and
    `base_momentum`): ``lr = base_lr + (max_lr - base_lr) * h(step) * scale``, where ``h`` is the
    triangle wave in [0, 1].

    Args:
        optimizer: the scheduled optimizer.
        base_lr, max_lr: the lr bounds, one value or one per param group. Construction sets
            every group's lr to its `base_lr`.
        step_size_up: steps in the rising half of a cycle (default 2000, > 0).
        step_size_down: steps in the falling half (default: `step_size_up`, >= 0).
        mode: ``"triangular"`` (constant amplitude), ``"triangular2"`` (halved every cycle) or
            ``"exp_range"`` (``gamma ** step``); ignored when `scale_fn` is given.
        gamma: the base of ``exp_range``'s scaling (default 1.0).
        scale_fn: a custom amplitude function of the cycle number or the step (see `scale_mode`).
        scale_mode: ``"cycle"`` or ``"iterations"``: what `scale_fn` is a function of.
        cycle_momentum: cycle SGD's ``momentum`` or Adam's ``betas[0]`` (default True).
        base_momentum, max_momentum: the momentum bounds, one value or one per group.
        last_epoch: the index of the last step (-1 for a fresh run).

    Raises:
        ValueError: an unknown `mode` without `scale_fn` (torch's condition), bad step sizes or
            lists of the wrong length, or ``cycle_momentum`` with an optimizer that has neither
            ``momentum`` nor ``betas``.
    """

    _unsaved: ClassVar[frozenset[str]] = frozenset({"optimizer", "_scale_fn_ref", "_scale_fn_custom"})
    _per_group_state: ClassVar[frozenset[str]] = frozenset(
        {"base_lrs", "_last_lr", "max_lrs", "base_momentums", "max_momentums"}
    )

    def __init__(
        self,
        optimizer: Optimizer,
        base_lr: float | list[float],
        max_lr: float | list[float],
        step_size_up: float = 2000,
        step_size_down: float | None = None,
        mode: str = "triangular",
        gamma: float = 1.0,
        scale_fn: Callable[[float], float] | None = None,
        scale_mode: str = "cycle",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.8,
        max_momentum: float | list[float] = 0.9,
        last_epoch: int = -1,
    ) -> None:
        optimizer = require_optimizer(optimizer)
        last_epoch = check_last_epoch(optimizer, last_epoch)
        base_lrs = per_group("base_lr", base_lr, optimizer)
        max_lrs = per_group("max_lr", max_lr, optimizer)
        up = float(require_positive("step_size_up", step_size_up))
        down = up if step_size_down is None else float(require_real("step_size_down", step_size_down))
        if down < 0:
            raise ValueError(f"step_size_down must be >= 0, got {step_size_down}")
        if scale_fn is None and mode not in _MODES:
            raise ValueError(
                f"mode is invalid and scale_fn is None: mode must be one of {_MODES}, got {mode!r}"
            )
        if scale_fn is not None:
            require_callable("scale_fn", scale_fn)
        if scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"scale_mode must be 'cycle' or 'iterations', got {scale_mode!r}")
        gamma = require_real("gamma", gamma)
        use_beta1 = False
        if cycle_momentum:
            use_beta1 = supports_momentum_cycling(optimizer, "CyclicLR")
            base_momentums = per_group("base_momentum", base_momentum, optimizer)
            max_momentums = per_group("max_momentum", max_momentum, optimizer)

        # everything is valid: from here on the param groups are written
        self.optimizer = optimizer
        if last_epoch == -1:
            for group, lr in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = lr
        self.max_lrs = max_lrs
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        self._init_scale_fn()
        self.cycle_momentum = bool(cycle_momentum)
        if self.cycle_momentum:
            self.use_beta1 = use_beta1
            self.base_momentums = base_momentums
            self.max_momentums = max_momentums
            if last_epoch == -1:
                start_momentum_cycle(optimizer, use_beta1, max_momentums, base_momentums)
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def _init_scale_fn(self) -> None:
        """Resolve the amplitude function (and what it is a function of) from mode/gamma/scale_fn."""
        self._scale_fn_ref, self.scale_mode = curves.cyclic_scale_function(
            self.mode, self.gamma, self._scale_fn_custom, self.scale_mode
        )

    def scale_fn(self, x: float) -> float:
        """The amplitude scale at `x` (the cycle number or the step, per ``scale_mode``)."""
        return self._scale_fn_ref(x)

    def _compute_lr(self) -> list[Any]:
        cycle, factor = curves.cyclic_position(self.last_epoch, self.total_size, self.step_ratio)
        x = cycle if self.scale_mode == "cycle" else self.last_epoch
        # the scale function is called once per group and value, as torch calls it (a custom,
        # stateful scale_fn sees the same calls)
        lrs = [
            base + (peak - base) * factor * self.scale_fn(x)
            for base, peak in zip(self.base_lrs, self.max_lrs, strict=True)
        ]
        if self.cycle_momentum:
            momentums = [
                high - (high - low) * factor * self.scale_fn(x)
                for low, high in zip(self.base_momentums, self.max_momentums, strict=True)
            ]
            for group, momentum in zip(self.optimizer.param_groups, momentums, strict=True):
                set_momentum(group, self.use_beta1, momentum)
        return lrs

    def state_dict(self) -> dict[str, Any]:
        """As `LRScheduler.state_dict`, plus ``_scale_fn_custom``: None for no or a plain-function
        `scale_fn`, a copy of its ``__dict__`` for a callable object."""
        state = super().state_dict()
        custom = self._scale_fn_custom
        saved = None
        if custom is not None and not isinstance(custom, types.FunctionType) and hasattr(custom, "__dict__"):
            saved = dict(vars(custom))
        state["_scale_fn_custom"] = saved
        return state

    def _prepare_state(self, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        state = super()._prepare_state(state_dict)
        saved = state["_scale_fn_custom"]
        if saved is not None and (
            not isinstance(saved, Mapping) or not hasattr(self._scale_fn_custom, "__dict__")
        ):
            raise ValueError(
                f"state_dict['_scale_fn_custom'] cannot be restored into this scheduler: {saved!r}"
            )
        if state["mode"] not in _MODES and self._scale_fn_custom is None:
            raise ValueError(f"state_dict['mode'] must be one of {_MODES}, got {state['mode']!r}")
        return state

    def _apply_state(self, state: dict[str, Any]) -> None:
        saved = state.pop("_scale_fn_custom")
        super()._apply_state(state)
        if saved is not None:
            vars(self._scale_fn_custom).update(saved)
        self._init_scale_fn()
