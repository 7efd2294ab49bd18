"""2-D max and average pooling, forward beside backward.

The window loops are compiled kernels (`_pool_kernels`) that follow torch's CPU kernels: the same
output size rule (floor or ceil mode), padding skipped rather than materialised, the same winner
for max pooling (first maximum, NaN propagates) and the same divisors for average pooling.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from extensor.autograd.function import as_tensor, constant, record
from extensor.autograd.ops import _pool_kernels, _workspace
from extensor.autograd.ops._layer_checks import pair, require_floating, spatial_input
from extensor.autograd.tape import active_tape
from extensor.core.dispatch import register
from extensor.core.tensor import Array, ExTensor

kernels: Any = _pool_kernels  # numba dispatchers; their call signatures are not visible to mypy


def _output_size(size: int, kernel: int, pad: int, stride: int, dilation: int, ceil_mode: bool) -> int:
    """torch's pooling_output_shape: the number of windows along one axis."""
    span = dilation * (kernel - 1) + 1
    out = (size + 2 * pad - span + (stride - 1 if ceil_mode else 0)) // stride + 1
    # in ceil mode the last window must start inside the input or its left padding
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


class _Geometry:
    """Validated pooling arguments, the input as a stack of planes, and the output size."""

    def __init__(
        self,
        op: str,
        x: ExTensor,
        kernel_size: Any,
        stride: Any,
        padding: Any,
        dilation: Any,
        ceil_mode: bool,
    ) -> None:
        spatial_input(x, op)
        require_floating("input", x, op)
        self.kernel = pair("kernel_size", kernel_size, op, 1)
        self.stride = self.kernel if stride is None or stride == [] else pair("stride", stride, op, 1)
        self.pad = pair("padding", padding, op, 0)
        self.dilation = pair("dilation", dilation, op, 1)
        for axis in (0, 1):
            if self.pad[axis] * 2 > self.kernel[axis]:
                raise ValueError(
                    f"{op}: padding should be at most half of the kernel size, got padding={self.pad} "
                    f"and kernel_size={self.kernel}"
                )
        self.input_shape = x.shape
        h, w = x.shape[-2:]
        self.out = (
            _output_size(h, self.kernel[0], self.pad[0], self.stride[0], self.dilation[0], ceil_mode),
            _output_size(w, self.kernel[1], self.pad[1], self.stride[1], self.dilation[1], ceil_mode),
        )
        if self.out[0] < 1 or self.out[1] < 1:
            raise ValueError(
                f"{op}: input of shape {x.shape} is too small for kernel_size={self.kernel}, "
                f"padding={self.pad}, dilation={self.dilation} (the output size would be {self.out})"
            )
        self.output_shape = (*x.shape[:-2], *self.out)
        self.planes = np.ascontiguousarray(x.data).reshape(-1, h, w)

    def grad_planes(self, g: Array) -> Array:
        """The upstream gradient as (planes, Ho, Wo), contiguous for the kernels."""
        return np.ascontiguousarray(g).reshape(-1, *self.out)

    @property
    def arguments(self) -> tuple[int, ...]:
        """kh, kw, sh, sw, ph, pw: the window geometry the kernels take."""
        return (*self.kernel, *self.stride, *self.pad)

    @property
    def windows_inside(self) -> bool:
        """True when no window touches padding or hangs past the input (the common case)."""
        h, w = self.planes.shape[1:]
        (kh, kw), (sh, sw), (dh, dw), (ho, wo) = self.kernel, self.stride, self.dilation, self.out
        return self.pad == (0, 0) and (ho - 1) * sh + dh * (kh - 1) < h and (wo - 1) * sw + dw * (kw - 1) < w

    def taps(self) -> list[tuple[int, Array]]:
        """(flat offset p·dh·W + q·dw, strided view of tap (p, q) for every window), row-major taps."""
        w = self.planes.shape[2]
        (kh, kw), (sh, sw), (dh, dw), (ho, wo) = self.kernel, self.stride, self.dilation, self.out
        return [
            (
                p * dh * w + q * dw,
                self.planes[
                    :, p * dh : p * dh + sh * (ho - 1) + 1 : sh, q * dw : q * dw + sw * (wo - 1) + 1 : sw
                ],
            )
            for p in range(kh)
            for q in range(kw)
        ]


def _max_pool_values(geo: _Geometry, out: Array) -> None:
    """The maxima alone, when every window lies inside the input: a chain of elementwise maxima over
    the kh·kw tap views, vectorised and free of data-dependent branches (NaN propagates, as in
    torch). Finding each window's winner is what costs; this is for calls that need no gradient."""
    taps = geo.taps()
    np.copyto(out, taps[0][1])
    for _, view in taps[1:]:
        np.maximum(out, view, out=out)


def _is_2x2_inside(geo: _Geometry) -> bool:
    """True for 2x2 windows at stride 2, undilated, all inside the input: `max_pool_2x2_forward`'s case."""
    return geo.kernel == (2, 2) and geo.stride == (2, 2) and geo.dilation == (1, 1) and geo.windows_inside


@register("max_pool2d")
def max_pool2d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """Maximum over each (dilated) kh×kw window, as torch.nn.functional.max_pool2d.

    out[n, c, i, j] = max over p < kh, q < kw of x[n, c, i·sh − ph + p·dh, j·sw − pw + q·dw],
    padding excluded. The gradient of a window goes to its first maximal element in row-major
    order (to its last NaN when it holds NaNs, whose value propagates), as torch's CPU kernel.
    `stride` defaults to `kernel_size`; padding may be at most half the kernel. With
    `return_indices`, returns (output, indices): the int64 flat index h·W + w of each window's
    winner within its (H, W) plane, as torch.
    """
    x = as_tensor(input)
    geo = _Geometry("max_pool2d", x, kernel_size, stride, padding, dilation, bool(ceil_mode))
    planes = geo.planes
    out = _workspace.take((planes.shape[0], *geo.out), planes.dtype)
    recording = x.requires_grad and active_tape() is not None  # exactly when `record` records
    if not recording and not return_indices and geo.windows_inside:
        _max_pool_values(geo, out)  # no backward can follow: the winners are not needed
        return constant(out.reshape(geo.output_shape))
    index = _workspace.take(out.shape, np.int64)
    if not (_is_2x2_inside(geo) and kernels.max_pool_2x2_forward(planes, out, index)):
        kernels.max_pool_forward(planes, out, index, *geo.arguments, *geo.dilation)

    def backward(g: Array) -> tuple[Array]:
        grad_input = _workspace.take_zeros((planes.shape[0], planes.shape[1] * planes.shape[2]), planes.dtype)
        kernels.max_pool_backward(geo.grad_planes(g).astype(planes.dtype, copy=False), index, grad_input)
        return (grad_input.reshape(geo.input_shape),)

    result = record(out.reshape(geo.output_shape), (x,), backward)
    if return_indices:
        return result, constant(index.reshape(geo.output_shape).copy())
    return result


@register("avg_pool2d")
def avg_pool2d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> ExTensor:
    """Mean over each kh×kw window, as torch.nn.functional.avg_pool2d.

    The divisor of a window is `divisor_override` when given; else, with `count_include_pad`, its
    size clipped to the padded input (zero padding counts), otherwise the number of real input
    elements it covers. `stride` defaults to `kernel_size`.
    """
    op = "avg_pool2d"
    x = as_tensor(input)
    geo = _Geometry(op, x, kernel_size, stride, padding, 1, bool(ceil_mode))
    if divisor_override is not None and (
        isinstance(divisor_override, bool)
        or not isinstance(divisor_override, (int, np.integer))
        or divisor_override < 1
    ):
        raise ValueError(f"{op}: divisor_override must be a positive int, got {divisor_override!r}")
    override = 0 if divisor_override is None else int(divisor_override)
    include = bool(count_include_pad)
    planes = geo.planes
    out = np.zeros((planes.shape[0], *geo.out), dtype=planes.dtype)
    kernels.avg_pool_forward(planes, out, *geo.arguments, include, override)

    def backward(g: Array) -> tuple[Array]:
        grad_input = np.zeros(planes.shape, dtype=planes.dtype)
        grad = geo.grad_planes(g).astype(planes.dtype, copy=False)
        kernels.avg_pool_backward(grad, grad_input, *geo.arguments, include, override)
        return (grad_input.reshape(geo.input_shape),)

    return record(out.reshape(geo.output_shape), (x,), backward)
