"""extensor: a NumPy deep-learning training library whose optimizers are fused kernels over flat buffers."""

import os

# A process-wide policy, set here so that it precedes every OpenMP runtime extensor can start:
# numba's parallel kernels (optimizers, clipping, pooling) run on the 'omp' threading layer, and
# OpenMP workers spin after each parallel region by default. On a machine whose cores are shared
# (measured: 2 vCPUs shared by several users) the spinning steals the time the main thread needs,
# and a 100-element kernel launch costs 4-28 ms instead of ~15 us; sleeping workers cost ~10 us
# per launch on a quiet machine, nothing next to a step. libgomp reads the variable once, when it
# loads, so it has no effect if torch (or another OpenMP user) was imported first; an explicit
# user setting always wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from extensor import autograd
from extensor.autograd import Tape, gradcheck, no_grad
from extensor.autograd.ops.elementwise import maximum, minimum, where
from extensor.core import (
    ExTensor,
    arange,
    cat,
    concatenate,
    default_generator,
    from_dlpack,
    from_numpy,
    full,
    full_like,
    get_rng_state,
    initial_seed,
    manual_seed,
    ones,
    ones_like,
    rand,
    rand_like,
    randn,
    randn_like,
    set_rng_state,
    stack,
    tensor,
    zeros,
    zeros_like,
)

__version__ = "0.1.0"

__all__ = [
    "ExTensor",
    "Tape",
    "__version__",
    "arange",
    "autograd",
    "cat",
    "concatenate",
    "default_generator",
    "from_dlpack",
    "from_numpy",
    "full",
    "full_like",
    "get_rng_state",
    "gradcheck",
    "initial_seed",
    "manual_seed",
    "maximum",
    "minimum",
    "no_grad",
    "ones",
    "ones_like",
    "rand",
    "rand_like",
    "randn",
    "randn_like",
    "set_rng_state",
    "stack",
    "tensor",
    "where",
    "zeros",
    "zeros_like",
]
