"""Every scheduler against live torch 2.13: 1,000 steps, grids of arguments, lrs and momentum/betas."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as torch_schedulers

from extensor.training import schedulers as our_schedulers

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

Factory = Callable[[Any, Any], Any]
STEPS = 1000


def _cases() -> dict[str, Factory]:
    """name -> factory(module, optimizer); the module is torch's lr_scheduler or ours."""
    cases: dict[str, Factory] = {}
    for size, gamma in [(1, 0.9), (7, 0.5), (30, 0.1), (100, 1.05)]:
        cases[f"StepLR-{size}-{gamma}"] = lambda M, o, s=size, g=gamma: M.StepLR(o, step_size=s, gamma=g)
    for milestones, gamma in [([30, 80], 0.1), ([900, 3, 10, 10], 0.7), ([0, 5, 2000], 2.0)]:
        cases[f"MultiStepLR-{milestones}-{gamma}"] = lambda M, o, m=milestones, g=gamma: M.MultiStepLR(
            o, m, g
        )
    for gamma in [0.9, 0.995, 1.001]:
        cases[f"ExponentialLR-{gamma}"] = lambda M, o, g=gamma: M.ExponentialLR(o, gamma=g)
    for start, end, total in [
        (1 / 3, 1.0, 5),
        (0.01, 1.0, 100),
        (1.0, 0.05, 300),
        (0.5, 0.5, 10),
        (0.2, 1.0, 0),
    ]:
        cases[f"LinearLR-{start:.3g}-{end}-{total}"] = lambda M, o, s=start, e=end, t=total: M.LinearLR(
            o, start_factor=s, end_factor=e, total_iters=t
        )
    for factor, total in [(1 / 3, 5), (0.1, 100), (1.0, 3), (0.5, 0)]:
        cases[f"ConstantLR-{factor:.3g}-{total}"] = lambda M, o, f=factor, t=total: M.ConstantLR(
            o, factor=f, total_iters=t
        )
    for total, power in [(5, 1.0), (300, 2.0), (1000, 0.5), (999, 3.0), (0, 1.0)]:
        cases[f"PolynomialLR-{total}-{power}"] = lambda M, o, t=total, p=power: M.PolynomialLR(
            o, total_iters=t, power=p
        )
    for t_max, eta_min in [(1, 0.0), (10, 0.0), (77, 1e-4), (100, 0.05), (1000, 0.0), (12.5, 0.001)]:
        cases[f"CosineAnnealingLR-{t_max}-{eta_min}"] = lambda M, o, t=t_max, e=eta_min: M.CosineAnnealingLR(
            o, T_max=t, eta_min=e
        )
    for t0, mult, eta_min in [(1, 1, 0.0), (10, 1, 0.0), (13, 2, 1e-5), (5, 3, 0.01)]:
        cases[f"CosineAnnealingWarmRestarts-{t0}-{mult}-{eta_min}"] = lambda M, o, a=t0, b=mult, c=eta_min: (
            M.CosineAnnealingWarmRestarts(o, T_0=a, T_mult=b, eta_min=c)
        )
    one_cycle: list[dict[str, Any]] = [
        {"max_lr": 0.5, "total_steps": STEPS},
        {"max_lr": [0.5, 1.0], "total_steps": STEPS, "anneal_strategy": "linear", "pct_start": 0.25},
        {"max_lr": 1.0, "epochs": 10, "steps_per_epoch": 100, "three_phase": True},
        {
            "max_lr": 1.0,
            "total_steps": 1200,
            "three_phase": True,
            "anneal_strategy": "linear",
            "pct_start": 0.4,
        },
        {
            "max_lr": 0.3,
            "total_steps": STEPS,
            "cycle_momentum": False,
            "div_factor": 10.0,
            "final_div_factor": 100.0,
        },
        {"max_lr": [0.3, 0.1], "total_steps": 2000, "base_momentum": [0.8, 0.7], "max_momentum": 0.99},
        {"max_lr": 0.1, "total_steps": STEPS, "pct_start": 0.0},
        {"max_lr": 0.1, "total_steps": STEPS, "pct_start": 0.999},
    ]
    for index, kwargs in enumerate(one_cycle):
        cases[f"OneCycleLR-{index}"] = lambda M, o, k=kwargs: M.OneCycleLR(o, **k)
    base = {"base_lr": 0.01, "max_lr": 0.1}
    cyclic: list[dict[str, Any]] = [
        {**base, "step_size_up": 40},
        {"base_lr": [0.01, 0.02], "max_lr": [0.1, 0.2], "step_size_up": 33, "step_size_down": 17},
        {"base_lr": 0.001, "max_lr": 0.1, "step_size_up": 50, "mode": "exp_range", "gamma": 0.999},
        {**base, "step_size_up": 20, "scale_fn": lambda x: 0.5 ** (x / 100.0), "scale_mode": "iterations"},
        {**base, "step_size_up": 20, "scale_fn": lambda x: 1.0 / x},
        {**base, "step_size_up": 25, "step_size_down": 0, "cycle_momentum": False},
        {**base, "step_size_up": 30, "base_momentum": [0.7, 0.6], "max_momentum": 0.95},
    ]
    cyclic[1]["mode"] = "triangular2"
    for index, kwargs in enumerate(cyclic):
        cases[f"CyclicLR-{index}"] = lambda M, o, k=kwargs: M.CyclicLR(o, **k)
    cases["LambdaLR"] = lambda M, o: M.LambdaLR(o, lambda epoch: 0.99**epoch)
    cases["LambdaLR-per-group"] = lambda M, o: M.LambdaLR(
        o, [lambda epoch: 1.0 / (1 + epoch), lambda epoch: math.cos(epoch / 50.0) ** 2]
    )
    cases["MultiplicativeLR"] = lambda M, o: M.MultiplicativeLR(o, lambda epoch: 0.999)
    cases["MultiplicativeLR-per-group"] = lambda M, o: M.MultiplicativeLR(
        o, [lambda epoch: 0.995, lambda epoch: 1.0 if epoch % 10 else 0.5]
    )
    cases["SequentialLR-warmup-cosine"] = lambda M, o: M.SequentialLR(
        o,
        [M.LinearLR(o, start_factor=0.01, total_iters=50), M.CosineAnnealingLR(o, T_max=950)],
        milestones=[50],
    )
    cases["SequentialLR-three"] = lambda M, o: M.SequentialLR(
        o,
        [M.ConstantLR(o, factor=0.1, total_iters=20), M.ExponentialLR(o, gamma=0.99), M.StepLR(o, 100, 0.5)],
        milestones=[20, 400],
    )
    cases["SequentialLR-restarts"] = lambda M, o: M.SequentialLR(
        o, [M.LinearLR(o, 0.1, total_iters=10), M.CosineAnnealingWarmRestarts(o, T_0=30, T_mult=2)], [10]
    )
    cases["ChainedScheduler-constant-exponential"] = lambda M, o: M.ChainedScheduler(
        [M.ConstantLR(o, factor=0.1, total_iters=20), M.ExponentialLR(o, gamma=0.999)]
    )
    cases["ChainedScheduler-three"] = lambda M, o: M.ChainedScheduler(
        [M.LinearLR(o, 0.5, total_iters=30), M.StepLR(o, 50, 0.8), M.CosineAnnealingLR(o, 200)], optimizer=o
    )
    return cases


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_schedule_matches_torch(name: str, kind: str, make_pair: Any, assert_same_schedule: Any) -> None:
    factory = CASES[name]
    opt, topt = make_pair(kind, [0.1, 0.03])
    ours, theirs = factory(our_schedulers, opt), factory(torch_schedulers, topt)
    assert_same_schedule(ours, theirs, opt, topt, STEPS)


@pytest.mark.parametrize(
    "name", ["OneCycleLR-0", "CyclicLR-1", "CosineAnnealingLR-77-0.0001", "StepLR-7-0.5"]
)
def test_adamw_beta1_and_single_group(name: str, make_pair: Any, assert_same_schedule: Any) -> None:
    factory = CASES[name]
    lrs = [0.05] if "CyclicLR-1" not in name else [0.05, 0.01]
    opt, topt = make_pair("adamw", lrs)
    assert_same_schedule(factory(our_schedulers, opt), factory(torch_schedulers, topt), opt, topt, STEPS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_dict_has_torchs_keys_and_values(name: str, make_pair: Any, assert_state_equal: Any) -> None:
    factory = CASES[name]
    opt, topt = make_pair("sgd", [0.1, 0.03])
    ours, theirs = factory(our_schedulers, opt), factory(torch_schedulers, topt)
    for _ in range(137):
        ours.step()
        theirs.step()
    assert_state_equal(ours.state_dict(), theirs.state_dict())


def test_schedulers_drive_the_real_optimizer_step() -> None:
    """The lr a scheduler writes is the one the next optimizer step uses (same path as torch)."""
    from extensor.core.tensor import ExTensor
    from extensor.training.optimizers import SGD

    weights = np.linspace(-1, 1, 6)
    ours_param = ExTensor(weights.copy(), requires_grad=True)
    torch_param = torch.tensor(weights.copy(), requires_grad=True)
    opt = SGD([ours_param], lr=0.1, momentum=0.9)
    topt = torch.optim.SGD([torch_param], lr=0.1, momentum=0.9)
    ours = our_schedulers.OneCycleLR(opt, max_lr=0.5, total_steps=60)
    theirs = torch_schedulers.OneCycleLR(topt, max_lr=0.5, total_steps=60)
    for step in range(60):
        gradient = np.sin(np.arange(6) + step)
        ours_param.grad = gradient.copy()
        torch_param.grad = torch.tensor(gradient.copy())
        opt.step()
        topt.step()
        ours.step()
        theirs.step()
    np.testing.assert_allclose(ours_param.data, torch_param.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("threshold_mode", ["rel", "abs"])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"patience": 0, "factor": 0.5},
        {"patience": 3, "cooldown": 5, "factor": 0.3, "min_lr": 1e-3},
        {"patience": 2, "min_lr": [1e-4, 2e-3], "eps": 1e-3, "threshold": 0.05},
    ],
)
def test_reduce_on_plateau_matches_torch(
    mode: str, threshold_mode: str, options: dict[str, Any], make_pair: Any
) -> None:
    opt, topt = make_pair("sgd", [0.1, 0.03])
    ours = our_schedulers.ReduceLROnPlateau(opt, mode=mode, threshold_mode=threshold_mode, **options)
    theirs = torch_schedulers.ReduceLROnPlateau(topt, mode=mode, threshold_mode=threshold_mode, **options)
    rng = np.random.default_rng(len(options) + 7 * (mode == "max") + 3 * (threshold_mode == "abs"))
    # a noisy metric that improves, then plateaus, then improves again
    trend = np.concatenate([np.linspace(1.0, 0.5, 200), np.full(600, 0.5), np.linspace(0.5, 0.2, 200)])
    metrics = trend + rng.normal(0, 0.01, trend.size)
    if mode == "max":
        metrics = -metrics
    for value in metrics:
        ours.step(value)
        theirs.step(float(value))
        assert ours.get_last_lr() == theirs.get_last_lr()
        assert (ours.best, ours.num_bad_epochs, ours.cooldown_counter) == (
            theirs.best,
            theirs.num_bad_epochs,
            theirs.cooldown_counter,
        )
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in topt.param_groups]
    assert ours.last_epoch == theirs.last_epoch


def test_deprecated_step_with_epoch_uses_the_closed_form(make_pair: Any) -> None:
    opt, topt = make_pair("sgd", [0.1, 0.03])
    for factory in [
        lambda M, o: M.StepLR(o, 7, 0.5),
        lambda M, o: M.MultiStepLR(o, [3, 9, 9], 0.5),
        lambda M, o: M.ExponentialLR(o, 0.97),
        lambda M, o: M.LinearLR(o, 0.1, 0.9, 20),
        lambda M, o: M.ConstantLR(o, 0.2, 8),
        lambda M, o: M.PolynomialLR(o, 30, 2.0),
        lambda M, o: M.CosineAnnealingLR(o, 25, 0.001),
        lambda M, o: M.LambdaLR(o, lambda e: 1 / (e + 1)),
    ]:
        opt, topt = make_pair("sgd", [0.1, 0.03])
        ours, theirs = factory(our_schedulers, opt), factory(torch_schedulers, topt)
        for epoch in [3, 17, 9, 40, 0, 25]:
            with pytest.warns(UserWarning, match="deprecated"):
                ours.step(epoch)
            theirs.step(epoch)
            np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12, atol=0)
            ours.step()
            theirs.step()
            np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("t_mult", [1, 2, 3])
def test_warm_restarts_fractional_epochs(t_mult: int, make_pair: Any) -> None:
    opt, topt = make_pair("adam", [0.1, 0.03])
    ours = our_schedulers.CosineAnnealingWarmRestarts(opt, T_0=10, T_mult=t_mult, eta_min=1e-4)
    theirs = torch_schedulers.CosineAnnealingWarmRestarts(topt, T_0=10, T_mult=t_mult, eta_min=1e-4)
    for epoch in range(40):
        for batch in range(7):
            ours.step(epoch + batch / 7)
            theirs.step(epoch + batch / 7)
            np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12, atol=0)
            assert (ours.T_cur, ours.T_i, ours.last_epoch) == (theirs.T_cur, theirs.T_i, theirs.last_epoch)
    for _ in range(50):  # and back to plain steps
        ours.step()
        theirs.step()
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12, atol=0)


def test_resuming_with_last_epoch(make_pair: Any, assert_same_schedule: Any) -> None:
    """Constructing with last_epoch=k (groups already holding initial_lr) behaves as torch."""
    for factory in [
        lambda M, o, e: M.StepLR(o, 5, 0.5, last_epoch=e),
        lambda M, o, e: M.CosineAnnealingLR(o, 40, last_epoch=e),
        lambda M, o, e: M.LinearLR(o, 0.2, total_iters=30, last_epoch=e),
        lambda M, o, e: M.OneCycleLR(o, 1.0, total_steps=300, last_epoch=e),
        lambda M, o, e: M.CosineAnnealingWarmRestarts(o, 7, 2, last_epoch=e),
    ]:
        opt, topt = make_pair("sgd", [0.1, 0.03])
        factory(our_schedulers, opt, -1)
        factory(torch_schedulers, topt, -1)
        ours, theirs = factory(our_schedulers, opt, 17), factory(torch_schedulers, topt, 17)
        assert_same_schedule(ours, theirs, opt, topt, 200)


def test_one_cycle_steps_exactly_total_steps_then_raises(make_pair: Any) -> None:
    opt, topt = make_pair("adam", [0.1])
    ours = our_schedulers.OneCycleLR(opt, max_lr=1.0, total_steps=10)
    theirs = torch_schedulers.OneCycleLR(topt, max_lr=1.0, total_steps=10)
    for _ in range(10):
        ours.step()
        theirs.step()
    assert ours.get_last_lr() == theirs.get_last_lr()
    before = (ours.last_epoch, ours._step_count, dict(opt.param_groups[0]))
    message = r"Tried to step 11 times\. The specified number of total steps is 10"
    with pytest.raises(ValueError, match=message):
        ours.step()
    with pytest.raises(ValueError, match="Tried to step 11 times"):
        theirs.step()
    # validate-then-mutate: unlike torch, the failed step leaves the scheduler and optimizer untouched
    assert (ours.last_epoch, ours._step_count, dict(opt.param_groups[0])) == before


def test_multiple_schedulers_on_one_optimizer_compose(make_pair: Any, assert_same_schedule: Any) -> None:
    """Two independent schedulers stepping one optimizer (chainable forms multiply)."""
    opt, topt = make_pair("sgd", [0.1, 0.03])
    ours = [our_schedulers.ExponentialLR(opt, 0.99), our_schedulers.CosineAnnealingLR(opt, 50)]
    theirs = [torch_schedulers.ExponentialLR(topt, 0.99), torch_schedulers.CosineAnnealingLR(topt, 50)]
    for _ in range(300):
        for a, b in zip(ours, theirs, strict=True):
            a.step()
            b.step()
        np.testing.assert_allclose(
            [g["lr"] for g in opt.param_groups], [g["lr"] for g in topt.param_groups], rtol=1e-12, atol=0
        )


def _hyperparameters(optimizer: Any) -> list[list[float]]:
    return [
        [float(group["lr"]), float(group.get("momentum", 0.0)), float(group.get("betas", (0.0,))[0])]
        for group in optimizer.param_groups
    ]


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_dict_round_trip_half_way(name: str, make_pair: Any) -> None:
    """Saved half-way (through JSON), restored into a FRESH optimizer and scheduler: the rest of
    the schedule is bit-identical to the uninterrupted run."""
    factory = CASES[name]
    opt, _ = make_pair("sgd", [0.1, 0.03])
    scheduler = factory(our_schedulers, opt)
    for _ in range(STEPS // 2):
        scheduler.step()
    saved = json.loads(json.dumps(scheduler.state_dict()))
    optimizer_state = opt.state_dict()

    fresh_opt, _ = make_pair("sgd", [0.1, 0.03])
    fresh = factory(our_schedulers, fresh_opt)
    fresh_opt.load_state_dict(optimizer_state)
    fresh.load_state_dict(saved)
    assert fresh.get_last_lr() == scheduler.get_last_lr()
    for _ in range(STEPS // 2):
        scheduler.step()
        fresh.step()
        assert fresh.get_last_lr() == scheduler.get_last_lr()
        assert _hyperparameters(fresh_opt) == _hyperparameters(opt)


def test_plateau_state_round_trip_through_json(make_pair: Any) -> None:
    opt, _ = make_pair("adam", [0.1, 0.03])
    scheduler = our_schedulers.ReduceLROnPlateau(opt, mode="max", patience=2, cooldown=1, factor=0.5)
    metrics = np.sin(np.arange(200) / 7.0)
    for value in metrics[:100]:
        scheduler.step(value)
    saved = json.loads(json.dumps(scheduler.state_dict()))  # best may be -inf: Python's JSON keeps it
    fresh_opt, _ = make_pair("adam", [0.1, 0.03])
    fresh = our_schedulers.ReduceLROnPlateau(fresh_opt)
    fresh_opt.load_state_dict(opt.state_dict())
    fresh.load_state_dict(saved)
    assert (fresh.mode, fresh.mode_worse, fresh.patience) == ("max", -math.inf, 2)
    for value in metrics[100:]:
        scheduler.step(value)
        fresh.step(value)
        assert fresh.get_last_lr() == scheduler.get_last_lr()


def test_lambda_state_saves_callable_objects_not_functions(make_pair: Any) -> None:
    class Decay:
        def __init__(self, rate: float) -> None:
            self.rate = rate

        def __call__(self, epoch: int) -> float:
            return self.rate**epoch

    opt, topt = make_pair("sgd", [0.1, 0.03])
    ours = our_schedulers.LambdaLR(opt, [Decay(0.9), lambda epoch: 1.0])
    theirs = torch_schedulers.LambdaLR(topt, [Decay(0.9), lambda epoch: 1.0])
    assert ours.state_dict()["lr_lambdas"] == theirs.state_dict()["lr_lambdas"] == [{"rate": 0.9}, None]
    state = ours.state_dict()
    state["lr_lambdas"][0] = {"rate": 0.5}
    ours.load_state_dict(state)
    assert ours.lr_lambdas[0].rate == 0.5  # type: ignore[attr-defined]


@settings(max_examples=40, deadline=None)
@given(
    t_max=st.integers(1, 300),
    eta_min=st.floats(0.0, 0.01),
    total=st.integers(20, 400),
    pct=st.floats(0.05, 0.95),
    three_phase=st.booleans(),
    up=st.integers(1, 60),
    down=st.integers(0, 60),
    mode=st.sampled_from(["triangular", "triangular2", "exp_range"]),
)
def test_random_arguments_match_torch(
    t_max: int, eta_min: float, total: int, pct: float, three_phase: bool, up: int, down: int, mode: str
) -> None:
    """Hypothesis draws the arguments; every scheduler still reproduces torch step by step."""
    assume(pct * total > 1.5 and (1 - (2 * pct if three_phase else pct)) * total > 1.5)
    factories = [
        lambda M, o: M.CosineAnnealingLR(o, T_max=t_max, eta_min=eta_min),
        lambda M, o: M.OneCycleLR(o, max_lr=0.7, total_steps=total, pct_start=pct, three_phase=three_phase),
        lambda M, o: M.CyclicLR(o, 0.001, 0.05, step_size_up=up, step_size_down=down, mode=mode, gamma=0.99),
        lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=up, T_mult=1 + down % 3, eta_min=eta_min),
    ]
    for factory in factories:
        opt, topt = _adam_pair([0.02, 0.2])
        ours, theirs = factory(our_schedulers, opt), factory(torch_schedulers, topt)
        for _ in range(min(total, 300)):
            ours.step()
            theirs.step()
            assert ours.get_last_lr() == theirs.get_last_lr()
            assert [g["betas"] for g in opt.param_groups] == [g["betas"] for g in topt.param_groups]


def _adam_pair(lrs: list[float]) -> tuple[Any, Any]:
    from extensor.core.tensor import ExTensor
    from extensor.training.optimizers import Adam

    ours = Adam([{"params": [ExTensor(np.zeros(1), requires_grad=True)], "lr": lr} for lr in lrs])
    theirs = torch.optim.Adam([{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs])
    return ours, theirs
