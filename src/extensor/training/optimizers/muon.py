"""Muon: momentum orthogonalised by a Newton–Schulz iteration, for the 2-D weights of hidden layers.

Jordan et al., "Muon: An optimizer for hidden layers in neural networks" (2024,
https://kellerjordan.github.io/posts/muon/), with the learning-rate adjustment of Liu et al.,
"Muon is Scalable for LLM Training" (arXiv:2502.16982, 2025), as torch.optim.Muon (torch 2.13).

torch runs the Newton–Schulz iteration in bfloat16 whatever the parameters' dtype, and so does
this module, emulating torch's CPU arithmetic: values are rounded to bfloat16 (round to nearest
even; float64 via float32, as c10 converts), products of bfloat16 values are accumulated in
float32 in index order, each ``addmm(C, A, B, beta, alpha)`` is ``fma(beta, C, float32(alpha · AB))``
rounded once to float32 then to bfloat16 (what torch's oneDNN kernel computes), and the Frobenius
norm is a float32 sum rounded to bfloat16. The momentum and the parameter update are computed in
the parameters' dtype, as torch does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numba import njit, prange

from extensor.core.tensor import Array
from extensor.training.flat import sized_kernel
from extensor.training.optimizers.declare import Flag, Integer, Numbers, Real, Says
from extensor.training.optimizers.elementwise import lerp
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Window, _Pack

__all__ = ["Muon", "muon_kernel", "round_to_bfloat16"]

#: From this many elements on, the iteration's products run on BLAS (float32 accumulation of the
#: bfloat16 values in BLAS's blocked order) instead of the index-order loops that reproduce torch's
#: bits (on 256x256, 7.7 ms a step against torch's 4.7; a 4096x4096 step took over 20 minutes in the
#: loops). The update then equals torch's to bfloat16 precision, no longer bit for bit: roundings that
#: differ cascade through the iterations (measured on 300x256: mean 0.2%, max 0.9% of the largest
#: element); torch's oneDNN kernel blocks its sums at these sizes as well.
BLAS_MIN_ELEMENTS = 256 * 256

#: torch's adjust_lr_fn options (None is "original")
ADJUSTMENTS = (None, "original", "match_rms_adamw")


@njit(cache=True)
def round_to_bfloat16(values: Array) -> None:
    """Round a contiguous float32 array to bfloat16 values in place, as c10's round_to_nearest_even
    (NaN becomes the canonical quiet NaN, overflow infinity)."""
    bits = values.view(np.uint32)
    for i in range(bits.size):
        b = np.int64(bits[i])
        if (b & 0x7FFFFFFF) > 0x7F800000:
            bits[i] = np.uint32(0x7FC00000)
        else:
            bits[i] = np.uint32((b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000)


@njit(cache=True, inline="always")
def _fma32(a: np.float32, x: np.float32, y: np.float32) -> np.float32:
    """``float32(a · x + y)`` rounded once (a and x bfloat16 values, so a · x is exact in float64)."""
    return np.float32(np.float64(a) * np.float64(x) + np.float64(y))


@njit(cache=True, inline="always")
def _newton_schulz(
    x: Array, y: Array, gram: Array, poly: Array, m: int, n: int,
    a: np.float32, b: np.float32, c: np.float32, eps: np.float32, steps: int,
) -> Array:  # fmt: skip
    """Orthogonalise the bfloat16 m × n matrix `x` (m ≤ n) as torch's ``_zeropower_via_newtonschulz``.

    `y` (m·n), `gram` and `poly` (m·m) are float32 scratch; returns the array holding the result
    (`x` or `y`). Each iteration: ``G = X Xᵀ``, ``P = b G + c G G``, ``X = a X + P X``.
    """
    total = np.float32(0.0)
    for i in range(m * n):
        total += x[i] * x[i]
    norm = np.empty(1, dtype=np.float32)
    norm[0] = np.float32(np.sqrt(total))
    round_to_bfloat16(norm)
    if norm[0] < eps:  # clamp(min=eps), in bfloat16
        norm[0] = eps
        round_to_bfloat16(norm)
    divisor = norm[0]
    for i in range(m * n):
        x[i] = x[i] / divisor
    round_to_bfloat16(x)
    for _ in range(steps):
        if m * n >= BLAS_MIN_ELEMENTS:  # BLAS products: the same float32 accumulation, blocked order
            xm = x[: m * n].reshape(m, n)
            gm = gram[: m * m].reshape(m, m)
            gm[:, :] = np.dot(xm, xm.T)
            round_to_bfloat16(gram)
            squared = np.dot(gm, gm)
            pm = poly[: m * m].reshape(m, m)
            for i in range(m):
                for j in range(m):
                    pm[i, j] = _fma32(b, gm[i, j], c * squared[i, j])
            round_to_bfloat16(poly)
            ym = y[: m * n].reshape(m, n)
            ym[:, :] = np.dot(pm, xm)
            for i in range(m * n):
                y[i] = _fma32(a, x[i], y[i])
            round_to_bfloat16(y)
            x, y = y, x
            continue
        for i in prange(m):  # G = X Xᵀ
            for j in range(m):
                acc = np.float32(0.0)
                for p in range(n):
                    acc += x[i * n + p] * x[j * n + p]
                gram[i * m + j] = acc
        round_to_bfloat16(gram)
        for i in prange(m):  # P = b G + c (G G), G symmetric
            for j in range(m):
                acc = np.float32(0.0)
                for p in range(m):
                    acc += gram[i * m + p] * gram[j * m + p]
                poly[i * m + j] = _fma32(b, gram[i * m + j], c * acc)
        round_to_bfloat16(poly)
        for i in prange(m):  # Y = a X + P X, accumulated along p for every column at once
            row = y[i * n : (i + 1) * n]
            row[:] = 0.0
            for p in range(m):
                weight = poly[i * m + p]
                for j in range(n):
                    row[j] += weight * x[p * n + j]
            for j in range(n):
                row[j] = _fma32(a, x[i * n + j], row[j])
        round_to_bfloat16(y)
        x, y = y, x
    return x


@sized_kernel(fastmath=False)
def muon_kernel(
    param: Array, grad: Array, buf: Array, offsets: Array, shapes: Array, neg_lr: Array,
    scratch: Array, first: int, last: int,
    decay: Any, weight: Any, one_minus_weight: Any, momentum: Any, one_minus_momentum: Any, nesterov: bool,
    a: np.float32, b: np.float32, c: np.float32, eps: np.float32, steps: int,
) -> None:  # fmt: skip
    """One Muon step of tensors ``first:last`` of a pack (each ``shapes[k] = (R, C)``), in place.

    Per tensor, in the parameters' dtype except the bfloat16 Newton–Schulz ``NS``::

        B = lerp(B, g, 1 − μ),   U = lerp(g, B, μ) if nesterov else B
        θ = θ · decay + neg_lr[k] · NS(U)        (decay = 1 − γ λ, neg_lr = −adjusted γ)

    `weight` is 1 − μ and `one_minus_weight` is 1 − (1 − μ), both in the element dtype. The
    iteration runs on the wide orientation (the transpose of a tall matrix) in `scratch`.
    """
    for k in range(first, last):
        lo, rows, cols = offsets[k], shapes[k, 0], shapes[k, 1]
        size = rows * cols
        if size == 0:
            continue
        m, n = min(rows, cols), max(rows, cols)
        x, y = scratch[:size], scratch[size : 2 * size]
        gram, poly = scratch[2 * size : 2 * size + m * m], scratch[2 * size + m * m : 2 * size + 2 * m * m]
        for i in range(rows):
            for j in range(cols):
                e = lo + i * cols + j
                g = grad[e]
                moment = lerp(buf[e], g, weight, one_minus_weight)
                buf[e] = moment
                update = lerp(g, moment, momentum, one_minus_momentum) if nesterov else moment
                x[i * cols + j if rows <= cols else j * rows + i] = np.float32(update)
        round_to_bfloat16(x)
        result = _newton_schulz(x, y, gram, poly, m, n, a, b, c, eps, steps)
        step = neg_lr[k]
        for i in range(rows):
            for j in range(cols):
                e = lo + i * cols + j
                param[e] = param[e] * decay + step * result[i * cols + j if rows <= cols else j * rows + i]


class Muon(Optimizer):
    """Muon (Jordan et al., 2024), identical to `torch.optim.Muon` for 2-D parameters.

    With ``g = ∇f(θ)``, per matrix θ of shape (A, B)::

        B_t = μ B_{t−1} + (1 − μ) g              (torch's lerp form of the momentum)
        B̃ = (1 − μ) g + μ B_t if nesterov else B_t
        O = NS_k^{(a,b,c)}(B̃; ε)                 (k Newton–Schulz steps, in bfloat16)
        θ ← θ − γ λ θ − γ' O,   γ' = γ √max(1, A/B)       ("original" / None)
                                 γ' = 0.2 γ √max(A, B)    ("match_rms_adamw")

    Args:
        params: iterable of 2-D ExTensors or of parameter-group dicts.
        lr: learning rate γ (default 1e-3).
        weight_decay: decoupled weight decay λ (default 0.1).
        momentum: momentum μ (default 0.95).
        nesterov: use the Nesterov form of the momentum (default True).
        ns_coefficients: (a, b, c) of the quintic Newton–Schulz polynomial
            (default (3.4445, -4.775, 2.0315)).
        eps: floor of the Frobenius norm the momentum is divided by (default 1e-7).
        ns_steps: Newton–Schulz iterations, fewer than 100 (default 5).
        adjust_lr_fn: None or "original" (Keller Jordan's), or "match_rms_adamw" (Moonshot's).

    State per parameter: ``momentum_buffer``. Every parameter must be 2-D; torch checks the
    constructor's parameters and fails at the step for a group added later, this class refuses
    both when they are given, with torch's message. ``ns_steps`` and ``ns_coefficients`` are
    checked at construction with the messages torch gives at the step. The orthogonalised update
    matches torch's bfloat16 computation bit for bit on matrices under `BLAS_MIN_ELEMENTS` (see the
    module docstring); larger ones use BLAS products and match to bfloat16 precision. The step
    needs whole matrices, so it cannot be sharded (`ShardedOptimizer`).
    """

    hyperparameters = (
        Says("lr >= 0", "Learning rate should be >= 0 but is: {lr}"),
        Says("momentum >= 0", "momentum should be >= 0 but is: {momentum}"),
        Says("weight_decay >= 0", "weight decay should be >= 0 but is: {weight_decay}"),
        Flag("nesterov"),
        Real("eps"),
        Integer("ns_steps"),
        Says("ns_steps < 100", "Number of steps must be less than 100 for computational efficiency"),
    )
    buffers = ("momentum_buffer",)
    step_in_state = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = (3.4445, -4.775, 2.0315),
        eps: float = 1e-7,
        ns_steps: int = 5,
        adjust_lr_fn: str | None = None,
    ) -> None:
        #: per pack: float32 scratch for the iteration, and each tensor's lr ratio per adjust_lr_fn
        self._scratch: dict[_Pack, Array] = {}
        self._ratios: dict[tuple[_Pack, str | None], Array] = {}
        defaults = {
            "lr": lr,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "nesterov": nesterov,
            "ns_coefficients": ns_coefficients,
            "eps": eps,
            "ns_steps": ns_steps,
            "adjust_lr_fn": adjust_lr_fn,
        }
        super().__init__(params, defaults)

    def _validate_group(self, group: Mapping[str, Any]) -> None:
        """torch's constructor checks in its order, then the step's (coefficients, steps) and types."""
        checks: tuple[Any, ...] = self.hyperparameters
        for check in checks[:3]:
            check(group)
        choice = group["adjust_lr_fn"]
        if not any(choice is option or (type(choice) is str and choice == option) for option in ADJUSTMENTS):
            raise ValueError(f"Adjust learning rate function {choice} is not supported")
        coefficients = group["ns_coefficients"]
        if isinstance(coefficients, (tuple, list)) and len(coefficients) != 3:
            raise ValueError("Coefficients must be a tuple of exactly 3 values")
        Numbers("ns_coefficients", 3)(group)
        for check in checks[3:]:
            check(group)

    def _prepare_group(self, param_group: Any, position: int, seen: set[int]) -> ParamGroup:
        group = super()._prepare_group(param_group, position, seen)
        for param in group["params"]:
            if param.ndim != 2:
                raise ValueError(
                    f"Muon only supports 2D parameters whereas we found a parameter with size: {param.shape}"
                )
        return group

    def _scratch_of(self, pack: _Pack) -> Array:
        scratch = self._scratch.get(pack)
        if scratch is None:
            need = max(2 * t.size + 2 * min(t.shape) ** 2 for t in pack.buffer.tensors)
            scratch = self._scratch[pack] = np.zeros(need, dtype=np.float32)
        return scratch

    def _ratios_of(self, pack: _Pack, adjust: str | None) -> Array:
        """Each tensor's adjusted_lr / lr in double precision, as torch's ``_adjust_lr`` computes it."""
        ratios = self._ratios.get((pack, adjust))
        if ratios is None:
            shapes = [t.shape for t in pack.buffer.tensors]
            if adjust == "match_rms_adamw":
                values = [0.2 * math.sqrt(max(rows, cols)) for rows, cols in shapes]
            else:  # an empty tensor is skipped, as its ratio would divide by zero
                values = [math.sqrt(max(1, rows / cols)) if cols else 1.0 for rows, cols in shapes]
            ratios = self._ratios[(pack, adjust)] = np.array(values, dtype=np.float64)
        return ratios

    def _step_pack(
        self, group: ParamGroup, pack: _Pack, window: Window | None = None, sums: Array | None = None
    ) -> None:
        if window is not None:
            raise NotImplementedError("Muon orthogonalises whole matrices: it cannot be sharded")
        runs = pack.runs(np.zeros_like(pack.steps))  # no step-dependent math: one run per present stretch
        if not runs:
            return
        buffer = pack.buffer
        buffer.settle()  # a deferred clip: Newton-Schulz reads the gradient in several places
        scalar = buffer.data.dtype.type
        lr, momentum = float(group["lr"]), float(group["momentum"])
        weight = scalar(1 - momentum)
        a, b, c = (np.float32(x) for x in group["ns_coefficients"])
        neg_lr = (-(lr * self._ratios_of(pack, group["adjust_lr_fn"]))).astype(buffer.data.dtype)
        shapes = np.array([t.shape for t in buffer.tensors], dtype=np.int64).reshape(-1, 2)
        for first, last in runs:
            muon_kernel(
                buffer.data, buffer.grad, pack.state_array("momentum_buffer"), buffer.offsets, shapes, neg_lr,
                self._scratch_of(pack), first, last,
                scalar(1 - lr * float(group["weight_decay"])), weight, scalar(1) - weight,
                scalar(momentum), scalar(1) - scalar(momentum), bool(group["nesterov"]),
                a, b, c, np.float32(group["eps"]), int(group["ns_steps"]),
            )  # fmt: skip
            pack.steps[first:last] += np.float32(1)
