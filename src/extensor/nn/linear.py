"""`Linear`: the fully connected layer y = x Wᵀ + b."""

from __future__ import annotations

from typing import Any

import numpy as np

from extensor.autograd.ops.linear import linear
from extensor.core.tensor import ExTensor
from extensor.nn import init
from extensor.nn.module import Module
from extensor.nn.parameter import Parameter


def positive_int(name: str, value: Any, layer: str) -> int:
    """`value` as an int, which must be positive (a clear error names the layer and argument)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")
    return int(value)


def check_device(device: Any, layer: str) -> None:
    """Accept torch's `device` argument when it names the CPU (or is None): arrays live in host memory."""
    if device is not None and str(device) != "cpu":
        raise ValueError(f"{layer}: only the 'cpu' device exists, got device={device!r}")


def floating_dtype(dtype: Any, layer: str) -> np.dtype[Any]:
    """The parameters' dtype: float32 by default (as torch), float64 or float16 on request."""
    resolved = np.dtype(np.float32 if dtype is None else dtype)
    if not np.issubdtype(resolved, np.floating):
        raise TypeError(f"{layer}: dtype must be a floating-point dtype, got {resolved}")
    return resolved


class Linear(Module):
    """y = x Wᵀ + b over the last dimension of x, as torch.nn.Linear.

    Initialisation as torch: W ~ U(−1/√in, 1/√in) (kaiming_uniform_ with a = √5) and
    b ~ U(−1/√in, 1/√in), drawn from `generator` (the default generator when None).

    Args:
        in_features, out_features: sizes of the input and output features.
        bias: learn an additive bias.
        device: None or 'cpu' (accepted for torch compatibility).
        dtype: parameter dtype (float32 by default).
        generator: a numpy.random.Generator for the initial values.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        generator: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        check_device(device, "Linear")
        self.in_features = positive_int("in_features", in_features, "Linear")
        self.out_features = positive_int("out_features", out_features, "Linear")
        resolved = floating_dtype(dtype, "Linear")
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype=resolved))
        self.bias = Parameter(np.empty(self.out_features, dtype=resolved)) if bias else None
        self.reset_parameters(generator)

    def reset_parameters(self, generator: np.random.Generator | None = None) -> None:
        """Draw the initial weight and bias again (torch's default formulas)."""
        init.default_affine_(self.weight, self.bias, generator)

    def forward(self, input: Any) -> ExTensor:
        """x Wᵀ + b for x of shape (*, in_features)."""
        return linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )
