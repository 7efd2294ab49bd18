"""The optimizer interface: constructors, validation like torch, groups, gradients, zero_grad, subclassing."""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from extensor.autograd import Tape
from extensor.core.tensor import ExTensor
from extensor.training.optimizers import LARS, SGD, Adam, AdamW, Optimizer, ParamGroup, RMSprop, Run

EMPTY = inspect.Parameter.empty
POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD
KEYWORD = inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (
            SGD,
            [("lr", EMPTY, POSITIONAL), ("momentum", 0.0, POSITIONAL), ("weight_decay", 0.0, POSITIONAL),
             ("nesterov", False, POSITIONAL), ("dampening", 0.0, KEYWORD), ("maximize", False, KEYWORD),
             ("state_dtype", None, KEYWORD)],
        ),
        (
            Adam,
            [("lr", 0.001, POSITIONAL), ("betas", (0.9, 0.999), POSITIONAL), ("eps", 1e-8, POSITIONAL),
             ("weight_decay", 0.0, POSITIONAL), ("amsgrad", False, KEYWORD), ("maximize", False, KEYWORD),
             ("state_dtype", None, KEYWORD)],
        ),
        (
            AdamW,
            [("lr", 0.001, POSITIONAL), ("betas", (0.9, 0.999), POSITIONAL), ("eps", 1e-8, POSITIONAL),
             ("weight_decay", 0.01, POSITIONAL), ("amsgrad", False, KEYWORD), ("maximize", False, KEYWORD),
             ("state_dtype", None, KEYWORD)],
        ),
        (
            RMSprop,
            [("lr", 0.01, POSITIONAL), ("alpha", 0.99, POSITIONAL), ("eps", 1e-8, POSITIONAL),
             ("momentum", 0.0, POSITIONAL), ("weight_decay", 0.0, POSITIONAL), ("centered", False, KEYWORD),
             ("maximize", False, KEYWORD), ("state_dtype", None, KEYWORD)],
        ),
        (
            LARS,
            [("lr", EMPTY, POSITIONAL), ("momentum", 0.9, POSITIONAL), ("weight_decay", 0.0, POSITIONAL),
             ("trust_coefficient", 0.001, POSITIONAL), ("nesterov", False, KEYWORD),
             ("dampening", 0.0, KEYWORD), ("eps", 0.0, KEYWORD), ("trust_clip", False, KEYWORD),
             ("state_dtype", None, KEYWORD)],
        ),
    ],
)  # fmt: skip
def test_constructors_follow_the_seed(cls: type, expected: list[tuple[str, Any, Any]]) -> None:
    parameters = list(inspect.signature(cls).parameters.values())
    assert parameters[0].name == "params"
    assert [(p.name, p.default, p.kind) for p in parameters[1:]] == expected


def param(shape: tuple[int, ...] = (2,), dtype: Any = np.float32) -> ExTensor:
    return ExTensor(np.ones(shape, dtype=dtype), requires_grad=True)


# ----------------------------------------------------------------------------- hyperparameters
HYPER = {
    SGD: (torch.optim.SGD, {"lr": 0.1}, ["lr", "momentum", "weight_decay", "dampening"]),
    Adam: (torch.optim.Adam, {}, ["lr", "eps", "weight_decay", "beta1", "beta2"]),
    AdamW: (torch.optim.AdamW, {}, ["lr", "eps", "weight_decay", "beta1", "beta2"]),
    RMSprop: (torch.optim.RMSprop, {}, ["lr", "alpha", "eps", "momentum", "weight_decay"]),
    # torch has no LARS: its shared options are validated as torch's SGD validates them
    LARS: (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}, ["lr", "momentum", "weight_decay", "dampening"]),
}

values = st.one_of(
    st.sampled_from([-1.0, -1e-12, -0.0, 0.0, 1e-12, 0.5, 0.999, 1.0, 1.5, math.inf, -math.inf]),
    st.floats(-2.0, 2.0, allow_nan=False),
)


@settings(max_examples=150, deadline=None)
@given(
    cls=st.sampled_from(sorted(HYPER, key=lambda c: c.__name__)),
    data=st.data(),
    value=values,
    nesterov=st.booleans(),
)
def test_invalid_hyperparameters_raise_exactly_when_torch_does(
    cls: type, data: Any, value: float, nesterov: bool
) -> None:
    torch_cls, base, names = HYPER[cls]
    name = data.draw(st.sampled_from(names))
    options = dict(base)
    if name in ("beta1", "beta2"):
        options["betas"] = (value, 0.999) if name == "beta1" else (0.9, value)
    else:
        options[name] = value
    if cls in (SGD, LARS):
        options["nesterov"] = nesterov
    try:
        torch_cls([torch.zeros(2, requires_grad=True)], **options)
        torch_error = None
    except ValueError as error:
        torch_error = error
    if torch_error is None:
        cls([param()], **options)
    else:
        with pytest.raises(ValueError) as caught:
            cls([param()], **options)
        # torch's message, naming the value, is the start of ours
        assert str(caught.value).startswith(str(torch_error).split(" (")[0])


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW, RMSprop, LARS], ids=lambda c: c.__name__)
def test_nan_hyperparameters_are_refused(cls: type) -> None:
    """Torch's SGD lets a NaN lr, momentum or weight decay through (it tests ``x < 0``); we refuse
    NaN everywhere, as torch's Adam does for lr (``not 0 <= lr``): it could only poison the weights."""
    names = ["lr", "weight_decay"] + (["momentum"] if cls in (SGD, RMSprop, LARS) else ["eps"])
    for name in names:
        options = {"lr": 0.1, name: math.nan}
        with pytest.raises(ValueError, match="nan"):
            cls([param()], **options)


def test_lars_validation() -> None:
    for options, message in [
        ({"lr": -1.0}, "Invalid learning rate: -1.0"),
        ({"lr": 0.1, "momentum": -0.1}, "Invalid momentum value: -0.1"),
        ({"lr": 0.1, "weight_decay": -2.0}, "Invalid weight_decay value: -2.0"),
        ({"lr": 0.1, "trust_coefficient": -0.5}, "Invalid trust_coefficient value: -0.5"),
        ({"lr": 0.1, "eps": -1e-9}, "Invalid epsilon value: -1e-09"),
        ({"lr": 0.1, "momentum": 0.0, "nesterov": True}, "Nesterov momentum requires"),
        ({"lr": 0.1, "dampening": 0.1, "nesterov": True}, "Nesterov momentum requires"),
    ]:
        with pytest.raises(ValueError, match=message):
            LARS([param()], **options)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"lr": "0.1"}, TypeError, "lr must be a real number, got '0.1'"),
        ({"lr": True}, TypeError, "lr must be a real number"),
        ({"lr": 0.1, "nesterov": 1}, TypeError, "nesterov must be a bool"),
        ({"lr": 0.1, "momentum": None}, TypeError, "momentum must be a real number, got None"),
    ],
)
def test_hyperparameter_types(options: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        SGD([param()], **options)


def test_betas_must_be_a_pair() -> None:
    with pytest.raises(TypeError, match="betas must be a pair"):
        Adam([param()], betas=(0.9,))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- parameters
def test_invalid_parameter_lists() -> None:
    p = param()
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([{"params": []}], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        SGD([{"params": [p]}, {"params": [param(), p]}], lr=0.1)
    with pytest.raises(TypeError, match="set"):
        SGD({p}, lr=0.1)
    with pytest.raises(TypeError, match="single ExTensor"):
        SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="is a ndarray"):
        SGD([np.ones(2)], lr=0.1)
    with pytest.raises(TypeError, match="dtype int64"):
        SGD([ExTensor(np.ones(2, dtype=np.int64))], lr=0.1)
    with pytest.raises(TypeError, match="dtype float16"):
        SGD([ExTensor(np.ones(2, dtype=np.float16))], lr=0.1)
    with pytest.raises(TypeError, match="mixes"):
        SGD([{"params": [p]}, param()], lr=0.1)
    with pytest.raises(ValueError, match="no 'params'"):
        SGD([{"lr": 0.1}], lr=0.1)
    x = param()
    with Tape():
        y = x * 2.0
    with pytest.raises(ValueError, match="non-leaf"):
        SGD([y], lr=0.1)


def test_groups_take_defaults_and_keep_extra_keys() -> None:
    a, b, c = param(), param(), param()
    optimizer = Adam(
        ({"params": [a], "lr": 0.5, "initial_lr": 0.5}, {"params": (t for t in [b, c])}), lr=0.01
    )
    first, second = optimizer.param_groups
    assert first["lr"] == 0.5 and first["initial_lr"] == 0.5 and first["betas"] == (0.9, 0.999)
    assert second["lr"] == 0.01 and second["params"] == [b, c]
    assert "Parameter Group 1" in repr(optimizer)


def test_add_param_group_validates_before_changing_anything() -> None:
    a, b = param(), param()
    optimizer = SGD([a], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="more than once"):
        optimizer.add_param_group({"params": [b, a]})
    with pytest.raises(ValueError, match="Invalid momentum value: -1"):
        optimizer.add_param_group({"params": [b], "momentum": -1.0})
    with pytest.raises(TypeError, match="must be a dict"):
        optimizer.add_param_group([b])  # type: ignore[arg-type]
    assert len(optimizer.param_groups) == 1 and b.grad_slot is None  # b was never bound
    optimizer.add_param_group({"params": b, "lr": 0.2})
    assert optimizer.param_groups[1]["params"] == [b] and optimizer.param_groups[1]["momentum"] == 0.9


def test_editing_param_groups_in_place_is_refused_not_ignored() -> None:
    """Torch steps a parameter appended to a group's list; packed groups cannot, so they say so."""
    a, b, c = param(), param(), param()
    optimizer = SGD([a], lr=0.1)
    before = a.data.copy()
    a.grad = np.ones_like(before)
    optimizer.param_groups[0]["params"].append(b)
    with pytest.raises(ValueError, match=r"\['params'\] holds 2 parameters but 1 were packed"):
        optimizer.step()
    with pytest.raises(ValueError, match="add_param_group"):
        optimizer.state_dict()
    np.testing.assert_array_equal(a.data, before)  # nothing was stepped
    optimizer.param_groups[0]["params"].pop()
    optimizer.param_groups.append({"params": [c], "lr": 0.1})
    with pytest.raises(ValueError, match="param_groups has 2 groups but 1 were added"):
        optimizer.step()
    optimizer.param_groups.pop()
    optimizer.step()
    np.testing.assert_allclose(a.data, before - 0.1)


# ----------------------------------------------------------------------------- gradients
def test_grad_assignment_between_steps_and_zero_grad_like_torch() -> None:
    ours_p = [param((3,), np.float64), param((2, 2), np.float64)]
    theirs_p = [
        torch.ones(3, dtype=torch.float64, requires_grad=True),
        torch.ones(2, 2, dtype=torch.float64, requires_grad=True),
    ]
    ours = SGD(ours_p, lr=0.1, momentum=0.9)
    theirs = torch.optim.SGD(theirs_p, lr=0.1, momentum=0.9)
    g = np.arange(3, dtype=np.float64)
    ours_p[0].grad = ExTensor(g)  # an ExTensor is accepted as a gradient value
    theirs_p[0].grad = torch.tensor(g)
    ours.step()
    theirs.step()
    ours.zero_grad(set_to_none=False)
    theirs.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(ours_p[0].grad, np.zeros(3))
    assert ours_p[1].grad is None and theirs_p[1].grad is None
    ours.step()  # a zero gradient still steps (momentum, decay), a None one does not
    theirs.step()
    ours.zero_grad()
    theirs.zero_grad()
    assert all(p.grad is None for p in ours_p)
    ours_p[1].grad = np.full((2, 2), 3.0)
    theirs_p[1].grad = torch.full((2, 2), 3.0, dtype=torch.float64)
    ours.step()
    theirs.step()
    for mine, their in zip(ours_p, theirs_p, strict=True):
        np.testing.assert_allclose(mine.data, their.detach().numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        ours_p[0].grad = np.ones(4)


def test_tape_accumulates_into_the_flat_buffer() -> None:
    """A training loop: the tape writes gradients into the optimizer's buffer; the result matches torch."""
    rng = np.random.default_rng(0)
    x_value = rng.standard_normal((5, 3))
    w0 = rng.standard_normal((3, 2))
    b0 = rng.standard_normal(2)
    w, b = ExTensor(w0.copy(), requires_grad=True), ExTensor(b0.copy(), requires_grad=True)
    tw, tb = torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    ours = AdamW([w, b], lr=0.05)
    theirs = torch.optim.AdamW([tw, tb], lr=0.05)
    x, tx = ExTensor(x_value), torch.tensor(x_value)
    for _ in range(5):
        tape = Tape()
        with tape:
            out = x @ w + b
            loss = (out * out).sum()
        ours.zero_grad()
        tape.backward(loss)
        ours.step()
        theirs.zero_grad()
        t_out = tx @ tw + tb
        (t_out * t_out).sum().backward()
        theirs.step()
    np.testing.assert_allclose(w.data, tw.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(b.data, tb.detach().numpy(), rtol=1e-10)


def test_closure_result_is_returned() -> None:
    p = param()
    optimizer = SGD([p], lr=0.1)
    calls: list[int] = []

    def closure() -> float:
        calls.append(1)
        p.grad = np.ones(2, dtype=np.float32)
        return 1.25

    assert optimizer.step(closure) == 1.25 and calls == [1]
    np.testing.assert_allclose(p.data, [0.9, 0.9])
    assert optimizer.step() is None


def test_a_parameter_taken_by_another_optimizer_stops_the_old_one() -> None:
    a, b = param(), param()
    first = SGD([a, b], lr=0.1)
    b.grad = np.ones(2, dtype=np.float32)
    second = Adam([b], lr=0.1)
    np.testing.assert_array_equal(b.grad, np.ones(2))  # the gradient moved along with the values
    with pytest.raises(RuntimeError, match="now managed by another optimizer"):
        first.step()
    with pytest.raises(RuntimeError, match="now managed by another optimizer"):
        first.zero_grad()
    second.step()
    np.testing.assert_array_equal(a.data, np.ones(2))


def test_zero_size_and_frozen_parameters() -> None:
    empty, frozen, live = param((0, 3)), ExTensor(np.ones(2, dtype=np.float32)), param((2,))
    optimizer = Adam([empty, frozen, live], lr=0.1)
    empty.grad = np.zeros((0, 3), dtype=np.float32)
    live.grad = np.ones(2, dtype=np.float32)
    optimizer.step()
    np.testing.assert_array_equal(frozen.data, np.ones(2))
    np.testing.assert_allclose(live.data, np.full(2, 0.9), rtol=1e-6)
    assert empty in optimizer.state and frozen not in optimizer.state


@settings(max_examples=25, deadline=None)
@given(
    shapes=st.lists(st.lists(st.integers(0, 4), max_size=3).map(tuple), min_size=1, max_size=4),
    dtype=st.sampled_from([np.float32, np.float64]),
    which=st.sampled_from(["SGD", "Adam", "AdamW", "RMSprop", "LARS"]),
    seed=st.integers(0, 1000),
)
def test_any_shapes_and_dtypes_match_torch(
    kit: Any, shapes: list[tuple[int, ...]], dtype: Any, which: str, seed: int
) -> None:
    ours_cls, torch_cls, options = {
        "SGD": (SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}),
        "Adam": (Adam, torch.optim.Adam, {"lr": 0.1, "amsgrad": True}),
        "AdamW": (AdamW, torch.optim.AdamW, {"lr": 0.1, "weight_decay": 0.1, "maximize": True}),
        "RMSprop": (RMSprop, torch.optim.RMSprop, {"lr": 0.01, "centered": True, "momentum": 0.5}),
        # LARS without its trust ratio is torch's SGD (its ratio is checked against a reference elsewhere)
        "LARS": (LARS, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    }[which]
    twins = kit.Twins(shapes, dtype, seed, absent=lambda step, index: (step + index + seed) % 3 == 0)
    ours = ours_cls(twins.ours, **options, **({"trust_coefficient": 0.0} if which == "LARS" else {}))
    theirs = torch_cls(twins.theirs, **options, foreach=False)
    for step in range(6):
        twins.feed(step)
        ours.step()
        theirs.step()
    twins.assert_params_close()


# ----------------------------------------------------------------------------- subclassing
class SignSGD(Optimizer):
    """Sign descent, p ← p − lr · sign(g): a whole optimizer in a few lines (with NumPy as the kernel)."""

    def __init__(self, params: Any, lr: float = 0.01) -> None:
        super().__init__(params, {"lr": lr})

    def _validate_group(self, group: Any) -> None:
        if not group["lr"] >= 0:
            raise ValueError(f"Invalid learning rate: {group['lr']}")

    def _update(self, group: ParamGroup, run: Run) -> None:
        run.param -= run.scalar(group["lr"]) * np.sign(run.grad)


def test_subclass_in_one_short_class(kit: Any) -> None:
    twins = kit.Twins(seed=6, absent=lambda step, index: index == 1 and step % 2 == 0)
    optimizer = SignSGD(kit.groups_of(twins.ours, [({"lr": 0.5}, [0, 1]), ({}, [2, 3, 4])]), lr=0.1)
    expected = [x.copy() for x in twins.initial]
    for step in range(4):
        twins.feed(step)
        optimizer.step()
        for index, g in enumerate(twins.gradients(step)):
            if g is not None:
                expected[index] -= (0.5 if index < 2 else 0.1) * np.sign(g)
    for tensor, value in zip(twins.ours, expected, strict=True):
        np.testing.assert_allclose(tensor.data, value, rtol=1e-12)
    saved = optimizer.state_dict()
    assert saved["state"][1] == {"step": np.float32(2)}
    with pytest.raises(ValueError, match="Invalid learning rate"):
        SignSGD([param()], lr=-1.0)
