"""The pure curves equal the stateful schedulers (exactly where torch computes from the step)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extensor.training import schedulers
from extensor.training.schedulers import curves

STEPS = 1000
BASE_LRS = [0.1, 0.03]


def _stateful(scheduler: Any, steps: int) -> np.ndarray:
    values = [scheduler.get_last_lr()]
    for _ in range(steps):
        scheduler.step()
        values.append(scheduler.get_last_lr())
    return np.array(values)


def _curve(function: Callable[..., float], steps: int, **kwargs: Any) -> np.ndarray:
    return np.array([[function(step, base, **kwargs) for base in BASE_LRS] for step in range(steps + 1)])


# (scheduler factory, curve, curve kwargs) for the recursive (chainable) schedulers
RECURSIVE: dict[str, tuple[Callable[[Any], Any], Callable[..., float], dict[str, Any]]] = {
    "StepLR": (lambda o: schedulers.StepLR(o, 30, 0.5), curves.step_lr, {"step_size": 30, "gamma": 0.5}),
    "MultiStepLR": (
        lambda o: schedulers.MultiStepLR(o, [10, 200, 200, 700], 0.3),
        curves.multistep_lr,
        {"milestones": [10, 200, 200, 700], "gamma": 0.3},
    ),
    "ExponentialLR": (lambda o: schedulers.ExponentialLR(o, 0.997), curves.exponential_lr, {"gamma": 0.997}),
    "ConstantLR": (
        lambda o: schedulers.ConstantLR(o, 0.2, 40),
        curves.constant_lr,
        {"factor": 0.2, "total_iters": 40},
    ),
    "LinearLR": (
        lambda o: schedulers.LinearLR(o, 0.05, 0.8, 300),
        curves.linear_lr,
        {"start_factor": 0.05, "end_factor": 0.8, "total_iters": 300},
    ),
    "PolynomialLR": (
        lambda o: schedulers.PolynomialLR(o, 800, 1.5),
        curves.polynomial_lr,
        {"total_iters": 800, "power": 1.5},
    ),
    "CosineAnnealingLR": (
        lambda o: schedulers.CosineAnnealingLR(o, 123, 1e-4),
        curves.cosine_annealing_lr,
        {"T_max": 123, "eta_min": 1e-4},
    ),
}


@pytest.mark.parametrize("name", sorted(RECURSIVE))
def test_curve_equals_recursive_scheduler(name: str, make_pair: Any) -> None:
    factory, function, kwargs = RECURSIVE[name]
    opt, _ = make_pair("sgd", BASE_LRS)
    stepped = _stateful(factory(opt), STEPS)
    closed = _curve(function, STEPS, **kwargs)
    np.testing.assert_allclose(stepped, closed, rtol=1e-12, atol=1e-300)


def test_cosine_recursion_drifts_from_the_closed_form_as_torch_does(make_pair: Any) -> None:
    """Torch's recursive cosine is not bit-equal to the closed form; we reproduce the recursion."""
    opt, _ = make_pair("sgd", BASE_LRS)
    stepped = _stateful(schedulers.CosineAnnealingLR(opt, 77), STEPS)
    closed = _curve(curves.cosine_annealing_lr, STEPS, T_max=77)
    assert not np.array_equal(stepped, closed)
    np.testing.assert_allclose(stepped, closed, rtol=1e-12)


@pytest.mark.parametrize("t_mult", [1, 2, 3])
def test_warm_restarts_curve_is_exact(t_mult: int, make_pair: Any) -> None:
    opt, _ = make_pair("sgd", BASE_LRS)
    stepped = _stateful(schedulers.CosineAnnealingWarmRestarts(opt, 7, t_mult, 1e-3), STEPS)
    closed = _curve(curves.cosine_annealing_warm_restarts_lr, STEPS, T_0=7, T_mult=t_mult, eta_min=1e-3)
    assert np.array_equal(stepped, closed)


@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_one_cycle_curves_are_exact(three_phase: bool, strategy: str, kind: str, make_pair: Any) -> None:
    opt, _ = make_pair(kind, BASE_LRS)
    options = {"pct_start": 0.35, "anneal_strategy": strategy, "three_phase": three_phase}
    scheduler = schedulers.OneCycleLR(opt, max_lr=[1.0, 0.4], total_steps=STEPS, div_factor=20.0, **options)
    key = "momentum" if kind == "sgd" else "betas"
    lrs, momenta = [], []
    for step in range(STEPS + 1):
        lrs.append(scheduler.get_last_lr())
        momenta.append([g[key] if kind == "sgd" else g[key][0] for g in opt.param_groups])
        if step < STEPS:
            scheduler.step()
    for step in range(STEPS + 1):
        expected = [
            curves.one_cycle_lr(step, peak, STEPS, div_factor=20.0, **options)  # type: ignore[arg-type]
            for peak in [1.0, 0.4]
        ]
        assert lrs[step] == expected
        momentum = curves.one_cycle_momentum(step, STEPS, **options)  # type: ignore[arg-type]
        assert momenta[step] == [momentum, momentum]


@pytest.mark.parametrize(
    "options",
    [
        {"mode": "triangular"},
        {"mode": "triangular2", "step_size_down": 13},
        {"mode": "exp_range", "gamma": 0.998},
        {"scale_fn": lambda x: 1 / (1 + x / 500), "scale_mode": "iterations"},
    ],
)
def test_cyclic_curves_are_exact(options: dict[str, Any], make_pair: Any) -> None:
    opt, _ = make_pair("sgd", BASE_LRS)
    scheduler = schedulers.CyclicLR(opt, base_lr=0.01, max_lr=0.2, step_size_up=29, **options)
    for step in range(STEPS + 1):
        assert scheduler.get_last_lr() == [curves.cyclic_lr(step, 0.01, 0.2, 29, **options)] * 2
        momentum = curves.cyclic_momentum(step, 0.8, 0.9, 29, **options)
        assert [g["momentum"] for g in opt.param_groups] == [momentum] * 2
        scheduler.step()


def test_curves_registry_names_real_schedulers() -> None:
    for name, function in curves.CURVES.items():
        assert isinstance(getattr(schedulers, name), type)
        assert callable(function) and function.__doc__


@settings(max_examples=200, deadline=None)
@given(step=st.integers(0, 10**6), t_0=st.integers(1, 50), t_mult=st.integers(1, 4))
def test_warm_restart_position_is_a_valid_phase(step: int, t_0: int, t_mult: int) -> None:
    t_cur, t_i = curves.warm_restart_position(step, t_0, t_mult)
    assert 0 <= t_cur < t_i
    # t_i is T_0 * T_mult**k, and the restarts before `step` sum to step - t_cur
    k = round(math.log(t_i / t_0, t_mult)) if t_mult > 1 else 0
    assert t_i == t_0 * t_mult**k
    done = sum(t_0 * t_mult**j for j in range(k)) if t_mult > 1 else (step // t_0) * t_0
    assert step - t_cur == done


@settings(max_examples=100, deadline=None)
@given(
    step=st.integers(0, 500),
    total=st.integers(10, 500),
    pct=st.floats(0.05, 0.95),
    peak=st.floats(1e-4, 10.0),
)
def test_one_cycle_lr_stays_between_its_anchors(step: int, total: int, pct: float, peak: float) -> None:
    step = min(step, total - 1)
    if pct * total == 1:
        return
    lr = curves.one_cycle_lr(step, peak, total, pct_start=pct)
    assert peak / 25.0 / 1e4 * (1 - 1e-12) <= lr <= peak * (1 + 1e-12)


def test_curves_reject_bad_steps() -> None:
    with pytest.raises(ValueError, match="step must be an integer >= 0"):
        curves.step_lr(-1, 0.1, 10)
    with pytest.raises(TypeError, match="step must be an integer"):
        curves.cosine_annealing_lr(1.5, 0.1, 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Tried to step 11 times"):
        curves.one_cycle_lr(11, 0.1, 10)
    with pytest.raises(ValueError, match="anneal_strategy"):
        curves.one_cycle_lr(1, 0.1, 10, anneal_strategy="exp")
    with pytest.raises(ValueError, match="phase 0 is empty"):
        curves.one_cycle_lr(0, 0.1, 10, pct_start=0.1)
    with pytest.raises(ValueError, match="mode"):
        curves.cyclic_lr(3, 0.1, 1.0, mode="sawtooth")
    with pytest.raises(ValueError, match="step_size_up"):
        curves.cyclic_lr(3, 0.1, 1.0, step_size_up=0)
