"""Training: flat parameter buffers, optimizers, learning-rate schedulers, gradient clipping.

The clipping functions are exported here (``from extensor.training import clip_grad_norm``);
optimizers and schedulers live in their subpackages::

    from extensor.training.optimizers import AdamW
    from extensor.training.schedulers import CosineAnnealingLR
"""

from extensor.training.clip import (
    clip_grad_norm,
    clip_grad_norm_,
    clip_grad_value,
    clip_grad_value_,
    clip_grads_with_norm_,
    grad_norm,
)

__all__ = [
    "clip_grad_norm",
    "clip_grad_norm_",
    "clip_grad_value",
    "clip_grad_value_",
    "clip_grads_with_norm_",
    "grad_norm",
]
