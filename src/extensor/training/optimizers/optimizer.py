"""The optimizer base class: parameter groups, flat packing, per-parameter state, state dicts.

`Optimizer` gives every algorithm torch.optim's interface -- `param_groups` (a list of dicts
that schedulers mutate), `state` (per parameter, with torch's keys), `step(closure)`,
`zero_grad(set_to_none)`, `state_dict()` / `load_state_dict()`, `add_param_group` -- and
does the bookkeeping once for all of them:

* Packing. The parameters of each group are packed, per dtype, into one `FlatBuffer`: every
  ExTensor's `.data` and `.grad` become views of two contiguous arrays. Per-parameter state
  (momentum buffers, moments) lives in flat arrays of the same length, so `state[p]` and
  `state_dict()` can present it per parameter exactly as torch does.
* Runs. A step updates each pack with one kernel call per *run*: a maximal stretch of
  consecutive parameters that have a gradient and share the same step count. When every
  parameter has a gradient (the common case) a pack is one run, so one call. A parameter
  whose gradient is None is skipped entirely (no decay, no momentum, no step count), as in
  torch; this exact path is the same code as the fast one.

A subclass declares its hyperparameter checks (`hyperparameters`) and state buffers
(`buffers`) and performs the update of one run (`_update`), typically by calling one numba
kernel; see `adamax.py` or `lion.py` for a short example.
"""

from __future__ import annotations

import copy
import itertools
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar, Protocol

import numpy as np
from numba import njit

from extensor.core.tensor import Array, ExTensor
from extensor.training.flat import SUPPORTED_DTYPES, FlatBuffer
from extensor.training.optimizers.compact_state import (
    ABSMAX,
    CompactRun,
    CompactStore,
    decode_form,
    encode_form,
)
from extensor.training.optimizers.declare import Rules, State, require_bool, require_real

__all__ = ["Optimizer", "ParamGroup", "Run", "Window", "require_bool", "require_real"]

#: A parameter group: ``{"params": [ExTensor, ...], "lr": ..., ...}``.
ParamGroup = dict[str, Any]


_EMPTY = {dtype: np.empty(0, dtype=dtype) for dtype in SUPPORTED_DTYPES}


class Run:
    """A stretch of consecutive parameters of one pack, updated by one kernel call.

    Attributes:
        param: 1-D view of the parameters' values (updated in place).
        grad: 1-D view of their gradients (read only by convention).
        state: the optimizer's state buffers for these parameters, 1-D views by name.
        step: the step number this update performs for every parameter of the run (1 on a
            parameter's first update), like torch's ``state["step"]`` after its increment.
        dtype: the element dtype; pass scalars to kernels as ``run.scalar(x)`` so that the
            kernel computes in this dtype (a float64 scalar would promote float32 math).
        scalar: ``dtype.type`` itself (``np.float32`` or ``np.float64``): ``run.scalar(x)`` is
            `x` as a NumPy scalar of the run's dtype. An attribute rather than a method because
            an update casts about ten scalars per call and a method frame each costs more than
            the cast (it shows on steps over many small tensors).
        grad_scale: the factor the stored gradients are still to be multiplied by (a clip
            deferred into this step, see `FlatBuffer.defer_scale`), in the run's dtype; 1 when
            none. Only optimizers with `fuses_grad_scale` see a factor other than 1.
        compact: with a compact `Optimizer.state_dtype`, the run's compact state (`state` is
            then empty and the kernel decodes and encodes blocks itself); else None.
    """

    __slots__ = (
        "_offsets", "_sums", "compact", "dtype", "grad", "grad_scale", "param", "scalar", "state", "step",
    )  # fmt: skip

    def __init__(
        self,
        param: Array,
        grad: Array,
        state: dict[str, Array],
        step: float,
        offsets: Array,
        sums: Array | None = None,
        grad_scale: np.floating[Any] | None = None,
        compact: CompactRun | None = None,
    ) -> None:
        self.compact = compact
        self.param = param
        self.grad = grad
        self.state = state
        self.step = step
        self.dtype: np.dtype[Any] = param.dtype
        self.scalar: Callable[[Any], np.floating[Any]] = self.dtype.type
        self.grad_scale: np.floating[Any] = self.scalar(1) if grad_scale is None else grad_scale
        self._offsets = offsets
        self._sums = sums

    def gradient_sign(self, maximize: bool) -> np.floating[Any]:
        """The factor a kernel multiplies each stored gradient by as it reads it: -1 to maximise,
        else 1, times `grad_scale`.

        Folding the clip into the sign is exact: ``(±1·s)·g`` rounds to ``±(s·g)``, the value an
        eager clip stores and the sign then negates, so a fused step is bit-identical to clip
        followed by step.
        """
        return (self.scalar(-1) if maximize else self.scalar(1)) * self.grad_scale

    @property
    def offsets(self) -> Array:
        """int64 bounds of the run's tensors within `param`: tensor k is ``offsets[k]:offsets[k+1]``."""
        return self._offsets - self._offsets[0]

    @property
    def given_tensor_sums(self) -> Array | None:
        """Per-tensor sums of squares (float64, shape (tensors, 2): weights', gradients') supplied
        for this run, or None: the layer-wise optimizers (LARS) then compute their own.

        A wrapper that updates only part of each tensor (the distributed `ShardedOptimizer`)
        supplies the sums over the whole tensors, which no single rank holds.
        """
        return self._sums

    def buffer(self, name: str) -> Array:
        """State buffer `name`, or an empty array of the run's dtype when it is not kept.

        Kernels take every buffer they may use; an unused one is passed empty so that one
        compiled signature serves every option combination.
        """
        found = self.state.get(name)
        return _EMPTY[self.dtype] if found is None else found


class Window(Protocol):
    """An element window ``[lo, hi)`` of a pack's buffer with its own gradient and state slices.

    `Optimizer._step_pack` updates only the window's elements when given one: the distributed
    `ShardedOptimizer` steps each rank's slice with the averaged gradient it received and the
    slice of state it keeps. `grad` and every ``state_array(name)`` have ``hi - lo`` elements.
    """

    lo: int
    hi: int
    grad: Array
    #: a clip scale deferred into the step, as `FlatBuffer.pending_scale`, or None
    pending_scale: np.floating[Any] | None

    def state_array(self, name: str) -> Array:
        """The window's slice of state buffer `name` (allocated zeroed on first use)."""
        ...

    def settle(self) -> None:
        """Apply the pending scale to `grad` in place, if any."""
        ...


@njit(cache=True)
def _all_present_and_equal(present: Array, key: Array) -> bool:
    """Whether every entry of `present` is True and every entry of `key` equals the first.

    The common case of a step (one run per pack), checked in one compiled pass: NumPy's
    ``present.all() and (key == key[0]).all()`` costs several microseconds of call overhead.
    """
    first = key[0]
    for i in range(present.size):  # noqa: SIM110 - a compiled loop; numba has no all() over a generator
        if not present[i] or key[i] != first:
            return False
    return True


class _Pack:
    """The parameters of one group and one dtype: a FlatBuffer, step counts and flat state."""

    def __init__(self, tensors: list[ExTensor], state_dtype: str | None = None) -> None:
        self.buffer = FlatBuffer(tensors)
        #: per-parameter step counts, float32 like torch's ``state["step"]``; 0 means "no state yet".
        self.steps: Array = np.zeros(len(tensors), dtype=np.float32)
        #: flat state arrays by name, allocated (zeroed) the first time a step needs them.
        self.state: dict[str, Array] = {}
        #: the state stored as bfloat16 or int8 instead (`Optimizer.state_dtype`), or None
        self.compact = None if state_dtype is None else CompactStore(self.buffer.offsets, state_dtype)

    def state_array(self, name: str) -> Array:
        array = self.state.get(name)
        if array is None:
            array = self.state[name] = np.zeros_like(self.buffer.data)
        return array

    def runs(self, key: Array) -> list[tuple[int, int]]:
        """Maximal ``[a, b)`` index ranges of present parameters sharing one `key` value."""
        present = self.buffer.present
        count = present.size
        if _all_present_and_equal(present, key):
            return [(0, count)]
        change = np.ones(count + 1, dtype=np.bool_)
        change[1:count] = (present[1:] != present[:-1]) | (key[1:] != key[:-1])
        bounds = np.flatnonzero(change)
        return [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if present[a]]


class Optimizer:
    """Base class of the optimizers: torch.optim's interface over flat parameter buffers.

    Args:
        params: an iterable of ExTensors, or of parameter-group dicts
            (``{"params": [...], "lr": ..., ...}``) whose missing options take `defaults`.
        defaults: the default value of every hyperparameter, validated by `_validate_group`.

    Subclasses declare and implement:

    * `hyperparameters`: the checks of every group (`declare.Check("lr >= 0", "learning rate")`,
      `declare.Flag("maximize")`...), run at construction, `add_param_group` and
      `load_state_dict`; override ``_validate_group(group)`` only for what a check cannot say.
    * `buffers`: the flat state buffers in torch's key order (`declare.State` for conditional
      ones); `step_in_state` says whether ``state[p]`` has torch's ``"step"``.
    * ``_update(group, run)``: update one `Run` in place (one kernel call).
    * optionally ``_counts_steps(group)`` and ``_run_key(steps)``.
    """

    #: The hyperparameter checks every group must pass (see `declare.Check`), in torch's order.
    hyperparameters: ClassVar[Rules] = ()
    #: The flat state buffers, in torch's key order: a name, or a `declare.State` kept only when
    #: its condition on the group holds. Declaring them also sets `state_names`.
    buffers: ClassVar[tuple[str | State, ...]] = ()
    #: Every state buffer name this optimizer may keep (load_state_dict accepts these).
    state_names: ClassVar[tuple[str, ...]] = ()
    #: Whether `state[p]` exposes torch's ``"step"`` (Adam, RMSprop) or not (SGD).
    step_in_state: ClassVar[bool] = True
    #: Whether `_update` reads per-tensor norms (`Run.given_tensor_sums` when sharded), as LARS does.
    uses_tensor_norms: ClassVar[bool] = False
    #: Whether `step` needs a closure that re-evaluates the loss (several times, as LBFGS does).
    requires_closure: ClassVar[bool] = False
    #: How the state buffers are stored: None (the parameters' dtype) or a compact form,
    #: ``"bfloat16"`` / ``"int8"`` (`compact_state`), set by optimizers that support it before
    #: `Optimizer.__init__` runs; their kernels then read `Run.compact`.
    state_dtype: str | None = None
    #: The state buffers holding signed values (first moments); the others use the unsigned map.
    signed_state: ClassVar[frozenset[str]] = frozenset({"exp_avg", "momentum_buffer", "grad_avg"})
    #: Whether `_update` applies `Run.grad_scale` itself (through `Run.gradient_sign`), so that a
    #: deferred clip costs no pass of its own; otherwise the step applies the scale to the
    #: gradients first (`FlatBuffer.settle`), exactly as an eager clip would have.
    fuses_grad_scale: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "buffers" in cls.__dict__:
            cls.state_names = tuple(entry if isinstance(entry, str) else entry.name for entry in cls.buffers)

    def __init__(self, params: Iterable[Any], defaults: Mapping[str, Any]) -> None:
        self.defaults: dict[str, Any] = dict(defaults)
        self._validate_group(self.defaults)
        self.param_groups: list[ParamGroup] = []
        self._packs: list[list[_Pack]] = []
        self._where: dict[ExTensor, tuple[_Pack, int]] = {}
        self.state = OptimizerState(self)

        groups = _as_group_list(params)
        seen: set[int] = set()
        prepared = [self._prepare_group(group, position, seen) for position, group in enumerate(groups)]
        for group in prepared:
            self._install_group(group)

    # ----------------------------------------------------------------- subclass hooks
    def _validate_group(self, group: Mapping[str, Any]) -> None:
        """Raise ValueError/TypeError if a hyperparameter of `group` is invalid: by default, the
        declared `hyperparameters` checks in order (a subclass adds what a condition cannot say)."""
        for check in self.hyperparameters:
            check(group)

    def _update(self, group: ParamGroup, run: Run) -> None:
        """Apply one step of the algorithm to `run` in place."""
        raise NotImplementedError

    def _state_names(self, group: ParamGroup) -> tuple[str, ...]:
        """The state buffers a step of `group` uses, in torch's key order: by default the declared
        `buffers` whose condition holds for `group`."""
        return tuple(
            entry if isinstance(entry, str) else entry.name
            for entry in self.buffers
            if isinstance(entry, str) or entry.when(group)
        )

    def _counts_steps(self, group: ParamGroup) -> bool:
        """Whether a step of `group` counts as one (creates state) for the stepped parameters."""
        return True

    def _run_key(self, steps: Array) -> Array:
        """What must be equal for parameters to share a kernel call: by default the step count."""
        return steps

    # ----------------------------------------------------------------- groups
    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (missing ones take `defaults`).

        Raises:
            TypeError: not a dict, a parameter that is not a float32/float64 ExTensor.
            ValueError: no parameters, a parameter already optimized (in this or another group)
                or given twice, a non-leaf tensor, or an invalid hyperparameter.
        """
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        group = self._prepare_group(param_group, len(self.param_groups), seen)
        self._install_group(group)

    def _prepare_group(self, param_group: Any, position: int, seen: set[int]) -> ParamGroup:
        """Validate one group and return it normalised; binds nothing."""
        if not isinstance(param_group, Mapping):
            raise TypeError(f"a parameter group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"parameter group {position} has no 'params' entry")
        params = _as_param_list(param_group["params"], position)
        if not params:
            raise ValueError(f"optimizer got an empty parameter list (group {position})")
        for index, param in enumerate(params):
            where = f"parameter {index} of group {position}"
            if not isinstance(param, ExTensor):
                raise TypeError(f"optimizers optimize ExTensors, but {where} is a {type(param).__name__}")
            if param.dtype not in SUPPORTED_DTYPES:
                raise TypeError(f"{where} has dtype {param.dtype}; optimizers support float32 and float64")
            if not param.is_leaf:
                raise ValueError(f"can't optimize a non-leaf tensor ({where}, shape {param.shape})")
            if self.state_dtype is not None and param.dtype != np.float32:
                raise TypeError(
                    f"state_dtype={self.state_dtype!r} needs float32 parameters, "
                    f"{where} has dtype {param.dtype}"
                )
            if id(param) in seen:
                raise ValueError(
                    f"{where} (shape {param.shape}) appears more than once; a parameter may belong to "
                    "one group only, once"
                )
            seen.add(id(param))
        group: ParamGroup = {"params": params}
        for key, default in self.defaults.items():
            group[key] = param_group.get(key, default)
        for key, value in param_group.items():
            if key not in group:
                group[key] = value
        self._validate_group(group)
        return group

    def _install_group(self, group: ParamGroup) -> None:
        """Pack a validated group's parameters (one FlatBuffer per dtype) and register it."""
        by_dtype: dict[np.dtype[Any], list[ExTensor]] = {}
        for param in group["params"]:
            by_dtype.setdefault(param.dtype, []).append(param)
        packs = [_Pack(tensors, self.state_dtype) for tensors in by_dtype.values()]
        for pack in packs:
            for index, param in enumerate(pack.buffer.tensors):
                self._where[param] = (pack, index)
        self.param_groups.append(group)
        self._packs.append(packs)

    def _check_packed(self, buffers: bool = True) -> None:
        """Raise unless every group still holds the parameters packed for it (and, with
        `buffers`, their buffers are still valid).

        Each group's parameters live in flat buffers built when the group was added, so a
        parameter appended to ``param_groups[i]["params"]`` (or a group appended to
        `param_groups`) would silently never be stepped; torch picks such edits up. Only the
        counts are compared: the check runs on every step and must cost nothing.
        """
        if len(self.param_groups) != len(self._packs):
            raise ValueError(
                f"param_groups has {len(self.param_groups)} groups but {len(self._packs)} were added; "
                "add a group with optimizer.add_param_group(group)"
            )
        for position, (group, packs) in enumerate(zip(self.param_groups, self._packs, strict=True)):
            packed = 0
            for pack in packs:
                if buffers:
                    pack.buffer.check_valid()
                packed += len(pack.buffer.tensors)
            if len(group["params"]) != packed:
                raise ValueError(
                    f"param_groups[{position}]['params'] holds {len(group['params'])} parameters but "
                    f"{packed} were packed when the group was added; its parameters cannot change "
                    "(add new parameters with optimizer.add_param_group({'params': [...]}))"
                )

    # ----------------------------------------------------------------- stepping
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step; return what `closure` (if given) returns.

        `closure` re-evaluates the model and returns the loss; it runs before the update.
        Hyperparameters are read from `param_groups` now, so a scheduler's changes apply.
        """
        loss = closure() if closure is not None else None
        self._check_packed()
        for group, packs in zip(self.param_groups, self._packs, strict=True):
            for pack in packs:
                self._step_pack(group, pack)
        return loss

    def _step_pack(
        self, group: ParamGroup, pack: _Pack, window: Window | None = None, sums: Array | None = None
    ) -> None:
        """Update one pack (one kernel call per run), or only the elements of `window`.

        Runs are found and step counts advanced over the whole pack either way, so that every
        rank of a sharded step agrees on them. With a window, each run is cut to the window and
        reads the window's gradient and state; `sums` (tensors, 2), when given, are the complete
        per-tensor sums of squares of weights and gradients that the runs pass on to layer-wise
        optimizers (`Run.given_tensor_sums`), indexed like the pack's tensors.
        """
        key = self._run_key(pack.steps)
        runs = pack.runs(key)
        if not runs:
            return
        buffer = pack.buffer
        offsets = buffer.offsets
        scaled: FlatBuffer | Window = buffer if window is None else window
        if scaled.pending_scale is not None and not self.fuses_grad_scale:
            scaled.settle()
        grad_scale = scaled.pending_scale
        storage: Window | _Pack = pack if window is None else window
        start, stop = (0, buffer.numel) if window is None else (window.lo, window.hi)
        grad = buffer.grad if window is None else window.grad
        compact = pack.compact
        if compact is not None and window is not None:
            raise NotImplementedError(f"state_dtype={compact.state_dtype!r} cannot be sharded yet")
        names = self._state_names(group)
        state = {} if compact is not None else {name: storage.state_array(name) for name in names}
        if compact is not None:
            for name in names:
                compact.state(name, name in self.signed_state)
        counts = self._counts_steps(group)
        one = np.float32(1)
        if window is None and len(runs) == 1 and runs[0] == (0, len(buffer)):
            # the common case, one run over the whole pack: no slicing, no bounds arithmetic
            self._update(
                group,
                Run(
                    param=buffer.data,
                    grad=grad,
                    state=state,
                    step=float(np.float32(key[0]) + one),  # torch: float32 step += 1, then .item()
                    offsets=offsets,
                    sums=sums,
                    grad_scale=grad_scale,
                    compact=None if compact is None else CompactRun(compact, 0, len(buffer)),
                ),
            )
            if counts:
                pack.steps += one
            return
        for a, b in runs:
            lo, hi = max(int(offsets[a]), start), min(int(offsets[b]), stop)
            if lo < hi:
                if window is None:
                    first, last, run_offsets = a, b, offsets[a : b + 1]
                else:  # the tensors the window's part of the run touches, clipped to it
                    first = int(np.searchsorted(offsets, lo, side="right")) - 1
                    last = int(np.searchsorted(offsets, hi, side="left"))
                    run_offsets = np.clip(offsets[first : last + 1], lo, hi)
                run = Run(
                    param=buffer.data[lo:hi],
                    grad=grad[lo - start : hi - start],
                    state={name: array[lo - start : hi - start] for name, array in state.items()},
                    step=float(np.float32(key[a]) + one),  # torch: float32 step += 1, then .item()
                    offsets=run_offsets,
                    sums=None if sums is None else sums[first:last],
                    grad_scale=grad_scale,
                    compact=None if compact is None else CompactRun(compact, a, b),
                )
                self._update(group, run)
            if counts:
                pack.steps[a:b] += one

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients: one flag reset per buffer (``set_to_none``), else one zero fill."""
        for packs in self._packs:
            for pack in packs:
                pack.buffer.check_valid()
                pack.buffer.zero_grad(set_to_none)

    # ----------------------------------------------------------------- state
    def _param_state(self, param: ExTensor, snapshot: bool) -> dict[str, Any]:
        """`param`'s state with torch's keys: live views, or copies when `snapshot`."""
        pack, index = self._where[param]
        if pack.steps[index] == 0:
            return {}
        result: dict[str, Any] = {}
        if self.step_in_state:
            step = pack.steps[index : index + 1].reshape(())
            result["step"] = step.copy() if snapshot else step
        segment = pack.buffer.segment(index)
        for name, array in pack.state.items():
            view = array[segment].reshape(param.shape)
            result[name] = view.copy() if snapshot else view
        if pack.compact is not None:  # the stored form, copies (there is no float view to give)
            for name in self.state_names:
                if name in pack.compact.states:
                    result.update(pack.compact.export(name, index, param.shape))
        return result

    def state_dict(self) -> dict[str, Any]:
        """A snapshot of the optimizer in torch's layout, with NumPy arrays for tensors.

        ``{"state": {index: {"step": 0-d float32 array, "exp_avg": array, ...}},
        "param_groups": [{hyperparameters..., "params": [indices]}]}``. Parameters are
        numbered in group order; parameters without state (never stepped) are absent from
        ``"state"``, as in torch. Unlike torch, arrays are copies: the snapshot does not change
        as training continues.
        """
        self._check_packed(buffers=False)
        groups: list[dict[str, Any]] = []
        state: dict[int, dict[str, Any]] = {}
        index = 0
        for group in self.param_groups:
            packed = {key: copy.deepcopy(value) for key, value in group.items() if key != "params"}
            packed["params"] = list(range(index, index + len(group["params"])))
            for param in group["params"]:
                param_state = self._param_state(param, snapshot=True)
                if param_state:
                    state[index] = param_state
                index += 1
            groups.append(packed)
        return {"state": state, "param_groups": groups}

    def load_converted_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """`load_state_dict`, converting state stored in another form than this optimizer's
        `state_dtype` (bfloat16 or int8 into full precision, or the reverse): it is decoded to
        float32 and re-encoded. `load_state_dict` refuses such state, since converting loses bits."""
        self._convert_state = True
        try:
            self.load_state_dict(state_dict)
        finally:
            self._convert_state = False

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a `state_dict()` (ours, or torch's with tensors) onto this optimizer's parameters.

        Everything is validated before anything is written -- group count, group sizes,
        hyperparameters, state keys, shapes and dtypes -- so on error the optimizer is
        unchanged and the message says what differed. Values are copied in: later changes to
        `state_dict` do not affect the optimizer. State stored in another form than this
        optimizer's `state_dtype` is refused (see `load_converted_state_dict`).
        """
        self._load_state_dict(state_dict)

    def _load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict expects a dict, got {type(state_dict).__name__}")
        for key in ("state", "param_groups"):
            if key not in state_dict:
                raise ValueError(
                    f"the state dict has no {key!r} entry (keys: {sorted(map(str, state_dict))})"
                )
        saved_groups = state_dict["param_groups"]
        saved_state = state_dict["state"]
        if not isinstance(saved_state, Mapping):
            raise TypeError(f"state_dict['state'] must be a dict, got {type(saved_state).__name__}")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"the loaded state dict has {len(saved_groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )

        new_hyper: list[dict[str, Any]] = []
        owner: dict[Any, tuple[ExTensor, dict[str, Any]]] = {}
        for position, (saved, group) in enumerate(zip(saved_groups, self.param_groups, strict=True)):
            if not isinstance(saved, Mapping) or "params" not in saved:
                raise ValueError(f"loaded parameter group {position} is not a dict with a 'params' entry")
            ids = list(saved["params"])
            if len(ids) != len(group["params"]):
                raise ValueError(
                    f"loaded parameter group {position} has {len(ids)} parameters, "
                    f"this optimizer's group {position} has {len(group['params'])}"
                )
            hyper = {key: value for key, value in group.items() if key != "params"}
            hyper.update({key: copy.deepcopy(value) for key, value in saved.items() if key != "params"})
            try:
                self._validate_group(hyper)
            except (TypeError, ValueError) as error:
                raise type(error)(f"loaded parameter group {position}: {error}") from None
            for param_id, param in zip(ids, group["params"], strict=True):
                if param_id in owner:
                    raise ValueError(f"the loaded state dict lists parameter id {param_id!r} twice")
                owner[param_id] = (param, hyper)
            new_hyper.append(hyper)

        loaded: dict[ExTensor, tuple[float, dict[str, Array]]] = {}
        for param_id, param_state in saved_state.items():
            if param_id not in owner:
                raise ValueError(
                    f"the loaded state has an entry for parameter id {param_id!r}, which no group lists"
                )
            param, hyper = owner[param_id]
            checked = self._check_loaded_state(param_id, param, hyper, param_state)
            if checked is not None:
                loaded[param] = checked

        # everything is valid: write
        for group, hyper in zip(self.param_groups, new_hyper, strict=True):
            params = group["params"]
            group.clear()
            group["params"] = params
            group.update(hyper)
        for packs in self._packs:
            for pack in packs:
                for index, param in enumerate(pack.buffer.tensors):
                    segment = pack.buffer.segment(index)
                    step, arrays = loaded.get(param, (0.0, {}))
                    pack.steps[index] = step
                    if pack.compact is not None:
                        for name in self.state_names:
                            if name in arrays:
                                pack.compact.load(name, index, arrays, name in self.signed_state)
                            else:
                                pack.compact.clear(name, index)
                        continue
                    for name in self.state_names:
                        if name in arrays:
                            pack.state_array(name)[segment] = arrays[name].reshape(-1)
                        elif name in pack.state:
                            pack.state[name][segment] = 0

    def _check_loaded_state(
        self, param_id: Any, param: ExTensor, hyper: ParamGroup, param_state: Any
    ) -> tuple[float, dict[str, Array]] | None:
        """Validate one parameter's loaded state; return (step, arrays), or None when empty."""
        where = f"loaded state of parameter {param_id!r}"
        if not isinstance(param_state, Mapping):
            raise TypeError(f"{where} must be a dict, got {type(param_state).__name__}")
        if not param_state:
            return None
        allowed = set(self.state_names) | ({"step"} if self.step_in_state else set())
        allowed |= {name + ABSMAX for name in self.state_names}
        unknown = sorted(map(str, set(param_state) - allowed))
        if unknown:
            raise ValueError(
                f"{where} has unknown keys {unknown}; {type(self).__name__} keeps {sorted(allowed)}"
            )
        required = list(self._state_names(hyper)) + (["step"] if self.step_in_state else [])
        missing = [name for name in required if name not in param_state]
        if missing:
            raise ValueError(f"{where} lacks {missing}")
        arrays: dict[str, Array] = {}
        for name in self.state_names:
            if name not in param_state:
                continue
            arrays.update(self._stored_form(where, param, name, param_state))
        for name, array in list(arrays.items()):
            if name.endswith(ABSMAX):
                continue
            if array.shape != param.shape:
                raise ValueError(
                    f"{where}: {name!r} has shape {array.shape}, the parameter has shape {param.shape}"
                )
        step = 1.0
        if self.step_in_state:
            raw = np.asarray(param_state["step"])
            if raw.size != 1 or raw.dtype.kind not in "fiu" or not np.isfinite(raw).all() or raw.item() < 0:
                raise ValueError(f"{where}: 'step' must be one finite non-negative number, got {raw!r}")
            step = float(raw.item())
        return step, arrays

    def _stored_form(
        self, where: str, param: ExTensor, name: str, param_state: Mapping[str, Any]
    ) -> dict[str, Array]:
        """Loaded state `name` of `param` in the form this optimizer stores it, checked: the
        parameter's dtype, or the compact form of `state_dtype` (converted only when asked)."""
        pack, index = self._where[param]
        compact = pack.compact
        given = {key: np.asarray(param_state[key]) for key in (name, name + ABSMAX) if key in param_state}
        kind = given[name].dtype
        form = "bfloat16" if kind == np.uint16 else "int8" if kind == np.uint8 else None
        if form == "int8" and name + ABSMAX not in given:
            raise ValueError(f"{where}: {name!r} holds int8 codes but {name + ABSMAX!r} is missing")
        if form is None and kind.kind != "f":
            raise TypeError(f"{where}: {name!r} has dtype {kind}, expected a floating-point array")
        if compact is None:
            expected = {name: (param.shape, param.dtype)}
            wanted = None
        else:
            expected = compact.expected(name, index, param.shape)
            wanted = compact.state_dtype if expected[name][1] != np.float32 else None
        if form != wanted:
            if not getattr(self, "_convert_state", False):
                mine = wanted or f"{expected[name][1]} (full precision)"
                raise TypeError(
                    f"{where}: {name!r} is stored as {form or kind}, this optimizer keeps {mine} state; "
                    "use load_converted_state_dict to convert it"
                )
            signed = name in self.signed_state
            if given[name].shape != param.shape:
                raise ValueError(
                    f"{where}: {name!r} has shape {given[name].shape}, the parameter has shape {param.shape}"
                )
            values = decode_form(given, name, signed, param.shape)
            if wanted is None:
                given = {name: values.astype(expected[name][1])}
            else:
                given = encode_form(values, name, wanted, True, signed)
        elif form is None:
            given = {name: given[name]}
        for key, (shape, dtype) in expected.items():
            if key not in given:
                raise ValueError(f"{where}: {key!r} is missing")
            if given[key].shape != shape:
                raise ValueError(f"{where}: {key!r} has shape {given[key].shape}, expected {shape}")
            if given[key].dtype != dtype:
                raise TypeError(
                    f"{where}: {key!r} has dtype {given[key].dtype}, the parameter has dtype {dtype}"
                )
        return given

    # ----------------------------------------------------------------- display
    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for position, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {position}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


class OptimizerState(Mapping[ExTensor, dict[str, Array]]):
    """`optimizer.state`: each parameter's state with torch's keys, as live NumPy views.

    ``state[p]`` is a fresh dict of views into the flat state arrays (``"step"`` is a 0-d
    float32 view); writing into those arrays changes the optimizer's state, as writing into
    torch's state tensors does. A parameter that has never been stepped maps to ``{}``. With a
    compact `Optimizer.state_dtype` the buffers are copies of their stored form (`compact_state`):
    there is no float array to view.
    Iteration and ``len`` cover the parameters that have state.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        # a weak reference: a strong one back to the optimizer would be a cycle, and an optimizer
        # in a cycle is freed only by the garbage collector, not as soon as it is dropped
        self._optimizer = weakref.ref(optimizer)
        self._where = optimizer._where

    def __getitem__(self, param: ExTensor) -> dict[str, Array]:
        if param not in self._where:
            shape = getattr(param, "shape", "?")
            raise KeyError(f"the tensor of shape {shape} is not optimized by this optimizer")
        optimizer = self._optimizer()
        if optimizer is None:
            raise ReferenceError("the optimizer this state belongs to no longer exists")
        return optimizer._param_state(param, snapshot=False)

    def __contains__(self, param: object) -> bool:
        where = self._where.get(param)  # type: ignore[call-overload]
        return where is not None and bool(where[0].steps[where[1]] != 0)

    def __iter__(self) -> Iterator[ExTensor]:
        # `_where` holds the parameters in group order, as they were added
        return (param for param in self._where if param in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _as_param_list(params: Any, position: int) -> list[Any]:
    """A group's "params" entry as a list; sets (unordered) are refused as in torch."""
    if isinstance(params, ExTensor):
        return [params]
    if isinstance(params, (set, frozenset)):
        raise TypeError(
            f"the parameters of group {position} are a set; optimizer parameters need an ordered "
            "collection (list or tuple) so that state is matched reproducibly"
        )
    if isinstance(params, (str, bytes, Mapping)) or not isinstance(params, Iterable):
        raise TypeError(
            f"the parameters of group {position} must be an iterable of ExTensors, got {params!r}"
        )
    return list(params)


def _as_group_list(params: Any) -> list[Any]:
    """The constructor's `params` (tensors or group dicts) as a list of group dicts."""
    if isinstance(params, ExTensor):
        raise TypeError(
            "params must be an iterable of ExTensors or of parameter-group dicts, got a single ExTensor "
            "(wrap it in a list)"
        )
    items = _as_param_list(params, 0)
    if not items:
        raise ValueError("optimizer got an empty parameter list")
    if all(isinstance(item, Mapping) for item in items):
        return items
    if any(isinstance(item, Mapping) for item in items):
        raise TypeError("params mixes parameter-group dicts and tensors; give either all dicts or no dicts")
    return [{"params": items}]
