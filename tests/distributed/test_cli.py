"""`extensor train --distributed` under mpiexec: the one-process run, resumable on any number of ranks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from extensor.cli.main import main
from extensor.distributed.launch import describe, run
from extensor.training.checkpoint import read_checkpoint

# 900 spirals examples in batches of 24: 38 steps per epoch, the last one partial (12 examples)
ARGS = [
    "train",
    "--model",
    "mlp",
    "--dataset",
    "spirals",
    "--epochs",
    "2",
    "--batch-size",
    "24",
    "--clip-norm",
    "0.5",
    "--no-progress",
    "--no-plots",
    "--checkpoint-every",
    "20",
    "--keep-checkpoints",
    "10",
]


def records(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def assert_same_run(run: Path, reference: Path) -> None:
    """Same epochs and steps, and the same losses and accuracies up to float32 rounding."""
    mine, theirs = records(run), records(reference)
    assert [(r["epoch"], r["step"]) for r in mine] == [(r["epoch"], r["step"]) for r in theirs]
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr"):
        np.testing.assert_allclose([r[key] for r in mine], [r[key] for r in theirs], rtol=1e-5, err_msg=key)


def train_mpi(processes: int, args: list[str]) -> str:
    result = run(processes, ["-m", "extensor", *args], timeout=300)
    assert result.returncode == 0, describe(result)
    return result.stdout


def test_distributed_training_equals_one_process_and_resumes_anywhere(tmp_path: Path) -> None:
    pytest.importorskip("mpi4py")
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    assert main([*ARGS, "--out", str(single)]) == 0

    stdout = train_mpi(2, [*ARGS, "--distributed", "--out", str(sharded)])
    assert stdout.count("final test accuracy") == 1, stdout  # only rank 0 reports
    assert_same_run(sharded, single)
    checkpoint = sharded / "checkpoints" / "checkpoint-00000040.safetensors"
    assert read_checkpoint(checkpoint).classes["optimizer"] == "AdamW"  # the consolidated plain state

    # the 2-rank sharded checkpoint of step 40 continues on 3 replicated ranks and in one process
    replicated, alone = tmp_path / "replicated", tmp_path / "alone"
    train_mpi(
        3,
        [
            "train",
            "--resume",
            str(checkpoint),
            "--distributed",
            "--no-shard-optimizer",
            "--out",
            str(replicated),
            "--no-progress",
        ],
    )
    assert_same_run(replicated, single)
    assert main(["train", "--resume", str(checkpoint), "--out", str(alone), "--no-progress"]) == 0
    assert_same_run(alone, single)
