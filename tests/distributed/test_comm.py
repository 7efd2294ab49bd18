"""The single-process communicator, the layout check's messages, and argument checks (no MPI job needed)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest

from extensor.distributed import SingleProcess, check_same_layout, limit_threads, world
from extensor.distributed.comm import launcher_world_size
from extensor.distributed.launch import mpiexec_command


def test_single_process_collectives_are_the_identity() -> None:
    comm = SingleProcess()
    values = np.arange(7.0)
    assert comm.allreduce_sum_(values, chunk_bytes=8) is values
    np.testing.assert_array_equal(values, np.arange(7.0))
    assert comm.allreduce_max_(np.ones(2, np.uint8)).tolist() == [1, 1]
    np.testing.assert_array_equal(comm.broadcast_(values), np.arange(7.0))
    out = np.empty(7)
    comm.reduce_scatter_sum(values, out, (7,))
    np.testing.assert_array_equal(out, values)
    np.testing.assert_array_equal(comm.allgather_(values, (7,)), values)
    assert comm.allgather_object("x") == ["x"]
    assert comm.broadcast_object({"a": 1}) == {"a": 1}


def test_collective_arguments_are_checked() -> None:
    comm = SingleProcess()
    with pytest.raises(TypeError, match="dtype float16; collectives support float32, float64"):
        comm.allreduce_sum_(np.zeros(3, np.float16))
    with pytest.raises(ValueError, match="must be C-contiguous"):
        comm.allreduce_sum_(np.zeros(6)[::2])
    with pytest.raises(TypeError, match="must be a NumPy array, got list"):
        comm.allreduce_max_([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"counts \(3, 3\) must give one non-negative count per rank \(1\)"):
        comm.allgather_(np.zeros(6), (3, 3))
    with pytest.raises(ValueError, match="chunk_bytes must hold one element"):
        comm.allreduce_sum_(np.zeros(3), chunk_bytes=4)
    with pytest.raises(ValueError, match=r"root must be a rank in \[0, 1\), got 1"):
        comm.broadcast_(np.zeros(3), root=1)


def test_world_without_a_launcher_is_one_process() -> None:
    comm = world()
    assert (comm.rank, comm.size) == (0, 1)
    assert world() is comm
    with pytest.raises(RuntimeError, match="expected a world of 4 processes, MPI reports 1"):
        world(expected_size=4)


def test_launcher_size_from_the_environment() -> None:
    assert launcher_world_size({}) is None
    assert launcher_world_size({"PMI_SIZE": "4"}) == 4
    assert launcher_world_size({"OMPI_COMM_WORLD_SIZE": "8"}) == 8


class _FakeComm(SingleProcess):
    """Answers object gathers as if `layouts[r]` came from rank r (what a real all-gather returns)."""

    def __init__(self, layouts: list[list[str]]) -> None:
        self.layouts = layouts
        self.calls = 0

    @property
    def size(self) -> int:
        return len(self.layouts)

    def allgather_object(self, value: Any) -> list[Any]:
        self.calls += 1
        if isinstance(value, str):  # the digest round
            return [hashlib.sha256("\n".join(layout).encode()).hexdigest() for layout in self.layouts]
        return [list(layout) for layout in self.layouts]


def test_equal_layouts_cost_one_digest_round() -> None:
    comm = _FakeComm([["a", "b"], ["a", "b"], ["a", "b"]])
    check_same_layout(comm, ["a", "b"], "the buffers")
    assert comm.calls == 1


def test_layout_mismatch_names_rank_and_item() -> None:
    comm = _FakeComm([["a", "b"], ["a", "b"], ["a", "c"]])
    with pytest.raises(ValueError, match=r"buffers differ across ranks.*rank 0 has 'b' where rank 2 has 'c'"):
        check_same_layout(comm, ["a", "b"], "the buffers")
    comm = _FakeComm([["a", "b"], ["a"]])
    with pytest.raises(ValueError, match=r"rank 0 has 'b' where rank 1 has '\(nothing\)'.*1 items"):
        check_same_layout(comm, ["a", "b"], "the buffers")


def test_launch_and_thread_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="processes must be a positive integer, got 0"):
        mpiexec_command(0, ["x.py"])
    with pytest.raises(ValueError, match="argv must be a non-empty sequence"):
        mpiexec_command(2, "x.py")
    command = mpiexec_command(3, ["-m", "extensor", "train"])
    assert command[1:3] == ["-n", "3"] and command[-5:] == ["-m", "mpi4py", "-m", "extensor", "train"]
    with pytest.raises(ValueError, match="threads must be a positive integer, got 0"):
        limit_threads(SingleProcess(), 0)
