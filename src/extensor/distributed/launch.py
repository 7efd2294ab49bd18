"""Start an MPI job from Python: the `mpiexec` command line, and a run that can never hang.

The `mpich` wheel (the `mpi` extra) puts `mpiexec` beside the venv's `python`; jobs run
`python -m mpi4py`, which aborts the whole job when any rank raises. Used by the tests and the
benchmark; a user's own launch is the same command typed in a shell::

    mpiexec -n 4 python -m mpi4py -m extensor train --distributed
    mpiexec -n 4 python -m mpi4py my_training_script.py
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

#: Set for every rank: one BLAS/OpenMP thread per rank unless the caller says otherwise.
SINGLE_THREAD_ENVIRONMENT = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def find_mpiexec(python: str = sys.executable) -> str:
    """The `mpiexec` that matches `python`'s mpi4py: the one beside it, else the first on PATH.

    Raises:
        FileNotFoundError: no `mpiexec` exists (install the extra: `pip install 'extensor[mpi]'`).
    """
    beside = Path(python).parent / "mpiexec"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("mpiexec")
    if found is None:
        raise FileNotFoundError(
            f"no mpiexec beside {python} nor on PATH; install the MPI extra: pip install 'extensor[mpi]'"
        )
    return found


def mpiexec_command(
    processes: int, argv: Sequence[str], python: str = sys.executable, mpi4py_runner: bool = True
) -> list[str]:
    """`mpiexec -n <processes> <python> -m mpi4py <argv...>` as an argument list.

    `argv` is what follows `python -m mpi4py`: a script path and its arguments, or `-m module ...`.
    With `mpi4py_runner=False` the ranks run plain `python <argv...>` (extensor's `world()` then
    installs the abort-on-exception hook itself).

    Raises:
        ValueError: `processes` is not a positive integer or `argv` is empty.
    """
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"processes must be a positive integer, got {processes!r}")
    if isinstance(argv, str) or not argv:
        raise ValueError(f"argv must be a non-empty sequence of arguments, got {argv!r}")
    runner = ["-m", "mpi4py"] if mpi4py_runner else []
    return [find_mpiexec(python), "-n", str(processes), python, *runner, *argv]


def run(
    processes: int,
    argv: Sequence[str],
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    mpi4py_runner: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run an MPI job to completion and capture its output; kill the whole job after `timeout` s.

    The job runs in its own process group (session), so a timeout kills mpiexec *and* every rank:
    `subprocess.run(timeout=...)` alone would kill only mpiexec and leave ranks behind. The
    launcher's own `MPIEXEC_TIMEOUT` is set too, as a second guard. Each rank gets one BLAS
    thread unless `env` says otherwise.

    Raises:
        subprocess.TimeoutExpired: the job did not finish within `timeout` seconds (it was killed).
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    environment = {**os.environ, **SINGLE_THREAD_ENVIRONMENT, "MPIEXEC_TIMEOUT": str(int(timeout) + 1)}
    if env is not None:
        environment.update(env)
    command = mpiexec_command(processes, argv, mpi4py_runner=mpi4py_runner)
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        stdout, stderr = process.communicate()
        raise subprocess.TimeoutExpired(command, timeout, output=stdout, stderr=stderr) from None
    except BaseException:
        _kill_group(process)
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _kill_group(process: subprocess.Popen[str]) -> None:
    """Kill the process group `process` leads (it was started in a new session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """The command, exit code and output of a finished job, for error messages."""
    return (
        f"command: {' '.join(result.args)}\nexit code: {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
