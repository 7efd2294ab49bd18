"""The IDX file format of MNIST and its relatives: `read_idx` and `write_idx`.

An IDX file is a 4-byte magic number `0x00 0x00 <type> <ndim>`, then `ndim` big-endian unsigned
32-bit dimension sizes, then the elements in C order, big-endian. The type byte says the element
type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
(LeCun et al., http://yann.lecun.com/exdb/mnist/). Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from extensor.core.tensor import Array, ExTensor
from extensor.files import atomic_write_bytes

#: IDX type byte -> element dtype (as stored: big-endian).
IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_TYPE_CODES = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it starts with the gzip magic bytes."""
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"{path}: corrupt or truncated gzip data ({error})") from None


def read_idx(path: str | os.PathLike[str]) -> Array:
    """Read an IDX file (gzip-compressed or not) into a NumPy array in native byte order.

    Returns an array of the file's shape and element type (uint8, int8, int16, int32, float32 or
    float64), owning its memory.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: a bad magic number or type byte, a truncated header or body, trailing bytes,
            or corrupt gzip data; the message names the file and what was expected.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: truncated IDX file: the header needs 4 bytes, the file has {len(raw)}")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        known = ", ".join(f"0x{code:02X}" for code in IDX_DTYPES)
        raise ValueError(
            f"{path}: not an IDX file: magic number 0x{raw[:4].hex().upper()}, expected 0x0000TTNN with "
            f"type byte TT in ({known}) and NN the number of dimensions"
        )
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{path}: truncated IDX header: {ndim} dimensions need {header} bytes, the file has {len(raw)}"
        )
    shape = tuple(int(size) for size in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    count = math.prod(shape)
    expected, found = count * dtype.itemsize, len(raw) - header
    if found != expected:
        problem = "truncated IDX data" if found < expected else "trailing bytes after the IDX data"
        raise ValueError(
            f"{path}: {problem}: shape {shape} of {dtype.newbyteorder('=')} needs {expected} bytes, "
            f"found {found}"
        )
    return (
        np.frombuffer(raw, dtype=dtype, count=count, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def write_idx(path: str | os.PathLike[str], array: Any) -> None:
    """Write `array` (an array-like or ExTensor) as an IDX file, gzip-compressed when `path` ends in ".gz".

    The array's dtype must be one IDX can hold (uint8, int8, int16, int32, float32, float64; no
    silent conversion) and every dimension below 2**32. The file is written atomically
    (`extensor.files.atomic_write_bytes`): readers see the old file or the whole new one.

    Raises:
        TypeError: an unsupported dtype.
        ValueError: more than 255 dimensions or a dimension of 2**32 or more.
    """
    data = array.data if isinstance(array, ExTensor) else np.asarray(array)
    code = _TYPE_CODES.get(data.dtype.newbyteorder("="))
    if code is None:
        names = ", ".join(str(dtype.newbyteorder("=")) for dtype in IDX_DTYPES.values())
        raise TypeError(f"IDX cannot store dtype {data.dtype}; expected one of {names}")
    if data.ndim > 255:
        raise ValueError(f"IDX stores at most 255 dimensions, got {data.ndim}")
    if any(size >= 2**32 for size in data.shape):
        raise ValueError(f"IDX dimensions must be below 2**32, got shape {data.shape}")
    content = (
        bytes([0, 0, code, data.ndim])
        + np.asarray(data.shape, dtype=">u4").tobytes()
        + np.ascontiguousarray(data, dtype=IDX_DTYPES[code]).tobytes()
    )
    path = Path(path)
    if path.suffix == ".gz":
        content = gzip.compress(content, mtime=0)
    atomic_write_bytes(path, content)
