"""Adafactor against live torch.optim.Adafactor: options, groups, None gradients, factored state, state."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import numpy as np
import pytest
import torch

from extensor.core.tensor import ExTensor
from extensor.training.optimizers.adafactor import Adafactor, adafactor_kernel

STEPS = 120
#: a matrix, a vector, a 3-D tensor (factored per leading index), a scalar, a one-element vector
SHAPES = ((6, 4), (7,), (3, 5, 4), (), (1,))

OPTIONS: list[dict[str, Any]] = [
    {},
    {"lr": 0.05, "weight_decay": 0.1},
    {"lr": 0.2, "maximize": True, "d": 2.0, "beta2_decay": -0.5},
    {"eps": (1e-8, 1e-2), "weight_decay": 0.02, "beta2_decay": 0.0},
    {"lr": 0.03, "eps": (0.5, 0.0), "d": 1.0},  # ε1 large enough to clamp the variance estimate
]


def run_parity(kit: Any, options: dict[str, Any], dtype: Any) -> None:
    twins = kit.Twins(shapes=SHAPES, dtype=dtype, seed=5, absent=kit.sometimes_absent())
    layout = [({"lr": options.get("lr", 1e-2) * 3}, [0, 1, 2]), ({}, [3, 4])]
    ours = Adafactor(kit.groups_of(twins.ours, layout), **options)
    theirs = torch.optim.Adafactor(kit.groups_of(twins.theirs, layout), **options)
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


def test_signature_is_torchs_without_foreach() -> None:
    ours = inspect.signature(Adafactor).parameters
    theirs = dict(inspect.signature(torch.optim.Adafactor).parameters)
    del theirs["foreach"]
    assert [(p.name, p.default, p.kind) for p in ours.values()] == [
        (p.name, p.default, p.kind) for p in theirs.values()
    ]


def test_mixed_dtypes_take_eps1_from_the_first_parameter_with_a_gradient(kit: Any) -> None:
    """torch sets ε1 = finfo(dtype).eps from the group's first parameter stepped, for the whole group."""
    dtypes = [np.float32, np.float64, np.float32, np.float64]
    shapes = ((4, 3), (5,), (2, 3), (3, 2))

    def gaps(step: int, index: int) -> bool:
        return index == 0 and step % 3 == 0  # then the float64 parameter 1 sets ε1 for all

    twins = kit.Twins(shapes=shapes, dtypes=dtypes, seed=3, absent=gaps)
    ours = Adafactor(twins.ours, lr=0.1)
    theirs = torch.optim.Adafactor(twins.theirs, lr=0.1)
    for step in range(12):
        for mine, their, g in zip(twins.ours, twins.theirs, twins.gradients(step), strict=True):
            g = None if g is None else g * 1e-5  # tiny gradients: ε1 clamps the factors' mean
            mine.grad = g
            their.grad = None if g is None else torch.from_numpy(g.copy())
        ours.step()
        theirs.step()
        twins.assert_params_close(f"step {step}")
    kit.assert_state_matches_torch(ours, theirs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_non_finite_and_zero_gradients_as_torch(dtype: Any) -> None:
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(shape).astype(dtype) for shape in ((3, 4), (5,), (2, 2))]
    grads = [
        [np.zeros((3, 4)), np.zeros(5), np.zeros((2, 2))],
        [
            rng.standard_normal((3, 4)),
            np.array([1.0, np.inf, 0.5, -1.0, 0.0]),
            np.array([[1.0, 2.0], [0, 1]]),
        ],
        [np.full((3, 4), np.nan), rng.standard_normal(5), np.array([[np.inf, 1.0], [1.0, 1.0]])],
    ]
    ours = [ExTensor(v.copy(), requires_grad=True) for v in values]
    theirs = [torch.tensor(v.copy(), requires_grad=True) for v in values]
    mine = Adafactor(ours, lr=0.1, weight_decay=0.1)
    reference = torch.optim.Adafactor(theirs, lr=0.1, weight_decay=0.1)
    for step in grads:
        for p, q, g in zip(ours, theirs, step, strict=True):
            p.grad = g.astype(dtype)
            q.grad = torch.tensor(g.astype(dtype))
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            mine.step()
        reference.step()
        for p, q in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-5, equal_nan=True)
            for key, value in reference.state[q].items():
                np.testing.assert_allclose(mine.state[p][key], value.numpy(), rtol=1e-5, equal_nan=True)


def test_empty_parameters_are_left_alone() -> None:
    params = [ExTensor(np.zeros((0, 3)), requires_grad=True), ExTensor(np.ones(3), requires_grad=True)]
    optimizer = Adafactor(params)
    for p in params:
        p.grad = np.ones(p.shape)
    optimizer.step()
    assert optimizer.state[params[0]]["row_var"].shape == (0, 1)
    assert optimizer.state[params[0]]["col_var"].shape == (1, 3)
    assert not np.array_equal(params[1].data, np.ones(3))


# ----------------------------------------------------------------------------- state
def test_state_views_have_torchs_keys_and_shapes_and_are_live(kit: Any) -> None:
    twins = kit.Twins(shapes=SHAPES, seed=2)
    ours = Adafactor(twins.ours, lr=0.05)
    theirs = torch.optim.Adafactor(twins.theirs, lr=0.05)
    twins.feed(0)
    ours.step()
    theirs.step()
    for p, q in zip(twins.ours, twins.theirs, strict=True):
        assert list(ours.state[p]) == list(theirs.state[q])
        for key, value in theirs.state[q].items():
            assert ours.state[p][key].shape == tuple(value.shape), key
    p, q = twins.ours[2], twins.theirs[2]
    ours.state[p]["row_var"][...] = 0.25
    theirs.state[q]["row_var"].fill_(0.25)
    ours.state[twins.ours[1]]["variance"][...] = 2.0
    theirs.state[twins.theirs[1]]["variance"].fill_(2.0)
    twins.feed(1)
    ours.step()
    theirs.step()
    twins.assert_params_close()
    kit.assert_state_matches_torch(ours, theirs)


def make(kit: Any, dtype: Any, values: list[np.ndarray] | None = None) -> tuple[Any, Adafactor]:
    twins = kit.Twins(shapes=SHAPES, dtype=dtype, seed=11, absent=lambda step, index: (step + index) % 6 == 0)
    if values is not None:
        for tensor, value in zip(twins.ours, values, strict=True):
            tensor.data = value
    groups = kit.groups_of(twins.ours, [({"lr": 0.02}, [0, 1]), ({"weight_decay": 0.1}, [2, 3, 4])])
    return twins, Adafactor(groups, lr=0.05)


def run(twins: Any, optimizer: Adafactor, steps: range) -> None:
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
    assert list(saved["state"][0]) == ["step", "row_var", "col_var"]
    assert list(saved["state"][1]) == ["step", "variance"]
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
        assert list(after["state"][index]) == list(state)
        for key, value in state.items():
            np.testing.assert_array_equal(after["state"][index][key], value)


def test_load_torch_state_dict_and_continue(kit: Any) -> None:
    twins = kit.Twins(shapes=SHAPES, seed=4, dtype=np.float32, absent=kit.sometimes_absent())
    theirs = torch.optim.Adafactor(twins.theirs, lr=0.03, weight_decay=0.05)
    for step in range(10):
        twins.feed(step)
        theirs.step()
    for mine, their in zip(twins.ours, twins.theirs, strict=True):
        mine.data = their.detach().numpy()
    ours = Adafactor(twins.ours, lr=0.5)
    ours.load_state_dict(theirs.state_dict())
    assert ours.param_groups[0]["weight_decay"] == 0.05
    for step in range(10, 25):
        twins.feed(step)
        ours.step()
        theirs.step()
    twins.assert_params_close()
    kit.assert_state_matches_torch(ours, theirs)


def _corrupt(state: dict[str, Any], how: str) -> None:
    if how == "row_var shape":
        state[0]["row_var"] = np.zeros((6, 4))
    elif how == "missing col_var":
        del state[0]["col_var"]
    elif how == "variance for a matrix":
        state[0]["variance"] = np.zeros((6, 4))
    elif how == "factors for a vector":
        state[1]["row_var"] = np.zeros((7, 1))
    elif how == "dtype":
        state[2]["col_var"] = state[2]["col_var"].astype(np.float32)
    elif how == "step":
        state[3]["step"] = np.array([1.0, 2.0])


@pytest.mark.parametrize(
    "how",
    ["row_var shape", "missing col_var", "variance for a matrix", "factors for a vector", "dtype", "step"],
)
def test_invalid_loaded_state_leaves_the_optimizer_unchanged(kit: Any, how: str) -> None:
    twins, optimizer = make(kit, np.float64)
    run(twins, optimizer, range(8))
    before = optimizer.state_dict()
    other_twins, other = make(kit, np.float64)
    run(other_twins, other, range(3))
    bad = copy.deepcopy(other.state_dict())
    bad["param_groups"][0]["lr"] = 0.7
    _corrupt(bad["state"], how)
    with pytest.raises((ValueError, TypeError)):
        optimizer.load_state_dict(bad)
    after = optimizer.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for index, state in before["state"].items():
        for key, value in state.items():
            np.testing.assert_array_equal(after["state"][index][key], value)


def test_a_sharded_step_is_refused() -> None:
    optimizer = Adafactor([ExTensor(np.ones((2, 2)), requires_grad=True)])
    with pytest.raises(NotImplementedError, match="whole tensors"):
        optimizer._step_pack(optimizer.param_groups[0], optimizer._packs[0][0], window=object())  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "options",
    [
        {"lr": -1.0},
        {"lr": float("nan")},
        {"beta2_decay": 0.5},
        {"eps": (-1.0, 1e-3)},
        {"eps": (None, -1e-3)},
        {"d": 0.5},
        {"weight_decay": -0.1},
    ],
    ids=str,
)
def test_invalid_hyperparameters_are_refused_with_torchs_message(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as theirs:
        torch.optim.Adafactor([torch.zeros(2, requires_grad=True)], **options)
    with pytest.raises(ValueError) as ours:
        Adafactor([ExTensor(np.zeros(2), requires_grad=True)], **options)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize(
    "options",
    [{"lr": "0.1"}, {"eps": 1e-3}, {"eps": (None,)}, {"eps": ("a", 1e-3)}, {"maximize": 1}],
    ids=str,
)
def test_values_of_the_wrong_type_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        Adafactor([ExTensor(np.zeros(2), requires_grad=True)], **options)


def test_add_param_group_validates_before_building() -> None:
    optimizer = Adafactor([ExTensor(np.zeros(2), requires_grad=True)])
    with pytest.raises(ValueError, match=r"Clipping threshold d should be >= 1 but is: 0\.0"):
        optimizer.add_param_group({"params": [ExTensor(np.zeros(3), requires_grad=True)], "d": 0.0})
    assert len(optimizer.param_groups) == 1 and len(optimizer._packs) == 1


def test_the_parallel_kernel_computes_what_the_serial_one_does() -> None:
    """The compiled twin taken above PARALLEL_MIN_ELEMENTS (tensors in parallel) matches the serial one."""
    results = []
    for parallel in (False, True):
        rng = np.random.default_rng(3)
        params = [ExTensor(np.asarray(rng.standard_normal(shape)), requires_grad=True) for shape in SHAPES]
        optimizer = Adafactor(params, lr=0.1, weight_decay=0.1)
        pack = optimizer._packs[0][0]
        factors = optimizer._factors_of(pack)
        grad = np.random.default_rng(0).standard_normal(pack.buffer.numel)
        kernel = adafactor_kernel.parallel if parallel else adafactor_kernel.serial
        kernel(
            pack.buffer.data, grad, pack.buffer.offsets, factors.layout, factors.counts,
            factors.rows, factors.cols, factors.variance, factors.work, 0, len(params),
            1.0, 0.99, 1.0, 0.0, 1.0, 1e-16, 1e-32, 0.1, 1e-3, 1.0,
        )  # fmt: skip
        results.append(
            [pack.buffer.data.copy(), factors.rows.copy(), factors.cols.copy(), factors.variance.copy()]
        )
    for first, second in zip(*results, strict=True):
        np.testing.assert_array_equal(first, second)
