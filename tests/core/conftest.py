"""Fixtures for the core tests."""

from __future__ import annotations

import numpy as np
import pytest

from extensor.core import random as xrandom


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed NumPy generator for test inputs."""
    return np.random.default_rng(4321)


@pytest.fixture
def restore_default_generator():
    """Put the library's default generator back as it was after the test (tests reseed it)."""
    state = xrandom.get_rng_state()
    yield
    xrandom.set_rng_state(state)
