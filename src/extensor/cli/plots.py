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


def _band(ax: Any, x: Any, runs: np.ndarray[Any, Any], label: str, color: Any = None, **style: Any) -> Any:
    """The median over runs (rows) of a curve, with the min–max band shaded; returns the line's color."""
    (line,) = ax.plot(x, np.median(runs, axis=0), label=label, color=color, **style)
    if runs.shape[0] > 1:
        ax.fill_between(x, runs.min(axis=0), runs.max(axis=0), color=line.get_color(), alpha=0.2, linewidth=0)
    return line.get_color()


def compare_plot(
    path: Path,
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    metric: str = "test_accuracy",
    target: float | None = None,
) -> Path:
    """One figure of every optimizer's runs (one per seed): the median and the min–max band over
    seeds of the smoothed training loss against steps (left), and of the evaluation `metric`
    against steps (middle) and against wall-clock seconds (right; x is the median time of each
    evaluation). A dashed line marks the task's `target`.

    `runs` maps a label to a list of {"step_loss": [...], "records": [...], "steps_per_epoch": n}.
    """
    plt = _pyplot()
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.5))
    percent = metric.endswith("accuracy")
    scale = 100.0 if percent else 1.0
    for label, seeds in runs.items():
        window = max(1, int(seeds[0]["steps_per_epoch"]) // 2)
        losses = np.array([smooth(run["step_loss"], window) for run in seeds])
        color = _band(left, np.arange(1, losses.shape[1] + 1), losses, label)
        steps = [r["step"] for r in seeds[0]["records"]]
        values = np.array([[scale * r[metric] for r in run["records"]] for run in seeds])
        seconds = np.median(np.array([[r["seconds"] for r in run["records"]] for run in seeds]), axis=0)
        _band(middle, steps, values, label, color, marker="o", markersize=3)
        _band(right, seconds, values, label, color, marker="o", markersize=3)
    name = metric.replace("_", " ") + (" (%)" if percent else "")
    left.set(xlabel="step", ylabel="train loss (moving average)", title="Training loss", yscale="log")
    middle.set(xlabel="step", ylabel=name, title=f"{name.capitalize()} against steps")
    right.set(xlabel="wall-clock seconds", ylabel=name, title=f"{name.capitalize()} against time")
    for ax in (middle, right):
        if target is not None:
            ax.axhline(scale * target, color="grey", linestyle="--", linewidth=1, label="target")
    for ax in (left, middle, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path, plt)


def batch_size_plot(path: Path, finals: Mapping[str, Mapping[int, Sequence[float]]], metric: str) -> Path:
    """The final `metric` against the batch size (log scale) per optimizer: median over seeds, with
    the min–max band. `finals` maps an optimizer to {batch size: [final value per seed]}."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    scale = 100.0 if metric.endswith("accuracy") else 1.0
    for name, by_size in finals.items():
        sizes = sorted(by_size)
        values = np.array([[scale * v for v in by_size[size]] for size in sizes]).T
        _band(ax, sizes, values, name, marker="o", markersize=4)
    ax.set_xscale("log", base=2)
    name = metric.replace("_", " ") + (" (%)" if scale == 100.0 else "")
    ax.set(xlabel="batch size", ylabel=f"final {name}", title=f"Final {name} against batch size")
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
