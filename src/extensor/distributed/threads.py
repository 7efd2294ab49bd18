"""Give each rank its share of the cores, so that ranks on one machine do not oversubscribe it.

Both thread pools a step uses are limited: the BLAS library behind NumPy's matmul (OpenBLAS in
NumPy's wheels) and numba's pool, which runs the optimizer kernels. Measured here: 2 ranks with
2 BLAS threads each on 2 cores made a step 5x slower than 2 ranks with one thread each.

Environment variables only reach a BLAS library loaded after they are set, and NumPy is loaded
by the time extensor is; so the running libraries are also told directly. Launching with
`OPENBLAS_NUM_THREADS=1` (what `extensor.distributed.launch` does) remains the surest way.
"""

from __future__ import annotations

import ctypes
import glob
import os
from pathlib import Path

import numpy as np

from extensor.distributed.comm import Communicator

#: Symbols by which OpenBLAS builds export their thread setter (NumPy's wheels use the scipy_ ones).
_OPENBLAS_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)

_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def ranks_on_this_node(comm: Communicator) -> int:
    """How many ranks of `comm` share this machine (collective: every rank must call it)."""
    mpi_comm = getattr(comm, "mpi_comm", None)
    if mpi_comm is None:
        return comm.size
    from mpi4py import MPI

    local = mpi_comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return int(local.Get_size())
    finally:
        local.Free()


def _set_openblas_threads(threads: int) -> bool:
    """Tell the OpenBLAS that NumPy loaded to use `threads` threads; False if none was found."""
    numpy_dir = Path(np.__file__).parent
    candidates = [
        *glob.glob(str(numpy_dir.parent / "numpy.libs" / "*openblas*")),
        *glob.glob(str(numpy_dir / ".dylibs" / "*openblas*")),
    ]
    for path in candidates:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in _OPENBLAS_SETTERS:
            setter = getattr(library, symbol, None)
            if setter is not None:
                setter(ctypes.c_int(threads))
                return True
    return False


def limit_threads(comm: Communicator, threads: int | None = None) -> int:
    """Limit BLAS and numba threads of this rank to `threads` (default: cores / ranks on this node).

    Collective when `threads` is None (the ranks on this node are counted). Returns the limit set.

    Raises:
        ValueError: `threads` is not a positive integer.
    """
    if threads is None:
        threads = max(1, available_cores() // ranks_on_this_node(comm))
    elif isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)
    _set_openblas_threads(threads)
    import numba

    numba.set_num_threads(min(threads, int(numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
    return threads
