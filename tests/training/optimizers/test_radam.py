"""RAdam against live torch.optim.RAdam: option grid, None gradients, rectification, state, bad inputs."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

from extensor.core.tensor import ExTensor
from extensor.training.optimizers.radam import RAdam

STEPS = 120

OPTIONS: list[dict[str, Any]] = [
    {},
    {"lr": 0.01, "weight_decay": 0.1},
    {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
    {"lr": 0.01, "maximize": True, "weight_decay": 0.02},
    {"lr": 0.02, "betas": (0.5, 0.9), "eps": 1e-3},
    {"lr": 0.02, "betas": (0.8, 0.6)},
    {"lr": 0.01, "betas": (0.0, 0.99), "decoupled_weight_decay": True, "maximize": True},
]


def pair(
    kit: Any, options: dict[str, Any], dtype: Any, seed: int = 7
) -> tuple[Any, RAdam, torch.optim.RAdam]:
    twins = kit.Twins(dtype=dtype, seed=seed, absent=kit.sometimes_absent())
    layout = [({"lr": options.get("lr", 1e-3) * 2}, [0, 1, 2]), ({}, [3, 4])]
    ours = RAdam(kit.groups_of(twins.ours, layout), **options)
    theirs = torch.optim.RAdam(kit.groups_of(twins.theirs, layout), **options, foreach=False)
    return twins, ours, theirs


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults"
)
def test_matches_torch(kit: Any, options: dict[str, Any], dtype: Any) -> None:
    twins, ours, theirs = pair(kit, options, dtype)
    for step in range(STEPS):
        twins.feed(step)
        ours.step()
        theirs.step()
        if step % 40 == 39:  # a scheduler: every group's lr halves
            for mine, their in zip(ours.param_groups, theirs.param_groups, strict=True):
                mine["lr"] *= 0.5
                their["lr"] *= 0.5
        if step % 30 == 0:
            twins.assert_params_close(f"step {step}")
    twins.assert_params_close("final")
    np.testing.assert_array_equal(twins.ours[4].data, twins.initial[4])  # never had a gradient
    kit.assert_state_matches_torch(ours, theirs)


def test_both_branches_of_the_rectification_are_taken() -> None:
    """ρ_t > 5 from step 6 with β2 = 0.999; never with β2 = 0.5 (ρ_∞ = 3): both match torch."""
    for beta2 in (0.999, 0.5, 0.9):
        ours = ExTensor(np.linspace(-1, 1, 7), requires_grad=True)
        theirs = torch.tensor(np.linspace(-1, 1, 7), requires_grad=True)
        mine = RAdam([ours], lr=0.1, betas=(0.9, beta2))
        reference = torch.optim.RAdam([theirs], lr=0.1, betas=(0.9, beta2), foreach=False)
        for step in range(10):
            g = np.cos(np.arange(7.0) + step)
            ours.grad, theirs.grad = g, torch.tensor(g)
            mine.step()
            reference.step()
            np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_resume_into_a_fresh_optimizer_is_bit_identical(kit: Any, dtype: Any) -> None:
    options = {"lr": 0.01, "weight_decay": 0.1}
    straight_twins, straight, _ = pair(kit, options, dtype, seed=3)
    first_twins, first, _ = pair(kit, options, dtype, seed=3)
    for step in range(20):
        for twins, optimizer in ((straight_twins, straight), (first_twins, first)):
            twins.feed(step)
            optimizer.step()
    saved = first.state_dict()
    resumed_twins, resumed, _ = pair(kit, options, dtype, seed=3)
    for tensor, source in zip(resumed_twins.ours, first_twins.ours, strict=True):
        tensor.data = source.data.copy()
    resumed.load_state_dict(saved)
    for value in saved["state"].values():  # a copy was taken
        for array in value.values():
            array[...] = 0.5
    for step in range(20, 40):
        for twins, optimizer in ((straight_twins, straight), (resumed_twins, resumed)):
            twins.feed(step)
            optimizer.step()
    for ours, reference in zip(resumed_twins.ours, straight_twins.ours, strict=True):
        np.testing.assert_array_equal(ours.data, reference.data)
    mine, theirs = resumed.state_dict()["state"], straight.state_dict()["state"]
    for index, state in theirs.items():
        for key, value in state.items():
            np.testing.assert_array_equal(mine[index][key], value)


def test_loads_torch_s_state_dict_and_continues_like_torch(kit: Any) -> None:
    twins, ours, theirs = pair(kit, {"lr": 0.01}, np.float64, seed=5)
    for step in range(15):
        twins.feed(step)
        theirs.step()
    for mine, their in zip(twins.ours, twins.theirs, strict=True):
        mine.data = their.detach().numpy().copy()
    ours.load_state_dict(theirs.state_dict())
    for step in range(15, 40):
        twins.feed(step)
        ours.step()
        theirs.step()
    twins.assert_params_close()
    kit.assert_state_matches_torch(ours, theirs)


@pytest.mark.parametrize(
    ("edit", "error", "match"),
    [
        (lambda s: s["state"][0].__setitem__("exp_avg_sq", np.ones(2)), ValueError, "shape"),
        (lambda s: s["state"][3].__setitem__("step", np.float32(np.nan)), ValueError, "finite"),
        (lambda s: s["state"][3].__setitem__("mu_product", np.float32(1)), ValueError, "unknown keys"),
        (lambda s: s["state"][3].pop("exp_avg"), ValueError, "lacks"),
        (lambda s: s["param_groups"][1].__setitem__("weight_decay", -1.0), ValueError, "weight_decay"),
    ],
)
def test_invalid_load_leaves_the_optimizer_unchanged(kit: Any, edit: Any, error: type, match: str) -> None:
    twins, ours, _ = pair(kit, {}, np.float64)
    for step in range(12):
        twins.feed(step)
        ours.step()
    before = ours.state_dict()
    broken = copy.deepcopy(before)
    broken["state"][0]["exp_avg"] = broken["state"][0]["exp_avg"] + 1  # a valid change before the bad one
    edit(broken)
    with pytest.raises(error, match=match):
        ours.load_state_dict(broken)
    after = ours.state_dict()
    for index, state in before["state"].items():
        for key, value in state.items():
            np.testing.assert_array_equal(after["state"][index][key], value)
    assert after["param_groups"] == before["param_groups"]


def test_non_finite_values_propagate_as_in_torch() -> None:
    values = np.array([1.0, -2.0, np.inf, -np.inf, 0.5, np.nan, 3.0, 1.5, 0.0, -0.0])
    grads = [
        np.array([np.inf, -np.inf, 1.0, 0.5, np.nan, 1.0, 0.25, -1.0, -0.0, -0.0]),
        np.array([1.0, 2.0, -1.0, 0.5, 1.0, 1.0, np.inf, 0.0, -0.0, 0.0]),
        np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, np.nan, -0.0, -0.0]),
    ]
    for options in ({}, {"weight_decay": 0.1}, {"weight_decay": 0.1, "decoupled_weight_decay": True}):
        ours = ExTensor(values.copy(), requires_grad=True)
        theirs = torch.tensor(values.copy(), requires_grad=True)
        mine, reference = RAdam([ours], **options), torch.optim.RAdam([theirs], **options, foreach=False)
        for g in grads:
            ours.grad, theirs.grad = g, torch.tensor(g)
            with np.errstate(invalid="ignore", over="ignore"):
                mine.step()
            reference.step()
            np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize(
    "options",
    [
        {"lr": -1.0},
        {"eps": -1e-8},
        {"betas": (1.0, 0.999)},
        {"betas": (0.9, -0.1)},
        {"weight_decay": -0.1},
        {"lr": float("nan")},
    ],
    ids=str,
)
def test_invalid_hyperparameters_raise_torch_s_message(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as expected:
        torch.optim.RAdam([torch.zeros(2, requires_grad=True)], **options)
    with pytest.raises(ValueError) as caught:
        RAdam([ExTensor(np.zeros(2), requires_grad=True)], **options)
    assert str(caught.value).startswith(str(expected.value))


@pytest.mark.parametrize(
    "options",
    [{"decoupled_weight_decay": 1}, {"maximize": "yes"}, {"betas": (0.9,)}, {"weight_decay": "0.1"}],
    ids=str,
)
def test_wrong_types_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match=next(iter(options))):
        RAdam([ExTensor(np.zeros(2), requires_grad=True)], **options)


def test_signature_follows_torch() -> None:
    """Positional order and defaults as torch 2.13 (decoupled_weight_decay is positional there)."""
    p = ExTensor(np.zeros(2), requires_grad=True)
    group = RAdam([p], 0.1, (0.8, 0.99), 1e-6, 0.01, True).param_groups[0]
    assert (group["lr"], group["betas"], group["eps"]) == (0.1, (0.8, 0.99), 1e-6)
    assert group["weight_decay"] == 0.01
    assert group["decoupled_weight_decay"] is True
    defaults = RAdam([ExTensor(np.zeros(2), requires_grad=True)]).defaults
    expected = torch.optim.RAdam([torch.zeros(2, requires_grad=True)]).defaults
    assert {k: v for k, v in expected.items() if k in defaults} == defaults
