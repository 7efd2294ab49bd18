"""Fixtures for the data tests: an independent IDX encoder (struct-based, not `write_idx`)."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

#: dtype -> IDX type byte, straight from the format's description (LeCun's MNIST page).
TYPE_BYTES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def _encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of `array`, built element by element with `struct` (big-endian)."""
    code = TYPE_BYTES[array.dtype]
    letter = {0x08: "B", 0x09: "b", 0x0B: "h", 0x0C: "i", 0x0D: "f", 0x0E: "d"}[code]
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    body = struct.pack(f">{array.size}{letter}", *array.reshape(-1).tolist())
    return header + body


@pytest.fixture
def encode_idx() -> Callable[[np.ndarray], bytes]:
    """The independent IDX encoder: `encode_idx(array) -> bytes`."""
    return _encode_idx


@pytest.fixture
def idx_file(tmp_path: Path) -> Callable[..., Path]:
    """`idx_file(name, array, gz=False)` writes `array` as IDX under tmp_path and returns the path."""

    def write(name: str, array: np.ndarray, gz: bool = False) -> Path:
        content = _encode_idx(np.asarray(array))
        path = tmp_path / (name + ".gz" if gz else name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(content) if gz else content)
        return path

    return write
