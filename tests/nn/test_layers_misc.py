"""The thin layers (activations, Flatten, Identity) against torch, and the functional namespace."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extensor import nn as xnn
from extensor.nn import functional as F

PAIRS = [
    (xnn.ReLU(), torch.nn.ReLU()),
    (xnn.Tanh(), torch.nn.Tanh()),
    (xnn.Sigmoid(), torch.nn.Sigmoid()),
    (xnn.GELU(), torch.nn.GELU()),
    (xnn.GELU("tanh"), torch.nn.GELU("tanh")),
    (xnn.Softmax(dim=1), torch.nn.Softmax(dim=1)),
    (xnn.LogSoftmax(dim=-1), torch.nn.LogSoftmax(dim=-1)),
    (xnn.Flatten(), torch.nn.Flatten()),
    (xnn.Flatten(0, 1), torch.nn.Flatten(0, 1)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("ours", "theirs"), PAIRS, ids=lambda m: repr(m))
def test_layer_matches_torch(layer_check, rng, dtype, ours, theirs):
    layer_check(ours, theirs, 2 * rng.standard_normal((3, 4, 5)), dtype)
    assert repr(ours) == repr(theirs)


def test_identity_returns_its_input():
    x = object()
    assert xnn.Identity(3, key="ignored")(x) is x
    assert repr(xnn.Identity()) == repr(torch.nn.Identity())


def test_functional_namespace_exports_torchs_names():
    for name in F.__all__:
        assert callable(getattr(F, name))
        assert hasattr(torch.nn.functional, name), name


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="approximate"):
        xnn.GELU("erf")
    with pytest.raises(TypeError, match="dim must be an int"):
        xnn.Softmax(dim=None)
    with pytest.raises(TypeError, match="start_dim"):
        xnn.Flatten(1.5)
