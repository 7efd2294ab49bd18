"""Training checkpoints: one safetensors file holding every array plus JSON metadata, written atomically.

A checkpoint captures everything needed to continue a run bit-identically: the model's
`state_dict()`, the optimizer's and the scheduler's `state_dict()`, the state of the library's
default random generator (`extensor.core.random`) and any `extra` values the caller adds
(epoch, step, configuration, metric history...).

File layout (https://github.com/huggingface/safetensors)::

    8 bytes little-endian header length | JSON header | raw array bytes

Every NumPy array found anywhere in those state dicts becomes one safetensors tensor, stored
byte for byte (so dtypes, NaN payloads and signed zeros survive exactly). Everything else —
the nested dict/list/tuple structure, Python numbers, strings, class names, the library version
and a SHA-256 digest of the arrays — is JSON in the header's ``__metadata__``. Loading therefore
never unpickles anything.

Writing is atomic: the bytes go to a temporary file in the destination folder, which is flushed,
fsync'ed and renamed over the destination, then the folder itself is fsync'ed. A crash at any
moment leaves either the previous file or the new one, never half of one.

Loading validates everything first — the file's integrity, the digest, and that every array fits
the model, optimizer and scheduler it is loaded into — and only then writes; should an object's
own `load_state_dict` still refuse, the objects already loaded are rolled back. On any error the
caller's objects are unchanged and a `CheckpointError` names what did not fit.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import struct
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from extensor.files import atomic_write_bytes

#: Identifies the metadata entry written by this module inside the safetensors header.
METADATA_KEY = "extensor.checkpoint"
#: Version of the metadata layout; bumped when it changes incompatibly.
FORMAT_VERSION = 1
#: The suffix of checkpoint files.
SUFFIX = ".safetensors"
_MAX_HEADER_BYTES = 100 * 1024 * 1024
_COMPONENTS = ("model", "optimizer", "scheduler", "extra")


class CheckpointError(ValueError):
    """A checkpoint cannot be written or read, or does not fit the objects it is loaded into."""


class Stateful(Protocol):
    """Anything with torch's `state_dict()` / `load_state_dict(state)` pair."""

    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any) -> Any: ...


# ---------------------------------------------------------------------------------------------- encoding
@dataclass
class _Encoder:
    """Turns a nested structure into JSON plus a dict of named arrays (see `_encode`)."""

    arrays: dict[str, np.ndarray[Any, Any]] = field(default_factory=dict)

    def encode(self, value: Any, path: tuple[str, ...]) -> Any:
        """Encode `value`; arrays are stored under a name derived from `path`.

        JSON scalars stay as they are; a list is a JSON list; every other container is a JSON
        object with exactly one tag key, so that nothing a caller stores can be mistaken for
        a tag: ``{"dict": [[key, value], ...]}``, ``{"tuple": [...]}``,
        ``{"array": name}``, ``{"scalar": name}`` (a NumPy scalar).
        """
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, np.generic):
            return value
        if isinstance(value, np.ndarray):
            return {"array": self._store(value, path)}
        if isinstance(value, np.generic):
            return {"scalar": self._store(np.asarray(value), path)}
        if isinstance(value, Mapping):
            items = []
            for key, item in value.items():
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    raise CheckpointError(
                        f"cannot store the key {key!r} at {_show(path)}: only str and int keys are supported"
                    )
                items.append([key, self.encode(item, (*path, str(key)))])
            return {"dict": items}
        if isinstance(value, tuple):
            return {"tuple": [self.encode(item, (*path, str(i))) for i, item in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(item, (*path, str(i))) for i, item in enumerate(value)]
        raise CheckpointError(
            f"cannot store a value of type {type(value).__name__} at {_show(path)}: expected NumPy arrays, "
            "numbers, strings, None, or dicts/lists/tuples of them"
        )

    def _store(self, array: np.ndarray[Any, Any], path: tuple[str, ...]) -> str:
        if array.dtype.kind not in "biuf" or array.dtype.byteorder == ">":
            raise CheckpointError(
                f"cannot store the array at {_show(path)} of dtype {array.dtype}: expected a native bool, "
                "integer or floating dtype"
            )
        name = "/".join(path)
        unique, n = name, 1
        while unique in self.arrays:
            unique, n = f"{name}#{n}", n + 1
        # Copy: the state may be views of live flat buffers, and safetensors wants contiguous data.
        self.arrays[unique] = np.array(array, copy=True, order="C")
        return unique


def _show(path: tuple[str, ...]) -> str:
    return "/".join(path) if path else "the top level"


def _decode(node: Any, arrays: Mapping[str, np.ndarray[Any, Any]], used: set[str], where: str) -> Any:
    """Invert `_Encoder.encode`, taking arrays from `arrays` and recording which were used."""
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_decode(item, arrays, used, where) for item in node]
    if isinstance(node, dict) and len(node) == 1:
        ((tag, body),) = node.items()
        if tag in ("array", "scalar") and isinstance(body, str):
            if body not in arrays:
                raise CheckpointError(f"{where}: the metadata refers to a missing array {body!r}")
            used.add(body)
            array = np.array(arrays[body], copy=True)  # loaded buffers are read-only
            return array[()] if tag == "scalar" else array
        if tag == "tuple" and isinstance(body, list):
            return tuple(_decode(item, arrays, used, where) for item in body)
        if tag == "dict" and isinstance(body, list):
            out: dict[Any, Any] = {}
            for pair in body:
                if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (str, int))):
                    raise CheckpointError(f"{where}: malformed dict entry {pair!r} in the metadata")
                out[pair[0]] = _decode(pair[1], arrays, used, where)
            return out
    raise CheckpointError(f"{where}: unrecognised metadata node {str(node)[:80]!r}")


def _digest(arrays: Mapping[str, np.ndarray[Any, Any]], metadata: Mapping[str, Any]) -> str:
    """SHA-256 over the metadata (canonical JSON, without the digest itself) and every array's
    name, dtype, shape and bytes (in name order): any changed byte of a checkpoint is caught."""
    h = hashlib.sha256()
    canonical = {k: v for k, v in metadata.items() if k != "sha256"}
    h.update(json.dumps(canonical, sort_keys=True, allow_nan=True).encode())
    for name in sorted(arrays):
        array = arrays[name]
        h.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- save
def _class_name(obj: Any) -> str:
    return type(obj).__name__


def _version() -> str:
    from extensor import __version__

    return __version__


def _capture_rng_state() -> Any:
    from extensor.core import random as xrandom

    return xrandom.get_rng_state()


def encode_checkpoint(
    *,
    model: Stateful | None = None,
    optimizer: Stateful | None = None,
    scheduler: Stateful | None = None,
    extra: Mapping[str, Any] | None = None,
    save_rng: bool = True,
) -> bytes:
    """The bytes of a checkpoint file (see `save_checkpoint`); nothing is written."""
    if extra is not None and not isinstance(extra, Mapping):
        raise CheckpointError(f"extra must be a dict, got {type(extra).__name__}")
    encoder = _Encoder()
    components: dict[str, Any] = {}
    classes: dict[str, str] = {}
    for name, obj in (("model", model), ("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is None:
            continue
        if not callable(getattr(obj, "state_dict", None)):
            raise CheckpointError(f"{name} must have a state_dict() method, got {type(obj).__name__}")
        components[name] = encoder.encode(obj.state_dict(), (name,))
        classes[name] = _class_name(obj)
    if extra is not None:
        components["extra"] = encoder.encode(dict(extra), ("extra",))
    metadata = {
        "format_version": FORMAT_VERSION,
        "library": "extensor",
        "version": _version(),
        "created": time.time(),
        "classes": classes,
        "components": components,
        "rng_state": _capture_rng_state() if save_rng else None,
    }
    try:
        metadata["sha256"] = _digest(encoder.arrays, metadata)
        header = json.dumps(metadata, allow_nan=True)
    except (TypeError, ValueError) as error:  # e.g. an rng state that is not JSON-able
        raise CheckpointError(f"the checkpoint metadata is not JSON-serialisable: {error}") from None
    from safetensors.numpy import save

    return bytes(save(encoder.arrays, metadata={METADATA_KEY: header}))


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: Stateful | None = None,
    optimizer: Stateful | None = None,
    scheduler: Stateful | None = None,
    extra: Mapping[str, Any] | None = None,
    save_rng: bool = True,
) -> Path:
    """Save a checkpoint to `path` atomically and return the path.

    Args:
        path: destination file (conventionally ending in ``.safetensors``); its folder is created.
        model, optimizer, scheduler: objects with `state_dict()`; each is optional.
        extra: a dict of anything JSON-like or NumPy arrays (epoch, step, config, histories).
        save_rng: also store the state of `extensor.core.random`'s default generator, so that
            dropout and any other library randomness continue exactly after `load_checkpoint`.

    Every array is copied byte for byte; anything that is not an array, number, string, None,
    or a dict/list/tuple of them raises `CheckpointError` before anything is written.
    """
    data = encode_checkpoint(
        model=model, optimizer=optimizer, scheduler=scheduler, extra=extra, save_rng=save_rng
    )
    return atomic_write_bytes(path, data)


# ---------------------------------------------------------------------------------------------- read
@dataclass
class Checkpoint:
    """The decoded contents of a checkpoint file; reading one changes nothing.

    Attributes:
        path: the file it was read from.
        model, optimizer, scheduler: the stored state dicts (None when absent).
        extra: the caller's extra values ({} when absent).
        classes: class names of the saved model/optimizer/scheduler.
        rng_state: the saved default-generator state, or None.
        version: the extensor version that wrote it; created: its Unix time.
    """

    path: Path
    model: Any
    optimizer: Any
    scheduler: Any
    extra: dict[str, Any]
    classes: dict[str, str]
    rng_state: Any
    version: str
    created: float

    def metadata(self) -> dict[str, Any]:
        """Everything but the model/optimizer/scheduler state: extra, classes, rng_state, version..."""
        return {
            "path": str(self.path),
            "extra": self.extra,
            "classes": dict(self.classes),
            "rng_state": self.rng_state,
            "version": self.version,
            "created": self.created,
        }


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and verify a checkpoint file without loading it into anything.

    Raises `CheckpointError` for a missing, truncated or corrupted file, a digest mismatch, or a
    file that is not an extensor checkpoint.
    """
    source = Path(path)
    where = f"checkpoint {str(source)!r}"
    try:
        data = source.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{where} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"{where} is a folder, expected a checkpoint file") from None
    except OSError as error:
        raise CheckpointError(f"{where} cannot be read: {error.strerror}") from None
    if len(data) < 8:
        raise CheckpointError(f"{where} is truncated: {len(data)} bytes, too short for a safetensors header")
    (header_length,) = struct.unpack("<Q", data[:8])
    if header_length > min(_MAX_HEADER_BYTES, len(data) - 8):
        raise CheckpointError(
            f"{where} is truncated or corrupted: its header claims {header_length} bytes but the file has "
            f"{len(data) - 8} after the length field"
        )
    try:
        header = json.loads(data[8 : 8 + header_length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{where} is corrupted: its safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{where} is corrupted: its safetensors header is not a JSON object")
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    try:
        data_end = max((int(v["data_offsets"][1]) for v in entries.values()), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        raise CheckpointError(f"{where} is corrupted: malformed tensor entries in its header") from None
    payload = len(data) - 8 - header_length
    if payload != data_end:
        state = "truncated" if payload < data_end else "corrupted (trailing bytes)"
        raise CheckpointError(
            f"{where} is {state}: its arrays need {data_end} bytes, the file holds {payload}"
        )
    raw_meta = (header.get("__metadata__") or {}).get(METADATA_KEY)
    if not isinstance(raw_meta, str):
        raise CheckpointError(
            f"{where} is a safetensors file but not an extensor checkpoint (no {METADATA_KEY!r})"
        )
    try:
        meta = json.loads(raw_meta)
    except json.JSONDecodeError:
        raise CheckpointError(f"{where} is corrupted: its metadata is not valid JSON") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("components"), dict):
        raise CheckpointError(f"{where} is corrupted: its metadata lacks the components table")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{where} has format version {meta.get('format_version')!r}; "
            f"this extensor reads version {FORMAT_VERSION}"
        )
    from safetensors.numpy import load

    try:
        arrays = load(data)
    except Exception as error:  # safetensors raises its own error type for every structural problem
        raise CheckpointError(f"{where} is corrupted: {error}") from None
    if _digest(arrays, meta) != meta.get("sha256"):
        raise CheckpointError(
            f"{where} is corrupted: its contents do not match the SHA-256 digest stored with them"
        )
    used: set[str] = set()
    decoded = {
        name: _decode(node, arrays, used, where)
        for name, node in meta["components"].items()
        if name in _COMPONENTS
    }
    unused = set(arrays) - used
    if unused:
        raise CheckpointError(
            f"{where} is corrupted: arrays {sorted(unused)[:3]} are not referenced by its metadata"
        )
    extra = decoded.get("extra") or {}
    if not isinstance(extra, dict):
        raise CheckpointError(f"{where} is corrupted: its extra values are not a dict")
    classes = meta.get("classes") or {}
    return Checkpoint(
        path=source,
        model=decoded.get("model"),
        optimizer=decoded.get("optimizer"),
        scheduler=decoded.get("scheduler"),
        extra=extra,
        classes={str(k): str(v) for k, v in classes.items()},
        rng_state=meta.get("rng_state"),
        version=str(meta.get("version", "unknown")),
        created=float(meta.get("created", 0.0)),
    )


# ---------------------------------------------------------------------------------------------- load
def _check_class(checkpoint: Checkpoint, name: str, obj: Any) -> None:
    stored = checkpoint.classes.get(name)
    if stored is not None and stored != _class_name(obj):
        raise CheckpointError(
            f"checkpoint {str(checkpoint.path)!r} holds {stored} {name} state, but the {name} given is a "
            f"{_class_name(obj)}"
        )


def _array_mismatch(what: str, saved: Any, current: Any) -> str | None:
    """Why `saved` cannot replace `current` (shape or dtype), or None when it can."""
    if not isinstance(saved, np.ndarray):
        return f"{what}: the checkpoint holds a {type(saved).__name__}, expected an array"
    if saved.shape != current.shape:
        return f"{what}: the checkpoint has shape {saved.shape}, expected {tuple(current.shape)}"
    if saved.dtype != current.dtype:
        return f"{what}: the checkpoint has dtype {saved.dtype}, expected {current.dtype}"
    return None


def _validate_model(checkpoint: Checkpoint, model: Stateful) -> None:
    saved, current = checkpoint.model, model.state_dict()
    if not isinstance(saved, dict):
        raise CheckpointError(f"checkpoint {str(checkpoint.path)!r} holds no model state")
    missing = [k for k in current if k not in saved]
    unexpected = [k for k in saved if k not in current]
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {str(checkpoint.path)!r} does not fit the model: missing keys {missing[:5]}, "
            f"unexpected keys {unexpected[:5]}"
        )
    for key, value in current.items():
        array = value if isinstance(value, np.ndarray) else np.asarray(value)
        problem = _array_mismatch(f"model entry {key!r}", saved[key], array)
        if problem:
            raise CheckpointError(f"checkpoint {str(checkpoint.path)!r} does not fit the model: {problem}")


def _optimizer_params(optimizer: Any) -> list[list[Any]] | None:
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, list):
        return None
    return [list(group.get("params", [])) for group in groups]


def _validate_optimizer(checkpoint: Checkpoint, optimizer: Stateful) -> None:
    where = f"checkpoint {str(checkpoint.path)!r} does not fit the optimizer"
    saved = checkpoint.optimizer
    if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list):
        raise CheckpointError(f"checkpoint {str(checkpoint.path)!r} holds no optimizer state")
    _check_class(checkpoint, "optimizer", optimizer)
    groups = _optimizer_params(optimizer)
    if groups is None:
        return
    saved_groups = saved["param_groups"]
    if len(saved_groups) != len(groups):
        raise CheckpointError(
            f"{where}: {len(saved_groups)} parameter groups saved, the optimizer has {len(groups)}"
        )
    params: dict[int, Any] = {}
    for g, (saved_group, group) in enumerate(zip(saved_groups, groups, strict=True)):
        indices = saved_group.get("params") if isinstance(saved_group, dict) else None
        if not isinstance(indices, list) or len(indices) != len(group):
            size = len(indices) if isinstance(indices, list) else "?"
            raise CheckpointError(
                f"{where}: group {g} has {size} parameters saved, the optimizer has {len(group)}"
            )
        params.update(zip(indices, group, strict=True))
    state = saved.get("state", {})
    if not isinstance(state, dict):
        raise CheckpointError(f"{where}: the saved state is not a dict")
    for index, entry in state.items():
        if index not in params:
            raise CheckpointError(f"{where}: state for parameter {index!r}, which no group lists")
        if not isinstance(entry, dict):
            raise CheckpointError(f"{where}: the state of parameter {index} is not a dict")
        param = params[index]
        for name, value in entry.items():
            if isinstance(value, np.ndarray) and value.ndim > 0:
                problem = _array_mismatch(f"state {name!r} of parameter {index}", value, param.data)
                if problem:
                    raise CheckpointError(f"{where}: {problem}")


def _validate_rng(checkpoint: Checkpoint) -> None:
    if checkpoint.rng_state is None:
        raise CheckpointError(f"checkpoint {str(checkpoint.path)!r} holds no random-generator state")


def _snapshot(obj: Stateful) -> Any:
    return copy.deepcopy(obj.state_dict())


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: Stateful | None = None,
    optimizer: Stateful | None = None,
    scheduler: Stateful | None = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Load a checkpoint into the given objects and return its metadata.

    Validation comes first and covers everything: the file (truncation, corruption, digest),
    the presence of each requested component, the model's keys, shapes and dtypes, the
    optimizer's class, group count and sizes and state shapes/dtypes, the scheduler's class.
    Then each object's `load_state_dict` runs; if one still refuses, those already loaded are
    restored. On any error a `CheckpointError` is raised and nothing was changed.

    Args:
        path: the checkpoint file.
        model, optimizer, scheduler: objects to load into (each optional).
        restore_rng: also restore `extensor.core.random`'s default generator (when the file has it).

    Returns:
        ``{"extra": ..., "classes": ..., "rng_state": ..., "version": ..., "created": ..., "path": ...}``.
    """
    checkpoint = read_checkpoint(path)
    if model is not None:
        _validate_model(checkpoint, model)
    if optimizer is not None:
        _validate_optimizer(checkpoint, optimizer)
    if scheduler is not None:
        if checkpoint.scheduler is None:
            raise CheckpointError(f"checkpoint {str(checkpoint.path)!r} holds no scheduler state")
        _check_class(checkpoint, "scheduler", scheduler)
    if restore_rng and checkpoint.rng_state is not None:
        from extensor.core import random as xrandom

        rng_before = xrandom.get_rng_state()
    else:
        rng_before = None
    targets = [
        (name, obj, state)
        for name, obj, state in (
            ("model", model, checkpoint.model),
            ("optimizer", optimizer, checkpoint.optimizer),
            ("scheduler", scheduler, checkpoint.scheduler),
        )
        if obj is not None
    ]
    snapshots = [(name, obj, _snapshot(obj)) for name, obj, _ in targets]
    done: list[tuple[str, Stateful, Any]] = []
    try:
        for (name, obj, state), snapshot in zip(targets, snapshots, strict=True):
            try:
                obj.load_state_dict(copy.deepcopy(state))
            except (ValueError, TypeError, KeyError) as error:
                raise CheckpointError(
                    f"checkpoint {str(checkpoint.path)!r} does not fit the {name}: {error}"
                ) from None
            done.append(snapshot)
        if rng_before is not None:
            from extensor.core import random as xrandom

            try:
                xrandom.set_rng_state(checkpoint.rng_state)
            except (ValueError, TypeError, KeyError) as error:
                raise CheckpointError(
                    f"checkpoint {str(checkpoint.path)!r} holds an invalid random-generator state: {error}"
                ) from None
    except BaseException:
        for _, obj, snapshot in reversed(done):
            obj.load_state_dict(snapshot)
        if rng_before is not None:
            from extensor.core import random as xrandom

            xrandom.set_rng_state(rng_before)
        raise
    return checkpoint.metadata()


# ---------------------------------------------------------------------------------------------- rotation
_NAME = re.compile(r"^(?P<prefix>.+)-(?P<step>\d+)" + re.escape(SUFFIX) + "$")


class CheckpointManager:
    """Saves numbered checkpoints into a folder and keeps only the newest `keep_last`.

    Files are named ``{prefix}-{step:08d}.safetensors``; "newest" means highest step. Saving
    the same step twice replaces the file atomically. Leftover temporary files of an
    interrupted write are removed when the manager is created.

    Args:
        folder: where checkpoints live (created on the first save).
        keep_last: how many checkpoints to keep (>= 1).
        prefix: file-name prefix.
    """

    def __init__(
        self, folder: str | os.PathLike[str], keep_last: int = 3, prefix: str = "checkpoint"
    ) -> None:
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
            raise ValueError(f"keep_last must be an integer >= 1, got {keep_last!r}")
        if not prefix or "/" in prefix or os.sep in prefix:
            raise ValueError(f"prefix must be a non-empty file-name part, got {prefix!r}")
        self.folder = Path(folder)
        self.keep_last = keep_last
        self.prefix = prefix
        if self.folder.is_dir():
            for leftover in self.folder.glob(f".{prefix}-*{SUFFIX}.*.tmp"):
                leftover.unlink(missing_ok=True)

    def path_for(self, step: int) -> Path:
        """The file name of the checkpoint at `step`."""
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"step must be a non-negative integer, got {step!r}")
        return self.folder / f"{self.prefix}-{int(step):08d}{SUFFIX}"

    def checkpoints(self) -> list[Path]:
        """The checkpoints present, oldest first."""
        if not self.folder.is_dir():
            return []
        found = []
        for entry in self.folder.iterdir():
            match = _NAME.match(entry.name)
            if match and match["prefix"] == self.prefix and entry.is_file():
                found.append((int(match["step"]), entry))
        return [entry for _, entry in sorted(found)]

    def latest(self) -> Path | None:
        """The newest checkpoint, or None."""
        found = self.checkpoints()
        return found[-1] if found else None

    def save(self, step: int, **kwargs: Any) -> Path:
        """`save_checkpoint(self.path_for(step), **kwargs)`, then delete all but the newest `keep_last`."""
        path = save_checkpoint(self.path_for(step), **kwargs)
        for old in self.checkpoints()[: -self.keep_last]:
            old.unlink(missing_ok=True)
        return path

    def __iter__(self) -> Iterator[Path]:
        return iter(self.checkpoints())


__all__ = [
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "CheckpointManager",
    "atomic_write_bytes",
    "encode_checkpoint",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
]
