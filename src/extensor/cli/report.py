"""What a run leaves behind in text: the metrics file (one JSON record per epoch) and markdown tables."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from extensor.files import atomic_write_bytes

#: The fields of a metrics record, in order.
METRIC_FIELDS = (
    "epoch",
    "step",
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "lr",
    "seconds",
)


def append_record(path: Path, record: Mapping[str, Any]) -> None:
    """Append one record as a JSON line and flush it to disk."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(dict(record)) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def write_records(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    """Replace the metrics file atomically with exactly `records` (used when a run resumes)."""
    text = "".join(json.dumps(dict(r)) + "\n" for r in records)
    atomic_write_bytes(path, text.encode("utf-8"))


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _cell(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3e}"
        return f"{value:.{digits}f}"
    return str(value)


def _is_number(value: Any) -> bool:
    if isinstance(value, (int, float)):
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table with right-aligned numeric columns."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [bool(rows) and all(_is_number(r[i]) for r in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True)]
        return "| " + " | ".join(parts) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if n else ("-" * (w + 2)) for w, n in zip(widths, numeric, strict=True)
        )
        + "|"
    )
    return "\n".join([line(list(headers)), rule, *(line(r) for r in cells)])


def epochs_table(records: Sequence[Mapping[str, Any]]) -> str:
    """The per-epoch summary of a run as a markdown table (accuracies in percent)."""
    headers = ["epoch", "step", "train loss", "train acc %", "test loss", "test acc %", "lr", "seconds"]
    rows = [
        [
            r["epoch"],
            r["step"],
            f"{r['train_loss']:.4g}",
            f"{100 * r['train_accuracy']:.2f}",
            f"{r['test_loss']:.4g}",
            f"{100 * r['test_accuracy']:.2f}",
            f"{r['lr']:.4g}",
            f"{r['seconds']:.1f}",
        ]
        for r in records
    ]
    return markdown_table(headers, rows)
