"""Helpers for the command-line tests: run `extensor` in-process or as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from extensor.cli.main import main


@dataclass
class Outcome:
    """Exit status and captured output of one `extensor` invocation."""

    status: int
    out: str
    err: str


def quick_args(epochs: int = 1, batch_size: int | None = None, *, plots: bool = False) -> list[str]:
    """Flags of a short MLP run without progress bars (and without plots unless asked for)."""
    size = [] if batch_size is None else ["--batch-size", str(batch_size)]
    return [
        "--model",
        "mlp",
        "--epochs",
        str(epochs),
        *size,
        "--no-progress",
        *([] if plots else ["--no-plots"]),
    ]


def read_metrics(run: Path) -> list[dict[str, Any]]:
    """The records of a run folder's metrics.jsonl, one dict per epoch."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture()
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Outcome]:
    """Run `extensor ARGS...` in this process (fast); argparse exits become statuses."""

    def run(*args: str) -> Outcome:
        capsys.readouterr()
        try:
            status = main(list(args))
        except SystemExit as stop:
            status = int(stop.code or 0)
        captured = capsys.readouterr()
        return Outcome(status, captured.out, captured.err)

    return run


def cli_env() -> dict[str, str]:
    """The environment for subprocesses: this interpreter's, one BLAS thread."""
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.pop("EXTENSOR_DEBUG", None)
    return env


def start_cli(args: Sequence[str], cwd: Path) -> subprocess.Popen[str]:
    """Start `python -m extensor ARGS...` as a subprocess in its own session."""
    return subprocess.Popen(
        [sys.executable, "-m", "extensor", *args],
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def run_subprocess(args: Sequence[str], cwd: Path, timeout: float = 120) -> Outcome:
    """Run `python -m extensor ARGS...` to completion."""
    process = start_cli(args, cwd)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"extensor {' '.join(args)} timed out; stderr: {err[-2000:]}") from None
    return Outcome(process.returncode, out, err)
