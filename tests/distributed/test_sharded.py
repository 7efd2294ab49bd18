"""Data-parallel parity under a real `mpiexec`: R ranks x batch B == one process x batch R*B, replicated
and sharded, for every optimizer; sharded checkpoints resume on another number of ranks."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

RunMPI = Callable[..., subprocess.CompletedProcess[str]]

OPTIMIZERS = ("sgd-nesterov",)


def test_every_optimizer_matches_one_process_with_the_union_batch(run_mpi: RunMPI, tmp_path: Path) -> None:
    result = run_mpi("parity", args=["--save", str(tmp_path)])
    checked = result.stdout.split("checked: ", 1)[1].split()
    assert checked == [f"{name}/{dtype}" for name in OPTIMIZERS for dtype in ("float64", "float32")]
