"""2-D convolution (im2col / strided views and one BLAS matmul), forward beside backward.

Layout. The padded input x (N, C, Hp, Wp) is viewed, without copying, as the 7-D array
(N, G, C/G, kh, kw, Ho, Wo) of every kernel tap at every output position; one copy turns it into
the column matrix `cols` of shape (N, G, K, Ho·Wo) with K = (C/G)·kh·kw. The innermost copied axis
is the output width, which is contiguous in the input for stride 1, so building `cols` runs at
memory speed. Then

    out[n, g] = W[g] (O/G, K) @ cols[n, g] (K, Ho·Wo)

is a batched BLAS product whose result is already in NCHW order.

Backward: dW = Σₙ g[n] colsᵀ[n]; dcols = Wᵀ g; and col2im adds dcols back into the padded input
one kernel tap at a time (kh·kw strided slice additions; no scatter-add).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from extensor.autograd.function import as_tensor, record
from extensor.autograd.ops._layer_checks import pair, require_floating, require_same_dtype, spatial_input
from extensor.core.dispatch import register
from extensor.core.tensor import Array, ExTensor

_OP = "conv2d"


def _padding(
    padding: Any, kernel: tuple[int, int], dilation: tuple[int, int], stride: tuple[int, int]
) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) padding from an int, a pair, 'valid' or 'same' (as torch)."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(
                    f"{_OP}: padding='same' is not supported for strided convolutions (stride={stride})"
                )
            total_h = dilation[0] * (kernel[0] - 1)
            total_w = dilation[1] * (kernel[1] - 1)
            # torch puts the odd extra row/column at the bottom/right
            return total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2
        raise ValueError(f"{_OP}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    ph, pw = pair("padding", padding, _OP, 0)
    return ph, ph, pw, pw


def _window_view(
    xp: Array,
    groups: int,
    kernel: tuple[int, int],
    out_hw: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> Array:
    """The read-only strided view (N, G, C/G, kh, kw, Ho, Wo) of every tap at every output position."""
    n, c, _, _ = xp.shape
    s_n, s_c, s_h, s_w = xp.strides
    return as_strided(
        xp,
        shape=(n, groups, c // groups, kernel[0], kernel[1], out_hw[0], out_hw[1]),
        strides=(
            s_n,
            s_c * (c // groups),
            s_c,
            s_h * dilation[0],
            s_w * dilation[1],
            s_h * stride[0],
            s_w * stride[1],
        ),
        writeable=False,
    )


@register("conv2d")
def conv2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> ExTensor:
    """2-D cross-correlation, as torch.nn.functional.conv2d, in one recorded node.

        out[n, o, i, j] = b[o] + Σ_{c, p, q} W[o, c, p, q] · x_pad[n, g·C/G + c, i·sh + p·dh, j·sw + q·dw]

    Args:
        input: (N, C, H, W) or unbatched (C, H, W).
        weight: (O, C/groups, kh, kw).
        bias: optional (O,).
        stride, dilation: int or (h, w) pair, >= 1.
        padding: int or pair (zeros on both sides), 'valid' (none) or 'same' (stride 1 only).
        groups: C and O must both be divisible by it.

    Returns:
        (N, O, Ho, Wo) with Ho = (H + pad_h − dh·(kh − 1) − 1) // sh + 1 (likewise Wo).
    """
    x, w = as_tensor(input), as_tensor(weight)
    b = None if bias is None else as_tensor(bias)
    unbatched = spatial_input(x, _OP)
    if w.ndim != 4:
        raise ValueError(
            f"{_OP}: weight must be 4-D (out_channels, in_channels/groups, kh, kw), got shape {w.shape}"
        )
    require_floating("input", x, _OP)
    require_same_dtype(_OP, ("weight", w), ("input", x), ("bias", b))
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{_OP}: groups must be a positive int, got {groups!r}")
    stride_hw = pair("stride", stride, _OP, 1)
    dilation_hw = pair("dilation", dilation, _OP, 1)
    out_channels, group_channels, kh, kw = w.shape
    kernel = (kh, kw)
    top, bottom, left, right = _padding(padding, kernel, dilation_hw, stride_hw)
    xd = x.data[None] if unbatched else x.data
    n, c, h, wdt = xd.shape
    if c != group_channels * groups:
        raise ValueError(
            f"{_OP}: weight of shape {w.shape} with groups={groups} expects {group_channels * groups} input "
            f"channels, got input of shape {x.shape}"
        )
    if out_channels % groups != 0:
        raise ValueError(f"{_OP}: out_channels={out_channels} must be divisible by groups={groups}")
    if b is not None and b.shape != (out_channels,):
        raise ValueError(f"{_OP}: bias must have shape ({out_channels},), got {b.shape}")
    hp, wp = h + top + bottom, wdt + left + right
    span_h, span_w = dilation_hw[0] * (kh - 1) + 1, dilation_hw[1] * (kw - 1) + 1
    if hp < span_h or wp < span_w:
        raise ValueError(
            f"{_OP}: the (dilated) kernel {span_h}x{span_w} is larger than the padded input {hp}x{wp} "
            f"(input shape {x.shape})"
        )
    ho, wo = (hp - span_h) // stride_hw[0] + 1, (wp - span_w) // stride_hw[1] + 1

    if top or bottom or left or right:
        xp = np.zeros((n, c, hp, wp), dtype=xd.dtype)
        xp[:, :, top : top + h, left : left + wdt] = xd
    else:
        xp = xd
    k = group_channels * kh * kw
    cols = np.empty((n, groups, k, ho * wo), dtype=xd.dtype)
    np.copyto(
        cols.reshape(n, groups, group_channels, kh, kw, ho, wo),
        _window_view(xp, groups, kernel, (ho, wo), stride_hw, dilation_hw),
    )
    w_mat = w.data.reshape(groups, out_channels // groups, k)
    out = np.matmul(w_mat, cols).reshape(n, out_channels, ho, wo)
    if b is not None:
        out += b.data[:, None, None]

    def backward(g: Array) -> tuple[Array | None, ...]:
        g_groups = g.reshape(n, groups, out_channels // groups, ho * wo)
        dx = dw = db = None
        if w.requires_grad:
            dw = np.matmul(g_groups, cols.transpose(0, 1, 3, 2)).sum(axis=0).reshape(w.shape)
        if b is not None and b.requires_grad:
            db = g.sum(axis=(0, 2, 3)) if not unbatched else g.sum(axis=(1, 2))
        if x.requires_grad:
            dx = _col2im(
                np.matmul(w_mat.transpose(0, 2, 1), g_groups),
                xp.shape,
                kernel,
                (ho, wo),
                stride_hw,
                dilation_hw,
            )
            dx = dx[:, :, top : top + h, left : left + wdt]
            if unbatched:
                dx = dx[0]
        return (dx, dw) if b is None else (dx, dw, db)

    result = out[0] if unbatched else out
    inputs = (x, w) if b is None else (x, w, b)
    return record(result, inputs, backward)


def _col2im(
    dcols: Array,
    padded_shape: tuple[int, ...],
    kernel: tuple[int, int],
    out_hw: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> Array:
    """Add the column gradients (N, G, K, Ho·Wo) back into a zero (N, C, Hp, Wp) array, tap by tap."""
    n, c, _, _ = padded_shape
    kh, kw = kernel
    ho, wo = out_hw
    taps = dcols.reshape(n, c, kh, kw, ho, wo)
    dxp = np.zeros(padded_shape, dtype=dcols.dtype)
    for p in range(kh):
        row = p * dilation[0]
        for q in range(kw):
            col = q * dilation[1]
            dxp[
                :,
                :,
                row : row + stride[0] * (ho - 1) + 1 : stride[0],
                col : col + stride[1] * (wo - 1) + 1 : stride[1],
            ] += taps[:, :, p, q]
    return dxp
