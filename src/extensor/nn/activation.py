"""Activation layers: ReLU, Tanh, Sigmoid, GELU, Softmax, LogSoftmax, Identity.

Each wraps the recorded operation of the same name (`extensor.autograd.ops.activation`).
"""

from __future__ import annotations

from typing import Any

from extensor.autograd.function import as_tensor
from extensor.core.tensor import ExTensor
from extensor.nn.module import Module


class ReLU(Module):
    """max(x, 0) elementwise."""

    def forward(self, input: Any) -> ExTensor:
        """Apply the rectifier."""
        return as_tensor(input).relu()


class Tanh(Module):
    """tanh(x) elementwise."""

    def forward(self, input: Any) -> ExTensor:
        """Apply tanh."""
        return as_tensor(input).tanh()


class Sigmoid(Module):
    """σ(x) = 1 / (1 + e^−x) elementwise."""

    def forward(self, input: Any) -> ExTensor:
        """Apply the logistic sigmoid."""
        return as_tensor(input).sigmoid()


class GELU(Module):
    """x·Φ(x) (Hendrycks & Gimpel 2016), exactly ('none') or with the 'tanh' approximation."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input: Any) -> ExTensor:
        """Apply GELU."""
        return as_tensor(input).gelu(self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


def _dim(layer: str, dim: Any) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"{layer}: dim must be an int, got {dim!r}")
    return dim


class Softmax(Module):
    """exp(xᵢ) / Σⱼ exp(xⱼ) along `dim`."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = _dim("Softmax", dim)

    def forward(self, input: Any) -> ExTensor:
        """Apply softmax along `dim`."""
        return as_tensor(input).softmax(self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log softmax along `dim`, computed stably."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = _dim("LogSoftmax", dim)

    def forward(self, input: Any) -> ExTensor:
        """Apply log-softmax along `dim`."""
        return as_tensor(input).log_softmax(self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Identity(Module):
    """Returns its input unchanged (a placeholder layer)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Any) -> Any:
        """The input itself."""
        return input
