"""`DataLoader`: batches of a dataset as `Batch(input, target)` ExTensors, reproducible epoch by epoch."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from extensor.core.tensor import Array, ExTensor
from extensor.data.dataset import as_index_array, check_dataset, fetch
from extensor.data.sampler import (
    RandomSampler,
    SequentialSampler,
    check_epoch,
    check_non_negative_int,
    check_seed,
)


class Batch(NamedTuple):
    """One batch: `input` and `target`, each an ExTensor whose first dimension is the batch size.

    A NamedTuple, so both `batch.input` / `batch.target` and `for x, y in loader` work.
    """

    input: ExTensor
    target: ExTensor


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r} of type {type(value).__name__}")
    return bool(value)


class DataLoader:
    """Iterate over a dataset in batches: `for batch in loader` yields `Batch(input, target)`.

    Each epoch visits the indices the sampler gives, cut into consecutive batches of
    `batch_size` (the last one smaller unless `drop_last`). A batch is fetched with one call of the
    dataset's vectorised `get_batch` when it has one (TensorDataset, Subset of one, the built-in
    datasets: the arrays are indexed with the whole batch's index array at once), otherwise
    sample by sample and stacked field by field. Samples must be `(input, target)` pairs.

    Reproducible and resumable: with `shuffle=True`, the order of epoch k is
    `numpy.random.default_rng([seed, k]).permutation(len(dataset))`, a pure function of
    `(seed, k)`. Each `iter(loader)` runs the next epoch (0, 1, 2, ...); `set_epoch(k)` makes the
    next iteration run epoch k instead, so a run resumed at epoch k sees exactly the batches an
    uninterrupted run sees there; `set_epoch(k, start_batch=b)` starts that iteration at batch b
    (resuming mid-epoch), without fetching the b batches before it. A custom sampler with a
    `set_epoch` method is told the epoch before every iteration (how a distributed sampler keeps
    its ranks in step).

    Args:
        dataset: a `Dataset`, or anything with `__len__` and `__getitem__` returning pairs.
        batch_size: samples per batch, a positive integer.
        shuffle: visit the samples in a new random order every epoch.
        drop_last: drop the last batch of an epoch when it is smaller than `batch_size`.
        seed: non-negative integer seeding the shuffle; or
        generator: a `numpy.random.Generator` from which the seed is drawn once, at construction.
            With neither (and `shuffle=True`) the seed comes from OS entropy and is kept in `seed`.
        sampler: any object with `__iter__` (indices in [0, len(dataset))) and `__len__`, and
            optionally `set_epoch`; replaces the built-in order (so not with `shuffle=True`).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        generator: np.random.Generator | None = None,
        sampler: Any = None,
    ) -> None:
        check_dataset(dataset)
        if isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(
                f"batch_size must be a positive integer, got {batch_size!r} "
                f"of type {type(batch_size).__name__}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        shuffle = _check_flag(shuffle, "shuffle")
        drop_last = _check_flag(drop_last, "drop_last")
        if seed is not None and generator is not None:
            raise ValueError("give either seed or generator, not both")
        if seed is not None:
            check_seed(seed)
        if generator is not None and not isinstance(generator, np.random.Generator):
            raise TypeError(f"generator must be a numpy.random.Generator, got {type(generator).__name__}")
        if sampler is not None:
            if shuffle:
                raise ValueError(
                    "sampler and shuffle=True are mutually exclusive: the sampler decides the order"
                )
            if seed is not None or generator is not None:
                raise ValueError(
                    "seed and generator only apply to shuffle=True; seed the sampler itself instead"
                )
            if not (hasattr(sampler, "__iter__") and hasattr(sampler, "__len__")):
                raise TypeError(f"sampler must have __iter__ and __len__, got {type(sampler).__name__}")
        elif shuffle:
            sampler = RandomSampler(dataset, seed=seed, generator=generator)
        else:
            sampler = SequentialSampler(dataset)
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.sampler = sampler
        self._epoch = 0
        self._epoch_started = False  # has an iteration used `_epoch` already?
        self._start_batch = 0  # where the next iteration starts (set_epoch's start_batch, used once)

    # ------------------------------------------------------------------ epochs
    @property
    def seed(self) -> int | None:
        """The shuffling seed (None when not shuffling with the built-in sampler)."""
        return self.sampler.seed if isinstance(self.sampler, RandomSampler) else None

    @property
    def epoch(self) -> int:
        """The epoch of the iteration in progress or last started; before any, the one the next runs."""
        return self._epoch

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Make the next iteration run epoch `epoch`, starting at its batch `start_batch`.

        The batches yielded are exactly `list(full_epoch)[start_batch:]` of an uninterrupted
        iteration of that epoch, but the `start_batch` batches before them are never fetched from
        the dataset (only the epoch's index order is computed). `start_batch` applies to that one
        iteration; the ones after it start at batch 0. `start_batch == len(self)` gives an empty
        iteration (an epoch whose batches were all done).

        Raises:
            TypeError / ValueError: `epoch` not a non-negative integer, or `start_batch` not an
                integer in [0, len(self)]; nothing is changed then.
        """
        epoch = check_epoch(epoch)
        start_batch = check_non_negative_int(start_batch, "start_batch")
        if start_batch > len(self):
            raise ValueError(
                f"start_batch must be at most the {len(self)} batches of an epoch, got {start_batch}"
            )
        self._epoch = epoch
        self._start_batch = start_batch
        self._epoch_started = False

    def state_dict(self) -> dict[str, int | None]:
        """`{"epoch": the epoch the next iteration will run, "seed": seed}`; plain ints, JSON-safe."""
        return {"epoch": self._epoch + 1 if self._epoch_started else self._epoch, "seed": self.seed}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from `state_dict()`: the next iteration runs the saved epoch with the saved seed.

        Validates everything before changing anything: the keys must be exactly "epoch" and
        "seed", and the seed must be an integer exactly when this loader shuffles.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping, got {type(state).__name__}")
        if set(state) != {"epoch", "seed"}:
            raise ValueError(f"state must have exactly the keys 'epoch' and 'seed', got {sorted(state)}")
        epoch = check_epoch(state["epoch"])
        seed = state["seed"]
        if isinstance(self.sampler, RandomSampler):
            if seed is None:
                raise ValueError("this loader shuffles; the state's seed must be an integer, got None")
            seed = check_seed(seed)
        elif seed is not None:
            raise ValueError(f"this loader does not shuffle with a seed, but the state has seed {seed!r}")
        if isinstance(self.sampler, RandomSampler):
            self.sampler.seed = seed
        self.set_epoch(epoch)  # its checks passed above: this cannot fail half-way

    # ------------------------------------------------------------------ iteration
    def _epoch_indices(self) -> Array:
        """The sampler's indices for the current epoch, checked against the dataset's length."""
        sampler = self.sampler
        if isinstance(sampler, (RandomSampler, SequentialSampler)):
            return sampler.indices()
        order = np.fromiter(iter(sampler), dtype=np.int64)
        if order.shape[0] != len(sampler):
            raise ValueError(f"the sampler yielded {order.shape[0]} indices but its len() is {len(sampler)}")
        return as_index_array(order, len(self.dataset), "sampler indices")

    def __iter__(self) -> Iterator[Batch]:
        """Start the next epoch (see `set_epoch`) and return an iterator over its batches."""
        if self._epoch_started:
            self._epoch += 1
        self._epoch_started = True
        set_epoch = getattr(self.sampler, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(self._epoch)
        first, self._start_batch = self._start_batch, 0
        return self._batches(self._epoch_indices(), first)

    def _batches(self, order: Array, first: int) -> Iterator[Batch]:
        """The batches of the epoch visiting `order`, from batch number `first` on."""
        size = self.batch_size
        stop = order.shape[0] - order.shape[0] % size if self.drop_last else order.shape[0]
        for start in range(first * size, stop, size):
            fields = fetch(self.dataset, order[start : start + size])
            if len(fields) != 2:
                raise ValueError(
                    f"DataLoader yields Batch(input, target), so samples must be pairs; this dataset's "
                    f"samples have {len(fields)} field(s)"
                )
            yield Batch(ExTensor(fields[0]), ExTensor(fields[1]))

    def __len__(self) -> int:
        """The number of batches per epoch."""
        count = len(self.sampler)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def __repr__(self) -> str:
        return (
            f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"drop_last={self.drop_last})"
        )
