"""Check that every rank holds the same layout before the first bulk collective.

Bulk collectives trust that each rank passes arrays of the same size and dtype, in the same
order. If one rank built a different model (another width, another dtype, one layer more), a
bulk collective would deadlock or silently mix unrelated numbers. So a layout — one line of text
per tensor or buffer — is compared first with a tiny collective: each rank contributes a 32-byte
digest, and only when the digests differ are the lines themselves gathered, to name the first
difference. Every rank sees the same digests, so every rank raises the same error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from extensor.distributed.comm import Communicator


def describe_arrays(kind: str, arrays: Iterable[Any]) -> list[str]:
    """One line per array (ExTensor or ndarray): `"<kind> <i>: shape (..) dtype <dtype>"`."""
    lines = []
    for index, array in enumerate(arrays):
        value = np.asarray(array.data) if hasattr(array, "data") else np.asarray(array)
        lines.append(f"{kind} {index}: shape {tuple(value.shape)} dtype {value.dtype}")
    return lines


def check_same_layout(comm: Communicator, lines: Sequence[str], what: str) -> None:
    """Raise on every rank unless every rank passed the same `lines` (collective).

    Args:
        comm: the ranks to compare.
        lines: this rank's layout, one line per item, in the order the collectives will use.
        what: a name for the layout in the error ("the model's parameters").

    Raises:
        ValueError: the layouts differ; the message names the first differing rank and line.
    """
    if comm.size == 1:
        return
    text = "\n".join(lines)
    digests = comm.allgather_object(hashlib.sha256(text.encode()).hexdigest())
    if all(digest == digests[0] for digest in digests):
        return
    layouts: list[list[str]] = comm.allgather_object(list(lines))
    reference = layouts[0]
    for rank, layout in enumerate(layouts):
        if layout == reference:
            continue
        for position in range(max(len(reference), len(layout))):
            mine = layout[position] if position < len(layout) else "(nothing)"
            theirs = reference[position] if position < len(reference) else "(nothing)"
            if mine != theirs:
                raise ValueError(
                    f"{what} differ across ranks, so they cannot be averaged or sharded: "
                    f"rank 0 has {theirs!r} where rank {rank} has {mine!r} "
                    f"(rank 0: {len(reference)} items, rank {rank}: {len(layout)} items). "
                    "Build the same model with the same dtypes on every rank."
                )
    raise AssertionError("layout digests differ but the layouts are equal")  # pragma: no cover
