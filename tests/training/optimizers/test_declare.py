"""Declared hyperparameter checks and state buffers (extensor.training.optimizers.declare)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from extensor.core.tensor import ExTensor
from extensor.training.optimizers import Optimizer, Run
from extensor.training.optimizers.declare import (
    Check,
    Choice,
    Condition,
    Flag,
    Integer,
    Numbers,
    Real,
    State,
)


@pytest.mark.parametrize(
    ("source", "group", "expected"),
    [
        ("lr >= 0", {"lr": 0.0}, True),
        ("lr >= 0", {"lr": -1e-9}, False),
        ("lr >= 0", {"lr": math.nan}, False),  # NaN fails every comparison, so it is refused
        ("0 <= betas[0] < 1", {"betas": (0.9, 0.99)}, True),
        ("0 <= betas[0] < 1", {"betas": (1.0, 0.99)}, False),
        ("0 < etas[0] < 1 < etas[1]", {"etas": (0.5, 1.2)}, True),
        ("0 < etas[0] < 1 < etas[1]", {"etas": (0.5, 0.9)}, False),
        ("momentum > 0", {"momentum": 0}, False),
        ("centered", {"centered": True}, True),
        (
            "not nesterov or (momentum > 0 and dampening == 0)",
            {"nesterov": False, "momentum": 0, "dampening": 1},
            True,
        ),
        (
            "not nesterov or (momentum > 0 and dampening == 0)",
            {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
            False,
        ),
        ("-1 <= beta2_decay <= 0", {"beta2_decay": -0.8}, True),
    ],
)
def test_conditions_evaluate_like_python(source: str, group: dict[str, Any], expected: bool) -> None:
    assert Condition(source)(group) is expected


@pytest.mark.parametrize(
    "source", ["__import__('os')", "lr.real > 0", "lr + 1 > 0", "betas[lr] > 0", "'a' < lr"]
)
def test_conditions_refuse_anything_but_comparisons(source: str) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        Condition(source)


def test_operand_types_are_checked() -> None:
    with pytest.raises(TypeError, match=r"lr must be a real number, got .0\.1."):
        Condition("lr >= 0")({"lr": "0.1"})
    with pytest.raises(TypeError, match="lr must be a real number, got True"):
        Condition("lr >= 0")({"lr": True})
    with pytest.raises(TypeError, match="centered must be a bool, got 1"):
        Condition("centered")({"centered": 1})
    with pytest.raises(TypeError, match="betas must be a tuple of numbers with an element 1"):
        Condition("betas[1] < 1")({"betas": (0.9,)})


def test_check_messages_follow_torch_and_name_the_range() -> None:
    with pytest.raises(ValueError, match=r"^Invalid learning rate: -1.0 \(expected lr >= 0\)$"):
        Check("lr >= 0", "learning rate")({"lr": -1.0})
    with pytest.raises(
        ValueError, match=r"^Invalid eta values: 0.5, 0.9 \(expected 0 < etas\[0\] < 1 < etas\[1\]\)$"
    ):
        Check("0 < etas[0] < 1 < etas[1]", "eta values")({"etas": (0.5, 0.9)})
    sentence = Check("not nesterov or momentum > 0", "Nesterov momentum requires a momentum", sentence=True)
    with pytest.raises(
        ValueError, match=r"^Nesterov momentum requires a momentum \(got nesterov=True, momentum=0\)$"
    ):
        sentence({"nesterov": True, "momentum": 0})
    Check("lr >= 0", "learning rate")({"lr": 3})  # passes silently


def test_typed_rules() -> None:
    Flag("amsgrad")({"amsgrad": np.bool_(True)})
    with pytest.raises(TypeError, match="amsgrad must be a bool"):
        Flag("amsgrad")({"amsgrad": "yes"})
    Real("dampening")({"dampening": math.nan})  # a real number, no range of its own
    with pytest.raises(TypeError, match="dampening must be a real number"):
        Real("dampening")({"dampening": None})
    with pytest.raises(TypeError, match="betas must be a pair"):
        Numbers("betas", 2)({"betas": (0.9, 0.99, 0.5)})
    with pytest.raises(TypeError, match=r"betas\[1\] must be a real number"):
        Numbers("betas", 2)({"betas": (0.9, "x")})
    with pytest.raises(TypeError, match="a tuple of 3 numbers"):
        Numbers("ns_coefficients", 3)({"ns_coefficients": (1.0, 2.0)})
    Integer("history_size", minimum=1)({"history_size": 3})
    Integer("max_eval", minimum=1, optional=True)({"max_eval": None})
    with pytest.raises(TypeError, match=r"history_size must be an integer, got 2\.0"):
        Integer("history_size", minimum=1)({"history_size": 2.0})
    with pytest.raises(ValueError, match=r"Invalid history_size value: 0 \(expected history_size >= 1\)"):
        Integer("history_size", minimum=1)({"history_size": 0})
    Choice("line_search_fn", (None, "strong_wolfe"))({"line_search_fn": None})
    with pytest.raises(
        ValueError, match=r"line_search_fn must be one of \[None, 'strong_wolfe'\], got 'wolfe'"
    ):
        Choice("line_search_fn", (None, "strong_wolfe"))({"line_search_fn": "wolfe"})
    with pytest.raises(ValueError, match="must be one of"):  # 1 == True, but a bool is not the int option
        Choice("mode", (1, 2))({"mode": True})


class _Halve(Optimizer):
    """A toy optimizer declaring its rules: θ ← θ − lr·g, with a buffer kept only when `track`."""

    hyperparameters = (Check("lr >= 0", "learning rate"), Flag("track"))
    buffers = ("seen", State("last", when="track"))

    def __init__(self, params: Any, lr: float = 0.5, *, track: bool = False) -> None:
        super().__init__(params, {"lr": lr, "track": track})

    def _update(self, group: Any, run: Run) -> None:
        run.state["seen"] += 1
        if "last" in run.state:
            run.state["last"][:] = run.grad
        run.param -= run.scalar(group["lr"]) * run.grad


def test_declared_rules_drive_validation_and_state() -> None:
    assert _Halve.state_names == ("seen", "last")
    p = ExTensor(np.ones(3), requires_grad=True)
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        _Halve([p], lr=-1)
    with pytest.raises(TypeError, match="track must be a bool"):
        _Halve([p], track=1)  # type: ignore[arg-type]
    q = ExTensor(np.ones(2), requires_grad=True)
    optimizer = _Halve([{"params": [p]}, {"params": [q], "track": True}])
    p.grad, q.grad = np.full(3, 2.0), np.full(2, 4.0)
    optimizer.step()
    assert sorted(optimizer.state[p]) == ["seen", "step"]  # `last` is kept for the tracking group only
    np.testing.assert_array_equal(optimizer.state[q]["last"], [4.0, 4.0])
    with pytest.raises(ValueError, match="loaded parameter group 0: Invalid learning rate: -2"):
        state = optimizer.state_dict()
        state["param_groups"][0]["lr"] = -2.0
        optimizer.load_state_dict(state)
    np.testing.assert_array_equal(p.data, [0.0, 0.0, 0.0])
