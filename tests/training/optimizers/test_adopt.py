"""ADOPT against live optax.contrib.adopt (0.2.8): options, clipping, None gradients, lr changes, state."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")

from extensor.core.tensor import ExTensor  # noqa: E402
from extensor.training.optimizers.adopt import ADOPT  # noqa: E402

STEPS = 110
LAYOUT = [([0, 1, 2], 2.0), ([3, 4], 1.0)]  # parameter indices and lr factor of each group


#: optax in float64 (float32 arrays stay float32 under it), restored afterwards (conftest)
pytestmark = pytest.mark.usefixtures("jax_x64")


def reference(options: dict[str, Any], lr: float) -> Any:
    """optax's ADOPT with our options: weight decay chained in where torch-style optimizers apply it."""
    betas = options.get("betas", (0.9, 0.9999))
    clip = options.get("clip_exp", 0.25)
    extra = {"use_clipping": False} if clip is None else {"clip_value_fn": lambda k: k**clip}
    scale = optax.contrib.scale_by_adopt(
        betas[0], betas[1], options.get("eps", 1e-6), nesterov=options.get("nesterov", False), **extra
    )
    decay = options.get("weight_decay", 0.0)
    if decay == 0:
        return optax.chain(scale, optax.scale_by_learning_rate(lr))
    if options.get("decoupled_weight_decay", False):
        return optax.chain(scale, optax.add_decayed_weights(decay), optax.scale_by_learning_rate(lr))
    return optax.chain(optax.add_decayed_weights(decay), scale, optax.scale_by_learning_rate(lr))


class OptaxTwin:
    """One optax state per parameter, updated only when it has a gradient (a skipped parameter
    keeps its count, as ours does), with its group's current learning rate."""

    def __init__(self, initial: list[np.ndarray], options: dict[str, Any], lrs: list[float]) -> None:
        self.options, self.lrs = options, lrs
        self.params = [jax.numpy.asarray(x) for x in initial]
        self.states = [reference(options, 1.0).init(p) for p in self.params]
        self.group_of = {index: g for g, (indices, _) in enumerate(LAYOUT) for index in indices}

    def step(self, grads: list[np.ndarray | None]) -> None:
        for index, g in enumerate(grads):
            if g is None:
                continue
            if self.options.get("maximize", False):
                g = -g
            transform = reference(self.options, self.lrs[self.group_of[index]])
            update, self.states[index] = transform.update(
                jax.numpy.asarray(g), self.states[index], self.params[index]
            )
            self.params[index] = optax.apply_updates(self.params[index], update)


def run_parity(
    kit: Any, options: dict[str, Any], dtype: Any, steps: int = STEPS
) -> tuple[Any, ADOPT, OptaxTwin]:
    twins = kit.Twins(dtype=dtype, seed=7, absent=kit.sometimes_absent())
    lr = options.get("lr", 1e-3)
    groups = [{"params": [twins.ours[i] for i in indices], "lr": lr * factor} for indices, factor in LAYOUT]
    ours = ADOPT(groups, **options)
    theirs = OptaxTwin(twins.initial, options, [lr * factor for _, factor in LAYOUT])
    for step in range(steps):
        grads = twins.gradients(step)
        for tensor, g in zip(twins.ours, grads, strict=True):
            tensor.grad = g
        ours.step()
        theirs.step(grads)
        if step % 40 == 39:  # a scheduler halves every group's lr
            for group in ours.param_groups:
                group["lr"] *= 0.5
            theirs.lrs = [value * 0.5 for value in theirs.lrs]
        if step % 30 == 0 or step == steps - 1:
            for index, (mine, their) in enumerate(zip(twins.ours, theirs.params, strict=True)):
                kit.assert_close(mine.data, np.asarray(their), f"step {step} parameter {index}")
    return twins, ours, theirs


OPTIONS: list[dict[str, Any]] = [
    {},
    {"lr": 0.01, "clip_exp": None},
    {"lr": 0.01, "nesterov": True},
    {"lr": 0.01, "nesterov": True, "clip_exp": None, "maximize": True},
    {"lr": 0.02, "betas": (0.5, 0.9), "eps": 1e-3, "clip_exp": 0.5},
    {"lr": 0.01, "weight_decay": 0.1},
    {"lr": 0.01, "weight_decay": 0.3, "decoupled_weight_decay": True, "maximize": True},
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("options", OPTIONS, ids=[f"case{i}" for i in range(len(OPTIONS))])
def test_matches_optax(kit: Any, options: dict[str, Any], dtype: Any) -> None:
    twins, ours, theirs = run_parity(kit, options, dtype)
    np.testing.assert_array_equal(twins.ours[4].data, twins.initial[4])  # never had a gradient
    for index, tensor in enumerate(twins.ours[:4]):  # state: optax's mu, nu and count
        state, reference_state = ours.state[tensor], theirs.states[index]
        adopt_state = next(s for s in reference_state if hasattr(s, "mu"))
        kit.assert_close(state["exp_avg"], np.asarray(adopt_state.mu), f"exp_avg {index}")
        kit.assert_close(state["exp_avg_sq"], np.asarray(adopt_state.nu), f"exp_avg_sq {index}")
        assert float(state["step"]) == int(adopt_state.count)


def test_first_step_only_initialises_the_second_moment() -> None:
    values = np.array([1.0, -2.0, 0.5])
    p = ExTensor(values.copy(), requires_grad=True)
    optimizer = ADOPT([p], lr=0.1)
    p.grad = np.array([3.0, -1.0, 0.0])
    optimizer.step()
    np.testing.assert_array_equal(p.data, values)
    np.testing.assert_array_equal(optimizer.state[p]["exp_avg"], 0.0)
    np.testing.assert_array_equal(optimizer.state[p]["exp_avg_sq"], [9.0, 1.0, 0.0])
    p.grad = np.array([3.0, -1.0, 0.0])
    optimizer.step()  # clip(g / max(√v, ε), ±1) = ±1 (and 0): m = 0.1 u, θ -= 0.1 m
    np.testing.assert_allclose(p.data, values - 0.01 * np.array([1.0, -1.0, 0.0]), rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_resume_into_a_fresh_optimizer_is_bit_identical(kit: Any, dtype: Any) -> None:
    def make() -> tuple[Any, ADOPT]:
        twins = kit.Twins(dtype=dtype, seed=3, absent=kit.sometimes_absent())
        return twins, ADOPT(twins.ours, lr=0.01, weight_decay=0.1, nesterov=True)

    def run(twins: Any, optimizer: ADOPT, steps: range) -> None:
        for step in steps:
            twins.feed(step)
            optimizer.step()

    (straight_twins, straight), (first_twins, first) = make(), make()
    run(straight_twins, straight, range(40))
    run(first_twins, first, range(20))
    saved = first.state_dict()
    assert list(saved["state"][0]) == ["step", "exp_avg", "exp_avg_sq"]
    resumed_twins, resumed = make()
    for tensor, source in zip(resumed_twins.ours, first_twins.ours, strict=True):
        tensor.data = source.data.copy()
    resumed.load_state_dict(saved)
    for value in saved["state"].values():
        for array in value.values():
            array[...] = 0.5
    run(resumed_twins, resumed, range(20, 40))
    for ours, expected in zip(resumed_twins.ours, straight_twins.ours, strict=True):
        np.testing.assert_array_equal(ours.data, expected.data)


def test_invalid_load_leaves_the_optimizer_unchanged(kit: Any) -> None:
    twins = kit.Twins(seed=1)
    optimizer = ADOPT(twins.ours, lr=0.01)
    for step in range(5):
        twins.feed(step)
        optimizer.step()
    before = optimizer.state_dict()
    broken = copy.deepcopy(before)
    broken["state"][0]["exp_avg"] = broken["state"][0]["exp_avg"] + 1
    broken["state"][2].pop("exp_avg_sq")
    with pytest.raises(ValueError, match="lacks"):
        optimizer.load_state_dict(broken)
    after = optimizer.state_dict()
    for index, state in before["state"].items():
        for key, value in state.items():
            np.testing.assert_array_equal(after["state"][index][key], value)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"lr": -1.0}, ValueError, "Invalid learning rate: -1.0"),
        ({"eps": -1e-6}, ValueError, "Invalid epsilon value: -1e-06"),
        ({"betas": (1.0, 0.9)}, ValueError, "Invalid beta parameter at index 0: 1.0"),
        ({"betas": (0.9, 1.0)}, ValueError, "Invalid beta parameter at index 1: 1.0"),
        ({"weight_decay": -0.1}, ValueError, "Invalid weight_decay value: -0.1"),
        ({"lr": float("nan")}, ValueError, "Invalid learning rate: nan"),
        ({"clip_exp": -0.25}, ValueError, "Invalid clip_exp value: -0.25"),
        ({"clip_exp": "x"}, TypeError, "clip_exp"),
        ({"nesterov": 1}, TypeError, "nesterov"),
        ({"decoupled_weight_decay": "no"}, TypeError, "decoupled_weight_decay"),
        ({"maximize": None}, TypeError, "maximize"),
    ],
)
def test_invalid_hyperparameters_are_refused(options: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error) as caught:
        ADOPT([ExTensor(np.zeros(2), requires_grad=True)], **options)
    assert str(caught.value).startswith(message) or message in str(caught.value)


def test_non_finite_gradients_match_optax() -> None:
    values = np.array([1.0, -2.0, 0.5, 3.0, 1.5, 0.0])
    grads = [
        np.array([np.inf, 1.0, np.nan, 0.25, -1.0, -0.0]),
        np.array([1.0, np.inf, 1.0, np.nan, 0.0, 0.0]),
        np.array([0.5, 0.5, 0.5, 0.5, np.nan, -0.0]),
        np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5]),
    ]
    for options in ({"lr": 0.1}, {"lr": 0.1, "clip_exp": None, "nesterov": True}):
        p = ExTensor(values.copy(), requires_grad=True)
        optimizer = ADOPT([p], **options)
        transform = reference(options, 0.1)
        params = jax.numpy.asarray(values)
        state = transform.init(params)
        for g in grads:
            p.grad = g
            with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                optimizer.step()
            update, state = transform.update(jax.numpy.asarray(g), state, params)
            params = optax.apply_updates(params, update)
            np.testing.assert_allclose(p.data, np.asarray(params), rtol=1e-13, equal_nan=True)
