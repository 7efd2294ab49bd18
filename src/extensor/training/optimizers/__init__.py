"""Optimizers with torch.optim's interface, each one fused numba kernel over flat buffers.

``from extensor.training.optimizers import Optimizer, SGD, Adam, AdamW, RMSprop, LARS``.
See `optimizer.py` for the shared machinery and how to add an optimizer in one short file.
"""

from extensor.training.optimizers.adam import Adam, AdamW
from extensor.training.optimizers.lars import LARS, exclude_from_adaptation
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Run
from extensor.training.optimizers.rmsprop import RMSprop
from extensor.training.optimizers.sgd import SGD

__all__ = [
    "LARS",
    "SGD",
    "Adam",
    "AdamW",
    "Optimizer",
    "ParamGroup",
    "RMSprop",
    "Run",
    "exclude_from_adaptation",
]
