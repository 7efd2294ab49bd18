"""LARS against a float64 NumPy reference of the formula (a loop per tensor), and its group options."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from extensor.core.tensor import ExTensor
from extensor.training.optimizers import LARS, exclude_from_adaptation
from extensor.training.optimizers import lars as lars_module


class ReferenceLARS:
    """You, Gitman & Ginsburg (2017) as the issue states it, per tensor, in float64."""

    def __init__(self, values: list[np.ndarray], groups: list[tuple[dict[str, Any], list[int]]]) -> None:
        self.values = [v.astype(np.float64) for v in values]
        self.buffers: list[np.ndarray | None] = [None] * len(values)
        self.groups = groups

    def step(self, grads: list[np.ndarray | None]) -> None:
        for options, indices in self.groups:
            lr, momentum, dampening = options["lr"], options["momentum"], options["dampening"]
            weight_decay, eta, eps = options["weight_decay"], options["trust_coefficient"], options["eps"]
            for i in indices:
                if grads[i] is None:
                    continue
                w, g = self.values[i], grads[i].astype(np.float64)
                w_norm, g_norm = np.linalg.norm(w), np.linalg.norm(g)
                ratio = 1.0
                if options["lars_adaptation"] and eta > 0 and w_norm > 0 and g_norm > 0:
                    ratio = eta * w_norm / (g_norm + weight_decay * w_norm + eps)
                    if options["trust_clip"]:
                        ratio = min(ratio / lr, 1.0)
                d = (g + weight_decay * w) * ratio
                if momentum != 0:
                    buf = self.buffers[i]
                    buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
                    self.buffers[i] = buf
                    d = d + momentum * buf if options["nesterov"] else buf
                self.values[i] = w - lr * d


DEFAULTS = {
    "lr": 0.1,
    "momentum": 0.9,
    "dampening": 0.0,
    "weight_decay": 0.0,
    "nesterov": False,
    "trust_coefficient": 0.001,
    "eps": 0.0,
    "trust_clip": False,
    "lars_adaptation": True,
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"weight_decay": 1e-3, "trust_coefficient": 0.02},
        {"weight_decay": 5e-4, "nesterov": True, "eps": 1e-8},
        {"momentum": 0.5, "dampening": 0.5, "trust_coefficient": 0.01},
        {"momentum": 0.0, "weight_decay": 1e-2},
        {"trust_clip": True, "trust_coefficient": 0.02, "weight_decay": 1e-3},
        {"lr": 0.01, "trust_clip": True, "trust_coefficient": 0.02},  # ratio / lr > 1 in one group: clipped
    ],
    ids=[
        "defaults",
        "decay",
        "nesterov-eps",
        "dampening",
        "no-momentum",
        "trust-clip",
        "trust-clip-saturated",
    ],
)
def test_matches_the_float64_reference(kit: Any, options: dict[str, Any], dtype: Any) -> None:
    shapes = [(4, 3), (7,), (), (2, 3, 2), (5,), (3, 3)]
    twins = kit.Twins(shapes, dtype, seed=13, absent=lambda step, index: index == 1 and step % 5 == 0)
    twins.ours[4].data = np.zeros(5, dtype=dtype)  # ||w|| = 0: ratio 1
    twins.initial[4][...] = 0
    config = {**DEFAULTS, **options}
    layout = [({"lr": config["lr"] * 3}, [0, 1, 2]), ({}, [3, 4, 5])]
    optimizer = LARS(
        kit.groups_of(twins.ours, layout), **{k: v for k, v in config.items() if k != "lars_adaptation"}
    )
    reference = ReferenceLARS(
        twins.initial, [({**config, **group_options}, indices) for group_options, indices in layout]
    )
    for step in range(100):
        grads = twins.gradients(step)
        if step % 9 == 4:  # ||g|| = 0 for one tensor: ratio 1
            grads[5] = np.zeros((3, 3), dtype=dtype)
        for tensor, g in zip(twins.ours, grads, strict=True):
            tensor.grad = g
        optimizer.step()
        reference.step(grads)
    for index, (tensor, expected) in enumerate(zip(twins.ours, reference.values, strict=True)):
        kit.assert_close(tensor.data, expected.astype(dtype), f"parameter {index}")


@pytest.mark.parametrize(
    ("shapes", "resident_bytes"),
    [
        # above the parallel cut-off, a 4 MB budget (250K float64 elements; in parallel also at most
        # a quarter of a thread's share, 65K+ with up to 4 threads): large tensors between resident
        # ones, several chunks
        ([(600_000,), (3,), (60_000,), (0,), (390_001,), (40, 50)], 4_000_000),
        # serial, with a tiny cache budget: resident and summed-beforehand tensors interleave
        ([(30, 20), (7,), (500,), (2, 300), (11,), (90, 9)], 2_000),
    ],
    ids=["parallel", "serial-small-budget"],
)
def test_cache_resident_and_large_tensors_match_the_reference(
    kit: Any, monkeypatch: pytest.MonkeyPatch, shapes: list[tuple[int, ...]], resident_bytes: int
) -> None:
    monkeypatch.setattr(lars_module, "CACHE_RESIDENT_BYTES", resident_bytes)
    reductions: list[np.ndarray] = []  # the member masks of the large tensors' reductions
    reduce = lars_module.segment_sum_squares_pair

    def spy(*args: Any, member: np.ndarray, **options: Any) -> np.ndarray:
        reductions.append(member.copy())
        return reduce(*args, member=member, **options)

    monkeypatch.setattr(lars_module, "segment_sum_squares_pair", spy)
    twins = kit.Twins(shapes, np.float64, seed=21, absent=lambda step, index: index == 2 and step == 3)
    config = {**DEFAULTS, "weight_decay": 1e-3, "trust_coefficient": 0.02, "nesterov": True}
    optimizer = LARS(twins.ours, **{k: v for k, v in config.items() if k != "lars_adaptation"})
    reference = ReferenceLARS(twins.initial, [(config, list(range(len(shapes))))])
    large = [int(np.prod(shape)) * 16 > resident_bytes for shape in shapes]
    for step in range(12):
        grads = twins.gradients(step)
        for tensor, g in zip(twins.ours, grads, strict=True):
            tensor.grad = g
        optimizer.step()
        reference.step(grads)
    assert any(large) and not all(large)
    assert [m.tolist() for m in reductions[:2]] == [large, large]  # whole-pack steps: both classes
    for index, (tensor, expected) in enumerate(zip(twins.ours, reference.values, strict=True)):
        kit.assert_close(tensor.data, expected, f"parameter {index}")


def test_trust_clip_during_a_warm_up_from_zero_lr(kit: Any) -> None:
    """min(r / lr, 1) is 1 at lr = 0 (timm, apex LARC): the momentum buffer grows at full rate."""
    twins = kit.Twins([(6, 5), (8,)], np.float64, seed=3)
    config = {**DEFAULTS, "trust_clip": True, "trust_coefficient": 0.02, "weight_decay": 1e-3}
    optimizer = LARS(twins.ours, **{k: v for k, v in config.items() if k != "lars_adaptation"})
    reference = ReferenceLARS(twins.initial, [(config, [0, 1])])
    for step in range(20):
        lr = 0.1 * step / 10 if step < 10 else 0.1  # linear warm-up from 0
        optimizer.param_groups[0]["lr"] = lr
        reference.groups[0][0]["lr"] = lr
        grads = twins.gradients(step)
        for tensor, g in zip(twins.ours, grads, strict=True):
            tensor.grad = g
        optimizer.step()
        with np.errstate(divide="ignore"):
            reference.step(grads)
        if step == 0:  # lr = 0: the weights stay, the buffer holds the whole (clipped) gradient
            np.testing.assert_array_equal(twins.ours[0].data, twins.initial[0])
            buffer = optimizer.state[twins.ours[0]]["momentum_buffer"]
            np.testing.assert_allclose(buffer, grads[0] + 1e-3 * twins.initial[0], rtol=1e-12)
    for index, (tensor, expected) in enumerate(zip(twins.ours, reference.values, strict=True)):
        kit.assert_close(tensor.data, expected, f"parameter {index}")


def test_adaptation_is_on_with_the_default_weight_decay() -> None:
    """With weight_decay=0 LARS is still LARS: the step is scaled by eta * ||w|| / ||g||, unlike SGD."""
    w = ExTensor(np.full(4, 2.0), requires_grad=True)
    optimizer = LARS([w], lr=1.0, momentum=0.0, trust_coefficient=0.5)
    w.grad = np.full(4, 10.0)
    optimizer.step()
    ratio = 0.5 * 4.0 / 20.0  # eta * ||w|| / ||g||
    np.testing.assert_allclose(w.data, 2.0 - ratio * 10.0, rtol=1e-15)


def test_exclude_from_adaptation_makes_biases_plain_sgd() -> None:
    rng = np.random.default_rng(0)
    weight = ExTensor(rng.standard_normal((3, 4)), requires_grad=True)
    bias = ExTensor(rng.standard_normal(4), requires_grad=True)
    scale = ExTensor(rng.standard_normal(4), requires_grad=True)
    torch_bias = torch.tensor(bias.data.copy(), requires_grad=True)
    torch_scale = torch.tensor(scale.data.copy(), requires_grad=True)
    groups = exclude_from_adaptation([weight, bias, scale])
    assert [len(g["params"]) for g in groups] == [1, 2]
    assert groups[1]["lars_adaptation"] is False and groups[1]["weight_decay"] == 0.0
    optimizer = LARS(groups, lr=0.1, weight_decay=1e-2, trust_coefficient=0.01)
    plain = torch.optim.SGD([torch_bias, torch_scale], lr=0.1, momentum=0.9)
    for _ in range(20):
        for ours, theirs in ((bias, torch_bias), (scale, torch_scale)):
            g = rng.standard_normal(4)
            ours.grad = g
            theirs.grad = torch.tensor(g)
        weight.grad = rng.standard_normal((3, 4))
        optimizer.step()
        plain.step()
    np.testing.assert_allclose(bias.data, torch_bias.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(scale.data, torch_scale.detach().numpy(), rtol=1e-12)
    assert exclude_from_adaptation([weight]) == [{"params": [weight]}]
    with pytest.raises(TypeError, match="ExTensors"):
        exclude_from_adaptation([np.ones(3)])  # type: ignore[list-item]


def test_group_flag_is_validated() -> None:
    with pytest.raises(TypeError, match="lars_adaptation must be a bool"):
        LARS([{"params": [ExTensor(np.ones(2), requires_grad=True)], "lars_adaptation": "no"}], lr=0.1)
