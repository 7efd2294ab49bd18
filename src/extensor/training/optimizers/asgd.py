"""ASGD: stochastic gradient descent with a decaying step size and a running average of the iterates.

Polyak & Juditsky, "Acceleration of Stochastic Approximation by Averaging" (SIAM J. Control
Optim. 30(4), 1992), with the step size schedule ``η_t = γ / (1 + λ γ t)^α`` of Xu, "Towards
Optimal One Pass Large Scale Learning with Averaged Stochastic Gradient Descent"
(arXiv:1107.2490, 2011), as torch.optim.ASGD implements them.

η and the averaging rate μ are per-parameter scalars (0-d tensors in torch's state): they are
kept here per tensor, one float32 pair per tensor of a pack, and the kernel reads them per
segment of the flat run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numba import njit, prange

from extensor.core.tensor import Array, ExTensor
from extensor.training.flat import parallel_chunks, sized_kernel
from extensor.training.optimizers.declare import Check, Flag, Real
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Run, Window, _Pack

__all__ = ["ASGD", "asgd_kernel"]

#: The per-tensor scalars kept beside the flat state, in torch's key order.
SCALARS = ("eta", "mu")


@njit(cache=True, inline="always")
def _asgd_piece(
    param: Array, grad: Array, ax: Array, lo: int, hi: int,
    sign: Any, weight_decay: Any, decay: Any, neg_eta: Any, mu: Any,
) -> None:  # fmt: skip
    """Elements ``lo:hi`` of one tensor, whose η and μ give `decay`, `neg_eta` and `mu`."""
    average = mu != 1
    for i in range(lo, hi):
        p = param[i]
        g = sign * grad[i]
        if weight_decay != 0:  # as torch, no term at all without decay: 0 · inf would be NaN
            g = g + weight_decay * p
        p = p * decay
        p = p + neg_eta * g
        param[i] = p
        if average:
            ax[i] = ax[i] + (p - ax[i]) * mu
        else:  # torch copies the parameter while μ = 1
            ax[i] = p


@sized_kernel(fastmath=False)
def asgd_kernel(
    param: Array,
    grad: Array,
    ax: Array,
    offsets: Array,
    bounds: Array,
    decay: Array,
    neg_eta: Array,
    mu: Array,
    sign: Any,
    weight_decay: Any,
) -> None:
    """One ASGD step over a flat run of tensors (``offsets``), in place, in the parameters' dtype.

    Per element of tensor k, as torch.optim.ASGD (``sign = -1`` to maximise;
    ``decay[k] = 1 - λ η_k``, ``neg_eta[k] = -η_k``)::

        g = sign · g + weight_decay · p      (the decay term only when weight_decay ≠ 0)
        p = p · (1 - λ η) - η g
        a = a + μ (p - a)  if μ ≠ 1, else a = p

    Chunk c covers elements ``bounds[c]:bounds[c + 1]`` and walks the tensors it meets.
    """
    for chunk in prange(bounds.size - 1):
        lo, hi = bounds[chunk], bounds[chunk + 1]
        k = np.searchsorted(offsets, lo, side="right") - 1
        position = lo
        while position < hi:
            stop = min(offsets[k + 1], hi)
            if stop > position:
                _asgd_piece(param, grad, ax, position, stop, sign, weight_decay, decay[k], neg_eta[k], mu[k])
            position = max(position, stop)
            k += 1


def _schedule(group: ParamGroup, step: float) -> tuple[float, float]:
    """(η, μ) after a parameter's step `step`, in Python double precision exactly as torch."""
    lr, lambd, alpha, t0 = (float(group[key]) for key in ("lr", "lambd", "alpha", "t0"))
    eta: Any = lr / ((1 + lambd * lr * step) ** alpha)
    mu = 1 / max(1, step - t0)
    return float(eta.real), float(mu)  # torch keeps the real part of a complex power


class ASGD(Optimizer):
    """Averaged SGD (Polyak & Juditsky, 1992), identical to `torch.optim.ASGD`.

    With ``g = ∇f(θ)`` (negated when `maximize`), at a parameter's step t (η = γ and μ = 1
    before its first step)::

        g ← g + w θ                          (weight_decay w)
        θ ← θ (1 − λ η) − η g
        ā ← ā + μ (θ − ā)   if μ ≠ 1, else ā ← θ
        η ← γ / (1 + λ γ t)^α,   μ ← 1 / max(1, t − t0)

    so η is the one computed after the previous step (with that step's lr) and averaging
    starts after step t0. ``state[p]["ax"]`` is the average ā.

    Args:
        params: iterable of ExTensors or of parameter-group dicts.
        lr: learning rate γ (default 0.01).
        lambd: decay term λ (default 1e-4).
        alpha: power α of the step size schedule (default 0.75).
        t0: the step after which averaging starts (default 1e6).
        weight_decay: L2 penalty w (default 0).
        maximize: maximise the objective instead (keyword-only).

    State per parameter: ``step``, ``eta`` and ``mu`` (0-d float32 arrays, like torch's), ``ax``.
    """

    fuses_grad_scale = True  # a deferred clip rides on the sign (`Run.gradient_sign`)
    hyperparameters = (
        Check("lr >= 0", "learning rate"),
        Check("weight_decay >= 0", "weight_decay value"),
        Real("lambd"),
        Real("alpha"),
        Real("t0"),
        Flag("maximize"),
    )
    buffers = ("ax",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lambd: float = 1e-4,
        alpha: float = 0.75,
        t0: float = 1e6,
        weight_decay: float = 0,
        *,
        maximize: bool = False,
    ) -> None:
        #: per pack, (tensors, 2) float32: each tensor's η and μ
        self._scalars: dict[_Pack, Array] = {}
        self._loading: dict[ExTensor, Array] = {}
        self._stepping: _Pack | None = None
        defaults = {
            "lr": lr,
            "lambd": lambd,
            "alpha": alpha,
            "t0": t0,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _scalars_of(self, pack: _Pack) -> Array:
        scalars = self._scalars.get(pack)
        if scalars is None:
            scalars = self._scalars[pack] = np.ones((len(pack.buffer.tensors), 2), dtype=np.float32)
        return scalars

    def _step_pack(
        self, group: ParamGroup, pack: _Pack, window: Window | None = None, sums: Array | None = None
    ) -> None:
        present = pack.buffer.present
        scalars = self._scalars_of(pack)
        scalars[present & (pack.steps == 0)] = (np.float32(group["lr"]), np.float32(1))  # torch's init
        self._stepping = pack
        try:
            super()._step_pack(group, pack, window, sums)
        finally:
            self._stepping = None
        steps = pack.steps[present]
        if steps.size == 0:
            return
        if (steps == steps[0]).all():  # the common case: one schedule value for every tensor
            scalars[present] = _schedule(group, float(steps[0]))
        else:
            unique, inverse = np.unique(steps, return_inverse=True)
            values = np.array([_schedule(group, float(step)) for step in unique], dtype=np.float32)
            scalars[present] = values[inverse]

    def _update(self, group: ParamGroup, run: Run) -> None:
        pack = self._stepping
        assert pack is not None, "ASGD steps through _step_pack"
        scalars = self._scalars_of(pack)
        offsets = run.offsets
        if offsets.size == len(pack.buffer.tensors) + 1 and run.param.size == pack.buffer.numel:
            eta, mu = scalars[:, 0], scalars[:, 1]
        else:  # each segment's tensor: the last one starting at or before it (skips empty tensors)
            start = run._offsets[0]  # the run's first element within the pack
            index = np.searchsorted(pack.buffer.offsets, start + offsets[:-1], side="right") - 1
            index = np.minimum(index, len(pack.buffer.tensors) - 1)
            eta, mu = scalars[index, 0], scalars[index, 1]
        eta64 = eta.astype(np.float64)  # torch: eta.item(), then Python arithmetic
        chunks = parallel_chunks(run.param.size)
        asgd_kernel(
            run.param,
            run.grad,
            run.buffer("ax"),
            offsets,
            np.arange(chunks + 1, dtype=np.int64) * run.param.size // chunks,
            (1 - float(group["lambd"]) * eta64).astype(run.dtype),
            (-eta64).astype(run.dtype),
            mu.astype(run.dtype),
            run.gradient_sign(group["maximize"]),
            run.scalar(group["weight_decay"]),
        )

    # ----------------------------------------------------------------- η and μ in the state
    def _param_state(self, param: ExTensor, snapshot: bool) -> dict[str, Any]:
        state = super()._param_state(param, snapshot)
        if not state:
            return state
        pack, index = self._where[param]
        scalars = self._scalars_of(pack)
        result = {"step": state.pop("step")}
        for column, name in enumerate(SCALARS):
            view = scalars[index, column : column + 1].reshape(())
            result[name] = view.copy() if snapshot else view
        result.update(state)
        return result

    def _check_loaded_state(
        self, param_id: Any, param: ExTensor, hyper: ParamGroup, param_state: Any
    ) -> tuple[float, dict[str, Array]] | None:
        if not isinstance(param_state, Mapping) or not param_state:
            return super()._check_loaded_state(param_id, param, hyper, param_state)
        where = f"loaded state of parameter {param_id!r}"
        unknown = sorted(map(str, set(param_state) - {"step", *SCALARS, *self.state_names}))
        if unknown:
            raise ValueError(f"{where} has unknown keys {unknown}; ASGD keeps ['step', 'eta', 'mu', 'ax']")
        rest = {key: value for key, value in param_state.items() if key not in SCALARS}
        checked = super()._check_loaded_state(param_id, param, hyper, rest)
        missing = [name for name in SCALARS if name not in param_state]
        if checked is None or missing:
            raise ValueError(f"{where} lacks {missing or ['step', *self.state_names]}")
        values = []
        for name in SCALARS:
            raw = np.asarray(param_state[name])
            if raw.size != 1 or raw.dtype.kind not in "fiu":
                raise ValueError(f"{where}: {name!r} must be one real number, got {raw!r}")
            values.append(raw.item())
        self._loading[param] = np.array(values, dtype=np.float32)
        return checked

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a `state_dict()` (ours, or torch's), η and μ included; validated before writing."""
        self._loading = {}
        try:
            super().load_state_dict(state_dict)
            for packs in self._packs:
                for pack in packs:
                    scalars = self._scalars_of(pack)
                    for index, param in enumerate(pack.buffer.tensors):
                        scalars[index] = self._loading.get(param, (1, 1))
        finally:
            self._loading = {}
