"""2-D max and average pooling, forward beside backward.

Both walk the kh·kw kernel taps: tap (p, q) of every window at once is one strided slice of the
padded input, so a pass costs kh·kw vectorised operations on arrays of the output's size, whatever
the batch. The backward passes add each tap's share back through the same slices (no scatter-add).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from extensor.autograd.function import as_tensor, record
from extensor.autograd.ops._layer_checks import pair, require_floating, spatial_input
from extensor.core.dispatch import register
from extensor.core.tensor import Array, ExTensor


def _output_size(size: int, kernel: int, pad: int, stride: int, dilation: int, ceil_mode: bool) -> int:
    """torch's pooling_output_shape: the number of windows along one axis."""
    span = dilation * (kernel - 1) + 1
    numerator = size + 2 * pad - span + (stride - 1 if ceil_mode else 0)
    out = numerator // stride + 1
    # in ceil mode the last window must start inside the input or its left padding
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


class _Geometry:
    """Validated pooling arguments and the sizes that follow from them."""

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
        self.unbatched = spatial_input(x, op)
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
        data = x.data[None] if self.unbatched else x.data
        self.data = data
        _, _, h, w = data.shape
        self.out = (
            _output_size(h, self.kernel[0], self.pad[0], self.stride[0], self.dilation[0], ceil_mode),
            _output_size(w, self.kernel[1], self.pad[1], self.stride[1], self.dilation[1], ceil_mode),
        )
        if self.out[0] < 1 or self.out[1] < 1:
            raise ValueError(
                f"{op}: input of shape {x.shape} is too small for kernel_size={self.kernel}, "
                f"padding={self.pad}, "
                f"dilation={self.dilation} (output size would be {self.out})"
            )
        # the padded extent must hold the last window even when it hangs past the input (ceil mode)
        self.padded = (
            max(
                h + 2 * self.pad[0],
                (self.out[0] - 1) * self.stride[0] + self.dilation[0] * (self.kernel[0] - 1) + 1,
            ),
            max(
                w + 2 * self.pad[1],
                (self.out[1] - 1) * self.stride[1] + self.dilation[1] * (self.kernel[1] - 1) + 1,
            ),
        )
        self.input_hw = (h, w)

    @property
    def needs_padding(self) -> bool:
        return self.padded != self.input_hw

    def padded_input(self, fill: float) -> Array:
        """The input inside a frame of `fill` (the input itself when there is no frame)."""
        if not self.needs_padding:
            return self.data
        n, c, h, w = self.data.shape
        xp = np.full((n, c, *self.padded), fill, dtype=self.data.dtype)
        xp[:, :, self.pad[0] : self.pad[0] + h, self.pad[1] : self.pad[1] + w] = self.data
        return xp

    def taps(self) -> list[tuple[int, slice, slice]]:
        """(tap number, row slice, column slice) of each kernel tap into the padded input."""
        (kh, kw), (sh, sw), (dh, dw), (ho, wo) = self.kernel, self.stride, self.dilation, self.out
        result = []
        for p in range(kh):
            for q in range(kw):
                rows = slice(p * dh, p * dh + sh * (ho - 1) + 1, sh)
                cols = slice(q * dw, q * dw + sw * (wo - 1) + 1, sw)
                result.append((p * kw + q, rows, cols))
        return result

    def inside(self, axis: int, tap_offset: int) -> Array:
        """For one tap offset along `axis`, which windows read a real input element (not the frame)."""
        starts = np.arange(self.out[axis]) * self.stride[axis] + tap_offset
        return (starts >= self.pad[axis]) & (starts < self.pad[axis] + self.input_hw[axis])

    def unpad(self, gradient: Array) -> Array:
        """Crop a gradient of the padded input back to the input's shape (and batching)."""
        h, w = self.input_hw
        cropped = gradient[:, :, self.pad[0] : self.pad[0] + h, self.pad[1] : self.pad[1] + w]
        return cropped[0] if self.unbatched else cropped


@register("max_pool2d")
def max_pool2d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> ExTensor:
    """Maximum over each (dilated) kh×kw window, as torch.nn.functional.max_pool2d.

    The gradient of a window goes to its first maximal element in row-major order (to its last NaN
    when it holds NaNs, whose value propagates), exactly as torch's CPU kernel chooses. Padding is
    implicit -inf and never selected. `stride` defaults to `kernel_size`.
    """
    x = as_tensor(input)
    geo = _Geometry("max_pool2d", x, kernel_size, stride, padding, dilation, bool(ceil_mode))
    xp = geo.padded_input(-np.inf)
    kw = geo.kernel[1]
    best: Array | None = None
    index: Array | None = None
    for tap, rows, cols in geo.taps():
        values = xp[:, :, rows, cols]
        if best is None or index is None:
            best = values.copy()
            index = np.zeros(best.shape, dtype=np.int32)
            if geo.needs_padding:
                # windows whose first tap is in the frame have no candidate yet
                index[...] = np.where(geo.inside(0, 0)[:, None] & geo.inside(1, 0)[None, :], 0, -1)
            continue
        better = (values > best) | np.isnan(values)
        if geo.needs_padding:
            p, q = divmod(tap, kw)
            real = geo.inside(0, p * geo.dilation[0])[:, None] & geo.inside(1, q * geo.dilation[1])[None, :]
            better = (better | (index < 0)) & real
        np.copyto(best, values, where=better)
        np.copyto(index, tap, where=better)
    assert best is not None and index is not None

    def backward(g: Array) -> tuple[Array]:
        g4 = g[None] if geo.unbatched else g
        dxp = np.zeros(xp.shape, dtype=xp.dtype)
        zero = xp.dtype.type(0)
        for tap, rows, cols in geo.taps():
            dxp[:, :, rows, cols] += np.where(index == tap, g4, zero)
        return (geo.unpad(dxp),)

    return record(best[0] if geo.unbatched else best, (x,), backward)


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

    The divisor of a window is `divisor_override` when given; else its size clipped to the padded
    input when `count_include_pad` (zero padding counts), or the number of real input elements it
    covers otherwise. `stride` defaults to `kernel_size`.
    """
    x = as_tensor(input)
    op = "avg_pool2d"
    geo = _Geometry(op, x, kernel_size, stride, padding, 1, bool(ceil_mode))
    if divisor_override is not None and (
        isinstance(divisor_override, bool)
        or not isinstance(divisor_override, (int, np.integer))
        or divisor_override < 1
    ):
        raise ValueError(f"{op}: divisor_override must be a positive int, got {divisor_override!r}")
    xp = geo.padded_input(0.0)
    divisor = _divisor(geo, bool(count_include_pad), divisor_override).astype(xp.dtype)
    total: Array | None = None
    for _, rows, cols in geo.taps():
        if total is None:
            total = xp[:, :, rows, cols].copy()
        else:
            total += xp[:, :, rows, cols]
    assert total is not None
    out = total / divisor

    def backward(g: Array) -> tuple[Array]:
        share = (g[None] if geo.unbatched else g) / divisor
        dxp = np.zeros(xp.shape, dtype=xp.dtype)
        for _, rows, cols in geo.taps():
            dxp[:, :, rows, cols] += share
        return (geo.unpad(dxp),)

    return record(out[0] if geo.unbatched else out, (x,), backward)


def _divisor(geo: _Geometry, count_include_pad: bool, divisor_override: int | None) -> Array:
    """The (Ho, Wo) array of window divisors, following torch's avg_pool2d kernel."""
    if divisor_override is not None:
        return np.full(geo.out, float(divisor_override))
    sizes = []
    for axis in (0, 1):
        start = np.arange(geo.out[axis]) * geo.stride[axis] - geo.pad[axis]
        end = np.minimum(start + geo.kernel[axis], geo.input_hw[axis] + geo.pad[axis])
        if count_include_pad:
            sizes.append(end - start)
        else:
            sizes.append(np.minimum(end, geo.input_hw[axis]) - np.maximum(start, 0))
    return (sizes[0][:, None] * sizes[1][None, :]).astype(np.float64)
