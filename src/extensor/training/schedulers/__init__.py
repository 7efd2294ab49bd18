"""Learning-rate schedulers with PyTorch 2.13's semantics, and the schedules as pure functions.

Every scheduler drives an extensor `Optimizer`'s ``param_groups`` exactly as the torch scheduler
of the same name drives torch's: same arguments, same step-by-step values (the recursive forms
included), same ``last_epoch``/``base_lrs``/``get_last_lr()``, and state dicts with the same
keys (JSON-able here). `curves` holds each schedule as a pure function of the step, for plotting
a schedule without an optimizer.

    scheduler = CosineAnnealingLR(optimizer, T_max=100)
    for epoch in range(100):
        train_one_epoch()
        scheduler.step()
"""

from extensor.training.schedulers import curves
from extensor.training.schedulers.base import LRScheduler
from extensor.training.schedulers.composite import ChainedScheduler, SequentialLR
from extensor.training.schedulers.cosine import CosineAnnealingLR, CosineAnnealingWarmRestarts
from extensor.training.schedulers.cyclic import CyclicLR
from extensor.training.schedulers.decay import ExponentialLR, MultiStepLR, PolynomialLR, StepLR
from extensor.training.schedulers.lambdas import LambdaLR, MultiplicativeLR
from extensor.training.schedulers.one_cycle import OneCycleLR
from extensor.training.schedulers.plateau import ReduceLROnPlateau
from extensor.training.schedulers.swa import SWALR
from extensor.training.schedulers.warmup import ConstantLR, LinearLR

__all__ = [
    "SWALR",
    "ChainedScheduler",
    "ConstantLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "ExponentialLR",
    "LRScheduler",
    "LambdaLR",
    "LinearLR",
    "MultiStepLR",
    "MultiplicativeLR",
    "OneCycleLR",
    "PolynomialLR",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
    "curves",
]
