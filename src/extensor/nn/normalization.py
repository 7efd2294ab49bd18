"""Normalisation layers: `BatchNorm1d`, `BatchNorm2d` and `LayerNorm`."""

from __future__ import annotations

from typing import Any

import numpy as np

from extensor.autograd.function import as_tensor
from extensor.autograd.ops.normalization import batch_norm, layer_norm
from extensor.core.tensor import ExTensor
from extensor.nn.linear import check_device, floating_dtype, positive_int
from extensor.nn.module import Module
from extensor.nn.parameter import Parameter


class _BatchNorm(Module):
    """Batch normalisation (Ioffe & Szegedy 2015) over every axis but the channel axis 1.

    Training: normalise with the batch statistics and update `running_mean`/`running_var` (the
    unbiased batch variance) with factor `momentum`, or with the cumulative average 1/t when
    momentum is None; `num_batches_tracked` counts the updates. Evaluation: normalise with the
    running statistics. As torch.nn.BatchNorm*d: weight starts at 1, bias at 0, running_mean at 0,
    running_var at 1; `affine=False` drops both, `bias=False` only the bias.
    """

    _expected_dims: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        check_device(device, name)
        self.num_features = positive_int("num_features", num_features, name)
        if not eps > 0:
            raise ValueError(f"{name}: eps must be positive, got {eps!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum!r}")
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        resolved = floating_dtype(dtype, name)
        if affine:
            self.weight = Parameter(np.ones(self.num_features, dtype=resolved))
            if bias:
                self.bias = Parameter(np.zeros(self.num_features, dtype=resolved))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", ExTensor(np.zeros(self.num_features, dtype=resolved)))
            self.register_buffer("running_var", ExTensor(np.ones(self.num_features, dtype=resolved)))
            self.register_buffer("num_batches_tracked", ExTensor(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches tracked."""
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def forward(self, input: Any) -> ExTensor:
        """Normalise `input` (and, in training mode, update the running statistics)."""
        x = as_tensor(input)
        name = type(self).__name__
        if x.ndim not in self._expected_dims:
            dims = " or ".join(f"{d}D" for d in self._expected_dims)
            raise ValueError(f"{name}: expected {dims} input, got {x.ndim}D input of shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{name}: expected {self.num_features} channels on axis 1, got input of shape {x.shape}"
            )
        if self.training and x.size // x.shape[1] <= 1:
            raise ValueError(
                f"{name}: expected more than 1 value per channel when training, got shape {x.shape}"
            )
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.data[...] += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.data)
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        return batch_norm(
            x,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            self.bias,
            use_batch_stats,
            factor,
            self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs (see `_BatchNorm`)."""

    _expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs (see `_BatchNorm`)."""

    _expected_dims = (4,)


class LayerNorm(Module):
    """Layer normalisation (Ba et al. 2016) over the trailing `normalized_shape` dimensions.

    Each sample is normalised by its own mean and (biased) variance; the elementwise affine
    weight starts at 1 and the bias at 0, as torch.nn.LayerNorm.
    """

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...] | list[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        check_device(device, "LayerNorm")
        shape = (
            (normalized_shape,)
            if isinstance(normalized_shape, (int, np.integer))
            else tuple(normalized_shape)
        )
        if not shape:
            raise ValueError("LayerNorm: normalized_shape must not be empty")
        self.normalized_shape = tuple(positive_int("normalized_shape", n, "LayerNorm") for n in shape)
        if not eps > 0:
            raise ValueError(f"LayerNorm: eps must be positive, got {eps!r}")
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        resolved = floating_dtype(dtype, "LayerNorm")
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=resolved))
            if bias:
                self.bias = Parameter(np.zeros(self.normalized_shape, dtype=resolved))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, input: Any) -> ExTensor:
        """Normalise each sample over the trailing `normalized_shape` dimensions."""
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
            f"bias={self.bias is not None}"
        )
