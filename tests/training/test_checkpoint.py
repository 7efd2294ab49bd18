"""Checkpoint files: exact round trips, atomic writes, rotation, and refusal of damaged or mismatched files
with nothing changed."""

from __future__ import annotations

import copy
import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from extensor import files
from extensor.core import random as xrandom
from extensor.training.checkpoint import (
    CheckpointError,
    CheckpointManager,
    atomic_write_bytes,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)


class Holder:
    """A minimal stateful object: `state_dict()` returns a deep copy of what it holds."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.loads = 0

    def state_dict(self) -> Any:
        return copy.deepcopy(self.state)

    def load_state_dict(self, state: Any) -> None:
        self.loads += 1
        self.state = copy.deepcopy(state)


class Refuses(Holder):
    """Accepts the checkpoint's structure but refuses in its own load_state_dict."""

    def load_state_dict(self, state: Any) -> None:
        raise ValueError("refused on purpose")


def assert_same(a: Any, b: Any) -> None:
    """Structural equality with arrays compared byte for byte (dtype, shape, NaN payloads)."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def optimizer_like_state(rng: np.random.Generator) -> dict[str, Any]:
    """A state dict shaped like torch's optimizers' (int keys, 0-d step, tuples, None)."""
    return {
        "state": {
            0: {"step": np.array(3.0, np.float32), "exp_avg": rng.standard_normal((3, 4)).astype(np.float32)},
            2: {"step": np.array(3.0, np.float32), "exp_avg": rng.standard_normal(5)},
        },
        "param_groups": [
            {
                "lr": 1e-3,
                "betas": (0.9, 0.999),
                "eps": 1e-8,
                "amsgrad": False,
                "foreach": None,
                "params": [0, 1],
            },
            {"lr": 0.1, "betas": (0.5, 0.9), "eps": 1e-6, "amsgrad": True, "foreach": None, "params": [2]},
        ],
    }


def test_round_trip_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    special = np.array([np.nan, -0.0, np.inf, -np.inf, 1e-45], np.float32)
    special.view(np.uint32)[0] = 0x7FC0_1234  # a NaN with a payload must survive bit for bit
    model_state = {
        "conv.weight": rng.standard_normal((6, 1, 3, 3)).astype(np.float32),
        "bn.num_batches_tracked": np.array(7, np.int64),
        "half": rng.standard_normal(4).astype(np.float16),
        "mask": np.array([True, False]),
        "special": special,
        "empty": np.zeros((0, 3)),
        "bytes": np.arange(5, dtype=np.uint8),
    }
    optimizer_state = optimizer_like_state(rng)
    extra = {
        "epoch": 3,
        "history": [1.5, float("nan"), float("inf")],
        "name": "run",
        "none": None,
        "nested": {"a": [1, (2, 3)], "scalar": np.float64(2.5)},
    }
    xrandom.manual_seed(123)
    path = save_checkpoint(
        tmp_path / "c.safetensors",
        model=Holder(model_state),
        optimizer=Holder(optimizer_state),
        scheduler=Holder({"last_epoch": 5, "base_lrs": [0.1, 0.2]}),
        extra=extra,
    )
    expected_rng = xrandom.default_generator().random(3)

    model = Holder({key: np.zeros_like(value) for key, value in model_state.items()})
    optimizer, scheduler = Holder(None), Holder(None)
    xrandom.manual_seed(999)
    meta = load_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler)
    assert_same(model.state, model_state)
    assert_same(optimizer.state, optimizer_state)
    assert scheduler.state == {"last_epoch": 5, "base_lrs": [0.1, 0.2]}
    assert_same(meta["extra"], extra)
    assert meta["classes"] == {"model": "Holder", "optimizer": "Holder", "scheduler": "Holder"}
    assert meta["version"]
    np.testing.assert_array_equal(xrandom.default_generator().random(3), expected_rng)
    for value in model.state.values():
        assert value.flags.writeable  # loaded arrays are ordinary, writable arrays


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    arrays=st.dictionaries(
        st.text(alphabet="abc./_", min_size=1, max_size=6),
        hnp.arrays(
            dtype=st.sampled_from(
                [np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.uint16, np.bool_]
            ),
            shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
        ),
        max_size=5,
    )
)
def test_any_arrays_round_trip_bit_exactly(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    path = save_checkpoint(tmp_path / "h.safetensors", model=Holder(arrays), save_rng=False)
    loaded = read_checkpoint(path).model
    assert_same(loaded, arrays)


def test_unsupported_values_raise_before_writing(tmp_path: Path) -> None:
    target = tmp_path / "c.safetensors"
    save_checkpoint(target, extra={"ok": 1}, save_rng=False)
    before = target.read_bytes()
    with pytest.raises(CheckpointError, match=r"type object at extra/bad/0"):
        save_checkpoint(target, extra={"bad": [object()]})
    with pytest.raises(CheckpointError, match="key"):
        save_checkpoint(target, extra={"bad": {(1, 2): 3}})
    with pytest.raises(CheckpointError, match="complex128"):
        save_checkpoint(target, extra={"z": np.zeros(2, np.complex128)})
    with pytest.raises(CheckpointError, match="must be a dict"):
        save_checkpoint(target, extra=[1, 2])  # type: ignore[arg-type]
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["c.safetensors"]


def test_atomic_write_stays_importable_from_checkpoint() -> None:
    assert atomic_write_bytes is files.atomic_write_bytes


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Path, bytes]:
    rng = np.random.default_rng(1)
    path = save_checkpoint(
        tmp_path / "c.safetensors",
        model=Holder({"w": rng.standard_normal((4, 3)), "b": rng.standard_normal(3).astype(np.float32)}),
        optimizer=Holder(optimizer_like_state(rng)),
        extra={"epoch": 2, "lr": 1e-3},
    )
    return path, path.read_bytes()


def _untouched_targets() -> tuple[Holder, Holder]:
    return Holder({"w": np.zeros((4, 3))}), Holder({"untouched": True})


def test_truncated_files_are_refused_and_nothing_changes(saved: tuple[Path, bytes], tmp_path: Path) -> None:
    _, data = saved
    damaged = tmp_path / "t.safetensors"
    header = 8 + struct.unpack("<Q", data[:8])[0]
    for length in sorted({0, 4, 8, 9, header // 2, header - 1, header, header + 1, len(data) - 1}):
        damaged.write_bytes(data[:length])
        model, optimizer = _untouched_targets()
        with pytest.raises(CheckpointError, match=r"truncated|corrupted"):
            load_checkpoint(damaged, model=model, optimizer=optimizer)
        assert model.loads == 0 and optimizer.loads == 0
        assert model.state["w"].sum() == 0 and optimizer.state == {"untouched": True}


def test_trailing_bytes_are_refused(saved: tuple[Path, bytes], tmp_path: Path) -> None:
    damaged = tmp_path / "t.safetensors"
    damaged.write_bytes(saved[1] + b"\0")
    with pytest.raises(CheckpointError, match="trailing"):
        read_checkpoint(damaged)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.floats(0, 1, exclude_max=True), flip=st.integers(1, 255))
def test_any_flipped_byte_is_caught_or_harmless(
    saved: tuple[Path, bytes], tmp_path: Path, position: float, flip: int
) -> None:
    path, data = saved
    original = read_checkpoint(path)
    index = int(position * len(data))
    damaged = bytearray(data)
    damaged[index] ^= flip
    target = tmp_path / "flipped.safetensors"
    target.write_bytes(bytes(damaged))
    model, optimizer = _untouched_targets()
    try:
        loaded = read_checkpoint(target)
    except CheckpointError:
        with pytest.raises(CheckpointError):
            load_checkpoint(target, model=model, optimizer=optimizer)
        assert model.loads == 0 and optimizer.loads == 0
        return
    # A flip that still decodes must denote exactly the same contents (e.g. "1e-08" -> "1E-08").
    assert_same(loaded.model, original.model)
    assert_same(loaded.optimizer, original.optimizer)
    assert_same(loaded.extra, original.extra)


def test_missing_folder_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="is a folder"):
        read_checkpoint(tmp_path)
    from safetensors.numpy import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": np.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not an extensor checkpoint"):
        read_checkpoint(foreign)


def test_missing_components_are_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", model=Holder({"w": np.zeros(2)}))
    target = Holder({"w": np.ones(2)})
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_checkpoint(path, model=target, optimizer=Holder({}))
    with pytest.raises(CheckpointError, match="no scheduler state"):
        load_checkpoint(path, model=target, scheduler=Holder({}))
    assert target.loads == 0


def test_model_shape_dtype_and_key_mismatch_is_refused(saved: tuple[Path, bytes]) -> None:
    path, _ = saved
    cases = {
        "shape": {"w": np.zeros((3, 4)), "b": np.zeros(3, np.float32)},
        "dtype": {"w": np.zeros((4, 3)), "b": np.zeros(3, np.float64)},
        "missing": {"w": np.zeros((4, 3)), "b": np.zeros(3, np.float32), "extra": np.zeros(1)},
        "unexpected": {"w": np.zeros((4, 3))},
    }
    for expected, state in cases.items():
        target = Holder(state)
        with pytest.raises(CheckpointError, match=expected):
            load_checkpoint(path, model=target)
        assert target.loads == 0


def test_rollback_when_a_later_load_state_dict_refuses(tmp_path: Path) -> None:
    path = save_checkpoint(
        tmp_path / "r.safetensors",
        model=Holder({"w": np.zeros((4, 3))}),
        optimizer=Refuses({"state": {}, "param_groups": []}),
    )
    model = Holder({"w": np.full((4, 3), 7.0)})
    optimizer = Refuses({"untouched": True})
    xrandom.manual_seed(5)
    rng_before = xrandom.get_rng_state()
    with pytest.raises(CheckpointError, match="refused on purpose"):
        load_checkpoint(path, model=model, optimizer=optimizer)
    # The model was loaded first and then restored from its snapshot.
    assert model.loads == 2
    np.testing.assert_array_equal(model.state["w"], 7.0)
    assert xrandom.get_rng_state() == rng_before


def test_manager_keeps_the_newest(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    manager = CheckpointManager(folder, keep_last=2)
    assert manager.latest() is None
    for step in (10, 5, 30, 20):
        manager.save(step, extra={"step": step}, save_rng=False)
    names = [p.name for p in manager.checkpoints()]
    assert names == ["checkpoint-00000020.safetensors", "checkpoint-00000030.safetensors"]
    assert manager.latest() == folder / "checkpoint-00000030.safetensors"
    assert read_checkpoint(manager.latest()).extra == {"step": 30}
    manager.save(30, extra={"step": 31}, save_rng=False)  # same step: replaced atomically
    assert read_checkpoint(manager.latest()).extra == {"step": 31}
    leftover = folder / ".checkpoint-00000040.safetensors.abc.tmp"
    leftover.write_bytes(b"half")
    CheckpointManager(folder, keep_last=2)
    assert not leftover.exists()
    with pytest.raises(ValueError, match="keep_last"):
        CheckpointManager(folder, keep_last=0)
    with pytest.raises(ValueError, match="step"):
        manager.path_for(-1)


# ---------------------------------------------------------------------------------------------- real objects
def _train(model: Any, optimizer: Any, scheduler: Any, steps: int, seed: int) -> None:
    """A few real steps (with dropout drawing from the default generator) on random data."""
    from extensor.autograd import Tape
    from extensor.core import ExTensor
    from extensor.nn import CrossEntropyLoss

    rng = np.random.default_rng(seed)
    criterion = CrossEntropyLoss()
    dtype = next(iter(model.parameters())).dtype
    for _ in range(steps):
        x = ExTensor(rng.standard_normal((8, 1, 8, 8)).astype(dtype))
        y = ExTensor(rng.integers(0, 10, 8))
        tape = Tape()
        with tape:
            loss = criterion(model(x), y)
        optimizer.zero_grad()
        tape.backward(loss)
        optimizer.step()
        scheduler.step()


def _objects(
    optimizer_name: str = "AdamW", dtype: Any = np.float32, channels: tuple[int, int] = (16, 32)
) -> tuple[Any, Any, Any]:
    from extensor.models import LeNet5
    from extensor.training import optimizers, schedulers

    xrandom.manual_seed(0)
    model = LeNet5(1, (8, 8), 10, dropout=0.2, channels=channels)
    if dtype == np.float64:
        model = model.double()
    cls = getattr(optimizers, optimizer_name)
    optimizer = (
        cls(model.parameters(), lr=0.05)
        if optimizer_name in ("SGD", "LARS")
        else cls(model.parameters(), lr=1e-3)
    )
    scheduler = schedulers.CosineAnnealingLR(optimizer, T_max=20)
    return model, optimizer, scheduler


def _state_bytes(obj: Any) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, np.ndarray | np.generic):
            out.append((f"{path}:{value.dtype}", np.asarray(value).tobytes()))
        elif isinstance(value, dict):
            for key in value:
                walk(value[key], f"{path}/{key}")
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(item, f"{path}/{i}")
        else:
            out.append((path, repr(value).encode()))

    walk(obj.state_dict(), "")
    return out


@pytest.mark.parametrize(
    ("optimizer_name", "dtype"),
    [("AdamW", np.float32), ("SGD", np.float64), ("RMSprop", np.float32), ("LARS", np.float64)],
)
def test_real_training_resumes_bit_identically(tmp_path: Path, optimizer_name: str, dtype: Any) -> None:
    model, optimizer, scheduler = _objects(optimizer_name, dtype)
    _train(model, optimizer, scheduler, 5, seed=1)
    path = save_checkpoint(
        tmp_path / "mid.safetensors", model=model, optimizer=optimizer, scheduler=scheduler
    )
    _train(model, optimizer, scheduler, 5, seed=2)

    fresh_model, fresh_optimizer, fresh_scheduler = _objects(optimizer_name, dtype)
    xrandom.manual_seed(12345)  # load_checkpoint restores the dropout stream
    load_checkpoint(path, model=fresh_model, optimizer=fresh_optimizer, scheduler=fresh_scheduler)
    _train(fresh_model, fresh_optimizer, fresh_scheduler, 5, seed=2)
    for name, value in model.state_dict().items():
        assert fresh_model.state_dict()[name].dtype == dtype
        assert fresh_model.state_dict()[name].tobytes() == value.tobytes(), name
    assert _state_bytes(fresh_optimizer) == _state_bytes(optimizer)
    assert fresh_scheduler.state_dict() == scheduler.state_dict()


def test_mismatched_objects_are_refused_and_unchanged(tmp_path: Path) -> None:
    model, optimizer, scheduler = _objects("AdamW")
    _train(model, optimizer, scheduler, 2, seed=1)
    path = save_checkpoint(tmp_path / "c.safetensors", model=model, optimizer=optimizer, scheduler=scheduler)

    def attempt(target_model: Any, target_optimizer: Any, target_scheduler: Any, message: str) -> None:
        before = [_state_bytes(o) for o in (target_model, target_optimizer, target_scheduler)]
        rng_before = xrandom.get_rng_state()
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path, model=target_model, optimizer=target_optimizer, scheduler=target_scheduler)
        assert [_state_bytes(o) for o in (target_model, target_optimizer, target_scheduler)] == before
        assert xrandom.get_rng_state() == rng_before

    # A model of another shape.
    attempt(*_objects("AdamW", channels=(8, 32)), message=r"shape \(16, 1, 3, 3\), expected \(8, 1, 3, 3\)")
    # Another dtype.
    attempt(*_objects("AdamW", np.float64), message="dtype float32, expected float64")
    # Another optimizer class, with the right model.
    attempt(*_objects("Adam"), message="holds AdamW optimizer state, but the optimizer given is a Adam")
    # Another scheduler class.
    from extensor.training import schedulers

    m, o, _ = _objects("AdamW")
    attempt(m, o, schedulers.StepLR(o, step_size=3), message="holds CosineAnnealingLR scheduler state")
    # Same classes, but the parameters split into two groups.
    from extensor.models import LeNet5
    from extensor.training.optimizers import AdamW

    m = LeNet5(1, (8, 8), 10, dropout=0.2, channels=(16, 32))
    params = list(m.parameters())
    o = AdamW([{"params": params[:2]}, {"params": params[2:]}], lr=1e-3)
    attempt(
        m, o, schedulers.CosineAnnealingLR(o, T_max=20), message="2 parameter groups saved|1 parameter groups"
    )


# ---------------------------------------------------------------------------------------------- hostile files
def forge(path: Path, header: dict[str, Any] | str, data: bytes = b"", size: int | None = None) -> Path:
    """Write a safetensors-shaped file: length, `header` (JSON, or raw text), `data`; then, when
    `size` is given, make the file that long (sparse: nothing is written beyond `data`)."""
    raw = (header if isinstance(header, str) else json.dumps(header)).encode()
    with path.open("wb") as file:
        file.write(struct.pack("<Q", len(raw)) + raw + data)
        if size is not None:
            file.truncate(size)
    return path


def assert_refused(path: Path, match: str) -> None:
    """Both entry points raise CheckpointError (one line) and leave the targets untouched."""
    with pytest.raises(CheckpointError, match=match) as caught:
        read_checkpoint(path)
    assert "\n" not in str(caught.value)
    model, optimizer = _untouched_targets()
    rng_before = xrandom.get_rng_state()
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path, model=model, optimizer=optimizer)
    assert model.loads == 0 and optimizer.loads == 0
    assert model.state["w"].sum() == 0 and optimizer.state == {"untouched": True}
    assert xrandom.get_rng_state() == rng_before


DEEP = 100_000


def _metadata(components: str) -> str:
    return json.dumps({"format_version": 1, "sha256": "0" * 64}).replace(
        "}", f', "components": {components}}}'
    )


@pytest.mark.parametrize(
    "header",
    [
        "[" * DEEP + "]" * DEEP,  # the safetensors header itself
        '{"a": ' + "[" * DEEP + "]" * DEEP + "}",
        json.dumps({"__metadata__": {"extensor.checkpoint": "[" * DEEP + "]" * DEEP}}),
        json.dumps(
            {"__metadata__": {"extensor.checkpoint": _metadata('{"extra": ' + "[" * DEEP + "]" * DEEP + "}")}}
        ),
        json.dumps(
            {
                "__metadata__": {
                    "extensor.checkpoint": _metadata('{"extra": ' + '{"tuple": [' * 5000 + "]}" * 5000 + "}")
                }
            }
        ),
    ],
    ids=["header", "header-value", "metadata", "state-list", "state-tuples"],
)
def test_deeply_nested_json_is_refused(tmp_path: Path, header: str) -> None:
    assert_refused(forge(tmp_path / "deep.safetensors", header), "nests more than 100 levels deep")


def test_nesting_is_counted_outside_strings_only_and_bounded_on_save(tmp_path: Path) -> None:
    # Brackets inside strings (even with escaped quotes) are text, not nesting.
    text = '[\\"' + "[" * 1000 + "{" * 1000
    path = save_checkpoint(tmp_path / "s.safetensors", extra={"text": text, "deep": [[[[[1]]]]]})
    assert read_checkpoint(path).extra == {"text": text, "deep": [[[[[1]]]]]}
    # What could not be read back is never written.
    deep: Any = 1
    for _ in range(200):
        deep = [deep]
    with pytest.raises(CheckpointError, match="nests deeper than the 100 levels"):
        save_checkpoint(tmp_path / "d.safetensors", extra={"deep": deep})
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(CheckpointError, match="nests deeper than the 100 levels"):
        save_checkpoint(tmp_path / "d.safetensors", extra={"deep": deep})
    assert not (tmp_path / "d.safetensors").exists()


GIB8 = 8 * 1024**3


def _huge_header(nbytes: int) -> dict[str, Any]:
    return {
        "__metadata__": {"extensor.checkpoint": _metadata("{}")},
        "small": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "huge": {"dtype": "F64", "shape": [nbytes // 8], "data_offsets": [8, 8 + nbytes]},
    }


def test_huge_tensor_claims_are_refused_before_anything_is_allocated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from extensor.training import checkpoint as module

    # Truncated: the header describes ~8 GiB, the file holds a few bytes.
    truncated = forge(tmp_path / "truncated.safetensors", _huge_header(GIB8), b"\0" * 16)
    assert_refused(truncated, r"truncated: tensor 'huge' claims bytes 8\.\.8589934600")
    # Sparse: the file really is ~8 GiB long, but holes; more than the memory available.
    raw = json.dumps(_huge_header(GIB8)).encode()
    sparse = forge(tmp_path / "sparse.safetensors", _huge_header(GIB8), size=8 + len(raw) + 8 + GIB8)
    monkeypatch.setattr(module, "_memory_budget", lambda: 1024**3)
    assert_refused(sparse, r"claims 8589934600 bytes of arrays \(tensor 'huge' alone 8589934592\), more than")
    monkeypatch.undo()
    # No memory figure is patched here: an 8 TiB sparse file exceeds any machine's memory.
    huge = 2**43
    raw = json.dumps(_huge_header(huge)).encode()
    try:
        forge(tmp_path / "tera.safetensors", _huge_header(huge), size=8 + len(raw) + 8 + huge)
    except OSError:
        pass  # the file system cannot represent it; the 8 GiB cases above still ran
    else:
        assert_refused(tmp_path / "tera.safetensors", rf"tensor 'huge' alone {huge}\), more than .* memory")


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [8, 16]}, "'x' has shape .* but spans 8"),
        (
            {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            "'x' starts at byte 4 .*overlap or leave a gap",
        ),
        (
            {"dtype": "F32", "shape": [1], "data_offsets": [12, 16]},
            "'x' starts at byte 12 of the array data, expected 8",
        ),
        ({"dtype": "F32", "shape": [2], "data_offsets": [12, 8]}, "'x' has malformed data offsets"),
        ({"dtype": "F32", "shape": [-2], "data_offsets": [8, 16]}, "'x' has a malformed shape"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [8, 2**70]}, "truncated: tensor 'x' claims"),
        ({"dtype": "C64", "shape": [1], "data_offsets": [8, 16]}, "'x' has an unsupported dtype 'C64'"),
        ("not a dict", "'x' has a malformed header entry"),
    ],
)
def test_forged_tensor_entries_are_refused_naming_the_tensor(tmp_path: Path, entry: Any, match: str) -> None:
    header = {
        "__metadata__": {"extensor.checkpoint": _metadata("{}")},
        "first": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "x": entry,
    }
    assert_refused(forge(tmp_path / "forged.safetensors", header, b"\0" * 16), match)


def test_json_that_python_cannot_decode_is_refused(tmp_path: Path) -> None:
    header = {
        "__metadata__": {"extensor.checkpoint": '{"components": {}, "format_version": 1' + "1" * 5000 + "}"}
    }
    assert_refused(forge(tmp_path / "digits.safetensors", header), "its metadata is not valid JSON")


def test_anything_but_a_regular_file_is_refused_without_blocking(tmp_path: Path) -> None:
    import threading

    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            load_checkpoint(fifo, model=Holder({"w": np.zeros((4, 3))}))
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # unblock it by opening the writing end, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("reading a FIFO blocked")
    assert len(outcome) == 1 and isinstance(outcome[0], CheckpointError)
    assert "is not a regular file" in str(outcome[0])
    assert_refused(fifo, "is not a regular file")
    if Path(os.devnull).exists() and os.name == "posix":
        assert_refused(Path(os.devnull), "is not a regular file")
