"""read_idx / write_idx: every IDX dtype, gzip or not, against an independent struct-based encoder."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from extensor import ExTensor
from extensor.data.datasets import read_idx, write_idx

IDX_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


def random_array(rng: np.random.Generator, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    return (rng.standard_normal(shape) * 1e3).astype(dtype)


@pytest.mark.parametrize("dtype", IDX_DTYPES)
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_decodes_the_independent_encoding(
    dtype: type, gz: bool, idx_file: Callable[..., Path]
) -> None:
    rng = np.random.default_rng(7)
    expected = random_array(rng, dtype, (5, 3, 4))
    array = read_idx(idx_file("sample-idx3", expected, gz=gz))
    assert array.dtype == np.dtype(dtype) and array.dtype.isnative
    assert array.shape == expected.shape
    np.testing.assert_array_equal(array, expected)
    assert array.flags.writeable and array.flags.owndata


@pytest.mark.parametrize("dtype", IDX_DTYPES)
def test_write_idx_produces_the_format_bytes(
    dtype: type, tmp_path: Path, encode_idx: Callable[[np.ndarray], bytes]
) -> None:
    array = random_array(np.random.default_rng(1), dtype, (4, 6))
    write_idx(tmp_path / "a-idx2", array)
    assert (tmp_path / "a-idx2").read_bytes() == encode_idx(array)
    write_idx(tmp_path / "a-idx2.gz", ExTensor(array))
    assert gzip.decompress((tmp_path / "a-idx2.gz").read_bytes()) == encode_idx(array)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    array=hnp.arrays(
        dtype=st.sampled_from([np.dtype(d) for d in IDX_DTYPES]),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
        elements={"allow_nan": False},
    ),
    gz=st.booleans(),
)
def test_round_trip_any_shape(array: np.ndarray, gz: bool, tmp_path: Path) -> None:
    path = tmp_path / ("x.gz" if gz else "x")
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_big_endian_input_is_stored_by_value(tmp_path: Path) -> None:
    array = np.arange(6, dtype=">i4").reshape(2, 3)
    write_idx(tmp_path / "b", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "b"), np.arange(6).reshape(2, 3))


def test_gzip_is_detected_by_content_not_name(
    tmp_path: Path, encode_idx: Callable[[np.ndarray], bytes]
) -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    (tmp_path / "plain-name").write_bytes(gzip.compress(encode_idx(array)))
    np.testing.assert_array_equal(read_idx(tmp_path / "plain-name"), array)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"IDX file not found.*nothing-here"):
        read_idx(tmp_path / "nothing-here")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "header needs 4 bytes, the file has 0"),
        (b"\x00\x00\x08", "header needs 4 bytes, the file has 3"),
        (b"\x01\x00\x08\x01\x00\x00\x00\x00", "not an IDX file: magic number 0x01000801"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x00", "not an IDX file: magic number 0x00000701"),
        (
            b"\x00\x00\x08\x02\x00\x00\x00\x02",
            "truncated IDX header: 2 dimensions need 12 bytes, the file has 8",
        ),
        (
            b"\x00\x00\x08\x01\x00\x00\x00\x05abc",
            r"truncated IDX data: shape \(5,\) of uint8 needs 5 bytes, found 3",
        ),
        (
            b"\x00\x00\x0b\x01\x00\x00\x00\x02abcde",
            r"trailing bytes after the IDX data.*needs 4 bytes, found 5",
        ),
    ],
)
def test_malformed_files_name_the_problem(content: bytes, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_idx(path)
    path.write_bytes(gzip.compress(content))
    with pytest.raises(ValueError, match=message):
        read_idx(path)


def test_truncated_gzip(tmp_path: Path, encode_idx: Callable[[np.ndarray], bytes]) -> None:
    packed = gzip.compress(encode_idx(np.arange(1000, dtype=np.int32)))
    path = tmp_path / "cut.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated gzip"):
        read_idx(path)


@pytest.mark.parametrize("dtype", [np.int64, np.uint16, np.float16, np.bool_, np.complex64])
def test_write_idx_refuses_dtypes_idx_cannot_hold(dtype: type, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=f"IDX cannot store dtype {np.dtype(dtype)}; expected one of uint8"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=dtype))
    assert list(tmp_path.iterdir()) == []


def test_write_idx_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "x"
    write_idx(path, np.zeros(3, dtype=np.uint8))
    write_idx(path, np.ones((2, 2), dtype=np.float32))
    np.testing.assert_array_equal(read_idx(path), np.ones((2, 2), dtype=np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["x"]
