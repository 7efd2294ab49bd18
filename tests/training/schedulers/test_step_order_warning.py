"""The warning when ``scheduler.step()`` comes before the first ``optimizer.step()``, as torch gives it."""

from __future__ import annotations

import copy
import gc
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch

from extensor.core.tensor import ExTensor
from extensor.distributed import SingleProcess
from extensor.distributed.sharded import ShardedOptimizer
from extensor.training import optimizers, schedulers
from extensor.training.schedulers.base import STEP_ORDER_WARNING

ORDER = "Detected call of `lr_scheduler.step()`"


def _ours(kind: str = "sgd") -> Any:
    p = ExTensor(np.ones(3, np.float32), requires_grad=True)
    opt = optimizers.SGD([p], lr=0.1, momentum=0.9) if kind == "sgd" else optimizers.Adam([p], lr=0.1)
    return opt, p


def _theirs() -> Any:
    p = torch.ones(3, requires_grad=True)
    return torch.optim.SGD([p], lr=0.1, momentum=0.9), p


#: scheduler factories with the same arguments for both libraries: (library module, optimizer) -> scheduler
SCHEDULERS: dict[str, Callable[[Any, Any], Any]] = {
    "StepLR": lambda lib, opt: lib.StepLR(opt, 2),
    "CosineAnnealingLR": lambda lib, opt: lib.CosineAnnealingLR(opt, T_max=10),
    "CosineAnnealingWarmRestarts": lambda lib, opt: lib.CosineAnnealingWarmRestarts(opt, T_0=3),
    "OneCycleLR": lambda lib, opt: lib.OneCycleLR(opt, max_lr=1.0, total_steps=20),
    "SequentialLR": lambda lib, opt: lib.SequentialLR(
        opt, [lib.ConstantLR(opt, factor=0.5, total_iters=2), lib.ExponentialLR(opt, 0.9)], milestones=[2]
    ),
    "ChainedScheduler": lambda lib, opt: lib.ChainedScheduler(
        [lib.ConstantLR(opt, factor=0.5, total_iters=2), lib.ExponentialLR(opt, 0.9)]
    ),
}


def _order_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if ORDER in str(w.message)]


def _scenario(lib: Any, opt: Any, p: Any, make: Callable[[Any, Any], Any], stepped_first: bool) -> list[str]:
    """Build a scheduler, step it (before or after the optimizer) 4 times; return the order warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scheduler = make(lib, opt)
        for _ in range(4):
            if stepped_first:
                p.grad = np.ones(3, np.float32) if isinstance(p, ExTensor) else torch.ones(3)
                opt.step()
            scheduler.step()
            if not stepped_first:
                p.grad = np.ones(3, np.float32) if isinstance(p, ExTensor) else torch.ones(3)
                opt.step()
    return _order_warnings(caught)


@pytest.mark.parametrize("stepped_first", [False, True])
@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_same_warnings_as_torch(name: str, stepped_first: bool) -> None:
    ours = _scenario(schedulers, *_ours(), SCHEDULERS[name], stepped_first)
    theirs = _scenario(torch.optim.lr_scheduler, *_theirs(), SCHEDULERS[name], stepped_first)
    assert ours == theirs
    if not stepped_first and name not in ("CosineAnnealingWarmRestarts",):
        assert ours  # the scenarios do exercise the warning


def test_the_text_is_torchs() -> None:
    opt, _ = _theirs()
    scheduler = torch.optim.lr_scheduler.StepLR(opt, 2)
    with pytest.warns(UserWarning) as caught:
        scheduler.step()
    assert str(caught[0].message) == STEP_ORDER_WARNING
    opt, _ = _ours("adam")
    ours = schedulers.StepLR(opt, 2)
    with pytest.warns(UserWarning, match="before `optimizer.step") as caught:
        ours.step()
    assert [str(w.message) for w in caught] == [STEP_ORDER_WARNING]
    assert caught[0].filename == __file__  # points at the caller, as torch's stacklevel does


def test_the_right_order_warns_nothing() -> None:
    opt, p = _ours()
    scheduler = schedulers.CosineAnnealingLR(opt, T_max=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(5):
            p.grad = np.ones(3, np.float32)
            opt.step()
            scheduler.step()
        # a scheduler made after the optimizer stepped does not warn either (torch's `_opt_called`)
        schedulers.StepLR(opt, 3).step()


def test_the_watch_leaves_after_the_first_step() -> None:
    opt, p = _ours()
    schedulers.StepLR(opt, 2)
    schedulers.ExponentialLR(opt, 0.9)  # a second scheduler installs nothing more
    assert "_step_pack" in vars(opt)
    p.grad = np.ones(3, np.float32)
    opt.step()
    assert "_step_pack" not in vars(opt)  # nothing left on the hot path
    assert opt._opt_called is True


def test_a_sharded_step_counts() -> None:
    """`ShardedOptimizer` steps the wrapped optimizer's packs without calling its `step`."""
    opt, p = _ours()
    scheduler = schedulers.StepLR(opt, 2)
    stepper = ShardedOptimizer(opt, SingleProcess())
    p.grad = np.ones(3, np.float32)
    stepper.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scheduler.step()


def test_resuming_from_a_state_dict_does_not_warn() -> None:
    opt, p = _ours()
    scheduler = schedulers.StepLR(opt, 2)
    p.grad = np.ones(3, np.float32)
    opt.step()
    scheduler.step()
    saved = scheduler.state_dict()
    fresh, _ = _ours()
    fresh.load_state_dict(opt.state_dict())
    resumed = schedulers.StepLR(fresh, 2, last_epoch=0)
    resumed.load_state_dict(saved)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resumed.step()


def test_a_deep_copy_watches_itself() -> None:
    opt, _ = _ours()
    schedulers.StepLR(opt, 2)
    clone = copy.deepcopy(opt)
    clone.param_groups[0]["params"][0].grad = np.ones(3, np.float32)
    clone.step()
    assert clone._opt_called is True
    assert not getattr(opt, "_opt_called", False)
    assert "_step_pack" in vars(opt)


@pytest.fixture
def gc_disabled() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.parametrize("stepped", [False, True])
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_no_reference_cycle_keeps_the_optimizer_alive(gc_disabled: None, kind: str, stepped: bool) -> None:
    opt, p = _ours(kind)
    scheduler = schedulers.StepLR(opt, 2)
    if stepped:
        p.grad = np.ones(3, np.float32)
        opt.step()
        scheduler.step()
    alive = weakref.ref(opt)
    del opt, scheduler
    assert alive() is None
