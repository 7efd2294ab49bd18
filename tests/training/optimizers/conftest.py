"""Shared harness of the optimizer tests: the same parameters in extensor and torch, same gradients."""

from __future__ import annotations

import os

# Sleeping OpenMP workers: spinning ones make every small parallel kernel launch cost milliseconds
# on this shared machine (see extensor/training/flat.py). Effective only if set before libgomp loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest
import torch

from extensor.core.tensor import ExTensor

#: Relative tolerance per dtype: float64 to 1e-10, float32 to 1e-5.
RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}

#: Shapes exercising matrices, vectors, a 0-d scalar, a 3-D tensor and a one-element vector.
SHAPES: tuple[tuple[int, ...], ...] = ((4, 3), (7,), (), (2, 3, 2), (1,))


def assert_close(ours: Any, theirs: Any, what: str = "") -> None:
    """`ours` equals `theirs` to the dtype's relative tolerance, elementwise or relative to the array's scale.

    An element near zero after cancellation cannot be compared relatively to itself, so the
    absolute tolerance is the relative one times the largest magnitude of the reference array.
    """
    theirs_array = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    ours_array = np.asarray(ours)
    assert ours_array.shape == theirs_array.shape, f"{what}: shape {ours_array.shape} != {theirs_array.shape}"
    assert ours_array.dtype == theirs_array.dtype, f"{what}: dtype {ours_array.dtype} != {theirs_array.dtype}"
    rtol = RTOL.get(ours_array.dtype, 1e-10)
    scale = float(np.max(np.abs(theirs_array), initial=0.0))
    np.testing.assert_allclose(ours_array, theirs_array, rtol=rtol, atol=rtol * scale, err_msg=what)


class Twins:
    """The same initial parameters as ExTensors and as torch tensors.

    `feed(step)` gives both the same random gradient for every parameter, or None where
    `absent(step, index)` says so.
    """

    def __init__(
        self,
        shapes: Sequence[tuple[int, ...]] = SHAPES,
        dtype: Any = np.float64,
        seed: int = 0,
        absent: Callable[[int, int], bool] | None = None,
        dtypes: Sequence[Any] | None = None,
    ) -> None:
        rng = np.random.default_rng(seed)
        dtypes = list(dtypes) if dtypes is not None else [dtype] * len(shapes)
        self.dtypes = [np.dtype(d) for d in dtypes]
        self.initial = [
            rng.standard_normal(shape).astype(d) for shape, d in zip(shapes, self.dtypes, strict=True)
        ]
        self.ours = [ExTensor(x.copy(), requires_grad=True) for x in self.initial]
        self.theirs = [torch.tensor(x.copy(), requires_grad=True) for x in self.initial]
        self.seed = seed
        self.absent = absent or (lambda step, index: False)

    def gradients(self, step: int) -> list[np.ndarray | None]:
        """The gradients of `step`: a pure function of (seed, step)."""
        rng = np.random.default_rng((self.seed, step))
        result: list[np.ndarray | None] = []
        for index, x in enumerate(self.initial):
            g = rng.standard_normal(x.shape).astype(x.dtype)
            result.append(None if self.absent(step, index) else g)
        return result

    def feed(self, step: int, ours: Sequence[ExTensor] | None = None) -> None:
        """Assign the gradients of `step` to both sides (`ours` overrides our tensors)."""
        for mine, theirs, g in zip(ours or self.ours, self.theirs, self.gradients(step), strict=True):
            mine.grad = g
            theirs.grad = None if g is None else torch.from_numpy(g.copy())

    def assert_params_close(self, what: str = "") -> None:
        for index, (mine, theirs) in enumerate(zip(self.ours, self.theirs, strict=True)):
            assert_close(mine.data, theirs, f"{what} parameter {index}")


def groups_of(params: Sequence[Any], layout: Sequence[tuple[dict[str, Any], Sequence[int]]] | None) -> Any:
    """Parameter-group dicts (options, parameter indices) over `params`, or the plain list."""
    if layout is None:
        return list(params)
    return [{"params": [params[i] for i in indices], **options} for options, indices in layout]


def assert_state_matches_torch(ours: Any, theirs: torch.optim.Optimizer) -> None:
    """Our state_dict has torch's state keys per parameter, with close values, and torch's hyperparameters."""
    mine = ours.state_dict()
    reference = theirs.state_dict()
    assert sorted(mine["state"]) == sorted(reference["state"]), "parameters with state differ"
    for index, state in reference["state"].items():
        assert list(mine["state"][index]) == list(state), f"state keys of parameter {index}"
        for key, value in state.items():
            if key == "step":
                assert mine["state"][index][key].dtype == np.float32
                assert float(mine["state"][index][key]) == float(value)
            else:
                assert_close(mine["state"][index][key], value, f"state {key} of parameter {index}")
    for my_group, group in zip(mine["param_groups"], reference["param_groups"], strict=True):
        assert my_group["params"] == group["params"]
        for key, value in my_group.items():
            if key in group and key != "params":
                expected = tuple(group[key]) if isinstance(group[key], (tuple, list)) else group[key]
                got = tuple(value) if isinstance(value, (tuple, list)) else value
                assert got == expected, f"group option {key}"


def sometimes_absent(late: int = 10) -> Callable[[int, int], bool]:
    """The parity tests' pattern of missing gradients, for `Twins(absent=...)`: parameter 4 never has a
    gradient (so it is never stepped), parameter 1 only from step `late`, and the others are missing
    whenever ``(3 · step + index) % 7 == 0``."""

    def absent(step: int, index: int) -> bool:
        if index == 4:
            return True
        if index == 1 and step < late:
            return True
        return (3 * step + index) % 7 == 0

    return absent


class Kit:
    """What the optimizer tests share, via the `kit` fixture (importlib mode has no sibling imports)."""

    SHAPES = SHAPES
    RTOL = RTOL
    Twins = Twins
    assert_close = staticmethod(assert_close)
    groups_of = staticmethod(groups_of)
    assert_state_matches_torch = staticmethod(assert_state_matches_torch)
    sometimes_absent = staticmethod(sometimes_absent)


@pytest.fixture()
def jax_x64() -> Iterator[None]:
    """JAX in float64 for the optax references (float32 arrays stay float32 under it), restored after
    the test; a module uses it with ``pytestmark = pytest.mark.usefixtures("jax_x64")``."""
    import jax

    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


@pytest.fixture(scope="session")
def kit() -> type[Kit]:
    return Kit
