"""Training: flat parameter buffers, optimizers, learning-rate schedulers, gradient clipping,
optimizer wrappers and weight averaging.

The clipping functions, `Lookahead` and the averaging utilities (torch.optim.swa_utils') are
exported here; optimizers and schedulers live in their subpackages::

    from extensor.training import clip_grad_norm, Lookahead, AveragedModel
    from extensor.training.optimizers import AdamW
    from extensor.training.schedulers import CosineAnnealingLR
"""

from extensor.training.averaging import (
    AveragedModel,
    get_ema_avg_fn,
    get_ema_multi_avg_fn,
    get_swa_avg_fn,
    get_swa_multi_avg_fn,
    update_bn,
)
from extensor.training.clip import (
    clip_grad_norm,
    clip_grad_norm_,
    clip_grad_value,
    clip_grad_value_,
    clip_grads_with_norm_,
    grad_norm,
)
from extensor.training.lookahead import Lookahead

__all__ = [
    "AveragedModel",
    "Lookahead",
    "clip_grad_norm",
    "clip_grad_norm_",
    "clip_grad_value",
    "clip_grad_value_",
    "clip_grads_with_norm_",
    "get_ema_avg_fn",
    "get_ema_multi_avg_fn",
    "get_swa_avg_fn",
    "get_swa_multi_avg_fn",
    "grad_norm",
    "update_bn",
]
