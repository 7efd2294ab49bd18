"""Module semantics against torch.nn.Module: registration, names, state_dict, modes, repr, errors."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from extensor import ExTensor, Tape
from extensor import nn as xnn
from extensor.core.tensor import GradSlot


def lenet(lib):
    """The same LeNet-style network in either library."""
    return lib.Sequential(
        lib.Conv2d(1, 6, 5, padding=2), lib.BatchNorm2d(6), lib.ReLU(), lib.MaxPool2d(2),
        lib.Conv2d(6, 16, 5), lib.ReLU(), lib.AvgPool2d(2),
        lib.Flatten(),
        lib.Linear(400, 120), lib.Tanh(), lib.Dropout(0.1),
        lib.Linear(120, 84), lib.GELU(), lib.LayerNorm(84),
        lib.Linear(84, 10), lib.Softmax(dim=1),
    )  # fmt: skip


class Block(xnn.Module):
    """A hand-written module mixing attributes, a buffer, a submodule and a nested Sequential."""

    def __init__(self, lib_nn):
        super().__init__()
        self.scale = lib_nn.Parameter(np.ones(3))
        self.register_buffer("steps", ExTensor(np.zeros(1)))
        self.inner = xnn.Sequential(
            xnn.Linear(3, 4, dtype=np.float64), xnn.ReLU(), xnn.Linear(4, 3, dtype=np.float64)
        )
        self.head = xnn.Linear(3, 2, dtype=np.float64)
        self.plain = 5  # an ordinary attribute

    def forward(self, x):
        return self.head(self.inner(x * self.scale))


class TorchBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
        self.register_buffer("steps", torch.zeros(1, dtype=torch.float64))
        self.inner = torch.nn.Sequential(
            torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3)
        ).double()
        self.head = torch.nn.Linear(3, 2).double()

    def forward(self, x):
        return self.head(self.inner(x * self.scale))


def test_named_parameters_buffers_and_state_dict_keys_equal_torchs():
    ours, theirs = lenet(xnn), lenet(torch.nn)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    a, b = Block(xnn), TorchBlock()
    assert list(a.state_dict()) == list(b.state_dict())
    assert [n for n, _ in a.named_parameters()] == [n for n, _ in b.named_parameters()]
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert p.shape == tuple(q.shape)


def test_repr_equals_torchs():
    # torch's Dropout shows inplace=False, which has no counterpart here
    assert repr(lenet(xnn)) == repr(lenet(torch.nn)).replace(
        "Dropout(p=0.1, inplace=False)", "Dropout(p=0.1)"
    )


def test_whole_network_forward_and_backward_match_torch(layer_check, rng):
    ours, theirs = lenet(xnn).double(), lenet(torch.nn)
    ours.eval()  # deterministic: dropout off, batch norm on running statistics
    theirs.eval()
    layer_check(ours, theirs, rng.standard_normal((3, 1, 28, 28)), np.float64)


def test_state_dict_round_trip_reproduces_the_model(rng):
    a = lenet(xnn).double()
    b = lenet(xnn).double()
    a.train()
    a(rng.standard_normal((4, 1, 28, 28)))  # move the batch-norm statistics away from their start
    a.eval()
    b.eval()
    result = b.load_state_dict({k: v.copy() for k, v in a.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = rng.standard_normal((2, 1, 28, 28))
    np.testing.assert_array_equal(a(x).data, b(x).data)
    assert int(b.get_submodule("1").num_batches_tracked.data) == 1


def test_state_dict_values_share_memory_like_torch():
    layer = xnn.Linear(3, 2)
    state = layer.state_dict()
    assert state["weight"] is layer.weight.data
    assert layer.state_dict(keep_vars=True)["weight"] is layer.weight
    assert list(layer.state_dict(prefix="model.")) == ["model.weight", "model.bias"]


def _snapshot(module):
    return {k: np.array(v) for k, v in module.state_dict().items()}


def test_load_state_dict_validates_everything_before_writing(rng):
    model = lenet(xnn)
    before = _snapshot(model)
    good = {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in before.items()}

    missing = dict(good)
    del missing["8.weight"]
    with pytest.raises(ValueError, match=r"missing keys: '8\.weight'"):
        model.load_state_dict(missing)

    wrong_shape = dict(good)
    wrong_shape["14.bias"] = np.zeros(11, np.float32)  # the last key: everything before it would load
    with pytest.raises(ValueError, match=r"shape mismatch for '14\.bias'.*\(11,\).*\(10,\)"):
        model.load_state_dict(wrong_shape)

    wrong_dtype = dict(good)
    wrong_dtype["0.weight"] = good["0.weight"].astype(np.float64)
    with pytest.raises(ValueError, match=r"dtype mismatch for '0\.weight'"):
        model.load_state_dict(wrong_dtype)

    unexpected = dict(good, extra=np.zeros(1))
    with pytest.raises(ValueError, match="unexpected keys: 'extra'"):
        model.load_state_dict(unexpected)

    for key, value in _snapshot(model).items():  # nothing was partially loaded
        np.testing.assert_array_equal(value, before[key], err_msg=key)

    with pytest.raises(TypeError, match="mapping"):
        model.load_state_dict([("0.weight", good["0.weight"])])


def test_non_strict_loading_reports_keys_but_still_checks_shapes(rng):
    model = xnn.Sequential(xnn.Linear(3, 2), xnn.Linear(2, 1))
    new_weight = rng.standard_normal((2, 3)).astype(np.float32)
    result = model.load_state_dict({"0.weight": ExTensor(new_weight), "junk": np.ones(2)}, strict=False)
    assert result.missing_keys == ["0.bias", "1.weight", "1.bias"]
    assert result.unexpected_keys == ["junk"]
    np.testing.assert_array_equal(model[0].weight.data, new_weight)
    with pytest.raises(ValueError, match="shape mismatch"):
        model.load_state_dict({"0.weight": np.zeros((3, 2), np.float32)}, strict=False)


def test_loading_writes_into_the_existing_storage():
    # a parameter bound to an optimizer's flat buffer must stay bound
    layer = xnn.Linear(3, 2)
    flat = np.zeros(8, np.float32)
    grads = np.zeros(8, np.float32)
    present = np.zeros(2, bool)
    layer.weight.bind_storage(flat[:6].reshape(2, 3), GradSlot(grads[:6].reshape(2, 3), present, 0, None))
    layer.load_state_dict({"weight": np.full((2, 3), 7, np.float32), "bias": np.ones(2, np.float32)})
    np.testing.assert_array_equal(flat[:6], 7)
    with pytest.raises(RuntimeError, match="flat buffer"):
        layer.double()


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_any_missing_subset_is_reported_and_nothing_changes(data):
    model = xnn.Sequential(xnn.Linear(2, 3), xnn.BatchNorm1d(3), xnn.Linear(3, 1))
    before = _snapshot(model)
    keys = list(before)
    drop = data.draw(st.lists(st.sampled_from(keys), min_size=1, unique=True))
    state = {k: v + 1 for k, v in before.items() if k not in drop}
    with pytest.raises(ValueError) as info:
        model.load_state_dict(state)
    for key in drop:
        assert repr(key) in str(info.value)
    for key, value in _snapshot(model).items():
        np.testing.assert_array_equal(value, before[key])


def test_train_eval_propagate(rng):
    model = lenet(xnn)
    assert model.training and all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    with pytest.raises(ValueError, match="bool"):
        model.train("yes")


def test_zero_grad_and_requires_grad(rng):
    layer = xnn.Linear(3, 2, dtype=np.float64)
    tape = Tape()
    with tape:
        loss = layer(rng.standard_normal((4, 3))).sum()
    tape.backward(loss)
    assert layer.weight.grad is not None
    layer.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(layer.weight.grad, 0)
    layer.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None
    layer.requires_grad_(False)
    assert not any(p.requires_grad for p in layer.parameters())


def test_apply_visits_children_first():
    model = xnn.Sequential(xnn.Linear(2, 2), xnn.Sequential(xnn.ReLU(), xnn.Tanh()))
    seen = []
    assert model.apply(lambda m: seen.append(type(m).__name__)) is model
    assert seen == ["Linear", "ReLU", "Tanh", "Sequential", "Sequential"]


def test_dtype_conversion_keeps_parameter_identity():
    model = xnn.Sequential(xnn.Linear(2, 3), xnn.BatchNorm1d(3))
    params = list(model.parameters())
    model.double()
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    assert all(p.dtype == np.float64 for p in params)
    assert model[1].running_mean.dtype == np.float64
    assert model[1].num_batches_tracked.dtype == np.int64  # integer buffers are not converted
    assert model.float() is model and params[0].dtype == np.float32
    assert model.to("cpu") is model
    with pytest.raises(TypeError, match="floating-point dtype"):
        model.to(np.int32)


def test_attribute_registration_rules():
    block = Block(xnn)
    assert "plain" not in block._parameters and block.plain == 5
    block.head = None  # a registered submodule may become None
    assert "head" not in dict(block.named_children())
    block.scale = None
    assert "scale" not in dict(block.named_parameters())
    with pytest.raises(TypeError, match="cannot assign ndarray as parameter 'scale'"):
        block.scale = np.ones(3)
    with pytest.raises(TypeError, match="as buffer 'steps'"):
        block.steps = np.ones(1)
    block.register_buffer("cache", np.zeros(2), persistent=False)
    assert "cache" in dict(block.named_buffers()) and "cache" not in block.state_dict()
    del block.cache
    assert "cache" not in dict(block.named_buffers())
    with pytest.raises(ValueError, match="contain no"):
        block.register_parameter("a.b", xnn.Parameter(np.ones(1)))
    with pytest.raises(ValueError, match="already exists"):
        block.register_buffer("forward", np.ones(1))
    with pytest.raises(AttributeError, match="has no attribute 'missing'"):
        _ = block.missing


def test_assigning_before_init_is_an_error():
    class Broken(xnn.Module):
        def __init__(self):
            self.weight = xnn.Parameter(np.ones(1))

    with pytest.raises(AttributeError, match=r"before Module\.__init__"):
        Broken()


def test_shared_parameters_are_listed_once_like_torch():
    shared = xnn.Linear(2, 2)
    model = xnn.Sequential(shared, xnn.ReLU(), shared)
    theirs_shared = torch.nn.Linear(2, 2)
    theirs = torch.nn.Sequential(theirs_shared, torch.nn.ReLU(), theirs_shared)
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(model.state_dict()) == list(theirs.state_dict())


def test_sequential_and_module_list_containers():
    model = xnn.Sequential(OrderedDict([("fc", xnn.Linear(2, 3)), ("act", xnn.ReLU())]))
    assert [n for n, _ in model.named_children()] == ["fc", "act"]
    assert isinstance(model[-1], xnn.ReLU) and len(model) == 2
    head = model[:1]
    assert isinstance(head, xnn.Sequential) and list(head.state_dict()) == ["fc.weight", "fc.bias"]
    model.append(xnn.Linear(3, 1))
    assert list(model.state_dict())[-2:] == ["2.weight", "2.bias"]
    model[0] = xnn.Linear(2, 3)
    assert [n for n, _ in model.named_children()] == ["fc", "act", "2"]  # replaced in place
    with pytest.raises(IndexError, match="out of range"):
        model[5]
    with pytest.raises(TypeError, match="Modules"):
        xnn.Sequential(xnn.ReLU(), lambda x: x)

    layers = xnn.ModuleList([xnn.Linear(2, 2), xnn.Tanh()])
    layers.append(xnn.Linear(2, 1))
    layers.insert(0, xnn.Identity())
    assert [type(m).__name__ for m in layers] == ["Identity", "Linear", "Tanh", "Linear"]
    assert list(layers.state_dict()) == ["1.weight", "1.bias", "3.weight", "3.bias"]
    assert isinstance(layers[1:], xnn.ModuleList) and len(layers[1:]) == 3


def test_module_without_forward_and_parameter_basics():
    with pytest.raises(NotImplementedError, match="forward"):
        xnn.Module()(1)
    p = xnn.Parameter(np.ones(2))
    assert p.requires_grad and p.is_leaf
    assert repr(p).startswith("Parameter containing:\n")
    with pytest.raises(TypeError, match="floating-point"):
        xnn.Parameter(np.ones(2, np.int64))
    assert not xnn.Parameter(np.ones(2, np.int64), requires_grad=False).requires_grad


def test_deepcopy_gives_an_independent_equal_model(rng):
    import copy

    model = xnn.Sequential(xnn.Linear(3, 2), xnn.BatchNorm1d(2))
    clone = copy.deepcopy(model)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_array_equal(clone(x).data, model(x).data)
    assert clone[0].weight.data is not model[0].weight.data
    assert isinstance(clone[0].weight, xnn.Parameter) and clone[0].weight.requires_grad
