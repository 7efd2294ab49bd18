"""Fixtures for the autograd tests: a parity check of an extensor function against torch.autograd."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
import torch

from extensor import ExTensor, Tape

#: (rtol, atol) per dtype: float64 to 1e-10 relative, float32 to 1e-5.
TOLERANCE = {np.dtype(np.float64): (1e-10, 1e-12), np.dtype(np.float32): (1e-5, 1e-6)}

TORCH_DTYPE = {
    np.dtype(np.float64): torch.float64,
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float16): torch.float16,
    np.dtype(np.int64): torch.int64,
    np.dtype(np.int32): torch.int32,
    np.dtype(np.uint8): torch.uint8,
    np.dtype(np.bool_): torch.bool,
}


def assert_close(actual: Any, expected: Any, dtype: Any, what: str = "") -> None:
    """Elementwise closeness at the tolerance of `dtype` (NaNs must match NaNs)."""
    rtol, atol = TOLERANCE[np.dtype(dtype)]
    expected_array = expected.detach().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    actual_array = actual.data if isinstance(actual, ExTensor) else np.asarray(actual)
    assert actual_array.shape == expected_array.shape, (
        f"{what}: shape {actual_array.shape} != {expected_array.shape}"
    )
    np.testing.assert_allclose(
        actual_array, expected_array, rtol=rtol, atol=atol, equal_nan=True, err_msg=what
    )


def parity(
    ex_fn: Callable[..., ExTensor],
    torch_fn: Callable[..., torch.Tensor],
    arrays: Sequence[np.ndarray],
    dtype: Any,
    requires_grad: Sequence[bool] | None = None,
    seed: int = 0,
) -> dict[ExTensor, np.ndarray]:
    """Run `ex_fn` on a tape and `torch_fn` with torch.autograd on the same inputs cast to `dtype`.

    Checks the output's dtype, shape and values, then back-propagates the same random seed gradient
    through both and checks every input's gradient. Returns extensor's gradients.
    """
    dtype = np.dtype(dtype)
    mask = [True] * len(arrays) if requires_grad is None else list(requires_grad)
    cast = [np.asarray(a).astype(dtype) for a in arrays]
    ex_inputs = [ExTensor(a.copy(), requires_grad=m) for a, m in zip(cast, mask, strict=True)]
    torch_inputs = [torch.tensor(a, requires_grad=m) for a, m in zip(cast, mask, strict=True)]
    tape = Tape()
    with tape:
        out = ex_fn(*ex_inputs)
    expected = torch_fn(*torch_inputs)
    assert TORCH_DTYPE[out.dtype] == expected.dtype, f"dtype {out.dtype} != torch's {expected.dtype}"
    assert_close(out, expected, dtype, "forward values")
    seed_grad = np.random.default_rng(seed).standard_normal(out.shape).astype(dtype)
    grads = tape.backward(out, seed_grad)
    expected.backward(torch.from_numpy(seed_grad.copy()))
    for i, (ex, th) in enumerate(zip(ex_inputs, torch_inputs, strict=True)):
        if not th.requires_grad:
            assert ex not in grads
            continue
        if th.grad is None:
            assert ex not in grads or not np.any(grads[ex]), f"input {i}: torch has no gradient"
            continue
        assert ex in grads, f"input {i}: extensor returned no gradient"
        assert grads[ex].dtype == ex.dtype
        assert_close(grads[ex], th.grad, dtype, f"gradient of input {i}")
        assert_close(ex.grad, th.grad, dtype, f".grad of input {i}")
    return grads


@pytest.fixture
def check_parity() -> Callable[..., dict[ExTensor, np.ndarray]]:
    """The `parity` check: values and gradients of an extensor function against torch.autograd."""
    return parity


@pytest.fixture
def close() -> Callable[..., None]:
    """`assert_close(actual, expected, dtype, what)` at the dtype's parity tolerance."""
    return assert_close


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed NumPy generator for test inputs."""
    return np.random.default_rng(1234)
