"""`extensor schedule`: the printed curve is the scheduler's (checked against live torch); plots are PNGs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from extensor.cli.builders import SCHEDULER_ALIASES
from extensor.cli.schedule import schedule_curve

from .conftest import Outcome, quick_args, read_metrics


def torch_curve(
    build: Callable[[torch.optim.Optimizer], object], steps: int, optimizer: str = "sgd"
) -> tuple[list[float], list[float]]:
    parameter = torch.zeros(1, requires_grad=True)
    opt = (
        torch.optim.SGD([parameter], lr=0.1, momentum=0.9)
        if optimizer == "sgd"
        else torch.optim.Adam([parameter], lr=0.1)
    )
    scheduler = build(opt)
    lrs, momenta = [], []
    for step in range(steps):
        group = opt.param_groups[0]
        lrs.append(group["lr"])
        momenta.append(group["momentum"] if "momentum" in group else group["betas"][0])
        if step < steps - 1:
            opt.step()
            scheduler.step()  # type: ignore[attr-defined]
    return lrs, momenta


@pytest.mark.parametrize(
    ("name", "arguments", "build", "optimizer"),
    [
        ("onecycle", {}, lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=60), "sgd"),
        (
            "OneCycleLR",
            {"three_phase": True, "max_lr": 0.3},
            lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.3, total_steps=60, three_phase=True),
            "adam",
        ),
        (  # the cycle's length given as epochs x steps_per_epoch (longer than the curve shown)
            "onecycle",
            {"epochs": 2, "steps_per_epoch": 40},
            lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, epochs=2, steps_per_epoch=40),
            "sgd",
        ),
        (
            "cosine",
            {"eta_min": 0.01},
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=60, eta_min=0.01),
            "sgd",
        ),
        ("step", {"step_size": 7, "gamma": 0.5}, lambda o: torch.optim.lr_scheduler.StepLR(o, 7, 0.5), "sgd"),
        (
            "cosine-restarts",
            {"T_0": 10, "T_mult": 2},
            lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2),
            "sgd",
        ),
    ],
)
def test_curve_equals_torch(
    name: str, arguments: dict[str, object], build: Callable[..., object], optimizer: str
) -> None:
    _, lrs, momenta = schedule_curve(name, arguments, steps=60, lr=0.1, optimizer=optimizer)
    expected_lrs, expected_momenta = torch_curve(build, 60, optimizer)
    assert lrs == pytest.approx(expected_lrs, rel=1e-12, abs=1e-15)
    assert momenta == pytest.approx(expected_momenta, rel=1e-12)


def test_warmup_then_cosine_equals_torch_sequential() -> None:
    _, lrs, _ = schedule_curve("cosine", {}, steps=50, lr=0.1, warmup_steps=10, warmup_start_factor=0.1)

    def build(o: torch.optim.Optimizer) -> object:
        warm = torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=10)
        cos = torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=40)
        return torch.optim.lr_scheduler.SequentialLR(o, [warm, cos], milestones=[10])

    assert lrs == pytest.approx(torch_curve(build, 50)[0], rel=1e-12)


def test_schedule_prints_and_plots(run_cli: Callable[..., Outcome], tmp_path: Path) -> None:
    printed = run_cli("schedule", "onecycle", "--steps", "200")
    assert printed.status == 0, printed.err
    lines = printed.out.strip().splitlines()
    assert lines[0].startswith("OneCycleLR(") and lines[1].startswith("| step") and "momentum" in lines[1]
    rows = [line for line in lines[3:] if line.startswith("|")]
    assert rows[0].split("|")[1].strip() == "0" and rows[-1].split("|")[1].strip() == "199"
    assert 40 <= len(rows) <= 60
    _, lrs, _ = schedule_curve("onecycle", {}, steps=200)
    assert float(rows[-1].split("|")[2]) == pytest.approx(lrs[-1], rel=1e-7)

    every = run_cli("schedule", "exponential", "gamma=0.5", "--steps", "4", "--lr", "1")
    assert [r.split("|")[2].strip() for r in every.out.splitlines()[3:]] == ["1", "0.5", "0.25", "0.125"]

    plot = tmp_path / "curve.png"
    plotted = run_cli("schedule", "cosine", "T_max=50", "--steps", "100", "--plot", str(plot))
    assert plotted.status == 0 and plot.read_bytes().startswith(b"\x89PNG")
    assert "plot written to" in plotted.out

    # matplotlib adds ".png" to a name without a suffix: the message names the file really written
    bare = run_cli("schedule", "cosine", "--steps", "5", "--plot", str(tmp_path / "bare"))
    assert bare.status == 0 and f"plot written to {tmp_path / 'bare.png'}" in bare.out
    assert (tmp_path / "bare.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("name", ["none", *(name for name in SCHEDULER_ALIASES if name != "plateau")])
def test_every_alias_gives_a_curve(name: str) -> None:
    _, lrs, momenta = schedule_curve(name, {}, steps=40, lr=0.1, warmup_steps=5)
    assert len(lrs) == len(momenta) == 40
    assert all(0 <= lr <= 0.1 + 1e-12 for lr in lrs)
    assert name == "none" or len(set(lrs)) > 1


def test_plateau_steps_per_epoch_on_test_loss(run_cli: Callable[..., Outcome], tmp_path: Path) -> None:
    out = tmp_path / "run"
    # threshold=1 means no epoch ever counts as an improvement: with patience 0 the lr halves every epoch.
    result = run_cli(
        "train",
        *quick_args(epochs=3, batch_size=256),
        "--scheduler",
        "plateau",
        "--scheduler-arg",
        "patience=0",
        "--scheduler-arg",
        "factor=0.5",
        "--scheduler-arg",
        "threshold=1.0",
        "--out",
        str(out),
    )
    assert result.status == 0, result.err
    records = read_metrics(out)
    assert [r["lr"] for r in records] == [0.01, 0.005, 0.0025]
