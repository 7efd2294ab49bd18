"""Loss layers: `CrossEntropyLoss`, `MSELoss` and `BCEWithLogitsLoss`, each one fused, stable node."""

from __future__ import annotations

from typing import Any

import numpy as np

from extensor.autograd.function import as_tensor
from extensor.autograd.ops._layer_checks import reduction_mode
from extensor.autograd.ops.loss import binary_cross_entropy_with_logits, cross_entropy, mse_loss
from extensor.core.tensor import ExTensor
from extensor.nn.module import Module


def _optional_buffer(value: Any) -> ExTensor | None:
    return None if value is None else as_tensor(value)


class CrossEntropyLoss(Module):
    """Cross-entropy of logits against integer class indices (log_softmax + NLL in one node).

    See `extensor.nn.functional.cross_entropy` for the formula. `weight` (one per class) is a
    buffer; `ignore_index` marks targets that contribute nothing; `label_smoothing` ε mixes the
    one-hot target with the uniform distribution; `reduction` is 'mean', 'sum' or 'none'.
    """

    def __init__(
        self,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.reduction = reduction_mode(reduction, "CrossEntropyLoss")
        if isinstance(label_smoothing, bool) or not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing!r}")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
            raise TypeError(f"CrossEntropyLoss: ignore_index must be an int, got {ignore_index!r}")
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)
        self.register_buffer("weight", _optional_buffer(weight))

    def forward(self, input: Any, target: Any) -> ExTensor:
        """The loss of logits `input` (N, C, *) against class indices `target` (N, *)."""
        return cross_entropy(
            input, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing
        )


class MSELoss(Module):
    """Mean squared error (x − y)², reduced by 'mean', 'sum' or 'none'."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction_mode(reduction, "MSELoss")

    def forward(self, input: Any, target: Any) -> ExTensor:
        """The squared error of `input` against `target`."""
        return mse_loss(input, target, self.reduction)


class BCEWithLogitsLoss(Module):
    """Binary cross-entropy on logits, sigmoid fused in for stability.

    `weight` rescales each element, `pos_weight` the positive term of each class (last dimension).
    See `extensor.nn.functional.binary_cross_entropy_with_logits`.
    """

    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__()
        self.reduction = reduction_mode(reduction, "BCEWithLogitsLoss")
        self.register_buffer("weight", _optional_buffer(weight))
        self.register_buffer("pos_weight", _optional_buffer(pos_weight))

    def forward(self, input: Any, target: Any) -> ExTensor:
        """The loss of logits `input` against targets in [0, 1] of the same shape."""
        return binary_cross_entropy_with_logits(input, target, self.weight, self.reduction, self.pos_weight)
