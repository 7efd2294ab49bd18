"""The distributed wrappers in one process (no MPI job): the plain optimizer's numbers; argument checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extensor import ExTensor, Tape
from extensor.distributed import DistributedDataParallel, SingleProcess
from extensor.distributed.loop import DataParallelLoop
from extensor.distributed.sharded import ShardedOptimizer, shard_bounds, state_bytes
from extensor.training import clip_grad_norm
from extensor.training.optimizers import LARS, SGD, Adam, AdamW, RMSprop

FACTORIES = {
    "SGD": lambda p: SGD(p, lr=0.1, momentum=0.9),
    "Adam": lambda p: Adam(p, lr=0.01, amsgrad=True),
    "AdamW": lambda p: AdamW(p, lr=0.01),
    "RMSprop": lambda p: RMSprop(p, lr=0.01, centered=True, momentum=0.3),
    "LARS": lambda p: LARS(p, lr=0.1, trust_coefficient=0.01, weight_decay=1e-3),
}
SHAPES = [(3, 4), (5,), (2, 2, 2), (1,)]


def make_parameters(dtype: Any = np.float64) -> list[ExTensor]:
    rng = np.random.default_rng(0)
    return [ExTensor(rng.standard_normal(shape).astype(dtype), requires_grad=True) for shape in SHAPES]


def set_gradients(parameters: list[ExTensor], step: int, absent: int | None = None) -> None:
    rng = np.random.default_rng(step)
    for index, parameter in enumerate(parameters):
        gradient = rng.standard_normal(parameter.shape).astype(parameter.dtype)
        parameter.grad = None if index == absent else gradient


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_one_rank_sharded_equals_the_plain_optimizer(name: str) -> None:
    plain_parameters, sharded_parameters = make_parameters(), make_parameters()
    plain = FACTORIES[name](plain_parameters)
    sharded = ShardedOptimizer(FACTORIES[name](sharded_parameters), SingleProcess())
    for step in range(6):
        absent = 1 if step % 3 == 2 else None  # some steps skip a parameter, as torch does
        set_gradients(plain_parameters, step, absent)
        set_gradients(sharded_parameters, step, absent)
        norms = (clip_grad_norm(plain_parameters, 1.5), sharded.clip_grad_norm(1.5))
        np.testing.assert_allclose(norms[0], norms[1], rtol=1e-14)
        plain.step()
        sharded.step()
    for mine, theirs in zip(sharded_parameters, plain_parameters, strict=True):
        np.testing.assert_allclose(mine.data, theirs.data, rtol=1e-13, atol=1e-15)
    state = sharded.state_dict()
    reference = plain.state_dict()
    assert state["param_groups"] == reference["param_groups"]
    for index, entries in reference["state"].items():
        for key, value in entries.items():
            np.testing.assert_allclose(state["state"][index][key], value, rtol=1e-13, atol=1e-15)
    assert state_bytes(sharded) == state_bytes(plain)
    assert state_bytes(sharded.optimizer) == 0  # the wrapped optimizer keeps no full copy

    restored = ShardedOptimizer(FACTORIES[name](make_parameters()), SingleProcess())
    restored.load_state_dict(reference)
    assert restored.state_dict()["state"].keys() == reference["state"].keys()


def test_wrapping_takes_over_existing_state() -> None:
    parameters = make_parameters()
    optimizer = Adam(parameters, lr=0.01)
    set_gradients(parameters, 0)
    optimizer.step()
    before = optimizer.state_dict()
    sharded = ShardedOptimizer(optimizer, SingleProcess())
    assert state_bytes(optimizer) == 0
    np.testing.assert_array_equal(sharded.state_dict()["state"][0]["exp_avg"], before["state"][0]["exp_avg"])


def test_a_parameter_appended_to_a_wrapped_group_is_refused() -> None:
    a, b = (ExTensor(np.ones(3), requires_grad=True) for _ in range(2))
    optimizer = SGD([a], lr=0.1)
    sharded = ShardedOptimizer(optimizer, SingleProcess())
    optimizer.param_groups[0]["params"].append(b)
    a.grad = np.ones(3)
    with pytest.raises(ValueError, match="add_param_group"):
        sharded.step()
    np.testing.assert_array_equal(a.data, np.ones(3))


@settings(max_examples=80, deadline=None)
@given(size=st.integers(0, 1000), ranks=st.integers(1, 64))
def test_shards_are_contiguous_and_balanced(size: int, ranks: int) -> None:
    bounds = shard_bounds(size, ranks)
    assert bounds[0] == 0 and bounds[-1] == size
    counts = np.diff(bounds)
    assert (counts >= 0).all() and counts.max() - counts.min() <= 1


def test_sharded_bad_arguments_change_nothing() -> None:
    parameters = make_parameters()
    with pytest.raises(TypeError, match="wraps an extensor Optimizer"):
        ShardedOptimizer(object(), SingleProcess())  # type: ignore[arg-type]
    sharded = ShardedOptimizer(SGD(parameters, lr=0.1), SingleProcess())
    with pytest.raises(RuntimeError, match="cannot add parameter groups after sharding"):
        sharded.add_param_group({"params": [ExTensor(np.zeros(2), requires_grad=True)]})
    set_gradients(parameters, 0)
    before = [p.grad.copy() for p in parameters]  # type: ignore[union-attr]
    for bad, error, match in [(-1.0, ValueError, "max_norm must be >= 0"), ("1", TypeError, "real number")]:
        with pytest.raises(error, match=match):
            sharded.clip_grad_norm(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="supports norm_type 2 and inf, got 1"):
        sharded.clip_grad_norm(1.0, norm_type=1)
    parameters[0].grad = np.full((3, 4), np.inf)
    with pytest.raises(RuntimeError, match="non-finite"):
        sharded.clip_grad_norm(1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="clip_value must be >= 0"):
        sharded.clip_grad_value(-0.5)
    for parameter, gradient in zip(parameters[1:], before[1:], strict=True):
        np.testing.assert_array_equal(parameter.grad, gradient)


@pytest.mark.parametrize("norm_type", [2.0, "inf"])
@pytest.mark.parametrize("values", [(1.0, np.nan), (np.nan, 1.0), (np.inf, 2.0), (2.0, -np.inf), (0.5, 3.0)])
def test_sharded_clip_of_non_finite_gradients_in_any_group_order(
    values: tuple[float, float], norm_type: Any
) -> None:
    """The norm and the clipped gradients are clip_grad_norm's wherever the NaN/inf sits."""
    plain = [ExTensor(np.ones(3), requires_grad=True) for _ in values]
    shardable = [ExTensor(np.ones(3), requires_grad=True) for _ in values]
    sharded = ShardedOptimizer(SGD([{"params": [p]} for p in shardable], lr=0.1), SingleProcess())
    for parameters in (plain, shardable):
        for parameter, value in zip(parameters, values, strict=True):
            parameter.grad = np.full(3, value)
    expected = clip_grad_norm(plain, 1.0, norm_type)
    np.testing.assert_array_equal(sharded.clip_grad_norm(1.0, norm_type), expected)
    sharded.step()
    for mine, theirs in zip(shardable, plain, strict=True):
        np.testing.assert_array_equal(mine.data, 1.0 - 0.1 * theirs.grad)  # type: ignore[operator]


class TinyModel:
    def __init__(self) -> None:
        self.weight = ExTensor(np.ones((3, 2)), requires_grad=True)

    def parameters(self) -> list[ExTensor]:
        return [self.weight]

    def forward(self, x: ExTensor) -> ExTensor:
        return x @ self.weight

    def describe(self) -> str:
        return "tiny"


def test_ddp_in_one_process_delegates_and_averages_nothing() -> None:
    model = TinyModel()
    ddp = DistributedDataParallel(model, SingleProcess())
    assert ddp.describe() == "tiny" and ddp.module is model
    tape = Tape()
    with tape:
        loss = ddp(ExTensor(np.ones((4, 3)))).sum()
    tape.backward(loss)
    gradient = model.weight.grad.copy()  # type: ignore[union-attr]
    ddp.reduce_gradients()
    np.testing.assert_array_equal(model.weight.grad, gradient)
    with pytest.raises(TypeError, match="expected a model with a parameters"):
        DistributedDataParallel(object(), SingleProcess())
    with pytest.raises(ValueError, match="chunk_bytes must be an integer of at least 8 bytes, got 4"):
        DistributedDataParallel(model, SingleProcess(), chunk_bytes=4)


def test_data_parallel_loop_checks() -> None:
    loop = DataParallelLoop(SingleProcess())
    assert loop.local_batch(7) == 7 and loop.is_root
    with pytest.raises(RuntimeError, match=r"call wrap\(model, optimizer\) before finish_gradients"):
        loop.finish_gradients()
    assert loop.all_sum([1.5, 2]) == [1.5, 2.0]
