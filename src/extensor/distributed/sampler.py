"""`DistributedSampler`: each rank reads a disjoint shard of every epoch's order of the dataset.

Give it to a `DataLoader` as `sampler=`. Every rank must draw the same permutation (same seed,
same epoch) and take the same number of samples, or the ranks' collectives stop matching and
the job hangs; hence the padding (or dropping) below, as in `torch.utils.data.DistributedSampler`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized

import numpy as np

from extensor.core.tensor import Array
from extensor.data.sampler import check_epoch, check_seed, epoch_permutation
from extensor.distributed.comm import world


def _count(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


class DistributedSampler:
    """Indices of rank `rank`'s shard of a dataset of `len(dataset)` samples, one epoch at a time.

    Each epoch: take the order `0..n-1` (or, with `shuffle`, the permutation
    `extensor.data.epoch_permutation(seed, epoch, n)`, the one a shuffling DataLoader with that
    seed visits), make its length a multiple of `num_replicas` by
    repeating its first indices (or, with `drop_last`, by cutting its tail), and hand rank `r`
    every `num_replicas`-th index starting at `r`. Every rank yields `len(self)` indices:
    `ceil(n / R)`, or `floor(n / R)` with `drop_last`. Without shuffling the shards are exactly
    those of torch's `DistributedSampler`.

    Call `set_epoch(epoch)` before each epoch (the `DataLoader` does when it can) to get a new
    order; the same epoch always gives the same order.

    Args:
        dataset: anything with `len()`, or the number of samples itself.
        num_replicas: number of ranks (default: the world size).
        rank: this rank (default: the world rank).
        shuffle: draw a new permutation every epoch.
        seed: base of the permutation seed; must be the same on every rank.
        drop_last: cut the tail instead of padding so that no sample is seen twice in an epoch.
    """

    def __init__(
        self,
        dataset: Sized | int,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if isinstance(dataset, int | np.integer) and not isinstance(dataset, bool | np.bool_):
            length = _count(dataset, "the dataset size", 0)
        elif hasattr(dataset, "__len__"):
            length = len(dataset)
        else:
            raise TypeError(f"dataset must have a length or be a sample count, got {type(dataset).__name__}")
        if num_replicas is None or rank is None:
            comm = world()
            num_replicas = comm.size if num_replicas is None else num_replicas
            rank = comm.rank if rank is None else rank
        num_replicas = _count(num_replicas, "num_replicas", 1)
        rank = _count(rank, "rank", 0)
        if rank >= num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        seed = check_seed(seed)
        if drop_last and length < num_replicas:
            raise ValueError(
                f"with drop_last, {length} samples leave nothing for each of {num_replicas} ranks"
            )
        self.length = length
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = bool(shuffle)
        self.seed = seed
        self.drop_last = bool(drop_last)
        self.epoch = 0
        if drop_last:
            self.num_samples = length // self.num_replicas
        else:
            self.num_samples = math.ceil(length / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use epoch `epoch`'s permutation from now on (same value on every rank)."""
        self.epoch = check_epoch(epoch)

    def indices(self) -> Array:
        """This rank's indices for the current epoch, as an int64 array of `len(self)` entries."""
        if self.shuffle:
            order = epoch_permutation(self.seed, self.epoch, self.length)
        else:
            order = np.arange(self.length, dtype=np.int64)
        if self.total_size > self.length:
            order = np.resize(order, self.total_size)  # repeats from the start, as torch pads
        else:
            order = order[: self.total_size]
        return order[self.rank : self.total_size : self.num_replicas].astype(np.int64, copy=False)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (
            f"DistributedSampler(length={self.length}, num_replicas={self.num_replicas}, rank={self.rank}, "
            f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, epoch={self.epoch})"
        )
