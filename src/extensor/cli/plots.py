"""PNG figures of a run (loss, accuracy, learning rate against step) and of a comparison, with matplotlib's
Agg backend (no display needed). matplotlib is imported only when a figure is drawn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def smooth(values: Sequence[float], window: int) -> np.ndarray[Any, Any]:
    """Trailing moving average over `window` points (shorter at the start), for noisy per-step losses."""
    array = np.asarray(values, dtype=np.float64)
    if window <= 1 or array.size == 0:
        return array
    cumulative = np.cumsum(np.insert(array, 0, 0.0))
    index = np.arange(1, array.size + 1)
    start = np.maximum(index - window, 0)
    return (cumulative[index] - cumulative[start]) / (index - start)


def run_plots(
    folder: Path,
    records: Sequence[Mapping[str, Any]],
    step_loss: Sequence[float],
    step_lr: Sequence[float],
    steps_per_epoch: int,
) -> list[Path]:
    """Write loss.png, accuracy.png and lr.png into `folder`; return their paths."""
    plt = _pyplot()
    steps = np.arange(1, len(step_loss) + 1)
    epoch_steps = [r["step"] for r in records]
    written = []

    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(steps, step_loss, color="tab:blue", alpha=0.25, linewidth=0.8, label="train (per step)")
    ax.plot(
        steps, smooth(step_loss, max(1, steps_per_epoch // 4)), color="tab:blue", label="train (smoothed)"
    )
    ax.plot(
        epoch_steps, [r["test_loss"] for r in records], "o-", color="tab:orange", label="test (per epoch)"
    )
    ax.set(xlabel="step", ylabel="cross-entropy loss", title="Loss", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend()
    written.append(_save(fig, folder / "loss.png", plt))

    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(epoch_steps, [100 * r["train_accuracy"] for r in records], "o-", label="train")
    ax.plot(epoch_steps, [100 * r["test_accuracy"] for r in records], "o-", label="test")
    ax.set(xlabel="step", ylabel="accuracy (%)", title="Accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    written.append(_save(fig, folder / "accuracy.png", plt))

    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(steps, step_lr, color="tab:green")
    ax.set(xlabel="step", ylabel="learning rate", title="Learning rate")
    ax.grid(alpha=0.3)
    written.append(_save(fig, folder / "lr.png", plt))
    return written


def compare_plot(path: Path, runs: Mapping[str, Mapping[str, Any]]) -> Path:
    """One figure: smoothed train loss per step (left) and test accuracy per epoch (right) of every run.

    `runs` maps a label to {"step_loss": [...], "records": [...], "steps_per_epoch": n}.
    """
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, run in runs.items():
        losses = run["step_loss"]
        window = max(1, int(run["steps_per_epoch"]) // 2)
        (line,) = left.plot(np.arange(1, len(losses) + 1), smooth(losses, window), label=label)
        records = run["records"]
        right.plot(
            [r["step"] for r in records],
            [100 * r["test_accuracy"] for r in records],
            "o-",
            color=line.get_color(),
            label=label,
            markersize=3,
        )
    left.set(xlabel="step", ylabel="train loss (moving average)", title="Training loss", yscale="log")
    right.set(xlabel="step", ylabel="test accuracy (%)", title="Test accuracy")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path, plt)


def schedule_plot(path: Path, title: str, lrs: Sequence[float], momenta: Sequence[float] | None) -> Path:
    """The learning rate (and, when given, the momentum on a second axis) against step."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    steps = np.arange(len(lrs))
    ax.plot(steps, lrs, color="tab:green", label="lr")
    ax.set(xlabel="step", ylabel="learning rate", title=title)
    ax.grid(alpha=0.3)
    if momenta is not None:
        twin = ax.twinx()
        twin.plot(steps, momenta, color="tab:purple", linestyle="--", label="momentum")
        twin.set_ylabel("momentum / beta1")
        fig.legend(loc="upper right", bbox_to_anchor=(0.88, 0.88))
    fig.tight_layout()
    return _save(fig, path, plt)


def _save(fig: Any, path: Path, plt: Any) -> Path:
    """Write `fig` to `path` (".png" added when it has no suffix, as matplotlib would) and return the path."""
    if not path.suffix:
        path = path.with_name(path.name + ".png")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path
