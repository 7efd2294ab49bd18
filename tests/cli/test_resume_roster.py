"""Every optimizer of the CLI resumes bit-identically from a mid-epoch checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from extensor.cli import config
from extensor.training.checkpoint import CheckpointManager, read_checkpoint

from .conftest import Outcome, quick_args

# 1438 / 128 -> 12 steps per epoch; a checkpoint every 5 steps lands inside the epochs
SETTINGS = [*quick_args(epochs=2, batch_size=128), "--checkpoint-every", "5", "--keep-checkpoints", "10"]


#: every CLI optimizer, plus AdamW with each compact state dtype
CASES = [
    *([name] for name in config.OPTIMIZER_CLASSES),
    *(["adamw", "--state-dtype", s] for s in ("bfloat16", "int8")),
]


@pytest.mark.parametrize("choice", CASES, ids=" ".join)
def test_resume_from_mid_epoch_is_bit_identical(
    run_cli: Callable[..., Outcome], tmp_path: Path, choice: list[str]
) -> None:
    name = " ".join(choice)
    whole = tmp_path / "whole"
    assert run_cli("train", *SETTINGS, "--optimizer", *choice, "--out", str(whole)).status == 0
    checkpoints = CheckpointManager(whole / "checkpoints")
    middle = whole / "checkpoints" / "checkpoint-00000005.safetensors"
    assert middle.exists()
    resumed = tmp_path / "resumed"
    result = run_cli("train", "--resume", str(middle), "--out", str(resumed), "--no-progress")
    assert result.status == 0, result.err
    final, again = (
        read_checkpoint(checkpoints.latest()),
        read_checkpoint(CheckpointManager(resumed / "checkpoints").latest()),
    )
    for key, value in final.model.items():
        assert again.model[key].tobytes() == value.tobytes(), f"{name}: parameter {key} differs"
    for index, state in final.optimizer["state"].items():
        for key, value in state.items():
            assert (
                np.asarray(again.optimizer["state"][index][key]).tobytes() == np.asarray(value).tobytes()
            ), key
    assert again.optimizer["param_groups"] == final.optimizer["param_groups"]
