"""`Parameter`: a tensor that a Module registers as one of its learnable weights."""

from __future__ import annotations

from typing import Any

import numpy as np

from extensor.core.tensor import ExTensor


class Parameter(ExTensor):
    """An ExTensor that requires gradients by default and that Modules collect in `parameters()`.

    Assigning a Parameter to a Module attribute registers it (as torch.nn.Parameter). The array is
    shared with `data` when it is an ExTensor or a NumPy array of a floating dtype; assigning
    `p.data = ...` later copies into that storage (see ExTensor), so an optimizer that has bound the
    parameter to its flat buffer keeps it.
    """

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        array = data.data if isinstance(data, ExTensor) else data
        if isinstance(array, np.ndarray) and not np.issubdtype(array.dtype, np.floating) and requires_grad:
            raise TypeError(
                f"a Parameter that requires gradients must be floating-point, got dtype {array.dtype}"
            )
        super().__init__(array, requires_grad=requires_grad)

    def _convert(self, dtype: np.dtype[Any]) -> None:
        """Give this parameter (and its gradient) new storage of `dtype`; used by `Module.to`.

        Refused for a parameter bound to a flat buffer, whose storage an optimizer owns.
        """
        if self.grad_slot is not None:
            raise RuntimeError("cannot change the dtype of a parameter bound to an optimizer's flat buffer")
        grad = self.grad
        self._data = self._data.astype(dtype)
        self._grad = None if grad is None else grad.astype(dtype)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
