"""`ExTensor`: an n-dimensional NumPy array that can take part in automatic differentiation.

An ExTensor owns (or views) one NumPy array, its `data`. A tensor with `requires_grad=True`
is a leaf that `Tape.backward` accumulates a gradient into, in `grad`.

Storage may be *bound* to a flat buffer (see `extensor.training.flat`): then `data` and `grad`
are views into one contiguous array shared with the other parameters of an optimizer group.
Assignment (`p.data = x`, `p.grad = g`) therefore always copies into the existing storage,
after checking shape and dtype, and never replaces it: a parameter cannot be silently
detached from its optimizer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from extensor.core import dispatch
from extensor.core.dtypes import is_floating, to_array

Array = np.ndarray[Any, Any]
Axis = int | Sequence[int] | None


class GradOwner(Protocol):
    """What owns a bound gradient: it may hold an operation on the gradients not yet applied."""

    def settle(self) -> None:
        """Apply any deferred operation (a pending clip scale) to the stored gradients."""
        ...


@dataclass(eq=False)
class GradSlot:
    """Where a bound tensor's gradient lives: a view of a flat gradient buffer plus a presence flag.

    `present[index]` says whether the gradient exists (PyTorch's `grad is not None`); a flat
    buffer keeps one such flag array for all its tensors so that an optimizer can test every
    flag at once. The `owner` (a `FlatBuffer`, or None) may defer a scaling of its gradients
    (fused gradient clipping); every read or write of the gradient through the tensor calls
    ``owner.settle()`` first, so the user always sees the gradient the deferred scale implies.
    """

    view: Array
    present: Array
    index: int
    owner: GradOwner | None


def _checked_copy(target: Array, value: Any, what: str) -> None:
    """Copy `value` into `target` in place, requiring the same shape and dtype."""
    array = value.data if isinstance(value, ExTensor) else np.asarray(value)
    if array.shape != target.shape:
        raise ValueError(f"{what} must have shape {target.shape}, got an array of shape {array.shape}")
    if array.dtype != target.dtype:
        raise TypeError(f"{what} must have dtype {target.dtype}, got {array.dtype}")
    if array is not target:
        np.copyto(target, array)


class ExTensor:
    """An n-dimensional array with optional gradient tracking.

    Args:
        data: anything `numpy.asarray` accepts, or another ExTensor (its array is shared).
            NumPy arrays keep their dtype; Python floats become float32, ints int64.
        requires_grad: make this a leaf whose gradient `Tape.backward` accumulates in `grad`.
            Only floating-point tensors can require gradients.
        dtype: optional dtype to convert to.
    """

    __slots__ = ("__weakref__", "_data", "_grad", "_is_leaf", "_slot", "requires_grad")

    __array_priority__ = 1000  # so that `ndarray + ExTensor` defers to ExTensor.__radd__

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        array = data.data if isinstance(data, ExTensor) else to_array(data, dtype)
        if dtype is not None and array.dtype != np.dtype(dtype):
            array = array.astype(dtype)
        if requires_grad and not is_floating(array.dtype):
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {array.dtype}")
        self._data: Array = array
        self._grad: Array | None = None
        self._slot: GradSlot | None = None
        self._is_leaf = True
        self.requires_grad = bool(requires_grad)

    @classmethod
    def _wrap(cls, array: Array) -> ExTensor:
        """A tensor over `array` as is (no conversion, no checks): the fast path for operation results."""
        tensor = cls.__new__(cls)
        tensor._data = array
        tensor._grad = None
        tensor._slot = None
        tensor._is_leaf = True
        tensor.requires_grad = False
        return tensor

    # ------------------------------------------------------------------ storage
    @property
    def data(self) -> Array:
        """The underlying NumPy array. Assigning copies into it (same shape and dtype required)."""
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        _checked_copy(self._data, value, "the assigned data")

    @property
    def grad(self) -> Array | None:
        """The accumulated gradient as a NumPy array, or None when there is none.

        Assigning an array (or ExTensor) of the tensor's shape and dtype copies it in;
        assigning None removes the gradient.
        """
        slot = self._slot
        if slot is None:
            return self._grad
        if slot.owner is not None:
            slot.owner.settle()
        return slot.view if slot.present[slot.index] else None

    @grad.setter
    def grad(self, value: Any) -> None:
        slot = self._slot
        if slot is not None and slot.owner is not None:
            slot.owner.settle()  # the other tensors of the buffer keep the gradient they showed
        if value is None:
            if slot is None:
                self._grad = None
            else:
                slot.present[slot.index] = False
            return
        if slot is None:
            array = value.data if isinstance(value, ExTensor) else np.asarray(value)
            if array.shape != self._data.shape:
                raise ValueError(
                    f"the assigned gradient must have shape {self._data.shape}, got shape {array.shape}"
                )
            if array.dtype != self._data.dtype:
                raise TypeError(
                    f"the assigned gradient must have dtype {self._data.dtype}, got {array.dtype}"
                )
            self._grad = array.copy()
        else:
            _checked_copy(slot.view, value, "the assigned gradient")
            slot.present[slot.index] = True

    def accumulate_grad(self, gradient: Array) -> None:
        """Add `gradient` into `grad` in place (or set it when there is none yet)."""
        if gradient.shape != self._data.shape:
            raise ValueError(f"gradient of shape {gradient.shape} does not match tensor shape {self.shape}")
        slot = self._slot
        if slot is not None and slot.owner is not None:
            slot.owner.settle()
        if slot is None:
            if self._grad is None:
                self._grad = gradient.astype(self._data.dtype, copy=True)
            else:
                self._grad += gradient
        elif slot.present[slot.index]:
            slot.view += gradient
        else:
            np.copyto(slot.view, gradient, casting="same_kind")
            slot.present[slot.index] = True

    def bind_storage(self, data_view: Array, slot: GradSlot) -> None:
        """Move this tensor's data and gradient into views of a flat buffer.

        The current values are copied into the views first, so nothing the tensor held is lost.
        Used by `extensor.training.flat`; not needed in user code.
        """
        if data_view.shape != self._data.shape or data_view.dtype != self._data.dtype:
            raise ValueError(
                f"cannot bind a tensor of shape {self.shape} and dtype {self.dtype} to a view of shape "
                f"{data_view.shape} and dtype {data_view.dtype}"
            )
        if slot.view.shape != self._data.shape or slot.view.dtype != self._data.dtype:
            raise ValueError("the gradient view must match the tensor's shape and dtype")
        current_grad = self.grad
        np.copyto(data_view, self._data)
        if current_grad is None:
            slot.present[slot.index] = False
        else:
            np.copyto(slot.view, current_grad)
            slot.present[slot.index] = True
        self._data = data_view
        self._grad = None
        self._slot = slot

    @property
    def grad_slot(self) -> GradSlot | None:
        """The flat-buffer slot this tensor's gradient is bound to, if any."""
        return self._slot

    @property
    def is_leaf(self) -> bool:
        """False for tensors produced by a recorded operation."""
        return self._is_leaf

    # ------------------------------------------------------------------ metadata
    @property
    def shape(self) -> tuple[int, ...]:
        """The tensor's shape."""
        return tuple(self._data.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The NumPy dtype of the elements."""
        return self._data.dtype

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return int(self._data.ndim)

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(self._data.size)

    def numel(self) -> int:
        """Number of elements (PyTorch's name)."""
        return int(self._data.size)

    def numpy(self) -> Array:
        """The underlying NumPy array (shared, not copied)."""
        return self._data

    def item(self) -> Any:
        """The value of a one-element tensor as a Python scalar."""
        if self._data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self._data.item()

    def tolist(self) -> Any:
        """The elements as (nested) Python lists."""
        return self._data.tolist()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Array:
        if dtype is not None and np.dtype(dtype) != self._data.dtype:
            return self._data.astype(dtype)
        return self._data.copy() if copy else self._data

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        return self._data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._data.__dlpack_device__()

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return int(self._data.shape[0])

    def __iter__(self) -> Iterator[ExTensor]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        body = np.array2string(self._data, separator=", ", prefix="ExTensor(")
        extras = ""
        if self._data.dtype != np.float32 and self._data.dtype != np.int64:
            extras += f", dtype={self._data.dtype}"
        if self.requires_grad:
            extras += ", requires_grad=True"
        return f"ExTensor({body}{extras})"

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self._data.size} elements is ambiguous; "
                "use any() or all()"
            )
        return bool(self._data.item())

    __hash__ = object.__hash__  # identity hashing: tensors are dict keys (the gradients map)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    # ------------------------------------------------------------------ autograd
    def detach(self) -> ExTensor:
        """A new tensor sharing this one's data, outside any graph and not requiring gradients."""
        return ExTensor(self._data)

    def requires_grad_(self, requires_grad: bool = True) -> ExTensor:
        """Set `requires_grad` in place and return self."""
        if requires_grad and not is_floating(self._data.dtype):
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {self.dtype}")
        self.requires_grad = requires_grad
        return self

    def _mark_non_leaf(self) -> None:
        """Record that this tensor was produced by a recorded operation (called by the tape)."""
        self._is_leaf = False

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other: Any) -> ExTensor:
        return dispatch.call("add", self, other)

    def __radd__(self, other: Any) -> ExTensor:
        return dispatch.call("add", other, self)

    def __sub__(self, other: Any) -> ExTensor:
        return dispatch.call("sub", self, other)

    def __rsub__(self, other: Any) -> ExTensor:
        return dispatch.call("sub", other, self)

    def __mul__(self, other: Any) -> ExTensor:
        return dispatch.call("mul", self, other)

    def __rmul__(self, other: Any) -> ExTensor:
        return dispatch.call("mul", other, self)

    def __truediv__(self, other: Any) -> ExTensor:
        return dispatch.call("div", self, other)

    def __rtruediv__(self, other: Any) -> ExTensor:
        return dispatch.call("div", other, self)

    def __pow__(self, exponent: Any) -> ExTensor:
        return dispatch.call("pow", self, exponent)

    def __rpow__(self, base: Any) -> ExTensor:
        return dispatch.call("pow", base, self)

    def __neg__(self) -> ExTensor:
        return dispatch.call("neg", self)

    def __pos__(self) -> ExTensor:
        return self

    def __abs__(self) -> ExTensor:
        return dispatch.call("abs", self)

    def __matmul__(self, other: Any) -> ExTensor:
        return dispatch.call("matmul", self, other)

    def __rmatmul__(self, other: Any) -> ExTensor:
        return dispatch.call("matmul", other, self)

    def __getitem__(self, index: Any) -> ExTensor:
        return dispatch.call("getitem", self, index)

    # comparisons produce boolean tensors and carry no gradient
    def __eq__(self, other: object) -> ExTensor:  # type: ignore[override]
        return dispatch.call("eq", self, other)

    def __ne__(self, other: object) -> ExTensor:  # type: ignore[override]
        return dispatch.call("ne", self, other)

    def __lt__(self, other: Any) -> ExTensor:
        return dispatch.call("lt", self, other)

    def __le__(self, other: Any) -> ExTensor:
        return dispatch.call("le", self, other)

    def __gt__(self, other: Any) -> ExTensor:
        return dispatch.call("gt", self, other)

    def __ge__(self, other: Any) -> ExTensor:
        return dispatch.call("ge", self, other)

    # ------------------------------------------------------------------ methods
    def matmul(self, other: Any) -> ExTensor:
        """Matrix product with NumPy's broadcasting rules."""
        return dispatch.call("matmul", self, other)

    def sum(self, axis: Axis = None, keepdims: bool = False) -> ExTensor:
        """Sum over `axis` (an int, a sequence, or None / () for all axes); ints and bools sum to int64."""
        return dispatch.call("sum", self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Axis = None, keepdims: bool = False) -> ExTensor:
        """Mean over `axis` (an int, a sequence, or None / () for all axes) of a floating tensor."""
        return dispatch.call("mean", self, axis=axis, keepdims=keepdims)

    def max(self, axis: Axis = None, keepdims: bool = False) -> ExTensor:
        """Maximum over `axis`, with PyTorch's gradient: for an int axis (`torch.max(x, dim)`) it goes to
        the first maximum; for None or a sequence of axes (`torch.max(x)`, `torch.amax`) it is split
        evenly among tied maxima."""
        return dispatch.call("max", self, axis=axis, keepdims=keepdims)

    def min(self, axis: Axis = None, keepdims: bool = False) -> ExTensor:
        """Minimum over `axis`, with PyTorch's gradient: for an int axis (`torch.min(x, dim)`) it goes to
        the first minimum; for None or a sequence of axes (`torch.min(x)`, `torch.amin`) it is split
        evenly among tied minima."""
        return dispatch.call("min", self, axis=axis, keepdims=keepdims)

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> ExTensor:
        """Indices of the maxima (int64, no gradient)."""
        return dispatch.call("argmax", self, axis=axis, keepdims=keepdims)

    def argmin(self, axis: int | None = None, keepdims: bool = False) -> ExTensor:
        """Indices of the minima (int64, no gradient)."""
        return dispatch.call("argmin", self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape: Any) -> ExTensor:
        """The same elements in a new shape (`reshape(2, 3)` or `reshape((2, 3))`)."""
        return dispatch.call("reshape", self, *shape)

    def view(self, *shape: Any) -> ExTensor:
        """Alias of `reshape` (PyTorch's name)."""
        return dispatch.call("reshape", self, *shape)

    def transpose(self, dim0: int = -2, dim1: int = -1) -> ExTensor:
        """Swap two dimensions (the last two by default)."""
        return dispatch.call("transpose", self, dim0, dim1)

    @property
    def T(self) -> ExTensor:
        """All dimensions reversed."""
        return dispatch.call("permute", self, *reversed(range(self.ndim)))

    def permute(self, *dims: Any) -> ExTensor:
        """Reorder the dimensions."""
        return dispatch.call("permute", self, *dims)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> ExTensor:
        """Merge dimensions `start_dim`..`end_dim` into one."""
        return dispatch.call("flatten", self, start_dim, end_dim)

    def squeeze(self, axis: Axis = None) -> ExTensor:
        """Drop dimensions of size one (only those among `axis` when given; others are kept)."""
        return dispatch.call("squeeze", self, axis)

    def unsqueeze(self, axis: int) -> ExTensor:
        """Insert a dimension of size one at `axis`."""
        return dispatch.call("unsqueeze", self, axis)

    def exp(self) -> ExTensor:
        """Elementwise e**x."""
        return dispatch.call("exp", self)

    def log(self) -> ExTensor:
        """Elementwise natural logarithm."""
        return dispatch.call("log", self)

    def sqrt(self) -> ExTensor:
        """Elementwise square root."""
        return dispatch.call("sqrt", self)

    def abs(self) -> ExTensor:
        """Elementwise absolute value."""
        return dispatch.call("abs", self)

    def clip(self, min: Any = None, max: Any = None) -> ExTensor:
        """Elementwise clamp to [min, max]."""
        return dispatch.call("clip", self, min, max)

    clamp = clip

    def relu(self) -> ExTensor:
        """max(x, 0)."""
        return dispatch.call("relu", self)

    def sigmoid(self) -> ExTensor:
        """1 / (1 + e**-x)."""
        return dispatch.call("sigmoid", self)

    def tanh(self) -> ExTensor:
        """Hyperbolic tangent."""
        return dispatch.call("tanh", self)

    def gelu(self, approximate: str = "none") -> ExTensor:
        """Gaussian error linear unit (exact erf form, or "tanh" approximation)."""
        return dispatch.call("gelu", self, approximate)

    def softmax(self, axis: int = -1) -> ExTensor:
        """Softmax along `axis`."""
        return dispatch.call("softmax", self, axis)

    def log_softmax(self, axis: int = -1) -> ExTensor:
        """Log-softmax along `axis` (numerically stable)."""
        return dispatch.call("log_softmax", self, axis)

    def astype(self, dtype: Any) -> ExTensor:
        """A copy converted to `dtype` (differentiable between floating dtypes)."""
        return dispatch.call("astype", self, dtype)
