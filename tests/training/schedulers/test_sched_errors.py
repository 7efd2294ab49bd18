"""Misuse: invalid arguments raise where torch raises (clear ValueErrors here), nothing is changed."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as torch_schedulers

from extensor.core.tensor import ExTensor
from extensor.training import schedulers as our_schedulers
from extensor.training.optimizers import Optimizer
from extensor.training.schedulers._checks import ArgumentTypeError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _groups(optimizer: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]


# invalid arguments torch itself rejects with a ValueError: ours must raise a ValueError too
TORCH_REJECTS: dict[str, Callable[[Any, Any], Any]] = {
    "ConstantLR factor > 1": lambda M, o: M.ConstantLR(o, factor=1.5),
    "ConstantLR factor < 0": lambda M, o: M.ConstantLR(o, factor=-0.1),
    "LinearLR start 0": lambda M, o: M.LinearLR(o, start_factor=0.0),
    "LinearLR start > 1": lambda M, o: M.LinearLR(o, start_factor=1.1),
    "LinearLR end > 1": lambda M, o: M.LinearLR(o, end_factor=1.1),
    "LinearLR end < 0": lambda M, o: M.LinearLR(o, end_factor=-0.1),
    "WarmRestarts T_0 0": lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=0),
    "WarmRestarts T_0 float": lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=2.5),
    "WarmRestarts T_mult 0": lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=0),
    "WarmRestarts eta_min str": lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=5, eta_min="0"),
    "OneCycle no length": lambda M, o: M.OneCycleLR(o, max_lr=0.1),
    "OneCycle total 0": lambda M, o: M.OneCycleLR(o, max_lr=0.1, total_steps=0),
    "OneCycle total float": lambda M, o: M.OneCycleLR(o, max_lr=0.1, total_steps=10.0),
    "OneCycle epochs 0": lambda M, o: M.OneCycleLR(o, max_lr=0.1, epochs=0, steps_per_epoch=5),
    "OneCycle steps_per_epoch -1": lambda M, o: M.OneCycleLR(o, max_lr=0.1, epochs=3, steps_per_epoch=-1),
    "OneCycle pct_start > 1": lambda M, o: M.OneCycleLR(o, max_lr=0.1, total_steps=10, pct_start=1.5),
    "OneCycle pct_start < 0": lambda M, o: M.OneCycleLR(o, max_lr=0.1, total_steps=10, pct_start=-0.1),
    "OneCycle strategy": lambda M, o: M.OneCycleLR(o, max_lr=0.1, total_steps=10, anneal_strategy="exp"),
    "OneCycle max_lr length": lambda M, o: M.OneCycleLR(o, max_lr=[0.1, 0.2, 0.3], total_steps=10),
    "OneCycle momentum length": lambda M, o: M.OneCycleLR(o, max_lr=0.1, total_steps=10, max_momentum=[0.9]),
    "CyclicLR mode": lambda M, o: M.CyclicLR(o, 0.01, 0.1, mode="sawtooth"),
    "CyclicLR base_lr length": lambda M, o: M.CyclicLR(o, [0.01], 0.1),
    "LambdaLR length": lambda M, o: M.LambdaLR(o, [lambda e: 1.0] * 3),
    "MultiplicativeLR length": lambda M, o: M.MultiplicativeLR(o, [lambda e: 1.0]),
    "Plateau factor 1": lambda M, o: M.ReduceLROnPlateau(o, factor=1.0),
    "Plateau mode": lambda M, o: M.ReduceLROnPlateau(o, mode="median"),
    "Plateau threshold mode": lambda M, o: M.ReduceLROnPlateau(o, threshold_mode="pct"),
    "Plateau min_lr length": lambda M, o: M.ReduceLROnPlateau(o, min_lr=[0.0]),
    "Sequential no schedulers": lambda M, o: M.SequentialLR(o, [], []),
    "Sequential milestones": lambda M, o: M.SequentialLR(o, [M.ExponentialLR(o, 0.9)], [3]),
    "Sequential plateau": lambda M, o: M.SequentialLR(
        o, [M.ExponentialLR(o, 0.9), M.ReduceLROnPlateau(o)], [3]
    ),
    "Chained no schedulers": lambda M, o: M.ChainedScheduler([]),
    "Chained plateau": lambda M, o: M.ChainedScheduler([M.ReduceLROnPlateau(o)]),
}


@pytest.mark.parametrize("name", sorted(TORCH_REJECTS))
def test_rejects_what_torch_rejects_and_changes_nothing(name: str, make_pair: Any) -> None:
    factory = TORCH_REJECTS[name]
    opt, topt = make_pair("sgd", [0.1, 0.03])
    with pytest.raises(ValueError):
        factory(torch_schedulers, topt)
    before = copy.deepcopy(_groups(opt))
    with pytest.raises(ValueError) as caught:
        factory(our_schedulers, opt)
    assert str(caught.value)
    if "Sequential" not in name and "Chained" not in name:  # their children legitimately initialised
        assert _groups(opt) == before


def test_schedulers_need_an_extensor_optimizer(make_pair: Any) -> None:
    _, topt = make_pair("sgd", [0.1])

    class Duck:
        param_groups: ClassVar[list[dict[str, Any]]] = [{"lr": 0.1}]
        defaults: ClassVar[dict[str, Any]] = {"lr": 0.1}

    for optimizer in [topt, Duck(), None]:
        for make in [
            lambda o: our_schedulers.StepLR(o, 3),
            lambda o: our_schedulers.OneCycleLR(o, 0.1, total_steps=10),
            lambda o: our_schedulers.CyclicLR(o, 0.01, 0.1),
            lambda o: our_schedulers.LambdaLR(o, lambda e: 1.0),
            lambda o: our_schedulers.ReduceLROnPlateau(o),
        ]:
            with pytest.raises(TypeError, match="is not an Optimizer"):
                make(optimizer)


def test_extra_checks_where_torch_would_crash_later(make_pair: Any) -> None:
    """Arguments torch accepts but then divides by zero on (or loops forever with) are refused."""
    opt, _ = make_pair("sgd", [0.1, 0.03])
    before = copy.deepcopy(_groups(opt))
    with pytest.raises(ValueError, match="step_size must be an integer >= 1, got 0"):
        our_schedulers.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="T_max must be > 0"):
        our_schedulers.CosineAnnealingLR(opt, T_max=0)
    with pytest.raises(ValueError, match="div_factor must be > 0"):
        our_schedulers.OneCycleLR(opt, 0.1, total_steps=10, div_factor=0)
    with pytest.raises(ValueError, match="phase 0 is empty"):  # torch: ZeroDivisionError
        our_schedulers.OneCycleLR(opt, 0.1, total_steps=10, pct_start=0.1)
    with pytest.raises(ValueError, match="step_size_up must be > 0"):
        our_schedulers.CyclicLR(opt, 0.01, 0.1, step_size_up=0)
    with pytest.raises(ValueError, match="factor must be >= 0"):
        our_schedulers.ReduceLROnPlateau(opt, factor=-0.5)
    with pytest.raises(ValueError, match="milestones must be in non-decreasing order"):
        our_schedulers.SequentialLR(opt, [our_schedulers.ExponentialLR(opt, 0.9)] * 3, [10, 5])
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in before]


def test_wrong_types_are_type_errors_and_value_errors(make_pair: Any) -> None:
    opt, _ = make_pair("sgd", [0.1])
    for make in [
        lambda: our_schedulers.StepLR(opt, "3"),
        lambda: our_schedulers.ExponentialLR(opt, gamma=None),
        lambda: our_schedulers.MultiStepLR(opt, [1, 2.5]),
        lambda: our_schedulers.OneCycleLR(opt, max_lr="0.1", total_steps=10),
        lambda: our_schedulers.StepLR(opt, 3, last_epoch=1.0),
    ]:
        with pytest.raises(ArgumentTypeError) as caught:
            make()
        assert isinstance(caught.value, TypeError) and isinstance(caught.value, ValueError)
    with pytest.raises(TypeError, match="lr_lambda"):
        our_schedulers.LambdaLR(opt, 0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="LRScheduler"):
        our_schedulers.ChainedScheduler([object()])  # type: ignore[list-item]


@settings(max_examples=60, deadline=None)
@given(
    factor=st.one_of(st.floats(1.0000001, 1e6), st.floats(-1e6, -1e-9)),
    start=st.one_of(st.floats(1.0000001, 1e6), st.floats(-1e6, 0.0)),
    pct=st.one_of(st.floats(1.0000001, 1e3), st.floats(-1e3, -1e-9)),
)
def test_out_of_range_factors_always_raise_and_leave_the_groups(
    factor: float, start: float, pct: float
) -> None:
    params = [ExTensor([0.0], requires_grad=True)]
    from extensor.training.optimizers import SGD

    opt = SGD(params, lr=0.1, momentum=0.5)
    before = copy.deepcopy(_groups(opt))
    for make in [
        lambda: our_schedulers.ConstantLR(opt, factor=factor),
        lambda: our_schedulers.LinearLR(opt, start_factor=start),
        lambda: our_schedulers.LinearLR(opt, end_factor=factor),
        lambda: our_schedulers.OneCycleLR(opt, 1.0, total_steps=100, pct_start=pct),
    ]:
        with pytest.raises(
            ValueError, match=r"got (factor|start_factor|end_factor)?=?-?[0-9.e+-]+|pct_start"
        ):
            make()
        assert _groups(opt) == before


def test_cycle_momentum_needs_momentum_or_betas() -> None:
    class PlainGD(Optimizer):
        """Gradient descent without momentum, to test the schedulers' check."""

        def __init__(self, params: Any, lr: float) -> None:
            super().__init__(params, {"lr": lr})

        def _validate_group(self, group: Mapping[str, Any]) -> None:
            pass

    opt = PlainGD([ExTensor([1.0], requires_grad=True)], lr=0.1)
    for make in [
        lambda: our_schedulers.OneCycleLR(opt, 1.0, total_steps=10),
        lambda: our_schedulers.CyclicLR(opt, 0.01, 0.1),
    ]:
        with pytest.raises(ValueError, match="'momentum' or 'betas'"):
            make()
    assert opt.param_groups[0]["lr"] == 0.1 and "initial_lr" not in opt.param_groups[0]
    our_schedulers.OneCycleLR(opt, 1.0, total_steps=10, cycle_momentum=False)  # fine without cycling


def test_resume_without_initial_lr_is_a_key_error(make_pair: Any) -> None:
    opt, topt = make_pair("sgd", [0.1])
    with pytest.raises(KeyError):
        torch_schedulers.StepLR(topt, 3, last_epoch=5)
    with pytest.raises(KeyError, match="initial_lr"):
        our_schedulers.StepLR(opt, 3, last_epoch=5)
    with pytest.raises(KeyError, match="initial_lr"):
        our_schedulers.OneCycleLR(opt, 0.1, total_steps=10, last_epoch=5)
    with pytest.raises(ValueError, match="last_epoch must be an integer >= -1"):
        our_schedulers.StepLR(opt, 3, last_epoch=-2)


def test_composites_need_one_optimizer(make_pair: Any) -> None:
    opt, _ = make_pair("sgd", [0.1])
    other, _ = make_pair("sgd", [0.1])
    mine, theirs = our_schedulers.ExponentialLR(opt, 0.9), our_schedulers.ExponentialLR(other, 0.9)
    with pytest.raises(ValueError, match="same optimizer"):
        our_schedulers.SequentialLR(opt, [mine, theirs], [3])
    with pytest.raises(ValueError, match="same optimizer"):
        our_schedulers.ChainedScheduler([mine, theirs])
    with pytest.raises(ValueError, match="same optimizer"):
        our_schedulers.ChainedScheduler([mine], optimizer=other)


def test_load_state_dict_validates_everything_first(make_pair: Any) -> None:
    opt, _ = make_pair("sgd", [0.1, 0.03])
    scheduler = our_schedulers.SequentialLR(
        opt,
        [our_schedulers.LinearLR(opt, 0.1, total_iters=5), our_schedulers.CosineAnnealingLR(opt, 20)],
        [5],
    )
    for _ in range(8):
        scheduler.step()
    good = scheduler.state_dict()
    before = copy.deepcopy(good)

    def broken(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        state = copy.deepcopy(good)
        change(state)
        return state

    cases: list[tuple[Any, type[Exception], str]] = [
        ([1, 2], TypeError, "mapping"),
        (broken(lambda s: s.pop("_milestones")), ValueError, "missing keys"),
        (broken(lambda s: s.update(extra=1)), ValueError, "unexpected keys"),
        (broken(lambda s: s.update(_last_lr=[0.1])), ValueError, "one value per param group"),
        (broken(lambda s: s.update(last_epoch="8")), ValueError, "last_epoch"),
        (broken(lambda s: s["_schedulers"].pop()), ValueError, "holds 1 scheduler states"),
        (broken(lambda s: s["_schedulers"][1].update(T_max="20")), ValueError, "T_max"),
        (broken(lambda s: s["_schedulers"][1].update(base_lrs=[0.1])), ValueError, "base_lrs"),
        (broken(lambda s: s["_schedulers"][0].pop("start_factor")), ValueError, "start_factor"),
    ]
    for state, error, message in cases:
        with pytest.raises(error, match=message):
            scheduler.load_state_dict(state)
        assert scheduler.state_dict() == before
    multistep = our_schedulers.MultiStepLR(opt, [3, 5])
    state = multistep.state_dict()
    state["milestones"] = {"three": 1}
    with pytest.raises(ValueError, match="milestones"):
        multistep.load_state_dict(state)
    plateau = our_schedulers.ReduceLROnPlateau(opt)
    state = plateau.state_dict()
    state["mode"] = "median"
    with pytest.raises(ValueError, match="median"):
        plateau.load_state_dict(state)
    assert plateau.mode == "min"


def test_get_lr_outside_step_warns_like_torch(make_pair: Any) -> None:
    opt, _ = make_pair("sgd", [0.1])
    scheduler = our_schedulers.StepLR(opt, 3)
    with pytest.warns(UserWarning, match="get_last_lr"):
        scheduler.get_lr()


def test_bad_step_arguments(make_pair: Any) -> None:
    opt, _ = make_pair("sgd", [0.1])
    scheduler = our_schedulers.StepLR(opt, 3)
    with pytest.raises(ValueError, match="epoch must be an integer >= 0"):
        scheduler.step(-1)
    restarts = our_schedulers.CosineAnnealingWarmRestarts(opt, 3)
    with pytest.raises(ValueError, match="non-negative epoch"):
        restarts.step(-0.5)
    plateau = our_schedulers.ReduceLROnPlateau(opt)
    with pytest.raises(TypeError, match="metrics must be a number"):
        plateau.step("low")  # type: ignore[arg-type]
    assert (scheduler.last_epoch, restarts.last_epoch, plateau.last_epoch) == (0, 0, 0)


def test_constant_lr_with_zero_factor_cannot_restore(make_pair: Any) -> None:
    opt, _ = make_pair("sgd", [0.1])
    scheduler = our_schedulers.ConstantLR(opt, factor=0.0, total_iters=3)
    scheduler.step()
    scheduler.step()
    with pytest.raises(ValueError, match="factor=0"):
        scheduler.step()
    assert scheduler.last_epoch == 2 and opt.param_groups[0]["lr"] == 0.0
