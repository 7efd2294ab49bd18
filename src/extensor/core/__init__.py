"""The tensor itself: `ExTensor`, its dtypes, and the functions that create tensors."""

from extensor.core.tensor import ExTensor, GradSlot

__all__ = ["ExTensor", "GradSlot"]
