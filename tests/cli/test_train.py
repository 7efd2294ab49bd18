"""`extensor train` end to end on tiny settings: the run folder, the config file, the summary."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from extensor.cli import config
from extensor.cli.train import TRAIN_OPTIONS
from extensor.training.checkpoint import read_checkpoint

from .conftest import Outcome, quick_args, read_metrics

TINY = quick_args(epochs=2, batch_size=128, plots=True)


def test_train_writes_the_run_folder(run_cli: Callable[..., Outcome], tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_cli("train", *TINY, "--out", str(out), "--dropout", "0.1")
    assert result.status == 0, result.err
    records = read_metrics(out)
    assert [r["epoch"] for r in records] == [1, 2]
    assert list(records[0]) == [
        "epoch",
        "step",
        "train_loss",
        "train_accuracy",
        "test_loss",
        "test_accuracy",
        "lr",
        "seconds",
    ]
    steps_per_epoch = math.ceil(1438 / 128)
    assert [r["step"] for r in records] == [steps_per_epoch, 2 * steps_per_epoch]
    assert records[1]["train_loss"] < records[0]["train_loss"]
    assert 0 <= records[1]["test_accuracy"] <= 1 and records[1]["seconds"] >= records[0]["seconds"]
    for name in ("loss.png", "accuracy.png", "lr.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    # The resolved config reads back as the settings of this run.
    settings = config.resolve(TRAIN_OPTIONS, config.load_toml(out / "config.toml", TRAIN_OPTIONS))
    assert settings["model"] == "mlp" and settings["dropout"] == 0.1 and settings["out"] == str(out)
    checkpoints = sorted((out / "checkpoints").iterdir())
    assert [p.name for p in checkpoints] == [
        f"checkpoint-{s:08d}.safetensors" for s in (steps_per_epoch, 2 * steps_per_epoch)
    ]
    final = read_checkpoint(checkpoints[-1])
    assert final.classes["optimizer"] == "AdamW" and final.classes["scheduler"] == "SequentialLR"
    assert final.extra["position"]["epoch"] == 2 and final.extra["position"]["step"] == 2 * steps_per_epoch
    assert len(final.extra["position"]["step_lr"]) == 2 * steps_per_epoch
    # Warm-up then cosine: the lr rises during the first epoch, then decays.
    lrs = np.asarray(final.extra["position"]["step_lr"])
    assert lrs[0] < lrs[steps_per_epoch] and lrs[-1] < lrs[steps_per_epoch]
    assert "| epoch |" in result.out and "final test accuracy" in result.out
    assert not list((out / "checkpoints").glob(".*.tmp"))


def test_config_file_and_flags(run_cli: Callable[..., Outcome], tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(
        'model = "mlp"\noptimizer = "sgd"\nlr = 0.2\nmomentum = 0.9\nnesterov = true\nepochs = 1\n'
        'batch-size = 256\nscheduler = "step"\nprogress = false\n[scheduler-arg]\ngamma = 0.5\n'
    )
    out = tmp_path / "run"
    result = run_cli("train", "--config", str(cfg), "--lr", "0.1", "--out", str(out), "--no-plots")
    assert result.status == 0, result.err
    written = config.load_toml(out / "config.toml", TRAIN_OPTIONS)
    assert written["optimizer"] == "sgd" and written["lr"] == 0.1 and written["nesterov"] is True
    assert written["scheduler_arg"] == {"gamma": 0.5} and written["batch_size"] == 256
    final = read_checkpoint(sorted((out / "checkpoints").iterdir())[-1])
    assert final.classes == {"model": "MLP", "optimizer": "SGD", "scheduler": "SequentialLR"}
    group = final.optimizer["param_groups"][0]
    assert group["momentum"] == 0.9 and group["nesterov"] is True
    assert not list(out.glob("*.png"))


def test_refuses_to_mix_runs(run_cli: Callable[..., Outcome], tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run_cli("train", *TINY, "--epochs", "1", "--out", str(out), "--no-plots").status == 0
    again = run_cli("train", *TINY, "--epochs", "1", "--out", str(out))
    assert again.status == 2 and "already has checkpoints" in again.err


def test_idx_folder_and_spirals(run_cli: Callable[..., Outcome], tmp_path: Path) -> None:
    from extensor.data.datasets import write_idx

    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    for split, n in (("train", 96), ("t10k", 40)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = (rng.random((n, 28, 28)) * 60).astype(np.uint8)
        images[np.arange(n), 2 * labels + 3, 4:24] = 255  # a learnable stroke whose row encodes the label
        write_idx(folder / f"{split}-images-idx3-ubyte", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels)
    out = tmp_path / "idx-run"
    result = run_cli(
        "train",
        "--dataset",
        f"idx:{folder}",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--no-progress",
        "--no-plots",
        "--out",
        str(out),
    )
    assert result.status == 0, result.err
    final = read_checkpoint(sorted((out / "checkpoints").iterdir())[-1])
    assert final.model["0.weight"].shape == (6, 1, 5, 5)  # the classic LeNet-5 layout on 28x28
    assert final.model["7.weight"].shape == (120, 16 * 5 * 5)

    spirals = run_cli(
        "train", "--dataset", "spirals", *quick_args(epochs=3), "--out", str(tmp_path / "spirals")
    )
    assert spirals.status == 0, spirals.err
    records = read_metrics(tmp_path / "spirals")
    assert records[-1]["train_accuracy"] > 0.5  # three classes: well above chance after three epochs


def test_a_one_step_run_shows_no_rate(run_cli: Callable[..., Outcome], tmp_path: Path) -> None:
    # the first step of a session is not timed (JIT warm-up): one step leaves no rate, not "nan steps/s"
    args = ["--dataset", "spirals", *quick_args(batch_size=1000)]
    result = run_cli("train", *args, "--out", str(tmp_path / "run"))
    assert result.status == 0, result.err
    assert "after 1 steps in" in result.out and "nan" not in result.out and "steps/s" not in result.out
