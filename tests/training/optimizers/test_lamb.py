"""LAMB against live optax.lamb (0.2.8): options, groups, None gradients, lr changes, state, bad input."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")

from extensor.core.tensor import ExTensor  # noqa: E402
from extensor.distributed import SingleProcess  # noqa: E402
from extensor.distributed.sharded import ShardedOptimizer  # noqa: E402
from extensor.training.optimizers import LAMB  # noqa: E402

STEPS = 110
LAYOUT = [([0, 1, 2], 2.0), ([3, 4], 1.0)]  # parameter indices and lr factor of each group


#: optax in float64 (float32 arrays stay float32 under it), restored afterwards (conftest)
pytestmark = pytest.mark.usefixtures("jax_x64")


OPTIONS: list[dict[str, Any]] = [
    {},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 5e-3, "betas": (0.5, 0.9), "eps": 1e-3, "weight_decay": 0.01, "maximize": True},
    {"lr": 1e-2, "eps_root": 1e-8, "betas": (0.0, 0.99)},
]


def layout(params: list[Any], lrs: list[float]) -> list[dict[str, Any]]:
    return [{"params": [params[i] for i in idx], "lr": lr} for (idx, _), lr in zip(LAYOUT, lrs, strict=True)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("options", OPTIONS, ids=[f"case{i}" for i in range(len(OPTIONS))])
def test_matches_optax(kit: Any, options: dict[str, Any], dtype: Any) -> None:
    """One optax state per parameter (its trust ratio is per tensor), stepped only when it has a
    gradient, with its group's current lr; the lrs halve every 40 steps."""
    twins = kit.Twins(dtype=dtype, seed=7, absent=kit.sometimes_absent())
    lr = options.get("lr", 1e-3)
    lrs = [lr * factor for _, factor in LAYOUT]
    ours = LAMB(layout(twins.ours, lrs), **options)
    b1, b2 = options.get("betas", (0.9, 0.999))
    reference = {
        "b1": b1, "b2": b2, "eps": options.get("eps", 1e-6), "eps_root": options.get("eps_root", 0.0),
        "weight_decay": options.get("weight_decay", 0.0),
    }  # fmt: skip
    group_of = {index: g for g, (indices, _) in enumerate(LAYOUT) for index in indices}
    params = [jax.numpy.asarray(x) for x in twins.initial]
    states = [optax.lamb(1.0, **reference).init(p) for p in params]
    for step in range(STEPS):
        grads = twins.gradients(step)
        for tensor, g in zip(twins.ours, grads, strict=True):
            tensor.grad = g
        ours.step()
        for index, g in enumerate(grads):
            if g is None:
                continue
            g = -g if options.get("maximize", False) else g
            transform = optax.lamb(lrs[group_of[index]], **reference)
            update, states[index] = transform.update(jax.numpy.asarray(g), states[index], params[index])
            params[index] = optax.apply_updates(params[index], update)
        if step % 40 == 39:
            lrs = [value * 0.5 for value in lrs]
            for group in ours.param_groups:
                group["lr"] *= 0.5
        if step % 30 == 0 or step == STEPS - 1:
            for index, (mine, their) in enumerate(zip(twins.ours, params, strict=True)):
                kit.assert_close(mine.data, np.asarray(their), f"step {step} parameter {index}")
    np.testing.assert_array_equal(twins.ours[4].data, twins.initial[4])  # never had a gradient
    for index, tensor in enumerate(twins.ours[:4]):
        adam_state = states[index][0]
        kit.assert_close(ours.state[tensor]["exp_avg"], np.asarray(adam_state.mu), f"exp_avg {index}")
        kit.assert_close(ours.state[tensor]["exp_avg_sq"], np.asarray(adam_state.nu), f"exp_avg_sq {index}")


def test_trust_ratio_is_one_for_a_zero_tensor_and_per_tensor_otherwise() -> None:
    zero = ExTensor(np.zeros(3), requires_grad=True)
    big = ExTensor(np.full(4, 10.0), requires_grad=True)
    optimizer = LAMB([zero, big], lr=0.1)
    zero.grad = np.array([1.0, -1.0, 2.0])
    big.grad = np.array([1.0, 1.0, 1.0, 1.0])
    optimizer.step()  # first step: u = g/|g| elementwise (≈ ±1), zero tensor: r = 1
    np.testing.assert_allclose(zero.data, -0.1 * np.sign([1.0, -1.0, 2.0]), rtol=1e-5)
    np.testing.assert_allclose(big.data, 10.0 - 0.1 * 10.0, rtol=1e-5)  # r = ‖θ‖/‖u‖ = 20/2


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_resume_into_a_fresh_optimizer_is_bit_identical(kit: Any, dtype: Any) -> None:
    def make() -> tuple[Any, LAMB]:
        twins = kit.Twins(dtype=dtype, seed=3, absent=kit.sometimes_absent())
        return twins, LAMB(twins.ours, lr=1e-2, weight_decay=0.1)

    def run(twins: Any, optimizer: LAMB, steps: range) -> None:
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
    run(resumed_twins, resumed, range(20, 40))
    for ours, expected in zip(resumed_twins.ours, straight_twins.ours, strict=True):
        np.testing.assert_array_equal(ours.data, expected.data)
    broken = copy.deepcopy(saved)
    broken["state"][0]["exp_avg"] = np.zeros(2)
    before = resumed.state_dict()
    with pytest.raises(ValueError, match="shape"):
        resumed.load_state_dict(broken)
    after = resumed.state_dict()
    for index, state in before["state"].items():
        for key, value in state.items():
            np.testing.assert_array_equal(after["state"][index][key], value)


def test_a_large_tensor_takes_the_parallel_kernels() -> None:
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(n) for n in (700_000, 5, 600_000)]
    grads = [rng.standard_normal(v.size) for v in values]
    params = [ExTensor(v.copy(), requires_grad=True) for v in values]
    optimizer = LAMB(params, lr=1e-2, weight_decay=0.1)
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    optimizer.step()
    for p, v, g in zip(params, values, grads, strict=True):  # first step by hand
        u = (0.1 * g / 0.1) / (np.sqrt(0.001 * g * g / 0.001) + 1e-6) + 0.1 * v
        expected = v - 1e-2 * (np.linalg.norm(v) / np.linalg.norm(u)) * u
        np.testing.assert_allclose(p.data, expected, rtol=1e-9, atol=1e-12)


def test_cannot_be_sharded() -> None:
    p = ExTensor(np.ones(4), requires_grad=True)
    sharded = ShardedOptimizer(LAMB([p], lr=0.1), comm=SingleProcess())
    p.grad = np.ones(4)
    with pytest.raises(NotImplementedError, match="whole tensors"):
        sharded.step()


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"lr": -1.0}, ValueError, "Invalid learning rate: -1.0"),
        ({"eps": -1e-6}, ValueError, "Invalid epsilon value: -1e-06"),
        ({"eps_root": -1.0}, ValueError, "Invalid eps_root value: -1.0"),
        ({"betas": (1.0, 0.9)}, ValueError, "Invalid beta parameter at index 0: 1.0"),
        ({"betas": (0.9, 1.5)}, ValueError, "Invalid beta parameter at index 1: 1.5"),
        ({"betas": (0.9,)}, TypeError, "betas must be a pair"),
        ({"weight_decay": -0.1}, ValueError, "Invalid weight_decay value: -0.1"),
        ({"lr": float("nan")}, ValueError, "Invalid learning rate: nan"),
        ({"maximize": 1}, TypeError, "maximize"),
    ],
)
def test_invalid_hyperparameters_are_refused(options: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        LAMB([ExTensor(np.zeros(2), requires_grad=True)], **options)
