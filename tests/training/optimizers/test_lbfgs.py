"""LBFGS against torch.optim.LBFGS: iterates, losses and state on fixed closures; state dicts; bad input."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import extensor.nn as xnn
from extensor.autograd.tape import Tape
from extensor.core.tensor import ExTensor
from extensor.training.optimizers.lbfgs import LBFGS
from extensor.training.schedulers import StepLR

RTOL = {np.float64: 1e-10, np.float32: 1e-5}


class Problem:
    """A deterministic objective with the same parameters in extensor and torch.

    `ours_loss()` / `theirs_loss()` compute the loss from the current parameters (ours inside a
    Tape). The quadratic also holds a parameter the loss never uses (its gradient stays None).
    """

    def __init__(self, kind: str, dtype: Any) -> None:
        rng = np.random.default_rng(3)
        self.kind, self.dtype = kind, dtype
        if kind == "mlp":
            self.net = xnn.Sequential(
                xnn.Linear(3, 6, dtype=dtype, generator=rng),
                xnn.Tanh(),
                xnn.Linear(6, 1, dtype=dtype, generator=rng),
            )
            self.torch_net = torch.nn.Sequential(
                torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1)
            )
            self.torch_net.to(torch.float64 if dtype == np.float64 else torch.float32)
            with torch.no_grad():
                for mine, theirs in zip(self.net.parameters(), self.torch_net.parameters(), strict=True):
                    theirs.copy_(torch.from_numpy(mine.data.copy()))
            self.x = rng.standard_normal((16, 3)).astype(dtype)
            self.y = np.sin(self.x.sum(axis=1, keepdims=True)).astype(dtype)
            self.ours = list(self.net.parameters())
            self.theirs = list(self.torch_net.parameters())
            return
        if kind == "quadratic":
            initial = [rng.standard_normal((5, 3)), rng.standard_normal(8), rng.standard_normal(2)]
            root = rng.standard_normal((3, 3))
            self.S = (root @ root.T + 0.3 * np.eye(3)).astype(dtype)
            self.c = rng.standard_normal((5, 3)).astype(dtype)
            self.w = np.geomspace(0.2, 20.0, 8).astype(dtype)
        else:  # Rosenbrock in 6 dimensions, from a point off the valley
            initial = [np.array([-1.2, 1.0, -0.5, 0.8, 1.3, 0.4])]
        initial = [v.astype(dtype) for v in initial]
        self.ours = [ExTensor(v.copy(), requires_grad=True) for v in initial]
        self.theirs = [torch.tensor(v.copy(), requires_grad=True) for v in initial]

    def loss(self, params: list[Any], lib: Any) -> Any:
        if self.kind == "quadratic":
            x1, x2 = params[0], params[1]
            S, c, w = (lib(a) for a in (self.S, self.c, self.w))
            return (
                0.5 * ((x1 @ S) * x1).sum()
                + (c * x1).sum()
                + 0.5 * (w * x2 * x2).sum()
                + 0.1 * (x1.sum() * x2.sum())
            )
        x = params[0]
        return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()

    def ours_loss(self) -> ExTensor:
        if self.kind == "mlp":
            return xnn.MSELoss()(self.net(self.x), self.y)
        return self.loss(self.ours, lambda a: a)

    def theirs_loss(self) -> torch.Tensor:
        if self.kind == "mlp":
            return torch.nn.functional.mse_loss(
                self.torch_net(torch.from_numpy(self.x)), torch.from_numpy(self.y)
            )
        return self.loss(self.theirs, torch.from_numpy)


def closures(
    problem: Problem, ours: LBFGS, theirs: torch.optim.LBFGS
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    def mine() -> ExTensor:
        ours.zero_grad()
        tape = Tape()
        with tape:
            loss = problem.ours_loss()
        tape.backward(loss)
        return loss

    def reference() -> torch.Tensor:
        theirs.zero_grad()
        loss = problem.theirs_loss()
        loss.backward()
        return loss

    return mine, reference


def assert_close(ours: Any, theirs: Any, dtype: Any, what: str) -> None:
    reference = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    ours = np.asarray(ours)
    assert ours.shape == reference.shape, what
    rtol = RTOL[dtype]
    scale = max(float(np.max(np.abs(reference), initial=0.0)), 1e-300)
    np.testing.assert_allclose(ours, reference, rtol=rtol, atol=rtol * scale, err_msg=what)


def assert_state_like_torch(
    ours: LBFGS, theirs: torch.optim.LBFGS, dtype: Any, what: str, scales: dict[str, float] | None = None
) -> None:
    """Our state_dict is torch's: keys in order, counters equal, values close.

    The vectors (directions, gradients, pairs) are compared with an absolute tolerance relative to
    the largest magnitude torch's vector of that key had so far in the run (`scales`, updated
    here): near the optimum a gradient is as accurate as the iterate, not relative to itself.
    """
    scales = {} if scales is None else scales
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert sorted(mine["state"]) == sorted(reference["state"]) == [0], what
    a, b = mine["state"][0], reference["state"][0]
    assert list(a) == list(b), f"{what}: state keys"
    assert (a["func_evals"], a["n_iter"]) == (b["func_evals"], b["n_iter"]), what
    if "d" not in b:
        return
    assert len(a["old_dirs"]) == len(b["old_dirs"]) == len(a["ro"]) == len(b["ro"]), what
    rtol = RTOL[dtype]

    def vectors_close(key: str, x: Any, y: torch.Tensor, label: str) -> None:
        y_array = y.numpy()
        scale = scales[key] = max(scales.get(key, 0.0), float(np.max(np.abs(y_array))))
        assert x.dtype == y_array.dtype, label
        np.testing.assert_allclose(x, y_array, rtol=rtol, atol=rtol * scale, err_msg=label)

    scales["old_dirs"] = max(scales.get("old_dirs", 0.0), scales.get("prev_flat_grad", 0.0))
    for key in ("d", "prev_flat_grad"):
        vectors_close(key, a[key], b[key], f"{what}: {key}")
    for key in ("old_dirs", "old_stps"):
        for i, (x, y) in enumerate(zip(a[key], b[key], strict=True)):
            vectors_close(key, x, y, f"{what}: {key}[{i}]")
    for key in ("t", "H_diag", "prev_loss"):
        assert_close(
            np.asarray(a[key], dtype=dtype), np.asarray(b[key], dtype=dtype), dtype, f"{what}: {key}"
        )
    for i, (x, y) in enumerate(zip(a["ro"], b["ro"], strict=True)):
        assert_close(x, y, dtype, f"{what}: ro[{i}]")
    if "al" in b:
        assert [v is None for v in a["al"]] == [v is None for v in b["al"]], what
    assert [k for k, v in mine["param_groups"][0].items() if k != "params"] == [
        k for k in reference["param_groups"][0] if k != "params"
    ]
    assert {k: v for k, v in mine["param_groups"][0].items()} == reference["param_groups"][0]


def run_parity(kind: str, dtype: Any, steps: int, lr_change: float | None = None, **options: Any) -> None:
    problem = Problem(kind, dtype)
    ours = LBFGS(problem.ours, **options)
    theirs = torch.optim.LBFGS(problem.theirs, **options)
    mine, reference = closures(problem, ours, theirs)
    # the scales of the state vectors: steps like the parameters, gradients like the first one
    reference()
    step_scale = max(float(q.detach().abs().max()) for q in problem.theirs)
    grad_scale = max(float(q.grad.abs().max()) for q in problem.theirs if q.grad is not None)
    scales = {"d": step_scale, "old_stps": step_scale, "prev_flat_grad": grad_scale, "old_dirs": grad_scale}
    for step in range(steps):
        if lr_change is not None and step == steps // 2:
            ours.param_groups[0]["lr"] *= lr_change
            theirs.param_groups[0]["lr"] *= lr_change
        got, expected = ours.step(mine), theirs.step(reference)
        what = f"{kind} {np.dtype(dtype)} {options} step {step}"
        assert isinstance(got, ExTensor)
        assert_close(float(got), float(expected.detach()), dtype, f"{what}: loss")
        for index, (p, q) in enumerate(zip(problem.ours, problem.theirs, strict=True)):
            assert_close(p.data, q, dtype, f"{what}: parameter {index}")
            assert (p.grad is None) == (q.grad is None)
        assert_state_like_torch(ours, theirs, dtype, what, scales)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("history_size", [2, 100])
@pytest.mark.parametrize(
    ("kind", "lr", "max_iter", "steps"),
    [("quadratic", 1.0, 6, 4), ("rosenbrock", 1.0, 4, 5), ("mlp", 1.0, 5, 5)],
)
def test_parity_float64(
    kind: str, lr: float, max_iter: int, steps: int, line_search_fn: Any, history_size: int
) -> None:
    run_parity(
        kind, np.float64, steps, lr_change=0.5, lr=lr, max_iter=max_iter,
        history_size=history_size, line_search_fn=line_search_fn,
    )  # fmt: skip


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("history_size", [2, 100])
@pytest.mark.parametrize("kind", ["quadratic", "mlp"])
def test_parity_float32(kind: str, line_search_fn: Any, history_size: int) -> None:
    run_parity(
        kind, np.float32, 2, lr=0.8, max_iter=3, history_size=history_size, line_search_fn=line_search_fn
    )


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_converges_with_torch_and_stops_on_tolerances(line_search_fn: Any) -> None:
    """A long run on the quadratic reaches the minimum; tolerance breaks and max_eval happen as in torch."""
    run_parity("quadratic", np.float64, 3, max_iter=40, max_eval=50, line_search_fn=line_search_fn)
    run_parity("rosenbrock", np.float64, 2, max_iter=10, max_eval=7, line_search_fn=line_search_fn)
    run_parity(
        "quadratic", np.float64, 2, tolerance_grad=1e-2, tolerance_change=1e-3, line_search_fn=line_search_fn
    )


def test_zero_gradient_returns_at_once_like_torch() -> None:
    p, q = ExTensor(np.ones(3), requires_grad=True), torch.ones(3, dtype=torch.float64, requires_grad=True)
    ours, theirs = LBFGS([p]), torch.optim.LBFGS([q])
    calls = []

    def mine() -> float:
        calls.append(1)
        ours.zero_grad()
        p.grad = np.zeros(3)
        return 2.5

    def reference() -> float:
        q.grad = torch.zeros(3, dtype=torch.float64)
        return 2.5

    assert ours.step(mine) == 2.5 == theirs.step(reference)
    assert calls == [1]
    assert ours.state_dict()["state"] == {0: {"func_evals": 1, "n_iter": 0}} == theirs.state_dict()["state"]
    assert p in ours.state and len(ours.state) == 1
    np.testing.assert_array_equal(p.data, 1.0)


def make_run(line_search_fn: Any, history_size: int = 3) -> tuple[Problem, LBFGS, Callable[[], Any]]:
    problem = Problem("mlp", np.float64)
    ours = LBFGS(problem.ours, max_iter=4, history_size=history_size, line_search_fn=line_search_fn)
    theirs = torch.optim.LBFGS(problem.theirs)  # unused: closures() wants one
    return problem, ours, closures(problem, ours, theirs)[0]


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_state_dict_round_trip_continues_identically(line_search_fn: Any) -> None:
    problem, ours, closure = make_run(line_search_fn)
    for _ in range(3):
        ours.step(closure)
    saved = ours.state_dict()
    values = [p.data.copy() for p in problem.ours]
    snapshot = copy.deepcopy(saved)

    twin, other, other_closure = make_run(line_search_fn, history_size=7)  # history comes from the dict
    for p, value in zip(twin.ours, values, strict=True):
        p.data = value
    other.load_state_dict(saved)
    assert other.param_groups[0]["history_size"] == 3
    for _ in range(3):
        ours.step(closure)
        other.step(other_closure)
        for p, q in zip(problem.ours, twin.ours, strict=True):
            np.testing.assert_array_equal(p.data, q.data)
    a, b = ours.state_dict()["state"][0], other.state_dict()["state"][0]
    assert list(a) == list(b)
    for key in a:
        if isinstance(a[key], list):
            for x, y in zip(a[key], b[key], strict=True):
                assert (x is None and y is None) or np.array_equal(x, y)
        else:
            np.testing.assert_array_equal(a[key], b[key])
    # the snapshot did not move with the run
    for key, value in snapshot["state"][0].items():
        if not isinstance(value, list):
            np.testing.assert_array_equal(saved["state"][0][key], value)


def test_loads_torch_state_dict_and_continues_like_torch() -> None:
    problem = Problem("rosenbrock", np.float64)
    options = {"max_iter": 3, "history_size": 4, "line_search_fn": "strong_wolfe"}
    ours, theirs = LBFGS(problem.ours, **options), torch.optim.LBFGS(problem.theirs, **options)
    mine, reference = closures(problem, ours, theirs)
    for _ in range(2):
        theirs.step(reference)
    for p, q in zip(problem.ours, problem.theirs, strict=True):
        p.data = q.detach().numpy().copy()
    ours.load_state_dict(theirs.state_dict())
    assert_state_like_torch(ours, theirs, np.float64, "loaded")
    for step in range(3):
        ours.step(mine)
        theirs.step(reference)
        assert_close(problem.ours[0].data, problem.theirs[0], np.float64, f"step {step} after loading")
        assert_state_like_torch(ours, theirs, np.float64, f"step {step} after loading")


def test_live_state_and_fresh_load() -> None:
    problem, ours, closure = make_run(None)
    assert len(ours.state) == 0 and ours.state_dict()["state"] == {}
    ours.step(closure)
    state = ours.state[problem.ours[0]]
    assert ours.state[problem.ours[1]] == {}
    assert list(ours.state) == [problem.ours[0]]
    state["d"][:] = 0  # a live view, as torch's state tensors
    np.testing.assert_array_equal(ours.state_dict()["state"][0]["d"], 0)
    fresh = LBFGS(problem.ours).state_dict()
    ours.load_state_dict(fresh)
    assert len(ours.state) == 0 and ours.state_dict()["state"] == {}


def corrupt(saved: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    bad = copy.deepcopy(saved)
    change(bad["state"][0])
    return bad


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda s: s.update(bogus=1), ValueError, "unknown keys"),
        (lambda s: s.pop("prev_loss"), ValueError, "lacks"),
        (lambda s: s.update(d=s["d"][:-1]), ValueError, "'d' must be a vector"),
        (lambda s: s.update(d=s["d"].astype(np.float32)), ValueError, "float64"),
        (lambda s: s.update(n_iter=-1), ValueError, "non-negative integer"),
        (lambda s: s["old_dirs"].pop(), ValueError, "one length"),
        (lambda s: s.update(t="x"), ValueError, "'t' must be one real number"),
        (lambda s: s.update(al=s["al"][:-1]), ValueError, "'al' must be a list"),
        (
            lambda s: [s[k].extend(s[k][:2]) for k in ("old_dirs", "old_stps", "ro")],
            ValueError,
            "more than history_size",
        ),
    ],
)
def test_bad_state_dict_leaves_optimizer_unchanged(change: Any, error: type, match: str) -> None:
    _, ours, closure = make_run(None)
    for _ in range(3):
        ours.step(closure)
    before = ours.state_dict()
    with pytest.raises(error, match=match):
        ours.load_state_dict(corrupt(before, change))
    after = ours.state_dict()
    assert list(after["state"][0]) == list(before["state"][0])
    np.testing.assert_array_equal(after["state"][0]["d"], before["state"][0]["d"])
    assert after["state"][0]["n_iter"] == before["state"][0]["n_iter"]
    assert after["param_groups"] == before["param_groups"]
    other = copy.deepcopy(before)
    other["state"][1] = {"func_evals": 1, "n_iter": 0}
    with pytest.raises(ValueError, match="first parameter"):
        ours.load_state_dict(other)


def test_history_size_change_between_steps_keeps_newest_pairs() -> None:
    """torch breaks when history_size changes mid-run; we re-lay the ring out, keeping the newest pairs."""
    _, ours, closure = make_run(None, history_size=3)
    ours.step(closure)
    before = ours.state_dict()["state"][0]
    assert len(before["old_dirs"]) == 3
    memory = ours._memory
    assert memory is not None
    memory.resize(2)
    after = ours.state_dict()["state"][0]
    for key in ("old_dirs", "old_stps", "ro"):
        assert len(after[key]) == 2
        for x, y in zip(after[key], before[key][-2:], strict=True):
            np.testing.assert_array_equal(x, y)
    assert len(after["al"]) == 2
    ours.param_groups[0]["history_size"] = 4
    ours.step(closure)  # grown again by step(), then run on
    assert len(ours.state_dict()["state"][0]["old_dirs"]) == 4
    assert len(ours.state_dict()["state"][0]["al"]) == 4


def test_bad_input_is_refused_naming_the_value() -> None:
    p = ExTensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match=r"Invalid learning rate: -1\.0"):
        LBFGS([p], lr=-1.0)
    with pytest.raises(ValueError, match="Invalid max_iter value: 0"):
        LBFGS([p], max_iter=0)
    with pytest.raises(TypeError, match=r"max_iter must be an integer, got 2\.5"):
        LBFGS([p], max_iter=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Invalid max_eval value: 0"):
        LBFGS([p], max_eval=0)
    with pytest.raises(ValueError, match="Invalid history_size value: 0"):
        LBFGS([p], history_size=0)
    with pytest.raises(TypeError, match="tolerance_grad must be a real number"):
        LBFGS([p], tolerance_grad="small")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'armijo'; only 'strong_wolfe' is supported"):
        LBFGS([p], line_search_fn="armijo")
    q = ExTensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match=r"LBFGS doesn't support per-parameter options \(parameter groups\)"):
        LBFGS([{"params": [p]}, {"params": [q]}])
    with pytest.raises(TypeError, match="one dtype"):
        LBFGS([p, ExTensor(np.ones(2, np.float32), requires_grad=True)])
    assert p.grad_slot is None  # nothing was packed by a refused constructor
    ours = LBFGS([p])
    assert ours.defaults["max_eval"] == 25 and LBFGS([q], max_iter=7).defaults["max_eval"] == 8
    with pytest.raises(ValueError, match="per-parameter options"):
        ours.add_param_group({"params": [ExTensor(np.ones(2), requires_grad=True)]})
    with pytest.raises(TypeError, match=r"needs a closure .* got None"):
        ours.step()
    with pytest.raises(TypeError, match=r"closure must return the loss .* got None"):
        ours.step(lambda: None)
    ours.param_groups[0]["line_search_fn"] = "wolfe"
    with pytest.raises(ValueError, match="only 'strong_wolfe' is supported"):
        ours.step(lambda: 1.0)


def test_scheduler_sees_the_first_step() -> None:
    _, ours, closure = make_run(None)
    scheduler = StepLR(ours, 1, gamma=0.5)
    ours.step(closure)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scheduler.step()
    assert ours.param_groups[0]["lr"] == 0.5
