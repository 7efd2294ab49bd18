"""2-D convolution as im2col plus one BLAS product per group, forward beside backward.

The padded input is viewed without copying as every kernel tap at every output position, and one
copy turns that view into the column matrix `cols` (G, K, N·L), K = (C/G)·kh·kw (see
`_ColumnPlan` for L and the stride-1 "wide" layout that makes every copied run contiguous). Then

    out_g = W_g (O/G, K) @ cols_g (K, N·L)                      one GEMM for the whole batch,
    dW_g  = g_g (O/G, N·L) @ cols_gᵀ,   dcols_g = W_gᵀ @ g_g,

and col2im adds dcols back into the padded input one kernel tap at a time (kh·kw slice additions,
no scatter-add).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from extensor.autograd.function import as_tensor, record
from extensor.autograd.ops import _conv_kernels, _workspace
from extensor.autograd.ops._layer_checks import pair, require_floating, require_same_dtype, spatial_input
from extensor.core.dispatch import register
from extensor.core.tensor import Array, ExTensor

_OP = "conv2d"
kernels: Any = _conv_kernels  # numba dispatchers; their call signatures are not visible to mypy
_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


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


class _ColumnPlan:
    """How one convolution's input becomes columns, and its gradients go back.

    The columns are laid out (G, K, N·L) with K = (C/G)·kh·kw, so each group's product is one
    GEMM over the whole batch. With stride 1 ("wide" plan, float32/64) every output row is computed
    at the padded width Wp, L = Ho·Wp: tap (p, q) of output element m = i·Wp + j then reads the
    input at the constant offset p·dh·Wp + q·dw from m, so a column is one contiguous run of the
    flattened input and the scatter of the backward pass is kh·kw contiguous run additions (compiled
    loops, `_conv_kernels`). The Wp − Wo extra outputs per row are never returned (their gradient is
    zero; so an infinite input value would reach dW as inf·0 = NaN where torch might stay finite, a
    case where training has already diverged). Other strides (and float16) read an (N, Ho, Wo)
    strided view per tap, L = Ho·Wo.
    """

    def __init__(
        self,
        x_shape: tuple[int, ...],
        out_channels: int,
        groups: int,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        dilation: tuple[int, int],
        pads: tuple[int, int, int, int],
        out_hw: tuple[int, int],
        dtype: np.dtype[Any],
    ) -> None:
        self.n, self.c, self.h, self.w = x_shape
        self.out_channels, self.groups = out_channels, groups
        self.kernel, self.stride, self.dilation, self.pads, self.out_hw = (
            kernel,
            stride,
            dilation,
            pads,
            out_hw,
        )
        top, bottom, left, right = pads
        self.hp, self.wp = self.h + top + bottom, self.w + left + right
        # the wide copies are compiled loops (`_conv_kernels`), which numba has for float32/64 only
        self.wide = stride == (1, 1) and dtype in _KERNEL_DTYPES
        self.row = self.wp if self.wide else out_hw[1]
        self.length = out_hw[0] * self.row

    def padded(self, xd: Array) -> Array:
        """The input inside its zero frame, C-contiguous."""
        top, bottom, left, right = self.pads
        if not (top or bottom or left or right):
            return np.ascontiguousarray(xd)
        xp = _workspace.take_zeros((self.n, self.c, self.hp, self.wp), xd.dtype)
        xp[:, :, top : top + self.h, left : left + self.w] = xd
        return xp

    def columns(self, xd: Array) -> Array:
        """The (G, K, N·L) column matrix of the input."""
        (kh, kw), (dh, dw), (ho, wo) = self.kernel, self.dilation, self.out_hw
        xp = self.padded(xd)
        if self.wide:
            cols = _workspace.take((self.c, kh, kw, self.n, self.length), xd.dtype)
            run = (ho - 1) * self.wp + wo  # the last row stops at the last real output
            flat = xp.reshape(self.n, self.c, self.hp * self.wp)
            kernels.im2col_wide(flat, cols, self.wp, dh, dw, run)
        else:
            sh, sw = self.stride
            s_n, s_c, s_h, s_w = xp.strides
            cols = _workspace.take((self.c, kh, kw, self.n, ho, wo), xd.dtype)
            taps = as_strided(
                xp,
                (self.c, kh, kw, self.n, ho, wo),
                (s_c, dh * s_h, dw * s_w, s_n, sh * s_h, sw * s_w),
                writeable=False,
            )
            np.copyto(cols, taps)
        return cols.reshape(self.groups, -1, self.n * self.length)

    def output(self, product: Array, bias: Array | None) -> Array:
        """The (N, O, Ho, Wo) result from the (G, O/G, N·L) product, plus the bias."""
        ho, wo = self.out_hw
        view = product.reshape(self.out_channels, self.n, ho, self.row)[..., :wo].transpose(1, 0, 2, 3)
        out = _workspace.take((self.n, self.out_channels, ho, wo), product.dtype)
        if bias is None:
            np.copyto(out, view)
        else:
            np.add(view, bias[:, None, None], out=out)
        return out

    def grad_columns(self, g: Array) -> Array:
        """The output gradient in the product's (G, O/G, N·L) layout (zero on the extra wide outputs)."""
        ho, wo = self.out_hw
        g_t = _workspace.take((self.out_channels, self.n, ho, self.row), g.dtype)
        g_t[..., :wo] = g.transpose(1, 0, 2, 3)
        g_t[..., wo:] = 0  # the extra wide outputs (none for strided plans)
        return g_t.reshape(self.groups, -1, self.n * self.length)

    def input_grad(self, dcols: Array) -> Array:
        """col2im: add each tap's column gradient back at its input position; crop the frame."""
        (kh, kw), (dh, dw), (ho, wo) = self.kernel, self.dilation, self.out_hw
        top, _, left, _ = self.pads
        if self.wide:
            taps = dcols.reshape(self.c, kh, kw, self.n, self.length)
            run = (ho - 1) * self.wp + wo
            flat = _workspace.take_zeros((self.c, self.n, self.hp * self.wp), dcols.dtype)
            kernels.col2im_wide(taps, flat, self.wp, dh, dw, run)
            dxp = flat.reshape(self.c, self.n, self.hp, self.wp)
        else:
            sh, sw = self.stride
            taps = dcols.reshape(self.c, kh, kw, self.n, ho, wo)
            dxp = _workspace.take_zeros((self.c, self.n, self.hp, self.wp), dcols.dtype)
            for p in range(kh):
                for q in range(kw):
                    rows = slice(p * dh, p * dh + sh * (ho - 1) + 1, sh)
                    cols = slice(q * dw, q * dw + sw * (wo - 1) + 1, sw)
                    dxp[:, :, rows, cols] += taps[:, p, q]
        cropped = dxp[:, :, top : top + self.h, left : left + self.w]
        dx = _workspace.empty((self.n, self.c, self.h, self.w), dcols.dtype)
        np.copyto(dx, cropped.transpose(1, 0, 2, 3))
        return dx


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
    _, c, h, wdt = xd.shape
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

    pads = (top, bottom, left, right)
    geometry = (kernel, stride_hw, dilation_hw, pads, (ho, wo))
    plan = _ColumnPlan(xd.shape, out_channels, groups, *geometry, xd.dtype)
    cols = plan.columns(xd)
    w_mat = w.data.reshape(groups, out_channels // groups, -1)
    product = _workspace.take((groups, out_channels // groups, cols.shape[2]), cols.dtype)
    out = plan.output(np.matmul(w_mat, cols, out=product), None if b is None else b.data)
    del product  # back to the pool

    def backward(g: Array) -> tuple[Array | None, ...]:
        g4 = g[None] if unbatched else g
        g_t = plan.grad_columns(g4)
        dx = dw = db = None
        if w.requires_grad:
            dw = np.matmul(g_t, cols.transpose(0, 2, 1)).reshape(w.shape)
        if b is not None and b.requires_grad:
            db = g4.sum(axis=(0, 2, 3))
        if x.requires_grad:
            dcols = _workspace.take(cols.shape, cols.dtype)
            dx = plan.input_grad(np.matmul(w_mat.transpose(0, 2, 1), g_t, out=dcols))
            if unbatched:
                dx = dx[0]
        return (dx, dw) if b is None else (dx, dw, db)

    result = out[0] if unbatched else out
    inputs = (x, w) if b is None else (x, w, b)
    return record(result, inputs, backward)
