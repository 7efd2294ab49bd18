"""Data-parallel parity under a real `mpiexec`: R ranks x batch B == one process x batch R*B, replicated
and sharded, for every optimizer; sharded checkpoints resume on another number of ranks."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

RunMPI = Callable[..., subprocess.CompletedProcess[str]]

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "lars")


def test_every_optimizer_matches_one_process_and_resumes_on_other_rank_counts(
    run_mpi: RunMPI, tmp_path: Path
) -> None:
    result = run_mpi("parity", args=["--save", str(tmp_path)], timeout=300)
    checked = result.stdout.split("checked: ", 1)[1].split()
    expected = [f"{name}/{dtype}" for name in OPTIMIZERS for dtype in ("float64", "float32")]
    assert [item for item in checked if "partial" not in item] == expected
    # sharded LARS without the all-reduce of its partial norms is caught by the same comparison
    assert {"lars-partial-norms-detected/float64", "lars-partial-norms-detected/float32"} <= set(checked)

    # the float64 sharded runs' checkpoints (2 ranks) continue on 3 ranks and in the plain optimizer
    result = run_mpi("resume", processes=3, args=[str(tmp_path)], timeout=300)
    assert result.stdout.split("resumed: ", 1)[1].split() == list(OPTIMIZERS)
