"""Reverse-mode automatic differentiation: the `Tape`, `no_grad`, and the recorded operations."""

from extensor.autograd import ops
from extensor.autograd.tape import Tape, is_grad_enabled, no_grad

__all__ = ["Tape", "is_grad_enabled", "no_grad", "ops"]
