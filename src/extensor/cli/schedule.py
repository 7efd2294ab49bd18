"""`extensor schedule NAME [KEY=VALUE ...]`: print or plot a scheduler's lr (and momentum) curve, no training.

The scheduler is the real one from `extensor.training.schedulers`, driven by a one-parameter
optimizer that is never stepped, so the numbers are exactly those a training run would see at
each optimizer step. Arguments are the scheduler's own (T_max=100, gamma=0.5, ...); the ones that
describe the run's length default to `--steps`, as in `extensor train`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from extensor.cli import builders, config, plots, report
from extensor.cli.config import ConfigError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `extensor schedule`."""
    names = ", ".join(["none", *builders.SCHEDULER_ALIASES])
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "schedule",
        help="print or plot a learning-rate schedule without training",
        description=f"Print or plot the lr (and momentum) a scheduler gives at each step. "
        f"NAME: {names}, or a "
        "scheduler class name. Example: extensor schedule onecycle --steps 1000 --plot onecycle.png",
    )
    parser.add_argument("name", metavar="NAME", help="scheduler alias or class name")
    # default=[]: without it argparse reports the optional list as a missing required argument
    parser.add_argument(
        "arguments", nargs="*", default=[], metavar="KEY=VALUE", help="the scheduler's arguments"
    )
    parser.add_argument("--steps", type=int, default=100, help="number of optimizer steps (default: 100)")
    parser.add_argument("--lr", type=float, default=0.1, help="base learning rate (default: 0.1)")
    parser.add_argument(
        "--optimizer",
        choices=("sgd", "adam"),
        default="sgd",
        help="sgd reports its momentum, adam its beta1 (default: sgd)",
    )
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default: 0.9)")
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="used by cyclic/restart defaults (default: steps / 10)",
    )
    parser.add_argument(
        "--warmup-steps", type=int, default=0, help="linear warm-up steps before it (default: 0)"
    )
    parser.add_argument(
        "--warmup-start-factor",
        type=float,
        default=0.1,
        help="warm-up starts at this fraction of the lr (default: 0.1)",
    )
    parser.add_argument(
        "--every", type=int, default=None, help="print every K-th step (default: about 50 rows)"
    )
    parser.add_argument("--plot", metavar="FILE.png", help="write a PNG plot instead of printing")
    parser.set_defaults(handler=command)
    return parser


def schedule_curve(
    name: str,
    arguments: dict[str, Any],
    *,
    steps: int,
    lr: float = 0.1,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    steps_per_epoch: int | None = None,
    warmup_steps: int = 0,
    warmup_start_factor: float = 0.1,
) -> tuple[str, list[float], list[float]]:
    """The description, lr and momentum (beta1 for adam) at each of `steps` optimizer steps."""
    from extensor.core import ExTensor
    from extensor.training import optimizers

    if steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {steps}")
    if lr <= 0 or not math.isfinite(lr):
        raise ConfigError(f"--lr must be a positive number, got {lr}")
    if steps_per_epoch is not None and steps_per_epoch < 1:
        raise ConfigError(f"--steps-per-epoch must be >= 1, got {steps_per_epoch}")
    if warmup_steps < 0:
        raise ConfigError(f"--warmup-steps must be >= 0, got {warmup_steps}")
    if not 0 < warmup_start_factor <= 1:
        raise ConfigError(f"--warmup-start-factor must be in (0, 1], got {warmup_start_factor}")
    class_name = builders.scheduler_class_name(name)
    if class_name == "ReduceLROnPlateau":
        raise ConfigError("ReduceLROnPlateau follows a measured metric; it has no curve without training")
    parameter = ExTensor(np.zeros(1, np.float32), requires_grad=True)
    opt: Any = (
        optimizers.SGD([parameter], lr=lr, momentum=momentum)
        if optimizer == "sgd"
        else optimizers.Adam([parameter], lr=lr)
    )
    schedule = builders.build_scheduler(
        opt,
        name,
        arguments,
        total_steps=steps,
        steps_per_epoch=steps_per_epoch or max(1, steps // 10),
        warmup_steps=warmup_steps,
        warmup_start_factor=warmup_start_factor,
    )
    # a dry run: the schedule is stepped without optimizer steps, on purpose (no order warning)
    opt._opt_called = True
    lrs: list[float] = []
    momenta: list[float] = []
    group = opt.param_groups[0]
    for step in range(steps):
        lrs.append(float(group["lr"]))
        momenta.append(float(group["momentum"]) if "momentum" in group else float(group["betas"][0]))
        if schedule is not None and step < steps - 1:
            schedule.scheduler.step()
    return (schedule.description if schedule else "constant lr"), lrs, momenta


def command(args: argparse.Namespace) -> int:
    """Run `extensor schedule`."""
    arguments: dict[str, Any] = {}
    for item in args.arguments:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ConfigError(f"scheduler arguments must look like KEY=VALUE (e.g. T_max=100), got {item!r}")
        arguments[key] = config.parse_value(value)
    description, lrs, momenta = schedule_curve(
        args.name,
        arguments,
        steps=args.steps,
        lr=args.lr,
        optimizer=args.optimizer,
        momentum=args.momentum,
        steps_per_epoch=args.steps_per_epoch,
        warmup_steps=args.warmup_steps,
        warmup_start_factor=args.warmup_start_factor,
    )
    varies = len(set(momenta)) > 1
    if args.plot:
        path = plots.schedule_plot(Path(args.plot), description, lrs, momenta if varies else None)
        print(
            f"{description}: {args.steps} steps, lr from {lrs[0]:.6g} to {lrs[-1]:.6g}; "
            f"plot written to {path}"
        )
        return 0
    if args.every is not None and args.every < 1:
        raise ConfigError(f"--every must be >= 1, got {args.every}")
    every = args.every or max(1, math.ceil(len(lrs) / 50))
    shown = sorted(set(range(0, len(lrs), every)) | {len(lrs) - 1})
    headers = ["step", "lr"] + (["momentum"] if varies else [])
    rows = [[s, f"{lrs[s]:.8g}"] + ([f"{momenta[s]:.6g}"] if varies else []) for s in shown]
    print(description)
    print(report.markdown_table(headers, rows))
    return 0
