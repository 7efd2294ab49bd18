"""Rprop against live torch.optim.Rprop: options, None gradients, lr used only at init, state, validation."""

from __future__ import annotations

import copy
import inspect
import math
from typing import Any

import numpy as np
import pytest
import torch

from extensor.core.tensor import ExTensor
from extensor.training.optimizers.rprop import Rprop

STEPS = 120

OPTIONS: list[dict[str, Any]] = [
    {},
    {"lr": 0.05, "etas": (0.3, 1.7)},  # 0.3 is not a float32: η− is compared in the parameters' dtype
    {"lr": 0.02, "step_sizes": (1e-3, 0.05), "maximize": True},
    {"lr": 0.1, "etas": (0.9, 1.05), "step_sizes": (0.0, math.inf)},
    {"lr": 0.01, "step_sizes": (0.5, 1e-3)},  # crossed bounds: torch's clamp gives the upper one
]


def run_parity(kit: Any, options: dict[str, Any], dtype: Any) -> None:
    twins = kit.Twins(dtype=dtype, seed=7, absent=kit.sometimes_absent(45))
    layout = [({"lr": options.get("lr", 1e-2) * 2}, [0, 1, 2]), ({}, [3, 4])]
    ours = Rprop(kit.groups_of(twins.ours, layout), **options)
    theirs = torch.optim.Rprop(kit.groups_of(twins.theirs, layout), **options, foreach=False)
    for step in range(STEPS):
        twins.feed(step)
        ours.step()
        theirs.step()
        if step % 40 == 39:  # a scheduler: only parameters not yet stepped see it
            for mine, their in zip(ours.param_groups, theirs.param_groups, strict=True):
                mine["lr"] *= 0.5
                their["lr"] *= 0.5
        if step % 30 == 0:
            twins.assert_params_close(f"step {step}")
    twins.assert_params_close("final")
    np.testing.assert_array_equal(twins.ours[4].data, twins.initial[4])
    kit.assert_state_matches_torch(ours, theirs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults"
)
def test_matches_torch(kit: Any, options: dict[str, Any], dtype: Any) -> None:
    run_parity(kit, options, dtype)


def test_lr_only_initialises_the_step_size(kit: Any) -> None:
    """A later lr change leaves a stepped parameter alone; one first stepped afterwards starts from it."""
    twins = kit.Twins(seed=3, shapes=((5,), (4,)), absent=lambda step, index: index == 1 and step < 3)
    ours = Rprop(twins.ours, lr=0.1)
    alone = kit.Twins(seed=3, shapes=((5,),))  # the same first parameter and gradients, lr never changed
    reference = Rprop(alone.ours, lr=0.1)
    for step in range(6):
        if step == 1:
            ours.param_groups[0]["lr"] = 7.0
        twins.feed(step)
        ours.step()
        alone.feed(step)
        reference.step()
        if step == 3:  # parameter 1's first step: Δ = lr at that time (f = 1 without a previous gradient)
            np.testing.assert_array_equal(ours.state[twins.ours[1]]["step_size"], np.full(4, 7.0))
    np.testing.assert_array_equal(twins.ours[0].data, alone.ours[0].data)
    np.testing.assert_array_equal(
        ours.state[twins.ours[0]]["step_size"], reference.state[alone.ours[0]]["step_size"]
    )


@pytest.mark.parametrize("options", [{}, {"step_sizes": (0.0, math.inf)}, {"maximize": True}])
def test_infinities_and_nans_propagate_as_in_torch(options: dict[str, Any]) -> None:
    values = np.array([1.0, -2.0, np.inf, -np.inf, 0.5, np.nan, 3.0, 1.5, 0.0, -0.0])
    grads = [
        np.array([np.inf, -np.inf, 1.0, 0.5, np.nan, 1.0, 0.25, -1.0, -0.0, -0.0]),
        np.array([1.0, 2.0, -1.0, 0.5, 1.0, 1.0, np.inf, 0.0, -0.0, 0.0]),
        np.array([-0.5, 0.5, 0.5, np.nan, 0.5, 0.5, -0.5, np.nan, -0.0, -1.0]),
        np.array([0.5, 0.5, 0.5, 1.0, 0.5, 0.5, 0.5, 1.0, 1.0, -1.0]),
    ]
    ours = ExTensor(values.copy(), requires_grad=True)
    theirs = torch.tensor(values.copy(), requires_grad=True)
    mine = Rprop([ours], lr=0.1, **options)
    reference = torch.optim.Rprop([theirs], lr=0.1, foreach=False, **options)
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
        for key in ("prev", "step_size"):
            np.testing.assert_allclose(mine.state[ours][key], reference.state[theirs][key], equal_nan=True)


def test_zero_size_tensors_and_a_large_buffer_match_torch(kit: Any) -> None:
    shapes = ((0,), (3, 2), (0, 4), (1 << 20,), (0,))  # the large one runs the parallel kernel
    twins = kit.Twins(
        shapes=shapes, dtype=np.float32, seed=2, absent=lambda step, index: (step + index) % 3 == 0
    )
    ours = Rprop(twins.ours, lr=0.05)
    theirs = torch.optim.Rprop(twins.theirs, lr=0.05, foreach=False)
    for step in range(8):
        twins.feed(step)
        ours.step()
        theirs.step()
    twins.assert_params_close()
    kit.assert_state_matches_torch(ours, theirs)


# ----------------------------------------------------------------------------- state dicts
def make(kit: Any, dtype: Any, values: list[np.ndarray] | None = None) -> tuple[Any, Rprop]:
    twins = kit.Twins(
        dtype=dtype, seed=11, absent=lambda step, index: (index == 2 and step < 5) or (step + index) % 6 == 0
    )
    if values is not None:
        for tensor, value in zip(twins.ours, values, strict=True):
            tensor.data = value
    groups = kit.groups_of(twins.ours, [({"lr": 0.02}, [0, 1]), ({}, [2, 3, 4])])
    return twins, Rprop(groups, lr=0.05, etas=(0.4, 1.3), maximize=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_resume_into_fresh_objects_is_bit_identical(kit: Any, dtype: Any) -> None:
    straight_twins, straight = make(kit, dtype)
    first_twins, first = make(kit, dtype)
    for step in range(20):
        for twins, optimizer in ((straight_twins, straight), (first_twins, first)):
            twins.feed(step)
            optimizer.step()
    saved = first.state_dict()
    assert list(saved["state"][0]) == ["step", "prev", "step_size"]
    resumed_twins, resumed = make(kit, dtype, [p.data.copy() for p in first_twins.ours])
    resumed.load_state_dict(saved)
    for state in saved["state"].values():
        for array in state.values():
            array[...] = 123
    for step in range(20, 40):
        for twins, optimizer in ((straight_twins, straight), (resumed_twins, resumed)):
            twins.feed(step)
            optimizer.step()
    for ours, reference in zip(resumed_twins.ours, straight_twins.ours, strict=True):
        np.testing.assert_array_equal(ours.data, reference.data)
    after, expected = resumed.state_dict(), straight.state_dict()
    for index, state in expected["state"].items():
        for key, value in state.items():
            np.testing.assert_array_equal(after["state"][index][key], value)


def test_load_torch_state_dict_and_continue(kit: Any) -> None:
    twins = kit.Twins(seed=4, dtype=np.float32)
    theirs = torch.optim.Rprop(twins.theirs, lr=0.03, etas=(0.25, 1.5), foreach=False)
    for step in range(10):
        twins.feed(step)
        theirs.step()
    for mine, their in zip(twins.ours, twins.theirs, strict=True):
        mine.data = their.detach().numpy()
    ours = Rprop(twins.ours, lr=0.5)
    ours.load_state_dict(theirs.state_dict())
    assert tuple(ours.param_groups[0]["etas"]) == (0.25, 1.5)
    for step in range(10, 25):
        twins.feed(step)
        ours.step()
        theirs.step()
    twins.assert_params_close()
    kit.assert_state_matches_torch(ours, theirs)


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (lambda saved: saved["state"][0].pop("step_size"), ValueError, "lacks"),
        (lambda saved: saved["state"][1].update(prev=np.zeros(3)), ValueError, "shape"),
        (lambda saved: saved["state"][2].update(velocity=np.zeros(1)), ValueError, "unknown keys"),
        (
            lambda saved: saved["param_groups"][0].update(etas=(1.5, 2.0)),
            ValueError,
            "Invalid eta values: 1.5, 2.0",
        ),
        (
            lambda saved: saved["param_groups"][0].update(step_sizes=(1e-6,)),
            TypeError,
            "step_sizes must be a pair",
        ),
    ],
)
def test_invalid_load_leaves_the_optimizer_unchanged(
    kit: Any, mutate: Any, error: type, message: str
) -> None:
    twins, victim = make(kit, np.float64)
    for step in range(6):
        twins.feed(step)
        victim.step()
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


# ----------------------------------------------------------------------------- constructor
def test_signature_is_torchs() -> None:
    parameters = list(inspect.signature(Rprop).parameters.values())
    assert [(p.name, p.default, p.kind.name) for p in parameters[1:]] == [
        ("lr", 1e-2, "POSITIONAL_OR_KEYWORD"),
        ("etas", (0.5, 1.2), "POSITIONAL_OR_KEYWORD"),
        ("step_sizes", (1e-6, 50), "POSITIONAL_OR_KEYWORD"),
        ("maximize", False, "KEYWORD_ONLY"),
    ]
    optimizer = Rprop([ExTensor(np.ones(2), requires_grad=True)])
    reference = torch.optim.Rprop([torch.ones(2, requires_grad=True)])
    for key, value in optimizer.defaults.items():
        assert reference.defaults[key] == value


VALUES = [-1.0, -0.0, 0.0, 1e-12, 0.5, 1.0, 1.2, 2.0, math.inf, -math.inf, math.nan]


@pytest.mark.parametrize("which", ["lr", "eta0", "eta1"])
def test_invalid_hyperparameters_raise_exactly_when_torch_does(which: str) -> None:
    for value in VALUES:
        options: dict[str, Any] = {
            "lr": {"lr": value},
            "eta0": {"etas": (value, 1.2)},
            "eta1": {"etas": (0.5, value)},
        }[which]
        try:
            torch.optim.Rprop([torch.zeros(2, requires_grad=True)], **options)
            torch_error = None
        except ValueError as error:
            torch_error = str(error)
        if torch_error is None:
            Rprop([ExTensor(np.ones(2), requires_grad=True)], **options)
        else:
            with pytest.raises(ValueError) as caught:
                Rprop([ExTensor(np.ones(2), requires_grad=True)], **options)
            assert str(caught.value).startswith(torch_error), (value, str(caught.value), torch_error)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"lr": "0.1"}, TypeError, "lr must be a real number"),
        ({"etas": (0.5,)}, TypeError, "etas must be a pair"),
        ({"etas": (0.5, "1.2")}, TypeError, r"etas\[1\] must be a real number"),
        ({"step_sizes": 1e-6}, TypeError, "step_sizes must be a pair"),
        ({"step_sizes": (None, 50)}, TypeError, r"step_sizes\[0\] must be a real number"),
        ({"maximize": 1}, TypeError, "maximize must be a bool"),
        ({"etas": (0.0, 1.2)}, ValueError, "Invalid eta values: 0.0, 1.2"),
        ({"lr": -0.5}, ValueError, "Invalid learning rate: -0.5"),
    ],
)
def test_bad_inputs_are_refused(options: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        Rprop([ExTensor(np.ones(2), requires_grad=True)], **options)
