"""Muon against live torch.optim.Muon: options, groups, None gradients, bfloat16 Newton–Schulz, state."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import numpy as np
import pytest
import torch
from torch.optim._muon import _zeropower_via_newtonschulz

from extensor.core.tensor import ExTensor
from extensor.training.optimizers.muon import Muon, muon_kernel, round_to_bfloat16

STEPS = 120
#: wide, tall, square, a long thin one and a single row
SHAPES = ((6, 4), (4, 6), (5, 5), (2, 7), (1, 3))

OPTIONS: list[dict[str, Any]] = [
    {},
    {"nesterov": False, "momentum": 0.9, "weight_decay": 0.0},
    {"adjust_lr_fn": "match_rms_adamw", "lr": 0.02},
    {"adjust_lr_fn": "original", "ns_steps": 3, "ns_coefficients": (2.0, -1.5, 0.5), "eps": 1e-3, "lr": 0.01},
    {"momentum": 0.0, "ns_steps": 0, "weight_decay": 0.5},
]


def run_parity(kit: Any, options: dict[str, Any], dtype: Any) -> None:
    twins = kit.Twins(shapes=SHAPES, dtype=dtype, seed=5, absent=kit.sometimes_absent())
    layout = [({"lr": options.get("lr", 1e-3) * 3}, [0, 1, 2]), ({}, [3, 4])]
    ours = Muon(kit.groups_of(twins.ours, layout), **options)
    theirs = torch.optim.Muon(kit.groups_of(twins.theirs, layout), **options)
    for step in range(STEPS):
        twins.feed(step)
        ours.step()
        theirs.step()
        if step % 40 == 39:  # a scheduler halving every group's lr
            for mine, their in zip(ours.param_groups, theirs.param_groups, strict=True):
                mine["lr"] *= 0.5
                their["lr"] *= 0.5
        if step % 30 == 0:
            twins.assert_params_close(f"step {step}")
    twins.assert_params_close("final")
    np.testing.assert_array_equal(twins.ours[4].data, twins.initial[4])
    kit.assert_state_matches_torch(ours, theirs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults"
)
def test_matches_torch(kit: Any, options: dict[str, Any], dtype: Any) -> None:
    run_parity(kit, options, dtype)


def test_signature_is_torchs() -> None:
    ours = inspect.signature(Muon).parameters
    theirs = inspect.signature(torch.optim.Muon).parameters
    assert [(p.name, p.default, p.kind) for p in ours.values()] == [
        (p.name, p.default, p.kind) for p in theirs.values()
    ]


# ----------------------------------------------------------------------------- bfloat16
def test_bfloat16_rounding_is_c10s() -> None:
    rng = np.random.default_rng(0)
    special = [
        0.0,
        -0.0,
        np.inf,
        -np.inf,
        np.nan,
        3.3895314e38,
        3.4e38,
        1e-40,
        -1e-45,
        1.00390625,
        1.01171875,
    ]
    values = np.concatenate([rng.standard_normal(5000) * 10.0 ** rng.integers(-30, 30, 5000), special])
    values = values.astype(np.float32)
    # ties and their neighbours: finite values whose low 16 bits are exactly 0x8000, one below, one above
    sign = rng.integers(0, 2, 300, dtype=np.uint32) << 31
    exponent = rng.integers(1, 0xFF, 300, dtype=np.uint32) << 23
    mantissa = rng.integers(0, 1 << 7, 300, dtype=np.uint32) << 16
    bits = sign | exponent | mantissa | np.uint32(0x8000)
    ties = np.concatenate([bits, bits - 1, bits + 1]).view(np.float32)
    values = np.concatenate([values, ties])
    ours = values.copy()
    round_to_bfloat16(ours)
    theirs = torch.from_numpy(values).bfloat16().float().numpy()
    nan = np.isnan(theirs)  # torch's vector conversion keeps a NaN's sign and payload: NaN is all we ask
    np.testing.assert_array_equal(np.isnan(ours), nan)
    np.testing.assert_array_equal(ours[~nan].view(np.uint32), theirs[~nan].view(np.uint32))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (5, 5), (1, 9), (12, 3)], ids=str)
def test_one_step_update_is_torchs_bfloat16_newton_schulz_bit_for_bit(
    shape: tuple[int, int], dtype: Any
) -> None:
    """With zero momentum and decay one step is θ − γ' NS(g): the orthogonalised update itself."""
    rng = np.random.default_rng(sum(shape))
    for trial in range(20):
        g = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 3)).astype(dtype)
        param = ExTensor(np.zeros(shape, dtype=dtype), requires_grad=True)
        optimizer = Muon([param], lr=1.0, momentum=0.0, weight_decay=0.0, adjust_lr_fn="match_rms_adamw")
        param.grad = g
        optimizer.step()
        update = _zeropower_via_newtonschulz(torch.from_numpy(g), (3.4445, -4.775, 2.0315), 5, 1e-7)
        ratio = 0.2 * np.sqrt(max(shape))
        expected = torch.zeros(shape, dtype=torch.from_numpy(g).dtype).add_(update, alpha=-ratio).numpy()
        np.testing.assert_array_equal(param.data, expected, err_msg=f"trial {trial}")


def test_the_parallel_kernel_computes_what_the_serial_one_does() -> None:
    rng = np.random.default_rng(1)
    shapes = np.array([[7, 5], [3, 8], [0, 4]], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(shapes[:, 0] * shapes[:, 1])])
    grad = rng.standard_normal(int(offsets[-1]))
    results = []
    for kernel in (muon_kernel.serial, muon_kernel.parallel):
        param, buf = np.ones_like(grad), rng.standard_normal(grad.size) * 0 + 0.5
        scratch = np.zeros(2 * 35 + 2 * 25, dtype=np.float32)
        kernel(
            param, grad, buf, offsets, shapes, np.array([-0.1, -0.2, -0.3]), scratch, 0, 3,
            0.99, 0.05, 0.95, 0.95, 0.05, True,
            np.float32(3.4445), np.float32(-4.775), np.float32(2.0315), np.float32(1e-7), 5,
        )  # fmt: skip
        results.append((param, buf))
    for first, second in zip(*results, strict=True):
        np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_zero_and_non_finite_gradients_as_torch(dtype: Any) -> None:
    grads = [np.zeros((3, 4)), np.full((3, 4), 1e-30), np.eye(3, 4), np.full((3, 4), np.inf), np.ones((3, 4))]
    ours = ExTensor(np.ones((3, 4), dtype=dtype), requires_grad=True)
    theirs = torch.ones((3, 4), dtype=torch.from_numpy(np.zeros(1, dtype=dtype)).dtype, requires_grad=True)
    mine = Muon([ours], lr=0.1)
    reference = torch.optim.Muon([theirs], lr=0.1)
    for g in grads:
        ours.grad = g.astype(dtype)
        theirs.grad = torch.tensor(g.astype(dtype))
        with np.errstate(invalid="ignore", over="ignore"):
            mine.step()
        reference.step()
        np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-5, equal_nan=True)
        buffer = reference.state[theirs]["momentum_buffer"].numpy()
        np.testing.assert_allclose(mine.state[ours]["momentum_buffer"], buffer, rtol=1e-5, equal_nan=True)


def test_empty_matrices_are_left_alone() -> None:
    params = [ExTensor(np.zeros((0, 3)), requires_grad=True), ExTensor(np.ones((2, 3)), requires_grad=True)]
    optimizer = Muon(params)
    for p in params:
        p.grad = np.ones(p.shape)
    optimizer.step()
    assert optimizer.state[params[0]]["momentum_buffer"].shape == (0, 3)
    assert not np.array_equal(params[1].data, np.ones((2, 3)))


# ----------------------------------------------------------------------------- state
def make(kit: Any, dtype: Any, values: list[np.ndarray] | None = None) -> tuple[Any, Muon]:
    twins = kit.Twins(shapes=SHAPES, dtype=dtype, seed=11, absent=lambda step, index: (step + index) % 6 == 0)
    if values is not None:
        for tensor, value in zip(twins.ours, values, strict=True):
            tensor.data = value
    groups = kit.groups_of(twins.ours, [({"lr": 0.02}, [0, 1]), ({"nesterov": False}, [2, 3, 4])])
    return twins, Muon(groups, lr=0.05)


def run(twins: Any, optimizer: Muon, steps: range) -> None:
    for step in steps:
        twins.feed(step)
        optimizer.step()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_resume_into_fresh_objects_is_bit_identical(kit: Any, dtype: Any) -> None:
    straight_twins, straight = make(kit, dtype)
    run(straight_twins, straight, range(30))
    first_twins, first = make(kit, dtype)
    run(first_twins, first, range(15))
    saved = first.state_dict()
    assert list(saved["state"][0]) == ["momentum_buffer"]
    resumed_twins, resumed = make(kit, dtype, [p.data.copy() for p in first_twins.ours])
    resumed.load_state_dict(saved)
    for state in saved["state"].values():  # the optimizer took copies
        for array in state.values():
            array[...] = 0.5
    run(resumed_twins, resumed, range(15, 30))
    for ours, reference in zip(resumed_twins.ours, straight_twins.ours, strict=True):
        np.testing.assert_array_equal(ours.data, reference.data)
    after, expected = resumed.state_dict(), straight.state_dict()
    assert sorted(after["state"]) == sorted(expected["state"])
    for index, state in expected["state"].items():
        np.testing.assert_array_equal(after["state"][index]["momentum_buffer"], state["momentum_buffer"])


def test_load_torch_state_dict_and_continue(kit: Any) -> None:
    twins = kit.Twins(shapes=SHAPES, seed=4, dtype=np.float32, absent=kit.sometimes_absent())
    theirs = torch.optim.Muon(twins.theirs, lr=0.03, adjust_lr_fn="match_rms_adamw")
    for step in range(10):
        twins.feed(step)
        theirs.step()
    for mine, their in zip(twins.ours, twins.theirs, strict=True):
        mine.data = their.detach().numpy()
    ours = Muon(twins.ours, lr=0.5)
    ours.load_state_dict(theirs.state_dict())
    assert ours.param_groups[0]["adjust_lr_fn"] == "match_rms_adamw"
    for step in range(10, 25):
        twins.feed(step)
        ours.step()
        theirs.step()
    twins.assert_params_close()
    kit.assert_state_matches_torch(ours, theirs)


@pytest.mark.parametrize("how", ["shape", "dtype", "unknown key", "bad group"])
def test_invalid_loaded_state_leaves_the_optimizer_unchanged(kit: Any, how: str) -> None:
    twins, optimizer = make(kit, np.float64)
    run(twins, optimizer, range(8))
    before = optimizer.state_dict()
    other_twins, other = make(kit, np.float64)
    run(other_twins, other, range(3))
    bad = copy.deepcopy(other.state_dict())
    bad["param_groups"][0]["lr"] = 0.7
    if how == "shape":
        bad["state"][2]["momentum_buffer"] = np.zeros((5, 4))
    elif how == "dtype":
        bad["state"][1]["momentum_buffer"] = bad["state"][1]["momentum_buffer"].astype(np.float32)
    elif how == "unknown key":
        bad["state"][3]["step"] = np.float32(3)
    else:
        bad["param_groups"][1]["adjust_lr_fn"] = "sqrt"
    with pytest.raises((ValueError, TypeError)):
        optimizer.load_state_dict(bad)
    after = optimizer.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for index, state in before["state"].items():
        np.testing.assert_array_equal(after["state"][index]["momentum_buffer"], state["momentum_buffer"])


def test_a_sharded_step_is_refused() -> None:
    optimizer = Muon([ExTensor(np.ones((2, 2)), requires_grad=True)])
    with pytest.raises(NotImplementedError, match="whole matrices"):
        optimizer._step_pack(optimizer.param_groups[0], optimizer._packs[0][0], window=object())  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "options",
    [
        {"lr": -1.0},
        {"lr": float("nan")},
        {"momentum": -0.1},
        {"weight_decay": -0.1},
        {"adjust_lr_fn": "sqrt"},
        {"adjust_lr_fn": 3},
    ],
    ids=str,
)
def test_invalid_hyperparameters_are_refused_with_torchs_message(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as theirs:
        torch.optim.Muon([torch.zeros((2, 2), requires_grad=True)], **options)
    with pytest.raises(ValueError) as ours:
        Muon([ExTensor(np.zeros((2, 2)), requires_grad=True)], **options)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("options", [{"ns_steps": 100}, {"ns_coefficients": (1.0, 2.0)}], ids=str)
def test_what_torch_refuses_at_the_step_is_refused_at_construction(options: dict[str, Any]) -> None:
    param = torch.zeros((2, 2), requires_grad=True)
    reference = torch.optim.Muon([param], **options)
    param.grad = torch.ones((2, 2))
    with pytest.raises(ValueError) as theirs:
        reference.step()
    with pytest.raises(ValueError) as ours:
        Muon([ExTensor(np.zeros((2, 2)), requires_grad=True)], **options)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize(
    "options",
    [{"lr": "0.1"}, {"nesterov": 1}, {"ns_steps": 2.5}, {"eps": None}, {"ns_coefficients": (1.0, 2.0, "a")}],
    ids=str,
)
def test_values_of_the_wrong_type_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        Muon([ExTensor(np.zeros((2, 2)), requires_grad=True)], **options)


@pytest.mark.parametrize("shape", [(7,), (3, 5, 4), ()], ids=str)
def test_parameters_that_are_not_matrices_are_refused_as_torch(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError) as theirs:
        torch.optim.Muon([torch.zeros(shape, requires_grad=True)])
    with pytest.raises(ValueError) as ours:
        Muon([ExTensor(np.zeros(shape), requires_grad=True)])
    prefix = "Muon only supports 2D parameters whereas we found a parameter with size: "
    assert str(theirs.value).startswith(prefix)
    assert str(ours.value) == prefix + str(shape)
    optimizer = Muon([ExTensor(np.zeros((2, 2)), requires_grad=True)])
    with pytest.raises(ValueError, match="only supports 2D parameters"):
        optimizer.add_param_group({"params": [ExTensor(np.zeros(shape), requires_grad=True)]})
    assert len(optimizer.param_groups) == 1 and len(optimizer._packs) == 1


def test_large_matrices_take_blas_products_close_to_torch() -> None:
    """From BLAS_MIN_ELEMENTS on, the iteration's products run on BLAS: the update is torch's to
    bfloat16 precision, no longer bit for bit."""
    from extensor.training.optimizers.muon import BLAS_MIN_ELEMENTS

    rng = np.random.default_rng(0)
    shape = (300, 256)  # tall: the iteration runs on its transpose
    assert shape[0] * shape[1] >= BLAS_MIN_ELEMENTS
    values = rng.standard_normal(shape).astype(np.float32)
    ours = ExTensor(values.copy(), requires_grad=True)
    theirs = torch.from_numpy(values.copy()).requires_grad_()
    mine, reference = Muon([ours], lr=0.02), torch.optim.Muon([theirs], lr=0.02)
    for _ in range(3):
        before = ours.data.copy()
        g = rng.standard_normal(shape).astype(np.float32)
        ours.grad, theirs.grad = g, torch.from_numpy(g.copy())
        mine.step()
        reference.step()
        step_ours, step_torch = ours.data - before, theirs.detach().numpy() - before
        # to bfloat16 precision (2^-8): roundings that differ cascade through the 5 iterations
        # (measured: mean 0.2%, max 0.9% of the largest element)
        assert np.abs(step_ours - step_torch).max() <= 2**-5 * np.abs(step_torch).max()
        assert np.abs(step_ours - step_torch).mean() <= 2**-8 * np.abs(step_torch).mean()
        theirs.data.copy_(torch.from_numpy(ours.data.copy()))  # next step from the same point
