"""LARS: layer-wise adaptive rate scaling for large-batch training.

You, Gitman & Ginsburg, "Large Batch Training of Convolutional Networks" (arXiv:1708.03888,
2017). Each parameter tensor's update is rescaled by a *trust ratio* comparing the norm of its
weights with the norm of its gradient; the rest is SGD with momentum (`sgd.momentum_sgd_piece`).

The norms need a whole tensor before any of it is updated, so the weights and the gradient are
read twice. `lars_kernel` takes the second read from cache wherever it can: a tensor whose
weights and gradient fit in `CACHE_RESIDENT_BYTES` (and, in a parallel step, that holds at most
a quarter of one thread's share of the elements, so that the threads stay balanced) is visited by
one thread, which sums its squares and then updates it while it is still in cache. Larger
tensors (or every tensor, when a distributed wrapper supplies the norms) get their sums from
one parallel segment reduction beforehand and are updated by all threads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import numba
import numpy as np
from numba import njit, prange

from extensor.core.tensor import Array, ExTensor
from extensor.training.flat import (
    PARALLEL_MIN_ELEMENTS,
    class_bounds,
    pair_sums_of_squares,
    parallel_chunks,
    segment_sum_squares_pair,
    sized_kernel,
)
from extensor.training.optimizers.compact_state import check_state_dtype
from extensor.training.optimizers.declare import Check, Flag, Rules
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Run
from extensor.training.optimizers.sgd import (
    MOMENTUM_CHECKS,
    SGD,
    compact_momentum_step,
    momentum_coefficients,
    momentum_sgd_piece,
)

__all__ = ["CACHE_RESIDENT_BYTES", "LARS", "exclude_from_adaptation", "lars_kernel"]

#: A tensor whose weights and gradient take at most this many bytes together (2M float32
#: elements) has its norms and its update computed in one visit by one thread, the update
#: reading w and g back from cache (this machine: 1 MiB L2 per core, 32 MiB L3 shared).
#: Measured, float32: over equal tensors of 32K-2M elements the one-visit step took 0.64-0.81x
#: the time of two passes and gained nothing at 4M; over ResNet-50's tensors, budgets of 0, 2,
#: 4, 8, 16 and 24 MiB gave 1, 0.94-1.0, 0.94-0.98, 0.91-0.98, 0.86-0.93 and 0.87-0.94x.
CACHE_RESIDENT_BYTES = 16 << 20


@njit(cache=True, inline="always")
def _trust_ratio(weight_sum_squares: float, grad_sum_squares: float, trust: tuple[Any, ...]) -> float:
    """``η ‖w‖ / (‖g‖ + λ ‖w‖ + ε)`` in float64 when both norms are non-zero, else 1; then
    ``min(r / γ, 1)`` with `trust_clip`, which is 1 at γ = 0 (a NaN ratio stays NaN).

    ``trust = (η, λ, ε, γ, trust_clip)``.
    """
    trust_coefficient, weight_decay, eps, lr, trust_clip = trust
    weight_norm = np.sqrt(weight_sum_squares)
    grad_norm = np.sqrt(grad_sum_squares)
    if not (weight_norm > 0 and grad_norm > 0):
        return 1.0
    ratio = trust_coefficient * weight_norm / (grad_norm + weight_decay * weight_norm + eps)
    if trust_clip:
        if lr > 0:
            ratio = ratio / lr
        elif ratio > 0:  # r / 0 = inf: a warm-up from lr = 0 clips to 1
            ratio = np.inf
        else:  # 0 / 0 (an infinite gradient norm) and NaN / 0 are NaN, as the formula gives
            ratio = np.nan
        if ratio > 1.0:
            ratio = 1.0
    return ratio


@njit(cache=True, inline="always")
def _visit(
    param: Array,
    grad: Array,
    buf: Array,
    offsets: Array,
    resident: Array,
    sums: Array,
    lo: int,
    hi: int,
    residents: bool,
    adapt: bool,
    trust: tuple[Any, ...],
    sgd: tuple[Any, ...],
) -> None:
    """Update the elements ``lo:hi`` of the tensors whose `resident` flag equals `residents`."""
    sign, neg_lr, weight_decay, momentum, one_minus_dampening, nesterov, first = sgd
    grad_scale = abs(sign)  # the pending clip scale (the sign carries it, see `Run.gradient_sign`)
    segment = np.searchsorted(offsets, lo, side="right") - 1
    position = lo
    while position < hi:
        stop = min(offsets[segment + 1], hi)
        if stop > position and resident[segment] == residents:
            scale = param.dtype.type(1)
            if adapt:
                if residents:  # the whole tensor: sum it, then update it while w and g are cached
                    pair_sums_of_squares(param, grad, position, stop, sums[segment], grad_scale)
                scale = param.dtype.type(_trust_ratio(sums[segment, 0], sums[segment, 1], trust))
            momentum_sgd_piece(
                param[position:stop], grad[position:stop], buf[position:stop] if buf.size != 0 else buf,
                scale, sign, neg_lr, weight_decay, momentum, one_minus_dampening, nesterov, first,
            )  # fmt: skip
        position = max(position, stop)
        segment += 1


@sized_kernel(fastmath=False)
def lars_kernel(
    param: Array,
    grad: Array,
    buf: Array,
    offsets: Array,
    resident: Array,
    sums: Array,
    resident_bounds: Array,
    large_bounds: Array,
    adapt: bool,
    trust: tuple[Any, ...],
    sgd: tuple[Any, ...],
) -> None:
    """One LARS step over a flat run of tensors (``offsets``), in place, in the parameters' dtype.

    For each tensor k, with ``sums[k] = (‖w‖², ‖g‖²)`` (float64)::

        sums[k] = Σ w², Σ g²                          (here, when `resident[k]`)
        r = trust ratio from sums[k] (`_trust_ratio`), rounded to the dtype; 1 unless `adapt`
        d = (sign · g + weight_decay · w) · r            (the decay term only when weight_decay ≠ 0)
        b = d if first else μ · b + (1 - τ) · d         (only when `buf` is not empty)
        w = w - lr · (d + μ · b if nesterov else b)

    with ``trust = (η, λ, ε, γ, trust_clip)`` (`_trust_ratio`) and ``sgd`` SGD's arguments
    from `momentum_coefficients`. Two parallel loops, each balanced over its own tensors:
    chunk c of the first covers the resident tensors within elements
    ``resident_bounds[c]:resident_bounds[c + 1]`` (whole tensors: a bound never cuts one, so a
    tensor's sums are computed and used by one thread); chunk c of the second covers the other
    tensors, whose sums are given, within ``large_bounds[c]:large_bounds[c + 1]``.
    """
    if resident_bounds.size > 1:  # no parallel region (a thread wake-up) for an empty class
        for chunk in prange(resident_bounds.size - 1):
            lo, hi = resident_bounds[chunk], resident_bounds[chunk + 1]
            _visit(param, grad, buf, offsets, resident, sums, lo, hi, True, adapt, trust, sgd)
    if large_bounds.size > 1:
        for chunk in prange(large_bounds.size - 1):
            lo, hi = large_bounds[chunk], large_bounds[chunk + 1]
            _visit(param, grad, buf, offsets, resident, sums, lo, hi, False, adapt, trust, sgd)


class LARS(SGD):
    """LARS (You, Gitman & Ginsburg, 2017): SGD with momentum and a per-tensor trust ratio.

    For each parameter tensor w with gradient g::

        r = η ‖w‖ / (‖g‖ + λ ‖w‖ + ε)   if η > 0 and ‖w‖ > 0 and ‖g‖ > 0, else 1
        r = min(r / γ, 1)                if trust_clip (LARC) and the norms are non-zero
        d = (g + λ w) · r
        b = d on the first step, else μ b + (1 − τ) d
        d = d + μ b if nesterov else b
        w = w − γ d

    (trust_coefficient η, weight_decay λ, eps ε, lr γ, momentum μ, dampening τ.) The
    adaptation is always on, also with the default λ = 0; with η = 0 LARS is
    `torch.optim.SGD` with the same momentum, dampening, nesterov and weight decay.

    Large-batch recipes exclude biases and normalisation weights (1-D tensors) from both the
    adaptation and the decay: build the groups with `exclude_from_adaptation`, or set
    ``lars_adaptation=False`` (and ``weight_decay=0``) in a parameter group yourself::

        optimizer = LARS(exclude_from_adaptation(model.parameters()), lr=0.1, weight_decay=1e-4)

    Args:
        params: iterable of ExTensors or of parameter-group dicts.
        lr: learning rate γ (required).
        momentum: μ (default 0.9).
        weight_decay: λ (default 0).
        trust_coefficient: η (default 0.001).
        nesterov: Nesterov momentum (keyword-only; needs μ > 0 and τ = 0).
        dampening: τ (keyword-only, default 0).
        eps: ε in the trust ratio's denominator (keyword-only, default 0).
        trust_clip: clip the ratio LARC-style, ``min(r / γ, 1)`` (keyword-only).
        state_dtype: how the momentum buffer is stored (keyword-only): None, ``"bfloat16"`` or
            ``"int8"``, as in `Adam` (the norms are then one reduction before the step).

    Group option ``lars_adaptation`` (default True): False makes the group plain SGD (r = 1).
    State per parameter: ``momentum_buffer`` once stepped with μ ≠ 0.
    """

    uses_tensor_norms: ClassVar[bool] = True
    hyperparameters: ClassVar[Rules] = (
        *MOMENTUM_CHECKS,
        Check("trust_coefficient >= 0", "trust_coefficient value"),
        Check("eps >= 0", "epsilon value"),
        Flag("trust_clip"),
        Flag("lars_adaptation"),
    )

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
        *,
        nesterov: bool = False,
        dampening: float = 0.0,
        eps: float = 0.0,
        trust_clip: bool = False,
        state_dtype: str | None = None,
    ) -> None:
        self.state_dtype = check_state_dtype(state_dtype)
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "trust_coefficient": trust_coefficient,
            "eps": eps,
            "trust_clip": trust_clip,
            "lars_adaptation": True,
        }
        Optimizer.__init__(self, params, defaults)  # SGD's constructor has other defaults

    def _update(self, group: ParamGroup, run: Run) -> None:
        offsets = run.offsets
        count = offsets.size - 1
        trust_coefficient = float(group["trust_coefficient"])
        adapt = bool(group["lars_adaptation"]) and trust_coefficient > 0
        given = run.given_tensor_sums
        if run.compact is not None and group["momentum"] != 0:
            self._update_compact(group, run, adapt, trust_coefficient)
            return
        if adapt and given is None:
            limit = CACHE_RESIDENT_BYTES // (2 * run.dtype.itemsize)
            if run.param.size >= PARALLEL_MIN_ELEMENTS:  # a resident tensor keeps one thread busy alone:
                limit = min(limit, run.param.size // (4 * numba.get_num_threads()))  # a quarter of its share
            resident = np.diff(offsets) <= limit
            large = ~resident
            if large.any():
                sums = segment_sum_squares_pair(
                    run.param, run.grad, offsets, member=large, second_scale=run.grad_scale
                )
            else:  # small networks: every tensor's sums come from the kernel's own visit
                sums = np.zeros((count, 2), dtype=np.float64)
        else:
            resident = np.zeros(count, dtype=np.bool_)
            sums = np.ascontiguousarray(given, dtype=np.float64) if adapt else np.zeros((count, 2))
        chunks = parallel_chunks(run.param.size)
        lars_kernel(
            run.param,
            run.grad,
            run.buffer("momentum_buffer"),
            offsets,
            resident,
            sums,
            class_bounds(offsets, resident, True, chunks),
            class_bounds(offsets, ~resident, False, chunks),
            adapt,
            (
                trust_coefficient,
                float(group["weight_decay"]),
                float(group["eps"]),
                float(group["lr"]),
                bool(group["trust_clip"]),
            ),
            momentum_coefficients(group, run),
        )

    def _update_compact(self, group: ParamGroup, run: Run, adapt: bool, trust_coefficient: float) -> None:
        """The step with a compact momentum buffer: the norms in one reduction, then SGD's compact
        kernel scaling each tensor's update by its trust ratio."""
        assert run.compact is not None
        store = run.compact.store
        scales = np.ones(store.first.size - 1, dtype=run.dtype)
        if adapt:
            sums = segment_sum_squares_pair(run.param, run.grad, run.offsets, second_scale=run.grad_scale)
            trust = (trust_coefficient, float(group["weight_decay"]), float(group["eps"]), float(group["lr"]),
                     bool(group["trust_clip"]))  # fmt: skip
            a = run.compact.first_tensor
            for k in range(sums.shape[0]):
                scales[a + k] = run.scalar(_trust_ratio(sums[k, 0], sums[k, 1], trust))
        compact_momentum_step(group, run, scales)


def exclude_from_adaptation(params: Iterable[ExTensor], weight_decay: float = 0.0) -> list[ParamGroup]:
    """Split parameters into two LARS groups: adapted tensors, and 1-D tensors that are not.

    Biases and normalisation weights (tensors with at most one dimension) go to a group with
    ``lars_adaptation=False`` and ``weight_decay`` (0 by default), as large-batch recipes do;
    the others keep the optimizer's defaults. Empty groups are left out.
    """
    params = list(params)
    for index, param in enumerate(params):
        if not isinstance(param, ExTensor):
            raise TypeError(
                f"exclude_from_adaptation expects ExTensors, parameter {index} is a {type(param).__name__}"
            )
    adapted = [p for p in params if p.ndim > 1]
    plain = [p for p in params if p.ndim <= 1]
    groups: list[ParamGroup] = []
    if adapted:
        groups.append({"params": adapted})
    if plain:
        groups.append({"params": plain, "lars_adaptation": False, "weight_decay": weight_decay})
    return groups
