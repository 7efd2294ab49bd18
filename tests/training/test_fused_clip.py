"""Clipping fused into the step: `clip_grad_norm` defers its scaling into the optimizer's kernel.

What anyone can observe must be exactly the eager two-pass result (and torch's): the returned
norm, `p.grad` after clipping, the parameters and state after the step. The reference here is
the same run with the deferred scale applied before the step (reading every ``p.grad`` settles
it), so every comparison is bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from extensor import ExTensor
from extensor.distributed import SingleProcess
from extensor.distributed.sharded import ShardedOptimizer
from extensor.training import clip_grad_norm, clip_grad_value, clip_grads_with_norm_
from extensor.training import optimizers as optim
from extensor.training.flat import FlatBuffer

SHAPES = [(4, 3), (7,), (), (2, 3, 2), (1,), (5,)]

#: Every optimizer of the roster but L-BFGS (closure-driven; below) and Muon (matrices; below).
FACTORIES: dict[str, Callable[[list[dict[str, Any]]], optim.Optimizer]] = {
    "SGD": lambda g: optim.SGD(g, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "SGD-plain": lambda g: optim.SGD(g, lr=0.1, maximize=True),
    "Adam": lambda g: optim.Adam(g, lr=0.01, amsgrad=True, weight_decay=1e-2),
    "AdamW": lambda g: optim.AdamW(g, lr=0.01, maximize=True),
    "RMSprop": lambda g: optim.RMSprop(g, lr=0.01, centered=True, momentum=0.5),
    "LARS": lambda g: optim.LARS(g, lr=0.1, trust_coefficient=0.02, weight_decay=1e-3),
    "LARS-clip": lambda g: optim.LARS(g, lr=0.1, trust_coefficient=0.02, trust_clip=True),
    "Adagrad": lambda g: optim.Adagrad(g, lr=0.1, lr_decay=0.01),
    "Adadelta": lambda g: optim.Adadelta(g, lr=1.0, weight_decay=1e-2),
    "Adamax": lambda g: optim.Adamax(g, lr=0.01),
    "NAdam": lambda g: optim.NAdam(g, lr=0.01, decoupled_weight_decay=True, weight_decay=0.1),
    "RAdam": lambda g: optim.RAdam(g, lr=0.01),
    "ASGD": lambda g: optim.ASGD(g, lr=0.01, t0=3),
    "Rprop": lambda g: optim.Rprop(g, lr=0.01),
    "Adafactor": lambda g: optim.Adafactor(g, lr=0.01),
    "LAMB": lambda g: optim.LAMB(g, lr=0.01, weight_decay=0.01),
    "Lion": lambda g: optim.Lion(g, lr=1e-3, weight_decay=0.1),
    "ADOPT": lambda g: optim.ADOPT(g, lr=0.01),
    "ScheduleFreeAdamW": lambda g: optim.ScheduleFreeAdamW(g, lr=0.01, warmup_steps=3),
    "ScheduleFreeSGD": lambda g: optim.ScheduleFreeSGD(g, lr=0.1),
}
#: The optimizers whose kernels read the deferred scale (the others apply it first, no faster).
FUSED = {
    "SGD", "SGD-plain", "Adam", "AdamW", "RMSprop", "LARS", "LARS-clip", "Adagrad", "Adadelta", "Adamax",
    "NAdam", "RAdam", "ASGD", "Rprop", "LAMB", "Lion", "ADOPT", "ScheduleFreeAdamW", "ScheduleFreeSGD",
}  # fmt: skip


def make_parameters(dtype: Any, seed: int = 0) -> list[ExTensor]:
    rng = np.random.default_rng(seed)
    return [ExTensor(rng.standard_normal(shape).astype(dtype), requires_grad=True) for shape in SHAPES]


def groups(params: list[ExTensor]) -> list[dict[str, Any]]:
    return [{"params": params[:3]}, {"params": params[3:]}]


def feed(params: list[ExTensor], step: int) -> None:
    """Random gradients, large enough that clipping scales them; some None (index 2 from step 3 on
    every third step, index 4 never)."""
    rng = np.random.default_rng(100 + step)
    for index, param in enumerate(params):
        gradient = (3.0 * rng.standard_normal(param.shape)).astype(param.dtype)
        absent = index == 4 or (index == 2 and step % 3 == 0)
        param.grad = None if absent else gradient


def settle(params: list[ExTensor]) -> None:
    """Apply any deferred scale eagerly: the two-pass reference."""
    for param in params:
        _ = param.grad


def pending(params: list[ExTensor]) -> list[Any]:
    owners = {id(p.grad_slot.owner): p.grad_slot.owner for p in params if p.grad_slot is not None}
    return [owner.pending_scale for owner in owners.values() if isinstance(owner, FlatBuffer)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_a_fused_clipped_step_is_bit_identical_to_clip_then_step(name: str, dtype: Any) -> None:
    fused_params, eager_params = make_parameters(dtype), make_parameters(dtype)
    fused, eager = FACTORIES[name](groups(fused_params)), FACTORIES[name](groups(eager_params))
    for optimizer in (fused, eager):
        if hasattr(optimizer, "train"):  # Schedule-Free steps in train mode
            optimizer.train()
    for step in range(12):
        norm_type = (2.0, 1.0, math.inf, 3.0)[step % 4]
        feed(fused_params, step)
        feed(eager_params, step)
        norms = clip_grad_norm(fused_params, 1.0, norm_type), clip_grad_norm(eager_params, 1.0, norm_type)
        assert norms[0].tobytes() == norms[1].tobytes()
        assert all(scale is not None for scale in pending(fused_params)), "the scaling was not deferred"
        settle(eager_params)
        assert not any(scale is not None for scale in pending(eager_params))
        fused.step()
        eager.step()
        if name in FUSED:  # the kernel read the scale; the stored gradients are still unscaled
            assert all(scale is not None for scale in pending(fused_params))
        for mine, theirs in zip(fused_params, eager_params, strict=True):
            assert mine.data.tobytes() == theirs.data.tobytes(), f"{name} step {step}"
            assert (mine.grad is None) == (theirs.grad is None)
            if mine.grad is not None:
                assert mine.grad.tobytes() == theirs.grad.tobytes()  # .grad after the step: clipped
        fused.zero_grad()
        eager.zero_grad()
    ours, reference = fused.state_dict()["state"], eager.state_dict()["state"]
    for index, entries in reference.items():
        for key, value in entries.items():
            assert np.asarray(ours[index][key]).tobytes() == np.asarray(value).tobytes(), (index, key)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_muon_and_lbfgs_see_the_clipped_gradient(dtype: Any) -> None:
    for build in (
        lambda p: optim.Muon(p, lr=0.02),
        lambda p: optim.LBFGS(p, lr=0.1, max_iter=3, history_size=3),
    ):
        shapes = [(6, 4), (3, 5)]
        runs = []
        for eager in (False, True):
            rng = np.random.default_rng(1)
            params = [ExTensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in shapes]
            optimizer = build(params)
            targets = [np.random.default_rng(9).standard_normal(s).astype(dtype) for s in shapes]

            def closure(
                params: list[ExTensor] = params, targets: list[Any] = targets, eager: bool = eager
            ) -> float:
                for param, target in zip(params, targets, strict=True):
                    param.grad = (param.data - target) * dtype(5)
                clip_grad_norm(params, 0.5)
                if eager:
                    settle(params)
                return float(sum(np.sum((p.data - t) ** 2) for p, t in zip(params, targets, strict=True)))

            for _ in range(4):
                if optimizer.requires_closure:
                    optimizer.step(closure)
                else:
                    closure()
                    optimizer.step()
            runs.append([p.data.copy() for p in params])
        for mine, theirs in zip(*runs, strict=True):
            assert mine.tobytes() == theirs.tobytes()


def torch_twins(params: list[ExTensor]) -> list[torch.Tensor]:
    twins = []
    for param in params:
        tensor = torch.tensor(param.data.copy(), requires_grad=True)
        if param.grad is not None:
            tensor.grad = torch.tensor(param.grad.copy())
        twins.append(tensor)
    return twins


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_grad_read_between_clip_and_step_is_torchs_clipped_gradient_and_clips_compose(dtype: Any) -> None:
    params = make_parameters(dtype)
    optimizer = optim.AdamW(params, lr=0.01)
    feed(params, 1)
    reference = torch_twins(params)
    for max_norm, norm_type in ((1.0, 2.0), (0.3, math.inf), (0.1, 1.0)):  # three clips in a row
        ours = clip_grad_norm(params, max_norm, norm_type)
        theirs = torch.nn.utils.clip_grad_norm_(reference, max_norm, norm_type)
        assert ours.dtype == np.dtype(dtype)
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-6 if dtype == np.float32 else 1e-12)
    for param, tensor in zip(params, reference, strict=True):
        assert (param.grad is None) == (tensor.grad is None)
        if param.grad is not None:
            rtol = 1e-6 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(param.grad, tensor.grad.numpy(), rtol=rtol)
    optimizer.step()  # after the reads, nothing is pending: the plain kernel path
    assert pending(params) == [None]


def test_accumulating_assigning_and_zeroing_after_a_clip() -> None:
    params = make_parameters(np.float64)
    optim.SGD(params, lr=0.1)
    feed(params, 1)
    expected = [None if p.grad is None else p.grad.copy() for p in params]
    coefficient = 0.5 / (float(clip_grad_norm(params, 1e9)) + 1e-6)
    clip_grad_norm(params, 0.5)
    buffer = params[0].grad_slot.owner  # type: ignore[union-attr]
    assert isinstance(buffer, FlatBuffer) and buffer.pending_scale is not None
    # backward accumulating into a clipped gradient adds to the clipped values
    params[0].accumulate_grad(np.ones(params[0].shape))
    assert buffer.pending_scale is None
    np.testing.assert_allclose(params[0].grad, expected[0] * coefficient + 1, rtol=1e-14)
    # assigning one gradient leaves the others clipped
    clip_grad_norm(params, 0.5)
    params[1].grad = np.full(params[1].shape, 7.0)
    np.testing.assert_array_equal(params[1].grad, 7.0)
    assert params[3].grad is not None and np.abs(params[3].grad).max() < np.abs(expected[3]).max()
    # zero_grad drops a pending scale: the next gradients are not scaled by it
    clip_grad_norm(params, 1e-3)
    assert buffer.pending_scale is not None
    buffer.zero_grad(set_to_none=False)
    assert buffer.pending_scale is None
    feed(params, 2)
    fresh = make_parameters(np.float64)
    feed(fresh, 2)
    for mine, theirs in zip(params, fresh, strict=True):
        assert (mine.grad is None) == (theirs.grad is None)
        if mine.grad is not None:
            np.testing.assert_array_equal(mine.grad, theirs.grad)


def test_a_partial_clip_or_a_duplicate_parameter_is_eager_and_still_exact() -> None:
    params = make_parameters(np.float64)
    optim.SGD(params, lr=0.1)
    feed(params, 1)
    reference = torch_twins(params)
    clip_grad_norm(params[:3], 0.5)  # a subset of the buffer: scaled now, the rest untouched
    torch.nn.utils.clip_grad_norm_(reference[:3], 0.5)
    assert pending(params) == [None]
    clip_grad_norm([params[0], params[1], params[0]], 0.2)  # torch scales a repeated tensor twice
    torch.nn.utils.clip_grad_norm_([reference[0], reference[1], reference[0]], 0.2)
    assert pending(params) == [None]
    clip_grads_with_norm_(params, 1.0, np.float64(4.0))  # the whole buffer: deferred
    torch.nn.utils.clip_grads_with_norm_(reference, 1.0, torch.tensor(4.0, dtype=torch.float64))
    assert pending(params) != [None]
    clip_grad_value(params, 0.05)  # settles first, then clamps
    torch.nn.utils.clip_grad_value_(reference, 0.05)
    for param, tensor in zip(params, reference, strict=True):
        if param.grad is not None:  # torch's four scalings round their coefficients its own way
            np.testing.assert_allclose(param.grad, tensor.grad.numpy(), rtol=1e-15, atol=0)


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "LARS"])
def test_sharded_clip_is_deferred_and_matches_the_plain_eager_step(name: str) -> None:
    plain_params, sharded_params = make_parameters(np.float32), make_parameters(np.float32)
    plain = FACTORIES[name](groups(plain_params))
    sharded = ShardedOptimizer(FACTORIES[name](groups(sharded_params)), SingleProcess())
    for step in range(8):
        feed(plain_params, step)
        feed(sharded_params, step)
        norms = clip_grad_norm(plain_params, 1.0), sharded.clip_grad_norm(1.0)
        np.testing.assert_allclose(norms[0], norms[1], rtol=1e-6)
        settle(plain_params)
        assert any(shard.pending_scale is not None for shard in sharded._shards)
        plain.step()
        sharded.step()
        plain.zero_grad()
        sharded.zero_grad()
    for mine, theirs in zip(sharded_params, plain_params, strict=True):
        np.testing.assert_allclose(mine.data, theirs.data, rtol=1e-6, atol=1e-7)
