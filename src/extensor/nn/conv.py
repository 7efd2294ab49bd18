"""`Conv2d`: the 2-D convolution layer."""

from __future__ import annotations

from typing import Any

import numpy as np

from extensor.autograd.ops._layer_checks import pair
from extensor.autograd.ops.conv import conv2d
from extensor.core.tensor import ExTensor
from extensor.nn import init
from extensor.nn.linear import check_device, floating_dtype, positive_int
from extensor.nn.module import Module
from extensor.nn.parameter import Parameter


class Conv2d(Module):
    """2-D cross-correlation over (N, C, H, W) inputs, as torch.nn.Conv2d.

    The weight has shape (out_channels, in_channels // groups, kh, kw). Initialisation as torch:
    kaiming_uniform_ with a = √5 for the weight, U(−1/√fan_in, 1/√fan_in) for the bias, with
    fan_in = (in_channels // groups)·kh·kw, drawn from `generator` (the default one when None).

    Args:
        in_channels, out_channels: channel counts, both divisible by `groups`.
        kernel_size, stride, dilation: int or (h, w) pair.
        padding: int or pair of zero padding, 'valid' or 'same' (stride 1 only).
        groups: split channels into independent groups.
        bias: learn a per-channel bias.
        padding_mode: only 'zeros' is implemented.
        device: None or 'cpu' (accepted for torch compatibility).
        dtype: parameter dtype (float32 by default).
        generator: a numpy.random.Generator for the initial values.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        generator: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        name = "Conv2d"
        check_device(device, name)
        self.in_channels = positive_int("in_channels", in_channels, name)
        self.out_channels = positive_int("out_channels", out_channels, name)
        self.groups = positive_int("groups", groups, name)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"{name}: in_channels={in_channels} and out_channels={out_channels} must be divisible by "
                f"groups={groups}"
            )
        self.kernel_size = pair("kernel_size", kernel_size, name, 1)
        self.stride = pair("stride", stride, name, 1)
        self.dilation = pair("dilation", dilation, name, 1)
        self.padding: tuple[int, int] | str
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(
                    f"{name}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}"
                )
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"{name}: padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = pair("padding", padding, name, 0)
        if padding_mode != "zeros":
            raise ValueError(f"{name}: only padding_mode='zeros' is implemented, got {padding_mode!r}")
        self.padding_mode = padding_mode
        resolved = floating_dtype(dtype, name)
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(np.empty(shape, dtype=resolved))
        self.bias = Parameter(np.empty(self.out_channels, dtype=resolved)) if bias else None
        self.reset_parameters(generator)

    def reset_parameters(self, generator: np.random.Generator | None = None) -> None:
        """Draw the initial weight and bias again (torch's default formulas)."""
        init.default_affine_(self.weight, self.bias, generator)

    def forward(self, input: Any) -> ExTensor:
        """The convolution of an (N, C, H, W) or (C, H, W) input."""
        return conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        )
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text
