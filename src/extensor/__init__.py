"""extensor: a NumPy deep-learning training library whose optimizers are fused kernels over flat buffers."""

from extensor import autograd
from extensor.autograd import Tape, no_grad
from extensor.core import ExTensor

__version__ = "0.1.0"

__all__ = ["ExTensor", "Tape", "__version__", "autograd", "no_grad"]
