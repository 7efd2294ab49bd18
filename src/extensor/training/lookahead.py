"""`Lookahead`: k steps forward, 1 step back, around any extensor optimizer.

Zhang, Lucas, Hinton & Ba 2019, "Lookahead Optimizer: k steps forward, 1 step back"
(arXiv:1907.08610), Algorithm 1: the inner ("fast") optimizer takes `k` steps from the slow
weights φ, then the slow weights move part of the way towards where it arrived and the fast
weights restart from there::

    θ ← inner step (k times)
    φ ← φ + α · (θ - φ)
    θ ← φ

Slow weights start equal to the parameters when the wrapper is built (as in the paper and in
`optax.lookahead`, whose ``fast``/``slow`` parameters this reproduces). They are kept flat, one
array per pack of the inner optimizer, so a synchronisation is one numba kernel call per pack
over ``pack.buffer.data``. The bookkeeping follows timm's ``Lookahead``: each param group carries
``lookahead_k``, ``lookahead_alpha`` and its step counter ``lookahead_step``, and each
parameter's state the slow weights as ``"lookahead_slow_buff"``.
"""

from __future__ import annotations

import numbers
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
from numba import prange

from extensor.core.tensor import Array, ExTensor
from extensor.training.flat import sized_kernel
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Window, _Pack

__all__ = ["SLOW_KEY", "Lookahead", "lookahead_kernel"]

#: The state key of a parameter's slow weights (timm's name).
SLOW_KEY = "lookahead_slow_buff"


@sized_kernel()
def lookahead_kernel(fast: Array, slow: Array, alpha: Any) -> None:
    """The synchronisation in place: ``φ ← φ + α · (θ - φ)``, then ``θ ← φ`` (`alpha` in the dtype)."""
    for i in prange(fast.size):
        s = slow[i]
        s = s + alpha * (fast[i] - s)
        slow[i] = s
        fast[i] = s


def _check_k(value: object, where: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Invalid lookahead steps k{where}: {value!r} (expected an integer >= 1)")
    if value < 1:
        raise ValueError(f"Invalid lookahead steps k{where}: {value} (expected k >= 1)")
    return int(value)


def _check_alpha(value: object, where: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Invalid slow update rate alpha{where}: {value!r} (expected a real number)")
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"Invalid slow update rate alpha{where}: {value} (expected 0 <= alpha <= 1)")
    return number


def _check_step(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"Invalid lookahead_step{where}: {value!r} (expected an integer >= 0)")
    return int(value)


def _check_group(group: Mapping[str, Any], where: str) -> None:
    """Validate the lookahead entries a group has."""
    if "lookahead_k" in group:
        _check_k(group["lookahead_k"], where)
    if "lookahead_alpha" in group:
        _check_alpha(group["lookahead_alpha"], where)
    if "lookahead_step" in group:
        _check_step(group["lookahead_step"], where)


class Lookahead(Optimizer):
    """Lookahead around an extensor optimizer: every `k` steps, ``φ ← φ + α(θ - φ)`` and ``θ ← φ``.

    The wrapper *is* the optimizer to use (and to schedule): it shares the inner optimizer's
    ``param_groups`` (so ``StepLR(lookahead, ...)`` schedules the inner lr), ``state`` (plus each
    parameter's ``"lookahead_slow_buff"``), `zero_grad` and `step(closure)`. The parameters hold
    the fast weights; ``state[p]["lookahead_slow_buff"]`` the slow ones.

    Args:
        optimizer: the inner ("fast") extensor optimizer; it should not be stepped directly anymore.
        k: fast steps per synchronisation, an integer >= 1 (default 5).
        alpha: the slow step size, in [0, 1] (default 0.5).

    A group may set its own ``"lookahead_k"`` / ``"lookahead_alpha"`` (a key of the group dict given
    to the inner optimizer, or changed later like an lr); ``"lookahead_step"`` counts its steps.
    `state_dict()` is the inner one with those group keys and the slow weights per parameter.

    Raises:
        TypeError: `optimizer` is not an extensor Optimizer (or already a Lookahead: ValueError),
            `k` is not an integer, `alpha` not a real number.
        ValueError: ``k < 1`` or `alpha` outside [0, 1].
    """

    def __init__(self, optimizer: Optimizer, k: int = 5, alpha: float = 0.5) -> None:
        if isinstance(optimizer, Lookahead):
            raise ValueError("the optimizer is already a Lookahead; wrap the inner optimizer once")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"Lookahead wraps an extensor.training.optimizers.Optimizer, got {type(optimizer).__name__}"
            )
        k, alpha = _check_k(k), _check_alpha(alpha)
        for position, group in enumerate(optimizer.param_groups):
            _check_group(group, f" in param group {position}")
        self.optimizer = optimizer
        self.defaults = {**optimizer.defaults, "lookahead_k": k, "lookahead_alpha": alpha}
        self.param_groups = optimizer.param_groups
        self._packs = optimizer._packs
        self._where = optimizer._where
        self._slow: dict[_Pack, Array] = {}
        self._ensure_slow()
        self.state = _LookaheadState(self)  # type: ignore[assignment]

    @property
    def k(self) -> int:
        """The default number of fast steps per synchronisation."""
        return int(self.defaults["lookahead_k"])

    @property
    def alpha(self) -> float:
        """The default slow step size."""
        return float(self.defaults["lookahead_alpha"])

    def _ensure_slow(self) -> None:
        """Give every group its lookahead entries and every pack its slow weights (the current
        parameters), including groups added to the inner optimizer after wrapping."""
        for group, packs in zip(self.param_groups, self._packs, strict=True):
            group.setdefault("lookahead_k", self.defaults["lookahead_k"])
            group.setdefault("lookahead_alpha", self.defaults["lookahead_alpha"])
            group.setdefault("lookahead_step", 0)
            for pack in packs:
                if pack not in self._slow:
                    self._slow[pack] = pack.buffer.data.copy()

    # ------------------------------------------------------------------------------- stepping
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One inner step (returning what `closure` returns); then each group whose step count
        reaches a multiple of its ``lookahead_k`` synchronises: one kernel call per pack."""
        self._ensure_slow()
        loss = self.optimizer.step(closure)
        self._opt_called = True  # schedulers' "optimizer.step() was called" mark
        for group, packs in zip(self.param_groups, self._packs, strict=True):
            group["lookahead_step"] += 1
            if group["lookahead_step"] % group["lookahead_k"] == 0:
                alpha = group["lookahead_alpha"]
                for pack in packs:
                    slow = self._slow[pack]
                    lookahead_kernel(pack.buffer.data, slow, slow.dtype.type(alpha))
        return loss

    def _step_pack(
        self, group: ParamGroup, pack: _Pack, window: Window | None = None, sums: Array | None = None
    ) -> None:
        raise NotImplementedError(
            "Lookahead steps whole groups through step(); it cannot update single packs or shards "
            "(a ShardedOptimizer must wrap the inner optimizer, not the Lookahead)"
        )

    def zero_grad(self, set_to_none: bool = True) -> None:
        """The inner optimizer's `zero_grad`."""
        self.optimizer.zero_grad(set_to_none)

    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group to the inner optimizer; its slow weights start at its parameters' values."""
        group = dict(param_group) if isinstance(param_group, Mapping) else param_group
        if isinstance(group, dict):
            _check_group(group, " in the new param group")
            group.setdefault("lookahead_k", self.defaults["lookahead_k"])
            group.setdefault("lookahead_alpha", self.defaults["lookahead_alpha"])
            group.setdefault("lookahead_step", 0)
        self.optimizer.add_param_group(group)
        self._ensure_slow()

    # ---------------------------------------------------------------------------------- state
    def _slow_view(self, param: ExTensor) -> Array:
        pack, index = self._where[param]
        return self._slow[pack][pack.buffer.segment(index)].reshape(param.shape)

    def state_dict(self) -> dict[str, Any]:
        """The inner optimizer's state dict, every parameter's entry also holding its slow weights
        (``"lookahead_slow_buff"``, a copy) and every group its ``lookahead_*`` entries."""
        self._ensure_slow()
        inner = self.optimizer.state_dict()
        state: dict[int, dict[str, Any]] = {}
        index = 0
        for group in self.param_groups:
            for param in group["params"]:
                entry = dict(inner["state"].get(index, {}))
                entry[SLOW_KEY] = self._slow_view(param).copy()
                state[index] = entry
                index += 1
        return {"state": state, "param_groups": inner["param_groups"]}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a `state_dict()`; everything is validated before anything is written.

        A parameter whose entry has no ``"lookahead_slow_buff"`` (e.g. the inner optimizer's own
        state dict) gets slow weights equal to its current value.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict expects a dict, got {type(state_dict).__name__}")
        for key in ("state", "param_groups"):
            if key not in state_dict:
                raise ValueError(
                    f"the state dict has no {key!r} entry (keys: {sorted(map(str, state_dict))})"
                )
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_state, Mapping):
            raise TypeError(f"state_dict['state'] must be a dict, got {type(saved_state).__name__}")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"the loaded state dict has {len(saved_groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        owner: dict[Any, ExTensor] = {}
        for position, (saved, group) in enumerate(zip(saved_groups, self.param_groups, strict=True)):
            if not isinstance(saved, Mapping) or "params" not in saved:
                raise ValueError(f"loaded parameter group {position} is not a dict with a 'params' entry")
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"loaded parameter group {position} has {len(saved['params'])} parameters, "
                    f"this optimizer's group {position} has {len(group['params'])}"
                )
            _check_group(saved, f" in loaded parameter group {position}")
            owner.update(zip(saved["params"], group["params"], strict=True))
        slow: list[tuple[ExTensor, Array]] = []
        inner_state: dict[Any, Any] = {}
        for param_id, entry in saved_state.items():
            if isinstance(entry, Mapping) and SLOW_KEY in entry:
                param = owner.get(param_id)
                if param is not None:
                    slow.append((param, _checked_slow(param_id, param, entry[SLOW_KEY])))
                entry = {key: value for key, value in entry.items() if key != SLOW_KEY}
            inner_state[param_id] = entry
        self.optimizer.load_state_dict({"state": inner_state, "param_groups": saved_groups})
        # validated and loaded by the inner optimizer: now the slow weights (cannot fail)
        self._ensure_slow()
        loaded = {id(param): array for param, array in slow}
        for group in self.param_groups:
            for param in group["params"]:
                np.copyto(self._slow_view(param), loaded.get(id(param), param.data))

    def __repr__(self) -> str:
        inner = repr(self.optimizer).replace("\n", "\n    ")
        return f"Lookahead(k={self.k}, alpha={self.alpha},\n    {inner}\n)"


def _checked_slow(param_id: Any, param: ExTensor, value: Any) -> Array:
    """A loaded slow-weight array, checked against its parameter's shape and dtype."""
    array = np.asarray(value)
    where = f"loaded state of parameter {param_id!r}"
    if array.shape != param.shape:
        raise ValueError(
            f"{where}: {SLOW_KEY!r} has shape {array.shape}, the parameter has shape {param.shape}"
        )
    if array.dtype != param.dtype:
        raise TypeError(
            f"{where}: {SLOW_KEY!r} has dtype {array.dtype}, the parameter has dtype {param.dtype}"
        )
    return array


class _LookaheadState(Mapping[ExTensor, dict[str, Array]]):
    """`lookahead.state`: the inner optimizer's ``state[p]`` plus the slow weights, as live views."""

    def __init__(self, lookahead: Lookahead) -> None:
        self._lookahead = weakref.ref(lookahead)  # no reference cycle through the optimizer

    def _owner(self) -> Lookahead:
        lookahead = self._lookahead()
        if lookahead is None:
            raise ReferenceError("the Lookahead this state belongs to no longer exists")
        return lookahead

    def __getitem__(self, param: ExTensor) -> dict[str, Array]:
        lookahead = self._owner()
        entry = lookahead.optimizer.state[param]  # KeyError for a parameter it does not optimize
        lookahead._ensure_slow()
        entry[SLOW_KEY] = lookahead._slow_view(param)
        return entry

    def __contains__(self, param: object) -> bool:
        return param in self._owner()._where

    def __iter__(self) -> Iterator[ExTensor]:
        return iter(list(self._owner()._where))

    def __len__(self) -> int:
        return len(self._owner()._where)
