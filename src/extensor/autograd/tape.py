"""The gradient tape: records differentiable operations and runs them backwards.

While a `Tape` is active (`with tape:`), every operation on a tensor that requires gradients
appends one node to it: the output, the inputs, and the operation's vector-Jacobian product.
The recording order is already a topological order, so `backward` is a single reverse walk,
as in micrograd, without a graph sort.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from extensor.core.tensor import Array, ExTensor

#: A vector-Jacobian product: given the gradient of the output, the gradient of each input
#: (None for inputs that take no gradient).
Backward = Callable[[Array], Sequence[Array | None]]


@dataclass(eq=False)
class _Node:
    output: ExTensor
    inputs: tuple[ExTensor, ...]
    backward: Backward


class _State(threading.local):
    def __init__(self) -> None:
        self.tapes: list[Tape] = []
        self.grad_enabled = True


_state = _State()


class Tape:
    """Records operations while active and computes gradients of a recorded result.

    Use it as a context manager::

        tape = Tape()
        with tape:
            loss = criterion(model(x), y)
        grads = tape.backward(loss)

    Tapes nest: an operation is recorded on every active tape, so an outer tape sees the whole
    computation and an inner one only what ran inside it. A tape can run `backward` once; it then
    releases its recorded graph (and raises if asked again).
    """

    def __init__(self) -> None:
        self._nodes: list[_Node] = []
        self._consumed = False

    def __enter__(self) -> Tape:
        if self._consumed:
            raise RuntimeError("this tape has already run backward; create a new Tape to record again")
        _state.tapes.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if not _state.tapes or _state.tapes[-1] is not self:
            raise RuntimeError("tapes must be exited in the reverse order they were entered")
        _state.tapes.pop()

    def __len__(self) -> int:
        return len(self._nodes)

    def record(self, output: ExTensor, inputs: tuple[ExTensor, ...], backward: Backward) -> None:
        """Append one operation to the tape (called by `extensor.autograd.function.record`)."""
        self._nodes.append(_Node(output, inputs, backward))

    def backward(self, loss: ExTensor, grad: Any = None) -> dict[ExTensor, Array]:
        """Back-propagate from `loss` through the recorded operations.

        Args:
            loss: a tensor produced by an operation recorded on this tape.
            grad: the seed gradient dLoss/dloss. Optional for a one-element `loss` (it is 1);
                required, with `loss`'s shape, otherwise.

        Returns:
            A dict mapping every leaf tensor that requires gradients and that `loss` depends on
            to its gradient from this call (a NumPy array of the leaf's shape and dtype). The
            same gradients are also *accumulated* in place into each leaf's `.grad`.

        Raises:
            RuntimeError: the tape already ran backward, or `loss` was not recorded on it.
            ValueError: a missing or mis-shaped seed gradient.
        """
        if self._consumed:
            raise RuntimeError("backward was already called on this tape; its graph has been released")
        if not isinstance(loss, ExTensor):
            raise TypeError(f"backward needs an ExTensor, got {type(loss).__name__}")
        if not any(node.output is loss for node in reversed(self._nodes)):
            raise RuntimeError(
                "the tensor passed to backward was not produced by an operation recorded on this tape "
                "(was it computed inside `with tape:` from tensors that require gradients?)"
            )
        seed = _seed_gradient(loss, grad)
        grads: dict[int, Array] = {id(loss): seed}
        leaves: dict[int, ExTensor] = {}
        for node in reversed(self._nodes):
            upstream = grads.pop(id(node.output), None)
            if upstream is None:
                continue
            for tensor, local in zip(node.inputs, node.backward(upstream), strict=True):
                if local is None or not tensor.requires_grad:
                    continue
                key = id(tensor)
                if key in grads:
                    grads[key] = grads[key] + local
                else:
                    grads[key] = local
                if tensor.is_leaf:
                    leaves[key] = tensor
        self._nodes = []
        self._consumed = True
        result: dict[ExTensor, Array] = {}
        returned: set[int] = set()
        for key, leaf in leaves.items():
            gradient = np.asarray(grads[key], dtype=leaf.dtype)
            if gradient.shape != leaf.shape:
                gradient = np.broadcast_to(gradient, leaf.shape)
            # An op may hand one array (or views of it) to several inputs (add, reshape) or a
            # read-only broadcast view (sum): copy those, so each returned gradient owns its memory.
            root = _memory_owner(gradient)
            if not gradient.flags.writeable or id(root) in returned:
                gradient = gradient.copy()
                root = gradient
            returned.add(id(root))
            leaf.accumulate_grad(gradient)
            result[leaf] = gradient
        return result


def _memory_owner(array: Array) -> Any:
    """The object that owns the memory `array` views (the array itself when it owns it)."""
    owner: Any = array
    while isinstance(owner, np.ndarray) and owner.base is not None:
        owner = owner.base
    return owner


def _seed_gradient(loss: ExTensor, grad: Any) -> Array:
    if grad is None:
        if loss.size != 1:
            raise ValueError(
                f"backward of a non-scalar tensor of shape {loss.shape} needs an explicit seed gradient "
                "`grad` of the same shape"
            )
        return np.ones(loss.shape, dtype=loss.dtype)
    seed = grad.data if isinstance(grad, ExTensor) else np.asarray(grad, dtype=loss.dtype)
    if seed.shape != loss.shape:
        raise ValueError(f"the seed gradient has shape {seed.shape}, but the loss has shape {loss.shape}")
    # a copy: the gradients backward returns may be views of the seed, and must not alias the caller's array
    return seed.astype(loss.dtype, copy=True)


def active_tape() -> Tape | None:
    """The innermost active tape when gradients are enabled, else None."""
    if not _state.grad_enabled or not _state.tapes:
        return None
    return _state.tapes[-1]


def active_tapes() -> list[Tape]:
    """Every active tape, outermost first (empty when none is active or gradients are disabled)."""
    return _state.tapes if _state.grad_enabled else []


def is_grad_enabled() -> bool:
    """False inside `no_grad()`."""
    return _state.grad_enabled


@contextmanager
def no_grad() -> Iterator[None]:
    """Within this block no operation is recorded, even inside an active tape."""
    previous = _state.grad_enabled
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = previous
