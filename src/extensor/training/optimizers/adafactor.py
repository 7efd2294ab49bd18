"""Adafactor: adaptive step sizes from a factored second moment, with relative step sizes and update clipping.

Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost" (ICML 2018,
arXiv:1804.04235), in torch.optim.Adafactor's formulation (torch 2.13): the mean rather than the
sum of squared gradients, ε1 applied to the variance estimate rather than to the factors, and `lr`
capping the relative step size and scaling the decoupled weight decay.

The second moment of a tensor of two or more dimensions is kept as a row factor and a column factor
over its last two dimensions (``row_var`` of shape ``[..., rows, 1]``, ``col_var`` of shape
``[..., 1, cols]``); that of a vector or scalar as a full ``variance``. These are per tensor, not
flat: each pack keeps its tensors' factors in three concatenated arrays, which ``state[p]`` and
`state_dict` present with torch's keys and shapes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from numba import prange

from extensor.core.tensor import Array, ExTensor
from extensor.training.flat import sized_kernel
from extensor.training.optimizers.declare import Flag, Says, require_real
from extensor.training.optimizers.elementwise import lerp
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Window, _Pack

__all__ = ["Adafactor", "adafactor_kernel"]


@sized_kernel(fastmath=False)
def adafactor_kernel(
    param: Array, grad: Array, offsets: Array, layout: Array, counts: Array,
    rows: Array, cols: Array, variance: Array, work: Array, first: int, last: int,
    sign: Any, decay: Any, weight: Any, one_minus_weight: Any, one: Any, eps1: Any, eps1_sq: Any,
    rho: float, eps2: float, d: float,
) -> None:  # fmt: skip
    """One Adafactor step of tensors ``first:last`` of a pack, in place, in the parameters' dtype.

    Tensor k is ``param[offsets[k]:offsets[k + 1]]``; ``layout[k]`` is ``(batch, R, C, row at,
    col at, variance at)`` -- R = 0 for a vector (factors in `rows`, `cols` from the given
    positions, else its `variance`) -- and ``counts[k] = (R, C)`` in the element dtype. With
    ``g = sign · ∇`` and ``w = t^τ`` (`weight`, ``one_minus_weight = 1 - w``), per tensor::

        α = max(ε2, ‖θ‖ / √n) · ρ                      (before the decay)
        R = lerp(R, mean_j g², w),  C = lerp(C, mean_i g², w),  V = R C / max(mean_i R, ε1)
        v = lerp(v, g², w),  V = v                      (vectors)
        u = g / √max(V, ε1²),   θ = θ · decay − α / max(1, ‖u‖ / (√n d)) · u

    Norms are accumulated in float64 and rounded to the element dtype (`work[k]`), as torch's
    ``.norm().item()``; α and the clipping are computed in double precision, as torch's Python.
    """
    for k in prange(first, last):
        lo, hi = offsets[k], offsets[k + 1]
        n = hi - lo
        if n == 0:
            continue
        batch, height, width = layout[k, 0], layout[k, 1], layout[k, 2]
        row_at, col_at, var_at = layout[k, 3], layout[k, 4], layout[k, 5]
        total = 0.0
        for i in range(lo, hi):
            total += float(param[i]) * float(param[i])
        work[k, 0] = math.sqrt(total)
        rms = float(work[k, 0]) / math.sqrt(n)
        alpha = (rms if rms > eps2 else eps2) * rho  # Python's max(eps2, rms): eps2 unless rms is larger
        squares = 0.0
        if height == 0:  # a vector or scalar: the full second moment
            for i in range(n):
                g = sign * grad[lo + i]
                v = lerp(variance[var_at + i], g * g, weight, one_minus_weight)
                variance[var_at + i] = v
                v = v if v >= eps1_sq or v != v else eps1_sq
                u = one / np.sqrt(v) * g
                squares += float(u) * float(u)
        else:  # factored over the last two dimensions, per leading index b
            col_sums = np.zeros(width)
            scale = np.empty(batch, dtype=param.dtype)
            for b in range(batch):
                base, r0, c0 = lo + b * height * width, row_at + b * height, col_at + b * width
                col_sums[:] = 0.0
                for i in range(height):
                    row_sum = 0.0
                    for j in range(width):
                        g = float(grad[base + i * width + j])
                        row_sum += g * g
                        col_sums[j] += g * g
                    work[k, 1] = math.sqrt(row_sum)  # torch: norm(g, dim=-1) ** 2 / C, in the dtype
                    norm = work[k, 1]
                    rows[r0 + i] = lerp(rows[r0 + i], norm * norm / counts[k, 1], weight, one_minus_weight)
                for j in range(width):
                    work[k, 1] = math.sqrt(col_sums[j])
                    norm = work[k, 1]
                    cols[c0 + j] = lerp(cols[c0 + j], norm * norm / counts[k, 0], weight, one_minus_weight)
                row_total = 0.0
                for i in range(height):
                    row_total += float(rows[r0 + i])
                work[k, 1] = row_total / height
                mean = work[k, 1]
                scale[b] = mean if mean >= eps1 or mean != mean else eps1
                for i in range(height):
                    for j in range(width):
                        v = rows[r0 + i] * cols[c0 + j] / scale[b]
                        v = v if v >= eps1_sq or v != v else eps1_sq
                        u = one / np.sqrt(v) * (sign * grad[base + i * width + j])
                        squares += float(u) * float(u)
        work[k, 1] = math.sqrt(squares)
        clip = float(work[k, 1]) / (math.sqrt(n) * d)
        work[k, 1] = -alpha / (clip if clip > 1.0 else 1.0)  # Python's max(1.0, clip)
        step = work[k, 1]
        if height == 0:
            for i in range(n):
                v = variance[var_at + i]
                v = v if v >= eps1_sq or v != v else eps1_sq
                param[lo + i] = param[lo + i] * decay + step * (one / np.sqrt(v) * (sign * grad[lo + i]))
        else:
            for b in range(batch):
                base, r0, c0 = lo + b * height * width, row_at + b * height, col_at + b * width
                for i in range(height):
                    for j in range(width):
                        e = base + i * width + j
                        v = rows[r0 + i] * cols[c0 + j] / scale[b]
                        v = v if v >= eps1_sq or v != v else eps1_sq
                        param[e] = param[e] * decay + step * (one / np.sqrt(v) * (sign * grad[e]))


class _Factors:
    """The per-tensor second moments of one pack: three concatenated arrays and where each tensor's are."""

    def __init__(self, pack: _Pack) -> None:
        tensors = pack.buffer.tensors
        dtype = pack.buffer.data.dtype
        self.shapes = [tuple(t.shape) for t in tensors]
        self.layout = np.zeros((len(tensors), 6), dtype=np.int64)
        at = [0, 0, 0]
        for k, shape in enumerate(self.shapes):
            if len(shape) > 1:
                batch, height, width = math.prod(shape[:-2]), shape[-2], shape[-1]
                self.layout[k] = (batch, height, width, at[0], at[1], 0)
                at[0] += batch * height
                at[1] += batch * width
            else:
                self.layout[k] = (1, 0, 0, 0, 0, at[2])
                at[2] += math.prod(shape)
        self.counts = self.layout[:, 1:3].astype(dtype)
        self.rows, self.cols, self.variance = (np.zeros(size, dtype=dtype) for size in at)
        self.work = np.zeros((len(tensors), 2), dtype=dtype)

    def views(self, k: int) -> dict[str, Array]:
        """Tensor k's state arrays with torch's keys and shapes (live views)."""
        shape = self.shapes[k]
        batch, height, width, row_at, col_at, var_at = (int(x) for x in self.layout[k])
        if height == 0 and len(shape) <= 1:
            return {"variance": self.variance[var_at : var_at + math.prod(shape)].reshape(shape)}
        return {
            "row_var": self.rows[row_at : row_at + batch * height].reshape((*shape[:-1], 1)),
            "col_var": self.cols[col_at : col_at + batch * width].reshape((*shape[:-2], 1, width)),
        }


def _state_shapes(shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """torch's Adafactor state keys (after "step") and shapes for a parameter of `shape`."""
    if len(shape) > 1:
        return {"row_var": (*shape[:-1], 1), "col_var": (*shape[:-2], 1, shape[-1])}
    return {"variance": shape}


class Adafactor(Optimizer):
    """Adafactor (Shazeer & Stern, 2018), identical to `torch.optim.Adafactor` (single-tensor path).

    With ``G = ∇f(θ)`` (negated when `maximize`) at a parameter's step t::

        β̂ = 1 − t^τ,   ρ = min(γ, 1/√t),   α = max(ε2, RMS(θ)) ρ
        θ ← θ − γ λ θ
        R ← β̂ R + (1 − β̂) mean_cols(G²),  C ← β̂ C + (1 − β̂) mean_rows(G²),
        V̂ = R C / max(mean(R), ε1)                     (tensors of ≥ 2 dimensions)
        V̂ ← β̂ V̂ + (1 − β̂) G²                          (vectors and scalars)
        U = G / max(√V̂, ε1),   θ ← θ − α U / max(1, RMS(U) / d)

    Args:
        params: iterable of ExTensors or of parameter-group dicts.
        lr: learning rate γ: caps the relative step size ρ and scales the weight decay (default 1e-2).
        beta2_decay: τ ≤ 0, the decay rate of β2 (default -0.8).
        eps: (ε1, ε2): ε1 stabilises the variance estimate (None: the machine epsilon of the
            dtype of the group's first parameter with a gradient, as torch); ε2 floors RMS(θ)
            (default (None, 1e-3)).
        d: clipping threshold d ≥ 1 (default 1).
        weight_decay: decoupled weight decay λ (default 0).
        maximize: maximise the objective instead (keyword-only).

    State per parameter: ``step`` (0-d float32) and ``row_var`` (shape ``[..., rows, 1]``) and
    ``col_var`` (``[..., 1, cols]``) for tensors of two or more dimensions, ``variance`` (the
    parameter's shape) otherwise. An empty parameter is left unchanged (torch divides by zero).
    The factors depend on whole tensors, so a step cannot be sharded (`ShardedOptimizer`).
    """

    hyperparameters = (
        Says("lr >= 0", "Learning rate should be >= 0 but is: {lr}"),
        Says("beta2_decay <= 0", "beta2_decay should be <= 0 but is: {beta2_decay}"),
        Says("d >= 1", "Clipping threshold d should be >= 1 but is: {d}"),
        Says("weight_decay >= 0", "weight_decay should be >= 0 but is: {weight_decay}"),
        Flag("maximize"),
    )

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        beta2_decay: float = -0.8,
        eps: tuple[float | None, float] = (None, 1e-3),
        d: float = 1.0,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        self._factors: dict[_Pack, _Factors] = {}
        self._loading: dict[ExTensor, dict[str, Array]] = {}
        self._eps1: float | None = None
        defaults = {
            "lr": lr,
            "beta2_decay": beta2_decay,
            "eps": eps,
            "d": d,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _validate_group(self, group: Mapping[str, Any]) -> None:
        """torch's checks in torch's order, the pair `eps` (ε1 may be None) between beta2_decay and d."""
        checks = self.hyperparameters
        checks[0](group)
        checks[1](group)
        eps = group["eps"]
        if not isinstance(eps, (tuple, list)) or len(eps) != 2:
            raise TypeError(f"eps must be a pair (epsilon1 or None, epsilon2), got {eps!r}")
        if eps[0] is not None and not require_real(eps[0], "eps[0]") >= 0:
            raise ValueError(f"epsilon1 should be >= 0 but is: {eps[0]}")
        if not require_real(eps[1], "eps[1]") >= 0:
            raise ValueError(f"epsilon2 should be >= 0 but is: {eps[1]}")
        for check in checks[2:]:
            check(group)

    def _factors_of(self, pack: _Pack) -> _Factors:
        factors = self._factors.get(pack)
        if factors is None:
            factors = self._factors[pack] = _Factors(pack)
        return factors

    # ----------------------------------------------------------------- stepping
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step; return what `closure` (if given) returns."""
        loss = closure() if closure is not None else None
        self._check_packed()
        for group, packs in zip(self.param_groups, self._packs, strict=True):
            self._eps1 = group["eps"][0]
            if self._eps1 is None:  # torch: the finfo of the first parameter with a gradient
                first = _first_present(group, packs)
                self._eps1 = None if first is None else float(np.finfo(first.dtype).eps)
            try:
                for pack in packs:
                    self._step_pack(group, pack)
            finally:
                self._eps1 = None
        return loss

    def _step_pack(
        self, group: ParamGroup, pack: _Pack, window: Window | None = None, sums: Array | None = None
    ) -> None:
        if window is not None:
            raise NotImplementedError(
                "Adafactor's factored second moments need whole tensors: it cannot be sharded"
            )
        runs = pack.runs(pack.steps)
        if not runs:
            return
        pack.buffer.settle()  # a deferred clip: the factored statistics read the gradient unsigned
        factors = self._factors_of(pack)
        scalar = pack.buffer.data.dtype.type
        eps1 = self._eps1 if self._eps1 is not None else float(np.finfo(pack.buffer.data.dtype).eps)
        lr, beta2_decay = float(group["lr"]), float(group["beta2_decay"])
        weight_decay = float(group["weight_decay"])
        for a, b in runs:
            step = float(np.float32(pack.steps[a]) + np.float32(1))  # torch: float32 step += 1, then .item()
            weight = scalar(step**beta2_decay)
            adafactor_kernel(
                pack.buffer.data, pack.buffer.grad, pack.buffer.offsets, factors.layout, factors.counts,
                factors.rows, factors.cols, factors.variance, factors.work, a, b,
                scalar(-1.0 if group["maximize"] else 1.0),
                scalar(1 - lr * weight_decay if weight_decay != 0 else 1.0),
                weight, scalar(1) - weight, scalar(1), scalar(eps1), scalar(eps1 * eps1),
                min(lr, 1 / step**0.5), float(group["eps"][1]), float(group["d"]),
            )  # fmt: skip
            pack.steps[a:b] += np.float32(1)

    # ----------------------------------------------------------------- state
    def _param_state(self, param: ExTensor, snapshot: bool) -> dict[str, Any]:
        state = super()._param_state(param, snapshot)
        if state:
            pack, index = self._where[param]
            for name, view in self._factors_of(pack).views(index).items():
                state[name] = view.copy() if snapshot else view
        return state

    def _check_loaded_state(
        self, param_id: Any, param: ExTensor, hyper: ParamGroup, param_state: Any
    ) -> tuple[float, dict[str, Array]] | None:
        if not isinstance(param_state, Mapping) or not param_state:
            return super()._check_loaded_state(param_id, param, hyper, param_state)
        where = f"loaded state of parameter {param_id!r}"
        shapes = _state_shapes(tuple(param.shape))
        expected = ["step", *shapes]
        unknown = sorted(map(str, set(param_state) - set(expected)))
        missing = [name for name in expected if name not in param_state]
        if unknown or missing:
            raise ValueError(
                f"{where} has keys {sorted(map(str, param_state))}; Adafactor keeps {expected} "
                f"for a parameter of shape {tuple(param.shape)}"
            )
        arrays: dict[str, Array] = {}
        for name, shape in shapes.items():
            array = np.asarray(param_state[name])
            if array.shape != shape:
                raise ValueError(f"{where}: {name!r} has shape {array.shape}, expected {shape}")
            if array.dtype != param.dtype:
                raise TypeError(
                    f"{where}: {name!r} has dtype {array.dtype}, the parameter has dtype {param.dtype}"
                )
            arrays[name] = array
        checked = super()._check_loaded_state(param_id, param, hyper, {"step": param_state["step"]})
        assert checked is not None
        self._loading[param] = arrays
        return checked

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a `state_dict()` (ours, or torch's), factors included; validated before writing."""
        self._loading = {}
        try:
            super().load_state_dict(state_dict)
            for packs in self._packs:
                for pack in packs:
                    factors = self._factors_of(pack)
                    for index, param in enumerate(pack.buffer.tensors):
                        loaded = self._loading.get(param, {})
                        for name, view in factors.views(index).items():
                            view[...] = loaded.get(name, 0)
        finally:
            self._loading = {}


def _first_present(group: ParamGroup, packs: list[_Pack]) -> ExTensor | None:
    """The first parameter of `group` (in the group's order) that has a gradient, or None."""
    if len(packs) == 1:
        present = np.flatnonzero(packs[0].buffer.present)
        return packs[0].buffer.tensors[int(present[0])] if present.size else None
    firsts = set()
    for pack in packs:
        present = np.flatnonzero(pack.buffer.present)
        if present.size:
            firsts.add(id(pack.buffer.tensors[int(present[0])]))
    return next((p for p in group["params"] if id(p) in firsts), None)
