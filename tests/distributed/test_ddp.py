"""DDP building blocks under a real `mpiexec`: collectives, sampler shards, broadcast, averaging, layouts."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

RunMPI = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.parametrize("processes", [2, 3])
def test_collectives_sampler_and_gradient_averaging(run_mpi: RunMPI, processes: int) -> None:
    result = run_mpi("collectives", processes=processes)
    for rank in range(processes):
        assert f"rank {rank} of {processes}: collectives ok" in result.stdout
