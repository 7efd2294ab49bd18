"""AveragedModel (SWA, EMA), its averaging functions and update_bn against live torch.optim.swa_utils.

A small MLP with a BatchNorm layer exists twice, in extensor and in torch, with the same weights.
Between updates both get the same new weights and buffers, so each averaged model must follow
torch's value for value (float64 to 1e-10, float32 to 1e-5), buffers and ``n_averaged`` included.
"""

from __future__ import annotations

import copy
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from typing import Any

import numpy as np
import pytest
import torch
from torch.optim import swa_utils

from extensor import nn
from extensor.core.tensor import ExTensor
from extensor.training.averaging import (
    AveragedModel,
    _one_view,
    get_ema_avg_fn,
    get_ema_multi_avg_fn,
    get_swa_avg_fn,
    get_swa_multi_avg_fn,
    update_bn,
)
from extensor.training.optimizers import SGD

RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}
TORCH_DTYPE = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}
UPDATES = 25


def assert_close(ours: Any, theirs: torch.Tensor, what: str) -> None:
    expected = theirs.detach().numpy()
    got = np.asarray(ours)
    assert got.shape == expected.shape and got.dtype == expected.dtype, what
    if not np.issubdtype(got.dtype, np.floating):
        np.testing.assert_array_equal(got, expected, err_msg=what)
        return
    rtol = RTOL[got.dtype]
    scale = float(np.max(np.abs(expected), initial=0.0))
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def twin_models(dtype: Any) -> tuple[nn.Module, torch.nn.Module]:
    """The same MLP with a BatchNorm1d in extensor and in torch."""
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.ReLU(), torch.nn.Linear(6, 3)
    ).to(TORCH_DTYPE[np.dtype(dtype)])
    ours = nn.Sequential(nn.Linear(4, 6, dtype=dtype), nn.BatchNorm1d(6, dtype=dtype), nn.ReLU(),
                         nn.Linear(6, 3, dtype=dtype))  # fmt: skip
    copy_weights(theirs, ours)
    return ours, theirs


def copy_weights(source: torch.nn.Module, target: nn.Module) -> None:
    state = {key: value.detach().numpy().copy() for key, value in source.state_dict().items()}
    target.load_state_dict(state)


def perturb(ours: nn.Module, theirs: torch.nn.Module, rng: np.random.Generator) -> None:
    """New random weights and running statistics for both twins (num_batches_tracked grows)."""
    with torch.no_grad():
        for (name, mine), (_, their) in zip(
            ours.state_dict(keep_vars=True).items(), theirs.state_dict().items(), strict=True
        ):
            if name.endswith("num_batches_tracked"):
                value = mine.data + rng.integers(1, 7)
            elif name.endswith("running_var"):
                value = rng.uniform(0.5, 2.0, mine.shape).astype(mine.dtype)
            else:
                value = rng.standard_normal(mine.shape).astype(mine.dtype)
            mine.data = value
            their.copy_(torch.from_numpy(np.asarray(value).copy()))


def assert_averaged_close(ours: AveragedModel, theirs: swa_utils.AveragedModel, what: str) -> None:
    mine = ours.state_dict()
    reference = theirs.state_dict()
    assert list(mine) == list(reference), "state_dict keys differ from torch's"
    for key, value in reference.items():
        assert_close(mine[key], value, f"{what}: {key}")


FUNCTIONS = {
    "default": ({}, {}),
    "ema_multi": (
        {"multi_avg_fn": get_ema_multi_avg_fn(0.9)},
        {"multi_avg_fn": swa_utils.get_ema_multi_avg_fn(0.9)},
    ),
    "swa_multi": (
        {"multi_avg_fn": get_swa_multi_avg_fn()},
        {"multi_avg_fn": swa_utils.get_swa_multi_avg_fn()},
    ),
    "ema_avg": ({"avg_fn": get_ema_avg_fn(0.7)}, {"avg_fn": swa_utils.get_ema_avg_fn(0.7)}),
    "swa_avg": ({"avg_fn": get_swa_avg_fn()}, {"avg_fn": swa_utils.get_swa_avg_fn()}),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("use_buffers", [False, True], ids=["params", "buffers"])
@pytest.mark.parametrize("kind", list(FUNCTIONS))
def test_averaged_model_matches_torch(kind: str, use_buffers: bool, dtype: Any) -> None:
    ours_model, theirs_model = twin_models(dtype)
    our_options, their_options = FUNCTIONS[kind]
    ours = AveragedModel(ours_model, use_buffers=use_buffers, **our_options)
    theirs = swa_utils.AveragedModel(theirs_model, use_buffers=use_buffers, **their_options)
    rng = np.random.default_rng(1)
    for update in range(UPDATES):
        perturb(ours_model, theirs_model, rng)
        if kind == "swa_multi" and use_buffers and update == 1:  # torch: no integer addcdiv
            with pytest.raises(RuntimeError, match="addcdiv"):
                theirs.update_parameters(theirs_model)
            with pytest.raises(RuntimeError, match="integer"):
                ours.update_parameters(ours_model)
            return
        ours.update_parameters(ours_model)
        theirs.update_parameters(theirs_model)
        assert_averaged_close(ours, theirs, f"update {update}")
    assert int(ours.n_averaged.data) == UPDATES
    x = np.random.default_rng(2).standard_normal((5, 4)).astype(dtype)
    ours.eval()
    theirs.eval()
    assert_close(ours(x).data, theirs(torch.from_numpy(x)), "forward of the averaged model")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_ema_of_a_model_trained_by_an_extensor_optimizer(dtype: Any) -> None:
    """The model's parameters live in the optimizer's flat buffer: read in place, one view per dtype."""
    ours_model, theirs_model = twin_models(dtype)
    optimizer = SGD(ours_model.parameters(), lr=0.1)
    their_optimizer = torch.optim.SGD(theirs_model.parameters(), lr=0.1)
    assert _one_view([p.data for p in ours_model.parameters()]) is not None
    ours = AveragedModel(ours_model, multi_avg_fn=get_ema_multi_avg_fn(0.95))
    theirs = swa_utils.AveragedModel(theirs_model, multi_avg_fn=swa_utils.get_ema_multi_avg_fn(0.95))
    assert _one_view([p.data for p in ours.parameters()]) is not None  # the copy's own flat storage
    assert all(p.grad_slot is None for p in ours.parameters())  # not bound to the optimizer
    rng = np.random.default_rng(3)
    for step in range(30):
        x = rng.standard_normal((8, 4)).astype(dtype)
        for mine, their in zip(ours_model.parameters(), theirs_model.parameters(), strict=True):
            g = rng.standard_normal(mine.shape).astype(dtype)
            mine.grad = g
            their.grad = torch.from_numpy(g.copy())
        ours_model(x)  # running statistics
        theirs_model(torch.from_numpy(x))
        optimizer.step()
        their_optimizer.step()
        ours.update_parameters(ours_model)
        theirs.update_parameters(theirs_model)
        if step == 10:  # a deep copy loses the contiguous storage: the gathered path takes over
            ours = copy.deepcopy(ours)
            assert _one_view([p.data for p in ours.parameters()]) is None
    assert_averaged_close(ours, theirs, "after 30 steps")


def test_multi_avg_fn_of_the_user_gets_one_array_per_tensor() -> None:
    model = nn.Sequential(nn.Linear(3, 2, dtype=np.float64), nn.Linear(2, 1, dtype=np.float64))
    calls: list[tuple[list[tuple[int, ...]], int]] = []

    def halfway(averaged: list[np.ndarray], current: list[np.ndarray], n: int) -> None:
        calls.append(([a.shape for a in averaged], n))
        for a, c in zip(averaged, current, strict=True):
            a += (c - a) / 2

    averaged = AveragedModel(model, multi_avg_fn=halfway)
    averaged.update_parameters(model)
    before = [p.data.copy() for p in averaged.parameters()]
    for p in model.parameters():
        p.data = p.data + 1.0
    averaged.update_parameters(model)
    assert calls == [([(2, 3), (2,), (1, 2), (1,)], 1)]
    for new, old in zip(averaged.parameters(), before, strict=True):
        np.testing.assert_allclose(new.data, old + 0.5)


def test_averaging_functions_on_lists_match_torch() -> None:
    rng = np.random.default_rng(4)
    shapes = [(3, 2), (4,), ()]
    for dtype in (np.float64, np.float32):
        averaged = [rng.standard_normal(s).astype(dtype) for s in shapes]
        current = [rng.standard_normal(s).astype(dtype) for s in shapes]
        for ours_fn, theirs_fn in (
            (get_ema_multi_avg_fn(0.3), swa_utils.get_ema_multi_avg_fn(0.3)),
            (get_swa_multi_avg_fn(), swa_utils.get_swa_multi_avg_fn()),
        ):
            mine = [a.copy() for a in averaged]
            theirs = [torch.from_numpy(a.copy()) for a in averaged]
            ours_fn(mine, current, 2)
            theirs_fn(theirs, [torch.from_numpy(c) for c in current], torch.tensor(2))
            for index, (m, t) in enumerate(zip(mine, theirs, strict=True)):
                assert_close(m, t, f"{ours_fn!r} tensor {index}")
        for ours_one, theirs_one in (
            (get_ema_avg_fn(0.25), swa_utils.get_ema_avg_fn(0.25)),
            (get_swa_avg_fn(), swa_utils.get_swa_avg_fn()),
        ):
            a, c = averaged[0], current[0]
            expected = theirs_one(torch.from_numpy(a), torch.from_numpy(c), torch.tensor(3))
            assert_close(ours_one(a, c, 3), expected, "single-tensor average")


# ------------------------------------------------------------------------------------ update_bn
class TinyNet(nn.Module):
    def __init__(self, dtype: Any) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 5, dtype=dtype)
        self.bn = nn.BatchNorm1d(5, momentum=0.3, dtype=dtype)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(5, 3, dtype=dtype), nn.BatchNorm1d(3, dtype=dtype))

    def forward(self, x: Any) -> Any:
        return self.head(self.bn(self.fc(x)))


class TorchTinyNet(torch.nn.Module):
    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 5, dtype=dtype)
        self.bn = torch.nn.BatchNorm1d(5, momentum=0.3, dtype=dtype)
        self.head = torch.nn.Sequential(
            torch.nn.ReLU(), torch.nn.Linear(5, 3, dtype=dtype), torch.nn.BatchNorm1d(3, dtype=dtype)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bn(self.fc(x)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("averaged", [False, True], ids=["model", "averaged_model"])
def test_update_bn_matches_torch(dtype: Any, averaged: bool) -> None:
    torch.manual_seed(5)
    theirs = TorchTinyNet(TORCH_DTYPE[np.dtype(dtype)])
    ours = TinyNet(dtype)
    copy_weights(theirs, ours)
    rng = np.random.default_rng(6)
    batches = [rng.standard_normal((6, 4)).astype(dtype) * 3 + 1 for _ in range(7)]
    for x in batches[:3]:  # some statistics to reset
        ours(x)
        theirs(torch.from_numpy(x))
    loader_ours = [(x, np.zeros(6)) if i % 2 else x for i, x in enumerate(batches)]
    loader_theirs = [(torch.from_numpy(x), torch.zeros(6)) if i % 2 else torch.from_numpy(x)
                     for i, x in enumerate(batches)]  # fmt: skip
    model_ours: nn.Module = AveragedModel(ours) if averaged else ours
    model_theirs: torch.nn.Module = swa_utils.AveragedModel(theirs) if averaged else theirs
    if averaged:
        model_ours.update_parameters(ours)  # type: ignore[operator]
        model_theirs.update_parameters(theirs)
    model_ours.eval()
    model_theirs.eval()
    update_bn(loader_ours, model_ours)
    swa_utils.update_bn(loader_theirs, model_theirs)
    mine, reference = model_ours.state_dict(), model_theirs.state_dict()
    assert list(mine) == list(reference)
    for key, value in reference.items():
        assert_close(mine[key], value, key)
    assert not model_ours.training and not any(m.training for m in model_ours.modules())
    bns = [m for m in model_ours.modules() if isinstance(m, nn.BatchNorm1d)]
    assert [bn.momentum for bn in bns] == [0.3, 0.1]


def test_update_bn_without_batchnorm_and_restoring_after_an_error() -> None:
    model = nn.Sequential(nn.Linear(2, 2))
    update_bn([np.ones((3, 2), dtype=np.float32)], model)  # nothing to do

    def failing_loader() -> Any:
        yield np.ones((3, 4), dtype=np.float32)
        raise KeyError("loader broke")

    net = TinyNet(np.float32).eval()
    with pytest.raises(KeyError, match="loader broke"):
        update_bn(failing_loader(), net)
    assert net.bn.momentum == 0.3 and not net.training


# --------------------------------------------------------------------------------------- errors
def test_bad_inputs_are_refused_clearly() -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    for decay in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"Invalid decay value .* \[0,1\] range"):
            get_ema_multi_avg_fn(decay)
        with pytest.raises(ValueError, match="Invalid decay value"):
            get_ema_avg_fn(decay)
    with pytest.raises(TypeError, match="decay"):
        get_ema_multi_avg_fn("0.9")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Only one of avg_fn and multi_avg_fn"):
        AveragedModel(model, avg_fn=get_swa_avg_fn(), multi_avg_fn=get_swa_multi_avg_fn())
    with pytest.raises(TypeError, match="avg_fn must be callable"):
        AveragedModel(model, avg_fn=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Module"):
        AveragedModel(torch.nn.Linear(2, 3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="device"):
        AveragedModel(model, device="cuda")
    with pytest.raises(TypeError, match="use_buffers"):
        AveragedModel(model, use_buffers="yes")  # type: ignore[arg-type]
    averaged = AveragedModel(model)
    with pytest.raises(ValueError, match="has 2 parameters, the averaged model 4"):
        averaged.update_parameters(nn.Sequential(nn.Linear(2, 3)))
    with pytest.raises(ValueError, match="shape"):
        averaged.update_parameters(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)))
    assert int(averaged.n_averaged.data) == 0
    with pytest.raises(ValueError, match="same length"):
        get_swa_multi_avg_fn()([np.zeros(2)], [], 1)
    with pytest.raises(TypeError, match="update_bn expects"):
        update_bn([], object())  # type: ignore[arg-type]


def test_averaged_copy_is_independent_and_buffers_follow_the_model() -> None:
    model = nn.Sequential(nn.Linear(2, 3, dtype=np.float64), nn.BatchNorm1d(3, dtype=np.float64))
    averaged = AveragedModel(model)
    assert all(a is not b for a, b in zip(averaged.parameters(), model.parameters(), strict=True))
    model[1].running_mean.data = np.full(3, 2.0)
    model[1].num_batches_tracked.data = np.array(4)
    averaged.update_parameters(model)
    np.testing.assert_array_equal(averaged.module[1].running_mean.data, np.full(3, 2.0))
    assert int(averaged.module[1].num_batches_tracked.data) == 4
    assert isinstance(averaged.n_averaged, ExTensor) and averaged.n_averaged.dtype == np.int64


# ------------------------------------------------------------------------------------------- SWALR
def twin_optimizers(lrs: tuple[float, float] = (0.1, 0.02)) -> tuple[SGD, torch.optim.SGD]:
    sizes = zip((2, 3), lrs, strict=True)
    ours = SGD([{"params": [ExTensor(np.zeros(n), requires_grad=True)], "lr": lr} for n, lr in sizes], lr=0.5)
    theirs = torch.optim.SGD(
        [
            {"params": [torch.zeros(n, requires_grad=True)], "lr": lr}
            for n, lr in zip((2, 3), lrs, strict=True)
        ],
        lr=0.5,
    )
    return ours, theirs


def lrs_of(optimizer: Any) -> list[float]:
    return [group["lr"] for group in optimizer.param_groups]


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("anneal_epochs", [0, 1, 7, 10])
@pytest.mark.parametrize("swa_lr", [0.05, [0.005, 0.3]], ids=["one", "per_group"])
def test_swalr_curve_matches_torch(strategy: str, anneal_epochs: int, swa_lr: Any) -> None:
    from extensor.training.schedulers import CosineAnnealingLR
    from extensor.training.schedulers.swa import SWALR

    ours, theirs = twin_optimizers()
    cosine = CosineAnnealingLR(ours, T_max=40)
    their_cosine = torch.optim.lr_scheduler.CosineAnnealingLR(theirs, T_max=40)
    scheduler = SWALR(ours, swa_lr=swa_lr, anneal_epochs=anneal_epochs, anneal_strategy=strategy)
    their_scheduler = swa_utils.SWALR(
        theirs, swa_lr=swa_lr, anneal_epochs=anneal_epochs, anneal_strategy=strategy
    )
    assert lrs_of(ours) == lrs_of(theirs)
    assert [g["swa_lr"] for g in ours.param_groups] == [g["swa_lr"] for g in theirs.param_groups]
    for epoch in range(30):
        ours.step()
        theirs.step()
        if epoch < 5:  # the usual recipe: another schedule first, then SWALR
            cosine.step()
            their_cosine.step()
        else:
            scheduler.step()
            their_scheduler.step()
        assert lrs_of(ours) == lrs_of(theirs), f"epoch {epoch}"
        assert scheduler.get_last_lr() == their_scheduler.get_last_lr()
        if epoch == 12:  # a state dict round trip continues identically
            state = scheduler.state_dict()
            assert set(state) == set(their_scheduler.state_dict()), "state keys differ from torch's"
            saved = ours.state_dict()["param_groups"]  # lr, swa_lr, initial_lr live in the groups
            restored = SWALR(ours, swa_lr=0.9, anneal_epochs=3, anneal_strategy="linear")
            restored.load_state_dict(state)
            scheduler = restored
            for group, old in zip(ours.param_groups, saved, strict=True):
                group.update({key: value for key, value in old.items() if key != "params"})
    assert scheduler.anneal_func(0.5) == their_scheduler.anneal_func(0.5)


def test_swalr_refuses_bad_arguments_before_writing() -> None:
    from extensor.training.schedulers.swa import SWALR

    ours, theirs = twin_optimizers()
    for kwargs, error, match in (
        (
            {"anneal_strategy": "cosine"},
            ValueError,
            "anneal_strategy must be one of 'cos' or 'linear', instead got",
        ),
        ({"anneal_epochs": -1}, ValueError, "anneal_epochs must be equal or greater than 0, got -1"),
        ({"anneal_epochs": 2.5}, ValueError, "anneal_epochs must be equal or greater than 0"),
        ({"swa_lr": -0.1}, ValueError, "swa_lr must be a learning rate >= 0"),
        ({"swa_lr": [0.1]}, ValueError, "swa_lr must have the same length as optimizer.param_groups"),
        ({"swa_lr": [0.1, -1.0]}, ValueError, r"swa_lr\[1\]"),
        ({"swa_lr": "0.1"}, TypeError, "swa_lr must be a real number"),
    ):
        arguments = {"swa_lr": 0.05, **kwargs}
        with pytest.raises(error, match=match):
            SWALR(ours, **arguments)
        assert all("swa_lr" not in group and "initial_lr" not in group for group in ours.param_groups)
    with pytest.raises(ValueError, match="anneal_strategy must be one of"):  # torch's type and wording
        swa_utils.SWALR(theirs, swa_lr=0.05, anneal_strategy="cosine")
    with pytest.raises(TypeError, match="not an Optimizer"):
        SWALR(theirs, swa_lr=0.05)  # type: ignore[arg-type]
    scheduler = SWALR(ours, swa_lr=0.05)
    state = scheduler.state_dict()
    with pytest.raises(ValueError, match="anneal_strategy"):
        scheduler.load_state_dict({**state, "_anneal_strategy": "step"})
    with pytest.raises(ValueError, match="anneal_epochs"):
        scheduler.load_state_dict({**state, "anneal_epochs": -3})
    assert scheduler.state_dict() == state
