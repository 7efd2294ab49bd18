"""Adagrad against live torch.optim.Adagrad: options, state from construction, non-finite values, checks."""

from __future__ import annotations

import copy
import inspect
import math
from typing import Any

import numpy as np
import pytest
import torch

from extensor.core.tensor import ExTensor
from extensor.training.optimizers.adagrad import Adagrad

STEPS = 120

OPTIONS: list[dict[str, Any]] = [
    {},
    {"lr": 0.05, "weight_decay": 0.1},
    {"lr": 0.1, "lr_decay": 0.05, "eps": 1e-3, "maximize": True},
    {"lr": 0.03, "initial_accumulator_value": 0.3, "weight_decay": 0.01, "maximize": True},
    {"lr": 0.1, "lr_decay": 1.0, "initial_accumulator_value": 2.0, "eps": 0.0},
]


def run_parity(kit: Any, options: dict[str, Any], dtype: Any) -> None:
    twins = kit.Twins(dtype=dtype, seed=7, absent=kit.sometimes_absent())
    # torch ignores a group's own initial_accumulator_value: the constructor's is used for all
    layout = [
        ({"lr": options.get("lr", 1e-2) * 3, "initial_accumulator_value": 5.0}, [0, 1, 2]),
        ({}, [3, 4]),
    ]
    ours = Adagrad(kit.groups_of(twins.ours, layout), **options)
    theirs = torch.optim.Adagrad(kit.groups_of(twins.theirs, layout), **options, foreach=False)
    kit.assert_state_matches_torch(ours, theirs)  # state for every parameter from construction on
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


@pytest.mark.parametrize(
    "options", [{}, {"weight_decay": 0.5, "lr_decay": 0.5}, {"maximize": True, "eps": 0.0}]
)
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
    mine = Adagrad([ours], lr=0.1, **options)
    reference = torch.optim.Adagrad([theirs], lr=0.1, foreach=False, **options)
    for g in grads:
        ours.grad = g
        theirs.grad = torch.tensor(g)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            mine.step()
        reference.step()
        np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12, equal_nan=True)
        for key in ("sum",):
            np.testing.assert_allclose(mine.state[ours][key], reference.state[theirs][key], equal_nan=True)


def test_zero_size_tensors_and_a_large_buffer_match_torch(kit: Any) -> None:
    shapes = ((0,), (3, 2), (0, 4), (1 << 18,), (0,))  # the large one runs the parallel kernel
    twins = kit.Twins(
        shapes=shapes, dtype=np.float32, seed=2, absent=lambda step, index: (step + index) % 3 == 0
    )
    ours = Adagrad(twins.ours, lr=0.05, weight_decay=0.1, initial_accumulator_value=0.2)
    theirs = torch.optim.Adagrad(
        twins.theirs, lr=0.05, weight_decay=0.1, initial_accumulator_value=0.2, foreach=False
    )
    for step in range(6):
        twins.feed(step)
        ours.step()
        theirs.step()
    twins.assert_params_close()
    kit.assert_state_matches_torch(ours, theirs)


# ----------------------------------------------------------------------------- state dicts
def make(kit: Any, dtype: Any, values: list[np.ndarray] | None = None) -> tuple[Any, Adagrad]:
    twins = kit.Twins(
        dtype=dtype, seed=11, absent=lambda step, index: (index == 2 and step < 5) or (step + index) % 6 == 0
    )
    if values is not None:
        for tensor, value in zip(twins.ours, values, strict=True):
            tensor.data = value
    groups = kit.groups_of(twins.ours, [({"lr": 0.02}, [0, 1]), ({}, [2, 3, 4])])
    return twins, Adagrad(
        groups, lr=0.05, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1, maximize=True
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_resume_into_fresh_objects_is_bit_identical(kit: Any, dtype: Any) -> None:
    straight_twins, straight = make(kit, dtype)
    first_twins, first = make(kit, dtype)
    for step in range(20):
        for twins, optimizer in ((straight_twins, straight), (first_twins, first)):
            twins.feed(step)
            optimizer.step()
    saved = first.state_dict()
    assert list(saved["state"][0]) == ["step", "sum"]
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
    theirs = torch.optim.Adagrad(twins.theirs, lr=0.03, lr_decay=0.2, foreach=False)
    for step in range(10):
        twins.feed(step)
        theirs.step()
    for mine, their in zip(twins.ours, twins.theirs, strict=True):
        mine.data = their.detach().numpy()
    ours = Adagrad(twins.ours, lr=0.5)
    ours.load_state_dict(theirs.state_dict())
    assert ours.param_groups[0]["lr_decay"] == 0.2
    for step in range(10, 25):
        twins.feed(step)
        ours.step()
        theirs.step()
    twins.assert_params_close()
    kit.assert_state_matches_torch(ours, theirs)


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (lambda saved: saved["state"][0].pop("sum"), ValueError, "lacks"),
        (lambda saved: saved["state"][1].update(sum=np.zeros(3)), ValueError, "shape"),
        (lambda saved: saved["state"][1].update(sum=np.zeros(7, np.float32)), TypeError, "dtype"),
        (lambda saved: saved["state"][3].update(exp_avg_sq=np.zeros((2, 3, 2))), ValueError, "unknown keys"),
        (lambda saved: saved["state"][0].update(step=np.float32(-1)), ValueError, "'step'"),
        (
            lambda saved: saved["param_groups"][1].update(lr_decay=-0.5),
            ValueError,
            "Invalid lr_decay value: -0.5",
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
    parameters = list(inspect.signature(Adagrad).parameters.values())
    assert [(p.name, p.default, p.kind.name) for p in parameters[1:]] == [
        ("lr", 1e-2, "POSITIONAL_OR_KEYWORD"),
        ("lr_decay", 0, "POSITIONAL_OR_KEYWORD"),
        ("weight_decay", 0, "POSITIONAL_OR_KEYWORD"),
        ("initial_accumulator_value", 0, "POSITIONAL_OR_KEYWORD"),
        ("eps", 1e-10, "POSITIONAL_OR_KEYWORD"),
        ("maximize", False, "KEYWORD_ONLY"),
    ]
    optimizer = Adagrad([ExTensor(np.ones(2), requires_grad=True)])
    reference = torch.optim.Adagrad([torch.ones(2, requires_grad=True)])
    for key, value in optimizer.defaults.items():
        assert reference.defaults[key] == value


VALUES = [-1.0, -0.0, 0.0, 1e-12, 0.5, 0.9999, 1.0, 2.0, math.inf, -math.inf, math.nan]


@pytest.mark.parametrize("which", ["lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"])
def test_invalid_hyperparameters_raise_exactly_when_torch_does(which: str) -> None:
    for value in VALUES:
        options: dict[str, Any] = {which: value}
        try:
            torch.optim.Adagrad([torch.zeros(2, requires_grad=True)], **options)
            torch_error = None
        except ValueError as error:
            torch_error = str(error)
        if torch_error is None:
            Adagrad([ExTensor(np.ones(2), requires_grad=True)], **options)
        else:
            with pytest.raises(ValueError) as caught:
                Adagrad([ExTensor(np.ones(2), requires_grad=True)], **options)
            assert str(caught.value).startswith(torch_error), (value, str(caught.value), torch_error)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"lr": "0.1"}, TypeError, "lr must be a real number"),
        ({"eps": None}, TypeError, "eps must be a real number"),
        ({"weight_decay": True}, TypeError, "weight_decay must be a real number"),
        ({"lr_decay": None}, TypeError, "lr_decay must be a real number"),
        ({"initial_accumulator_value": "1"}, TypeError, "initial_accumulator_value must be a real number"),
        ({"maximize": 1}, TypeError, "maximize must be a bool"),
        ({"lr": -0.5}, ValueError, "Invalid learning rate: -0.5"),
        ({"lr_decay": -1.0}, ValueError, r"Invalid lr_decay value: -1.0 \(expected lr_decay >= 0\)"),
        ({"initial_accumulator_value": -0.1}, ValueError, "Invalid initial_accumulator_value value: -0.1"),
        ({"eps": -1e-10}, ValueError, "Invalid epsilon value: -1e-10"),
        ({"weight_decay": -1e-3}, ValueError, "Invalid weight_decay value: -0.001"),
    ],
)
def test_bad_inputs_are_refused(options: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        Adagrad([ExTensor(np.ones(2), requires_grad=True)], **options)
    optimizer = Adagrad([ExTensor(np.ones(2), requires_grad=True)])
    with pytest.raises(error, match=message):  # a group's own value too, refused before it is added
        optimizer.add_param_group({"params": [ExTensor(np.ones(3), requires_grad=True)], **options})
    assert len(optimizer.param_groups) == 1


# ----------------------------------------------------------------------------- state from construction on
def test_state_exists_from_construction_and_later_parameters_start_lazily(kit: Any) -> None:
    """As torch: construction gives every parameter step 0 and sum τ; add_param_group's start at a step."""
    twins = kit.Twins(dtype=np.float64, seed=5, absent=lambda step, index: index == 3 and step < 4)
    ours = Adagrad(twins.ours[:2], lr=0.1, initial_accumulator_value=0.25)
    theirs = torch.optim.Adagrad(twins.theirs[:2], lr=0.1, initial_accumulator_value=0.25, foreach=False)
    assert twins.ours[0] in ours.state and len(ours.state) == 2
    np.testing.assert_array_equal(ours.state[twins.ours[0]]["sum"], np.full((4, 3), 0.25))
    assert float(ours.state[twins.ours[0]]["step"]) == 0.0
    kit.assert_state_matches_torch(ours, theirs)
    # a later group: its own initial_accumulator_value is ignored, as torch does
    ours.add_param_group({"params": twins.ours[2:], "initial_accumulator_value": 9.0, "lr": 0.3})
    theirs.add_param_group({"params": twins.theirs[2:], "initial_accumulator_value": 9.0, "lr": 0.3})
    assert twins.ours[2] not in ours.state and len(ours.state) == 2
    kit.assert_state_matches_torch(ours, theirs)
    for step in range(8):
        twins.feed(step)
        ours.step()
        theirs.step()
        kit.assert_state_matches_torch(ours, theirs)  # parameter 3 gets its state at step 4
    twins.assert_params_close()
    assert len(ours.state) == 5


def test_parameters_left_without_state_by_a_load_start_afresh(kit: Any) -> None:
    twins = kit.Twins(dtype=np.float64, seed=6)
    ours = Adagrad(twins.ours, lr=0.1, lr_decay=0.1, initial_accumulator_value=0.5)
    theirs = torch.optim.Adagrad(
        twins.theirs, lr=0.1, lr_decay=0.1, initial_accumulator_value=0.5, foreach=False
    )
    for step in range(5):
        twins.feed(step)
        ours.step()
        theirs.step()
    saved = theirs.state_dict()
    del saved["state"][1], saved["state"][3]
    ours.load_state_dict(saved)
    theirs.load_state_dict(saved)
    assert twins.ours[1] not in ours.state and twins.ours[0] in ours.state
    kit.assert_state_matches_torch(ours, theirs)
    for step in range(5, 12):
        twins.feed(step)
        ours.step()
        theirs.step()
    twins.assert_params_close()
    kit.assert_state_matches_torch(ours, theirs)


def test_one_rank_sharded_equals_the_plain_optimizer(kit: Any) -> None:
    from extensor.distributed import SingleProcess
    from extensor.distributed.sharded import ShardedOptimizer

    twins = kit.Twins(
        dtype=np.float64, seed=8, absent=lambda step, index: index == 4 or (step + index) % 4 == 0
    )
    copies = [ExTensor(p.data.copy(), requires_grad=True) for p in twins.ours]
    plain = Adagrad(twins.ours, lr=0.1, initial_accumulator_value=0.5, weight_decay=0.1)
    sharded = ShardedOptimizer(
        Adagrad(copies, lr=0.1, initial_accumulator_value=0.5, weight_decay=0.1), SingleProcess()
    )
    for step in range(12):
        if step == 6:  # parameter 2 loses its state: both start it afresh (s = τ) at its next step
            saved = plain.state_dict()
            del saved["state"][2]
            plain.load_state_dict(saved)
            sharded.load_state_dict(saved)
        twins.feed(step)
        twins.feed(step, copies)
        plain.step()
        sharded.step()
    for mine, reference in zip(copies, twins.ours, strict=True):
        np.testing.assert_array_equal(mine.data, reference.data)
    state, expected = sharded.state_dict(), plain.state_dict()
    assert sorted(state["state"]) == sorted(expected["state"]) == [0, 1, 2, 3, 4]
    for index, entries in expected["state"].items():
        for key, value in entries.items():
            np.testing.assert_array_equal(state["state"][index][key], value)
