"""Lookahead against optax.lookahead and against the paper's Algorithm 1 written over live torch.optim.

* optax 0.2.8 (`optax.lookahead(fast, sync_period=k, slow_step_size=alpha)` with
  ``LookaheadParams.init_synced``): the same algorithm, slow weights starting at the initial
  parameters. optax merges the last fast step and the synchronisation into one update
  (``θ + u - (1 - α)(θ + u - φ)``), so values agree to rounding, not bit for bit.
* The hand-written reference applies Algorithm 1 around torch's own optimizer (``φ += α(θ - φ);
  θ ← φ`` every k steps), which optax cannot express with several groups, lrs changed between
  steps and gradients that are sometimes None.

float64 to 1e-10 and float32 to 1e-5 relative, 120 steps each.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from extensor.core.tensor import ExTensor
from extensor.training.lookahead import SLOW_KEY, Lookahead
from extensor.training.optimizers import SGD, Adam
from extensor.training.schedulers import StepLR

STEPS = 120
RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}
SHAPES = ((4, 3), (7,), (), (2, 3, 2), (1,))


def assert_close(ours: Any, theirs: Any, what: str) -> None:
    expected = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    got = np.asarray(ours)
    assert got.shape == expected.shape and got.dtype == expected.dtype, what
    rtol = RTOL[got.dtype]
    scale = float(np.max(np.abs(expected), initial=0.0))
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def initial(dtype: Any, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]


def gradients(step: int, dtype: Any, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng((seed, step))
    return [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]


# ------------------------------------------------------------------------------------- optax
OPTAX_CASES = [
    (
        "sgd_momentum",
        lambda ps: SGD(ps, lr=0.05, momentum=0.9),
        lambda: optax.sgd(0.05, momentum=0.9),
        5,
        0.5,
    ),
    ("sgd", lambda ps: SGD(ps, lr=0.1), lambda: optax.sgd(0.1), 3, 0.8),
    ("adam", lambda ps: Adam(ps, lr=0.01), lambda: optax.adam(0.01), 6, 0.3),
    ("adam_k1", lambda ps: Adam(ps, lr=0.01), lambda: optax.adam(0.01), 1, 1.0),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(
    ("name", "ours_fn", "optax_fn", "k", "alpha"), OPTAX_CASES, ids=[c[0] for c in OPTAX_CASES]
)
def test_matches_optax_lookahead(
    name: str, ours_fn: Any, optax_fn: Any, k: int, alpha: float, dtype: Any
) -> None:
    start = initial(dtype)
    params = [ExTensor(x.copy(), requires_grad=True) for x in start]
    ours = Lookahead(ours_fn(params), k=k, alpha=alpha)
    with jax.enable_x64(np.dtype(dtype) == np.float64):
        transform = optax.lookahead(optax_fn(), sync_period=k, slow_step_size=alpha)
        theirs = optax.LookaheadParams.init_synced([jnp.asarray(x) for x in start])
        state = transform.init(theirs)
        update = jax.jit(transform.update)
        for step in range(STEPS):
            grads = gradients(step, dtype)
            for param, g in zip(params, grads, strict=True):
                param.grad = g
            ours.step()
            updates, state = update([jnp.asarray(g) for g in grads], state, theirs)
            theirs = optax.apply_updates(theirs, updates)
            if step % 17 == 0 or step == STEPS - 1:
                for index, (param, fast, slow) in enumerate(
                    zip(params, theirs.fast, theirs.slow, strict=True)
                ):
                    assert_close(param.data, np.asarray(fast), f"step {step} fast {index}")
                    assert_close(ours.state[param][SLOW_KEY], np.asarray(slow), f"step {step} slow {index}")


# ------------------------------------------------------------------ the paper's algorithm box
def absent(step: int, index: int) -> bool:
    """Parameter 4 never has a gradient, parameter 1 only from step 10, others sometimes not."""
    if index == 4:
        return True
    if index == 1 and step < 10:
        return True
    return (3 * step + index) % 7 == 0


TORCH_CASES = [
    ("sgd_momentum", SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}, 5, 0.5),
    ("adam", Adam, torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.01}, 4, 0.6),
    ("adam_amsgrad", Adam, torch.optim.Adam, {"lr": 0.01, "amsgrad": True, "maximize": True}, 7, 0.2),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("name", "ours_cls", "torch_cls", "options", "k", "alpha"), TORCH_CASES,
                         ids=[c[0] for c in TORCH_CASES])  # fmt: skip
def test_matches_algorithm_1_around_torch(
    name: str, ours_cls: type, torch_cls: type, options: dict[str, Any], k: int, alpha: float, dtype: Any
) -> None:
    start = initial(dtype, seed=3)
    ours_params = [ExTensor(x.copy(), requires_grad=True) for x in start]
    theirs_params = [torch.tensor(x.copy(), requires_grad=True) for x in start]
    groups = [[0, 1, 2], [3, 4]]
    inner = ours_cls([{"params": [ours_params[i] for i in groups[0]], "lr": options["lr"] * 2},
                      {"params": [ours_params[i] for i in groups[1]]}], **options)  # fmt: skip
    ours = Lookahead(inner, k=k, alpha=alpha)
    their_groups = [{"params": [theirs_params[i] for i in groups[0]], "lr": options["lr"] * 2},
                    {"params": [theirs_params[i] for i in groups[1]]}]  # fmt: skip
    theirs = torch_cls(their_groups, **options, foreach=False)
    scheduler = StepLR(ours, step_size=40, gamma=0.5)
    their_scheduler = torch.optim.lr_scheduler.StepLR(theirs, step_size=40, gamma=0.5)
    slow = [p.detach().clone() for p in theirs_params]  # Algorithm 1: φ₀ = θ₀
    for step in range(STEPS):
        for index, (mine, their, g) in enumerate(zip(ours_params, theirs_params, gradients(step, dtype, 3),
                                                     strict=True)):  # fmt: skip
            missing = absent(step, index)
            mine.grad = None if missing else g
            their.grad = None if missing else torch.from_numpy(g.copy())
        ours.step()
        theirs.step()
        if (step + 1) % k == 0:  # the outer loop of Algorithm 1
            with torch.no_grad():
                for fast, phi in zip(theirs_params, slow, strict=True):
                    phi += alpha * (fast - phi)
                    fast.copy_(phi)
        scheduler.step()
        their_scheduler.step()
        assert [g["lr"] for g in ours.param_groups] == [g["lr"] for g in theirs.param_groups]
        if step % 20 == 0 or step == STEPS - 1:
            for index, (mine, their, phi) in enumerate(zip(ours_params, theirs_params, slow, strict=True)):
                assert_close(mine.data, their, f"step {step} fast {index}")
                assert_close(ours.state[mine][SLOW_KEY], phi, f"step {step} slow {index}")
    np.testing.assert_array_equal(ours_params[4].data, start[4])  # never a gradient: fast = slow = θ₀
    state = ours.state_dict()
    reference = theirs.state_dict()
    for index, entry in reference["state"].items():
        assert list(state["state"][index]) == [*entry, SLOW_KEY]
    assert [g["lookahead_step"] for g in state["param_groups"]] == [STEPS, STEPS]


# ----------------------------------------------------------------------- state dict, interface
def make(dtype: Any = np.float64, k: int = 5, alpha: float = 0.5) -> tuple[Lookahead, list[ExTensor]]:
    params = [ExTensor(x.copy(), requires_grad=True) for x in initial(dtype, seed=9)]
    inner = Adam([{"params": params[:3], "lr": 0.02}, {"params": params[3:], "lookahead_k": 3}], lr=0.01)
    return Lookahead(inner, k=k, alpha=alpha), params


def feed(params: list[ExTensor], step: int) -> None:
    for index, (param, g) in enumerate(zip(params, gradients(step, params[0].dtype, 9), strict=True)):
        param.grad = None if absent(step, index) else g


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_state_dict_round_trip_continues_bit_identically(dtype: Any) -> None:
    first, params = make(dtype)
    for step in range(57):  # not a multiple of either group's k
        feed(params, step)
        first.step()
    saved = first.state_dict()
    assert saved["param_groups"][1]["lookahead_k"] == 3 and saved["param_groups"][0]["lookahead_k"] == 5
    assert all(SLOW_KEY in entry for entry in saved["state"].values()) and len(saved["state"]) == len(params)
    second, copies = make(dtype, k=2, alpha=0.9)
    for param, copy_ in zip(params, copies, strict=True):
        copy_.data = param.data
    second.load_state_dict(saved)
    for step in range(57, 100):
        feed(params, step)
        feed(copies, step)
        first.step()
        second.step()
    for index, (param, copy_) in enumerate(zip(params, copies, strict=True)):
        np.testing.assert_array_equal(copy_.data, param.data, err_msg=f"fast {index}")
        np.testing.assert_array_equal(second.state[copy_][SLOW_KEY], first.state[param][SLOW_KEY])
    np.testing.assert_array_equal(saved["state"][0][SLOW_KEY], saved["state"][0][SLOW_KEY].copy())


def test_load_state_dict_validates_before_writing() -> None:
    lookahead, params = make()
    for step in range(7):
        feed(params, step)
        lookahead.step()
    good = lookahead.state_dict()
    before = lookahead.state_dict()
    bad_shape = {**good, "state": {**good["state"], 0: {**good["state"][0], SLOW_KEY: np.zeros(3)}}}
    bad_dtype = {
        **good,
        "state": {
            **good["state"],
            0: {**good["state"][0], SLOW_KEY: good["state"][0][SLOW_KEY].astype(np.float32)},
        },
    }
    bad_k = {**good, "param_groups": [{**good["param_groups"][0], "lookahead_k": 0}, good["param_groups"][1]]}
    bad_alpha = {
        **good,
        "param_groups": [{**good["param_groups"][0], "lookahead_alpha": 2.0}, good["param_groups"][1]],
    }
    bad_inner = {**good, "state": {**good["state"], 0: {**good["state"][0], "exp_avg": np.zeros(3)}}}
    for state, error, match in (
        (bad_shape, ValueError, "lookahead_slow_buff' has shape"),
        (bad_dtype, TypeError, "dtype"),
        (bad_k, ValueError, "Invalid lookahead steps k in loaded parameter group 0: 0"),
        (bad_alpha, ValueError, "Invalid slow update rate alpha in loaded parameter group 0"),
        (bad_inner, ValueError, "'exp_avg' has shape"),
        ({"state": {}}, ValueError, "no 'param_groups'"),
        ({"state": {}, "param_groups": good["param_groups"][:1]}, ValueError, "1 parameter groups"),
    ):
        with pytest.raises(error, match=match):
            lookahead.load_state_dict(state)
        after = lookahead.state_dict()
        for index, entry in before["state"].items():
            for key, value in entry.items():
                np.testing.assert_array_equal(after["state"][index][key], value)
        assert after["param_groups"] == before["param_groups"]
    inner_only = lookahead.optimizer.state_dict()  # no slow weights: they restart at the parameters
    lookahead.load_state_dict(inner_only)
    np.testing.assert_array_equal(lookahead.state[params[0]][SLOW_KEY], params[0].data)


def test_schedulers_drive_the_lookahead() -> None:
    lookahead, params = make()
    scheduler = StepLR(lookahead, step_size=2, gamma=0.1)
    assert lookahead.param_groups is lookahead.optimizer.param_groups
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for step in range(4):
            feed(params, step)
            lookahead.step()
            scheduler.step()
    assert [g["lr"] for g in lookahead.optimizer.param_groups] == pytest.approx([0.02 * 0.01, 0.01 * 0.01])
    early, _ = make()
    early_scheduler = StepLR(early, step_size=2)
    with pytest.warns(UserWarning, match=r"lr_scheduler.step\(\)` before `optimizer.step\(\)"):
        early_scheduler.step()


def test_interface_closure_zero_grad_add_group_and_state() -> None:
    lookahead, params = make(k=2, alpha=0.25)
    assert (lookahead.k, lookahead.alpha) == (2, 0.25)
    feed(params, 0)
    assert lookahead.step(lambda: 3.5) == 3.5
    lookahead.zero_grad()
    assert all(p.grad is None for p in params)
    extra = ExTensor(np.arange(4.0), requires_grad=True)
    lookahead.add_param_group({"params": [extra], "lr": 0.1, "lookahead_alpha": 1.0})
    group = lookahead.param_groups[-1]
    assert (group["lookahead_k"], group["lookahead_alpha"], group["lookahead_step"]) == (2, 1.0, 0)
    np.testing.assert_array_equal(lookahead.state[extra][SLOW_KEY], np.arange(4.0))
    assert list(lookahead.state[extra]) == [SLOW_KEY]  # never stepped by the inner optimizer
    assert set(lookahead.state[params[2]]) == {"step", "exp_avg", "exp_avg_sq", SLOW_KEY}
    assert len(lookahead.state) == len(params) + 1 and extra in lookahead.state
    lookahead.state[extra][SLOW_KEY][...] = 7.0  # live views
    extra.grad = np.ones(4)
    for _ in range(2):
        lookahead.step()
    np.testing.assert_array_equal(extra.data, lookahead.state[extra][SLOW_KEY])  # alpha = 1: slow = fast
    inner_group = lookahead.optimizer.param_groups[0]  # alpha = 0.25 in the first group, k = 2
    inner_group["lookahead_alpha"] = 0.0  # changed between steps, like an lr: fast returns to slow
    before = lookahead.state[params[0]][SLOW_KEY].copy()
    for step in range(2 - inner_group["lookahead_step"] % 2):  # up to the next synchronisation
        feed(params, step + 1)
        lookahead.step()
    np.testing.assert_array_equal(params[0].data, before)
    assert "Lookahead(k=2, alpha=0.25" in repr(lookahead)
    with pytest.raises(NotImplementedError, match="ShardedOptimizer"):
        lookahead._step_pack(lookahead.param_groups[0], lookahead._packs[0][0])


def test_bad_arguments_are_refused() -> None:
    params = [ExTensor(np.zeros(3), requires_grad=True)]
    inner = SGD(params, lr=0.1)
    for kwargs, error, match in (
        ({"k": 0}, ValueError, r"Invalid lookahead steps k: 0 \(expected k >= 1\)"),
        ({"k": -2}, ValueError, "Invalid lookahead steps k"),
        ({"k": 2.5}, TypeError, "Invalid lookahead steps k: 2.5"),
        ({"k": True}, TypeError, "Invalid lookahead steps k"),
        ({"alpha": -0.1}, ValueError, r"Invalid slow update rate alpha: -0.1 \(expected 0 <= alpha <= 1\)"),
        ({"alpha": 1.5}, ValueError, "Invalid slow update rate alpha: 1.5"),
        ({"alpha": float("nan")}, ValueError, "Invalid slow update rate alpha: nan"),
        ({"alpha": "0.5"}, TypeError, "Invalid slow update rate alpha"),
    ):
        with pytest.raises(error, match=match):
            Lookahead(inner, **kwargs)
    assert "lookahead_k" not in inner.param_groups[0]
    with pytest.raises(TypeError, match="wraps an extensor"):
        Lookahead(torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="already a Lookahead"):
        Lookahead(Lookahead(inner))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="in param group 0"):
        Lookahead(SGD([{"params": [ExTensor(np.zeros(2), requires_grad=True)], "lookahead_k": 0}], lr=0.1))
    lookahead = Lookahead(SGD([ExTensor(np.zeros(2), requires_grad=True)], lr=0.1))
    with pytest.raises(ValueError, match="in the new param group"):
        lookahead.add_param_group(
            {"params": [ExTensor(np.zeros(2), requires_grad=True)], "lookahead_alpha": 3}
        )
    assert len(lookahead.param_groups) == 1
