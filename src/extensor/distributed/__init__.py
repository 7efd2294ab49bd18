"""Data-parallel training over MPI (mpi4py): replicated or with sharded optimizer state.

Install the MPI extra (mpi4py and the MPICH wheel, which brings `mpiexec`): ``pip install -e '.[mpi]'``.
Without it, or run as a plain ``python script.py``, everything works on one process: `world()`
is then a group of one and every collective the identity; mpi4py is imported only when a
communicator is first needed, so importing extensor never needs MPI.

Launch::

    mpiexec -n 4 python -m mpi4py -m extensor train --distributed            # ZeRO-1 (default)
    mpiexec -n 4 python -m mpi4py -m extensor train --distributed --no-shard-optimizer
    mpiexec -n 8 -ppn 4 -hosts node1,node2 python -m mpi4py my_training.py   # two machines (MPICH)

`--batch-size` stays the global batch (each rank takes batch-size / R of every batch), so a
distributed run is the one-process run — same steps, same schedule, same numbers up to float
rounding — and its checkpoints resume on any number of ranks or in one process. `python -m
mpi4py` (and, without it, `world()`) aborts the whole job when a rank raises, instead of leaving
the others waiting in a collective; `MPIEXEC_TIMEOUT=<s>` bounds a job's wall time.

In your own loop:

- `DistributedSampler` gives each rank a disjoint shard of every epoch's permutation;
- `DistributedDataParallel(model)` checks that every rank built the same model, broadcasts rank
  0's parameters and buffers, limits each rank to its share of the cores, and
  `reduce_gradients()` averages the gradients in place (`no_sync()` for accumulation);
- `ShardedOptimizer(optimizer)` (ZeRO stage 1) keeps each rank's slice of the optimizer state
  only: reduce-scatter the gradients, the optimizer's own kernel on the slice, all-gather the
  parameters; `clip_grad_norm` and LARS's per-tensor norms are completed across ranks;
- `DataParallelLoop` bundles the above the way `extensor train --distributed` uses them.

What moves per step, for N parameters of b bytes (4 for float32) on R ranks, per rank (ring
algorithms; MPICH picks comparable ones):

- replicated: one all-reduce of the gradients, 2 (R-1)/R N b bytes sent and as many received;
- sharded: a reduce-scatter of the gradients and an all-gather of the parameters,
  (R-1)/R N b bytes each — the same total — while optimizer state per rank falls from
  S N b to S N b / R (S state arrays: 2 for Adam/AdamW, 3 with amsgrad, 1 for SGD/LARS with
  momentum, 1-3 for RMSprop);
- both: one byte per tensor (which gradients exist), 16 bytes per tensor for LARS's norms,
  8 bytes for a clipping norm, and the CLI's 32 bytes of metrics; at start, a layout digest
  (under 100 bytes) and one broadcast of the N b bytes of parameters (and the buffers, before every
  forward, as torch's DDP does).

Large buffers go out as 4 MiB slices of the flat gradient buffer: on this 2-core machine one
32-64 MiB `MPI_Allreduce` was 3x slower than the same bytes in 4 MiB slices (see
`benchmarks/distributed.py`).
"""

from extensor.distributed.comm import Communicator, MPICommunicator, SingleProcess, world
from extensor.distributed.ddp import DistributedDataParallel
from extensor.distributed.layout import check_same_layout
from extensor.distributed.loop import DataParallelLoop
from extensor.distributed.sampler import DistributedSampler
from extensor.distributed.sharded import ShardedOptimizer
from extensor.distributed.threads import limit_threads

__all__ = [
    "Communicator",
    "DataParallelLoop",
    "DistributedDataParallel",
    "DistributedSampler",
    "MPICommunicator",
    "ShardedOptimizer",
    "SingleProcess",
    "check_same_layout",
    "limit_threads",
    "world",
]
