"""`--task`: the workloads of train and compare, the language tasks end to end, and `extensor sample`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from extensor.cli.tasks import TASKS

from .conftest import Outcome, read_metrics

#: the language tasks cut to seconds: short windows, a few steps, a small validation pass
QUICK_TEXT = ["--block-size", "8", "--batch-size", "16", "--max-steps", "6", "--warmup-steps", "0",
              "--no-progress", "--no-plots", "--eval-batch-size", "4096"]  # fmt: skip


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from extensor.cli.main import main

    out = tmp_path_factory.mktemp("gpt")
    assert main(["train", "--task", "shakespeare-gpt", *QUICK_TEXT, "--out", str(out)]) == 0
    return out


def test_language_task_trains_per_character(gpt_run: Path) -> None:
    (record,) = read_metrics(gpt_run)
    assert record["step"] == 6  # --max-steps ends the run inside its first epoch
    assert 0.0 < record["test_loss"] < 4.5  # per character, near log(65) = 4.17 this early
    config = (gpt_run / "config.toml").read_text()
    assert 'task = "shakespeare-gpt"' in config and 'model = "gpt"' in config


def test_lstm_task_and_flags_over_the_task(run_cli: Callable[..., Outcome], tmp_path: Path) -> None:
    out = tmp_path / "lstm"
    result = run_cli("train", "--task", "shakespeare-lstm", *QUICK_TEXT, "--lr", "0.005", "--out", str(out))
    assert result.status == 0, result.err
    text = (out / "config.toml").read_text()
    assert 'model = "lstm"' in text and "lr = 0.005" in text and "block-size = 8" in text


def test_sample_continues_the_prompt(run_cli: Callable[..., Outcome], gpt_run: Path) -> None:
    first = run_cli("sample", str(gpt_run), "--prompt", "ROMEO:", "--length", "40", "--seed", "3")
    again = run_cli("sample", str(gpt_run), "--prompt", "ROMEO:", "--length", "40", "--seed", "3")
    assert first.status == 0, first.err
    assert first.out.startswith("ROMEO:") and len(first.out.rstrip("\n")) == 46
    assert first.out == again.out  # seeded


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prompt", "ROMEO:é"], "character 'é' (at position 6) is not in the vocabulary"),
        (["--temperature", "0"], "--temperature must be > 0"),
        (["--top-k", "0"], "--top-k must be >= 1"),
        (["--length", "-1"], "--length must be >= 0"),
    ],
)
def test_sample_bad_input(
    run_cli: Callable[..., Outcome], gpt_run: Path, args: list[str], message: str
) -> None:
    result = run_cli("sample", str(gpt_run), *args)
    assert result.status == 2
    assert message in result.err and "Traceback" not in result.err


def test_sample_refuses_a_classifier_run(run_cli: Callable[..., Outcome], tmp_path: Path) -> None:
    out = tmp_path / "digits"
    trained = run_cli("train", "--epochs", "1", "--max-steps", "2", "--no-progress", "--out", str(out))
    assert trained.status == 0
    result = run_cli("sample", str(out))
    assert result.status == 2 and "not a language model" in result.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "imagenet"], "invalid choice: 'imagenet'"),
        (["--task", "shakespeare-gpt", "--model", "cnn"], "--model cnn cannot be trained on shakespeare"),
        (["--task", "digits-cnn", "--model", "gpt"], "--model gpt cannot be trained on digits"),
        (["--task", "shakespeare-lstm", "--block-size", "200000"], "--block-size 200000"),
    ],
)
def test_task_bad_input(
    run_cli: Callable[..., Outcome], tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "run"
    result = run_cli("train", *args, "--out", str(out))
    assert result.status == 2
    assert message in result.err
    assert not out.exists()  # nothing written


def test_every_task_is_described() -> None:
    assert {"digits-cnn", "digits-mlp", "spirals", "shakespeare-lstm", "shakespeare-gpt"} <= set(TASKS)
    for task in TASKS.values():
        assert task.metric in ("test_accuracy", "test_loss")
        assert task.reached(task.target)
