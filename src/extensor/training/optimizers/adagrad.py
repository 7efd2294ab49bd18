"""Adagrad: per-weight learning rates shrinking with the sum of all past squared gradients.

Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic
Optimization" (JMLR 12, 2011), diagonal version, with torch's learning-rate decay.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numba import prange

from extensor.core.tensor import Array, ExTensor
from extensor.training.flat import sized_kernel
from extensor.training.optimizers.declare import Check, Flag
from extensor.training.optimizers.optimizer import Optimizer, OptimizerState, ParamGroup, Run, Window, _Pack

__all__ = ["Adagrad", "adagrad_kernel"]


@sized_kernel(fastmath=False)
def adagrad_kernel(
    param: Array, grad: Array, state_sum: Array, sign: Any, weight_decay: Any, eps: Any, neg_clr: Any
) -> None:
    """One Adagrad step over a flat run of parameters, in place, in the parameters' dtype.

    Per element, as torch.optim.Adagrad (``sign = -1`` to maximise; ``clr = lr / (1 + (t-1)·lr_decay)``)::

        g = sign · g + λ · p               (the decay term only when λ ≠ 0)
        s = s + g · g
        p = p - clr · g / (sqrt(s) + eps)
    """
    for i in prange(param.size):
        p = param[i]
        g = sign * grad[i]
        if weight_decay != 0:  # as torch, no term at all without decay: 0 · inf would turn an inf into NaN
            g = g + weight_decay * p
        s = state_sum[i] + g * g
        state_sum[i] = s
        param[i] = p + neg_clr * g / (np.sqrt(s) + eps)


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011), identical to `torch.optim.Adagrad`.

    With ``g = ∇f(θ)`` (negated when `maximize`), at step t of a parameter::

        γ̃ ← γ / (1 + (t − 1) η)               (lr_decay η)
        g ← g + λ θ                             (weight_decay λ)
        s ← s + g²                              (s starts at initial_accumulator_value τ)
        θ ← θ − γ̃ g / (√s + ε)

    As in torch, every parameter has state from construction on (``step`` 0, ``sum`` τ), so
    ``state_dict()`` lists them all before any step; parameters added later (`add_param_group`)
    or left without state by `load_state_dict` get theirs at their first step. τ is always the
    constructor's value: torch ignores a group's own ``initial_accumulator_value``.

    Args:
        params: iterable of ExTensors or of parameter-group dicts.
        lr: learning rate γ (default 1e-2).
        lr_decay: η (default 0).
        weight_decay: λ (default 0).
        initial_accumulator_value: τ, the starting value of s (default 0).
        eps: ε added to √s (default 1e-10).
        maximize: maximise the objective instead (keyword-only).

    State per parameter: ``step``, ``sum`` (s).
    """

    fuses_grad_scale = True  # a deferred clip rides on the sign (`Run.gradient_sign`)
    hyperparameters = (
        Check("lr >= 0", "learning rate"),
        Check("lr_decay >= 0", "lr_decay value"),
        Check("weight_decay >= 0", "weight_decay value"),
        Check("initial_accumulator_value >= 0", "initial_accumulator_value value"),
        Check("eps >= 0", "epsilon value"),
        Flag("maximize"),
    )
    buffers = ("sum",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "maximize": maximize,
        }
        #: per pack, the indices of the parameters without state (none at construction)
        self._unstated: dict[_Pack, set[int]] = {}
        self._loading: set[ExTensor] = set()
        super().__init__(params, defaults)
        for packs in self._packs:
            for pack in packs:
                pack.state["sum"] = np.full_like(pack.buffer.data, initial_accumulator_value)
        self.state = _AdagradState(self)

    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """As `Optimizer.add_param_group`; the new parameters get their state at their first step."""
        super().add_param_group(param_group)
        for pack in self._packs[-1]:
            self._unstated[pack] = set(range(len(pack.buffer.tensors)))

    def _step_pack(
        self, group: ParamGroup, pack: _Pack, window: Window | None = None, sums: Array | None = None
    ) -> None:
        fresh = self._unstated.get(pack)
        if fresh:  # torch's lazy initialisation: s = τ for parameters first stepped now
            present = pack.buffer.present
            offsets = pack.buffer.offsets
            start, stop = (0, pack.buffer.numel) if window is None else (window.lo, window.hi)
            state_sum = (pack if window is None else window).state_array("sum")
            for index in [index for index in fresh if present[index]]:
                lo, hi = max(int(offsets[index]), start), min(int(offsets[index + 1]), stop)
                if lo < hi:
                    state_sum[lo - start : hi - start] = self.defaults["initial_accumulator_value"]
                fresh.discard(index)
        super()._step_pack(group, pack, window, sums)

    def _update(self, group: ParamGroup, run: Run) -> None:
        clr = float(group["lr"]) / (1 + (run.step - 1) * float(group["lr_decay"]))
        adagrad_kernel(
            run.param,
            run.grad,
            run.buffer("sum"),
            run.gradient_sign(group["maximize"]),
            run.scalar(group["weight_decay"]),
            run.scalar(group["eps"]),
            run.scalar(-clr),
        )

    # ----------------------------------------------------------------- state from construction on
    def _param_state(self, param: ExTensor, snapshot: bool) -> dict[str, Any]:
        pack, index = self._where[param]
        if index in self._unstated.get(pack, ()):
            return {}
        step = pack.steps[index : index + 1].reshape(())
        result: dict[str, Any] = {"step": step.copy() if snapshot else step}
        segment = pack.buffer.segment(index)
        for name, array in pack.state.items():
            view = array[segment].reshape(param.shape)
            result[name] = view.copy() if snapshot else view
        return result

    def _check_loaded_state(
        self, param_id: Any, param: ExTensor, hyper: ParamGroup, param_state: Any
    ) -> tuple[float, dict[str, Array]] | None:
        checked = super()._check_loaded_state(param_id, param, hyper, param_state)
        if checked is not None:
            self._loading.add(param)
        return checked

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """As `Optimizer.load_state_dict`; parameters the state dict gives no state start afresh
        (s = τ) at their next step, as in torch."""
        self._loading = set()
        try:
            super().load_state_dict(state_dict)
            self._unstated = {
                pack: {index for index, param in enumerate(pack.buffer.tensors) if param not in self._loading}
                for packs in self._packs
                for pack in packs
            }
        finally:
            self._loading = set()


class _AdagradState(OptimizerState):
    """`Adagrad.state`: a parameter has state from construction on, not only once stepped."""

    def __contains__(self, param: object) -> bool:
        where = self._where.get(param)  # type: ignore[call-overload]
        optimizer = self._optimizer()
        if where is None or not isinstance(optimizer, Adagrad):
            return False
        return where[1] not in optimizer._unstated.get(where[0], ())
