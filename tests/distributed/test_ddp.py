"""DDP building blocks under a real `mpiexec`: collectives, sampler shards, broadcast, averaging, layouts."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import pytest

from extensor.distributed.launch import describe

RunMPI = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.parametrize("processes", [2, 3])
def test_collectives_sampler_and_gradient_averaging(run_mpi: RunMPI, processes: int) -> None:
    result = run_mpi("collectives", processes=processes)
    for rank in range(processes):
        assert f"rank {rank} of {processes}: collectives ok" in result.stdout


@pytest.mark.parametrize("mpi4py_runner", [True, False], ids=["python-m-mpi4py", "plain-python"])
def test_a_rank_that_raises_ends_the_job(run_mpi: RunMPI, mpi4py_runner: bool) -> None:
    started = time.monotonic()
    result = run_mpi("failing_rank", args=["raise"], timeout=30, check=False, mpi4py_runner=mpi4py_runner)
    assert result.returncode != 0, describe(result)
    assert time.monotonic() - started < 30
    assert "rank 1 fails on purpose" in result.stderr, describe(result)
    assert "unreachable" not in result.stdout


def test_mismatched_shapes_are_reported_at_start(run_mpi: RunMPI) -> None:
    result = run_mpi("failing_rank", args=["mismatch"], timeout=30, check=False)
    assert result.returncode != 0, describe(result)
    assert (
        "the model's parameters and buffers differ across ranks, so they cannot be averaged or sharded: "
        "rank 0 has 'parameter 0: shape (3, 2) dtype float64' where rank 1 has "
        "'parameter 0: shape (4, 2) dtype float64'"
    ) in result.stderr, describe(result)
