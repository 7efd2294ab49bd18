"""Run small MPI jobs (`mpiexec -n R python -m mpi4py tests/distributed/scripts/<name>.py`) from tests.

Every job runs in its own process group with a timeout after which the whole group is killed
(`extensor.distributed.launch.run`), and one BLAS thread per rank. A job reports success by
exiting 0; a failed assertion on any rank aborts the job (mpi4py's `-m mpi4py` runner) with a
non-zero code, and the test shows every rank's output.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from extensor.distributed.launch import describe, run

SCRIPTS = Path(__file__).parent / "scripts"

RunMPI = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_mpi() -> RunMPI:
    """`run_mpi(script, processes=2, args=(), ...)`: run scripts/<script>.py under mpiexec."""
    pytest.importorskip("mpi4py", reason="MPI jobs need the `mpi` extra (mpi4py + mpich)")

    def launch(
        script: str,
        processes: int = 2,
        args: Sequence[str] = (),
        timeout: float = 90.0,
        check: bool = True,
        env: dict[str, str] | None = None,
        mpi4py_runner: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(SCRIPTS / f"{script}.py"), *args]
        result = run(processes, argv, timeout=timeout, env=env, mpi4py_runner=mpi4py_runner)
        if check:
            assert result.returncode == 0, describe(result)
        return result

    return launch
