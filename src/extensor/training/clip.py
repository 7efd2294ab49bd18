"""Gradient clipping: by global norm (`clip_grad_norm`) and by value (`clip_grad_value`).

The numbers are those of ``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_`` (torch 2.13):

* the total norm of order p is the p-norm of the per-tensor p-norms of the gradients that exist
  (None gradients are skipped), i.e. ``(sum over every element |g| ** p) ** (1 / p)`` for finite
  p != 0, the largest ``|g|`` for inf, the smallest for -inf, and — for p = 0, as torch computes
  it — the number of tensors whose gradient has a non-zero element. Orders other than 1 and 2
  follow torch's two stages literally (see `_p_norm`), so a tiny order such as 1e-3 or 1e-300
  gives torch's inf rather than an OverflowError;
* every gradient is multiplied by ``min(max_norm / (total_norm + 1e-6), 1)``, in its own dtype.

Gradients living in an optimizer's flat buffer are reduced and scaled as a few long runs
(`extensor.training.flat.grad_runs`): in the common case one reduction and one scaling pass per
buffer, whatever the number of tensors. Reductions accumulate in float64 (torch reduces float32
gradients in float32, so its norm overflows to inf beyond ~1e19 where ours stays finite).
"""

from __future__ import annotations

import math
import numbers
import types
import warnings
from collections.abc import Iterable
from typing import Any

import numba
import numpy as np
from numba import njit, prange

from extensor.core.tensor import Array, ExTensor
from extensor.training.flat import (
    PARALLEL_MIN_ELEMENTS,
    FlatBuffer,
    grad_parts,
    grad_runs,
    scale_in_place,
    serial_sum_squares,
)

__all__ = [
    "clip_grad_norm",
    "clip_grad_norm_",
    "clip_grad_value",
    "clip_grad_value_",
    "clip_grads_with_norm_",
    "grad_norm",
]

Parameters = ExTensor | Iterable[ExTensor]

#: The dtypes the numba kernels are compiled for; others (float16) are reduced via float64 copies.
_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: Sums may be reassociated so that LLVM vectorises them (deterministic for a given thread count).
_REASSOCIATE = {"reassoc", "contract"}
#: Below this many elements a pass runs on one thread: the cut-off all parallel kernels share.
_PARALLEL_MIN = PARALLEL_MIN_ELEMENTS

# the reductions a total norm needs; all accumulate in float64
_SUM_SQUARES, _SUM_ABS, _SUM_ABS_POW, _MAX_ABS, _MIN_ABS = range(5)


# ------------------------------------------------------------------------------ kernels
@njit(cache=True, fastmath=_REASSOCIATE)
def _reduce(values: Array, kind: int, p: float) -> float:
    """One reduction of ``|values|`` on one thread: a sum of squares, of |x|, of |x|**p, or the
    largest/smallest |x| — NaN if any element is NaN, as torch's norms give."""
    if kind == _SUM_SQUARES:
        return serial_sum_squares(values)
    if kind == _SUM_ABS:
        total = 0.0
        for i in range(values.size):
            total += abs(np.float64(values[i]))
        return total
    if kind == _SUM_ABS_POW:
        total = 0.0
        for i in range(values.size):
            total += abs(np.float64(values[i])) ** p
        return total
    largest = kind == _MAX_ABS
    best = 0.0 if largest else np.inf
    nan_seen = False
    for i in range(values.size):
        a = abs(np.float64(values[i]))
        nan_seen |= a != a
        if (a > best) if largest else (a < best):
            best = a
    return np.nan if nan_seen else best


@njit(parallel=True, cache=True)
def _reduce_parallel(values: Array, kind: int, p: float, n_chunks: int) -> float:
    """`_reduce` over `n_chunks` equal chunks in parallel, partial results combined in order."""
    size = values.size
    partial = np.empty(n_chunks, dtype=np.float64)
    for chunk in prange(n_chunks):
        partial[chunk] = _reduce(values[size * chunk // n_chunks : size * (chunk + 1) // n_chunks], kind, p)
    if kind <= _SUM_ABS_POW:
        return partial.sum()
    result = partial[0]
    for chunk in range(1, n_chunks):
        value = partial[chunk]
        if value != value or result != result:
            result = np.nan
        elif (value > result) if kind == _MAX_ABS else (value < result):
            result = value
    return result


def _reduction(run: Array, kind: int, p: float = 0.0) -> float:
    """`kind` reduction of one 1-D run, on one thread or all of them depending on its size."""
    values = run if run.dtype in _KERNEL_DTYPES else run.astype(np.float64)
    if values.size < _PARALLEL_MIN:
        return float(_reduce(values, kind, p))
    return float(_reduce_parallel(values, kind, p, 4 * numba.get_num_threads()))


# ------------------------------------------------------------------------------ arguments
def _parameter_list(parameters: Parameters, caller: str) -> list[ExTensor]:
    """The parameters as a list (one ExTensor is accepted), each checked to be an ExTensor."""
    if isinstance(parameters, ExTensor):
        return [parameters]
    if isinstance(parameters, (str, bytes)) or not isinstance(parameters, Iterable):
        raise TypeError(
            f"{caller}: parameters must be an ExTensor or an iterable of ExTensors, "
            f"got {type(parameters).__name__}"
        )
    generator = isinstance(parameters, types.GeneratorType)
    params = list(parameters)
    for index, param in enumerate(params):
        if not isinstance(param, ExTensor):
            raise TypeError(
                f"{caller}: parameters[{index}] is a {type(param).__name__}, expected an ExTensor"
            )
    if generator and not params:
        warnings.warn(
            f"{caller}: `parameters` is an empty generator, no gradient clipping will occur.",
            UserWarning,
            stacklevel=3,
        )
    return params


def clip_bound(name: str, value: object) -> float:
    """`value` as a float when it is a valid clipping bound (`max_norm`, `clip_value`): a real
    number >= 0, inf allowed; TypeError / ValueError naming `name` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    number = float(value)
    if math.isnan(number) or number < 0:
        raise ValueError(f"{name} must be >= 0, got {number}")
    return number


def _order(norm_type: object) -> float:
    """The norm order as a float: a real number (inf, -inf included) or a string like 'inf'."""
    if isinstance(norm_type, bool):
        raise TypeError(f"norm_type must be a number, got {norm_type!r}")
    try:
        order = float(norm_type)  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        raise TypeError(f"norm_type must be a number (or 'inf'), got {norm_type!r}") from error
    if math.isnan(order):
        raise ValueError("norm_type must be a number, got nan")
    return order


def _check_foreach(foreach: object) -> None:
    if foreach is not None and not isinstance(foreach, bool):
        raise TypeError(f"foreach must be None or a bool, got {foreach!r}")


# ------------------------------------------------------------------------------ the norm
def _norm_of_runs(runs: list[Array], params: list[ExTensor], order: float) -> float:
    """The total norm of order `order` of the gradients (held in `runs`), in float64."""
    if order == 0:
        # torch's 0-"norm" of the per-tensor counts of non-zeros: the tensors with a non-zero
        # element (NaN counts). It needs tensor boundaries, which runs do not keep.
        grads = [p.grad for p in params]
        return float(sum(1 for g in grads if g is not None and g.size and np.count_nonzero(g)))
    if sum(run.size for run in runs) == 0:
        return 0.0
    if math.isinf(order):
        kind = _MAX_ABS if order > 0 else _MIN_ABS
        values = [_reduction(run, kind) for run in runs if run.size]
        if any(math.isnan(value) for value in values):
            return math.nan
        return max(values) if order > 0 else min(values)
    if order == 1:
        return math.fsum(_reduction(run, _SUM_ABS) for run in runs)
    if order == 2:
        return math.sqrt(math.fsum(_reduction(run, _SUM_SQUARES) for run in runs))
    # Any other order: torch's two stages, the norm of the per-tensor norms (tensor boundaries
    # matter here, so the gradients are taken tensor by tensor rather than as runs).
    tensors = [g for g in (p.grad for p in params) if g is not None]
    with np.errstate(over="ignore"):  # a per-tensor norm beyond its dtype's range is inf
        norms = [g.dtype.type(_p_norm(g.reshape(-1), order, g.dtype)) for g in tensors]
    dtype = _result_dtype(tensors)
    return _p_norm(np.array(norms, dtype=dtype), order, dtype)


def _p_norm(values: Array, order: float, dtype: np.dtype[Any]) -> float:
    """torch 2.13's ``vector_norm(values, order)`` of a 1-D array, for a finite order other
    than 0, 1 and 2, as a float64 (the caller casts it to `dtype`).

    As torch does: one element gives its magnitude; otherwise ``(sum |x| ** p) ** (1 / p)`` with p
    rounded to the dtype torch computes in (float32 for float16/float32 data, so an order below
    float32's smallest subnormal becomes 0, every ``|x| ** 0`` is 1 and the root an infinite
    power). The root saturates to inf or 0 instead of raising OverflowError: an order like 1e-3
    or 1e-300 gives inf whenever the sum exceeds 1, exactly torch's number.
    """
    if values.size == 1:
        return abs(float(values[0]))
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        p = np.float64(np.float64(order).astype(np.float64 if dtype == np.float64 else np.float32))
        total = np.float64(_reduction(values, _SUM_ABS_POW, float(p)))
        return float(np.power(total, np.float64(1.0) / p))


def _result_dtype(runs: list[Array]) -> np.dtype[Any]:
    """torch's dtype for the total norm: the promotion of the gradients' dtypes (float32 if none)."""
    return np.result_type(*runs) if runs else np.dtype(np.float32)


def grad_norm(
    parameters: Parameters, norm_type: float | str = 2.0, error_if_nonfinite: bool = False
) -> Array:
    """The total gradient norm of `parameters`, as `clip_grad_norm` computes it (nothing is changed).

    Returns:
        A 0-d array in the promoted dtype of the gradients (float32 when there are none): the
        norm of order `norm_type` of the per-tensor norms of the existing gradients.

    Raises:
        RuntimeError: `error_if_nonfinite` and the norm is NaN or infinite.
    """
    params = _parameter_list(parameters, "grad_norm")
    return _total_norm(params, grad_runs(params), _order(norm_type), error_if_nonfinite)


def _total_norm(params: list[ExTensor], runs: list[Array], order: float, error_if_nonfinite: bool) -> Array:
    """`grad_norm` on checked arguments, the gradients already gathered into `runs`."""
    with np.errstate(over="ignore"):  # a norm beyond the dtype's range is inf, as in torch
        total = np.asarray(_norm_of_runs(runs, params, order), dtype=_result_dtype(runs))
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {order} for gradients from `parameters` is non-finite ({total}), "
            "so it cannot be clipped. To disable this error and scale the gradients by the non-finite "
            "norm anyway, set `error_if_nonfinite=False`"
        )
    return total


# ------------------------------------------------------------------------------ scaling
def _runs_are_views(params: list[ExTensor]) -> bool:
    """True when every run of `grad_runs(params)` writes through to a gradient.

    Buffer gradients always give views; a loose gradient does when it is C-contiguous (a
    Fortran-ordered one, e.g. from a transposed product, is copied by ``reshape(-1)``).
    """
    for param in params:
        slot = param.grad_slot
        if slot is not None and isinstance(slot.owner, FlatBuffer):
            continue
        gradient = param.grad
        if gradient is not None and not gradient.flags.c_contiguous:
            return False
    return True


def _gradient_targets(params: list[ExTensor], runs: list[Array]) -> list[Array]:
    """What to modify in place: the runs, or each parameter's gradient when a run is a copy."""
    if _runs_are_views(params):
        return runs
    return [gradient for gradient in (param.grad for param in params) if gradient is not None]


def _scale_gradients(params: list[ExTensor], runs: list[Array], coefficient: Array) -> None:
    """Multiply every existing gradient by `coefficient` (cast to the gradient's dtype), in place."""
    with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 is NaN, silently, as in torch
        for target in _gradient_targets(params, runs):
            if target.ndim == 1:
                scale_in_place(target, coefficient)
            else:
                target *= target.dtype.type(coefficient)


def _wholly_clipped(coverage: dict[FlatBuffer, list[int]]) -> list[FlatBuffer]:
    """The flat buffers every existing gradient of which the clipped runs cover, each once
    (`grad_parts`'s `coverage`).

    Their scaling can be deferred to the optimizer's kernel (`FlatBuffer.defer_scale`), which
    is then exactly an eager scaling of the whole buffer. A buffer only partly clipped is scaled
    now, run by run; a parameter given twice (torch scales it twice) turns deferral off.
    """
    if any(not ordered for _, _, ordered in coverage.values()):
        return []
    return [
        buffer for buffer, (count, _, _) in coverage.items() if count == int(np.count_nonzero(buffer.present))
    ]


def clip_grads_with_norm_(parameters: Parameters, max_norm: float, total_norm: Any) -> None:
    """Scale the gradients of `parameters` by ``min(max_norm / (total_norm + 1e-6), 1)`` in place.

    The second half of `clip_grad_norm`, for a `total_norm` computed elsewhere (e.g. all-reduced
    across processes). The coefficient is computed in the dtype of `total_norm` (a 0-d NumPy
    array or NumPy scalar; a Python float counts as float64) and applied to each gradient in the
    gradient's dtype; a NaN norm makes every gradient NaN, as in torch.
    """
    params = _parameter_list(parameters, "clip_grads_with_norm_")
    limit = clip_bound("max_norm", max_norm)
    norm = np.asarray(total_norm)
    if norm.ndim != 0 or norm.dtype.kind != "f":
        raise TypeError(f"total_norm must be a floating-point scalar, got {total_norm!r}")
    coverage: dict[FlatBuffer, list[int]] = {}
    _clip_with_norm(params, grad_parts(params, coverage), limit, norm, coverage)


def _clip_with_norm(
    params: list[ExTensor],
    parts: list[tuple[FlatBuffer | None, Array]],
    limit: float,
    norm: Array,
    coverage: dict[FlatBuffer, list[int]],
) -> None:
    """`clip_grads_with_norm_` on checked arguments, the gradients already gathered into `parts`.

    The scaling of a flat buffer whose every gradient is clipped is deferred into its
    optimizer's next kernel (`FlatBuffer.defer_scale`): no pass over the gradients here. Other
    gradients are scaled in place now.
    """
    if not parts:
        return
    coefficient = clip_coefficient(limit, norm)
    if coefficient == 1.0:
        return  # multiplying by exactly 1 changes nothing
    deferred = _wholly_clipped(coverage) if _runs_are_views(params) else []
    for buffer in deferred:
        buffer.defer_scale(coefficient)
    eager = [run for owner, run in parts if owner is None or owner not in deferred]
    if eager:
        _scale_gradients(params, eager, coefficient)


def clip_coefficient(max_norm: float, total_norm: Array) -> Array:
    """``min(max_norm / (total_norm + 1e-6), 1)`` as torch 2.13 computes it, in `total_norm`'s dtype.

    torch evaluates the quotient as ``reciprocal(total_norm + 1e-6) * max_norm`` and clamps
    with NaN propagating, so a NaN norm gives a NaN coefficient and an infinite one gives 0.
    `total_norm` is a 0-d floating-point array; the result is a 0-d array of its dtype.
    """
    dtype = total_norm.dtype.type
    with np.errstate(over="ignore", invalid="ignore"):
        coefficient = np.reciprocal(total_norm + dtype(1e-6)) * dtype(max_norm)
    return np.minimum(coefficient, dtype(1.0))


def clip_grad_norm(
    parameters: Parameters,
    max_norm: float,
    norm_type: float | str = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Array:
    """Clip the gradients of `parameters` so that their total norm is at most `max_norm`, in place.

    ``total = ||(||g_1||_p, ..., ||g_n||_p)||_p`` over the gradients that exist; each gradient is
    multiplied by ``min(max_norm / (total + 1e-6), 1)`` in its own dtype (torch 2.13's numbers).

    Args:
        parameters: an ExTensor or an iterable of ExTensors (gradients that are None are skipped).
        max_norm: the largest allowed total norm, >= 0.
        norm_type: the order p: any real number, ``inf``/``-inf`` or a string like ``"inf"``.
        error_if_nonfinite: raise instead of scaling when the total norm is NaN or infinite.
            Otherwise an infinite norm zeroes the finite gradients (and turns infinite entries
            into NaN) and a NaN norm makes every gradient NaN, exactly as torch does.
        foreach: accepted for torch compatibility; there is one implementation (runs over the
            flat buffers), so it changes nothing.

    Returns:
        The total norm before clipping, as a 0-d NumPy array in the promoted dtype of the
        gradients (torch returns a 0-d tensor); ``float(result)`` gives a Python float.

    Raises:
        TypeError: `parameters` holds something that is not an ExTensor, or a bad argument type.
        ValueError: `max_norm` is negative or NaN, `norm_type` is NaN.
        RuntimeError: `error_if_nonfinite` and the norm is not finite (nothing is changed then).
    """
    params = _parameter_list(parameters, "clip_grad_norm")
    limit = clip_bound("max_norm", max_norm)
    order = _order(norm_type)
    _check_foreach(foreach)
    coverage: dict[FlatBuffer, list[int]] = {}
    parts = grad_parts(params, coverage)
    total = _total_norm(params, [run for _, run in parts], order, error_if_nonfinite)
    _clip_with_norm(params, parts, limit, total, coverage)
    return total


def clip_grad_value(parameters: Parameters, clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every existing gradient of `parameters` into ``[-clip_value, clip_value]``, in place.

    NaN entries stay NaN (as with torch's clamp); the bound is cast to each gradient's dtype.

    Args:
        parameters: an ExTensor or an iterable of ExTensors (gradients that are None are skipped).
        clip_value: the bound, >= 0.
        foreach: accepted for torch compatibility; changes nothing.

    Raises:
        TypeError: `parameters` holds something that is not an ExTensor, or a bad argument type.
        ValueError: `clip_value` is negative or NaN.
    """
    params = _parameter_list(parameters, "clip_grad_value")
    bound = clip_bound("clip_value", clip_value)
    _check_foreach(foreach)
    for target in _gradient_targets(params, grad_runs(params)):
        limit = target.dtype.type(bound)
        np.clip(target, -limit, limit, out=target)


#: torch's names (the trailing underscore marks an in-place operation).
clip_grad_norm_ = clip_grad_norm
clip_grad_value_ = clip_grad_value
