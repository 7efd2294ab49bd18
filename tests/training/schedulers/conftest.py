"""Fixtures for the scheduler tests: twin optimizers (extensor and torch) and schedule comparison."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest
import torch

from extensor.core.tensor import ExTensor
from extensor.training import optimizers

#: The tolerance the schedules must meet against torch (they are in fact bit-identical).
RTOL = 1e-12

Pair = tuple[Any, torch.optim.Optimizer]


def _make_pair(kind: str, lrs: list[float]) -> Pair:
    """An extensor optimizer and a torch optimizer of the same kind with one group per lr."""
    ours_groups = [
        {"params": [ExTensor(np.zeros(2, np.float32), requires_grad=True)], "lr": lr} for lr in lrs
    ]
    torch_groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    if kind == "sgd":
        return (
            optimizers.SGD(ours_groups, lr=lrs[0], momentum=0.9),
            torch.optim.SGD(torch_groups, lr=lrs[0], momentum=0.9),
        )
    if kind == "adam":
        return optimizers.Adam(ours_groups, lr=lrs[0]), torch.optim.Adam(torch_groups, lr=lrs[0])
    if kind == "adamw":
        return optimizers.AdamW(ours_groups, lr=lrs[0]), torch.optim.AdamW(torch_groups, lr=lrs[0])
    raise ValueError(kind)


@pytest.fixture
def make_pair() -> Callable[[str, list[float]], Pair]:
    """``make_pair(kind, lrs)``: (extensor optimizer, torch optimizer), kind in sgd/adam/adamw."""
    return _make_pair


def _hyper(group: Mapping[str, Any]) -> list[float]:
    """The scheduled hyperparameters of a group: lr, and momentum or beta1 when present."""
    values = [float(group["lr"])]
    if "momentum" in group:
        values.append(float(group["momentum"]))
    if "betas" in group:
        values.extend(float(beta) for beta in group["betas"])
    return values


def _assert_same_schedule(ours: Any, theirs: Any, opt: Any, topt: Any, steps: int) -> None:
    """Step both schedulers `steps` times; lrs (and momentum/betas) must agree at every step."""
    mine: list[list[float]] = []
    reference: list[list[float]] = []
    for step in range(steps + 1):
        mine.append([float(x) for x in ours.get_last_lr()] + [v for g in opt.param_groups for v in _hyper(g)])
        reference.append(
            [float(x) for x in theirs.get_last_lr()] + [v for g in topt.param_groups for v in _hyper(g)]
        )
        if step < steps:
            ours.step()
            theirs.step()
    np.testing.assert_allclose(np.array(mine), np.array(reference), rtol=RTOL, atol=0)
    if hasattr(theirs, "last_epoch"):
        assert ours.last_epoch == theirs.last_epoch
    if hasattr(theirs, "base_lrs"):
        np.testing.assert_allclose(ours.base_lrs, theirs.base_lrs, rtol=RTOL, atol=0)


@pytest.fixture
def assert_same_schedule() -> Callable[[Any, Any, Any, Any, int], None]:
    """``assert_same_schedule(ours, theirs, opt, topt, steps)``."""
    return _assert_same_schedule


def _assert_state_equal(ours: Any, theirs: Any, where: str = "state") -> None:
    """Recursive comparison of a state dict with torch's (numbers to RTOL, containers exactly)."""
    if isinstance(theirs, Mapping):
        assert isinstance(ours, Mapping), where
        assert set(map(str, ours)) == set(map(str, theirs)), f"{where}: {sorted(ours)} != {sorted(theirs)}"
        by_name = {str(key): value for key, value in ours.items()}
        for key, value in theirs.items():
            _assert_state_equal(by_name[str(key)], value, f"{where}[{key!r}]")
    elif isinstance(theirs, (list, tuple)):
        assert isinstance(ours, (list, tuple)) and len(ours) == len(theirs), where
        for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _assert_state_equal(a, b, f"{where}[{index}]")
    elif isinstance(theirs, bool) or theirs is None or isinstance(theirs, str):
        assert ours == theirs, f"{where}: {ours!r} != {theirs!r}"
    elif isinstance(theirs, (int, float)):
        if math.isinf(theirs) or theirs == 0:
            assert ours == theirs, f"{where}: {ours!r} != {theirs!r}"
        else:
            assert abs(ours - theirs) <= RTOL * abs(theirs), f"{where}: {ours!r} != {theirs!r}"
    else:
        raise AssertionError(f"{where}: unexpected value {theirs!r} in torch's state dict")


@pytest.fixture
def assert_state_equal() -> Callable[[Any, Any], None]:
    """``assert_state_equal(ours, theirs)``: recursive state-dict comparison with torch's."""
    return _assert_state_equal
