"""Flat buffers: many parameters stored as views of one contiguous array, gradients likewise.

An optimizer packs the parameters of each group (one buffer per dtype) into a `FlatBuffer`:
one 1-D `data` array, one 1-D `grad` array of the same length, and a boolean `present` flag
per tensor that plays the part of PyTorch's ``p.grad is not None``. Every ExTensor is rebound
so that its `.data` and `.grad` are views of those arrays (`ExTensor.bind_storage`). Then a
whole group is updated by one kernel call, `zero_grad` is one fill or one flag reset, and a
gradient norm is one reduction per buffer instead of one per tensor.

Invariants:

* Binding copies the tensor's current values in; nothing the tensor held is lost.
* A tensor belongs to at most one buffer. Binding it to a new buffer marks the old buffer
  *invalid*: the old optimizer then refuses to step instead of updating stale storage.
* Assigning ``p.data = x`` / ``p.grad = g`` copies into the views (see `ExTensor`), so the
  binding survives user code; ``p.grad = None`` only clears the flag.
* A buffer may hold a *pending scale* (`defer_scale`): its gradients are then logically the
  stored values times that factor, each product rounded in the buffer's dtype. Gradient clipping
  defers its scaling this way and the optimizer kernels multiply as they read the gradient, so
  clipping costs one read pass instead of three. Everything else that touches the gradients --
  ``p.grad`` read or assigned, backward accumulating, a reduction over `grad_runs`, averaging
  across ranks -- calls `settle` first, which applies the scale in place; `zero_grad` drops it.
  The values anyone can observe are therefore exactly those of an eager scaling.

This module also holds the segment reductions shared by LARS and gradient clipping: sums of
squares per tensor (a *segment* of the flat buffer), computed in float64 by a parallel numba
kernel, and `grad_runs`, which turns a list of parameters into as few contiguous gradient
views as possible.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numba
import numpy as np
from numba import njit, prange

from extensor.core.tensor import Array, ExTensor, GradSlot

__all__ = [
    "PARALLEL_MIN_ELEMENTS",
    "FlatBuffer",
    "SizedKernel",
    "class_bounds",
    "grad_parts",
    "grad_runs",
    "pair_sums_of_squares",
    "parallel_chunks",
    "present_runs",
    "scale_in_place",
    "segment_sum_squares",
    "segment_sum_squares_pair",
    "serial_sum_squares",
    "sized_kernel",
    "sum_squares",
]

#: Element dtypes a flat buffer (and the optimizer kernels) support.
SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: "no second array" for the segment reduction kernel, by dtype
_NO_SECOND = {dtype: np.empty(0, dtype=dtype) for dtype in SUPPORTED_DTYPES}


#: The one size cut-off of every parallel kernel (optimizer updates, segment reductions, gradient
#: clipping): below this many elements a pass runs on the calling thread. Waking the sleeping
#: OpenMP workers costs 10-30 us (a scheduler time slice when the machine is busy), and one thread
#: streams a cache-sized buffer about as fast as two. Measured serial vs parallel on the shared
#: 2-core machine (float32, one tensor): Adam breaks even near 256K elements, SGD with momentum
#: near 1M-4M, a sum of squares (read-only, 4 streams) beyond 4M; 1M elements is within ~10% of
#: the best choice for each (the old cut-offs were 32K for kernels and 2M for clipping).
PARALLEL_MIN_ELEMENTS = 1 << 20


class SizedKernel:
    """One kernel source compiled twice: ``parallel=True`` and serial, picked by the buffer's size.

    Calling the object calls `parallel` when the first argument has at least
    `PARALLEL_MIN_ELEMENTS` elements, else `serial`. The serial twin uses NumPy's error model, as
    numba's parallel loop bodies do (a division by zero gives inf/NaN, it does not raise), which
    also lets LLVM vectorise loops that divide; `prange` in it is a plain `range`. It is compiled
    from a renamed copy of the function so that numba's on-disk cache (keyed by qualified name,
    not by the parallel flag) keeps the two apart.
    """

    def __init__(self, function: Callable[..., Any], **options: Any) -> None:
        twin = types.FunctionType(
            function.__code__, function.__globals__, f"{function.__name__}_serial",
            function.__defaults__, function.__closure__,
        )  # fmt: skip
        twin.__qualname__ = f"{function.__qualname__}_serial"
        twin.__doc__ = function.__doc__
        self.parallel = njit(parallel=True, cache=True, **options)(function)
        self.serial = njit(cache=True, error_model="numpy", **options)(twin)
        self.__doc__ = function.__doc__
        self.__name__ = function.__name__

    def for_size(self, size: int) -> Any:
        """The compiled kernel to run over `size` elements."""
        return self.parallel if size >= PARALLEL_MIN_ELEMENTS else self.serial

    def __call__(self, first: Array, *rest: Any) -> Any:
        return (self.parallel if first.size >= PARALLEL_MIN_ELEMENTS else self.serial)(first, *rest)


def sized_kernel(**options: Any) -> Callable[[Callable[..., Any]], SizedKernel]:
    """Decorator: compile a `prange` kernel as a `SizedKernel` (njit `options`, e.g. fastmath)."""

    def decorate(function: Callable[..., Any]) -> SizedKernel:
        return SizedKernel(function, **options)

    return decorate


class FlatBuffer:
    """One contiguous data array and one gradient array holding a list of same-dtype tensors.

    Tensor ``i`` occupies elements ``offsets[i]:offsets[i + 1]`` of `data` and `grad`;
    ``present[i]`` says whether its gradient exists. Construction binds every tensor (its
    values are copied in), taking it away from any buffer it was bound to before; that buffer
    becomes invalid (see `check_valid`).

    Args:
        tensors: a non-empty sequence of distinct float32 or float64 ExTensors of one dtype.

    Raises:
        TypeError: an element is not an ExTensor, or has an unsupported or mixed dtype.
        ValueError: the sequence is empty or holds the same tensor twice.
    """

    def __init__(self, tensors: Sequence[ExTensor]) -> None:
        tensors = list(tensors)
        if not tensors:
            raise ValueError("a FlatBuffer needs at least one tensor, got an empty sequence")
        for position, tensor in enumerate(tensors):
            if not isinstance(tensor, ExTensor):
                raise TypeError(
                    f"FlatBuffer holds ExTensors, element {position} is a {type(tensor).__name__}"
                )
        dtype = tensors[0].dtype
        if dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"flat buffers hold float32 or float64 tensors, got dtype {dtype}")
        seen: set[int] = set()
        for position, tensor in enumerate(tensors):
            if tensor.dtype != dtype:
                raise TypeError(
                    f"all tensors of a FlatBuffer must share one dtype: tensor 0 is {dtype}, "
                    f"tensor {position} is {tensor.dtype}"
                )
            if id(tensor) in seen:
                raise ValueError(f"tensor {position} (shape {tensor.shape}) appears twice in one FlatBuffer")
            seen.add(id(tensor))

        sizes = np.fromiter((t.size for t in tensors), dtype=np.int64, count=len(tensors))
        self.offsets: Array = np.zeros(len(tensors) + 1, dtype=np.int64)
        np.cumsum(sizes, out=self.offsets[1:])
        total = int(self.offsets[-1])
        self.dtype: np.dtype[Any] = dtype
        self.data: Array = np.empty(total, dtype=dtype)
        self.grad: Array = np.zeros(total, dtype=dtype)
        self.present: Array = np.zeros(len(tensors), dtype=np.bool_)
        self.tensors: list[ExTensor] = tensors
        self._lost: list[int] = []
        #: the factor (in `dtype`) the stored gradients are still to be multiplied by, or None
        self.pending_scale: np.floating[Any] | None = None

        for index, tensor in enumerate(tensors):
            start, stop = int(self.offsets[index]), int(self.offsets[index + 1])
            previous = tensor.grad_slot
            slot = GradSlot(
                view=self.grad[start:stop].reshape(tensor.shape),
                present=self.present,
                index=index,
                owner=self,
            )
            tensor.bind_storage(self.data[start:stop].reshape(tensor.shape), slot)
            if previous is not None and isinstance(previous.owner, FlatBuffer) and previous.owner is not self:
                previous.owner._lose(previous.index)

    def __len__(self) -> int:
        """The number of tensors in the buffer."""
        return len(self.tensors)

    @property
    def numel(self) -> int:
        """The total number of elements."""
        return int(self.data.size)

    @property
    def valid(self) -> bool:
        """False once any of the buffer's tensors has been bound to another buffer."""
        return not self._lost

    def _lose(self, index: int) -> None:
        """Record that tensor `index` now lives in another buffer."""
        self._lost.append(index)

    def check_valid(self) -> None:
        """Raise RuntimeError if a tensor of this buffer has been taken over by another buffer."""
        if self._lost:
            index = self._lost[0]
            tensor = self.tensors[index]
            raise RuntimeError(
                f"parameter {index} of this buffer (shape {tensor.shape}, dtype {tensor.dtype}) is now "
                "managed by another optimizer, which re-bound its storage; stepping this optimizer would "
                "update stale storage. Create a new optimizer for these parameters instead."
            )

    def segment(self, index: int) -> slice:
        """The slice of `data`/`grad` that tensor `index` occupies."""
        return slice(int(self.offsets[index]), int(self.offsets[index + 1]))

    def defer_scale(self, factor: Any) -> None:
        """Make the gradients logically ``grad * factor`` (in the buffer's dtype) without a pass.

        A scale already pending is applied first: two eager scalings round twice, and so must
        this (``(g·a)·b`` is not ``g·(a·b)`` in floating point).
        """
        self.settle()
        self.pending_scale = self.dtype.type(factor)

    def settle(self) -> None:
        """Apply the pending scale to the stored gradients in place (one parallel pass), if any."""
        factor = self.pending_scale
        if factor is None:
            return
        self.pending_scale = None
        with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 is NaN, silently, as in torch
            for first, stop in present_runs(self.present):  # absent gradients' storage is left alone
                scale_in_place(self.grad[self.offsets[first] : self.offsets[stop]], factor)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every gradient: reset the presence flags (``set_to_none``) or fill with zeros.

        With ``set_to_none=False`` the gradients that exist become zeros and the absent ones stay
        absent, as `torch.optim.Optimizer.zero_grad(set_to_none=False)` does. A pending scale
        is dropped: it would multiply zeros or gradients that no longer exist.
        """
        self.pending_scale = None
        if set_to_none:
            self.present.fill(False)
        else:
            self.grad.fill(0)


@njit(parallel=True, cache=True)
def _scale_parallel(values: Array, factor: Any) -> None:
    """values *= factor, in place, on every thread (factor in the values' dtype)."""
    for i in prange(values.size):
        values[i] *= factor


def scale_in_place(values: Array, factor: Any) -> None:
    """``values *= factor`` for a 1-D array, in parallel above `PARALLEL_MIN_ELEMENTS` (factor cast
    to the values' dtype, so each product rounds as an eager in-place multiplication does)."""
    factor = values.dtype.type(factor)
    if values.ndim == 1 and values.size >= PARALLEL_MIN_ELEMENTS and values.dtype in SUPPORTED_DTYPES:
        _scale_parallel(values, factor)
    else:
        values *= factor


def present_runs(present: Array) -> list[tuple[int, int]]:
    """Maximal runs ``[start, stop)`` of consecutive True entries of the boolean array `present`."""
    if present.size == 0:
        return []
    if present.all():
        return [(0, int(present.size))]
    padded = np.concatenate(([False], present, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[0::2], edges[1::2], strict=True)]


def grad_runs(parameters: Iterable[ExTensor]) -> list[Array]:
    """The existing gradients of `parameters` as few 1-D arrays, views wherever possible.

    Consecutive parameters that are consecutive tensors of the same FlatBuffer and all have a
    gradient contribute ONE view spanning their gradients, so a reduction over the returned list
    (a global gradient norm, a clip) touches each buffer once in the common case. A parameter
    that is not bound to a buffer contributes its own ``.grad`` (flattened; a view since the
    gradients ExTensor stores are contiguous). Parameters without a gradient contribute nothing.
    Writing into the returned arrays writes into the gradients. A buffer's pending scale is
    applied first (`FlatBuffer.settle`), so the arrays hold the gradients' current values.
    """
    return [run for _, run in grad_parts(parameters)]


def grad_parts(
    parameters: Iterable[ExTensor], coverage: dict[FlatBuffer, list[int]] | None = None
) -> list[tuple[FlatBuffer | None, Array]]:
    """`grad_runs` with each run's owner: the FlatBuffer it is a view of, or None for a loose gradient.

    With a `coverage` dict, also records per buffer ``[tensors, last index, ordered]``: how many of
    its present tensors the runs cover, the last one's index, and whether every run started after
    the previous one ended (no tensor listed twice); the clip uses it to defer its scaling.
    """
    runs: list[tuple[FlatBuffer | None, Array]] = []
    owner: FlatBuffer | None = None
    first = stop = 0

    def close(buffer: FlatBuffer) -> None:
        runs.append((buffer, buffer.grad[buffer.offsets[first] : buffer.offsets[stop]]))
        if coverage is not None:
            seen = coverage.setdefault(buffer, [0, -1, 1])
            seen[0] += stop - first
            if first <= seen[1]:
                seen[2] = 0
            seen[1] = stop - 1

    for parameter in parameters:
        if not isinstance(parameter, ExTensor):
            raise TypeError(f"grad_runs expects ExTensors, got a {type(parameter).__name__}")
        slot = parameter.grad_slot
        if slot is not None and isinstance(slot.owner, FlatBuffer):
            if not slot.present[slot.index]:
                continue
            if slot.owner is owner and slot.index == stop:
                stop += 1
                continue
            if owner is not None:
                close(owner)
            owner, first, stop = slot.owner, slot.index, slot.index + 1
            owner.settle()
            continue
        gradient = parameter.grad
        if gradient is not None:
            if owner is not None:
                close(owner)
                owner = None
            runs.append((None, gradient.reshape(-1)))
    if owner is not None:
        close(owner)
    return runs


# ---------------------------------------------------------------------------------- reductions
#: Reductions may reassociate their sums (so LLVM vectorises them); the order is then fixed at
#: compile time, so results stay deterministic. The optimizer kernels never use this.
_REDUCTION_MATH = {"reassoc", "contract"}


@njit(cache=True, fastmath=_REDUCTION_MATH)
def _sum_squares_one_stream(values: Array) -> float:
    """Sum of ``values ** 2``, accumulated in float64.

    Takes a slice rather than (array, start, stop): a loop from 0 lets LLVM prove the index
    non-negative, drop NumPy's wrap-around check and vectorise (4x faster here).
    """
    total = 0.0
    for i in range(values.size):
        x = np.float64(values[i])
        total += x * x
    return total


@njit(cache=True, fastmath=_REDUCTION_MATH)
def serial_sum_squares(values: Array) -> float:
    """Sum of ``values ** 2`` in float64 on the calling thread, reading a long slice as four streams.

    A numba function, the building block of the parallel reductions here and in `clip`.

    One sequential stream per thread leaves the memory system idle between prefetches (a
    reduction reached half the bandwidth of a read-modify-write loop here); reading four
    quarters side by side keeps more requests in flight (1.6x faster measured).
    """
    quarter = values.size // 4
    if quarter < 1024:
        return _sum_squares_one_stream(values)
    first_half, second_half = _sum_squares_two_by_two(
        values[:quarter],
        values[quarter : 2 * quarter],
        values[2 * quarter : 3 * quarter],
        values[3 * quarter : 4 * quarter],
        values.dtype.type(1),
    )
    return (first_half + second_half) + _sum_squares_one_stream(values[4 * quarter :])


@njit(cache=True, fastmath=_REDUCTION_MATH)
def _scaled_sum_squares_one_stream(values: Array, scale: Any) -> float:
    """Sum of ``(values · scale) ** 2``, each product rounded in the values' dtype, in float64."""
    total = 0.0
    for i in range(values.size):
        x = np.float64(values[i] * scale)
        total += x * x
    return total


@njit(cache=True, fastmath=_REDUCTION_MATH)
def _sum_squares_two_by_two(a0: Array, a1: Array, b0: Array, b1: Array, b_scale: Any) -> tuple[float, float]:
    """Sums of squares of ``a0 ++ a1`` and of ``(b0 ++ b1) · b_scale`` (four equal-length slices
    read side by side; each ``b · b_scale`` rounded in the dtype of `b`, as an eager scaling does)."""
    sa0 = 0.0
    sa1 = 0.0
    sb0 = 0.0
    sb1 = 0.0
    for i in range(a0.size):
        x0 = np.float64(a0[i])
        x1 = np.float64(a1[i])
        y0 = np.float64(b0[i] * b_scale)
        y1 = np.float64(b1[i] * b_scale)
        sa0 += x0 * x0
        sa1 += x1 * x1
        sb0 += y0 * y0
        sb1 += y1 * y1
    return sa0 + sa1, sb0 + sb1


@njit(cache=True, fastmath=_REDUCTION_MATH)
def pair_sums_of_squares(
    first: Array, second: Array, lo: int, hi: int, out: Array, second_scale: Any
) -> None:
    """out[0] = sum of first[lo:hi] ** 2 and, when `second` is not empty, out[1] = that of
    ``second[lo:hi] · second_scale`` (a gradient with a pending clip scale, see
    `FlatBuffer.defer_scale`; 1 for none).

    A numba function, on the calling thread, accumulating in float64. Two arrays are read in ONE
    pass, each as two streams (four in flight, as `serial_sum_squares`).
    """
    if second.size == 0:
        out[0] = serial_sum_squares(first[lo:hi])
        return
    half = (hi - lo) // 2
    if half < 1024:
        out[0] = _sum_squares_one_stream(first[lo:hi])
        out[1] = _scaled_sum_squares_one_stream(second[lo:hi], second_scale)
        return
    mid = lo + half
    end = lo + 2 * half
    sa, sb = _sum_squares_two_by_two(
        first[lo:mid], first[mid:end], second[lo:mid], second[mid:end], second_scale
    )
    out[0] = sa + _sum_squares_one_stream(first[end:hi])
    out[1] = sb + _scaled_sum_squares_one_stream(second[end:hi], second_scale)


@sized_kernel(fastmath=_REDUCTION_MATH)
def _segment_sum_squares_kernel(
    first: Array, second: Array, offsets: Array, member: Array, out: Array, bounds: Array, second_scale: Any
) -> None:
    """out[s, 0] = sum of squares of first[offsets[s]:offsets[s+1]]; out[s, 1] likewise of
    ``second · second_scale`` (when `second` is not empty; `out` then has two columns); 0 for the
    segments s without `member[s]`.
    In parallel over the chunks ``bounds[c]:bounds[c + 1]`` (`class_bounds`).

    Chunks cut the flat array regardless of segment boundaries, so one huge tensor and a
    thousand tiny ones parallelise equally well. A segment lying inside one chunk is written
    directly by that chunk; at most two segments per chunk straddle its edges, and their partial
    sums are added serially afterwards (in chunk order: deterministic).
    """
    n_chunks = bounds.size - 1
    n_segments = offsets.size - 1
    width = out.shape[1]
    partial_value = np.zeros((n_chunks, 2, width), dtype=np.float64)
    partial_segment = np.full((n_chunks, 2), -1, dtype=np.int64)
    out[:] = 0.0
    for chunk in prange(n_chunks):
        lo = bounds[chunk]
        hi = bounds[chunk + 1]
        if lo == hi:
            continue
        segment = np.searchsorted(offsets, lo, side="right") - 1
        slot = 0
        position = lo
        while position < hi and segment < n_segments:
            seg_start = offsets[segment]
            seg_stop = offsets[segment + 1]
            stop = min(seg_stop, hi)
            if stop > position and member[segment]:
                if seg_start >= lo and seg_stop <= hi:
                    pair_sums_of_squares(first, second, position, stop, out[segment], second_scale)
                else:
                    pair_sums_of_squares(
                        first, second, position, stop, partial_value[chunk, slot], second_scale
                    )
                    partial_segment[chunk, slot] = segment
                    slot += 1
            position = max(position, stop)
            segment += 1
    for chunk in range(n_chunks):
        for slot in range(2):
            segment = partial_segment[chunk, slot]
            if segment >= 0:
                for column in range(width):
                    out[segment, column] += partial_value[chunk, slot, column]


@njit(cache=True)
def class_bounds(offsets: Array, member: Array, whole: bool, n_chunks: int) -> Array:
    """Element bounds cutting segments into `n_chunks` chunks that hold near-equal numbers of
    the elements of the *member* segments (those k with ``member[k]``).

    Returns ``bounds`` (int64) from 0 to ``offsets[-1]``, non-decreasing: chunk c is
    ``bounds[c]:bounds[c + 1]``. With `whole`, a bound never cuts through a member segment (a
    cut that falls inside one moves to its nearer end); otherwise the member elements are shared
    out exactly. A single bound ``[0]`` (no chunk) when the members hold no element. With every
    segment a member and not `whole`, the chunks are equal: ``bounds[c] = total · c // n_chunks``.
    """
    count = member.size
    before = np.zeros(count + 1, dtype=np.int64)  # member elements before tensor k
    for k in range(count):
        before[k + 1] = before[k] + (offsets[k + 1] - offsets[k] if member[k] else 0)
    total = before[count]
    if total == 0:
        return np.zeros(1, dtype=np.int64)
    bounds = np.empty(n_chunks + 1, dtype=np.int64)
    bounds[0] = 0
    bounds[n_chunks] = offsets[count]
    for chunk in range(1, n_chunks):
        target = total * chunk // n_chunks
        k = np.searchsorted(before, target, side="right") - 1  # member tensor holding the target
        while k < count and not member[k]:
            k += 1
        cut = offsets[k] + (target - before[k])
        if whole and offsets[k] < cut:
            cut = offsets[k] if cut - offsets[k] <= offsets[k + 1] - cut else offsets[k + 1]
        bounds[chunk] = max(cut, bounds[chunk - 1])
    return bounds


def parallel_chunks(size: int) -> int:
    """How many equal chunks a parallel kernel over `size` elements should use.

    One below `PARALLEL_MIN_ELEMENTS` (the kernel then runs serially); above it enough to keep
    every thread busy and balance a noisy machine, each chunk at least 16K elements.
    """
    if size < PARALLEL_MIN_ELEMENTS:
        return 1
    return min(4 * numba.get_num_threads(), size >> 14)


def _checked_offsets(values: Array, offsets: Array) -> Array:
    """`offsets` as int64 after checking that they delimit segments of the 1-D float array `values`."""
    if values.ndim != 1 or values.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"values must be a 1-D float32/float64 array, got {values.ndim}-D {values.dtype}")
    if (
        offsets.ndim != 1
        or offsets.size < 1
        or offsets[0] != 0
        or offsets[-1] != values.size
        or (np.diff(offsets) < 0).any()
    ):
        raise ValueError(
            f"offsets must be a non-decreasing 1-D array from 0 to values.size={values.size}, got {offsets!r}"
        )
    return offsets.astype(np.int64, copy=False)


def segment_sum_squares(values: Array, offsets: Array, out: Array | None = None) -> Array:
    """Per-segment sums of squares: ``out[s] = sum(values[offsets[s]:offsets[s+1]] ** 2)``.

    Accumulates in float64 whatever the dtype of `values` (float32 or float64), in parallel
    above `PARALLEL_MIN_ELEMENTS`; the result is deterministic for a given thread count. Pass
    ``buffer.grad`` (or ``data``) with ``buffer.offsets`` for per-tensor sums over a flat buffer.

    Args:
        values: a contiguous 1-D float32 or float64 array.
        offsets: int64 array of segment boundaries, non-decreasing, ``offsets[0] == 0`` and
            ``offsets[-1] == values.size``.
        out: optional float64 array of ``len(offsets) - 1`` elements to write into.
    """
    offsets = _checked_offsets(values, offsets)
    count = offsets.size - 1
    if out is None:
        out = np.empty(count, dtype=np.float64)
    elif out.shape != (count,) or out.dtype != np.float64:
        raise ValueError(f"out must be a float64 array of shape ({count},), got {out.dtype} {out.shape}")
    values = np.ascontiguousarray(values)
    target = out if out.flags.c_contiguous else np.empty(count, dtype=np.float64)
    everything = np.ones(count, dtype=np.bool_)
    bounds = class_bounds(offsets, everything, False, parallel_chunks(values.size))
    _segment_sum_squares_kernel(
        values, _NO_SECOND[values.dtype], offsets, everything, target.reshape(count, 1), bounds,
        values.dtype.type(1),
    )  # fmt: skip
    if target is not out:
        out[:] = target
    return out


def segment_sum_squares_pair(
    first: Array,
    second: Array,
    offsets: Array,
    member: Array | None = None,
    second_scale: np.floating[Any] | None = None,
) -> Array:
    """Per-segment sums of squares of two arrays in one pass: a float64 array of shape (segments, 2).

    ``result[s, 0] = sum(first[offsets[s]:offsets[s+1]] ** 2)``, ``result[s, 1]`` likewise of
    `second`, which has the shape and dtype of `first`, times `second_scale` when given (a
    gradient with a pending clip scale; each product rounded in the dtype). One kernel reads both
    arrays together (LARS needs the weight and the gradient norm of every tensor). With a boolean
    `member` mask (one entry per segment) only the member segments are read, the threads sharing
    their elements equally, and the other rows are 0. Other arguments as in `segment_sum_squares`.
    """
    offsets = _checked_offsets(first, offsets)
    if second.shape != first.shape or second.dtype != first.dtype:
        raise ValueError(
            f"the two arrays must match: first is {first.dtype} {first.shape}, "
            f"second is {second.dtype} {second.shape}"
        )
    count = offsets.size - 1
    if member is None:
        member = np.ones(count, dtype=np.bool_)
    elif member.shape != (count,) or member.dtype != np.bool_:
        raise ValueError(
            f"member must be a boolean array of shape ({count},), got {member.dtype} {member.shape}"
        )
    out = np.empty((count, 2), dtype=np.float64)
    bounds = class_bounds(offsets, member, False, parallel_chunks(first.size))
    scale = first.dtype.type(1 if second_scale is None else second_scale)
    _segment_sum_squares_kernel(
        np.ascontiguousarray(first), np.ascontiguousarray(second), offsets, member, out, bounds, scale
    )
    return out


def sum_squares(values: Array) -> float:
    """The sum of squares of a 1-D float32/float64 array, accumulated in float64, in parallel."""
    if values.ndim != 1:
        raise ValueError(f"sum_squares takes a 1-D array, got shape {values.shape}")
    offsets = np.array([0, values.size], dtype=np.int64)
    return float(segment_sum_squares(values, offsets)[0])
