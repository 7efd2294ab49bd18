"""`DataParallelLoop`: what a training loop changes to run data-parallel — the CLI's `--distributed`.

A loop written for one process needs five changes to train on R ranks; this object makes each
one a call, so that the loop reads the same with or without MPI:

- the data: each rank loads its shard of every epoch (`sampler`), `batch_size / R` at a time
  (`local_batch`), so the global batch and the number of steps per epoch are the one-process
  run's — a run is the same run on any number of ranks, and a checkpoint resumes on any;
- the model and optimizer: `wrap` broadcasts rank 0's parameters (`DistributedDataParallel`)
  and, with `shard_optimizer`, partitions the optimizer state (`ShardedOptimizer`);
- after backward: `finish_gradients` averages the gradients over the ranks and clips them
  (by global norm or value) exactly as the one-process run would;
- metrics and decisions: `all_sum` adds per-rank numbers (loss sums, counts, a stop flag) so
  that every rank logs and decides the same thing;
- checkpoints: `gathered_state` assembles a sharded optimizer's state for the save (collective),
  and only rank 0 (`is_root`) writes files and prints.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence, Sized
from contextlib import contextmanager
from typing import Any

import numpy as np

from extensor.distributed.comm import Communicator, world
from extensor.distributed.ddp import DistributedDataParallel
from extensor.distributed.sampler import DistributedSampler
from extensor.distributed.sharded import ShardedOptimizer
from extensor.training.clip import clip_grad_norm, clip_grad_value
from extensor.training.optimizers.optimizer import Optimizer


class DataParallelLoop:
    """The data-parallel parts of a training loop over the ranks of `comm` (default: the MPI world).

    Usage, with `optimizer` the plain optimizer (schedulers and checkpoints keep using it)::

        parallel = DataParallelLoop(shard_optimizer=True)
        loader = DataLoader(train_set, batch_size=parallel.local_batch(64),
                            sampler=parallel.sampler(train_set, seed=0))
        network, stepper = parallel.wrap(model, optimizer)
        for x, y in loader:
            tape = Tape()
            with tape:
                loss = criterion(network(x), y)
            stepper.zero_grad()
            tape.backward(loss)
            parallel.finish_gradients(clip_norm=1.0)
            stepper.step()

    Args:
        comm: the ranks; default `extensor.distributed.world()`.
        shard_optimizer: partition the optimizer state over the ranks (ZeRO-1) in `wrap`.
    """

    def __init__(self, comm: Communicator | None = None, shard_optimizer: bool = False) -> None:
        self.comm = world() if comm is None else comm
        self.shard_optimizer = bool(shard_optimizer)
        self.model: DistributedDataParallel | None = None
        self.sharded: ShardedOptimizer | None = None
        self._parameters: list[Any] = []

    @property
    def is_root(self) -> bool:
        """True on rank 0, the rank that prints and writes files."""
        return self.comm.rank == 0

    def local_batch(self, global_batch: int) -> int:
        """This rank's batch size for a global batch of `global_batch` (ValueError unless R divides it)."""
        if global_batch % self.comm.size:
            raise ValueError(
                f"the batch size {global_batch} must be a multiple of the number of ranks "
                f"({self.comm.size}): "
                "each rank takes an equal share of every batch"
            )
        return global_batch // self.comm.size

    def sampler(self, dataset: Sized, seed: int, shuffle: bool = True) -> DistributedSampler:
        """This rank's `DistributedSampler` over `dataset` (same seed on every rank)."""
        return DistributedSampler(dataset, self.comm.size, self.comm.rank, shuffle=shuffle, seed=seed)

    def wrap(self, model: Any, optimizer: Optimizer) -> tuple[DistributedDataParallel, Any]:
        """Return (the model to call, the optimizer to step) for data-parallel training (collective).

        The model is wrapped in `DistributedDataParallel` (layout check, broadcast of rank 0's
        parameters and buffers, thread limits). The optimizer to step is `optimizer` itself, or a
        `ShardedOptimizer` around it with `shard_optimizer` (load any checkpoint into
        `optimizer` before wrapping: the sharded wrapper takes over its state).
        """
        self.model = DistributedDataParallel(model, self.comm)
        self._parameters = list(model.parameters())
        stepper: Any = optimizer
        if self.shard_optimizer:
            self.sharded = stepper = ShardedOptimizer(optimizer, self.comm)
        return self.model, stepper

    def finish_gradients(self, clip_norm: float | None = None, clip_value: float | None = None) -> Any:
        """Average the gradients over the ranks, then clip them; returns the total norm when clipping by it.

        Collective. Clipping by norm uses the norm of the averaged gradients of the whole model,
        clipping by value bounds the averaged gradients: what one process with the global batch
        computes. Falsy bounds mean no clipping.
        """
        if self.model is None:
            raise RuntimeError("call wrap(model, optimizer) before finish_gradients()")
        total = None
        if self.sharded is not None:
            self.sharded.reduce_gradients()
            if clip_norm:
                total = self.sharded.clip_grad_norm(clip_norm)
            if clip_value is not None:
                self.sharded.clip_grad_value(clip_value)
            return total
        self.model.reduce_gradients()
        if clip_norm:
            total = clip_grad_norm(self._parameters, clip_norm)
        if clip_value is not None:
            clip_grad_value(self._parameters, clip_value)
        return total

    def all_sum(self, values: Sequence[float]) -> list[float]:
        """The sums over the ranks of `values` (collective; small vectors: metrics, flags)."""
        array = np.asarray(values, dtype=np.float64).copy()
        self.comm.allreduce_sum_(array)
        return [float(v) for v in array]

    @contextmanager
    def gathered_state(self) -> Iterator[None]:
        """Within the block the plain optimizer holds its whole state, for a checkpoint (collective).

        Only needed when sharding; every rank must enter the block, even those that do not write.
        """
        if self.sharded is None:
            yield
            return
        with self.sharded.gathered_state():
            yield
