"""The tensor itself: `ExTensor`, its dtypes, the default random generator, and the creation functions."""

from extensor.core import random
from extensor.core.creation import (
    arange,
    cat,
    concatenate,
    from_dlpack,
    from_numpy,
    full,
    full_like,
    ones,
    ones_like,
    rand,
    rand_like,
    randn,
    randn_like,
    stack,
    tensor,
    zeros,
    zeros_like,
)
from extensor.core.random import default_generator, get_rng_state, initial_seed, manual_seed, set_rng_state
from extensor.core.tensor import ExTensor, GradSlot

__all__ = [
    "ExTensor",
    "GradSlot",
    "arange",
    "cat",
    "concatenate",
    "default_generator",
    "from_dlpack",
    "from_numpy",
    "full",
    "full_like",
    "get_rng_state",
    "initial_seed",
    "manual_seed",
    "ones",
    "ones_like",
    "rand",
    "rand_like",
    "randn",
    "randn_like",
    "random",
    "set_rng_state",
    "stack",
    "tensor",
    "zeros",
    "zeros_like",
]
