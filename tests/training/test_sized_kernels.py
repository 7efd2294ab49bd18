"""Every parallel kernel exists twice, parallel and serial, picked by one size cut-off; both agree."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from extensor.training import flat
from extensor.training.flat import PARALLEL_MIN_ELEMENTS, SizedKernel, parallel_chunks
from extensor.training.optimizers import lars
from extensor.training.optimizers.adam import adam_kernel
from extensor.training.optimizers.rmsprop import rmsprop_kernel
from extensor.training.optimizers.sgd import momentum_sgd_kernel

SIZE = PARALLEL_MIN_ELEMENTS + 4099  # above the cut-off, not a multiple of the chunk count


def arrays(count: int, dtype: type, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(SIZE).astype(dtype) for _ in range(count)]


def test_one_cut_off_picks_the_twin() -> None:
    assert adam_kernel.for_size(PARALLEL_MIN_ELEMENTS - 1) is adam_kernel.serial
    assert adam_kernel.for_size(PARALLEL_MIN_ELEMENTS) is adam_kernel.parallel
    assert parallel_chunks(PARALLEL_MIN_ELEMENTS - 1) == 1
    assert parallel_chunks(PARALLEL_MIN_ELEMENTS) > 1
    from extensor.training import clip

    assert clip._PARALLEL_MIN == PARALLEL_MIN_ELEMENTS
    assert isinstance(flat._segment_sum_squares_kernel, SizedKernel)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_twins_agree_bit_for_bit(dtype: type, amsgrad: bool) -> None:
    t = np.dtype(dtype).type
    scalars = (t(1), t(0.999), t(0.01), t(0.1), t(0.9), t(0.999), t(0.001), t(-1e-3), t(0.3), t(1e-8))
    results = []
    for kernel in (adam_kernel.parallel, adam_kernel.serial):
        param, grad, m, v, vmax = arrays(5, dtype, 0)
        v, vmax = np.abs(v), np.abs(vmax)
        kernel(param, grad, m, v, vmax if amsgrad else np.empty(0, dtype), *scalars)
        results.append((param, m, v, vmax))
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_and_rmsprop_twins_agree_bit_for_bit(dtype: type) -> None:
    t = np.dtype(dtype).type
    sgd, rms = [], []
    for kernel, chunks in (
        (momentum_sgd_kernel.parallel, parallel_chunks(SIZE)),
        (momentum_sgd_kernel.serial, 1),
    ):
        param, grad, buf = arrays(3, dtype, 1)
        kernel(param, grad, buf, chunks, t(-1), t(-0.1), t(0.01), t(0.9), t(0.9), True, False)
        sgd.append((param, buf))
    for kernel in (rmsprop_kernel.parallel, rmsprop_kernel.serial):
        param, grad, square, average, buf = arrays(5, dtype, 2)
        square = np.abs(square) + 4
        kernel(
            param,
            grad,
            square,
            average,
            buf,
            t(1),
            t(-0.01),
            t(0.1),
            t(0.99),
            t(0.01),
            t(0.99),
            t(1e-8),
            t(0.9),
        )
        rms.append((param, square, average, buf))
    for pair in (sgd, rms):
        for a, b in zip(*pair, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lars_twins_agree_bit_for_bit(dtype: type) -> None:
    """Resident tensors (summed inside the kernel) and given sums, one chunk or many."""
    t = np.dtype(dtype).type
    offsets = np.array([0, 17, 70_000, 70_001, 600_000, 600_000, SIZE], dtype=np.int64)
    resident = np.array([True, True, True, False, True, False])
    given = np.zeros((6, 2))
    for k in np.flatnonzero(~resident):  # the sums of non-resident tensors come from outside the kernel
        given[k] = (1e4 * (k + 1), 3e3 * (k + 1))
    results = []
    for kernel, chunks in ((lars.lars_kernel.parallel, parallel_chunks(SIZE)), (lars.lars_kernel.serial, 1)):
        param, grad, buf = arrays(3, dtype, 5)
        sums = given.copy()
        resident_bounds = flat.class_bounds(offsets, resident, True, chunks)
        large_bounds = flat.class_bounds(offsets, ~resident, False, chunks)
        trust = (0.02, 1e-3, 1e-8, 0.1, False)
        sgd = (t(1), t(-0.1), t(1e-3), t(0.9), t(1), False, False)
        kernel(param, grad, buf, offsets, resident, sums, resident_bounds, large_bounds, True, trust, sgd)
        results.append((param, buf, sums))
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)
    param, _, sums = results[0]
    original = arrays(1, dtype, 5)[0]
    for k in np.flatnonzero(resident):
        a, b = offsets[k], offsets[k + 1]
        np.testing.assert_allclose(sums[k, 0], np.sum(original[a:b].astype(np.float64) ** 2), rtol=1e-12)


def test_lars_chunks_balance_each_class_and_never_cut_a_resident_tensor() -> None:
    rng = np.random.default_rng(6)
    for _ in range(300):
        sizes = rng.integers(0, 5000, rng.integers(1, 30))
        offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
        resident = rng.random(sizes.size) < 0.6
        chunks = int(rng.integers(1, 12))
        for member, whole in ((resident, True), (~resident, False)):
            bounds = flat.class_bounds(offsets, member, whole, chunks)
            total = int(sizes[member].sum())
            if total == 0:
                np.testing.assert_array_equal(bounds, [0])
                continue
            assert bounds.size == chunks + 1 and bounds[0] == 0 and bounds[-1] == offsets[-1]
            assert (np.diff(bounds) >= 0).all()
            counted = [  # member elements per chunk
                sum(max(0, min(hi, offsets[k + 1]) - max(lo, offsets[k])) for k in np.flatnonzero(member))
                for lo, hi in itertools.pairwise(bounds)
            ]
            assert sum(counted) == total
            if whole:
                for k in np.flatnonzero(member):
                    assert not ((bounds > offsets[k]) & (bounds < offsets[k + 1])).any(), (offsets, bounds)
                assert max(counted) <= total / chunks + sizes.max()  # a cut moves by at most a tensor
            else:
                assert max(counted) - min(counted) <= 1  # cut anywhere: equal shares


def test_serial_twin_divides_by_zero_like_the_parallel_one() -> None:
    # NumPy's error model: 0/0 is NaN (torch's answer), not a ZeroDivisionError
    f = np.float32
    for kernel in (adam_kernel.parallel, adam_kernel.serial):
        param, grad, m, v = (np.zeros(8, dtype=f) for _ in range(4))
        kernel(param, grad, m, v, np.empty(0, f), f(1), f(1), f(0), f(0.1), f(0.9), f(0.999), f(0.001),
               f(-1e-3), f(1), f(0))  # fmt: skip
        assert np.isnan(param).all()


def test_segment_sums_of_squares_twins_agree() -> None:
    values = arrays(1, np.float32, 3)[0]
    offsets = np.array([0, 5, 300_000, SIZE - 2, SIZE], dtype=np.int64)
    parallel, serial = np.empty((4, 2)), np.empty((4, 2))
    second = values[::-1].copy()
    everything = np.ones(4, dtype=np.bool_)
    one = np.float32(1)
    chunks = flat.class_bounds(offsets, everything, False, parallel_chunks(SIZE))
    flat._segment_sum_squares_kernel.parallel(values, second, offsets, everything, parallel, chunks, one)
    one_chunk = np.array([0, SIZE], dtype=np.int64)
    flat._segment_sum_squares_kernel.serial(values, second, offsets, everything, serial, one_chunk, one)
    np.testing.assert_allclose(parallel, serial, rtol=1e-12)
    reference = [np.sum(values[a:b].astype(np.float64) ** 2) for a, b in itertools.pairwise(offsets)]
    np.testing.assert_allclose(serial[:, 0], reference, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [3000, SIZE])
def test_pair_of_segment_sums_in_one_pass(dtype: type, size: int) -> None:
    rng = np.random.default_rng(4)
    first, second = (rng.standard_normal(size).astype(dtype) for _ in range(2))
    cuts = np.sort(rng.integers(0, size, 6))
    offsets = np.concatenate(([0], cuts, [size])).astype(np.int64)
    got = flat.segment_sum_squares_pair(first, second, offsets)
    assert got.shape == (7, 2)
    np.testing.assert_allclose(got[:, 0], flat.segment_sum_squares(first, offsets), rtol=1e-12)
    np.testing.assert_allclose(got[:, 1], flat.segment_sum_squares(second, offsets), rtol=1e-12)
    for column, values in enumerate((first, second)):
        reference = [np.sum(values[a:b].astype(np.float64) ** 2) for a, b in itertools.pairwise(offsets)]
        np.testing.assert_allclose(got[:, column], reference, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="must match"):
        flat.segment_sum_squares_pair(first, second[:-1], offsets)
    strided_out = np.zeros((7, 2))[:, 0]
    flat.segment_sum_squares(first, offsets, out=strided_out)
    np.testing.assert_allclose(strided_out, got[:, 0], rtol=1e-12)


@pytest.mark.parametrize("size", [3000, SIZE])
def test_pair_sums_of_member_segments_only(size: int) -> None:
    rng = np.random.default_rng(8)
    first, second = (rng.standard_normal(size) for _ in range(2))
    offsets = np.concatenate(([0], np.sort(rng.integers(0, size, 9)), [size])).astype(np.int64)
    member = np.array([True, False, True, True, False, False, True, False, True, True])
    got = flat.segment_sum_squares_pair(first, second, offsets, member=member)
    everything = flat.segment_sum_squares_pair(first, second, offsets)
    np.testing.assert_allclose(got[member], everything[member], rtol=1e-12)
    np.testing.assert_array_equal(got[~member], 0.0)
    with pytest.raises(ValueError, match="member must be a boolean array of shape \\(10,\\)"):
        flat.segment_sum_squares_pair(first, second, offsets, member=member[:-1])
