"""Exact resume: runs killed with SIGKILL (twice, at different points) or stopped with Ctrl-C, then resumed,
end bit-identical to an uninterrupted run with the same seed — parameters, optimizer state, metrics."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from extensor.training.checkpoint import Checkpoint, CheckpointManager, read_checkpoint

from .conftest import Outcome, quick_args, read_metrics, run_subprocess, start_cli

# Dropout on, several epochs, periodic checkpoints mid-epoch: data order, dropout masks, schedule
# and optimizer state all have to continue exactly. 1438 / 64 -> 23 steps per epoch, 92 in all.
SETTINGS = [
    "--model",
    "cnn",
    "--dropout",
    "0.3",
    "--epochs",
    "4",
    "--batch-size",
    "64",
    "--seed",
    "7",
    "--checkpoint-every",
    "4",
    "--keep-checkpoints",
    "2",
    "--no-progress",
    "--no-plots",
]
TOTAL_STEPS = 4 * 23


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Checkpoint, list[dict[str, Any]]]:
    """The uninterrupted run's final checkpoint and metrics."""
    folder = tmp_path_factory.mktemp("reference")
    result = run_subprocess(["train", *SETTINGS, "--out", str(folder / "run")], cwd=folder)
    assert result.status == 0, result.err
    final = CheckpointManager(folder / "run" / "checkpoints").latest()
    assert final is not None
    return read_checkpoint(final), metrics(folder / "run")


def metrics(run: Path) -> list[dict[str, Any]]:
    records = read_metrics(run)
    for record in records:
        record.pop("seconds")  # wall time is the one thing allowed to differ
    return records


def wait_for_checkpoint(process: subprocess.Popen[str], folder: Path, beyond: int) -> Path:
    """Poll until a checkpoint with a step > `beyond` exists; return it."""
    manager = CheckpointManager(folder)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        latest = manager.latest()
        if latest is not None and int(latest.stem.split("-")[1]) > beyond:
            return latest
        if process.poll() is not None:
            raise AssertionError(
                f"the run ended before a checkpoint past step {beyond}: {process.stderr.read()}"
            )
        time.sleep(0.005)
    raise AssertionError("no checkpoint appeared in time")


def kill_group(process: subprocess.Popen[str], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it may have just finished on its own
        os.killpg(process.pid, sig)
    process.communicate(timeout=60)


def assert_identical(resumed: Checkpoint, reference: Checkpoint) -> None:
    assert list(resumed.model) == list(reference.model)
    for key, value in reference.model.items():
        assert resumed.model[key].dtype == value.dtype
        assert resumed.model[key].tobytes() == value.tobytes(), f"parameter {key} differs"
    for index, state in reference.optimizer["state"].items():
        for name, value in state.items():
            assert (
                np.asarray(resumed.optimizer["state"][index][name]).tobytes() == np.asarray(value).tobytes()
            )
    assert resumed.scheduler == reference.scheduler
    for name in ("step_loss", "step_lr"):
        np.testing.assert_array_equal(resumed.extra["position"][name], reference.extra["position"][name])
    assert resumed.rng_state == reference.rng_state


def test_sigkill_twice_then_resume_is_bit_identical(
    reference: tuple[Checkpoint, list[dict[str, Any]]], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    process = start_cli(["train", *SETTINGS, "--out", str(run)], cwd=tmp_path)
    first = wait_for_checkpoint(process, run / "checkpoints", beyond=0)
    kill_group(process, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    latest = CheckpointManager(run / "checkpoints").latest()
    assert latest is not None and int(latest.stem.split("-")[1]) < TOTAL_STEPS, "the kill came too late"

    # Second life: resume from the folder (its newest checkpoint), kill again further on.
    process = start_cli(["train", "--resume", str(run), "--no-progress"], cwd=tmp_path)
    wait_for_checkpoint(process, run / "checkpoints", beyond=int(first.stem.split("-")[1]) + 23)
    kill_group(process, signal.SIGKILL)

    final = run_subprocess(["train", "--resume", str(run / "checkpoints")], cwd=tmp_path)
    assert final.status == 0, final.err
    assert "resuming from" in final.out
    done = CheckpointManager(run / "checkpoints").latest()
    assert done is not None and done.name == f"checkpoint-{TOTAL_STEPS:08d}.safetensors"
    assert_identical(read_checkpoint(done), reference[0])
    assert metrics(run) == reference[1]


def test_ctrl_c_saves_and_exits_cleanly_then_resumes_exactly(
    reference: tuple[Checkpoint, list[dict[str, Any]]], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    process = start_cli(["train", *SETTINGS, "--out", str(run)], cwd=tmp_path)
    wait_for_checkpoint(process, run / "checkpoints", beyond=8)
    os.kill(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted: checkpoint saved to" in err and "extensor train --resume" in err
    saved = Path(err.split("checkpoint saved to ")[1].split()[0])
    stopped = read_checkpoint(saved)
    assert stopped.extra["position"]["step"] < TOTAL_STEPS
    assert stopped.extra["reason"] in ("interrupted", "epoch")
    final = run_subprocess(["train", "--resume", str(saved)], cwd=tmp_path)
    assert final.status == 0, final.err
    done = CheckpointManager(run / "checkpoints").latest()
    assert done is not None
    assert_identical(read_checkpoint(done), reference[0])
    assert metrics(run) == reference[1]


def test_resume_refuses_changed_settings_and_damaged_files(
    run_cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    assert run_cli("train", *quick_args(batch_size=256), "--out", str(run)).status == 0
    checkpoint = CheckpointManager(run / "checkpoints").latest()
    assert checkpoint is not None
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}

    changed = run_cli("train", "--resume", str(checkpoint), "--lr", "0.5")
    assert changed.status == 2 and "--lr 0.5 differs from the checkpoint's" in changed.err

    damaged = tmp_path / "damaged.safetensors"
    data = checkpoint.read_bytes()
    damaged.write_bytes(data[: len(data) // 2])
    truncated = run_cli("train", "--resume", str(damaged))
    assert truncated.status == 2 and "truncated" in truncated.err
    flipped = bytearray(data)
    flipped[-3] ^= 0xFF
    damaged.write_bytes(bytes(flipped))
    corrupted = run_cli("train", "--resume", str(damaged))
    assert corrupted.status == 2 and "corrupted" in corrupted.err
    missing = run_cli("train", "--resume", str(tmp_path / "nope.safetensors"))
    assert missing.status == 2 and "does not exist" in missing.err
    for outcome in (changed, truncated, corrupted, missing):
        assert outcome.err.count("\n") == 1 and "Traceback" not in outcome.err
    assert {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def _forge(path: Path, header: str, size: int | None = None) -> Path:
    raw = header.encode()
    with path.open("wb") as file:
        file.write(struct.pack("<Q", len(raw)) + raw)
        if size is not None:
            file.truncate(size)  # sparse: nothing is written beyond the header
    return path


def test_resume_refuses_hostile_files_in_one_line(
    run_cli: Callable[..., Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nested JSON, huge tensor claims (truncated or sparse) and a FIFO: one line, exit 2, nothing changed."""
    from extensor.training import checkpoint as module

    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    deep = "[" * 100_000 + "]" * 100_000
    metadata = json.dumps({"format_version": 1, "components": {}, "sha256": ""})
    huge = 8 * 1024**3
    claim = json.dumps(
        {
            "__metadata__": {"extensor.checkpoint": metadata},
            "huge": {"dtype": "F64", "shape": [huge // 8], "data_offsets": [0, huge]},
        }
    )
    cases = [
        (_forge(folder / "checkpoint-00000001.safetensors", deep), "nests more than 100 levels deep"),
        (
            _forge(
                folder / "checkpoint-00000002.safetensors",
                json.dumps({"__metadata__": {"extensor.checkpoint": deep}}),
            ),
            "its metadata nests more than",
        ),
        (
            _forge(folder / "checkpoint-00000003.safetensors", claim),
            "truncated: tensor 'huge' claims bytes 0..8589934592",
        ),
        (
            _forge(folder / "checkpoint-00000004.safetensors", claim, size=8 + len(claim) + huge),
            "tensor 'huge' alone 8589934592",
        ),
    ]
    if hasattr(os, "mkfifo"):
        os.mkfifo(folder / "checkpoint-00000005.safetensors")
        cases.append((folder / "checkpoint-00000005.safetensors", "is not a regular file"))
    monkeypatch.setattr(module, "_memory_budget", lambda: 1024**3)
    before = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in (tmp_path / "run").rglob("*")}
    for path, message in cases:
        outcome = run_cli("train", "--resume", str(path))
        assert outcome.status == 2, outcome.err
        assert message in outcome.err and str(path) in outcome.err
        assert outcome.err.count("\n") == 1 and "Traceback" not in outcome.err
    # the folder itself, whose newest entry is the FIFO (or the sparse file)
    outcome = run_cli("train", "--resume", str(tmp_path / "run"))
    assert outcome.status == 2 and outcome.err.count("\n") == 1, outcome.err
    assert {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in (tmp_path / "run").rglob("*")} == before
