"""Compact-state codecs: bfloat16 bit-exact against torch, the dynamic maps against bitsandbytes'
definition, exact nearest rounding against a brute-force search, and block-wise round trips."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from numba import njit

from extensor.training.optimizers import compact
from extensor.training.optimizers.compact import (
    SIGNED,
    SIGNED_MAP,
    UNSIGNED,
    UNSIGNED_MAP,
    dequantize_block,
    dequantize_blockwise,
    from_bfloat16,
    quantize_block,
    quantize_blockwise,
    to_bfloat16,
)

RNG_SEED = 20220425


def floats(*patterns: int) -> np.ndarray:
    """float32 values from their bit patterns."""
    return np.array(patterns, dtype=np.uint32).view(np.float32)


def torch_bfloat16(values: np.ndarray) -> np.ndarray:
    """torch's bfloat16 bit patterns of float32 `values`."""
    return torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)


def assert_bfloat16_like_torch(values: np.ndarray) -> None:
    """`to_bfloat16` equals torch bit for bit, except that any NaN pattern only has to be a NaN."""
    ours, theirs = to_bfloat16(values), torch_bfloat16(values)
    nan = np.isnan(values)
    np.testing.assert_array_equal(ours[~nan], theirs[~nan])
    assert np.all(ours[nan] == 0x7FC0)  # c10's round_to_nearest_even (torch's vector path gives 0xFFFF)
    assert np.all(np.isnan(from_bfloat16(theirs[nan])))


EDGES = {
    "+0": 0x00000000,
    "-0": 0x80000000,
    "smallest subnormal": 0x00000001,
    "largest subnormal": 0x007FFFFF,
    "-largest subnormal": 0x807FFFFF,
    "smallest normal": 0x00800000,
    "largest finite (rounds to inf)": 0x7F7FFFFF,
    "-largest finite (rounds to -inf)": 0xFF7FFFFF,
    "largest bfloat16": 0x7F7F0000,
    "below the tie to inf": 0x7F7F7FFF,
    "tie to inf": 0x7F7F8000,
    "tie, even stays": 0x3F808000,
    "tie, odd rounds up": 0x3F818000,
    "-tie, odd rounds up": 0xBF818000,
    "just above a tie": 0x3F808001,
    "just below a tie": 0x3F807FFF,
    "subnormal tie": 0x00008000,
    "subnormal odd tie": 0x00018000,
    "+inf": 0x7F800000,
    "-inf": 0xFF800000,
    "quiet NaN": 0x7FC00000,
    "signalling NaN": 0x7F800001,
    "NaN with low bits": 0x7FFFFFFF,
    "-NaN": 0xFFC00000,
    "all ones": 0xFFFFFFFF,
}


@pytest.mark.parametrize("name", list(EDGES))
def test_bfloat16_edge_values_match_torch(name: str) -> None:
    assert_bfloat16_like_torch(floats(EDGES[name]))


def test_bfloat16_random_bit_patterns_match_torch() -> None:
    patterns = np.random.default_rng(RNG_SEED).integers(0, 1 << 32, size=1 << 20, dtype=np.uint32)
    assert_bfloat16_like_torch(patterns.view(np.float32))  # 1M elements: the parallel kernel
    assert_bfloat16_like_torch(patterns[:5000].view(np.float32))  # the serial one


def test_from_bfloat16_is_torch_float_on_all_patterns() -> None:
    codes = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    theirs = torch.from_numpy(codes.view(np.int16)).view(torch.bfloat16).float().numpy()
    ours = from_bfloat16(codes)
    np.testing.assert_array_equal(ours.view(np.uint32), theirs.view(np.uint32))
    np.testing.assert_array_equal(ours.view(np.uint32), codes.astype(np.uint32) << 16)


def test_bfloat16_into_given_outputs() -> None:
    values = np.linspace(-3, 3, 101, dtype=np.float32)
    out = np.empty(101, np.uint16)
    assert to_bfloat16(values, out) is out
    back = np.empty(101, np.float32)
    assert from_bfloat16(out, back) is back
    np.testing.assert_array_equal(back, torch.from_numpy(values).to(torch.bfloat16).float().numpy())


def reference_dynamic_map(signed: bool, max_exponent_bits: int = 7, total_bits: int = 8) -> np.ndarray:
    """bitsandbytes' ``create_dynamic_map`` re-derived from its definition, in torch float32."""
    data: list[float] = []
    non_sign_bits = total_bits - 1
    for i in range(max_exponent_bits):
        exponent = i + non_sign_bits - max_exponent_bits
        fraction_items = 2**exponent + 1 if signed else 2 ** (exponent + 1) + 1
        boundaries = torch.linspace(0.1, 1, fraction_items, dtype=torch.float32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    data += [0.0, 1.0]
    assert len(data) == 2**total_bits  # no "additional items" at 7 exponent bits of 8
    return torch.tensor(sorted(data), dtype=torch.float32).numpy()


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_maps_are_bitsandbytes_dynamic_maps(signed: bool) -> None:
    ours = SIGNED_MAP if signed else UNSIGNED_MAP
    assert ours.dtype == np.float32 and ours.shape == (256,)
    np.testing.assert_array_equal(ours.view(np.uint32), reference_dynamic_map(signed).view(np.uint32))
    assert np.all(np.diff(ours) > 0)
    assert 0.0 in ours and ours[-1] == 1.0
    book = SIGNED if signed else UNSIGNED
    assert ours[book.zero] == 0.0
    assert (ours[0] == 0.0) != signed


def brute_force_codes(y: np.ndarray, values: np.ndarray) -> np.ndarray:
    """argmin |values - y| per element, ties to the value of larger magnitude (away from zero)."""
    out = np.empty(y.size, dtype=np.int64)
    grid = values.astype(np.float64)
    magnitude_rank = np.argsort(np.argsort(np.abs(grid), kind="stable"), kind="stable")
    for start in range(0, y.size, 1 << 14):
        part = y[start : start + (1 << 14)].astype(np.float64)[:, None]
        distance = np.abs(grid[None, :] - part)
        nearest = distance == distance.min(axis=1, keepdims=True)
        out[start : start + part.shape[0]] = np.argmax(np.where(nearest, magnitude_rank, -1), axis=1)
    return out


def codes_at_unit_scale(y: np.ndarray, signed: bool, block: int = 256) -> np.ndarray:
    """The codes `quantize_blockwise` gives each of `y` (|y| <= 1) in blocks whose absmax is 1."""
    per_block = block - 1
    count = -(-y.size // per_block)
    padded = np.zeros(count * per_block, dtype=np.float32)
    padded[: y.size] = y
    laid = np.concatenate([np.ones((count, 1), np.float32), padded.reshape(count, per_block)], axis=1)
    codes, absmax = quantize_blockwise(laid.ravel(), signed, block)
    assert np.all(absmax == 1.0)
    return codes.reshape(count, block)[:, 1:].ravel()[: y.size].astype(np.int64)


def special_points(values: np.ndarray) -> np.ndarray:
    """The map values, every midpoint rounded both ways to float32, and their float32 neighbours."""
    midpoints = (values[:-1].astype(np.float64) + values[1:].astype(np.float64)) / 2
    down = midpoints.astype(np.float32)
    up = np.where(down.astype(np.float64) < midpoints, np.nextafter(down, np.float32(2)), down)
    down = np.where(down.astype(np.float64) > midpoints, np.nextafter(down, np.float32(-2)), down)
    centre = np.concatenate([values, down, up]).astype(np.float32)
    points = np.concatenate(
        [centre, np.nextafter(centre, np.float32(2)), np.nextafter(centre, np.float32(-2)), -centre]
    )
    return points[np.abs(points) <= 1].astype(np.float32)


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_nearest_code_at_every_boundary(signed: bool) -> None:
    values = SIGNED_MAP if signed else UNSIGNED_MAP
    points = special_points(values)
    np.testing.assert_array_equal(codes_at_unit_scale(points, signed), brute_force_codes(points, values))


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_ties_round_away_from_zero(signed: bool) -> None:
    values = SIGNED_MAP if signed else UNSIGNED_MAP
    midpoints = (values[:-1].astype(np.float64) + values[1:].astype(np.float64)) / 2
    exact = midpoints.astype(np.float32).astype(np.float64) == midpoints
    assert exact.sum() > 10  # e.g. the midpoints beside 0
    ties = midpoints[exact].astype(np.float32)
    lower = np.flatnonzero(exact)  # midpoint k lies between codes k and k + 1
    expected = np.where(ties > 0, lower + 1, lower)
    np.testing.assert_array_equal(codes_at_unit_scale(ties, signed), expected)


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_nearest_code_of_random_values(signed: bool) -> None:
    rng = np.random.default_rng(RNG_SEED + signed)
    uniform = rng.uniform(-1 if signed else 0, 1, size=1 << 19).astype(np.float32)
    # bit patterns of magnitude <= 1 spread over every binade, both signs (negative for unsigned -> 0)
    bits = rng.integers(0, 0x3F800001, size=1 << 19, dtype=np.uint32) | (
        rng.integers(0, 2, size=1 << 19, dtype=np.uint32) << 31
    )
    y = np.concatenate([uniform, bits.view(np.float32)])  # 1M values: the parallel kernel
    values = SIGNED_MAP if signed else UNSIGNED_MAP
    np.testing.assert_array_equal(codes_at_unit_scale(y, signed), brute_force_codes(y, values))


def error_bound(x: np.ndarray, absmax: np.ndarray, values: np.ndarray, block: int) -> np.ndarray:
    """``a·(g/2 + 2^-23)`` per element: g the width of the map interval holding y = x / a (float32),
    or y's distance to the map's end when outside it."""
    scale = np.repeat(absmax, block)[: x.size]
    y = (x / scale).astype(np.float64)
    grid = values.astype(np.float64)
    k = np.clip(np.searchsorted(grid, y, side="right") - 1, 0, 254)
    half_gap = (grid[k + 1] - grid[k]) / 2
    outside = np.maximum(grid[0] - y, y - grid[-1])
    return scale.astype(np.float64) * (np.maximum(half_gap, outside) + 2.0**-23)


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
@pytest.mark.parametrize("block", [256, 2048, 100], ids=lambda b: f"block{b}")
def test_blockwise_round_trip_error_bound(signed: bool, block: int) -> None:
    rng = np.random.default_rng(RNG_SEED + block)
    size = 20 * block + block // 3  # a partial last block
    x = rng.standard_normal(size) * np.exp(rng.uniform(-30, 10, size=size // block + 1)).repeat(block)[:size]
    x = (x if signed else x * x).astype(np.float32)
    codes, absmax = quantize_blockwise(x, signed, block)
    assert codes.dtype == np.uint8 and codes.shape == (size,)
    assert absmax.dtype == np.float32 and absmax.shape == (-(-size // block),)
    scale = np.abs(np.pad(x, (0, absmax.size * block - size))).reshape(-1, block).max(axis=1)
    np.testing.assert_array_equal(absmax, scale)
    decoded = dequantize_blockwise(codes, absmax, signed, block)
    values = SIGNED_MAP if signed else UNSIGNED_MAP
    np.testing.assert_array_equal(decoded, values[codes] * np.repeat(absmax, block)[:size])
    error = np.abs(decoded.astype(np.float64) - x.astype(np.float64))
    assert np.all(error <= error_bound(x, absmax, values, block))
    y = x / np.repeat(absmax, block)[:size]
    np.testing.assert_array_equal(codes, brute_force_codes(y, values))  # exactly the nearest of x / a


def test_zero_nonfinite_and_subnormal_blocks() -> None:
    block = 256
    x = np.random.default_rng(RNG_SEED).standard_normal(6 * block).astype(np.float32)
    x[:block] = 0.0
    x[5] = -0.0
    x[block + 7] = np.nan
    x[2 * block + 9] = np.inf
    x[3 * block + 11] = -np.inf
    x[4 * block : 5 * block] *= np.float32(1e-40)  # absmax subnormal: x / a stays finite
    codes, absmax = quantize_blockwise(x, True, block)
    assert absmax[0] == 0.0 and np.all(codes[:block] == SIGNED.zero)
    assert np.all(np.isnan(absmax[1:4])) and np.all(codes[block : 4 * block] == SIGNED.zero)
    decoded = dequantize_blockwise(codes, absmax, True, block)
    np.testing.assert_array_equal(decoded[:block].view(np.uint32), 0)  # exact +0
    assert np.all(np.isnan(decoded[block : 4 * block]))
    assert np.all(np.isfinite(decoded[4 * block :]))
    tiny = x[4 * block : 5 * block]
    assert absmax[4] == np.abs(tiny).max() and absmax[4] < np.finfo(np.float32).tiny
    np.testing.assert_array_equal(
        codes[4 * block : 5 * block], brute_force_codes(tiny / absmax[4], SIGNED_MAP)
    )
    unsigned_codes, unsigned_absmax = quantize_blockwise(np.zeros(300, np.float32), False, block)
    assert UNSIGNED.zero == 0 and np.all(unsigned_absmax == 0) and np.all(unsigned_codes == 0)


def test_negative_values_in_the_unsigned_map_round_to_zero() -> None:
    x = np.array([1.0, -0.5, -1e-30, 0.25], np.float32)
    codes, absmax = quantize_blockwise(x, False, 4)
    assert codes[1] == codes[2] == 0
    np.testing.assert_array_equal(dequantize_blockwise(codes, absmax, False, 4)[1:3], 0.0)


def test_empty_and_given_outputs() -> None:
    codes, absmax = quantize_blockwise(np.empty(0, np.float32), True)
    assert codes.size == 0 and absmax.size == 0
    assert dequantize_blockwise(codes, absmax, True).size == 0
    x = np.linspace(-1, 2, 1000, dtype=np.float32)
    out_codes, out_absmax = np.empty(1000, np.uint8), np.empty(4, np.float32)
    got = quantize_blockwise(x, True, 256, codes=out_codes, absmax=out_absmax)
    assert got[0] is out_codes and got[1] is out_absmax
    out = np.empty(1000, np.float32)
    assert dequantize_blockwise(out_codes, out_absmax, True, 256, out=out) is out


@njit(cache=True, error_model="numpy")
def _kernel_round_trip(values: Any, book: Any, block: int, codes: Any, absmax: Any, out: Any) -> None:
    """What an optimizer kernel does: quantise and decode block by block through slices."""
    scratch = np.empty(block, np.float32)
    for b in range(absmax.size):
        start, stop = b * block, min((b + 1) * block, values.size)
        scratch[: stop - start] = values[start:stop]
        absmax[b] = quantize_block(scratch[: stop - start], codes[start:stop], book)
        dequantize_block(codes[start:stop], absmax[b], book, out[start:stop])


def test_block_functions_inline_into_a_kernel() -> None:
    x = np.random.default_rng(RNG_SEED).standard_normal(1000).astype(np.float32)
    codes, absmax, out = np.empty(1000, np.uint8), np.empty(4, np.float32), np.empty(1000, np.float32)
    _kernel_round_trip(x, UNSIGNED, 256, codes, absmax, out)
    expected_codes, expected_absmax = quantize_blockwise(x, False, 256)
    np.testing.assert_array_equal(codes, expected_codes)
    np.testing.assert_array_equal(absmax, expected_absmax)
    np.testing.assert_array_equal(out, dequantize_blockwise(codes, absmax, False, 256))


GOOD = np.zeros(10, np.float32)


@pytest.mark.parametrize(
    ("call", "error", "names"),
    [
        (lambda: quantize_blockwise(GOOD.astype(np.float64), True), TypeError, "values"),
        (lambda: quantize_blockwise(list(GOOD), True), TypeError, "values"),
        (lambda: quantize_blockwise(GOOD.reshape(2, 5), True), ValueError, "values"),
        (lambda: quantize_blockwise(np.zeros(20, np.float32)[::2], True), ValueError, "values"),
        (lambda: quantize_blockwise(GOOD, 1), TypeError, "signed"),
        (lambda: quantize_blockwise(GOOD, True, 0), ValueError, "block"),
        (lambda: quantize_blockwise(GOOD, True, -256), ValueError, "block"),
        (lambda: quantize_blockwise(GOOD, True, 256.0), TypeError, "block"),
        (lambda: quantize_blockwise(GOOD, True, True), TypeError, "block"),
        (lambda: quantize_blockwise(GOOD, True, codes=np.empty(9, np.uint8)), ValueError, "codes"),
        (lambda: quantize_blockwise(GOOD, True, absmax=np.empty(1, np.float64)), TypeError, "absmax"),
        (
            lambda: dequantize_blockwise(GOOD.astype(np.int8), np.ones(1, np.float32), True),
            TypeError,
            "codes",
        ),
        (
            lambda: dequantize_blockwise(GOOD.astype(np.uint8), np.ones(2, np.float32), True),
            ValueError,
            "absmax",
        ),
        (
            lambda: dequantize_blockwise(GOOD.astype(np.uint8), np.ones(1, np.float64), True),
            TypeError,
            "absmax",
        ),
        (
            lambda: dequantize_blockwise(GOOD.astype(np.uint8), np.ones(1, np.float32), None),
            TypeError,
            "signed",
        ),
        (
            lambda: dequantize_blockwise(GOOD.astype(np.uint8), np.ones(10, np.float32), True, 1.5),
            TypeError,
            "block",
        ),
        (lambda: to_bfloat16(GOOD.astype(np.float64)), TypeError, "values"),
        (lambda: to_bfloat16(GOOD, np.empty(10, np.int16)), TypeError, "out"),
        (lambda: to_bfloat16(GOOD, np.empty(11, np.uint16)), ValueError, "out"),
        (lambda: from_bfloat16(GOOD), TypeError, "codes"),
        (lambda: from_bfloat16(np.zeros((2, 2), np.uint16)), ValueError, "codes"),
    ],
)
def test_bad_inputs_are_refused_by_name(call: Any, error: type[Exception], names: str) -> None:
    with pytest.raises(error, match=names):
        call()


def test_constants() -> None:
    assert compact.BLOCK_SIZE in (256, 2048)
    assert compact.MIN_QUANTIZED_SIZE == 4096
    assert SIGNED.table.dtype == np.uint32 and SIGNED.table.shape == (1 << 16,)
