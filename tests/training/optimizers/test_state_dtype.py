"""Adam and AdamW with compact state (``state_dtype="bfloat16"`` / ``"int8"``).

The reference for every step is the float32 optimizer itself: decode the compact state, load it
into a float32 AdamW, step, encode the new state. The compact kernel must give exactly that --
parameters and stored state bit for bit -- so the only difference from float32 Adam is the
rounding of the stored state, which the codecs' own tests bound.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from extensor import ExTensor
from extensor.distributed import SingleProcess
from extensor.distributed.sharded import ShardedOptimizer, state_bytes
from extensor.training.checkpoint import load_checkpoint, save_checkpoint
from extensor.training.optimizers import LARS, SGD, Adam, AdamW, RMSprop
from extensor.training.optimizers.compact import MIN_QUANTIZED_SIZE
from extensor.training.optimizers.compact_state import decode_form, encode_form

#: a tensor of several full blocks and a partial one, a small one (float32 under int8), a 0-d one
SHAPES = [(40, 130), (3000,), (), (4097,)]
MOMENTS = {"exp_avg": True, "exp_avg_sq": False}  # name: signed map


def make(seed: int = 0) -> list[ExTensor]:
    rng = np.random.default_rng(seed)
    return [ExTensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in SHAPES]


def feed(params: list[ExTensor], step: int) -> None:
    rng = np.random.default_rng(1000 + step)
    for index, param in enumerate(params):
        gradient = rng.standard_normal(param.shape).astype(np.float32)
        param.grad = None if (index == 1 and step % 4 == 2) else gradient


def decoded(
    state: dict[Any, dict[str, Any]], params: list[ExTensor], buffers: dict[str, bool]
) -> dict[Any, dict[str, Any]]:
    """A compact state dict's state as float32 values (what the float32 optimizer would hold)."""
    result = {}
    for index, entry in state.items():
        shape = params[index].shape
        result[index] = {"step": entry["step"]} if "step" in entry else {}
        for name, signed in buffers.items():
            result[index][name] = decode_form(entry, name, signed, shape)
    return result


#: each optimizer with compact state, its options and its buffers (name: signed map)
CASES: dict[str, tuple[type, dict[str, Any], dict[str, bool]]] = {
    "Adam": (Adam, {"lr": 0.01, "weight_decay": 0.1, "maximize": True}, MOMENTS),
    "AdamW": (AdamW, {"lr": 0.01, "weight_decay": 0.1}, MOMENTS),
    "SGD": (
        SGD,
        {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
        {"momentum_buffer": True},
    ),
    "SGD-dampened": (SGD, {"lr": 0.01, "momentum": 0.5, "dampening": 0.3}, {"momentum_buffer": True}),
    "RMSprop": (RMSprop, {"lr": 0.01}, {"square_avg": False}),
    "RMSprop-centered": (
        RMSprop,
        {"lr": 0.01, "centered": True, "momentum": 0.5},
        {"square_avg": False, "momentum_buffer": True, "grad_avg": True},
    ),
    "LARS": (LARS, {"lr": 0.1, "trust_coefficient": 0.02, "weight_decay": 1e-3}, {"momentum_buffer": True}),
}


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_compact_step_is_decode_float32_step_encode(name: str, state_dtype: str) -> None:
    cls, options, buffers = CASES[name]
    params = make()
    compact = cls(
        [{"params": params[:2]}, {"params": params[2:], "lr": 0.003}], **options, state_dtype=state_dtype
    )
    for step in range(8):
        before = compact.state_dict()
        twins = [ExTensor(p.data.copy(), requires_grad=True) for p in params]
        reference = cls([{"params": twins[:2]}, {"params": twins[2:], "lr": 0.003}], **options)
        reference.load_state_dict({**before, "state": decoded(before["state"], params, buffers)})
        feed(params, step)
        feed(twins, step)
        compact.step()
        reference.step()
        for mine, theirs in zip(params, twins, strict=True):
            assert mine.data.tobytes() == theirs.data.tobytes(), f"step {step}"
        after, expected = compact.state_dict()["state"], reference.state_dict()["state"]
        assert after.keys() == expected.keys()
        for index, entry in expected.items():
            quantized = state_dtype == "bfloat16" or params[index].size >= MIN_QUANTIZED_SIZE
            for key, signed in buffers.items():
                if step % 4 == 2 and index == 1:  # not stepped: unchanged
                    continue
                stored = encode_form(entry[key], key, state_dtype, quantized, signed)
                for stored_key, value in stored.items():
                    assert after[index][stored_key].tobytes() == value.tobytes(), (step, index, stored_key)


def test_int8_keeps_small_tensors_in_float32_and_reports_its_form() -> None:
    params = make()
    optimizer = AdamW(params, state_dtype="int8")
    feed(params, 0)
    optimizer.step()
    state = optimizer.state_dict()["state"]
    assert state[0]["exp_avg"].dtype == np.uint8 and state[0]["exp_avg"].shape == (40, 130)
    assert state[0]["exp_avg_absmax"].shape == (21,)  # 5200 values in blocks of 256
    assert state[1]["exp_avg"].dtype == np.float32 and "exp_avg_absmax" not in state[1]
    bf16 = AdamW(make(), state_dtype="bfloat16")
    feed(list(bf16.param_groups[0]["params"]), 0)
    bf16.step()
    assert bf16.state_dict()["state"][1]["exp_avg_sq"].dtype == np.uint16


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
def test_round_trip_mid_run_continues_bit_identically(state_dtype: str, tmp_path: Path) -> None:
    params, copies = make(), make()
    first = AdamW(params, lr=0.01, state_dtype=state_dtype)
    for step in range(3):
        feed(params, step)
        first.step()
    save_checkpoint(tmp_path / "run.safetensors", optimizer=first)
    for param, copy in zip(params, copies, strict=True):
        copy.data = param.data
    second = AdamW(copies, lr=0.01, state_dtype=state_dtype)
    load_checkpoint(tmp_path / "run.safetensors", optimizer=second)
    for step in range(3, 6):
        feed(params, step)
        feed(copies, step)
        first.step()
        second.step()
    for mine, theirs in zip(params, copies, strict=True):
        assert mine.data.tobytes() == theirs.data.tobytes()


def test_another_form_is_refused_unless_converted_explicitly() -> None:
    params = make()
    int8 = AdamW(params, state_dtype="int8")
    feed(params, 0)
    int8.step()
    saved = int8.state_dict()
    plain = AdamW(make())
    feed(list(plain.param_groups[0]["params"]), 0)
    plain.step()
    before = plain.state_dict()
    with pytest.raises(TypeError, match=r"stored as int8.*load_converted_state_dict"):
        plain.load_state_dict(saved)
    after = plain.state_dict()
    for index, entry in before["state"].items():  # nothing changed
        for key, value in entry.items():
            assert np.array_equal(after["state"][index][key], value)
    plain.load_converted_state_dict(saved)
    values = plain.state_dict()["state"][0]["exp_avg"]
    np.testing.assert_array_equal(values, decode_form(saved["state"][0], "exp_avg", True, (40, 130)))
    # float32 state into a bfloat16 optimizer, converted: rounded to bfloat16
    bf16 = AdamW(make(), state_dtype="bfloat16")
    with pytest.raises(TypeError, match="load_converted_state_dict"):
        bf16.load_state_dict(before)
    bf16.load_converted_state_dict(before)
    bits = bf16.state_dict()["state"][0]["exp_avg"]
    assert bits.dtype == np.uint16
    expected = encode_form(before["state"][0]["exp_avg"], "exp_avg", "bfloat16", True, True)["exp_avg"]
    assert bits.tobytes() == expected.tobytes()


def test_bad_state_dtypes_are_refused_before_anything_is_bound() -> None:
    params = make()
    with pytest.raises(ValueError, match="Invalid state_dtype: 'float16'"):
        AdamW(params, state_dtype="float16")
    with pytest.raises(ValueError, match="amsgrad"):
        Adam(params, amsgrad=True, state_dtype="int8")
    compact = Adam(params[:1], state_dtype="int8")
    with pytest.raises(ValueError, match="amsgrad"):  # nor in a later group, nor in a loaded one
        compact.add_param_group({"params": params[1:2], "amsgrad": True})
    saved = compact.state_dict()
    saved["param_groups"][0]["amsgrad"] = True
    with pytest.raises(ValueError, match="amsgrad"):
        compact.load_state_dict(saved)
    assert compact.param_groups[0]["amsgrad"] is False and len(compact.param_groups) == 1
    compact.param_groups[0]["amsgrad"] = True  # edited in place: refused at the step, nothing stepped
    params[0].grad = np.ones(params[0].shape, np.float32)
    before = params[0].data.copy()
    with pytest.raises(ValueError, match="amsgrad"):
        compact.step()
    assert np.array_equal(params[0].data, before) and compact.state_dict()["state"] == {}
    wide = ExTensor(np.zeros(3), requires_grad=True)
    with pytest.raises(TypeError, match=r"needs float32 parameters.*float64"):
        AdamW([wide], state_dtype="int8")
    assert wide.grad_slot is None  # not bound to any buffer
    with pytest.raises(NotImplementedError, match="cannot shard state_dtype='bfloat16'"):
        ShardedOptimizer(AdamW(params, state_dtype="bfloat16"), SingleProcess())


def test_state_memory_is_half_and_about_a_quarter() -> None:
    sizes = {}
    for state_dtype in (None, "bfloat16", "int8"):
        params = [ExTensor(np.zeros(1 << 16, np.float32), requires_grad=True)]
        optimizer = AdamW(params, state_dtype=state_dtype)
        params[0].grad = np.ones(1 << 16, np.float32)
        optimizer.step()
        sizes[state_dtype] = state_bytes(optimizer)
    assert sizes["bfloat16"] == sizes[None] // 2
    assert sizes["int8"] == sizes[None] // 4 + 2 * 4 * (1 << 16) // 256  # codes + absmax per block


def test_compact_adam_converges_like_float32_on_a_regression() -> None:
    """A least-squares fit of 8192 weights: the final loss with compact state stays within 10% of
    float32's (Dettmers et al. report 8-bit Adam matching 32-bit Adam)."""
    rng = np.random.default_rng(5)
    inputs = rng.standard_normal((64, 8192)).astype(np.float32) / 90
    target = rng.standard_normal(64).astype(np.float32)
    losses = {}
    for state_dtype in (None, "bfloat16", "int8"):
        weights = ExTensor(np.zeros(8192, np.float32), requires_grad=True)
        optimizer = AdamW([weights], lr=3e-3, weight_decay=0.0, state_dtype=state_dtype)
        for _ in range(150):
            residual = inputs @ weights.data - target
            weights.grad = (inputs.T @ residual / 64).astype(np.float32)
            optimizer.step()
        losses[state_dtype] = float(np.mean((inputs @ weights.data - target) ** 2))
    assert losses[None] < 0.05 * float(np.mean(target**2))
    for state_dtype in ("bfloat16", "int8"):
        assert losses[state_dtype] <= 1.1 * losses[None] + 1e-4, losses
