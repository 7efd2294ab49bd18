"""The option table: TOML files whose keys are the flag names, precedence, validation, and round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extensor.cli import config
from extensor.cli.config import ConfigError
from extensor.cli.train import TRAIN_OPTIONS


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_precedence_defaults_file_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'optimizer = "sgd"\nlr = 0.5\nbatch-size = 16\nepochs = 3\nnesterov = true\n'
        "momentum = 0.9\n[scheduler-arg]\neta_min = 1e-4\n",
    )
    from_file = config.load_toml(path, TRAIN_OPTIONS)
    resolved = config.resolve(TRAIN_OPTIONS, from_file, {"lr": 0.25, "epochs": 4})
    assert resolved["optimizer"] == "sgd" and resolved["batch_size"] == 16 and resolved["nesterov"] is True
    assert resolved["lr"] == 0.25 and resolved["epochs"] == 4  # flags win over the file
    assert resolved["scheduler_arg"] == {"eta_min": 1e-4}
    assert resolved["model"] == "cnn" and resolved["seed"] == 0  # defaults fill the rest
    assert config.explicit_keys(TRAIN_OPTIONS, from_file, {"lr": 0.25}) >= {"optimizer", "lr", "batch_size"}


def test_underscore_keys_are_accepted(tmp_path: Path) -> None:
    assert config.load_toml(write(tmp_path, "batch_size = 8\n"), TRAIN_OPTIONS) == {"batch_size": 8}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("learning-rate = 0.1\n", "unknown key 'learning-rate'"),
        ("lr = -0.1\n", "'lr' must be >= 0, got -0.1"),
        ('epochs = "ten"\n', "'epochs' must be an integer, got 'ten'"),
        ("epochs = 0\n", "'epochs' must be >= 1"),
        (
            'optimizer = "sophia"\n',
            f"'optimizer' must be one of {', '.join(config.OPTIMIZERS)}; got 'sophia'",
        ),
        ("betas = [0.9]\n", "'betas' must be two numbers"),
        ("nesterov = 1\n", "'nesterov' must be true or false"),
        ("lr = nan\n", "must be a number, got nan"),
        ("lr = 0.1\nlr = 0.2\n", "not valid TOML"),
    ],
)
def test_bad_config_values_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")) as caught:
        config.resolve(TRAIN_OPTIONS, config.load_toml(write(tmp_path, text), TRAIN_OPTIONS))
    assert "\n" not in str(caught.value) or "TOML" in str(caught.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        config.load_toml(tmp_path / "nope.toml", TRAIN_OPTIONS)


@settings(max_examples=60, deadline=None)
@given(
    lr=st.floats(0, 10, allow_nan=False),
    epochs=st.integers(1, 1000),
    betas=st.tuples(st.floats(0, 0.999), st.floats(0, 0.9999)),
    nesterov=st.booleans(),
    dataset=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12),
    eta_min=st.floats(0, 1e-2),
)
def test_written_config_reads_back_identically(
    tmp_path_factory: pytest.TempPathFactory,
    lr: float,
    epochs: int,
    betas: tuple[float, float],
    nesterov: bool,
    dataset: str,
    eta_min: float,
) -> None:
    original = config.resolve(
        TRAIN_OPTIONS,
        {
            "lr": lr,
            "epochs": epochs,
            "betas": list(betas),
            "nesterov": nesterov,
            "dataset": dataset,
            "scheduler_arg": {"eta_min": eta_min},
            "out": "runs/x",
        },
    )
    path = tmp_path_factory.mktemp("toml") / "config.toml"
    path.write_text(config.to_toml(original, TRAIN_OPTIONS), encoding="utf-8")
    assert config.resolve(TRAIN_OPTIONS, config.load_toml(path, TRAIN_OPTIONS)) == original


def test_scheduler_argument_values() -> None:
    assert config.parse_value("100") == 100
    assert config.parse_value("1e-5") == 1e-5
    assert config.parse_value("true") is True
    assert config.parse_value("[10, 20]") == [10, 20]
    assert config.parse_value("10,20") == [10, 20]
    assert config.parse_value("cos") == "cos"
