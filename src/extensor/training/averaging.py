"""Weight averaging: `AveragedModel` (SWA and EMA), its averaging functions, and `update_bn`.

Stochastic Weight Averaging (Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima and
Better Generalization") keeps the equal-weight running mean of the weights visited late in
training; an exponential moving average (Polyak averaging with exponential weights) keeps
``W_ema ← decay · W_ema + (1 - decay) · W``. The semantics, values and names are those of
`torch.optim.swa_utils` in PyTorch 2.13, CPU:

* `AveragedModel(model)` holds a deep copy of `model`; the first `update_parameters(model)` copies
  the weights in, later calls average them; ``n_averaged`` (an int64 buffer) counts the calls.
* Without an averaging function the average is ``avg + (w - avg) / (n + 1)`` (torch's per-tensor
  CPU path); `get_swa_multi_avg_fn` computes ``lerp(avg, w, 1 / (n + 1))`` with the weight rounded
  to float32 as torch's ``1 / n_averaged`` tensor is; `get_ema_multi_avg_fn` ``lerp(ema, w, 1 - decay)``.
* `update_bn(loader, model)` recomputes BatchNorm running statistics as a cumulative average.

Vectorised: the averaged copy's tensors (of each dtype) are views of one contiguous array, and an
update of the built-in averages is one numba kernel call per dtype over it. The model's tensors are
read in place when they are consecutive views of one buffer (an extensor optimizer's flat buffer),
otherwise gathered once per update.

    ema_model = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999))
    for batch in loader:
        ...; optimizer.step()
        ema_model.update_parameters(model)
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from numba import prange

from extensor.autograd.tape import no_grad
from extensor.core.tensor import Array, ExTensor
from extensor.nn.linear import check_device
from extensor.nn.module import Module
from extensor.nn.normalization import _BatchNorm
from extensor.nn.parameter import Parameter
from extensor.training.flat import sized_kernel
from extensor.training.optimizers.elementwise import lerp

__all__ = [
    "AveragedModel",
    "get_ema_avg_fn",
    "get_ema_multi_avg_fn",
    "get_swa_avg_fn",
    "get_swa_multi_avg_fn",
    "update_bn",
]

#: ``avg_fn(averaged, current, n_averaged) -> new averaged`` (arrays, n an int).
AvgFn = Callable[[Array, Array, int], Any]
#: ``multi_avg_fn(averaged_list, current_list, n_averaged) -> None``, updating the first list in place.
MultiAvgFn = Callable[[list[Array], list[Array], int], None]


# ------------------------------------------------------------------------------------ kernels
@sized_kernel()
def lerp_kernel(start: Array, end: Array, weight: Any, one_minus_weight: Any) -> None:
    """``start ← torch.lerp(start, end, weight)`` in place, elementwise (scalars in the arrays' dtype)."""
    for i in prange(start.size):
        start[i] = lerp(start[i], end[i], weight, one_minus_weight)


@sized_kernel()
def running_mean_kernel(average: Array, current: Array, count: Any) -> None:
    """``average ← average + (current - average) / count`` in place (torch's CPU SWA formula)."""
    for i in prange(average.size):
        a = average[i]
        average[i] = a + (current[i] - a) / count


def _array(value: Any) -> Array:
    """The NumPy array of an ExTensor, or the value itself (an array)."""
    return value.data if isinstance(value, ExTensor) else value


def _check_lists(averaged: Sequence[Any], current: Sequence[Any]) -> list[tuple[Array, Array]]:
    """Pair the two lists of a multi-tensor averaging function, checking lengths, shapes and dtypes."""
    if len(averaged) != len(current):
        raise ValueError(
            "the averaged and current lists must have the same length, got "
            f"{len(averaged)} and {len(current)}"
        )
    pairs = []
    for index, (a, c) in enumerate(zip(averaged, current, strict=True)):
        a, c = _array(a), _array(c)
        if a.shape != c.shape or a.dtype != c.dtype:
            raise ValueError(
                f"tensor {index}: averaged has shape {a.shape} and dtype {a.dtype}, current has shape "
                f"{c.shape} and dtype {c.dtype}"
            )
        pairs.append((a, c))
    return pairs


def _lerp_in_place(target: Array, end: Array, weight: Any, one_minus_weight: Any) -> None:
    """``target ← lerp(target, end, weight)`` for arrays of any shape and layout (one kernel call)."""
    source = np.ascontiguousarray(end).reshape(-1)
    if target.flags.c_contiguous:
        lerp_kernel(target.reshape(-1), source, weight, one_minus_weight)
    else:
        work = np.ascontiguousarray(target).reshape(-1)
        lerp_kernel(work, source, weight, one_minus_weight)
        np.copyto(target, work.reshape(target.shape))


def _check_decay(decay: object) -> float:
    """torch's decay check: a real number in [0, 1]."""
    if isinstance(decay, bool) or not isinstance(decay, (int, float, np.integer, np.floating)):
        raise TypeError(f"decay must be a real number in [0, 1], got {decay!r}")
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"Invalid decay value {decay} provided. Please provide a value in [0,1] range.")
    return float(decay)


# ------------------------------------------------------------------------- averaging functions
class _ElementwiseAverage:
    """A multi-tensor averaging function that is elementwise: `AveragedModel` may call it once
    per dtype with one flat array per list instead of one array per tensor."""

    elementwise = True

    def __call__(self, averaged: Sequence[Any], current: Sequence[Any], num_averaged: Any) -> None:
        pairs = _check_lists(averaged, current)
        for a, c in pairs:
            if not np.issubdtype(a.dtype, np.floating):
                self._integer(a, c, int(num_averaged))
            else:
                weight = a.dtype.type(self._weight(int(num_averaged)))
                one_minus = a.dtype.type(1) - weight
                _lerp_in_place(a, c, weight, one_minus)

    def _weight(self, num_averaged: int) -> float:
        raise NotImplementedError

    def _integer(self, averaged: Array, current: Array, num_averaged: int) -> None:
        raise NotImplementedError


class _EmaAverage(_ElementwiseAverage):
    """``ema ← lerp(ema, current, 1 - decay)`` (see `get_ema_multi_avg_fn`)."""

    def __init__(self, decay: float) -> None:
        self.decay = decay

    def _weight(self, num_averaged: int) -> float:
        return 1 - self.decay

    def _integer(self, averaged: Array, current: Array, num_averaged: int) -> None:
        # torch: ``ema.copy_(ema * decay + current * (1 - decay))``, computed in float32 (the default
        # dtype an integer tensor times a float promotes to) and truncated back
        decay, rest = np.float32(self.decay), np.float32(1 - self.decay)
        mixed = averaged.astype(np.float32) * decay + current.astype(np.float32) * rest
        np.copyto(averaged, mixed, casting="unsafe")

    def __repr__(self) -> str:
        return f"get_ema_multi_avg_fn(decay={self.decay})"


class _SwaAverage(_ElementwiseAverage):
    """``avg ← lerp(avg, current, 1 / (n + 1))`` (see `get_swa_multi_avg_fn`)."""

    def _weight(self, num_averaged: int) -> float:
        # torch computes ``1 / n_averaged_tensor``: an int64 tensor's reciprocal, a float32
        return float(np.float32(1) / np.float32(num_averaged + 1))

    def _integer(self, averaged: Array, current: Array, num_averaged: int) -> None:
        raise RuntimeError(
            f"get_swa_multi_avg_fn cannot average integer tensors (dtype {averaged.dtype}); torch refuses "
            "them too (integer addcdiv). With use_buffers=True and BatchNorm's num_batches_tracked, use "
            "the default average (multi_avg_fn=None) or use_buffers=False"
        )

    def __repr__(self) -> str:
        return "get_swa_multi_avg_fn()"


def get_ema_multi_avg_fn(decay: float = 0.999) -> MultiAvgFn:
    """The exponential moving average over lists of tensors, in place (torch's function of that name).

    ``W_ema ← decay · W_ema + (1 - decay) · W``, computed as ``torch.lerp(W_ema, W, 1 - decay)``
    for floating tensors; integer tensors get ``trunc(float32(W_ema · decay + W · (1 - decay)))``.

    Args:
        decay: the decay rate, in [0, 1] (default 0.999).

    Returns:
        ``fn(ema_list, current_list, n_averaged)``, updating `ema_list` (arrays or ExTensors) in place.

    Raises:
        ValueError: `decay` outside [0, 1] (torch's message). TypeError: not a real number.
    """
    return _EmaAverage(_check_decay(decay))


def get_swa_multi_avg_fn() -> MultiAvgFn:
    """The equal-weight running mean over lists of tensors, in place (torch's function of that name).

    ``W_swa ← lerp(W_swa, W, 1 / (n + 1))``, the weight rounded to float32 as in torch. Integer
    tensors are refused (RuntimeError), as torch's integer ``addcdiv`` does.
    """
    return _SwaAverage()


def get_ema_avg_fn(decay: float = 0.999) -> AvgFn:
    """The exponential moving average of one tensor: ``decay · ema + (1 - decay) · current``.

    Raises:
        ValueError: `decay` outside [0, 1] (torch's message). TypeError: not a real number.
    """
    checked = _check_decay(decay)

    def ema_update(ema_param: Any, current_param: Any, num_averaged: Any) -> Array:
        return checked * _array(ema_param) + (1 - checked) * _array(current_param)

    return ema_update


def get_swa_avg_fn() -> AvgFn:
    """The equal-weight running mean of one tensor: ``averaged + (current - averaged) / (n + 1)``."""

    def swa_update(averaged_param: Any, current_param: Any, num_averaged: Any) -> Array:
        averaged, current = _array(averaged_param), _array(current_param)
        if not np.issubdtype(averaged.dtype, np.floating):  # torch: int64 / int64 is a float32 division
            averaged, current = averaged.astype(np.float32), current.astype(np.float32)
        return averaged + (current - averaged) / (int(num_averaged) + 1)

    return swa_update


# ------------------------------------------------------------------------------- the model
def _address(array: Array) -> int:
    return int(array.__array_interface__["data"][0])


def _one_view(arrays: Sequence[Array]) -> Array | None:
    """One 1-D view over `arrays` if they lie back to back, in order, in one contiguous buffer."""
    first = arrays[0]
    base = first if first.base is None else first.base
    if not isinstance(base, np.ndarray) or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    expected = _address(first)
    start = expected - _address(base)
    for array in arrays:
        owner = array if array.base is None else array.base
        if owner is not base or not array.flags.c_contiguous or _address(array) != expected:
            return None
        expected += array.nbytes
    itemsize = base.dtype.itemsize
    return base[start // itemsize : (expected - _address(base)) // itemsize]


Pairs = list[tuple[ExTensor, ExTensor]]


def _by_dtype(pairs: Pairs) -> dict[np.dtype[Any], Pairs]:
    """The (averaged, model) pairs grouped by dtype, in order of first appearance (as torch groups)."""
    groups: dict[np.dtype[Any], Pairs] = {}
    for pair in pairs:
        groups.setdefault(pair[0].dtype, []).append(pair)
    return groups


def _detached_copy(model: Module, flat: Sequence[ExTensor]) -> Module:
    """A deep copy of `model` whose tensors are fresh (never bound to an optimizer); the tensors in
    `flat` become, per dtype, consecutive views of one contiguous array."""
    memo: dict[int, Any] = {}
    by_dtype: dict[np.dtype[Any], list[ExTensor]] = {}
    for tensor in flat:
        by_dtype.setdefault(tensor.dtype, []).append(tensor)
    for dtype, tensors in by_dtype.items():
        storage = np.empty(sum(t.size for t in tensors), dtype=dtype)
        offset = 0
        for tensor in tensors:
            view = storage[offset : offset + tensor.size].reshape(tensor.shape)
            np.copyto(view, tensor.data)
            offset += tensor.size
            memo[id(tensor)] = _fresh(tensor, view)
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if id(tensor) not in memo:
            memo[id(tensor)] = _fresh(tensor, tensor.data.copy())
    return copy.deepcopy(model, memo)


def _fresh(tensor: ExTensor, array: Array) -> ExTensor:
    """A new tensor of `tensor`'s kind over `array` (shared, not copied)."""
    if isinstance(tensor, Parameter):
        return Parameter(array, requires_grad=tensor.requires_grad)
    return ExTensor(array, requires_grad=tensor.requires_grad)


class AveragedModel(Module):
    """A running average of a model's weights: Stochastic Weight Averaging or an EMA (torch's class).

    Holds a deep copy of `model` as ``self.module`` (its tensors new, unbound to any optimizer) and
    an int64 buffer ``n_averaged``. `update_parameters(model)` copies `model`'s weights in on its
    first call and averages them afterwards; calling the averaged model calls ``self.module``.

    Args:
        model: the extensor Module to average.
        device: torch's device argument; only None or "cpu".
        avg_fn: ``avg_fn(averaged, current, n_averaged) -> new value``, called per tensor with
            NumPy arrays and an int (`get_ema_avg_fn`, `get_swa_avg_fn`).
        multi_avg_fn: ``multi_avg_fn(averaged_list, current_list, n_averaged)`` updating the first
            list in place, called per dtype (`get_ema_multi_avg_fn`, `get_swa_multi_avg_fn`; those
            two are elementwise and receive one flat array per list, anything else one array per
            tensor). With neither, the equal-weight mean ``avg + (w - avg) / (n + 1)``.
        use_buffers: average the buffers too (running statistics), instead of copying them from
            `model` at each update.

    Raises:
        TypeError: `model` is not a Module, a function is not callable, `use_buffers` not a bool.
        ValueError: both `avg_fn` and `multi_avg_fn` are given (torch raises AssertionError), or a
            device other than the CPU.
    """

    def __init__(
        self,
        model: Module,
        device: Any = None,
        avg_fn: AvgFn | None = None,
        multi_avg_fn: MultiAvgFn | None = None,
        use_buffers: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(model, Module):
            raise TypeError(f"AveragedModel averages an extensor.nn.Module, got {type(model).__name__}")
        check_device(device, "AveragedModel")
        if avg_fn is not None and multi_avg_fn is not None:
            raise ValueError("Only one of avg_fn and multi_avg_fn should be provided")
        for name, function in (("avg_fn", avg_fn), ("multi_avg_fn", multi_avg_fn)):
            if function is not None and not callable(function):
                raise TypeError(f"{name} must be callable, got {type(function).__name__}")
        if not isinstance(use_buffers, (bool, np.bool_)):
            raise TypeError(f"use_buffers must be a bool, got {use_buffers!r}")
        averaged = list(model.parameters()) + (list(model.buffers()) if use_buffers else [])
        self.module = _detached_copy(model, averaged)
        self.register_buffer("n_averaged", ExTensor(np.array(0, dtype=np.int64)))
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn
        self.use_buffers = bool(use_buffers)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The averaged module's forward pass."""
        return self.module(*args, **kwargs)

    def _pairs(self, model: Module) -> list[tuple[ExTensor, ExTensor]]:
        """(averaged, model) tensor pairs to average, checked to correspond."""
        if self.use_buffers:
            mine = list(self.module.parameters()) + list(self.module.buffers())
            theirs = list(model.parameters()) + list(model.buffers())
            what = "parameters and buffers"
        else:
            mine, theirs, what = list(self.parameters()), list(model.parameters()), "parameters"
        return _matched(mine, theirs, what)

    def update_parameters(self, model: Module) -> None:
        """Average `model`'s weights into this model (copy them on the first call); ``n_averaged += 1``.

        Raises:
            TypeError: `model` is not a Module.
            ValueError: `model`'s tensors do not correspond to this model's (count, shape or dtype);
                torch would average the common prefix instead. Nothing is changed then.
        """
        if not isinstance(model, Module):
            raise TypeError(f"update_parameters expects an extensor.nn.Module, got {type(model).__name__}")
        pairs = self._pairs(model)
        buffers: Pairs = []
        if not self.use_buffers:  # checked before anything changes
            buffers = _matched(list(self.module.buffers()), list(model.buffers()), "buffers")
        n_averaged = int(self.n_averaged.data)
        if n_averaged == 0:
            for mine, theirs in pairs:
                np.copyto(mine.data, theirs.data, casting="unsafe")
        elif self.multi_avg_fn is not None or self.avg_fn is None:
            for dtype_pairs in _by_dtype(pairs).values():
                self._average_group(dtype_pairs, n_averaged)
        else:
            for mine, theirs in pairs:
                np.copyto(mine.data, self.avg_fn(mine.data, theirs.data, n_averaged), casting="unsafe")
        for mine, theirs in buffers:  # without use_buffers the buffers follow the model
            np.copyto(mine.data, theirs.data, casting="unsafe")
        self.n_averaged.data[...] += 1

    def _average_group(self, pairs: list[tuple[ExTensor, ExTensor]], n_averaged: int) -> None:
        """Average one dtype's tensors: one kernel call over flat arrays when the function is elementwise."""
        function = self.multi_avg_fn
        mine = [a.data for a, _ in pairs]
        theirs = [b.data for _, b in pairs]
        if function is not None and not getattr(function, "elementwise", False):
            function(mine, theirs, n_averaged)
            return
        target = _one_view(mine)
        flat = np.concatenate([m.reshape(-1) for m in mine]) if target is None else target
        source = _one_view(theirs)
        if source is None:
            source = np.concatenate([t.reshape(-1) for t in theirs])
        if function is not None:
            function([flat], [source], n_averaged)
        elif np.issubdtype(flat.dtype, np.floating):
            running_mean_kernel(flat, source, flat.dtype.type(n_averaged + 1))
        else:  # torch: int64 (current - averaged) / int64 (n + 1) is a float32 true division, truncated back
            np.copyto(flat, get_swa_avg_fn()(flat, source, n_averaged), casting="unsafe")
        if target is None:  # not one contiguous view (e.g. after Module.to): write the gathered copy back
            offset = 0
            for array in mine:
                np.copyto(array, flat[offset : offset + array.size].reshape(array.shape))
                offset += array.size


def _matched(mine: list[ExTensor], theirs: list[ExTensor], what: str) -> list[tuple[ExTensor, ExTensor]]:
    """Pair the averaged and the model's tensors, refusing a count, shape or dtype mismatch."""
    if len(mine) != len(theirs):
        raise ValueError(
            f"the model has {len(theirs)} {what}, the averaged model {len(mine)}: update_parameters needs "
            "the architecture the AveragedModel was built from"
        )
    for index, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ValueError(
                f"{what} {index}: the model's has shape {b.shape} and dtype {b.dtype}, the averaged "
                f"model's shape {a.shape} and dtype {a.dtype}"
            )
    return list(zip(mine, theirs, strict=True))


# ------------------------------------------------------------------------------- update_bn
def update_bn(loader: Iterable[Any], model: Module, device: Any = None) -> None:
    """Recompute the BatchNorm running statistics of `model` with one pass over `loader` (torch's).

    Every BatchNorm layer's running statistics are reset, its momentum set to None (a cumulative
    average over the batches) and the model run in training mode on each batch (the first element
    of a list/tuple batch); the momenta and the training mode are restored afterwards, even if the
    loader or the model raises (torch leaves them changed then). No gradients are recorded.

    Args:
        loader: an iterable of batches: arrays/ExTensors, or lists/tuples whose first element is one.
        model: the model (an `AveragedModel` included) whose BatchNorm layers are updated.
        device: torch's device argument; only None or "cpu".
    """
    if not isinstance(model, Module):
        raise TypeError(f"update_bn expects an extensor.nn.Module, got {type(model).__name__}")
    check_device(device, "update_bn")
    momenta: dict[_BatchNorm, float | None] = {}
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.reset_running_stats()
            momenta[module] = module.momentum
    if not momenta:
        return
    was_training = model.training
    model.train()
    for module in momenta:
        module.momentum = None
    try:
        with no_grad():
            for batch in loader:
                if isinstance(batch, (list, tuple)):
                    batch = batch[0]
                model(batch)
    finally:
        for module, momentum in momenta.items():
            module.momentum = momentum
        model.train(was_training)
