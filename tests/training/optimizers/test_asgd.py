"""ASGD against live torch.optim.ASGD: options, None gradients, lr changes, per-tensor η and μ, state."""

from __future__ import annotations

import copy
import inspect
import math
from typing import Any

import numpy as np
import pytest
import torch

from extensor.core.tensor import ExTensor
from extensor.training.optimizers.asgd import ASGD

STEPS = 120

OPTIONS: list[dict[str, Any]] = [
    {},  # t0 = 1e6: μ stays 1, the average copies the parameter
    {"lr": 0.02, "lambd": 0.01, "t0": 5},
    {"lr": 0.01, "lambd": 0.1, "alpha": 0.5, "t0": 0, "weight_decay": 0.1, "maximize": True},
    {"lr": 0.05, "lambd": 0.0, "alpha": 1.0, "t0": 30, "weight_decay": 0.02},
]


def assert_state_matches(kit: Any, ours: ASGD, theirs: torch.optim.ASGD) -> None:
    kit.assert_state_matches_torch(ours, theirs)
    for index, state in ours.state_dict()["state"].items():
        for key in ("eta", "mu"):
            assert state[key].shape == () and state[key].dtype == np.float32, (index, key)


def run_parity(kit: Any, options: dict[str, Any], dtype: Any) -> None:
    twins = kit.Twins(dtype=dtype, seed=7, absent=kit.sometimes_absent(45))
    layout = [({"lr": options.get("lr", 1e-2) * 2}, [0, 1, 2]), ({}, [3, 4])]
    ours = ASGD(kit.groups_of(twins.ours, layout), **options)
    theirs = torch.optim.ASGD(kit.groups_of(twins.theirs, layout), **options, foreach=False)
    for step in range(STEPS):
        twins.feed(step)
        ours.step()
        theirs.step()
        if step % 40 == 39:  # a scheduler: every group's lr decays
            for mine, their in zip(ours.param_groups, theirs.param_groups, strict=True):
                mine["lr"] *= 0.5
                their["lr"] *= 0.5
        if step % 30 == 0:
            twins.assert_params_close(f"step {step}")
    twins.assert_params_close("final")
    np.testing.assert_array_equal(twins.ours[4].data, twins.initial[4])
    assert_state_matches(kit, ours, theirs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults"
)
def test_matches_torch(kit: Any, options: dict[str, Any], dtype: Any) -> None:
    run_parity(kit, options, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_equal_steps_with_different_eta_and_zero_size_tensors(kit: Any, dtype: Any) -> None:
    """Tensors sharing a step count but not η (the lr changed between their steps) share a kernel call;
    empty tensors anywhere in a run; a large tensor runs the parallel kernel."""
    shapes = ((0,), (3, 2), (0, 4), (5,), (0,), (4,), (1 << 20,))

    def gaps(step: int, index: int) -> bool:
        return (index == 1 and step == 0) or (index == 3 and step == 1) or (index == 5 and step in (2, 3))

    twins = kit.Twins(shapes=shapes, dtype=dtype, seed=2, absent=gaps)
    ours = ASGD(twins.ours, lr=0.05, lambd=0.5, t0=2)
    theirs = torch.optim.ASGD(twins.theirs, lr=0.05, lambd=0.5, t0=2, foreach=False)
    for step in range(8):
        twins.feed(step)
        ours.step()
        theirs.step()
        ours.param_groups[0]["lr"] *= 0.7
        theirs.param_groups[0]["lr"] *= 0.7
    twins.assert_params_close()
    assert len({float(ours.state[p]["eta"]) for p in twins.ours[1:4]}) > 1
    assert_state_matches(kit, ours, theirs)


@pytest.mark.parametrize(
    "options", [{}, {"weight_decay": 0.1}, {"t0": 0, "maximize": True}, {"lambd": 0.0, "t0": 1}]
)
def test_infinities_and_nans_propagate_as_in_torch(options: dict[str, Any]) -> None:
    values = np.array([1.0, -2.0, np.inf, -np.inf, 0.5, np.nan, 3.0, 1.5, 0.0, -0.0])
    grads = [
        np.array([np.inf, -np.inf, 1.0, 0.5, np.nan, 1.0, 0.25, -1.0, -0.0, -0.0]),
        np.array([1.0, 2.0, -1.0, 0.5, 1.0, 1.0, np.inf, 0.0, -0.0, 0.0]),
        np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, np.nan, -0.0, -0.0]),
        np.array([0.5, -0.5, 0.5, 1.0, 0.5, 0.5, 0.5, 1.0, 0.0, -0.0]),
    ]
    ours = ExTensor(values.copy(), requires_grad=True)
    theirs = torch.tensor(values.copy(), requires_grad=True)
    mine = ASGD([ours], lr=0.1, **options)
    reference = torch.optim.ASGD([theirs], lr=0.1, foreach=False, **options)
    for g in grads:
        ours.grad = g
        theirs.grad = torch.tensor(g)
        with np.errstate(invalid="ignore", over="ignore"):
            mine.step()
        reference.step()
        expected = theirs.detach().numpy()
        np.testing.assert_allclose(ours.data, expected, rtol=1e-12, equal_nan=True)
        zeros = expected == 0
        np.testing.assert_array_equal(np.signbit(ours.data[zeros]), np.signbit(expected[zeros]))
        np.testing.assert_allclose(mine.state[ours]["ax"], reference.state[theirs]["ax"], equal_nan=True)


# ----------------------------------------------------------------------------- state
def test_state_views_are_live_like_torch(kit: Any) -> None:
    """Writing into state[p]["eta"] / ["mu"] changes the next step, in extensor as in torch."""
    twins = kit.Twins(seed=2)
    ours = ASGD(twins.ours, lr=0.01, t0=1e6)
    theirs = torch.optim.ASGD(twins.theirs, lr=0.01, t0=1e6, foreach=False)
    twins.feed(0)
    ours.step()
    theirs.step()
    p, q = twins.ours[1], twins.theirs[1]
    assert list(ours.state[p]) == ["step", "eta", "mu", "ax"]
    ours.state[p]["eta"][...] = 0.3
    theirs.state[q]["eta"].fill_(0.3)
    ours.state[p]["mu"][...] = 0.25
    theirs.state[q]["mu"].fill_(0.25)
    twins.feed(1)
    ours.step()
    theirs.step()
    twins.assert_params_close()
    assert_state_matches(kit, ours, theirs)


def make(kit: Any, dtype: Any, values: list[np.ndarray] | None = None) -> tuple[Any, ASGD]:
    twins = kit.Twins(
        dtype=dtype, seed=11, absent=lambda step, index: (index == 2 and step < 5) or (step + index) % 6 == 0
    )
    if values is not None:
        for tensor, value in zip(twins.ours, values, strict=True):
            tensor.data = value
    groups = kit.groups_of(twins.ours, [({"lr": 0.02}, [0, 1]), ({}, [2, 3, 4])])
    return twins, ASGD(groups, lr=0.05, lambd=0.05, t0=8, weight_decay=0.01)


def run(twins: Any, optimizer: ASGD, steps: range) -> None:
    for step in steps:
        twins.feed(step)
        optimizer.step()
        optimizer.param_groups[step % 2]["lr"] *= 0.9  # η depends on the lr of each parameter's last step


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_resume_into_fresh_objects_is_bit_identical(kit: Any, dtype: Any) -> None:
    straight_twins, straight = make(kit, dtype)
    run(straight_twins, straight, range(40))
    first_twins, first = make(kit, dtype)
    run(first_twins, first, range(20))
    saved = first.state_dict()
    assert list(saved["state"][0]) == ["step", "eta", "mu", "ax"]
    resumed_twins, resumed = make(kit, dtype, [p.data.copy() for p in first_twins.ours])
    resumed.load_state_dict(saved)
    for state in saved["state"].values():  # the optimizer took copies
        for array in state.values():
            array[...] = 0.5
    run(resumed_twins, resumed, range(20, 40))
    for ours, reference in zip(resumed_twins.ours, straight_twins.ours, strict=True):
        np.testing.assert_array_equal(ours.data, reference.data)
    after, expected = resumed.state_dict(), straight.state_dict()
    assert sorted(after["state"]) == sorted(expected["state"])
    for index, state in expected["state"].items():
        assert list(after["state"][index]) == list(state)
        for key, value in state.items():
            np.testing.assert_array_equal(after["state"][index][key], value)


def test_load_torch_state_dict_and_continue(kit: Any) -> None:
    twins = kit.Twins(seed=4, dtype=np.float32)
    theirs = torch.optim.ASGD(twins.theirs, lr=0.03, lambd=0.2, t0=3, foreach=False)
    for step in range(10):
        twins.feed(step)
        theirs.step()
        theirs.param_groups[0]["lr"] *= 0.8
    for mine, their in zip(twins.ours, twins.theirs, strict=True):
        mine.data = their.detach().numpy()
    ours = ASGD(twins.ours, lr=0.5)
    ours.load_state_dict(theirs.state_dict())
    assert ours.param_groups[0]["t0"] == 3
    for step in range(10, 25):
        twins.feed(step)
        ours.step()
        theirs.step()
    twins.assert_params_close()
    assert_state_matches(kit, ours, theirs)


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (lambda saved: saved["state"][0].pop("eta"), ValueError, r"lacks \['eta'\]"),
        (lambda saved: saved["state"][0].pop("mu"), ValueError, r"lacks \['mu'\]"),
        (lambda saved: saved["state"][1].update(eta=np.ones(2, np.float32)), ValueError, "'eta' must be one"),
        (lambda saved: saved["state"][1].update(mu="one"), ValueError, "'mu' must be one real number"),
        (lambda saved: saved["state"][1].update(mu=np.array(True)), ValueError, "'mu' must be one"),
        (lambda saved: saved["state"][3].pop("ax"), ValueError, "lacks"),
        (lambda saved: saved["state"][3].update(ax=np.zeros(2)), ValueError, "shape"),
        (lambda saved: saved["state"][0].update(velocity=np.zeros(1)), ValueError, "unknown keys"),
        (lambda saved: saved["state"].update({1: {"eta": 1.0, "mu": 1.0}}), ValueError, "lacks"),
        (lambda saved: saved["state"][3].update(step=np.float32(-1)), ValueError, "step"),
        (lambda saved: saved["param_groups"][1].update(weight_decay=-1.0), ValueError, "weight_decay value"),
    ],
)
def test_invalid_load_leaves_the_optimizer_unchanged(
    kit: Any, mutate: Any, error: type, message: str
) -> None:
    twins, victim = make(kit, np.float64)
    run(twins, victim, range(12))
    reference_twins, reference = make(kit, np.float64)
    run(reference_twins, reference, range(12))
    before = victim.state_dict()
    bad = copy.deepcopy(before)
    mutate(bad)
    with pytest.raises(error, match=message):
        victim.load_state_dict(bad)
    after = victim.state_dict()
    assert after["param_groups"] == before["param_groups"]
    assert sorted(after["state"]) == sorted(before["state"])
    for index, state in before["state"].items():
        for key, value in state.items():
            np.testing.assert_array_equal(after["state"][index][key], value)
    run(twins, victim, range(12, 14))
    run(reference_twins, reference, range(12, 14))
    for ours, theirs in zip(twins.ours, reference_twins.ours, strict=True):
        np.testing.assert_array_equal(ours.data, theirs.data)


def test_load_clears_parameters_without_saved_state(kit: Any) -> None:
    twins, optimizer = make(kit, np.float64)
    run(twins, optimizer, range(6))
    saved = optimizer.state_dict()
    del saved["state"][0]
    optimizer.load_state_dict(saved)
    assert twins.ours[0] not in optimizer.state
    twins.feed(7)  # parameter 0 has a gradient at step 7
    optimizer.step()  # a fresh start for parameter 0: η = lr, μ = 1, ā = θ
    state = optimizer.state[twins.ours[0]]
    assert float(state["step"]) == 1
    np.testing.assert_array_equal(state["ax"], twins.ours[0].data)


# ----------------------------------------------------------------------------- constructor
def test_signature_is_torchs() -> None:
    parameters = list(inspect.signature(ASGD).parameters.values())
    assert [(p.name, p.default, p.kind.name) for p in parameters[1:]] == [
        ("lr", 1e-2, "POSITIONAL_OR_KEYWORD"),
        ("lambd", 1e-4, "POSITIONAL_OR_KEYWORD"),
        ("alpha", 0.75, "POSITIONAL_OR_KEYWORD"),
        ("t0", 1e6, "POSITIONAL_OR_KEYWORD"),
        ("weight_decay", 0, "POSITIONAL_OR_KEYWORD"),
        ("maximize", False, "KEYWORD_ONLY"),
    ]
    optimizer = ASGD([ExTensor(np.ones(2), requires_grad=True)])
    reference = torch.optim.ASGD([torch.ones(2, requires_grad=True)])
    for key, value in optimizer.defaults.items():
        assert reference.defaults[key] == value


VALUES = [-1.0, -1e-12, -0.0, 0.0, 1e-12, 0.5, 1.0, 2.0, math.inf, -math.inf, math.nan]


@pytest.mark.parametrize("name", ["lr", "weight_decay", "lambd", "alpha", "t0"])
def test_invalid_hyperparameters_raise_exactly_when_torch_does(name: str) -> None:
    for value in VALUES:
        try:
            torch.optim.ASGD([torch.zeros(2, requires_grad=True)], **{name: value})
            torch_error = None
        except ValueError as error:
            torch_error = str(error)
        if torch_error is None:
            ASGD([ExTensor(np.ones(2), requires_grad=True)], **{name: value})
        else:
            with pytest.raises(ValueError) as caught:
                ASGD([ExTensor(np.ones(2), requires_grad=True)], **{name: value})
            assert str(caught.value).startswith(torch_error), (value, str(caught.value), torch_error)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"lr": "0.1"}, TypeError, "lr must be a real number"),
        ({"lambd": None}, TypeError, "lambd must be a real number"),
        ({"alpha": "0.75"}, TypeError, "alpha must be a real number"),
        ({"t0": True}, TypeError, "t0 must be a real number"),
        ({"maximize": 0}, TypeError, "maximize must be a bool"),
        ({"lr": -0.5}, ValueError, "Invalid learning rate: -0.5"),
        ({"weight_decay": -1e-3}, ValueError, "Invalid weight_decay value: -0.001"),
    ],
)
def test_bad_inputs_are_refused(options: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        ASGD([ExTensor(np.ones(2), requires_grad=True)], **options)
