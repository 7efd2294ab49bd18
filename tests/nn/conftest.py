"""Helpers for the nn tests: tolerances, weight copying into torch, and a layer parity check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from extensor import ExTensor, Tape
from extensor import nn as xnn

#: Relative tolerance per dtype (the project's contract): float64 1e-10, float32 1e-5.
RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}

TORCH_DTYPE = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}

DTYPES = [np.float64, np.float32]


def numpy_of(value: Any) -> np.ndarray:
    """A NumPy array from an ExTensor, a torch tensor or anything array-like."""
    if isinstance(value, torch.Tensor):
        return value.detach().numpy()
    if isinstance(value, ExTensor):
        return value.data
    return np.asarray(value)


def assert_close(actual: Any, expected: Any, dtype: Any, what: str = "") -> None:
    """|actual − expected| <= rtol·|expected| + rtol·max|expected| elementwise, rtol from `dtype`.

    The second term makes entries that cancel to nearly zero (a gradient summed over a batch)
    compare at the tensor's own scale instead of demanding relative accuracy of round-off.
    """
    rtol = RTOL[np.dtype(dtype)]
    a, e = numpy_of(actual), numpy_of(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != torch's {e.shape}"
    finite = e[np.isfinite(e)]
    scale = float(np.max(np.abs(finite))) if finite.size else 0.0
    np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * scale, equal_nan=True, err_msg=what)


def copy_into_torch(ours: xnn.Module, theirs: torch.nn.Module) -> None:
    """Give the torch module our weights and buffers (strict: the names must agree)."""
    state = {name: torch.from_numpy(np.array(value)) for name, value in ours.state_dict().items()}
    theirs.load_state_dict(state, strict=True)


def layer_parity(
    ours: xnn.Module,
    theirs: torch.nn.Module,
    x: np.ndarray,
    dtype: Any,
    x_requires_grad: bool = True,
    seed: int = 0,
) -> tuple[ExTensor, torch.Tensor]:
    """Forward and backward (random upstream gradient) through both modules on the same input.

    Compares the outputs, the input gradients, every parameter gradient (by name) and every
    buffer after the call. Returns both outputs.
    """
    dtype = np.dtype(dtype)
    theirs = theirs.to(TORCH_DTYPE[dtype])
    copy_into_torch(ours, theirs)
    xe = ExTensor(x.astype(dtype), requires_grad=x_requires_grad)
    xt = torch.tensor(x.astype(dtype), requires_grad=x_requires_grad)
    tape = Tape()
    with tape:
        out = ours(xe)
    upstream = np.random.default_rng(seed).standard_normal(out.shape).astype(dtype)
    tape.backward(out, upstream)
    out_t = theirs(xt)
    out_t.backward(torch.from_numpy(upstream))
    assert out.dtype == dtype
    assert_close(out, out_t, dtype, "forward output")
    if x_requires_grad:
        assert_close(xe.grad, xt.grad, dtype, "input gradient")
    else:
        assert xe.grad is None
    torch_params = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        assert_close(param.grad, torch_params[name].grad, dtype, f"gradient of {name}")
    torch_buffers = dict(theirs.named_buffers())
    for name, buffer in ours.named_buffers():
        assert_close(
            buffer.data, torch_buffers[name], dtype if buffer.dtype.kind == "f" else np.float64, name
        )
    return out, out_t


def function_parity(
    ours: Callable[..., ExTensor],
    theirs: Callable[..., torch.Tensor],
    arrays: list[np.ndarray],
    dtype: Any,
    requires_grad: list[bool],
    seed: int = 0,
) -> None:
    """Compare a functional op and its torch counterpart: output and the gradient of every input."""
    dtype = np.dtype(dtype)
    ex_inputs = [
        ExTensor(a.astype(dtype) if a.dtype.kind == "f" else a, requires_grad=g)
        for a, g in zip(arrays, requires_grad, strict=True)
    ]
    torch_inputs = [
        torch.tensor(a.astype(dtype) if a.dtype.kind == "f" else a, requires_grad=g)
        for a, g in zip(arrays, requires_grad, strict=True)
    ]
    tape = Tape()
    with tape:
        out = ours(*ex_inputs)
    upstream = np.random.default_rng(seed).standard_normal(out.shape).astype(dtype)
    tape.backward(out, upstream)
    out_t = theirs(*torch_inputs)
    out_t.backward(torch.from_numpy(upstream))
    assert_close(out, out_t, dtype, "output")
    for k, (e, t) in enumerate(zip(ex_inputs, torch_inputs, strict=True)):
        if t.requires_grad:
            assert_close(e.grad, t.grad, dtype, f"gradient of input {k}")


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator, so every test draws the same inputs on every run."""
    return np.random.default_rng(20240601)


@pytest.fixture
def close() -> Callable[..., None]:
    """`assert_close(actual, expected, dtype, what)` at the project's tolerance for `dtype`."""
    return assert_close


@pytest.fixture
def layer_check() -> Callable[..., tuple[ExTensor, torch.Tensor]]:
    """`layer_parity(ours, theirs, x, dtype, x_requires_grad=True, seed=0)`."""
    return layer_parity


@pytest.fixture
def fn_check() -> Callable[..., None]:
    """`function_parity(ours, theirs, arrays, dtype, requires_grad, seed=0)`."""
    return function_parity


@pytest.fixture
def load_into_torch() -> Callable[[xnn.Module, torch.nn.Module], None]:
    """`copy_into_torch(ours, theirs)`: our state dict into the torch module, strictly."""
    return copy_into_torch
