"""Reusable scratch arrays for the large temporaries of convolution (im2col columns and the like).

Why: a training step allocates the same multi-megabyte arrays every iteration. Freshly mapped
memory costs a page fault per 4 KiB page, and glibc returns freed heap memory to the system once
more than a few megabytes are free at its top, so without reuse every step pays thousands of
faults (measured: ~2,700 per LeNet-5 step, a third of its time).

How: `take(shape, dtype)` returns an array from the pool that nothing else references any more
(its reference count shows only the pool holds it), or allocates and remembers a new one. An
array stays "in use" as long as anything holds it or a view of it — a recorded backward closure,
a returned result — so reuse never aliases live data. The pool keeps a few arrays per
(shape, dtype) for the most recently used shapes only, 256 MiB in all.

`empty` is the entry point for operation results and gradients of any size: it pools only arrays
of at least 128 KiB (glibc's default mmap threshold, below which its heap recycles memory without
faults) and leaves small ones to `np.empty`, which is several times cheaper than a pool look-up.
"""

from __future__ import annotations

import math
import sys
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]

_PER_KEY = 4
_MAX_KEYS = 64  # a LeNet-5 step uses ~20 shapes; an LRU that is too small thrashes
_MIN_POOLED_BYTES = 128 * 2**10
_MAX_BYTES = 256 * 2**20  # beyond this, new arrays are handed out but not remembered
_lock = threading.Lock()
_pool: OrderedDict[tuple[tuple[int, ...], np.dtype[Any]], list[Array]] = OrderedDict()


def _idle_references() -> int:
    """The reference count `take` sees for an array that only the pool holds (measured, since it
    depends on the interpreter: the list, the loop variable, getrefcount's argument on CPython 3.11)."""
    arrays = [np.empty(0)]
    for array in arrays:
        return sys.getrefcount(array)
    raise AssertionError("unreachable")


_IDLE_REFERENCES = _idle_references()


def take(shape: tuple[int, ...], dtype: Any) -> Array:
    """An uninitialised C-contiguous array of `shape` and `dtype`, reused when one is idle."""
    key = (tuple(int(n) for n in shape), np.dtype(dtype))
    with _lock:
        arrays = _pool.get(key)
        if arrays is None:
            arrays = []
            _pool[key] = arrays
            while len(_pool) > _MAX_KEYS:
                _pool.popitem(last=False)
        else:
            _pool.move_to_end(key)
        for array in arrays:
            if sys.getrefcount(array) <= _IDLE_REFERENCES:
                return array
        array = np.empty(key[0], dtype=key[1])
        if len(arrays) < _PER_KEY and pooled_bytes() + array.nbytes <= _MAX_BYTES:
            arrays.append(array)
        return array


def empty(shape: tuple[int, ...], dtype: Any) -> Array:
    """An uninitialised C-contiguous array: `take` when it holds at least 128 KiB, else `np.empty`."""
    resolved = np.dtype(dtype)
    if math.prod(shape) * resolved.itemsize < _MIN_POOLED_BYTES:
        return np.empty(shape, dtype=resolved)
    return take(shape, resolved)


def pooled_bytes() -> int:
    """The memory the pool currently holds (idle or in use)."""
    return sum(array.nbytes for arrays in _pool.values() for array in arrays)


def take_zeros(shape: tuple[int, ...], dtype: Any) -> Array:
    """Like `take`, filled with zeros."""
    array = take(shape, dtype)
    array.fill(0)
    return array


def clear() -> None:
    """Forget every pooled array (their memory is freed once nothing else holds them)."""
    with _lock:
        _pool.clear()
