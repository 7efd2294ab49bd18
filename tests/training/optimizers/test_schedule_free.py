"""ScheduleFreeAdamW / ScheduleFreeSGD against the live `schedulefree` 1.4.1 package.

Parity over 120 steps on the package's option grid (warm-up, weight decay, r, weight_lr_power,
two groups with different learning rates changed between steps, gradients sometimes None,
eval()/train() toggled mid-run), both dtypes; group-level state (k, lr_max, weight_sum,
train_mode, scheduled_lr) and state_dict round trips; the package's refusals.
"""

from __future__ import annotations

import copy
import inspect
import math
from typing import Any

import numpy as np
import pytest
import schedulefree
import torch

from extensor.core.tensor import ExTensor
from extensor.training.optimizers import schedule_free
from extensor.training.optimizers.schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD

STEPS = 120
PACKAGE = {ScheduleFreeAdamW: schedulefree.AdamWScheduleFree, ScheduleFreeSGD: schedulefree.SGDScheduleFree}
GROUP_STATE = ("k", "train_mode", "weight_sum", "lr_max", "scheduled_lr")

CASES: list[tuple[type, dict[str, Any]]] = [
    (ScheduleFreeAdamW, {}),
    (ScheduleFreeAdamW, {"lr": 0.01, "warmup_steps": 20}),
    (ScheduleFreeAdamW, {"lr": 0.01, "weight_decay": 0.1, "foreach": False}),
    (ScheduleFreeAdamW, {"lr": 0.02, "r": 1.0, "weight_lr_power": 0.0}),
    (
        ScheduleFreeAdamW,
        {"lr": 0.02, "betas": (0.5, 0.9), "eps": 1e-3, "warmup_steps": 10, "r": 0.5,
         "weight_lr_power": 1.0, "weight_decay": 0.05},
    ),
    (ScheduleFreeSGD, {"lr": 0.1}),
    (ScheduleFreeSGD, {"lr": 0.1, "warmup_steps": 20, "weight_decay": 0.01, "foreach": False}),
    (ScheduleFreeSGD, {"lr": 0.05, "momentum": 0.5, "r": 2.0, "weight_lr_power": 0.0}),
    (ScheduleFreeSGD, {"lr": 0.1, "momentum": 0.95, "warmup_steps": 5, "weight_lr_power": 1.0}),
]  # fmt: skip


def make_pair(
    kit: Any, cls: type, options: dict[str, Any], dtype: Any, seed: int = 7
) -> tuple[Any, Any, Any]:
    twins = kit.Twins(dtype=dtype, seed=seed, absent=kit.sometimes_absent())
    lr = options.get("lr", inspect.signature(cls).parameters["lr"].default)
    layout = [({"lr": lr * 2}, [0, 1, 2]), ({}, [3, 4])]
    ours_options = {key: value for key, value in options.items() if key != "foreach"}
    ours = cls(kit.groups_of(twins.ours, layout), **ours_options)
    theirs = PACKAGE[cls](kit.groups_of(twins.theirs, layout), **options)
    return twins, ours, theirs


def assert_groups_match(ours: Any, theirs: Any) -> None:
    for mine, their in zip(ours.param_groups, theirs.param_groups, strict=True):
        for key in GROUP_STATE:
            assert mine[key] == their[key], key


def assert_state_matches(kit: Any, ours: Any, theirs: Any) -> None:
    """Our state_dict has the package's state and group entries, except the empty state entries that
    the package's eval()/train() leave behind (they read ``self.state[p]``, a defaultdict)."""
    reference = theirs.state_dict()
    reference["state"] = {index: state for index, state in reference["state"].items() if state}

    class Snapshot:
        def state_dict(self) -> dict[str, Any]:
            return reference

    kit.assert_state_matches_torch(ours, Snapshot())
    assert_groups_match(ours, theirs)


def assert_step_refused(ours: Any, theirs: Any) -> None:
    """In eval mode both refuse to step, with the package's message, before running the closure."""
    called: list[int] = []
    with pytest.raises(Exception) as their_error:
        theirs.step(lambda: called.append(1))
    with pytest.raises(RuntimeError) as our_error:
        ours.step(lambda: called.append(1))
    assert str(our_error.value) == str(their_error.value)
    assert not called


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(
    ("cls", "options"),
    CASES,
    ids=[f"{c.__name__}-{'-'.join(f'{k}={v}' for k, v in o.items()) or 'defaults'}" for c, o in CASES],
)
def test_matches_the_package(kit: Any, cls: type, options: dict[str, Any], dtype: Any) -> None:
    twins, ours, theirs = make_pair(kit, cls, options, dtype)
    assert_step_refused(ours, theirs)  # both start in eval mode
    ours.train()
    theirs.train()
    for step in range(STEPS):
        twins.feed(step)
        ours.step()
        theirs.step()
        if step % 40 == 39:  # a scheduler: every group's lr decays
            for mine, their in zip(ours.param_groups, theirs.param_groups, strict=True):
                mine["lr"] *= 0.5
                their["lr"] *= 0.5
        if step in (30, 75):  # evaluate at x mid-run, then go on training from y
            ours.eval()
            theirs.eval()
            twins.assert_params_close(f"eval at step {step}")
            if step == 75:
                ours.eval()  # a second eval() changes nothing, as in the package
                theirs.eval()
                assert_step_refused(ours, theirs)
            ours.train()
            theirs.train()
        if step % 30 == 0:
            twins.assert_params_close(f"step {step}")
            assert_groups_match(ours, theirs)
    twins.assert_params_close("final y")
    assert_state_matches(kit, ours, theirs)
    ours.eval()
    theirs.eval()
    twins.assert_params_close("final x")
    np.testing.assert_array_equal(twins.ours[4].data, twins.initial[4])  # never had a gradient
    assert_groups_match(ours, theirs)
    assert ours.param_groups[0]["k"] == STEPS


@pytest.mark.parametrize("cls", [ScheduleFreeAdamW, ScheduleFreeSGD], ids=lambda c: c.__name__)
def test_signature_and_group_state_are_the_package(cls: type) -> None:
    """Same constructor names and defaults (minus foreach), same initial group entries."""
    ours = inspect.signature(cls).parameters
    theirs = inspect.signature(PACKAGE[cls]).parameters
    assert [(p.name, p.default) for p in ours.values()] == [
        (p.name, p.default) for p in theirs.values() if p.name != "foreach"
    ]
    mine = cls([ExTensor(np.ones(3), requires_grad=True)]).param_groups[0]
    their = PACKAGE[cls]([torch.ones(3, requires_grad=True)]).param_groups[0]
    assert sorted(mine) == sorted(key for key in their if key != "foreach")
    for key in mine:
        if key != "params":
            assert mine[key] == their[key], key


@pytest.mark.parametrize("cls", [ScheduleFreeAdamW, ScheduleFreeSGD], ids=lambda c: c.__name__)
def test_add_param_group_mid_run_behaves_as_the_package(kit: Any, cls: type) -> None:
    """A group added in train mode starts with train_mode False (the package's default), so eval()
    skips it and the next train() moves it once more; step updates it all the same, as the package."""
    twins = kit.Twins(seed=5)
    ours, theirs = cls(twins.ours[:3], lr=0.05), PACKAGE[cls](twins.theirs[:3], lr=0.05)
    ours.train()
    theirs.train()
    for step in range(40):
        if step == 10:
            ours.add_param_group({"params": twins.ours[3:], "lr": 0.02})
            theirs.add_param_group({"params": twins.theirs[3:], "lr": 0.02})
        if step in (20, 30):
            ours.eval()
            theirs.eval()
            twins.assert_params_close(f"eval at step {step}")
            ours.train()
            theirs.train()
        twins.feed(step)
        ours.step()
        theirs.step()
    twins.assert_params_close()
    assert_groups_match(ours, theirs)
    assert_state_matches(kit, ours, theirs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("in_eval", [False, True], ids=["saved-in-train", "saved-in-eval"])
@pytest.mark.parametrize(
    ("cls", "options"),
    [(ScheduleFreeAdamW, {"lr": 0.01, "warmup_steps": 30, "weight_decay": 0.01, "r": 0.5}),
     (ScheduleFreeSGD, {"lr": 0.1, "warmup_steps": 30, "weight_decay": 0.01})],
    ids=["AdamW", "SGD"],
)  # fmt: skip
def test_state_dict_round_trip_mid_run_is_bit_identical(
    kit: Any, cls: type, options: dict[str, Any], dtype: Any, in_eval: bool
) -> None:
    """Mid warm-up, with parameters lacking state: a fresh optimizer continues bit-identically."""

    def make(values: list[np.ndarray] | None = None) -> tuple[Any, Any]:
        twins = kit.Twins(dtype=dtype, seed=11, absent=kit.sometimes_absent())
        if values is not None:
            for tensor, value in zip(twins.ours, values, strict=True):
                tensor.data = value
        layout = [({"lr": options["lr"] / 2}, [0, 1]), ({}, [2, 3, 4])]
        return twins, cls(kit.groups_of(twins.ours, layout), **options)

    def run(twins: Any, optimizer: Any, steps: range) -> None:
        for step in steps:
            twins.feed(step)
            optimizer.step()

    straight_twins, straight = make()
    straight.train()
    run(straight_twins, straight, range(20))
    if in_eval:
        straight.eval()
        straight.train()
    run(straight_twins, straight, range(20, 40))

    first_twins, first = make()
    first.train()
    run(first_twins, first, range(20))
    if in_eval:
        first.eval()
    saved = first.state_dict()
    assert sorted(saved["state"]) == [0, 1, 2, 3]  # parameter 4 never had a gradient
    assert list(saved["state"][0]) == list(cls.state_names)
    values = [p.data.copy() for p in first_twins.ours]

    resumed_twins, resumed = make(values)
    resumed.load_state_dict(saved)
    for value in saved["state"].values():  # the optimizer took a copy
        for array in value.values():
            array[...] = 123
    saved["param_groups"][0]["k"] = 99
    assert resumed.param_groups[0]["train_mode"] is not in_eval
    assert [g["k"] for g in resumed.param_groups] == [20, 20]
    if in_eval:
        resumed.train()
    run(resumed_twins, resumed, range(20, 40))

    for mine, reference in zip(resumed_twins.ours, straight_twins.ours, strict=True):
        np.testing.assert_array_equal(mine.data, reference.data)
    mine_state, reference_state = resumed.state_dict(), straight.state_dict()
    assert mine_state["param_groups"] == reference_state["param_groups"]
    for index, state in reference_state["state"].items():
        for key, value in state.items():
            np.testing.assert_array_equal(mine_state["state"][index][key], value)


@pytest.mark.parametrize("cls", [ScheduleFreeAdamW, ScheduleFreeSGD], ids=lambda c: c.__name__)
def test_loads_the_package_state_dict(kit: Any, cls: type) -> None:
    """The package's own state dict (tensors, its 'foreach' key) loads, and training continues in step."""
    twins, _, theirs = make_pair(kit, cls, {"lr": 0.02, "warmup_steps": 15}, np.float64)
    theirs.train()
    for step in range(20):
        twins.feed(step)
        theirs.step()
    for mine, their in zip(twins.ours, twins.theirs, strict=True):
        mine.data = their.detach().numpy()
    ours = cls(kit.groups_of(twins.ours, [({}, [0, 1, 2]), ({}, [3, 4])]), lr=0.5)
    ours.load_state_dict(theirs.state_dict())
    assert "foreach" not in ours.param_groups[0]
    assert_groups_match(ours, theirs)
    for step in range(20, 40):
        twins.feed(step)
        ours.step()
        theirs.step()
    ours.eval()
    theirs.eval()
    twins.assert_params_close()
    assert_groups_match(ours, theirs)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda saved: saved["param_groups"][0].update(k=-1), ValueError, "k"),
        (lambda saved: saved["param_groups"][0].update(k=2.5), TypeError, "k must be an integer"),
        (lambda saved: saved["param_groups"][1].update(train_mode="yes"), TypeError, "train_mode"),
        (lambda saved: saved["param_groups"][1].update(weight_sum=None), TypeError, "weight_sum"),
        (lambda saved: saved["param_groups"][0].update(betas=(0.9, 1.0)), ValueError, "beta parameter"),
        (lambda saved: saved["state"][0].update(step=np.float32(1)), ValueError, "unknown keys"),
        (lambda saved: saved["state"][0].pop("exp_avg_sq"), ValueError, "lacks"),
        (lambda saved: saved["state"][0].update(z=np.zeros(9)), ValueError, "shape"),
    ],
    ids=["negative-k", "float-k", "train-mode", "weight-sum", "betas", "step", "missing", "shape"],
)
def test_bad_state_dict_leaves_the_optimizer_unchanged(
    kit: Any, change: Any, error: type, match: str
) -> None:
    twins = kit.Twins(seed=3, absent=kit.sometimes_absent())
    ours = ScheduleFreeAdamW(kit.groups_of(twins.ours, [({}, [0, 1, 2]), ({}, [3, 4])]), lr=0.01)
    ours.train()
    for step in range(5):
        twins.feed(step)
        ours.step()
    before = ours.state_dict()
    saved = copy.deepcopy(before)
    change(saved)
    with pytest.raises(error, match=match):
        ours.load_state_dict(saved)
    after = ours.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for index, state in before["state"].items():
        for key, value in state.items():
            np.testing.assert_array_equal(after["state"][index][key], value)


BAD = [
    (ScheduleFreeAdamW, {"lr": -1.0}, ValueError, "Invalid learning rate: -1.0"),
    (ScheduleFreeAdamW, {"lr": math.nan}, ValueError, "Invalid learning rate: nan"),
    (ScheduleFreeAdamW, {"eps": -1e-8}, ValueError, "Invalid epsilon value: -1e-08"),
    (ScheduleFreeAdamW, {"betas": (0.0, 0.999)}, ValueError, "Invalid beta parameter at index 0: 0.0"),
    (ScheduleFreeAdamW, {"betas": (1.0, 0.999)}, ValueError, "Invalid beta parameter at index 0: 1.0"),
    (ScheduleFreeAdamW, {"betas": (0.9, 1.0)}, ValueError, "Invalid beta parameter at index 1: 1.0"),
    (ScheduleFreeAdamW, {"betas": (0.9,)}, TypeError, "betas must be a pair"),
    (ScheduleFreeAdamW, {"weight_decay": -0.1}, ValueError, "Invalid weight_decay value: -0.1"),
    (ScheduleFreeAdamW, {"warmup_steps": -1}, ValueError, "Invalid warmup_steps value: -1"),
    (ScheduleFreeAdamW, {"warmup_steps": 2.5}, TypeError, "warmup_steps must be an integer, got 2.5"),
    (ScheduleFreeAdamW, {"r": "1"}, TypeError, "r must be a real number, got '1'"),
    (ScheduleFreeAdamW, {"weight_lr_power": None}, TypeError, "weight_lr_power must be a real number"),
    (ScheduleFreeSGD, {"lr": -0.5}, ValueError, "Invalid learning rate: -0.5"),
    (ScheduleFreeSGD, {"weight_decay": -1.0}, ValueError, "Invalid weight_decay value: -1.0"),
    (ScheduleFreeSGD, {"momentum": 0.0}, ValueError, "Momentum must be between 0 and 1 exclusive .*0.0"),
    (ScheduleFreeSGD, {"momentum": 1.0}, ValueError, "Momentum must be between 0 and 1 exclusive .*1.0"),
    (ScheduleFreeSGD, {"momentum": True}, TypeError, "momentum must be a real number"),
    (ScheduleFreeSGD, {"warmup_steps": -3}, ValueError, "Invalid warmup_steps value: -3"),
]


@pytest.mark.parametrize(
    ("cls", "options", "error", "match"), BAD, ids=[f"{c.__name__}-{o}" for c, o, _, _ in BAD]
)
def test_bad_hyperparameters_are_refused_naming_the_value(
    cls: type, options: dict[str, Any], error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        cls([ExTensor(np.ones(2), requires_grad=True)], **options)


@pytest.mark.parametrize("value", [-1.0, -1e-12, 0.0, 1e-12, 0.5, 1.0, 1.5])
@pytest.mark.parametrize("name", ["lr", "momentum", "weight_decay"])
def test_sgd_refuses_exactly_what_the_package_refuses(name: str, value: float) -> None:
    try:
        schedulefree.SGDScheduleFree([torch.zeros(2, requires_grad=True)], **{name: value})
        refused = None
    except ValueError as error:
        refused = str(error)
    if refused is None:
        ScheduleFreeSGD([ExTensor(np.ones(2), requires_grad=True)], **{name: value})
    else:
        with pytest.raises(ValueError) as caught:
            ScheduleFreeSGD([ExTensor(np.ones(2), requires_grad=True)], **{name: value})
        assert refused.split(":")[0] in str(caught.value) and str(value) in str(caught.value)


@pytest.mark.parametrize("cls", [ScheduleFreeAdamW, ScheduleFreeSGD], ids=lambda c: c.__name__)
def test_one_kernel_call_per_run(kit: Any, cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step over a group whose parameters all have gradients and state is one kernel call."""
    calls: list[int] = []
    kernel = schedule_free.schedule_free_kernel

    def counting(*args: Any) -> None:
        calls.append(args[0].size)
        kernel(*args)

    monkeypatch.setattr(schedule_free, "schedule_free_kernel", counting)
    twins = kit.Twins(seed=2)
    ours = cls(twins.ours, lr=0.01)
    ours.train()
    for step in range(3):
        twins.feed(step)
        ours.step()
    assert calls == [sum(p.data.size for p in twins.ours)] * 3


@pytest.mark.parametrize(
    ("cls", "options"),
    [(ScheduleFreeAdamW, {"lr": 0.01}), (ScheduleFreeAdamW, {"lr": 0.01, "weight_decay": 0.1}),
     (ScheduleFreeSGD, {"lr": 0.1}), (ScheduleFreeSGD, {"lr": 0.1, "weight_decay": 0.1})],
)  # fmt: skip
def test_infinities_and_nans_propagate_as_in_the_package(cls: type, options: dict[str, Any]) -> None:
    values = np.array([1.0, -2.0, np.inf, -np.inf, 0.5, np.nan, 3.0, 1.5, 0.0, -0.0])
    grads = [
        np.array([np.inf, -np.inf, 1.0, 0.5, np.nan, 1.0, 0.25, -1.0, -0.0, -0.0]),
        np.array([1.0, 2.0, -1.0, 0.5, 1.0, 1.0, np.inf, 0.0, -0.0, 0.0]),
        np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, np.nan, -0.0, -0.0]),
    ]
    ours = ExTensor(values.copy(), requires_grad=True)
    theirs = torch.tensor(values.copy(), requires_grad=True)
    mine, reference = cls([ours], **options), PACKAGE[cls]([theirs], **options)
    mine.train()
    reference.train()
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for g in grads:
            ours.grad = g
            theirs.grad = torch.tensor(g)
            mine.step()
            reference.step()
            np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12, equal_nan=True)
        mine.eval()
        reference.eval()
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12, equal_nan=True)
