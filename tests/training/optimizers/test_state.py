"""state, state_dict and load_state_dict: exact resumption, snapshots, validation before writing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from extensor.core.tensor import ExTensor
from extensor.training.optimizers import LARS, SGD, Adam, AdamW, Optimizer, RMSprop

CONFIGS: list[tuple[type, dict[str, Any]]] = [
    (SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (SGD, {"lr": 0.05}),
    (Adam, {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
    (AdamW, {"lr": 0.01}),
    (RMSprop, {"lr": 0.005, "momentum": 0.9, "centered": True}),
    (LARS, {"lr": 0.1, "weight_decay": 1e-3, "trust_clip": True}),
]


def absent(step: int, index: int) -> bool:
    return (index == 2 and step < 5) or (step + index) % 6 == 0


def make(
    kit: Any, cls: type, options: dict[str, Any], dtype: Any, values: list[np.ndarray] | None = None
) -> Any:
    twins = kit.Twins(dtype=dtype, seed=11, absent=absent)
    if values is not None:
        for tensor, value in zip(twins.ours, values, strict=True):
            tensor.data = value
    groups = kit.groups_of(twins.ours, [({"lr": options["lr"] / 2}, [0, 1]), ({}, [2, 3, 4])])
    return twins, cls(groups, **options)


def run(twins: Any, optimizer: Optimizer, steps: range) -> None:
    for step in steps:
        twins.feed(step)
        optimizer.step()
        if step == 7:  # a scheduler changed the learning rate before the checkpoint
            optimizer.param_groups[1]["lr"] *= 0.3


def flat_state(optimizer: Optimizer) -> list[np.ndarray]:
    """Every flat state array, and the step counts as far as the algorithm sees them (SGD: started or not)."""
    return [
        array
        for packs in optimizer._packs
        for pack in packs
        for array in (optimizer._run_key(pack.steps), *pack.state.values())
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    ("cls", "options"), CONFIGS, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(CONFIGS)]
)
def test_resume_into_fresh_objects_is_bit_identical(
    kit: Any, cls: type, options: dict[str, Any], dtype: Any
) -> None:
    straight_twins, straight = make(kit, cls, options, dtype)
    run(straight_twins, straight, range(40))

    first_twins, first = make(kit, cls, options, dtype)
    run(first_twins, first, range(20))
    saved = first.state_dict()
    values = [p.data.copy() for p in first_twins.ours]

    resumed_twins, resumed = make(kit, cls, options, dtype, values)  # fresh parameters, fresh optimizer
    resumed.load_state_dict(saved)
    for value in saved["state"].values():  # the optimizer took a copy: the caller's dict may change
        for array in value.values():
            array[...] = 123
    saved["param_groups"][0]["lr"] = 99.0
    run(resumed_twins, resumed, range(20, 40))

    for ours, reference in zip(resumed_twins.ours, straight_twins.ours, strict=True):
        np.testing.assert_array_equal(ours.data, reference.data)
    for ours, reference in zip(flat_state(resumed), flat_state(straight), strict=True):
        np.testing.assert_array_equal(ours, reference)
    assert resumed.param_groups[1]["lr"] == straight.param_groups[1]["lr"]


def test_state_dict_has_torch_layout_and_is_a_snapshot(kit: Any) -> None:
    twins = kit.Twins(seed=1, absent=lambda step, index: index == 4)
    ours = Adam(twins.ours, lr=0.01, amsgrad=True)
    twins.feed(0)
    ours.step()
    saved = ours.state_dict()
    assert sorted(saved) == ["param_groups", "state"]
    assert sorted(saved["state"]) == [0, 1, 2, 3]  # parameter 4 never had a gradient: no state, as torch
    assert list(saved["state"][0]) == ["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
    step = saved["state"][0]["step"]
    assert step.shape == () and step.dtype == np.float32 and step == 1
    assert saved["param_groups"][0]["params"] == [0, 1, 2, 3, 4]
    snapshot = copy.deepcopy(saved)
    twins.feed(1)
    ours.step()
    for index, state in snapshot["state"].items():
        for key, value in state.items():
            np.testing.assert_array_equal(saved["state"][index][key], value)


def test_state_views_are_live_like_torch(kit: Any) -> None:
    """Writing into optimizer.state[p] tensors changes the next step, in extensor as in torch."""
    twins = kit.Twins(seed=2)
    ours = Adam(twins.ours, lr=0.01)
    theirs = torch.optim.Adam(twins.theirs, lr=0.01, foreach=False)
    twins.feed(0)
    ours.step()
    theirs.step()
    p, q = twins.ours[0], twins.theirs[0]
    assert set(ours.state[p]) == {"step", "exp_avg", "exp_avg_sq"}
    assert p in ours.state and len(ours.state) == 5
    ours.state[p]["exp_avg"][...] = 0.5
    theirs.state[q]["exp_avg"].fill_(0.5)
    ours.state[p]["step"][...] = 9
    theirs.state[q]["step"].fill_(9)
    twins.feed(1)
    ours.step()
    theirs.step()
    twins.assert_params_close()
    assert float(ours.state[p]["step"]) == 10
    with pytest.raises(KeyError):
        ours.state[ExTensor(np.zeros(2))]


def test_load_torch_state_dict(kit: Any) -> None:
    """A torch.optim state dict (tensors, torch's extra group keys) loads and training continues in step."""
    twins = kit.Twins(seed=4, dtype=np.float32)
    theirs = torch.optim.AdamW(twins.theirs, lr=0.01, amsgrad=True, foreach=False)
    for step in range(10):
        twins.feed(step)
        theirs.step()
    for mine, their in zip(twins.ours, twins.theirs, strict=True):
        mine.data = their.detach().numpy()
    ours = AdamW(twins.ours, lr=0.5, amsgrad=True)
    ours.load_state_dict(theirs.state_dict())
    assert ours.param_groups[0]["lr"] == 0.01
    for step in range(10, 20):
        twins.feed(step)
        ours.step()
        theirs.step()
    twins.assert_params_close()


# ----------------------------------------------------------------------------- invalid loads
Mutation = Callable[[dict[str, Any], int], None]


def drop_group(saved: dict[str, Any], index: int) -> None:
    saved["param_groups"].pop()


def drop_param(saved: dict[str, Any], index: int) -> None:
    saved["param_groups"][1]["params"].pop()


def bad_shape(saved: dict[str, Any], index: int) -> None:
    saved["state"][index]["exp_avg"] = np.zeros((9, 9), dtype=np.float64)


def bad_dtype(saved: dict[str, Any], index: int) -> None:
    state = saved["state"][index]
    state["exp_avg_sq"] = state["exp_avg_sq"].astype(np.float32)


def unknown_key(saved: dict[str, Any], index: int) -> None:
    saved["state"][index]["velocity"] = np.zeros(1)


def missing_key(saved: dict[str, Any], index: int) -> None:
    del saved["state"][index]["exp_avg_sq"]


def negative_step(saved: dict[str, Any], index: int) -> None:
    saved["state"][index]["step"] = np.array(-1.0, dtype=np.float32)


def vector_step(saved: dict[str, Any], index: int) -> None:
    saved["state"][index]["step"] = np.ones(2, dtype=np.float32)


def bad_lr(saved: dict[str, Any], index: int) -> None:
    saved["param_groups"][1]["lr"] = -0.1


def bad_betas(saved: dict[str, Any], index: int) -> None:
    saved["param_groups"][0]["betas"] = (0.9, 1.5)


def stranger(saved: dict[str, Any], index: int) -> None:
    saved["state"][42] = copy.deepcopy(saved["state"][index])


def no_state(saved: dict[str, Any], index: int) -> None:
    del saved["state"]


def state_not_dict(saved: dict[str, Any], index: int) -> None:
    saved["state"][index] = [1, 2]


MUTATIONS: dict[str, tuple[Mutation, type[Exception], str]] = {
    "drop_group": (drop_group, ValueError, "parameter groups"),
    "drop_param": (drop_param, ValueError, "group 1 has 1 parameters, this optimizer.s group 1 has 2"),
    "bad_shape": (bad_shape, ValueError, "shape"),
    "bad_dtype": (bad_dtype, TypeError, "dtype float32"),
    "unknown_key": (unknown_key, ValueError, "unknown keys"),
    "missing_key": (missing_key, ValueError, "lacks"),
    "negative_step": (negative_step, ValueError, "step"),
    "vector_step": (vector_step, ValueError, "step"),
    "bad_lr": (bad_lr, ValueError, "Invalid learning rate: -0.1"),
    "bad_betas": (bad_betas, ValueError, "index 1: 1.5"),
    "stranger": (stranger, ValueError, "42"),
    "no_state": (no_state, ValueError, "'state'"),
    "state_not_dict": (state_not_dict, TypeError, "must be a dict"),
}


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(sorted(MUTATIONS)), index=st.integers(0, 4))
def test_invalid_load_leaves_the_optimizer_unchanged(kit: Any, name: str, index: int) -> None:
    mutate, error, message = MUTATIONS[name]
    twins = kit.Twins(seed=9, absent=lambda step, i: False)
    layout = [({"lr": 0.02}, [0, 1, 2]), ({}, [3, 4])]
    victim = Adam(kit.groups_of(twins.ours, layout), lr=0.01)
    reference_twins = kit.Twins(seed=9, absent=lambda step, i: False)
    reference = Adam(kit.groups_of(reference_twins.ours, layout), lr=0.01)
    for step in range(3):
        twins.feed(step)
        victim.step()
        reference_twins.feed(step)
        reference.step()
    before = victim.state_dict()
    bad = copy.deepcopy(victim.state_dict())
    mutate(bad, index)
    with pytest.raises(error, match=message):
        victim.load_state_dict(bad)
    after = victim.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for i, state in before["state"].items():
        for key, value in state.items():
            np.testing.assert_array_equal(after["state"][i][key], value)
    twins.feed(3)
    victim.step()
    reference_twins.feed(3)
    reference.step()
    for ours, theirs in zip(twins.ours, reference_twins.ours, strict=True):
        np.testing.assert_array_equal(ours.data, theirs.data)


def test_load_rejects_non_dicts_and_clears_state_of_parameters_without_saved_state(kit: Any) -> None:
    twins = kit.Twins(seed=2)
    ours = SGD(twins.ours, lr=0.1, momentum=0.9)
    with pytest.raises(TypeError, match="expects a dict"):
        ours.load_state_dict([1, 2])  # type: ignore[arg-type]
    empty = ours.state_dict()  # before any step: no state at all
    twins.feed(0)
    ours.step()
    assert len(ours.state) == 5
    ours.load_state_dict(empty)
    assert len(ours.state) == 0
    assert all(not pack.state["momentum_buffer"].any() for pack in ours._packs[0])
