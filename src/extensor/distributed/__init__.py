"""Data-parallel training over MPI (mpi4py): replicated (`DistributedDataParallel`) or with sharded
optimizer state (`ShardedOptimizer`, ZeRO stage 1), plus the `DistributedSampler` that gives
every rank its shard of each epoch.

Launch with `mpiexec -n 4 python -m mpi4py script.py` (the `mpi` extra installs both). Run as a
plain `python script.py`, everything works on one process: `world()` is a group of one.
mpi4py is imported only when a communicator is first needed.
"""

from extensor.distributed.comm import Communicator, MPICommunicator, SingleProcess, world
from extensor.distributed.ddp import DistributedDataParallel
from extensor.distributed.layout import check_same_layout
from extensor.distributed.sampler import DistributedSampler
from extensor.distributed.threads import limit_threads

__all__ = [
    "Communicator",
    "DistributedDataParallel",
    "DistributedSampler",
    "MPICommunicator",
    "SingleProcess",
    "check_same_layout",
    "limit_threads",
    "world",
]
