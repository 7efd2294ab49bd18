"""Compact optimizer state: bfloat16 and 8-bit block-wise dynamic quantisation, callable from kernels.

Dettmers, Lewis, Shleifer & Zettlemoyer, "8-bit Optimizers via Block-wise Quantization"
(ICLR 2022). Optimizer state (momenta, second moments) is kept in fewer bits and expanded to
float32 inside the update kernel, element by element, so no full-size float32 copy exists.

**bfloat16** is the upper half of a float32: 1 sign, 8 exponent and 7 mantissa bits, stored here
as `np.uint16` (NumPy has no bfloat16). `bf16_round` rounds to nearest, ties to even, exactly as
c10's ``round_to_nearest_even`` (a NaN becomes 0x7FC0; finite values beyond the largest bfloat16
round to ±inf); `bf16_expand` appends 16 zero bits. Both are plain integer arithmetic on the bit
pattern, which `float32_bits` / `bits_float32` (LLVM bitcasts, no memory traffic) expose as
scalars, so a loop calling them compiles to packed AVX2/AVX-512 shifts and adds (checked in
numba 0.68: ``vpsrld``/``vpslld`` on ymm/zmm registers). Going through
``array.view(np.uint32)`` works as well but needs the value in memory; the bitcasts also serve
values computed in registers, as `quantize_block` needs.

**8-bit block-wise dynamic quantisation** splits a tensor into blocks of `BLOCK_SIZE` elements;
each block stores its absolute maximum ``a`` (float32) and one code per element, an index into a
256-value *dynamic map* (the paper's dynamic tree type: a decimal exponent of 0 to -6 and a
linear fraction whose precision grows with the exponent). Element ``x`` becomes the code of the
map value nearest ``y = x / a`` (a correctly rounded float32 division, so |y| <= 1 exactly and a
subnormal ``a`` is fine, where ``x * (1 / a)`` would overflow) and decodes as ``map[code] * a``.
`SIGNED` (first moments) and `UNSIGNED` (second moments) are bitsandbytes'
``create_dynamic_map(signed, 7, 8)`` value for value. Rounding is exact round-to-nearest
without a search: a 65,536-entry table indexed by the upper 16 bits of ``y`` (sign, exponent and
7 mantissa bits: a *bucket* of float32 values) holds the code nearest the bucket's smallest
magnitude, the next code away from zero and where between them the bucket's one decision
boundary lies, if any (every bucket holds at most one: proven for all 2^32 patterns when the
table is built), so one load and one integer comparison of the low 16 bits round exactly.
**Ties** (``y``
exactly halfway between two map values) round away from zero. Non-finite values: a block
holding a NaN or ±inf stores ``a = NaN`` and every code of the map's 0, so the whole block
decodes to NaN. A block of zeros stores ``a = 0`` and decodes to exact +0. Tensors smaller
than `MIN_QUANTIZED_SIZE` elements stay in 32 bits, as in the paper.

Error bound (tested): with ``g`` the width of the map interval holding ``y`` (or ``y``'s distance
to the nearest end of the map outside it), ``|map[code]·a − x| <= a·(g/2 + 2^-23)``: half a gap
from rounding to the nearest map value, 2^-24 relative from the division and 2^-24 from the
product.

Calling from a kernel: pass a `Codebook` (a NamedTuple of arrays, `SIGNED` or `UNSIGNED`) as an
argument rather than reading it as a global (numba would freeze a global array into the
compiled code, 64 KiB of constants per kernel); compile the caller with
``error_model="numpy"`` (as `sized_kernel` does) so the division vectorises. A kernel that
updates an int8 moment block by block dequantises the block (`dequantize_block`), updates it in
a float32 scratch block of `BLOCK_SIZE` elements (in L1), then calls `quantize_block`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from extensor.core.tensor import Array
from extensor.training.flat import sized_kernel

__all__ = [
    "BLOCK_SIZE",
    "MIN_QUANTIZED_SIZE",
    "SIGNED",
    "SIGNED_MAP",
    "UNSIGNED",
    "UNSIGNED_MAP",
    "Codebook",
    "bf16_expand",
    "bf16_round",
    "bits_float32",
    "block_count",
    "dequantize_block",
    "dequantize_blockwise",
    "dynamic_map",
    "float32_bits",
    "from_bfloat16",
    "quantize_block",
    "quantize_blockwise",
    "to_bfloat16",
]

#: Elements per quantisation block (one float32 absmax each). Measured by benchmarks/compact_state.py
#: on 10M float32 (one thread): quantise 1.27 / 1.31 ns per element and dequantise 0.33 / 0.35 at
#: 256 / 2048, the same within noise; relative RMS error on Adam-like moments 7.7e-3 / 1.3e-2 (m)
#: and 5.9e-4 / 1.7e-3 (v): 256 (bitsandbytes' optimizers' choice) is as fast and 2-3x as exact,
#: for 1/64 byte of absmax per element.
BLOCK_SIZE = 256
#: Tensors with fewer elements keep 32-bit state (Dettmers et al. 2022, section 2.3).
MIN_QUANTIZED_SIZE = 4096

_MAGNITUDE = 0x7FFFFFFF
_INFINITY_BITS = 0x7F800000
#: "no boundary beyond this code": larger than any magnitude bit pattern
_NO_BOUNDARY = 0xFFFFFFFF


def _float32_bits(typingctx: Any, value: Any) -> Any:
    """The IEEE bit pattern of a float32 scalar as a uint32 (an LLVM bitcast; vectorises)."""
    if value != types.float32:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], context.get_value_type(types.uint32))

    return types.uint32(types.float32), codegen


def _bits_float32(typingctx: Any, bits: Any) -> Any:
    """The float32 whose bit pattern is the integer `bits` (cast to uint32 first; vectorises)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        word = context.cast(builder, args[0], signature.args[0], types.uint32)
        return builder.bitcast(word, context.get_value_type(types.float32))

    return types.float32(bits), codegen


#: ``float32_bits(x)``: the bit pattern of float32 `x` as a uint32, inside numba code.
float32_bits: Any = intrinsic(_float32_bits)
#: ``bits_float32(u)``: the float32 with bit pattern `u` (any integer, cast to uint32), inside numba code.
bits_float32: Any = intrinsic(_bits_float32)


@njit(cache=True, inline="always")
def bf16_round(value: Any) -> Any:
    """float32 -> bfloat16 bits (uint16), round to nearest even as c10; NaN -> 0x7FC0."""
    bits = float32_bits(value)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    return np.uint16(0x7FC0) if value != value else np.uint16(rounded)


@njit(cache=True, inline="always")
def bf16_expand(code: Any) -> Any:
    """bfloat16 bits (uint16) -> the float32 they are the upper half of (exact)."""
    return bits_float32(np.uint32(code) << np.uint32(16))


@sized_kernel()
def _to_bfloat16_kernel(values: Array, out: Array) -> None:
    """``out[i] = bf16_round(values[i])``."""
    for i in prange(values.size):
        out[i] = bf16_round(values[i])


@sized_kernel()
def _from_bfloat16_kernel(codes: Array, out: Array) -> None:
    """``out[i] = bf16_expand(codes[i])``."""
    for i in prange(codes.size):
        out[i] = bf16_expand(codes[i])


def _vector(array: Any, dtype: type, name: str) -> Array:
    """`array` checked to be a contiguous 1-D array of `dtype` (TypeError / ValueError naming `name`)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(array).__name__}")
    if array.dtype != np.dtype(dtype):
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)}, got {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got a {array.ndim}-D array of shape {array.shape}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{name} must be contiguous")
    return array


def _output(out: Array | None, size: int, dtype: type, name: str) -> Array:
    """`out` checked to hold `size` elements of `dtype`, or a new array when None."""
    if out is None:
        return np.empty(size, dtype=dtype)
    out = _vector(out, dtype, name)
    if out.size != size:
        raise ValueError(f"{name} must have {size} elements, got {out.size}")
    return out


def to_bfloat16(values: Array, out: Array | None = None) -> Array:
    """The bfloat16 bit patterns (uint16) of a 1-D float32 array, rounded as torch rounds.

    Raises:
        TypeError: `values` is not a float32 array, `out` not a uint16 array.
        ValueError: not 1-D and contiguous, or `out` of another size.
    """
    values = _vector(values, np.float32, "values")
    out = _output(out, values.size, np.uint16, "out")
    _to_bfloat16_kernel(values, out)
    return out


def from_bfloat16(codes: Array, out: Array | None = None) -> Array:
    """The float32 values of a 1-D array of bfloat16 bit patterns (uint16), exactly.

    Raises:
        TypeError: `codes` is not a uint16 array, `out` not a float32 array.
        ValueError: not 1-D and contiguous, or `out` of another size.
    """
    codes = _vector(codes, np.uint16, "codes")
    out = _output(out, codes.size, np.float32, "out")
    _from_bfloat16_kernel(codes, out)
    return out


def _linspace32(start: float, end: float, steps: int) -> Array:
    """``torch.linspace(start, end, steps, dtype=torch.float32)`` on CPU: a float32 step, each
    point ``start + step·k`` (first half) or ``end - step·(steps-1-k)`` as one fused multiply-add."""
    first, last = np.float32(start), np.float32(end)
    step = np.float32((last - first) / np.float32(steps - 1))
    k = np.arange(steps, dtype=np.float64)
    head, tail = float(first) + float(step) * k, float(last) - float(step) * (steps - 1 - k)
    exact = np.where(k < steps // 2, head, tail)
    return exact.astype(np.float32)  # the float64 value is exact, so this is the FMA's one rounding


def dynamic_map(signed: bool) -> Array:
    """The 8-bit dynamic (tree) map, 256 float32 values ascending: bitsandbytes'
    ``create_dynamic_map(signed, max_exponent_bits=7, total_bits=8)``.

    For decimal exponents ``e = -6 … 0`` the means of neighbouring points of a float32
    ``linspace(0.1, 1, n)`` scaled by ``10^e`` (``n = 2^(e+6) + 1`` signed, ``2^(e+7) + 1``
    unsigned), their negatives when signed, then 0 and 1. The signed map has no -1: it spans
    [-0.9930, 1].
    """
    data: list[Array] = [np.zeros(1, np.float32), np.ones(1, np.float32)]
    for i in range(7):
        boundaries = _linspace32(0.1, 1.0, 2 ** (i + (0 if signed else 1)) + 1)
        means = (boundaries[:-1] + boundaries[1:]) / np.float32(2.0)
        scale = np.float32(10.0 ** (i - 6))
        data.append(scale * means)
        if signed:
            data.append(-scale * means)
    values = np.sort(np.concatenate(data)).astype(np.float32)
    assert values.size == 256 and np.all(np.diff(values) > 0)
    return values


class Codebook(NamedTuple):
    """A dynamic map with the table of its exact nearest-value rounding; pass it to kernels.

    Attributes:
        values: the 256 map values, float32 ascending; code ``c`` decodes to ``values[c]``.
        table: uint32[65536], one entry per bucket of float32 values sharing their upper 16 bits
            ``u``: ``table[u] = below | above << 8 | boundary << 16``. A value of the bucket whose
            lower 16 bits are ``>= boundary`` rounds to code `above`, any other to `below`
            (``above = below`` and ``boundary = 0`` when no decision boundary falls in the bucket).
        zero: the code of 0.0.
    """

    values: Array
    table: Array
    zero: int


def _round_away(magnitudes: Array) -> Array:
    """Bit patterns of the smallest float32 >= each (non-negative float64) magnitude."""
    nearest = magnitudes.astype(np.float32)
    below = nearest.astype(np.float64) < magnitudes
    nearest[below] = np.nextafter(nearest[below], np.float32(np.inf))
    return nearest.view(np.uint32).astype(np.int64)


def _codebook(values: Array) -> Codebook:
    """The rounding table of `values`, after proving it gives the nearest value for every float32.

    Decision boundary ``k`` lies between codes ``k`` and ``k + 1`` at their exact midpoint; a
    float32 at least as far from zero as the midpoint rounds away from zero (ties away from
    zero), so in magnitude bits the boundary is the midpoint rounded up to float32. The table's
    `below` code is the one nearest each bucket's smallest magnitude; `above` is the next code
    away from zero when the boundary beyond `below` falls inside the bucket.
    """
    midpoints = (values[:-1].astype(np.float64) + values[1:].astype(np.float64)) / 2  # exact
    assert np.all(midpoints != 0)
    positive = midpoints > 0
    bits = _round_away(np.abs(midpoints))
    buckets = np.arange(1 << 16, dtype=np.int64)
    sign = buckets >> 15
    low = (buckets & 0x7FFF) << 16  # smallest magnitude bits of the bucket
    high = low | 0xFFFF
    finite = low < _INFINITY_BITS
    finite_low = np.where(finite, low, 0).astype(np.uint32)
    low_values = finite_low.view(np.float32).astype(np.float64) * np.where(sign == 1, -1.0, 1.0)
    below = np.where(
        sign == 0,
        np.searchsorted(midpoints, low_values, side="right"),  # positive: midpoints <= y are passed
        np.searchsorted(midpoints, low_values, side="left"),  # negative: midpoints < y are passed
    )
    below[~finite] = np.where(sign[~finite] == 0, 255, 0)  # ±inf and NaN: the map's ends
    # the boundary beyond `below` away from zero: midpoint `below` (positive) or `below - 1` (negative)
    index = np.where(sign == 0, below, below - 1)
    exists = (index >= 0) & (index < 255)
    index = np.clip(index, 0, 254)
    exists &= np.where(sign == 0, positive[index], ~positive[index]) & finite
    boundary = np.where(exists, bits[index], _NO_BOUNDARY)
    inside = boundary <= high
    # Proof of exactness: a bucket holds at most one boundary of its sign, and it is that one.
    for side in (0, 1):
        ordered = np.sort(bits[positive] if side == 0 else bits[~positive])
        chosen = (sign == side) & finite
        count = np.searchsorted(ordered, high[chosen], side="right") - np.searchsorted(
            ordered, low[chosen], side="right"
        )
        assert count.max(initial=0) <= 1
        assert np.array_equal(count == 1, inside[chosen])
    assert np.all(boundary[exists] > low[exists])
    above = np.where(inside, below + np.where(sign == 0, 1, -1), below)
    threshold = np.where(inside, boundary & 0xFFFF, 0)
    return Codebook(
        values=values,
        table=(below | (above << 8) | (threshold << 16)).astype(np.uint32),
        zero=int(np.flatnonzero(values == 0)[0]),
    )


#: First-moment (signed) codebook and its map, [-0.9930, 1].
SIGNED = _codebook(dynamic_map(True))
SIGNED_MAP = SIGNED.values
#: Second-moment (unsigned) codebook and its map, [0, 1]; negative values round to 0.
UNSIGNED = _codebook(dynamic_map(False))
UNSIGNED_MAP = UNSIGNED.values


@njit(cache=True, inline="always")
def quantize_block(values: Array, codes: Array, book: Codebook) -> Any:
    """Quantise one block: ``codes[i]`` = the `book` code nearest ``values[i] / absmax``; returns
    absmax (float32). `values` float32 and `codes` uint8, equal-sized 1-D (e.g. slices).

    A block with a NaN or ±inf returns NaN, an all-zero block 0; both store the code of 0.
    """
    top = np.uint32(0)
    for i in range(values.size):
        top = max(top, float32_bits(values[i]) & np.uint32(_MAGNITUDE))
    if top == 0 or top >= _INFINITY_BITS:
        for i in range(codes.size):
            codes[i] = book.zero
        return np.float32(0.0) if top == 0 else np.float32(np.nan)
    absmax = bits_float32(top)
    table = book.table
    for i in range(values.size):
        bits = float32_bits(values[i] / absmax)
        entry = table[bits >> np.uint32(16)]
        past = np.uint32((bits & np.uint32(0xFFFF)) >= (entry >> np.uint32(16)))
        codes[i] = np.uint8(entry >> (past << np.uint32(3)))  # `above` past the boundary, else `below`
    return absmax


@njit(cache=True, inline="always")
def dequantize_block(codes: Array, absmax: Any, book: Codebook, out: Array) -> None:
    """Decode one block: ``out[i] = book.values[codes[i]] * absmax`` (float32)."""
    values = book.values
    for i in range(codes.size):
        out[i] = values[codes[i]] * absmax


@sized_kernel()
def _quantize_kernel(values: Array, codes: Array, absmax: Array, book: Codebook, block: int) -> None:
    """`quantize_block` over consecutive blocks, the last one possibly partial."""
    for b in prange(absmax.size):
        start = b * block
        stop = min(start + block, values.size)
        absmax[b] = quantize_block(values[start:stop], codes[start:stop], book)


@sized_kernel()
def _dequantize_kernel(codes: Array, absmax: Array, book: Codebook, block: int, out: Array) -> None:
    """`dequantize_block` over consecutive blocks, the last one possibly partial."""
    for b in prange(absmax.size):
        start = b * block
        stop = min(start + block, codes.size)
        dequantize_block(codes[start:stop], absmax[b], book, out[start:stop])


def _block_size(block: Any) -> int:
    """`block` checked to be a positive int."""
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)):
        raise TypeError(f"block must be an int, got {type(block).__name__} {block!r}")
    if block < 1:
        raise ValueError(f"block must be positive, got {block}")
    return int(block)


def block_count(size: int, block: int = BLOCK_SIZE) -> int:
    """How many blocks (absmax values) `size` elements take: ``ceil(size / block)``."""
    return -(-size // block)


def _book(signed: Any) -> Codebook:
    """`SIGNED` or `UNSIGNED`; `signed` must be a bool."""
    if not isinstance(signed, (bool, np.bool_)):
        raise TypeError(f"signed must be a bool, got {type(signed).__name__} {signed!r}")
    return SIGNED if signed else UNSIGNED


def quantize_blockwise(
    values: Array,
    signed: bool,
    block: int = BLOCK_SIZE,
    *,
    codes: Array | None = None,
    absmax: Array | None = None,
) -> tuple[Array, Array]:
    """8-bit block-wise quantisation of a 1-D float32 array: ``(codes uint8, absmax float32)``.

    Blocks of `block` elements (the last may be partial), each with its absolute maximum and the
    nearest codes of the `SIGNED` (or, ``signed=False``, `UNSIGNED`) map; see the module docstring.
    `codes` and `absmax`, when given, receive the result (``values.size`` and
    ``block_count(values.size, block)`` elements).

    Raises:
        TypeError: `values` not a float32 array, `signed` not a bool, `block` not an int, an output
            of the wrong dtype.
        ValueError: an array not 1-D and contiguous, `block` not positive, an output of the wrong size.
    """
    values = _vector(values, np.float32, "values")
    book = _book(signed)
    block = _block_size(block)
    codes = _output(codes, values.size, np.uint8, "codes")
    absmax = _output(absmax, block_count(values.size, block), np.float32, "absmax")
    if values.size:
        _quantize_kernel(values, codes, absmax, book, block)
    return codes, absmax


def dequantize_blockwise(
    codes: Array, absmax: Array, signed: bool, block: int = BLOCK_SIZE, *, out: Array | None = None
) -> Array:
    """The float32 values of `quantize_blockwise`'s ``(codes, absmax)`` (into `out` if given).

    Raises:
        TypeError: `codes` not uint8, `absmax` or `out` not float32, `signed` not a bool, `block`
            not an int.
        ValueError: not 1-D and contiguous, `block` not positive, ``absmax.size`` not
            ``ceil(codes.size / block)``, or `out` of another size than `codes`.
    """
    codes = _vector(codes, np.uint8, "codes")
    absmax = _vector(absmax, np.float32, "absmax")
    book = _book(signed)
    block = _block_size(block)
    if absmax.size != block_count(codes.size, block):
        raise ValueError(
            f"absmax must have ceil({codes.size} / {block}) = {block_count(codes.size, block)} elements, "
            f"got {absmax.size}"
        )
    out = _output(out, codes.size, np.float32, "out")
    if codes.size:
        _dequantize_kernel(codes, absmax, book, block, out)
    return out
