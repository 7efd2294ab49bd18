"""Adadelta against live torch.optim.Adadelta: options, None gradients, non-finite values, state, checks."""

from __future__ import annotations

import copy
import inspect
import math
from typing import Any

import numpy as np
import pytest
import torch

from extensor.core.tensor import ExTensor
from extensor.training.optimizers.adadelta import Adadelta

STEPS = 120

OPTIONS: list[dict[str, Any]] = [
    {},
    {"lr": 0.5, "weight_decay": 0.1},
    {"lr": 2.0, "rho": 0.5, "eps": 1e-3, "maximize": True},
    {"lr": 0.3, "rho": 0.0, "weight_decay": 0.01, "maximize": True},
    {"lr": 1.0, "rho": 1.0, "eps": 1e-4},  # ρ = 1: the averages never move, Δ = g
    {"lr": 1.0, "rho": 0.99, "eps": 0.0},
]


def run_parity(kit: Any, options: dict[str, Any], dtype: Any) -> None:
    twins = kit.Twins(dtype=dtype, seed=7, absent=kit.sometimes_absent())
    layout = [({"lr": options.get("lr", 1.0) * 3}, [0, 1, 2]), ({}, [3, 4])]
    ours = Adadelta(kit.groups_of(twins.ours, layout), **options)
    theirs = torch.optim.Adadelta(kit.groups_of(twins.theirs, layout), **options, foreach=False)
    for step in range(STEPS):
        twins.feed(step)
        ours.step()
        theirs.step()
        if step % 40 == 39:  # a scheduler
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


@pytest.mark.parametrize("options", [{}, {"weight_decay": 0.5}, {"maximize": True, "eps": 0.0, "rho": 0.5}])
def test_infinities_and_nans_propagate_as_in_torch(options: dict[str, Any]) -> None:
    values = np.array([1.0, -2.0, np.inf, -np.inf, 0.5, np.nan, 3.0, 1.5, 0.0, -0.0])
    grads = [
        np.array([np.inf, -np.inf, 1.0, 0.5, np.nan, 1.0, 0.25, -1.0, -0.0, 0.0]),
        np.array([1.0, 2.0, -1.0, 0.5, 1.0, 1.0, np.inf, 0.0, -0.0, 0.0]),
        np.array([-0.5, 0.5, 0.5, np.nan, 0.5, 0.5, -0.5, np.nan, -0.0, -1.0]),
        np.array([0.5, 0.5, 0.5, 1.0, 0.5, 0.5, 0.5, 1.0, 1.0, -1.0]),
    ]
    ours = ExTensor(values.copy(), requires_grad=True)
    theirs = torch.tensor(values.copy(), requires_grad=True)
    mine = Adadelta([ours], lr=0.1, **options)
    reference = torch.optim.Adadelta([theirs], lr=0.1, foreach=False, **options)
    for g in grads:
        ours.grad = g
        theirs.grad = torch.tensor(g)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            mine.step()
        reference.step()
        np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12, equal_nan=True)
        for key in ("square_avg", "acc_delta"):
            np.testing.assert_allclose(mine.state[ours][key], reference.state[theirs][key], equal_nan=True)


def test_zero_size_tensors_and_a_large_buffer_match_torch(kit: Any) -> None:
    shapes = ((0,), (3, 2), (0, 4), (1 << 18,), (0,))  # the large one runs the parallel kernel
    twins = kit.Twins(
        shapes=shapes, dtype=np.float32, seed=2, absent=lambda step, index: (step + index) % 3 == 0
    )
    ours = Adadelta(twins.ours, lr=0.5, weight_decay=0.1)
    theirs = torch.optim.Adadelta(twins.theirs, lr=0.5, weight_decay=0.1, foreach=False)
    for step in range(6):
        twins.feed(step)
        ours.step()
        theirs.step()
    twins.assert_params_close()
    kit.assert_state_matches_torch(ours, theirs)


# ----------------------------------------------------------------------------- state dicts
def make(kit: Any, dtype: Any, values: list[np.ndarray] | None = None) -> tuple[Any, Adadelta]:
    twins = kit.Twins(
        dtype=dtype, seed=11, absent=lambda step, index: (index == 2 and step < 5) or (step + index) % 6 == 0
    )
    if values is not None:
        for tensor, value in zip(twins.ours, values, strict=True):
            tensor.data = value
    groups = kit.groups_of(twins.ours, [({"lr": 0.5}, [0, 1]), ({}, [2, 3, 4])])
    return twins, Adadelta(groups, lr=2.0, rho=0.8, weight_decay=0.01, maximize=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_resume_into_fresh_objects_is_bit_identical(kit: Any, dtype: Any) -> None:
    straight_twins, straight = make(kit, dtype)
    first_twins, first = make(kit, dtype)
    for step in range(20):
        for twins, optimizer in ((straight_twins, straight), (first_twins, first)):
            twins.feed(step)
            optimizer.step()
    saved = first.state_dict()
    assert list(saved["state"][0]) == ["step", "square_avg", "acc_delta"]
    resumed_twins, resumed = make(kit, dtype, [p.data.copy() for p in first_twins.ours])
    resumed.load_state_dict(saved)
    for state in saved["state"].values():  # the loaded state is a copy
        for array in state.values():
            array[...] = 123
    for step in range(20, 40):
        for twins, optimizer in ((straight_twins, straight), (resumed_twins, resumed)):
            twins.feed(step)
            optimizer.step()
    for ours, reference in zip(resumed_twins.ours, straight_twins.ours, strict=True):
        np.testing.assert_array_equal(ours.data, reference.data)
    after, expected = resumed.state_dict(), straight.state_dict()
    assert sorted(after["state"]) == sorted(expected["state"])
    for index, state in expected["state"].items():
        for key, value in state.items():
            np.testing.assert_array_equal(after["state"][index][key], value)


def test_load_torch_state_dict_and_continue(kit: Any) -> None:
    twins = kit.Twins(seed=4, dtype=np.float32)
    theirs = torch.optim.Adadelta(twins.theirs, lr=0.7, rho=0.6, foreach=False)
    for step in range(10):
        twins.feed(step)
        theirs.step()
    for mine, their in zip(twins.ours, twins.theirs, strict=True):
        mine.data = their.detach().numpy()
    ours = Adadelta(twins.ours, lr=0.5)
    ours.load_state_dict(theirs.state_dict())
    assert ours.param_groups[0]["rho"] == 0.6
    for step in range(10, 25):
        twins.feed(step)
        ours.step()
        theirs.step()
    twins.assert_params_close()
    kit.assert_state_matches_torch(ours, theirs)


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (lambda saved: saved["state"][0].pop("acc_delta"), ValueError, "lacks"),
        (lambda saved: saved["state"][1].update(square_avg=np.zeros(3)), ValueError, "shape"),
        (lambda saved: saved["state"][1].update(acc_delta=np.zeros(7, np.float32)), TypeError, "dtype"),
        (lambda saved: saved["state"][3].update(exp_avg_sq=np.zeros((2, 3, 2))), ValueError, "unknown keys"),
        (lambda saved: saved["state"][0].update(step=np.float32(-1)), ValueError, "'step'"),
        (
            lambda saved: saved["param_groups"][1].update(rho=1.5),
            ValueError,
            "Invalid rho value: 1.5",
        ),
        (lambda saved: saved["param_groups"][0].update(eps=-1.0), ValueError, "Invalid epsilon value"),
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
    parameters = list(inspect.signature(Adadelta).parameters.values())
    assert [(p.name, p.default, p.kind.name) for p in parameters[1:]] == [
        ("lr", 1.0, "POSITIONAL_OR_KEYWORD"),
        ("rho", 0.9, "POSITIONAL_OR_KEYWORD"),
        ("eps", 1e-6, "POSITIONAL_OR_KEYWORD"),
        ("weight_decay", 0, "POSITIONAL_OR_KEYWORD"),
        ("maximize", False, "KEYWORD_ONLY"),
    ]
    optimizer = Adadelta([ExTensor(np.ones(2), requires_grad=True)])
    reference = torch.optim.Adadelta([torch.ones(2, requires_grad=True)])
    for key, value in optimizer.defaults.items():
        assert reference.defaults[key] == value


VALUES = [-1.0, -0.0, 0.0, 1e-12, 0.5, 0.9999, 1.0, 1.0000001, 2.0, math.inf, -math.inf, math.nan]


@pytest.mark.parametrize("which", ["lr", "rho", "eps", "weight_decay"])
def test_invalid_hyperparameters_raise_exactly_when_torch_does(which: str) -> None:
    for value in VALUES:
        options: dict[str, Any] = {which: value}
        try:
            torch.optim.Adadelta([torch.zeros(2, requires_grad=True)], **options)
            torch_error = None
        except ValueError as error:
            torch_error = str(error)
        if torch_error is None:
            Adadelta([ExTensor(np.ones(2), requires_grad=True)], **options)
        else:
            with pytest.raises(ValueError) as caught:
                Adadelta([ExTensor(np.ones(2), requires_grad=True)], **options)
            assert str(caught.value).startswith(torch_error), (value, str(caught.value), torch_error)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"lr": "0.1"}, TypeError, "lr must be a real number"),
        ({"eps": None}, TypeError, "eps must be a real number"),
        ({"weight_decay": True}, TypeError, "weight_decay must be a real number"),
        ({"rho": (0.9,)}, TypeError, "rho must be a real number"),
        ({"maximize": 1}, TypeError, "maximize must be a bool"),
        ({"lr": -0.5}, ValueError, "Invalid learning rate: -0.5"),
        ({"rho": 1.0 + 1e-9}, ValueError, r"Invalid rho value: 1.000000001 \(expected 0 <= rho <= 1\)"),
        ({"rho": -0.1}, ValueError, "Invalid rho value: -0.1"),
        ({"weight_decay": -1e-3}, ValueError, "Invalid weight_decay value: -0.001"),
    ],
)
def test_bad_inputs_are_refused(options: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        Adadelta([ExTensor(np.ones(2), requires_grad=True)], **options)
    optimizer = Adadelta([ExTensor(np.ones(2), requires_grad=True)])
    with pytest.raises(error, match=message):  # a group's own value too, refused before it is added
        optimizer.add_param_group({"params": [ExTensor(np.ones(3), requires_grad=True)], **options})
    assert len(optimizer.param_groups) == 1
