"""Bad input ends with ONE clear line on stderr and exit status 2 — never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Outcome, quick_args, run_subprocess

TINY = quick_args()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--optimizer", "sophia"], "invalid choice: 'sophia'"),
        (["train", "--lr", "-0.1"], "--lr must be >= 0, got -0.1"),
        (["train", "--epochs", "0"], "--epochs must be >= 1"),
        (["train", "--batch-size", "x"], "invalid int value: 'x'"),
        (["train", "--dataset", "idx:/no/such/folder"], "dataset folder '/no/such/folder' does not exist"),
        (["train", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["train", "--model", "cnn", "--dataset", "spirals"], "--model cnn on spirals: the CNN needs image"),
        (["train", "--optimizer", "sgd", "--betas", "0.9,0.99"], "--betas does not apply to sgd"),
        (["train", "--optimizer", "adam", "--momentum", "0.9"], "--momentum does not apply to adam"),
        (["train", "--optimizer", "sgd", "--nesterov"], "esterov"),
        (["train", "--optimizer", "adam", "--betas", "0.9,1.5"], "1.5"),
        (["train", "--scheduler", "bogus"], "unknown scheduler 'bogus'"),
        (["train", "--scheduler", "cosine", "--scheduler-arg", "gamma=2"], "has no argument 'gamma'"),
        (["train", "--scheduler-arg", "nonsense"], "expected KEY=VALUE"),
        (["train", "--warmup-steps", "100000"], "must be shorter than the run"),
        (
            ["train", "--scheduler", "onecycle", "--scheduler-arg", "total_steps=5"],
            "OneCycleLR's cycle has 5 steps but the run has 45",
        ),
        (
            [
                "train",
                "--scheduler",
                "onecycle",
                "--scheduler-arg",
                "epochs=1",
                "--scheduler-arg",
                "steps_per_epoch=3",
            ],
            "OneCycleLR's cycle has 3 steps but the run has 45",
        ),
        (["train", "--scheduler", "onecycle", "--scheduler-arg", "pct_start=2"], "pct_start"),
        (["train", "--config", "/no/such.toml"], "config file '/no/such.toml' does not exist"),
        (["compare", "--optimizers", "sgd,sophia"], "unknown optimizer 'sophia'"),
        (["compare", "--optimizers", "sgd:fast"], "bad learning rate 'fast'"),
        (["schedule", "bogus"], "unknown scheduler 'bogus'"),
        (["schedule", "plateau"], "no curve without training"),
        (["schedule", "cosine", "T_max"], "KEY=VALUE"),
        (["schedule", "cosine", "--steps", "0"], "--steps must be >= 1"),
        (["schedule"], "the following arguments are required: NAME\n"),  # KEY=VALUE is optional
        (["schedule", "cosine", "--steps-per-epoch", "0"], "--steps-per-epoch must be >= 1, got 0"),
        (["schedule", "cosine", "--warmup-steps", "-3"], "--warmup-steps must be >= 0, got -3"),
        (
            ["schedule", "cosine", "--warmup-steps", "2", "--warmup-start-factor", "0"],
            "--warmup-start-factor must be in (0, 1], got 0.0",
        ),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        # Abbreviations are errors, not guesses: compare's option is --optimizers.
        (["compare", "--optimizer", "adam"], "unrecognized arguments: --optimizer adam"),
        (["train", "--optim", "sgd"], "unrecognized arguments: --optim sgd"),
        (["schedule", "cosine", "--step", "5"], "unrecognized arguments: --step 5"),
        (["--vers"], "unrecognized arguments: --vers"),
    ],
)
def test_one_clear_line(
    run_cli: Callable[..., Outcome], tmp_path: Path, args: list[str], message: str
) -> None:
    extra = [*TINY, "--out", str(tmp_path / "run")] if args[0] == "train" else []
    outcome = run_cli(args[0], *extra, *args[1:])  # the case's own flags come last and win
    assert outcome.status == 2
    assert outcome.err.count("\n") == 1, outcome.err
    assert outcome.err.startswith("extensor")
    assert message in outcome.err
    assert "Traceback" not in outcome.err
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_unknown_config_key_as_a_real_process(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("epochs = 1\nlearning_rate = 0.1\n")
    outcome = run_subprocess(["train", "--config", str(config)], cwd=tmp_path, timeout=60)
    assert outcome.status == 2
    assert outcome.err.strip().splitlines() == [
        f"extensor: error: config file {str(config)!r}: unknown key 'learning_rate' (known keys: "
        + outcome.err.split("(known keys: ")[1].strip()
    ]
    assert "batch-size" in outcome.err and "Traceback" not in outcome.err
    assert not (tmp_path / "runs").exists()


def test_an_out_path_that_is_not_a_folder(run_cli: Callable[..., Outcome], tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    for out, message in ((taken, "is a file"), (taken / "run", "Not a directory")):
        outcome = run_cli("train", *TINY, "--dataset", "spirals", "--out", str(out))
        assert outcome.status == 2 and outcome.err.count("\n") == 1, outcome.err
        assert message in outcome.err and "Traceback" not in outcome.err
    assert taken.read_text() == "not a folder"
