"""Whole networks: a training step of the MLP and LeNet-5 matches torch; a tiny CNN passes gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extensor import ExTensor, Tape
from extensor import nn as xnn
from extensor.autograd import gradcheck


def mlp(lib):
    return lib.Sequential(lib.Linear(64, 32), lib.ReLU(), lib.Linear(32, 32), lib.ReLU(), lib.Linear(32, 10))


def lenet(lib):
    return lib.Sequential(
        lib.Conv2d(1, 6, 5, padding=2), lib.ReLU(), lib.MaxPool2d(2),
        lib.Conv2d(6, 16, 5), lib.ReLU(), lib.MaxPool2d(2), lib.Flatten(),
        lib.Linear(400, 120), lib.ReLU(), lib.Linear(120, 84), lib.ReLU(), lib.Linear(84, 10),
    )  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("build", "shape"), [(mlp, (16, 64)), (lenet, (8, 1, 28, 28))], ids=["mlp", "lenet"])
def test_loss_and_every_gradient_match_torch(rng, close, load_into_torch, dtype, build, shape):
    ours = build(xnn).to(dtype)
    theirs = build(torch.nn).to(torch.float64 if dtype == np.float64 else torch.float32)
    load_into_torch(ours, theirs)
    x = rng.standard_normal(shape).astype(dtype)
    y = rng.integers(0, 10, shape[0])
    criterion = xnn.CrossEntropyLoss(label_smoothing=0.1)
    for _ in range(2):  # gradients accumulate across steps, as in torch
        tape = Tape()
        with tape:
            loss = criterion(ours(x), y)
        tape.backward(loss)
        loss_t = torch.nn.CrossEntropyLoss(label_smoothing=0.1)(
            theirs(torch.from_numpy(x)), torch.from_numpy(y)
        )
        loss_t.backward()
        close(loss, loss_t, dtype, "loss")
    torch_params = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        close(param.grad, torch_params[name].grad, dtype, name)


def test_gradcheck_small_cnn(rng):
    weights = [
        ExTensor(rng.standard_normal((2, 1, 3, 3)), requires_grad=True),
        ExTensor(rng.standard_normal(2), requires_grad=True),
        ExTensor(rng.standard_normal((3, 8)), requires_grad=True),
    ]
    x = rng.standard_normal((2, 1, 6, 6))
    target = np.array([0, 2])

    def net(w1, b1, w2):
        h = xnn.functional.conv2d(x, w1, b1, padding=1).tanh()
        h = xnn.functional.avg_pool2d(h, 3).flatten(1)
        return xnn.functional.cross_entropy(xnn.functional.linear(h, w2), target)

    assert gradcheck(net, weights)
