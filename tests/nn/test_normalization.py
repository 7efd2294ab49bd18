"""BatchNorm1d/2d and LayerNorm against torch: training and evaluation, running statistics, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extensor import ExTensor
from extensor import nn as xnn
from extensor.autograd import gradcheck
from extensor.nn import functional as F

DTYPES = [np.float64, np.float32]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("ours_cls", "theirs_cls", "shape"),
    [
        (xnn.BatchNorm1d, torch.nn.BatchNorm1d, (6, 4)),
        (xnn.BatchNorm1d, torch.nn.BatchNorm1d, (5, 4, 3)),
        (xnn.BatchNorm2d, torch.nn.BatchNorm2d, (3, 4, 5, 2)),
    ],
)
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"momentum": None},
        {"momentum": 0.3, "eps": 1e-3},
        {"affine": False},
        {"bias": False},
        {"track_running_stats": False},
    ],
    ids=str,
)
def test_batch_norm_train_then_eval_matches_torch(
    layer_check, rng, dtype, ours_cls, theirs_cls, shape, kwargs
):
    ours = ours_cls(4, dtype=dtype, **kwargs)
    theirs = theirs_cls(4, **kwargs)
    if ours.weight is not None:  # non-trivial affine parameters
        ours.weight.data = rng.uniform(0.5, 1.5, 4).astype(dtype)
    if ours.bias is not None:
        ours.bias.data = rng.standard_normal(4).astype(dtype)
    for step in range(3):  # running statistics after several updates (layer_check compares buffers)
        layer_check(ours, theirs, 2 * rng.standard_normal(shape) + 1, dtype, seed=step)
    ours.eval()
    theirs.eval()
    layer_check(ours, theirs, rng.standard_normal(shape), dtype, seed=9)


def test_running_statistics_use_the_unbiased_variance(rng):
    bn = xnn.BatchNorm1d(2, momentum=1.0, dtype=np.float64)
    x = rng.standard_normal((5, 2))
    bn(x)
    np.testing.assert_allclose(bn.running_mean.data, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.data, x.var(axis=0, ddof=1), rtol=1e-12)
    assert int(bn.num_batches_tracked.data) == 1


def test_gradcheck_batch_norm_and_layer_norm(rng):
    x = ExTensor(rng.standard_normal((4, 3, 2)), requires_grad=True)
    w = ExTensor(rng.uniform(0.5, 1.5, 3), requires_grad=True)
    b = ExTensor(rng.standard_normal(3), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [x, w, b])
    stats = ExTensor(rng.standard_normal(3)), ExTensor(rng.uniform(0.5, 2, 3))
    assert gradcheck(lambda x, w, b: F.batch_norm(x, *stats, w, b, training=False), [x, w, b])
    lw = ExTensor(rng.uniform(0.5, 1.5, (3, 2)), requires_grad=True)
    lb = ExTensor(rng.standard_normal((3, 2)), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.layer_norm(x, (3, 2), w, b), [x, lw, lb])
    assert gradcheck(lambda x: F.layer_norm(x, 2), [x])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("normalized_shape", "kwargs"),
    [
        (5, {}),
        ((3, 5), {}),
        ((3, 5), {"elementwise_affine": False}),
        (5, {"bias": False}),
        (5, {"eps": 1e-2}),
    ],
    ids=str,
)
def test_layer_norm_matches_torch(layer_check, rng, dtype, normalized_shape, kwargs):
    ours = xnn.LayerNorm(normalized_shape, dtype=dtype, **kwargs)
    theirs = torch.nn.LayerNorm(normalized_shape, **kwargs)
    if ours.weight is not None:
        ours.weight.data = rng.uniform(0.5, 1.5, ours.weight.shape).astype(dtype)
    if ours.bias is not None:
        ours.bias.data = rng.standard_normal(ours.bias.shape).astype(dtype)
    layer_check(ours, theirs, 3 * rng.standard_normal((4, 3, 5)) - 2, dtype)


def test_state_dict_names_and_reprs_match_torch():
    for ours, theirs in [
        (xnn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)),
        (
            xnn.BatchNorm1d(3, affine=False, momentum=None),
            torch.nn.BatchNorm1d(3, affine=False, momentum=None),
        ),
        (
            xnn.LayerNorm((2, 3), elementwise_affine=False),
            torch.nn.LayerNorm((2, 3), elementwise_affine=False),
        ),
        (xnn.LayerNorm(4, bias=False), torch.nn.LayerNorm(4, bias=False)),
        (xnn.BatchNorm1d(4, bias=False), torch.nn.BatchNorm1d(4, bias=False)),
    ]:
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert repr(ours) == repr(theirs)
    assert xnn.BatchNorm2d(3).state_dict()["num_batches_tracked"].dtype == np.int64


def test_bad_inputs_change_nothing(rng):
    bn = xnn.BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"expected 4D input, got 3D"):
        bn(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="expected 3 channels"):
        bn(np.zeros((2, 4, 3, 3), np.float32))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        xnn.BatchNorm1d(3)(np.zeros((1, 3), np.float32))
    assert int(bn.num_batches_tracked.data) == 0
    np.testing.assert_array_equal(bn.running_mean.data, 0)
    with pytest.raises(ValueError, match="does not end with normalized_shape"):
        xnn.LayerNorm(4)(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="momentum"):
        xnn.BatchNorm1d(3, momentum=2.0)
    with pytest.raises(ValueError, match="running_mean and running_var are required"):
        F.batch_norm(np.zeros((2, 3)), None, None, training=False)


def test_eval_mode_accepts_a_single_sample(rng):
    bn = xnn.BatchNorm1d(3).eval()
    assert bn(rng.standard_normal((1, 3)).astype(np.float32)).shape == (1, 3)
