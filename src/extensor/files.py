"""Crash-safe file writing shared by every layer (checkpoints, datasets, CLI run folders).

Low level on purpose: this module imports nothing of extensor, so `data`, `training` and `cli`
can all use it without importing one another.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically: temp file in the same folder, fsync, rename, fsync the folder.

    Readers see either the old file or the complete new one, even across a crash or power loss
    (the rename is atomic on POSIX and Windows because source and target share a folder; the
    folder's fsync makes the rename itself durable). Missing parent folders are created. On any
    error, including KeyboardInterrupt, the temporary file is removed and `path` is untouched.
    Returns the destination path.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    fsync_directory(folder)
    return target


def fsync_directory(folder: str | os.PathLike[str]) -> None:
    """Make a rename or creation inside `folder` durable by fsync'ing the folder itself.

    A no-op where the platform cannot open or fsync a folder (Windows, some network filesystems):
    there the rename is as durable as the platform allows and nothing better is possible.
    """
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = ["atomic_write_bytes", "fsync_directory"]
