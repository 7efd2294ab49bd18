"""Agreeing on which gradients exist before they are averaged.

A parameter's gradient may be absent (`p.grad is None`: the flat buffer's `present` flag is
False) on some ranks only — a branch of the model that one rank's batch did not reach. torch's
DDP then counts the absent gradient as zero; so do we. One tiny all-reduce (MAX over one byte
per tensor, every buffer at once) tells every rank which gradients exist anywhere; a gradient
absent here but present elsewhere has its (stale) storage zeroed and becomes present, and one
absent everywhere stays absent, so the optimizer skips it on every rank alike.
"""

from __future__ import annotations

import numpy as np

from extensor.distributed.comm import Communicator
from extensor.training.flat import FlatBuffer, present_runs


def merge_gradient_presence(comm: Communicator, buffers: list[FlatBuffer]) -> list[bool]:
    """Make every buffer's presence flags the OR over the ranks (collective); per buffer, whether any is set.

    Gradients that become present here are zero-filled first, so that averaging them adds
    nothing from this rank.
    """
    if not buffers:
        return []
    for buffer in buffers:
        buffer.settle()  # a clip deferred before averaging (an unusual order) applies to the local values
    flags = np.concatenate([buffer.present for buffer in buffers]).astype(np.uint8)
    comm.allreduce_max_(flags)
    any_present = []
    start = 0
    for buffer in buffers:
        merged = flags[start : start + len(buffer)].astype(np.bool_)
        start += len(buffer)
        missing = merged & ~buffer.present
        for first, stop in present_runs(missing) if missing.any() else []:
            buffer.grad[buffer.offsets[first] : buffer.offsets[stop]] = 0
        buffer.present[:] = merged
        any_present.append(bool(merged.any()))
    return any_present
