"""Pooling layers: `MaxPool2d` and `AvgPool2d`."""

from __future__ import annotations

from typing import Any

from extensor.autograd.ops._layer_checks import pair
from extensor.autograd.ops.pooling import avg_pool2d, max_pool2d
from extensor.core.tensor import ExTensor
from extensor.nn.module import Module

_Size = int | tuple[int, int]


def _check_sizes(layer: str, kernel_size: Any, stride: Any, padding: Any) -> None:
    """Reject bad sizes when the layer is built rather than at its first call."""
    kernel = pair("kernel_size", kernel_size, layer, 1)
    if stride is not None:
        pair("stride", stride, layer, 1)
    pad = pair("padding", padding, layer, 0)
    if pad[0] * 2 > kernel[0] or pad[1] * 2 > kernel[1]:
        raise ValueError(
            f"{layer}: padding should be at most half of the kernel size, got padding={padding} "
            f"and kernel_size={kernel_size}"
        )


class MaxPool2d(Module):
    """The maximum of each window, as torch.nn.MaxPool2d (stride defaults to kernel_size).

    The gradient of each window goes to its first maximal element, as in torch. With
    `return_indices`, the call also returns each winner's flat index h·W + w within its plane.
    """

    def __init__(
        self,
        kernel_size: _Size,
        stride: _Size | None = None,
        padding: _Size = 0,
        dilation: _Size = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        _check_sizes("MaxPool2d", kernel_size, stride, padding)
        pair("dilation", dilation, "MaxPool2d", 1)
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input: Any) -> ExTensor | tuple[ExTensor, ExTensor]:
        """Max-pool an (N, C, H, W) or (C, H, W) input (and the winners' indices with return_indices)."""
        return max_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.return_indices,
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool2d(Module):
    """The mean of each window, as torch.nn.AvgPool2d (stride defaults to kernel_size)."""

    def __init__(
        self,
        kernel_size: _Size,
        stride: _Size | None = None,
        padding: _Size = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        _check_sizes("AvgPool2d", kernel_size, stride, padding)
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input: Any) -> ExTensor:
        """Average-pool an (N, C, H, W) or (C, H, W) input."""
        return avg_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
