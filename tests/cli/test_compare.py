"""`extensor compare` on tiny settings: one row per optimizer, one figure, the same data for all."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .conftest import Outcome, quick_args, read_metrics


def test_compare_two_optimizers(run_cli: Callable[..., Outcome], tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    result = run_cli(
        "compare",
        "--optimizers",
        "sgd,adam:0.01",
        *quick_args(epochs=2, batch_size=128, plots=True),
        "--out",
        str(out),
    )
    assert result.status == 0, result.err
    table = (out / "compare.md").read_text()
    assert table.strip().endswith(result.out.split("\n\n")[1].strip().splitlines()[-1])
    rows = [line for line in table.splitlines() if line.startswith("| ") and "optimizer" not in line]
    assert [r.split("|")[1].strip() for r in rows] == ["sgd", "adam"]
    assert [r.split("|")[2].strip() for r in rows] == ["1", "0.01"]  # sgd at its recommended lr
    assert (out / "compare.png").read_bytes().startswith(b"\x89PNG")
    for name in ("sgd", "adam"):
        records = read_metrics(out / name)
        assert len(records) == 2
        accuracy = float(next(r for r in rows if r.split("|")[1].strip() == name).split("|")[4])
        assert abs(accuracy - 100 * records[-1]["test_accuracy"]) <= 0.005  # printed with 2 decimals
        assert not (out / name / "checkpoints").exists()
