"""extensor.files: atomic writes leave the old file or the whole new one, never a temporary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from extensor.files import atomic_write_bytes, fsync_directory


def test_atomic_write_replaces_whole_file_and_leaves_no_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.bin"
    assert atomic_write_bytes(target, b"first") == target
    atomic_write_bytes(target, b"second, longer")
    assert target.read_bytes() == b"second, longer"
    assert os.listdir(tmp_path / "sub") == ["file.bin"]


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_atomic_write_failure_keeps_previous_file(
    failing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"good")

    def broken(*args: Any) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, failing, broken)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_bytes(target, b"bad")
    assert target.read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["file.bin"]


def test_atomic_write_removes_temporary_on_keyboard_interrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "file.bin", b"data")
    assert os.listdir(tmp_path) == []


def test_fsync_directory_ignores_a_folder_it_cannot_open(tmp_path: Path) -> None:
    fsync_directory(tmp_path)
    fsync_directory(tmp_path / "missing")  # must not raise: durability is best effort
