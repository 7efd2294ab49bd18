"""MPI job that must fail fast: `raise` (the last rank raises while the others wait in a collective)
or `mismatch` (the last rank builds a wider model than the others)."""

from __future__ import annotations

import sys

import numpy as np

from extensor import ExTensor
from extensor.distributed import DistributedDataParallel, world

comm = world()
mode = sys.argv[1]
last = comm.rank == comm.size - 1

if mode == "raise":
    if last:
        raise RuntimeError(f"rank {comm.rank} fails on purpose")
    comm.allreduce_sum_(np.zeros(10))  # would wait forever for the rank that died
elif mode == "mismatch":

    class Model:
        def __init__(self, width: int) -> None:
            self.weight = ExTensor(np.zeros((width, 2)), requires_grad=True)

        def parameters(self) -> list[ExTensor]:
            return [self.weight]

    DistributedDataParallel(Model(4 if last else 3))
else:
    raise SystemExit(f"unknown mode {mode!r}")
print("unreachable: the job should have failed", flush=True)
