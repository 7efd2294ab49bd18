"""Reverse-mode automatic differentiation: the `Tape`, `no_grad`, the recorded operations, and `gradcheck`."""

from extensor.autograd import ops
from extensor.autograd.gradcheck import GradcheckError, gradcheck
from extensor.autograd.tape import Tape, is_grad_enabled, no_grad

__all__ = ["GradcheckError", "Tape", "gradcheck", "is_grad_enabled", "no_grad", "ops"]
