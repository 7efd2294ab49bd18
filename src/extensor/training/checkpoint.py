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

Reading refuses anything that is not a regular file (a FIFO or device is never waited on) and
bounds the header's size and JSON nesting and every tensor's byte range — against the file's
real size and the memory available — before anything is decoded, allocated or read.

Loading validates everything first — the file's integrity, the digest, and that every array fits
the model, optimizer and scheduler it is loaded into — and only then writes; should an object's
own `load_state_dict` still refuse, the objects already loaded are rolled back. On any error the
caller's objects are unchanged and a `CheckpointError` names what did not fit.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
import stat
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
#: The deepest nesting of JSON arrays/objects accepted in a header or in the metadata; deeper
#: structures are refused before decoding (the JSON decoder and `_decode` recurse).
_MAX_JSON_DEPTH = 100
#: safetensors dtype names -> little-endian NumPy dtypes (the kinds `_Encoder` writes).
_DTYPES = {
    "BOOL": np.dtype("|b1"),
    "U8": np.dtype("|u1"),
    "I8": np.dtype("|i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F16": np.dtype("<f2"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
}
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
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


def _json_depth(text: str) -> int:
    """How deeply arrays/objects nest in the JSON `text` (never less than the truth), without recursion.

    When the text opens no more brackets than the limit, that count is returned at once. Otherwise
    strings are removed (brackets inside them do not count) and what is left is counted in linear
    time. Invalid JSON can only be over-estimated, which is harmless: it is refused anyway.
    """
    if text.count("[") + text.count("{") <= _MAX_JSON_DEPTH:
        return text.count("[") + text.count("{")  # an upper bound, enough to accept quickly
    structure = _STRING.sub("", text).encode("utf-8", "surrogatepass")
    codes = np.frombuffer(structure, dtype=np.uint8)
    deepest, level = 0, 0
    for start in range(0, codes.size, 1 << 20):
        chunk = codes[start : start + (1 << 20)]
        steps = (chunk == ord("[")).astype(np.int64) + (chunk == ord("{"))
        steps -= (chunk == ord("]")).astype(np.int64) + (chunk == ord("}"))
        levels = level + np.cumsum(steps)
        if levels.size:
            deepest, level = max(deepest, int(levels.max())), int(levels[-1])
    return deepest


def _parse_json(text: str, where: str, what: str) -> Any:
    """`json.loads(text)` with its nesting bounded first; CheckpointError naming `what` otherwise."""
    depth = _json_depth(text)
    if depth > _MAX_JSON_DEPTH:
        raise CheckpointError(f"{where} is corrupted: {what} nests more than {_MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError, or e.g. an integer of 10**5 digits
        raise CheckpointError(f"{where} is corrupted: {what} is not valid JSON") from None


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
            # each array was read into its own fresh buffer: only a second use needs a copy
            array = np.array(arrays[body], copy=True) if body in used else arrays[body]
            used.add(body)
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
        h.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8).data)  # no copy of the bytes
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
    try:
        for name, obj in (("model", model), ("optimizer", optimizer), ("scheduler", scheduler)):
            if obj is None:
                continue
            if not callable(getattr(obj, "state_dict", None)):
                raise CheckpointError(f"{name} must have a state_dict() method, got {type(obj).__name__}")
            components[name] = encoder.encode(obj.state_dict(), (name,))
            classes[name] = _class_name(obj)
        if extra is not None:
            components["extra"] = encoder.encode(dict(extra), ("extra",))
    except RecursionError:
        raise CheckpointError(
            f"cannot store the state: it nests deeper than the {_MAX_JSON_DEPTH} levels a checkpoint allows"
        ) from None
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
    except RecursionError:
        header = "[" * (_MAX_JSON_DEPTH + 1)  # refused just below
    if _json_depth(header) > _MAX_JSON_DEPTH:  # read_checkpoint would refuse such a file
        raise CheckpointError(
            f"cannot store the state: it nests deeper than the {_MAX_JSON_DEPTH} levels a checkpoint allows"
        )
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


def _memory_budget() -> int | None:
    """Bytes of memory this process can still use (MemAvailable, capped by a cgroup v2 limit),
    or None where that cannot be told."""
    budget: int | None = None
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    budget = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            room = max(int(limit) - used, 0)
            budget = room if budget is None else min(budget, room)
    except (OSError, ValueError):
        pass
    if budget is None and hasattr(os, "sysconf"):
        try:
            budget = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (OSError, ValueError):
            budget = None
    return budget


@dataclass(frozen=True)
class _TensorEntry:
    name: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    begin: int
    end: int


def _tensor_entries(header: dict[str, Any], where: str, payload: int) -> list[_TensorEntry]:
    """The header's tensors, each checked — dtype, shape, byte range — against the `payload`
    bytes the file really holds after its header, in file order; nothing is allocated."""
    entries: list[_TensorEntry] = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        what = f"{where} is corrupted: tensor {name[:80]!r}"
        if not isinstance(info, dict):
            raise CheckpointError(f"{what} has a malformed header entry")
        dtype_name = info.get("dtype")
        dtype = _DTYPES.get(dtype_name) if isinstance(dtype_name, str) else None
        if dtype is None:
            raise CheckpointError(f"{what} has an unsupported dtype {str(info.get('dtype'))[:20]!r}")
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if not (
            isinstance(shape, list)
            and len(shape) <= 64
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
        ):
            raise CheckpointError(f"{what} has a malformed shape {str(shape)[:40]}")
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in offsets)
            and offsets[0] <= offsets[1]
        ):
            raise CheckpointError(f"{what} has malformed data offsets {str(offsets)[:60]}")
        begin, end = offsets
        if end > payload:
            raise CheckpointError(
                f"{where} is truncated: tensor {name[:80]!r} claims bytes {begin}..{end} of array data, "
                f"the file holds {payload}"
            )
        size = dtype.itemsize * math.prod(shape)
        if end - begin != size:
            raise CheckpointError(
                f"{what} has shape {tuple(shape)} of {dtype.name} ({size} bytes) "
                f"but spans {end - begin} bytes"
            )
        entries.append(_TensorEntry(name, dtype, tuple(shape), begin, end))
    entries.sort(key=lambda entry: (entry.begin, entry.end))
    position = 0
    for entry in entries:
        if entry.begin != position:
            raise CheckpointError(
                f"{where} is corrupted: tensor {entry.name[:80]!r} starts at byte {entry.begin} of the array "
                f"data, expected {position} (tensors overlap or leave a gap)"
            )
        position = entry.end
    if position != payload:
        state = "truncated" if payload < position else "corrupted (trailing bytes)"
        raise CheckpointError(
            f"{where} is {state}: its arrays need {position} bytes, the file holds {payload}"
        )
    return entries


def _read_exactly(file: Any, view: memoryview, where: str) -> None:
    """Fill `view` from `file`; CheckpointError when the file ends first (it shrank meanwhile)."""
    done = 0
    while done < len(view):
        count = file.readinto(view[done:])
        if not count:
            raise CheckpointError(f"{where} is truncated: it ended while being read")
        done += count


def _open_regular(source: Path, where: str) -> tuple[int, int]:
    """Open `source` for reading without ever blocking; refuse anything but a regular file.

    Returns the descriptor and the file's size (from the opened file itself)."""
    try:
        info = os.stat(source)
    except FileNotFoundError:
        raise CheckpointError(f"{where} does not exist") from None
    except OSError as error:
        raise CheckpointError(f"{where} cannot be read: {error.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise CheckpointError(f"{where} is a folder, expected a checkpoint file")
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(
            f"{where} is not a regular file (a FIFO, socket or device), expected a checkpoint file"
        )
    flags = (
        os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    )
    try:
        fd = os.open(source, flags)
    except OSError as error:
        raise CheckpointError(f"{where} cannot be read: {error.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # replaced between the stat and the open
        os.close(fd)
        raise CheckpointError(
            f"{where} is not a regular file (a FIFO, socket or device), expected a checkpoint file"
        )
    return fd, info.st_size


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and verify a checkpoint file without loading it into anything.

    Raises `CheckpointError` for a missing, truncated or corrupted file, a digest mismatch, a
    file that is not an extensor checkpoint, or anything that is not a regular file (a FIFO or
    a device is refused without being waited on). Everything the header claims — its own size
    and nesting, every tensor's dtype, shape and byte range — is checked against the file's real
    size (and the memory available) before any array is allocated or read.
    """
    source = Path(path)
    where = f"checkpoint {str(source)!r}"
    fd, file_size = _open_regular(source, where)
    with os.fdopen(fd, "rb", buffering=0) as file:
        try:
            return _read_open(file, file_size, source, where)
        except OSError as error:
            raise CheckpointError(f"{where} cannot be read: {error.strerror or error}") from None


def _read_open(file: Any, file_size: int, source: Path, where: str) -> Checkpoint:
    """`read_checkpoint` of an opened regular file of `file_size` bytes."""
    if file_size < 8:
        raise CheckpointError(f"{where} is truncated: {file_size} bytes, too short for a safetensors header")
    prefix = bytearray(8)
    _read_exactly(file, memoryview(prefix), where)
    (header_length,) = struct.unpack("<Q", prefix)
    if header_length > min(_MAX_HEADER_BYTES, file_size - 8):
        raise CheckpointError(
            f"{where} is truncated or corrupted: its header claims {header_length} bytes but the file has "
            f"{file_size - 8} after the length field"
        )
    raw_header = bytearray(header_length)
    _read_exactly(file, memoryview(raw_header), where)
    try:
        header_text = raw_header.decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError(f"{where} is corrupted: its safetensors header is not valid JSON") from None
    header = _parse_json(header_text, where, "its safetensors header")
    if not isinstance(header, dict):
        raise CheckpointError(f"{where} is corrupted: its safetensors header is not a JSON object")
    payload = file_size - 8 - header_length
    entries = _tensor_entries(header, where, payload)
    metadata = header.get("__metadata__")
    raw_meta = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    if not isinstance(raw_meta, str):
        raise CheckpointError(
            f"{where} is a safetensors file but not an extensor checkpoint (no {METADATA_KEY!r})"
        )
    meta = _parse_json(raw_meta, where, "its metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("components"), dict):
        raise CheckpointError(f"{where} is corrupted: its metadata lacks the components table")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{where} has format version {str(meta.get('format_version'))[:20]!r}; "
            f"this extensor reads version {FORMAT_VERSION}"
        )
    budget = _memory_budget()
    if budget is not None and payload > budget and entries:
        largest = max(entries, key=lambda entry: entry.end - entry.begin)
        raise CheckpointError(
            f"{where} claims {payload} bytes of arrays (tensor {largest.name[:80]!r} alone "
            f"{largest.end - largest.begin}), more than the {budget} bytes of memory available"
        )
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    try:
        for entry in entries:
            array = np.empty(entry.shape, dtype=entry.dtype)
            _read_exactly(file, array.reshape(-1).view(np.uint8).data, where)
            arrays[entry.name] = array
    except MemoryError:
        raise CheckpointError(
            f"{where}: not enough memory to read tensor {entry.name[:80]!r} ({entry.end - entry.begin} bytes)"
        ) from None
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
    created = meta.get("created", 0.0)
    if not isinstance(classes, dict) or isinstance(created, bool) or not isinstance(created, (int, float)):
        raise CheckpointError(f"{where} is corrupted: malformed classes or creation time in its metadata")
    return Checkpoint(
        path=source,
        model=decoded.get("model"),
        optimizer=decoded.get("optimizer"),
        scheduler=decoded.get("scheduler"),
        extra=extra,
        classes={str(k): str(v) for k, v in classes.items()},
        rng_state=meta.get("rng_state"),
        version=str(meta.get("version", "unknown")),
        created=float(created),
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
    # an extensor optimizer names its element-wise buffers (shaped as their parameter); its other
    # state (L-BFGS's history, Adafactor's factored moments) is checked by its own load_state_dict,
    # which validates everything before it writes
    elementwise = getattr(optimizer, "state_names", None)
    for index, entry in state.items():
        if index not in params:
            raise CheckpointError(f"{where}: state for parameter {index!r}, which no group lists")
        if not isinstance(entry, dict):
            raise CheckpointError(f"{where}: the state of parameter {index} is not a dict")
        param = params[index]
        for name, value in entry.items():
            if elementwise is not None and name not in elementwise:
                continue
            if isinstance(value, np.ndarray) and value.ndim > 0:
                problem = _array_mismatch(f"state {name!r} of parameter {index}", value, param.data)
                # bfloat16 / int8 state (unsigned codes) has its own dtype; load_state_dict checks its form
                compact = value.dtype.kind == "u" and value.shape == param.shape
                if problem and not compact:
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
