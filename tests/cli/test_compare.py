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


def test_compare_over_seeds_reports_median_and_spread(
    run_cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    out = tmp_path / "seeds"
    result = run_cli(
        "compare", "--optimizers", "adam", "--seeds", "2", "--seed", "5", "--task", "digits-mlp",
        *quick_args(epochs=2, batch_size=128, plots=True), "--out", str(out),
    )  # fmt: skip
    assert result.status == 0, result.err
    assert "task digits-mlp" in result.out and "seeds 5-6 (median [min, max])" in result.out
    finals = [100 * read_metrics(out / "adam" / f"seed-{seed}")[-1]["test_accuracy"] for seed in (5, 6)]
    assert finals[0] != finals[1]  # two seeds, two different runs
    (row,) = [line for line in result.out.splitlines() if line.startswith("| adam")]
    accuracy = row.split("|")[4].strip()
    assert accuracy == f"{sum(finals) / 2:.2f} [{min(finals):.2f}, {max(finals):.2f}]"
    assert (out / "compare.png").read_bytes().startswith(b"\x89PNG")


def test_time_to_target_is_the_first_evaluation_that_meets_it() -> None:
    from extensor.cli.compare import time_to_target
    from extensor.cli.tasks import TASKS

    class Result:
        def __init__(self, losses: list[float]) -> None:
            self.records = [
                {"step": 10 * k, "seconds": float(k), "test_loss": loss} for k, loss in enumerate(losses, 1)
            ]

    assert time_to_target(Result([2.5, 1.85, 1.7]), TASKS["shakespeare-gpt"]) == (20, 2.0)  # type: ignore[arg-type]
    assert time_to_target(Result([2.5]), TASKS["shakespeare-gpt"]) is None  # type: ignore[arg-type]


def test_compare_batch_sizes_scales_the_lr_linearly(run_cli: Callable[..., Outcome], tmp_path: Path) -> None:
    out = tmp_path / "batches"
    result = run_cli(
        "compare", "--optimizers", "sgd:0.1", "--batch-sizes", "64,256", *quick_args(epochs=1, plots=True),
        "--batch-size", "64", "--out", str(out),
    )  # fmt: skip
    assert result.status == 0, result.err
    rows = [line.split("|") for line in result.out.splitlines() if line.startswith("| sgd")]
    assert [(r[2].strip(), r[3].strip()) for r in rows] == [("64", "0.1"), ("256", "0.4")]
    assert read_metrics(out / "sgd" / "batch-256")[-1]["step"] == 6  # 1438 / 256 -> 6 steps
    assert (out / "batch_sizes.png").read_bytes().startswith(b"\x89PNG")
    bad = run_cli("compare", "--batch-sizes", "0,32", *quick_args(plots=True), "--out", str(tmp_path / "bad"))
    assert bad.status == 2 and "--batch-sizes must list positive batch sizes" in bad.err
