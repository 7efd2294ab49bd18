"""Lion against live lion-pytorch (0.2.5) and optax.lion (0.2.8): options, groups, None gradients, state."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
lion_pytorch = pytest.importorskip("lion_pytorch")

from extensor.core.tensor import ExTensor  # noqa: E402
from extensor.training.optimizers.lion import Lion  # noqa: E402

STEPS = 110
LAYOUT = [([0, 1, 2], 2.0), ([3, 4], 1.0)]  # parameter indices and lr factor of each group


#: optax in float64 (float32 arrays stay float32 under it), restored afterwards (conftest)
pytestmark = pytest.mark.usefixtures("jax_x64")


OPTIONS: list[dict[str, Any]] = [
    {},
    {"lr": 3e-3, "weight_decay": 0.5},
    {"lr": 1e-3, "betas": (0.5, 0.9), "weight_decay": 0.1, "maximize": True},
    {"lr": 1e-3, "betas": (0.0, 0.999)},
    {"lr": 1e-3, "betas": (1.0, 0.9), "weight_decay": 0.2},  # β1 = 1: the sign of the momentum alone
]


def build(kit: Any, options: dict[str, Any], dtype: Any, seed: int = 7) -> tuple[Any, Lion, list[float]]:
    twins = kit.Twins(dtype=dtype, seed=seed, absent=kit.sometimes_absent())
    lr = options.get("lr", 1e-4)
    lrs = [lr * factor for _, factor in LAYOUT]
    return twins, Lion(layout(twins.ours, lrs), **options), lrs


def layout(params: list[Any], lrs: list[float]) -> list[dict[str, Any]]:
    return [
        {"params": [params[i] for i in indices], "lr": lr}
        for (indices, _), lr in zip(LAYOUT, lrs, strict=True)
    ]


def halve_lrs(step: int, groups: list[dict[str, Any]]) -> None:
    if step % 40 == 39:  # a scheduler halves every group's lr
        for group in groups:
            group["lr"] *= 0.5


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("options", OPTIONS, ids=[f"case{i}" for i in range(len(OPTIONS))])
def test_matches_lion_pytorch(kit: Any, options: dict[str, Any], dtype: Any) -> None:
    twins, ours, lrs = build(kit, options, dtype)
    reference = {key: value for key, value in options.items() if key != "maximize"}
    theirs = lion_pytorch.Lion(layout(twins.theirs, lrs), **reference)
    for step in range(STEPS):
        twins.feed(step)
        if options.get("maximize", False):  # lion-pytorch has no maximize: it descends -g
            for tensor in twins.theirs:
                if tensor.grad is not None:
                    tensor.grad.neg_()
        ours.step()
        theirs.step()
        halve_lrs(step, ours.param_groups)
        halve_lrs(step, theirs.param_groups)
        if step % 30 == 0 or step == STEPS - 1:
            twins.assert_params_close(f"step {step}")
    np.testing.assert_array_equal(twins.ours[4].data, twins.initial[4])  # never had a gradient
    kit.assert_state_matches_torch(ours, theirs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("options", OPTIONS, ids=[f"case{i}" for i in range(len(OPTIONS))])
def test_matches_optax(kit: Any, options: dict[str, Any], dtype: Any) -> None:
    """One optax state per parameter, stepped only when it has a gradient, with its group's current lr."""
    twins, ours, lrs = build(kit, options, dtype)
    b1, b2 = options.get("betas", (0.9, 0.99))
    decay = options.get("weight_decay", 0.0)
    group_of = {index: g for g, (indices, _) in enumerate(LAYOUT) for index in indices}
    params = [jax.numpy.asarray(x) for x in twins.initial]
    states = [optax.lion(1.0).init(p) for p in params]
    for step in range(STEPS):
        grads = twins.gradients(step)
        for tensor, g in zip(twins.ours, grads, strict=True):
            tensor.grad = g
        ours.step()
        for index, g in enumerate(grads):
            if g is None:
                continue
            g = -g if options.get("maximize", False) else g
            transform = optax.lion(lrs[group_of[index]], b1, b2, weight_decay=decay)
            update, states[index] = transform.update(jax.numpy.asarray(g), states[index], params[index])
            params[index] = optax.apply_updates(params[index], update)
        halve_lrs(step, ours.param_groups)
        if step % 40 == 39:
            lrs = [value * 0.5 for value in lrs]
        if step % 30 == 0 or step == STEPS - 1:
            for index, (mine, their) in enumerate(zip(twins.ours, params, strict=True)):
                kit.assert_close(mine.data, np.asarray(their), f"step {step} parameter {index}")
    for index, tensor in enumerate(twins.ours[:4]):
        kit.assert_close(ours.state[tensor]["exp_avg"], np.asarray(states[index][0].mu), f"exp_avg {index}")


def test_one_step_by_hand() -> None:
    p = ExTensor(np.array([1.0, -2.0, 0.5, 3.0]), requires_grad=True)
    optimizer = Lion([p], lr=0.1, betas=(0.9, 0.99), weight_decay=0.5)
    p.grad = np.array([2.0, -1.0, 0.0, -4.0])
    optimizer.step()  # m = 0: c = sign(0.1 g); θ = θ · 0.95 − 0.1 c; m = 0.01 g
    np.testing.assert_allclose(p.data, [0.85, -1.8, 0.475, 2.95], rtol=1e-15)
    np.testing.assert_allclose(optimizer.state[p]["exp_avg"], [0.02, -0.01, 0.0, -0.04], rtol=1e-15)
    assert list(optimizer.state[p]) == ["exp_avg"]  # no "step", as lion-pytorch


def test_non_finite_gradients() -> None:
    """inf as both references; NaN propagates as optax's sign (lion-pytorch's torch.sign(NaN) is 0)."""
    values = np.array([1.0, -2.0, 0.5, 3.0])
    grads = [np.array([np.inf, 1.0, np.nan, -np.inf]), np.array([1.0, -np.inf, 1.0, 0.5])]
    p = ExTensor(values.copy(), requires_grad=True)
    optimizer = Lion([p], lr=0.1, weight_decay=0.1)
    transform = optax.lion(0.1, weight_decay=0.1)
    params = jax.numpy.asarray(values)
    state = transform.init(params)
    t = torch.tensor(values.copy(), requires_grad=True)
    theirs = lion_pytorch.Lion([t], lr=0.1, weight_decay=0.1)
    for g in grads:
        p.grad = g
        t.grad = torch.from_numpy(g.copy())
        with np.errstate(invalid="ignore"):
            optimizer.step()
        theirs.step()
        update, state = transform.update(jax.numpy.asarray(g), state, params)
        params = optax.apply_updates(params, update)
        np.testing.assert_allclose(p.data, np.asarray(params), rtol=1e-15, equal_nan=True)
        finite = ~np.isnan(p.data)  # lion-pytorch differs only where NaN entered the sign
        np.testing.assert_allclose(p.data[finite], t.detach().numpy()[finite], rtol=1e-15)
    assert np.isnan(p.data[2]) and not np.isnan(t.detach().numpy()[2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_resume_into_a_fresh_optimizer_is_bit_identical(kit: Any, dtype: Any) -> None:
    def make() -> tuple[Any, Lion]:
        twins = kit.Twins(dtype=dtype, seed=3, absent=kit.sometimes_absent())
        return twins, Lion(twins.ours, lr=1e-3, weight_decay=0.1, betas=(0.8, 0.95))

    def run(twins: Any, optimizer: Lion, steps: range) -> None:
        for step in steps:
            twins.feed(step)
            optimizer.step()

    (straight_twins, straight), (first_twins, first) = make(), make()
    run(straight_twins, straight, range(40))
    run(first_twins, first, range(20))
    saved = first.state_dict()
    assert list(saved["state"][0]) == ["exp_avg"]
    resumed_twins, resumed = make()
    for tensor, source in zip(resumed_twins.ours, first_twins.ours, strict=True):
        tensor.data = source.data.copy()
    resumed.load_state_dict(saved)
    for value in saved["state"].values():  # the optimizer holds copies
        value["exp_avg"][...] = 0.5
    run(resumed_twins, resumed, range(20, 40))
    for ours, expected in zip(resumed_twins.ours, straight_twins.ours, strict=True):
        np.testing.assert_array_equal(ours.data, expected.data)


def test_loads_lion_pytorch_state_and_refuses_a_bad_one(kit: Any) -> None:
    twins = kit.Twins(seed=1)
    ours = Lion(twins.ours, lr=1e-3)
    theirs = lion_pytorch.Lion(twins.theirs, lr=1e-3)
    for step in range(5):
        twins.feed(step)
        theirs.step()
    ours.load_state_dict(theirs.state_dict())
    before = ours.state_dict()
    broken = copy.deepcopy(before)
    broken["state"][0]["exp_avg"] = broken["state"][0]["exp_avg"] + 1
    broken["state"][2]["exp_avg"] = np.zeros(3)
    with pytest.raises(ValueError, match="shape"):
        ours.load_state_dict(broken)
    after = ours.state_dict()
    for index, state in before["state"].items():
        np.testing.assert_array_equal(after["state"][index]["exp_avg"], state["exp_avg"])
        kit.assert_close(state["exp_avg"], theirs.state[twins.theirs[index]]["exp_avg"])


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"lr": -1.0}, ValueError, "Invalid learning rate: -1.0"),
        ({"lr": float("nan")}, ValueError, "Invalid learning rate: nan"),
        ({"betas": (1.5, 0.9)}, ValueError, "Invalid beta parameter at index 0: 1.5"),
        ({"betas": (0.9, -0.1)}, ValueError, "Invalid beta parameter at index 1: -0.1"),
        ({"betas": (0.9,)}, TypeError, "betas must be a pair"),
        ({"weight_decay": -0.1}, ValueError, "Invalid weight_decay value: -0.1"),
        ({"lr": "x"}, TypeError, "lr"),
        ({"maximize": 1}, TypeError, "maximize"),
    ],
)
def test_invalid_hyperparameters_are_refused(options: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error) as caught:
        Lion([ExTensor(np.zeros(2), requires_grad=True)], **options)
    assert message in str(caught.value)
