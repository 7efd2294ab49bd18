"""Draw the documentation's plots into docs/generated/: optimizer trajectories and scheduler curves.

Every optimizer of ``extensor.training.optimizers.__all__`` (and the wrappers Lookahead and
AveragedModel of ``extensor.training``) runs 400 steps on the 2-D Rosenbrock function
f(x, y) = (1 − x)² + 100 (y − x²)² from (−1.2, 1); each schedule of
``extensor.training.schedulers.curves.CURVES`` is drawn over 100 steps. An optimizer that
`docs/catalog.py` does not know is run at the best learning rate of a small grid.

Usage: ``python docs/gen_plots.py [--out DIR]`` (default docs/generated).
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import extensor
from extensor import nn
from extensor.training import AveragedModel, Lookahead, get_ema_multi_avg_fn
from extensor.training import optimizers as optim
from extensor.training.schedulers import curves

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalog import ENTRIES

START = (-1.2, 1.0)
STEPS = 400
GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def rosenbrock(w: np.ndarray) -> tuple[float, np.ndarray]:
    """The Rosenbrock function and its gradient at the point ``w = (x, y)``."""
    x, y = float(w[0]), float(w[1])
    value = (1 - x) ** 2 + 100 * (y - x * x) ** 2
    return value, np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])


def optimizer_names() -> list[str]:
    """The optimizer classes exported by ``extensor.training.optimizers``, in ``__all__`` order."""
    names = []
    for name in optim.__all__:
        obj = getattr(optim, name)
        if isinstance(obj, type) and issubclass(obj, optim.Optimizer) and obj is not optim.Optimizer:
            names.append(name)
    return names


class _Point(nn.Module):
    """A module holding one 1x2 parameter, so that AveragedModel has something to average."""

    def __init__(self, w: extensor.ExTensor) -> None:
        super().__init__()
        self.w = w


def trajectory(name: str, lr: float, options: dict[str, Any]) -> np.ndarray:
    """The points visited by optimizer `name` (or wrapper) in `STEPS` steps from `START`."""
    point = nn.Parameter(np.array([START], dtype=np.float64))
    inner = options.get("inner")
    kwargs = {k: v for k, v in options.items() if k not in ("lr", "inner")}
    averaged: AveragedModel | None = None
    opt: Any
    if name == "Lookahead":
        opt = Lookahead(getattr(optim, str(inner))([point], lr=lr), k=5, alpha=0.5)
    elif name == "AveragedModel":
        opt = getattr(optim, str(inner))([point], lr=lr)
        averaged = AveragedModel(_Point(point), multi_avg_fn=get_ema_multi_avg_fn(0.95))
    else:
        opt = getattr(optim, name)([point], lr=lr, **kwargs)
    if hasattr(opt, "train"):
        opt.train()

    def closure() -> float:
        value, grad = rosenbrock(point.data.ravel())
        point.grad = grad.reshape(1, 2)
        return value

    path = [point.data.ravel().copy()]
    needs_closure = bool(getattr(opt, "requires_closure", False))
    for _ in range(STEPS):
        if needs_closure:
            opt.step(closure)
        else:
            closure()
            opt.step()
        if averaged is not None:
            averaged.update_parameters(_Point(point))
            path.append(averaged.module.w.data.ravel().copy())
        else:
            path.append(point.data.ravel().copy())
    return np.array(path)


def settings(name: str) -> dict[str, Any]:
    """The plot's learning rate and options: the catalog's, or the best of `GRID` by final value."""
    known = ENTRIES.get(name, {}).get("plot")
    if known is not None:
        return dict(known)
    best: tuple[float, float] = (math.inf, GRID[0])
    for lr in GRID:
        try:
            final = rosenbrock(trajectory(name, lr, {})[-1])[0]
        except (ValueError, FloatingPointError, OverflowError):
            continue
        if math.isfinite(final) and final < best[0]:
            best = (final, lr)
    return {"lr": best[1]}


def plot_trajectory(name: str, out: Path) -> None:
    """Write ``rosenbrock-<name>.png``: the contour of the function and the optimizer's path."""
    options = settings(name)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = trajectory(name, float(options["lr"]), options)
    finite = path[np.all(np.isfinite(path), axis=1)]
    xs, ys = np.meshgrid(np.linspace(-2, 2, 200), np.linspace(-1, 3, 200))
    zs = (1 - xs) ** 2 + 100 * (ys - xs**2) ** 2
    fig, ax = plt.subplots(figsize=(5, 4), dpi=90)
    ax.contour(xs, ys, np.log10(zs + 1e-3), levels=20, cmap="Greys", linewidths=0.6)
    ax.plot(finite[:, 0], finite[:, 1], ".-", color="C0", markersize=2, linewidth=0.8)
    ax.plot(*START, "o", color="C1", label="start")
    ax.plot(1, 1, "*", color="C3", markersize=12, label="minimum (1, 1)")
    final = rosenbrock(path[-1])[0]
    extra = ", ".join(f"{k}={v}" for k, v in options.items() if k != "lr")
    ax.set_title(
        f"{name}, lr={options['lr']:g}{', ' + extra if extra else ''}: f = {final:.3g} after {STEPS} steps",
        fontsize=9,
    )
    ax.set_xlim(-2, 2)
    ax.set_ylim(-1, 3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"rosenbrock-{name}.png")
    plt.close(fig)


SCHEDULES: dict[str, dict[str, Any]] = {
    "StepLR": {"step_size": 30, "gamma": 0.5},
    "MultiStepLR": {"milestones": [30, 60, 80], "gamma": 0.5},
    "ExponentialLR": {"gamma": 0.97},
    "ConstantLR": {"factor": 0.5, "total_iters": 20},
    "LinearLR": {"start_factor": 0.1, "total_iters": 30},
    "PolynomialLR": {"total_iters": 100, "power": 2.0},
    "CosineAnnealingLR": {"T_max": 100, "eta_min": 0.001},
    "CosineAnnealingWarmRestarts": {"T_0": 20, "T_mult": 2},
    "OneCycleLR": {"total_steps": 101},
    "CyclicLR": {"max_lr": 0.1, "step_size_up": 15, "base_lr": 0.01},
}


def plot_schedule(name: str, curve: Callable[..., float], out: Path) -> None:
    """Write ``schedule-<name>.png``: the curve over 100 steps at base lr 0.1 (OneCycle: max_lr)."""
    kwargs = dict(SCHEDULES.get(name, {}))
    params = inspect.signature(curve).parameters
    lr_name = "max_lr" if "max_lr" in params and "base_lr" not in params else "base_lr"
    kwargs.setdefault(lr_name, 0.1)
    steps = np.arange(101)
    values = [curve(int(s), **kwargs) for s in steps]
    fig, ax = plt.subplots(figsize=(5, 2.6), dpi=90)
    ax.plot(steps, values)
    shown = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    ax.set_title(f"{name}({shown})", fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel("lr")
    fig.tight_layout()
    fig.savefig(out / f"schedule-{name}.png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Draw every plot into the output folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "generated")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in [*optimizer_names(), "Lookahead", "AveragedModel"]:
        plot_trajectory(name, args.out)
    for name, curve in curves.CURVES.items():
        plot_schedule(name, curve, args.out)


if __name__ == "__main__":
    main()
