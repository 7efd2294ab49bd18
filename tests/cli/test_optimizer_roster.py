"""Every optimizer of the roster is a choice of `extensor train` and `compare`, with --optimizer-arg."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from extensor.cli import config
from extensor.cli.compare import PRESETS

from .conftest import Outcome, quick_args, read_metrics

TINY = quick_args(epochs=2, batch_size=64)  # 46 steps: RAdam is still unadapted SGD for its first few


@pytest.mark.parametrize("name", list(config.OPTIMIZER_CLASSES))
def test_every_optimizer_trains(run_cli: Callable[..., Outcome], tmp_path: Path, name: str) -> None:
    """One short epoch with the optimizer's recommended lr: finite loss, better than chance."""
    out = tmp_path / name
    result = run_cli("train", *TINY, "--optimizer", name, "--out", str(out))
    assert result.status == 0, result.err
    record = read_metrics(out)[-1]
    assert record["train_loss"] == record["train_loss"]  # not NaN
    assert record["test_accuracy"] > 0.2, record


def test_every_optimizer_has_a_recommended_lr_and_a_compare_preset() -> None:
    for name in config.OPTIMIZER_CLASSES:
        assert name in config.RECOMMENDED_LR
        assert PRESETS[name] == {"optimizer": name}
    assert PRESETS["adamw-int8"] == {"optimizer": "adamw", "state_dtype": "int8"}


def test_state_dtype_trains_adamw_and_is_refused_elsewhere(
    run_cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    out = tmp_path / "int8"
    result = run_cli("train", *TINY, "--state-dtype", "int8", "--out", str(out))
    assert result.status == 0, result.err
    assert read_metrics(out)[-1]["test_accuracy"] > 0.2
    refused = run_cli(
        "train", *TINY, "--optimizer", "lion", "--state-dtype", "int8", "--out", str(tmp_path / "x")
    )
    assert refused.status == 2 and "--state-dtype does not apply to lion" in refused.err
    assert not (tmp_path / "x").exists()


def test_optimizer_arg_reaches_the_constructor(run_cli: Callable[..., Outcome], tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_cli(
        "train", *TINY, "--optimizer", "adam", "--optimizer-arg", "amsgrad=true", "--out", str(out)
    )
    assert result.status == 0, result.err
    assert "amsgrad = true" in (out / "config.toml").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--optimizer", "sgd", "--optimizer-arg", "foo=1"], "--optimizer-arg foo does not apply to sgd"),
        (["--optimizer", "sgd", "--betas", "0.9,0.99"], "--betas does not apply to sgd"),
        (
            ["--optimizer", "sgd", "--momentum", "0.9", "--optimizer-arg", "momentum=0.5"],
            "momentum is given both",
        ),
        (["--optimizer", "adam", "--optimizer-arg", "eps=-1"], "Invalid epsilon value: -1"),
    ],
)
def test_bad_optimizer_arguments_exit_2_and_write_nothing(
    run_cli: Callable[..., Outcome], tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "run"
    result = run_cli("train", *TINY, *args, "--out", str(out))
    assert result.status == 2
    assert message in result.err
    assert not out.exists()
