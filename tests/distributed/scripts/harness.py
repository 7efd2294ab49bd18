"""What the MPI parity jobs share: the model, the data split over ranks, the optimizers, the loop, checks."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from extensor import ExTensor, Tape
from extensor.data import Batch, DataLoader, TensorDataset
from extensor.distributed import Communicator, DistributedSampler
from extensor.nn import CrossEntropyLoss, Linear, Module, Sequential, Tanh

STEPS = 20
BATCH = 4  # per rank
BATCHES_PER_EPOCH = 5
TOLERANCE = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}


@dataclass(frozen=True)
class Config:
    """One optimizer setting: its class (module, name), hyperparameters, and loop options."""

    name: str
    module: str
    cls: str
    kwargs: dict[str, Any]
    clip: float | None = None
    accumulate: bool = False

    def build(self, groups: list[dict[str, Any]]) -> Any:
        module = importlib.import_module(f"extensor.training.optimizers.{self.module}")
        return getattr(module, self.cls)(groups, **self.kwargs)


CONFIGS = [
    Config(
        "sgd",
        "sgd",
        "SGD",
        {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-2, "nesterov": True},
        accumulate=True,
    ),
    Config("adam", "adam", "Adam", {"lr": 1e-2, "weight_decay": 1e-2, "amsgrad": True}, clip=0.5),
    Config("adamw", "adam", "AdamW", {"lr": 1e-2, "weight_decay": 0.1}),
    Config("rmsprop", "rmsprop", "RMSprop", {"lr": 1e-2, "momentum": 0.5, "centered": True}, clip=0.3),
    Config(
        "lars", "lars", "LARS", {"lr": 0.5, "momentum": 0.9, "weight_decay": 1e-3, "trust_coefficient": 0.02}
    ),
]


class Net(Module):
    """A small MLP plus a layer the forward never uses (its gradients stay None)."""

    def __init__(self, dtype: Any, seed: int) -> None:
        super().__init__()
        generator = np.random.default_rng(seed)
        self.body = Sequential(
            Linear(5, 8, dtype=dtype, generator=generator),
            Tanh(),
            Linear(8, 3, dtype=dtype, generator=generator),
        )
        self.unused = Linear(3, 2, dtype=dtype, generator=generator)

    def forward(self, x: ExTensor) -> ExTensor:
        return self.body(x)


class Setup:
    """Data and model factory for `comm.size` ranks; the reference sees the union of their batches."""

    def __init__(self, comm: Communicator, dtype: Any, seed: int = 0) -> None:
        self.comm = comm
        self.dtype = np.dtype(dtype)
        ranks = comm.size
        count = ranks * BATCH * BATCHES_PER_EPOCH
        rng = np.random.default_rng(1234 + seed)
        self.inputs = rng.standard_normal((count, 5)).astype(dtype)
        self.targets = rng.integers(0, 3, count)
        self.dataset = TensorDataset(self.inputs, self.targets)
        self.samplers = [DistributedSampler(self.dataset, ranks, r, seed=11) for r in range(ranks)]
        self.loader = DataLoader(self.dataset, batch_size=BATCH, sampler=self.samplers[comm.rank])

    def model(self, seed_offset: int = 0) -> Net:
        return Net(self.dtype, seed=100 + seed_offset)

    def groups(self, model: Net) -> list[dict[str, Any]]:
        """Two parameter groups: the first layer, and the rest at a lower learning rate."""
        first = list(model.body[0].parameters())
        rest = [p for p in model.parameters() if all(p is not q for q in first)]
        return [{"params": first}, {"params": rest, "lr_scale": 0.5}]

    def reference(self, config: Config) -> tuple[Net, Any]:
        model = self.model()
        return model, build_scaled(config, self.groups(model))

    def batches(self, start_step: int = 0) -> Iterator[tuple[Batch, Batch]]:
        """(this rank's batch, the union of every rank's batch) for each step from `start_step` on."""
        step = start_step
        while True:
            epoch, position = divmod(step, BATCHES_PER_EPOCH)
            self.loader.set_epoch(epoch)
            for sampler in self.samplers:
                sampler.set_epoch(epoch)
            shards = [sampler.indices() for sampler in self.samplers]
            for index, own in enumerate(self.loader):
                if index < position:
                    continue
                union = np.concatenate([shard[index * BATCH : (index + 1) * BATCH] for shard in shards])
                yield own, Batch(ExTensor(self.inputs[union]), ExTensor(self.targets[union]))
                step += 1


def build_scaled(config: Config, groups: list[dict[str, Any]]) -> Any:
    """Build `config`'s optimizer; a group's `lr_scale` multiplies the learning rate."""
    resolved = []
    for group in groups:
        group = dict(group)
        scale = group.pop("lr_scale", 1.0)
        if scale != 1.0:
            group["lr"] = config.kwargs["lr"] * scale
        resolved.append(group)
    return config.build(resolved)


def train(
    setup: Setup,
    model: Any,
    optimizer: Any,
    steps: int,
    mode: str,
    clip: float | None = None,
    accumulate: bool = False,
    start_step: int = 0,
) -> None:
    """`steps` steps; `mode` is "reference" (union batches), "ddp" or "sharded" (this rank's batch)."""
    criterion = CrossEntropyLoss()
    parameters = list(model.parameters())
    for _, (own, union) in zip(range(steps), setup.batches(start_step), strict=False):
        inputs, targets = union if mode == "reference" else own
        optimizer.zero_grad()
        if accumulate:  # two half batches, the first without synchronising, each loss halved
            half = inputs.shape[0] // 2
            with model.no_sync():
                backward(model, criterion, inputs[:half], targets[:half], 0.5)
            backward(model, criterion, inputs[half:], targets[half:], 0.5)
        else:
            backward(model, criterion, inputs, targets, 1.0)
        if mode == "ddp":
            model.reduce_gradients()
        if clip is not None:
            if mode == "sharded":
                optimizer.clip_grad_norm(clip)
            else:
                from extensor.training import clip_grad_norm

                clip_grad_norm(parameters, clip)
        optimizer.step()


def backward(model: Any, criterion: Callable[..., ExTensor], x: ExTensor, y: ExTensor, scale: float) -> None:
    tape = Tape()
    with tape:
        loss = criterion(model(x), y)
        if scale != 1.0:
            loss = loss * scale
    tape.backward(loss)


def assert_tensors_close(model: Any, reference: Any, dtype: Any, what: str) -> None:
    tolerance = TOLERANCE[np.dtype(dtype)]
    for index, (mine, theirs) in enumerate(zip(model.parameters(), reference.parameters(), strict=True)):
        scale = max(float(np.abs(theirs.data).max()), 1e-30)
        np.testing.assert_allclose(
            mine.data,
            theirs.data,
            rtol=tolerance,
            atol=tolerance * scale,
            err_msg=f"{what}: parameter {index}",
        )


def assert_states_close(mine: dict[str, Any], theirs: dict[str, Any], dtype: Any, what: str) -> None:
    tolerance = TOLERANCE[np.dtype(dtype)]
    assert mine["param_groups"] == theirs["param_groups"], f"{what}: param_groups differ"
    assert sorted(mine["state"]) == sorted(theirs["state"]), f"{what}: state entries differ"
    for index, entries in theirs["state"].items():
        assert sorted(mine["state"][index]) == sorted(entries), f"{what}: state keys of {index} differ"
        for key, value in entries.items():
            value = np.asarray(value)
            scale = max(float(np.abs(value).max()), 1e-30) if value.size else 1.0
            np.testing.assert_allclose(
                mine["state"][index][key],
                value,
                rtol=tolerance,
                atol=tolerance * scale,
                err_msg=f"{what}: state {index}/{key}",
            )


class StateHolder:
    """Lets `save_checkpoint` store an already-built optimizer state dict."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def state_dict(self) -> dict[str, Any]:
        return self.state


def save(path: Path, model: Any, optimizer_state: dict[str, Any]) -> None:
    from extensor.training.checkpoint import save_checkpoint

    save_checkpoint(path, model=model, optimizer=StateHolder(optimizer_state), save_rng=False)
