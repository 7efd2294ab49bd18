"""`ShardedOptimizer`: ZeRO stage 1 — each rank keeps optimizer state for one slice of each flat buffer.

Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion Parameter Models"
(SC 2020), stage 1 (optimizer state partitioning). Every flat buffer of the wrapped optimizer
(one per parameter group and dtype) is cut into R contiguous slices, one per rank, of
``floor`` or ``ceil`` of n / R elements. A tensor may straddle two slices. One step:

1. gradient presence flags are OR-ed over the ranks (one tiny all-reduce for all buffers);
2. each buffer's gradients are reduce-scattered: rank r receives the sum over ranks of its
   slice, then divides by R (the average, as in `DistributedDataParallel`);
3. per-tensor quantities that need the whole tensor (the global gradient norm of
   `clip_grad_norm`, per-tensor norms of layer-wise optimizers such as LARS) are completed from
   per-rank partial sums of squares with one small all-reduce, so they are exactly the
   unsharded values (up to the order of float64 additions);
4. the wrapped optimizer's own update (`_update`, its one fused kernel) runs on the rank's
   slice with the rank's slice of the state;
5. the parameters are all-gathered in place, so every rank again holds the whole model.

Communication per step for a buffer of n elements of b bytes: reduce-scatter + all-gather,
each moving (R-1)/R * n * b bytes per rank — the same volume as one all-reduce — plus
O(tensors) bytes for flags and norms. Optimizer state per rank: 1/R of the unsharded state.

The state dict is the wrapped optimizer's, in torch's layout, assembled from every rank's slice:
a checkpoint written by N ranks loads on M ranks (`load_state_dict` keeps this rank's slice) or
into the plain optimizer in one process.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from extensor.core.tensor import Array
from extensor.distributed.comm import Communicator, world
from extensor.distributed.ddp import broadcast_arrays
from extensor.distributed.layout import check_same_layout
from extensor.distributed.presence import merge_gradient_presence
from extensor.training.clip import clip_bound, clip_coefficient
from extensor.training.flat import scale_in_place, segment_sum_squares_pair, sum_squares
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, _Pack

__all__ = ["ShardedOptimizer", "shard_bounds", "state_bytes"]


def shard_bounds(size: int, ranks: int) -> Array:
    """Slice boundaries: rank r owns elements ``bounds[r]:bounds[r+1]`` of a buffer of `size`."""
    return (np.arange(ranks + 1, dtype=np.int64) * size) // ranks


class _Shard:
    """This rank's slice of one pack (FlatBuffer) of the wrapped optimizer, with its own state.

    The `Window` through which `Optimizer._step_pack` updates only this rank's elements.
    """

    def __init__(self, group_index: int, pack: _Pack, comm: Communicator) -> None:
        buffer = pack.buffer
        bounds = shard_bounds(buffer.numel, comm.size)
        self.group_index = group_index
        self.pack = pack
        self.lo = int(bounds[comm.rank])
        self.hi = int(bounds[comm.rank + 1])
        self.counts = tuple(int(c) for c in np.diff(bounds))
        #: the averaged gradient of this rank's slice (received by the reduce-scatter)
        self.grad: Array = np.zeros(self.hi - self.lo, dtype=buffer.dtype)
        #: this rank's slice of every state buffer, allocated the first time a step needs it
        self.state: dict[str, Array] = {}
        #: tensor boundaries relative to the slice, clipped to it (tensors outside are empty)
        self.local_offsets: Array = np.clip(buffer.offsets, self.lo, self.hi) - self.lo
        #: a clip scale `grad` is still to be multiplied by: the step's kernel applies it as it
        #: reads (`Optimizer.fuses_grad_scale`), anything else that reads `grad` settles it first
        self.pending_scale: np.floating[Any] | None = None

    def settle(self) -> None:
        """Apply the pending clip scale to `grad` in place, if any."""
        factor = self.pending_scale
        if factor is not None:
            self.pending_scale = None
            with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 is NaN, silently, as in torch
                scale_in_place(self.grad, factor)

    def state_array(self, name: str) -> Array:
        """This rank's slice of state buffer `name` (allocated zeroed on first use)."""
        array = self.state.get(name)
        if array is None:
            array = self.state[name] = np.zeros(self.hi - self.lo, dtype=self.pack.buffer.dtype)
        return array

    @property
    def tensor_count(self) -> int:
        return len(self.pack.buffer)


class ShardedOptimizer:
    """Wrap an extensor optimizer so that its state is partitioned over the ranks (ZeRO stage 1).

    Use it where the optimizer was used; it averages the gradients itself (do not also call
    `DistributedDataParallel.reduce_gradients`). Clip with the method, not the free function —
    the global norm is computed from every rank's slice::

        optimizer = ShardedOptimizer(AdamW(model.parameters(), lr=1e-3))
        for x, y in loader:                     # a DataLoader with a DistributedSampler
            tape = Tape()
            with tape:
                loss = criterion(model(x), y)
            optimizer.zero_grad()
            tape.backward(loss)
            optimizer.clip_grad_norm(1.0)       # optional
            optimizer.step()

    With R ranks on batches of B samples this follows the unsharded optimizer on batches of R*B.
    At construction (collective) the layouts of every rank's buffers are compared (ValueError on
    a difference) and rank 0's parameters are broadcast. Schedulers may be built on the wrapped
    optimizer or on this object: `param_groups` is the wrapped optimizer's list.

    Args:
        optimizer: an `extensor.training.optimizers.Optimizer` (SGD, Adam, AdamW, RMSprop,
            LARS...); state it already holds (a loaded checkpoint) is taken over, sliced.
        comm: the ranks to shard over; default `extensor.distributed.world()`.
    """

    def __init__(self, optimizer: Optimizer, comm: Communicator | None = None) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"ShardedOptimizer wraps an extensor Optimizer (SGD, Adam...), got {type(optimizer).__name__}"
            )
        if optimizer.state_dtype is not None:
            raise NotImplementedError(
                f"ShardedOptimizer cannot shard state_dtype={optimizer.state_dtype!r} state yet; "
                "use full-precision state (state_dtype=None) to shard it"
            )
        comm = world() if comm is None else comm
        for packs in optimizer._packs:
            for pack in packs:
                pack.buffer.check_valid()
        lines = [f"{len(optimizer.param_groups)} parameter groups, optimizer {type(optimizer).__name__}"]
        for g, packs in enumerate(optimizer._packs):
            for k, pack in enumerate(packs):
                shapes = ", ".join(str(t.shape) for t in pack.buffer.tensors)
                buffer = pack.buffer
                lines.append(f"group {g} buffer {k}: {buffer.dtype}, {buffer.numel} elements: {shapes}")
        check_same_layout(comm, lines, "the optimizer's flat buffers")
        broadcast_arrays(comm, [pack.buffer.data for packs in optimizer._packs for pack in packs])
        self.optimizer = optimizer
        self.comm = comm
        self._shards = [_Shard(g, pack, comm) for g, packs in enumerate(optimizer._packs) for pack in packs]
        self._reduced = False
        self._take_over_state()

    # ------------------------------------------------------------------ torch-like surface
    @property
    def param_groups(self) -> list[ParamGroup]:
        """The wrapped optimizer's parameter groups (schedulers change their `lr`)."""
        return self.optimizer.param_groups

    @property
    def defaults(self) -> dict[str, Any]:
        """The wrapped optimizer's default hyperparameters."""
        return self.optimizer.defaults

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients (of the whole model, on this rank)."""
        self.optimizer.zero_grad(set_to_none)
        self._reduced = False

    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Not supported: add every group to the optimizer before wrapping it."""
        raise RuntimeError(
            "ShardedOptimizer cannot add parameter groups after sharding; add every group to the wrapped "
            "optimizer before creating the ShardedOptimizer"
        )

    # ------------------------------------------------------------------ the step
    def reduce_gradients(self) -> None:
        """Average the gradients over the ranks into this rank's slices (collective; once per step).

        `clip_grad_norm` and `step` call it when it has not run since the last step or
        `zero_grad`; gradients accumulated after it would be ignored by this step.
        """
        comm = self.comm
        buffers = [shard.pack.buffer for shard in self._shards]
        for shard, any_present in zip(self._shards, merge_gradient_presence(comm, buffers), strict=True):
            shard.pending_scale = None  # the slice is overwritten by this step's average
            if any_present:
                comm.reduce_scatter_sum(shard.pack.buffer.grad, shard.grad, shard.counts)
                np.divide(shard.grad, comm.size, out=shard.grad)
        self._reduced = True

    def clip_grad_norm(
        self, max_norm: float, norm_type: float | str = 2.0, error_if_nonfinite: bool = False
    ) -> Array:
        """Scale the averaged gradients so that their global norm is at most `max_norm` (collective).

        The numbers of `extensor.training.clip_grad_norm` (torch's `clip_grad_norm_`) over every
        parameter of the wrapped optimizer, unsharded: the `norm_type` norm (2 or inf) of the
        gradients that exist, accumulated in float64 and returned as a 0-d array in the
        gradients' dtype; each gradient multiplied by ``min(max_norm / (norm + 1e-6), 1)``. Each
        rank reduces its slices; one all-reduce of one number completes the norm.

        Raises:
            TypeError, ValueError: a bad `max_norm` or `norm_type` (only 2 and inf are supported).
            RuntimeError: `error_if_nonfinite` and the norm is NaN or infinite (nothing changed).
        """
        limit = clip_bound("max_norm", max_norm)
        if isinstance(norm_type, bool) or norm_type not in (2, 2.0, math.inf, "inf"):
            raise ValueError(f"sharded clip_grad_norm supports norm_type 2 and inf, got {norm_type!r}")
        largest = norm_type in (math.inf, "inf")
        if not self._reduced:
            self.reduce_gradients()
        for shard in self._shards:
            shard.settle()  # a second clip sees the first one's result
        pieces = [view for shard in self._shards for view in self._present_pieces(shard)]
        if largest:
            maxima = np.array([np.abs(view).max() for view in pieces if view.size], dtype=np.float64)
            nan_seen = np.isnan(maxima)
            # a MAX reduction (MPI's, Python's) may drop a NaN depending on the order it meets it:
            # reduce a NaN flag beside the largest non-NaN value, so that NaN wins on every rank
            partial = np.array([np.max(maxima, initial=0.0, where=~nan_seen), float(nan_seen.any())])
            self.comm.allreduce_max_(partial)
            value = math.nan if partial[1] else float(partial[0])
        else:
            partial = np.array([sum(sum_squares(view) for view in pieces)], dtype=np.float64)
            self.comm.allreduce_sum_(partial)
            value = math.sqrt(partial[0])
        dtypes = [shard.grad.dtype for shard in self._shards if shard.pack.buffer.present.any()]
        dtype = np.result_type(*dtypes) if dtypes else np.dtype(np.float32)
        total = np.asarray(value, dtype=dtype)
        if error_if_nonfinite and not np.isfinite(total):
            raise RuntimeError(
                f"The total norm of order {norm_type} of the gradients is non-finite ({total}), so it "
                "cannot be clipped; set error_if_nonfinite=False to scale by it anyway"
            )
        coefficient = clip_coefficient(limit, total)
        if coefficient != 1.0:  # deferred: the step's kernel scales each gradient as it reads it
            for shard in self._shards:
                shard.pending_scale = shard.grad.dtype.type(coefficient)
        return total

    def clip_grad_value(self, clip_value: float) -> None:
        """Clamp the averaged gradients into ``[-clip_value, clip_value]`` (collective: reduces first)."""
        bound = clip_bound("clip_value", clip_value)
        if not self._reduced:
            self.reduce_gradients()
        for shard in self._shards:
            shard.settle()
            for view in self._present_pieces(shard):
                limit = view.dtype.type(bound)
                np.clip(view, -limit, limit, out=view)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One optimizer step over the ranks (collective): reduce, update own slices, all-gather.

        `closure`, if given, runs first (it re-evaluates the loss and its gradients) and its
        result is returned.
        """
        loss = closure() if closure is not None else None
        optimizer = self.optimizer
        optimizer._check_packed()  # also catches parameters appended to a group after wrapping
        if not self._reduced:
            self.reduce_gradients()
        if optimizer.uses_tensor_norms:
            sums: list[Array | None] = self._tensor_sums()
        else:
            sums = [None] * len(self._shards)
        for shard, shard_sums in zip(self._shards, sums, strict=True):
            group = optimizer.param_groups[shard.group_index]
            optimizer._step_pack(group, shard.pack, window=shard, sums=shard_sums)
        for shard in self._shards:
            self.comm.allgather_(shard.pack.buffer.data, shard.counts)
        self._reduced = False
        return loss

    def _tensor_sums(self) -> list[Array | None]:
        """Per shard, the complete per-tensor sums of squares of the parameters and the gradients.

        Each rank sums the parts of the tensors inside its slices (zero for the others), weights
        and gradients in one pass; one all-reduce over every buffer's (tensors, 2) array
        completes them.
        """
        partial = [
            segment_sum_squares_pair(
                shard.pack.buffer.data[shard.lo : shard.hi],
                shard.grad,
                shard.local_offsets,
                second_scale=shard.pending_scale,
            )
            for shard in self._shards
        ]
        complete = self._complete_partial_sums(np.concatenate(partial))
        result: list[Array | None] = []
        start = 0
        for shard in self._shards:
            result.append(complete[start : start + shard.tensor_count])
            start += shard.tensor_count
        return result

    def _complete_partial_sums(self, partial: Array) -> Array:
        """Sum the ranks' partial sums (one small all-reduce)."""
        return self.comm.allreduce_sum_(partial)

    def _present_pieces(self, shard: _Shard) -> list[Array]:
        """Views of this rank's averaged gradient slice covering the tensors that have a gradient."""
        present = shard.pack.buffer.present
        if present.all():
            return [shard.grad]
        local = shard.local_offsets
        return [shard.grad[local[i] : local[i + 1]] for i in np.flatnonzero(present)]

    # ------------------------------------------------------------------ state
    def _take_over_state(self) -> None:
        """Move any state the wrapped optimizer holds into this rank's slices, and free its copy."""
        for shard in self._shards:
            for name, array in shard.pack.state.items():
                np.copyto(shard.state_array(name), array[shard.lo : shard.hi])
            shard.pack.state.clear()

    @contextmanager
    def gathered_state(self) -> Iterator[Optimizer]:
        """Within the block, the wrapped optimizer holds its whole state, assembled from every rank.

        Collective (every rank enters it). Yields the wrapped optimizer, whose `state_dict()` —
        or a checkpoint saved from it, under its own class name — is then exactly the unsharded
        one; on leaving, the full copy is dropped and each rank keeps its slice. Do not step
        inside the block.
        """
        for shard in self._shards:
            full_state = {}
            for name, local in shard.state.items():
                full = np.empty(shard.pack.buffer.numel, dtype=local.dtype)
                full[shard.lo : shard.hi] = local
                full_state[name] = self.comm.allgather_(full, shard.counts)
            shard.pack.state = full_state
        try:
            yield self.optimizer
        finally:
            for shard in self._shards:
                shard.pack.state = {}

    def state_dict(self) -> dict[str, Any]:
        """The wrapped optimizer's `state_dict()` (torch's layout), assembled from every rank's slice.

        Collective: every rank must call it, and every rank receives the whole state (so each can
        write, validate or roll back a checkpoint); during the call this rank holds the full
        state once more. The result loads into this wrapper on any number of ranks, or into the
        plain wrapped optimizer class in a single process.
        """
        with self.gathered_state() as optimizer:
            return optimizer.state_dict()

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load a state dict from `state_dict()` or from the plain optimizer, keeping this rank's slice.

        The wrapped optimizer validates everything first (group count and sizes, hyperparameters,
        state names, shapes, dtypes) and changes nothing on error. Every rank must load the same
        state dict.
        """
        self.optimizer.load_state_dict(state_dict)
        for shard in self._shards:
            shard.state.clear()
        self._take_over_state()

    def __repr__(self) -> str:
        return f"ShardedOptimizer(rank {self.comm.rank} of {self.comm.size}, {self.optimizer!r})"


def state_bytes(optimizer: ShardedOptimizer | Optimizer) -> int:
    """Bytes of optimizer state (flat state arrays) held by this process."""
    if isinstance(optimizer, ShardedOptimizer):
        return sum(array.nbytes for shard in optimizer._shards for array in shard.state.values())
    return sum(
        sum(array.nbytes for array in pack.state.values()) + (pack.compact.nbytes() if pack.compact else 0)
        for packs in optimizer._packs
        for pack in packs
    )
