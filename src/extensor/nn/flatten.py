"""`Flatten`: merge a range of dimensions into one."""

from __future__ import annotations

from typing import Any

from extensor.autograd.function import as_tensor
from extensor.core.tensor import ExTensor
from extensor.nn.module import Module


class Flatten(Module):
    """Merge dimensions start_dim..end_dim (by default all but the batch one), as torch.nn.Flatten."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Flatten: {name} must be an int, got {value!r}")
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Any) -> ExTensor:
        """The input with dimensions start_dim..end_dim merged."""
        return as_tensor(input).flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
