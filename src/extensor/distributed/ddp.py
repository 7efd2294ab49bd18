"""`DistributedDataParallel`: the same model on every rank, trained on different data, kept identical.

Semantics of `torch.nn.parallel.DistributedDataParallel` and Horovod: at construction the
parameters and buffers of rank 0 are broadcast to every rank; after each backward,
`reduce_gradients()` replaces every gradient by its average over the ranks; every rank then
runs the same optimizer step on the same averaged gradients, so the models stay identical. With
R ranks each on a batch of B samples and a loss that averages over its batch, the averaged
gradient is that of the union batch of R*B samples: training follows the single-process run
with batch R*B.

Once an optimizer has packed the parameters into flat buffers (`extensor.training.flat`), the
average over a group's gradients is one logical all-reduce of its flat gradient array, sent as
zero-copy slices of a few MiB, buffer after buffer in parameter order on every rank.

Why an explicit `reduce_gradients()` rather than a hook: `Tape.backward` accumulates into the
gradients at its very end and exposes no hook, and clipping must see averaged gradients; so the
loop says where averaging happens::

    model = DistributedDataParallel(model)
    optimizer = AdamW(model.parameters(), lr=1e-3)
    for x, y in loader:                      # a DataLoader with a DistributedSampler
        tape = Tape()
        with tape:
            loss = criterion(model(x), y)
        optimizer.zero_grad()
        tape.backward(loss)
        model.reduce_gradients()             # average over ranks (skipped inside no_sync())
        clip_grad_norm(model.parameters(), 1.0)
        optimizer.step()
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from extensor.core.tensor import Array, ExTensor
from extensor.distributed.comm import DEFAULT_CHUNK_BYTES, Communicator, world
from extensor.distributed.layout import check_same_layout, describe_arrays
from extensor.distributed.presence import merge_gradient_presence
from extensor.distributed.threads import limit_threads
from extensor.training.flat import FlatBuffer


def module_parameters(module: Any) -> list[ExTensor]:
    """`module.parameters()` as a list of ExTensors (TypeError for anything else)."""
    parameters = getattr(module, "parameters", None)
    if not callable(parameters):
        raise TypeError(f"expected a model with a parameters() method, got {type(module).__name__}")
    found = list(parameters())
    for index, parameter in enumerate(found):
        if not isinstance(parameter, ExTensor):
            raise TypeError(f"model parameter {index} is a {type(parameter).__name__}, not an ExTensor")
    return found


def module_buffers(module: Any) -> list[Array]:
    """The arrays of `module.buffers()` (running statistics and the like), or [] without that method."""
    buffers = getattr(module, "buffers", None)
    if not callable(buffers):
        return []
    arrays = []
    for index, buffer in enumerate(buffers()):
        array = buffer.data if isinstance(buffer, ExTensor) else buffer
        if not isinstance(array, np.ndarray):
            raise TypeError(f"buffer {index} of the model is a {type(buffer).__name__}, not an array")
        arrays.append(array)
    return arrays


def broadcast_arrays(comm: Communicator, arrays: list[Array], root: int = 0) -> None:
    """Overwrite each array in place with root's (contiguous ones directly, others through a copy)."""
    for array in arrays:
        if array.flags.c_contiguous:
            comm.broadcast_(array, root)
        else:
            staging = np.ascontiguousarray(array)
            comm.broadcast_(staging, root)
            np.copyto(array, staging)


def gradient_buffers(parameters: list[ExTensor]) -> tuple[list[FlatBuffer], list[ExTensor]]:
    """The flat buffers holding `parameters`' gradients, in first-use order, and the unbound parameters."""
    buffers: list[FlatBuffer] = []
    seen: set[int] = set()
    loose: list[ExTensor] = []
    for parameter in parameters:
        slot = parameter.grad_slot
        if slot is not None and isinstance(slot.owner, FlatBuffer):
            if id(slot.owner) not in seen:
                seen.add(id(slot.owner))
                buffers.append(slot.owner)
        else:
            loose.append(parameter)
    return buffers, loose


def average_loose_gradients(comm: Communicator, parameters: list[ExTensor]) -> None:
    """Average the gradients of parameters not packed in a flat buffer, one by one (collective)."""
    if not parameters:
        return
    flags = np.array([p.grad is not None for p in parameters], dtype=np.uint8)
    comm.allreduce_max_(flags)
    for parameter, present in zip(parameters, flags, strict=True):
        if not present:
            continue
        gradient = parameter.grad
        summed = np.zeros(parameter.shape, parameter.dtype) if gradient is None else np.array(gradient)
        comm.allreduce_sum_(summed)
        parameter.grad = summed / np.asarray(comm.size, dtype=summed.dtype)


class DistributedDataParallel:
    """Wrap `module` for data-parallel training over the ranks of `comm` (default: the MPI world).

    At construction (collective): checks that every rank has the same parameter and buffer
    shapes and dtypes (a clear ValueError otherwise), broadcasts rank 0's parameters and buffers
    to every rank, and limits this rank's BLAS and numba threads to its share of the machine's
    cores. Calling the wrapper (or `forward`) calls the module; any other attribute is the
    module's (`parameters()`, `train()`, `state_dict()`...).

    Args:
        module: a model with `parameters()` (and optionally `buffers()`) returning ExTensors.
        comm: the ranks to train on; default `extensor.distributed.world()`.
        broadcast_buffers: before every forward, overwrite the module's buffers (BatchNorm
            running statistics) with rank 0's, as PyTorch's DDP does by default.
        chunk_bytes: size of the slices the gradient buffers are all-reduced in.
        threads: BLAS/numba threads for this rank (default: cores / ranks on this machine);
            ignored with a single rank.
    """

    def __init__(
        self,
        module: Any,
        comm: Communicator | None = None,
        broadcast_buffers: bool = True,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        threads: int | None = None,
    ) -> None:
        comm = world() if comm is None else comm
        if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 8:
            raise ValueError(f"chunk_bytes must be an integer of at least 8 bytes, got {chunk_bytes!r}")
        parameters = module_parameters(module)
        buffers = module_buffers(module)
        check_same_layout(
            comm,
            describe_arrays("parameter", parameters) + describe_arrays("buffer", buffers),
            "the model's parameters and buffers",
        )
        if comm.size > 1:
            limit_threads(comm, threads)
        broadcast_arrays(comm, [p.data for p in parameters] + buffers)
        self.module = module
        self.comm = comm
        self.broadcast_buffers = bool(broadcast_buffers)
        self.chunk_bytes = chunk_bytes
        self._parameters = parameters
        self._synchronizing = True
        self._checked_buffers: list[FlatBuffer] = []

    # ------------------------------------------------------------------ the module
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The module's forward, after taking rank 0's buffers when `broadcast_buffers` is set."""
        if self.broadcast_buffers and self.comm.size > 1:
            broadcast_arrays(self.comm, module_buffers(self.module))
        forward = getattr(self.module, "forward", None)
        if callable(forward):
            return forward(*args, **kwargs)
        return self.module(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the wrapper lacks: the module's own API stays usable.
        if name == "module":
            raise AttributeError(name)
        return getattr(self.module, name)

    # ------------------------------------------------------------------ gradients
    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Within this block `reduce_gradients()` does nothing: gradients accumulate locally.

        For gradient accumulation: run several backward passes inside `no_sync()`, then one more
        outside it followed by `reduce_gradients()`, which averages everything accumulated.
        """
        previous = self._synchronizing
        self._synchronizing = False
        try:
            yield
        finally:
            self._synchronizing = previous

    def reduce_gradients(self) -> None:
        """Average every parameter's gradient over the ranks, in place (collective; no-op in `no_sync`).

        Flat buffers go first, in the order their parameters appear in `module.parameters()`,
        then any parameter an optimizer has not packed. The first time a set of buffers is seen,
        their layouts (sizes, dtypes, tensor counts) are compared across ranks.
        """
        if not self._synchronizing or self.comm.size == 1:
            return
        buffers, loose = gradient_buffers(self._parameters)
        if buffers != self._checked_buffers:
            check_same_layout(
                self.comm,
                [
                    f"flat buffer {i}: {len(b)} tensors, {b.numel} elements, {b.dtype}"
                    for i, b in enumerate(buffers)
                ]
                + describe_arrays("unpacked parameter", loose),
                "the flat gradient buffers",
            )
            self._checked_buffers = buffers
        for buffer in buffers:
            buffer.check_valid()
        # absent gradients count as zeros where others have them (torch DDP's rule)
        for buffer, any_present in zip(buffers, merge_gradient_presence(self.comm, buffers), strict=True):
            if any_present:
                self.comm.allreduce_sum_(buffer.grad, self.chunk_bytes)
                np.divide(buffer.grad, self.comm.size, out=buffer.grad)
        average_loose_gradients(self.comm, loose)
