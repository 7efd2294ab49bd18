"""Parity with live torch.optim over 120 steps: every optimizer, a grid of options, both dtypes.

Every case also has: gradients that are None on some steps (one parameter only from step 10 on,
so step counts differ inside a buffer, and one that never gets a gradient), two parameter
groups with different learning rates, and learning rates changed between steps as a scheduler
would. At the end the state dicts must match torch's keys and values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from extensor.core.tensor import ExTensor
from extensor.training.optimizers import LARS, SGD, Adam, AdamW, RMSprop

STEPS = 120

CASES: list[tuple[type, type, dict[str, Any]]] = [
    (SGD, torch.optim.SGD, {"lr": 0.1}),
    (SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
    (SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    (SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.02}),
    (SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.5, "maximize": True, "weight_decay": 0.1}),
    (Adam, torch.optim.Adam, {}),
    (Adam, torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.1}),
    (Adam, torch.optim.Adam, {"lr": 0.01, "amsgrad": True}),
    (Adam, torch.optim.Adam, {"lr": 0.01, "amsgrad": True, "maximize": True, "weight_decay": 0.05}),
    (Adam, torch.optim.Adam, {"lr": 0.02, "betas": (0.3, 0.6), "eps": 1e-3}),
    (AdamW, torch.optim.AdamW, {}),
    (AdamW, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.5, "amsgrad": True}),
    (AdamW, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.0, "maximize": True}),
    (RMSprop, torch.optim.RMSprop, {}),
    (RMSprop, torch.optim.RMSprop, {"lr": 0.005, "momentum": 0.9}),
    (RMSprop, torch.optim.RMSprop, {"lr": 0.005, "centered": True}),
    (RMSprop, torch.optim.RMSprop, {"lr": 0.005, "centered": True, "momentum": 0.5, "weight_decay": 0.1}),
    (RMSprop, torch.optim.RMSprop, {"lr": 0.005, "alpha": 0.3, "centered": True, "maximize": True}),
]


def torch_kwargs(ours: dict[str, Any]) -> dict[str, Any]:
    return {**ours, "foreach": False}


def run_parity(kit: Any, ours_cls: type, torch_cls: type, options: dict[str, Any], dtype: Any) -> None:
    twins = kit.Twins(dtype=dtype, seed=7, absent=kit.sometimes_absent())
    layout = [({"lr": options.get("lr", 1e-3) * 2}, [0, 1, 2]), ({}, [3, 4])]
    torch_options = {k: v for k, v in options.items() if k != "trust_coefficient"}
    ours = ours_cls(kit.groups_of(twins.ours, layout), **options)
    theirs = torch_cls(kit.groups_of(twins.theirs, layout), **torch_kwargs(torch_options))
    for step in range(STEPS):
        twins.feed(step)
        ours.step()
        theirs.step()
        if step % 40 == 39:  # a scheduler: every group's lr decays
            for mine, their in zip(ours.param_groups, theirs.param_groups, strict=True):
                mine["lr"] *= 0.5
                their["lr"] *= 0.5
        if step % 30 == 0:
            twins.assert_params_close(f"step {step}")
    twins.assert_params_close("final")
    np.testing.assert_array_equal(twins.ours[4].data, twins.initial[4])  # never had a gradient
    if ours_cls is not LARS:
        kit.assert_state_matches_torch(ours, theirs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(
    ("ours_cls", "torch_cls", "options"),
    CASES,
    ids=[f"{c[0].__name__}-{'-'.join(f'{k}={v}' for k, v in c[2].items()) or 'defaults'}" for c in CASES],
)
def test_matches_torch(
    kit: Any, ours_cls: type, torch_cls: type, options: dict[str, Any], dtype: Any
) -> None:
    run_parity(kit, ours_cls, torch_cls, options, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(
    "options",
    [
        {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01},
        {"lr": 0.05, "momentum": 0.9, "nesterov": True},
        {"lr": 0.05, "momentum": 0.7, "dampening": 0.5, "weight_decay": 0.1},
    ],
)
def test_lars_without_trust_ratio_is_torch_sgd(kit: Any, options: dict[str, Any], dtype: Any) -> None:
    run_parity(kit, LARS, torch.optim.SGD, {**options, "trust_coefficient": 0.0}, dtype)


def test_mixed_dtypes_in_one_group(kit: Any) -> None:
    """A group holding float32 and float64 parameters: one buffer per dtype, same result as torch."""
    dtypes = [np.float32, np.float64, np.float32, np.float64, np.float32]
    twins = kit.Twins(seed=3, dtypes=dtypes, absent=lambda step, index: (step + index) % 4 == 0)
    ours = Adam(twins.ours, lr=0.01, weight_decay=0.1)
    theirs = torch.optim.Adam(twins.theirs, lr=0.01, weight_decay=0.1, foreach=False)
    assert len(ours._packs[0]) == 2
    for step in range(40):
        twins.feed(step)
        ours.step()
        theirs.step()
    twins.assert_params_close()
    kit.assert_state_matches_torch(ours, theirs)


@pytest.mark.parametrize("ours_cls", [SGD, Adam, RMSprop])
def test_add_param_group_mid_training(kit: Any, ours_cls: type) -> None:
    """A group added after some steps (torch's fine-tuning pattern) starts fresh, like torch's."""
    twins = kit.Twins(seed=5)
    options: dict[str, Any] = {"lr": 0.01, "momentum": 0.9} if ours_cls is not Adam else {"lr": 0.01}
    torch_cls = {SGD: torch.optim.SGD, Adam: torch.optim.Adam, RMSprop: torch.optim.RMSprop}[ours_cls]
    ours = ours_cls(twins.ours[:3], **options)
    theirs = torch_cls(twins.theirs[:3], **options, foreach=False)
    for step in range(30):
        if step == 10:
            ours.add_param_group({"params": twins.ours[3:], "lr": 0.05})
            theirs.add_param_group({"params": twins.theirs[3:], "lr": 0.05})
        twins.feed(step)  # parameters outside an optimizer get gradients but are not stepped
        ours.step()
        theirs.step()
    twins.assert_params_close()
    kit.assert_state_matches_torch(ours, theirs)


@pytest.mark.parametrize(
    ("ours_cls", "torch_cls", "options"),
    [
        (SGD, torch.optim.SGD, {"lr": 0.1}),
        (SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
        (SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
        (SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
        (LARS, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "trust_coefficient": 0.0}),
        (Adam, torch.optim.Adam, {"lr": 0.01}),
        (Adam, torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.01, "amsgrad": True}),
        (AdamW, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.0}),
        (AdamW, torch.optim.AdamW, {"lr": 0.01}),
        (RMSprop, torch.optim.RMSprop, {"lr": 0.01, "momentum": 0.9, "centered": True}),
        (RMSprop, torch.optim.RMSprop, {"lr": 0.01, "weight_decay": 0.01}),
    ],
    ids=lambda value: (
        value.__name__ if isinstance(value, type) else ",".join(f"{k}={v}" for k, v in value.items())
    ),
)
def test_infinities_and_nans_propagate_as_in_torch(
    ours_cls: type, torch_cls: type, options: dict[str, Any]
) -> None:
    """Options skipped by torch are skipped here too, not multiplied by 0 (0 · inf would be NaN, and
    0 · 0 + -0.0 would lose the sign of a zero)."""
    values = np.array([1.0, -2.0, np.inf, -np.inf, 0.5, np.nan, 3.0, 1.5, 0.0, -0.0])
    grads = [
        np.array([np.inf, -np.inf, 1.0, 0.5, np.nan, 1.0, 0.25, -1.0, -0.0, -0.0]),
        np.array([1.0, 2.0, -1.0, 0.5, 1.0, 1.0, np.inf, 0.0, -0.0, 0.0]),
        np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, np.nan, -0.0, -0.0]),
    ]
    ours = ExTensor(values.copy(), requires_grad=True)
    theirs = torch.tensor(values.copy(), requires_grad=True)
    mine = ours_cls([ours], **options)
    torch_options = {k: v for k, v in options.items() if k != "trust_coefficient"}
    reference = torch_cls([theirs], **torch_kwargs(torch_options))
    for g in grads:
        ours.grad = g
        theirs.grad = torch.tensor(g)
        with np.errstate(invalid="ignore", over="ignore"):
            mine.step()
        reference.step()
        # equal_nan: a NaN must be where torch has one, an inf of the same sign where torch has one
        expected = theirs.detach().numpy()
        np.testing.assert_allclose(ours.data, expected, rtol=1e-12, equal_nan=True)
        zeros = expected == 0
        np.testing.assert_array_equal(np.signbit(ours.data[zeros]), np.signbit(expected[zeros]))
