"""Compact optimizer state: the flat state buffers of one pack stored as bfloat16 or 8-bit codes.

`Optimizer(..., state_dtype="bfloat16" | "int8")` keeps each state buffer in a `CompactStore`
instead of a float32 array; the kernels decode a block of it into float32 scratch (in L1),
compute the update in float32 exactly as the float32 kernel does, and encode the new state back
(`load_block` / `store_block`). The parameter update uses the new state before it is rounded,
as bitsandbytes' 8-bit optimizers do.

* ``"bfloat16"``: 2 bytes per value, the upper half of the float32 (round to nearest even).
* ``"int8"``: 1 byte per value plus a float32 absolute maximum per block of `BLOCK_SIZE` values
  of one tensor, the paper's dynamic maps (signed for first moments, unsigned for second
  moments; Dettmers et al. 2022). Tensors smaller than `MIN_QUANTIZED_SIZE` elements keep
  float32 state, as the paper does.

The layout is a table of *blocks*: pieces of at most `BLOCK_SIZE` elements that never cross a
tensor, ``lo[j]:hi[j]`` of the flat buffer, with ``slot[j]`` the block's absmax index (>= 0) or,
for a float32 piece of a small tensor, ``-1 - start`` of its values in the `small` array. Tensor
k's blocks are ``first[k]:first[k + 1]``, so a run of tensors is a range of blocks.

`state_dict()` exposes the stored form per parameter: ``name`` as the parameter-shaped uint16
bits (bfloat16) or uint8 codes (int8, with ``name + "_absmax"``: the float32 block maxima), or
float32 for a small tensor's int8 state.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from extensor.core.tensor import Array
from extensor.training.optimizers.compact import (
    BLOCK_SIZE,
    MIN_QUANTIZED_SIZE,
    SIGNED,
    UNSIGNED,
    Codebook,
    bf16_expand,
    bf16_round,
    dequantize_block,
    dequantize_blockwise,
    from_bfloat16,
    quantize_block,
    quantize_blockwise,
    to_bfloat16,
)

__all__ = [
    "STATE_DTYPES", "CompactRun", "CompactStore", "check_state_dtype", "chunk_blocks", "chunk_count",
    "load_block", "store_block",
]  # fmt: skip

#: The compact state dtypes an optimizer accepts (None: the parameters' dtype).
STATE_DTYPES = ("bfloat16", "int8")
#: Suffix of the key holding an int8 state's block maxima in `state_dict()`.
ABSMAX = "_absmax"
_EMPTY: dict[np.dtype[Any], Array] = {
    np.dtype(np.uint16): np.empty(0, np.uint16),
    np.dtype(np.uint8): np.empty(0, np.uint8),
    np.dtype(np.float32): np.empty(0, np.float32),
}


def check_state_dtype(value: Any) -> str | None:
    """`value` if it is None or one of `STATE_DTYPES`; ValueError naming it otherwise."""
    if value is None or (isinstance(value, str) and value in STATE_DTYPES):
        return value
    raise ValueError(f"Invalid state_dtype: {value!r} (expected None, 'bfloat16' or 'int8')")


@njit(cache=True, inline="always")
def load_block(
    state: tuple[Array, Array, Array, Array],
    bf16: bool,
    lo: int,
    hi: int,
    slot: int,
    book: Codebook,
    out: Array,
) -> None:
    """Decode block ``lo:hi`` of a compact state ``(bits, codes, absmax, small)`` into ``out[:hi - lo]``."""
    bits, codes, absmax, small = state
    n = hi - lo
    if bf16:
        piece = bits[lo:hi]
        for i in range(n):
            out[i] = bf16_expand(piece[i])
    elif slot >= 0:
        dequantize_block(codes[lo:hi], absmax[slot], book, out[:n])
    else:
        start = -1 - slot
        out[:n] = small[start : start + n]


@njit(cache=True, inline="always")
def store_block(
    state: tuple[Array, Array, Array, Array],
    bf16: bool,
    lo: int,
    hi: int,
    slot: int,
    book: Codebook,
    values: Array,
) -> None:
    """Encode ``values[:hi - lo]`` into block ``lo:hi`` of a compact state (`load_block`'s inverse)."""
    bits, codes, absmax, small = state
    n = hi - lo
    if bf16:
        piece = bits[lo:hi]
        for i in range(n):
            piece[i] = bf16_round(values[i])
    elif slot >= 0:
        absmax[slot] = quantize_block(values[:n], codes[lo:hi], book)
    else:
        start = -1 - slot
        small[start : start + n] = values[:n]


#: Chunks of blocks a compact kernel's parallel loop hands out (each allocates its scratch once).
COMPACT_CHUNKS = 64


@njit(cache=True, inline="always")
def chunk_count(blocks: tuple[Array, Array, Array, int, int, int]) -> int:
    """How many chunks a compact kernel cuts ``blocks`` (`CompactRun.blocks`) into."""
    return min(blocks[4] - blocks[3], COMPACT_CHUNKS)


@njit(cache=True, inline="always")
def chunk_blocks(
    blocks: tuple[Array, Array, Array, int, int, int], chunk: int, n_chunks: int
) -> tuple[int, int]:
    """The range of block indices of chunk `chunk` of `n_chunks` (near-equal shares)."""
    first, count = blocks[3], blocks[4] - blocks[3]
    return first + count * chunk // n_chunks, first + count * (chunk + 1) // n_chunks


class CompactStore:
    """The compact state buffers of one pack (flat buffer): the block table and, per name, storage.

    Args:
        offsets: the pack's tensor boundaries (int64, from 0 to the element count).
        state_dtype: ``"bfloat16"`` or ``"int8"``.
    """

    def __init__(self, offsets: Array, state_dtype: str) -> None:
        self.state_dtype = state_dtype
        self.bf16 = state_dtype == "bfloat16"
        self.offsets = offsets
        sizes = np.diff(offsets)
        #: whether tensor k is block-quantised (int8 and at least MIN_QUANTIZED_SIZE elements)
        self.quantized = np.zeros(sizes.size, np.bool_) if self.bf16 else sizes >= MIN_QUANTIZED_SIZE
        lo: list[int] = []
        slot: list[int] = []
        first = [0]
        blocks = small = 0
        for k, size in enumerate(sizes.tolist()):
            start = int(offsets[k])
            for piece in range(0, size, BLOCK_SIZE):
                lo.append(start + piece)
                if self.quantized[k] or self.bf16:
                    slot.append(blocks)
                    blocks += 1
                else:
                    slot.append(-1 - small)
                    small += min(BLOCK_SIZE, size - piece)
            first.append(len(lo))
        self.lo = np.array(lo, dtype=np.int64)
        self.hi = np.minimum(self.lo + BLOCK_SIZE, np.repeat(offsets[1:], np.diff(first)))
        self.slot = np.array(slot, dtype=np.int64)
        self.first = np.array(first, dtype=np.int64)
        #: the tensor each block belongs to
        self.tensor = np.repeat(np.arange(sizes.size, dtype=np.int64), np.diff(first))
        #: small tensors' float32 state: where tensor k's values start in `small` (or -1)
        self.small_start = np.full(sizes.size, -1, dtype=np.int64)
        for tensor in np.flatnonzero(~self.quantized) if not self.bf16 else []:
            self.small_start[tensor] = -1 - int(self.slot[self.first[tensor]]) if sizes[tensor] else 0
        self._blocks = 0 if self.bf16 else blocks
        self._small = small
        self._numel = int(offsets[-1])
        self.states: dict[str, tuple[Array, Array, Array, Array]] = {}
        self.signed: dict[str, bool] = {}

    def state(self, name: str, signed: bool) -> tuple[Array, Array, Array, Array]:
        """The storage of state `name` as ``(bits, codes, absmax, small)`` (unused ones empty),
        allocated as zeros the first time; `signed` picks the map (first moments) or not."""
        found = self.states.get(name)
        if found is None:
            arrays: tuple[Array, Array, Array, Array]
            if self.bf16:
                arrays = (np.zeros(self._numel, np.uint16), _EMPTY[np.dtype(np.uint8)],
                         _EMPTY[np.dtype(np.float32)], _EMPTY[np.dtype(np.float32)])  # fmt: skip
            else:
                book = SIGNED if signed else UNSIGNED
                arrays = (_EMPTY[np.dtype(np.uint16)], np.full(self._numel, book.zero, np.uint8),
                         np.zeros(self._blocks, np.float32), np.zeros(self._small, np.float32))  # fmt: skip
            self.states[name] = found = arrays
            self.signed[name] = signed
        return found

    def book(self, name: str) -> Codebook:
        """The dynamic map of state `name`."""
        return SIGNED if self.signed.get(name, True) else UNSIGNED

    def nbytes(self) -> int:
        """Bytes of every allocated state."""
        return sum(array.nbytes for arrays in self.states.values() for array in arrays)

    # ----------------------------------------------------------------- per-tensor forms
    def _absmax_range(self, k: int) -> slice:
        blocks = self.slot[self.first[k] : self.first[k + 1]]
        return slice(int(blocks[0]), int(blocks[-1]) + 1) if blocks.size else slice(0, 0)

    def export(self, name: str, k: int, shape: tuple[int, ...]) -> dict[str, Array]:
        """Tensor k's stored form of state `name` (copies), as `state_dict()` shows it."""
        bits, codes, absmax, small = self.states[name]
        segment = slice(int(self.offsets[k]), int(self.offsets[k + 1]))
        if self.bf16:
            return {name: bits[segment].reshape(shape).copy()}
        if self.quantized[k]:
            return {
                name: codes[segment].reshape(shape).copy(),
                name + ABSMAX: absmax[self._absmax_range(k)].copy(),
            }
        start = int(self.small_start[k])
        return {name: small[start : start + segment.stop - segment.start].reshape(shape).copy()}

    def expected(
        self, name: str, k: int, shape: tuple[int, ...]
    ) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
        """The keys, shapes and dtypes `export` gives for tensor k (what `load` accepts)."""
        if self.bf16:
            return {name: (shape, np.dtype(np.uint16))}
        if self.quantized[k]:
            count = int(self.first[k + 1] - self.first[k])
            return {name: (shape, np.dtype(np.uint8)), name + ABSMAX: ((count,), np.dtype(np.float32))}
        return {name: (shape, np.dtype(np.float32))}

    def load(self, name: str, k: int, arrays: dict[str, Array], signed: bool) -> None:
        """Write tensor k's stored form of state `name` (checked against `expected` beforehand)."""
        bits, codes, absmax, small = self.state(name, signed)
        segment = slice(int(self.offsets[k]), int(self.offsets[k + 1]))
        if self.bf16:
            bits[segment] = arrays[name].reshape(-1)
        elif self.quantized[k]:
            codes[segment] = arrays[name].reshape(-1)
            absmax[self._absmax_range(k)] = arrays[name + ABSMAX]
        else:
            start = int(self.small_start[k])
            small[start : start + segment.stop - segment.start] = arrays[name].reshape(-1)

    def clear(self, name: str, k: int) -> None:
        """Reset tensor k's state `name` to zeros."""
        if name not in self.states:
            return
        zeros = {key: np.zeros(shape, dtype) for key, (shape, dtype) in self.expected(name, k, (-1,)).items()}
        if not self.bf16 and self.quantized[k]:
            zeros[name][:] = self.book(name).zero
        self.load(name, k, zeros, self.signed[name])


def decode_form(arrays: dict[str, Array], name: str, signed: bool, shape: tuple[int, ...]) -> Array:
    """A stored form (`CompactStore.export`) of state `name` as float32 values of `shape`."""
    value = np.asarray(arrays[name])
    if value.dtype == np.uint16:
        return from_bfloat16(value.reshape(-1)).reshape(shape)
    if value.dtype == np.uint8:
        return dequantize_blockwise(value.reshape(-1), np.asarray(arrays[name + ABSMAX]), signed).reshape(
            shape
        )
    return value.astype(np.float32).reshape(shape)


def encode_form(
    values: Array, name: str, state_dtype: str, quantized: bool, signed: bool
) -> dict[str, Array]:
    """float32 `values` of state `name` in the stored form of `state_dtype` (see `CompactStore.export`)."""
    flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    if state_dtype == "bfloat16":
        return {name: to_bfloat16(flat).reshape(values.shape)}
    if quantized:
        codes, absmax = quantize_blockwise(flat, signed)
        return {name: codes.reshape(values.shape), name + ABSMAX: absmax}
    return {name: flat.reshape(values.shape).copy()}


class CompactRun:
    """What a kernel needs to update a run of tensors ``[a, b)`` of a pack with compact state:
    the `store` and ``blocks = (lo, hi, slot, first block, last block, base)``.

    Block bounds index the pack's flat buffer (and the state storage); the run's `param` and
    `grad` views start at element `base` (the run's first tensor), so a kernel reads
    ``param[lo - base : hi - base]``.
    """

    __slots__ = ("blocks", "first_tensor", "store")

    def __init__(self, store: CompactStore, a: int, b: int) -> None:
        self.store = store
        #: the pack index of the run's first tensor
        self.first_tensor = a
        first, last = int(store.first[a]), int(store.first[b])
        self.blocks = (store.lo, store.hi, store.slot, first, last, int(store.offsets[a]))
