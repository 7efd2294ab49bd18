"""`extensor compare`: one task trained with several optimizers over several seeds, side by side.

By default it runs the seed's comparison table — SGD, SGD with momentum, Adam, AdamW, RMSprop and
LARS — on the default task (`--task`, see `tasks.py`), each at its recommended learning rate.
With `--seeds N` every optimizer trains from seeds seed, seed+1, ..., seed+N-1 (the same N data
orders and initialisations for all optimizers), and the table reports the median and the
min–max spread of the final metric, of the steps and seconds to reach the task's target (the
first epoch whose evaluation meets it; "—" when a run never does) and of the wall time. The
figure (compare.png) draws, per optimizer, the median curve and the min–max band over seeds of
the training loss against steps and of the task's metric against steps and against seconds.
compare.md holds the header and the table, also printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from extensor.cli import builders, config, plots, report
from extensor.cli.config import ConfigError, Option
from extensor.cli.tasks import TASKS, Task
from extensor.cli.train import TRAIN_OPTIONS, RunResult, run_training

#: The optimizers of the seed's comparison table, compared by default.
SEED_TABLE = ("sgd", "sgd-momentum", "adam", "adamw", "rmsprop", "lars")
#: Every name --optimizers accepts and the settings it means: each optimizer of the CLI, plus
#: "sgd-momentum" (SGD with momentum 0.9, the seed table's vision default).
PRESETS: dict[str, dict[str, Any]] = {
    "sgd": {"optimizer": "sgd"},
    "sgd-momentum": {"optimizer": "sgd", "momentum": 0.9},
    **{name: {"optimizer": name} for name in config.OPTIMIZER_CLASSES if name != "sgd"},
    # AdamW with compact state (issue 12), to race against plain "adamw"
    "adamw-bfloat16": {"optimizer": "adamw", "state_dtype": "bfloat16"},
    "adamw-int8": {"optimizer": "adamw", "state_dtype": "int8"},
}
DEFAULT_OPTIMIZERS = ",".join(SEED_TABLE)


def _compare_options() -> tuple[Option, ...]:
    shorter = {"epochs": 10}  # six runs: keep the default comparison well under two minutes
    return tuple(
        dataclasses.replace(o, default=shorter[o.key]) if o.key in shorter else o
        for o in config.COMMON_OPTIONS
    )


COMPARE_OPTIONS = (
    *_compare_options(),
    Option(
        "optimizers",
        "str",
        DEFAULT_OPTIMIZERS,
        "comma-separated optimizers, each NAME or NAME:LR; names: " + ", ".join(PRESETS),
        metavar="LIST",
    ),
    Option("seeds", "int", 1, "train every optimizer from this many seeds (seed, seed+1, ...)", minimum=1),
    Option(
        "batch_sizes",
        "ints",
        None,
        "also vary the batch: train each optimizer at each of these batch sizes (e.g. 32,256,1024), its lr "
        "scaled linearly from the task's batch (the warm-up stays --warmup-epochs long, so fewer steps)",
        nullable=True,
        metavar="LIST",
    ),
    Option(
        "out", "str", None, "output folder (default: runs/compare-<timestamp>)", nullable=True, metavar="DIR"
    ),
)


def parse_optimizers(text: str) -> list[tuple[str, float | None]]:
    """`"sgd,adam:0.003"` -> [("sgd", None), ("adam", 0.003)], validating names and rates."""
    chosen: list[tuple[str, float | None]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, lr_text = item.partition(":")
        name = name.lower()
        if name not in PRESETS:
            raise ConfigError(f"unknown optimizer {name!r} in --optimizers; expected {', '.join(PRESETS)}")
        lr = None
        if lr_text:
            try:
                lr = float(lr_text)
            except ValueError:
                raise ConfigError(f"bad learning rate {lr_text!r} for {name} in --optimizers") from None
            if not lr >= 0:
                raise ConfigError(f"learning rate for {name} must be >= 0, got {lr_text}")
        chosen.append((name, lr))
    if not chosen:
        raise ConfigError("--optimizers names no optimizer")
    return chosen


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `extensor compare`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "compare",
        help="train one task with several optimizers (and seeds) and compare them",
        description="Train the same task from the same seeds with several optimizers; write compare.png "
        "(median curves with min-max bands) and compare.md (table of medians and spreads, time to the "
        "task's target). Every flag is also a --config key.",
    )
    parser.add_argument("--config", metavar="FILE.toml", help="read options from a TOML file (flags win)")
    config.add_arguments(parser, COMPARE_OPTIONS)
    parser.set_defaults(handler=command)
    return parser


def time_to_target(result: RunResult, task: Task) -> tuple[int, float] | None:
    """(steps, seconds) at the first evaluation that meets the task's target, or None."""
    for record in result.records:
        if task.reached(float(record[task.metric])):
            return int(record["step"]), float(record["seconds"])
    return None


def spread(values: list[float], fmt: str) -> str:
    """ "median" for one value, "median [min, max]" for several; "—" when there are none."""
    if not values:
        return "—"
    text = format(float(np.median(values)), fmt)
    if len(values) > 1:
        text += f" [{min(values):{fmt}}, {max(values):{fmt}}]"
    return text


def _row(name: str, lr: float, results: list[RunResult], task: Task) -> list[str]:
    scale = 100.0 if task.higher_is_better else 1.0  # accuracies in percent
    finals = [scale * float(r.records[-1][task.metric]) for r in results]
    reached = [hit for hit in (time_to_target(r, task) for r in results) if hit is not None]
    share = "" if len(results) == 1 else f" ({len(reached)}/{len(results)})"
    return [
        name,
        f"{lr:g}",
        spread([float(r.records[-1]["train_loss"]) for r in results], ".4g"),
        spread(finals, ".2f" if task.higher_is_better else ".4f"),
        spread([float(step) for step, _ in reached], ".0f") + (share if reached else ""),
        spread([seconds for _, seconds in reached], ".1f"),
        spread([r.seconds for r in results], ".1f"),
        spread([r.steps_per_second for r in results], ".0f"),
    ]


def _scaled_lr(lr: float, batch_size: int, base_batch: int) -> float:
    """The linear scaling rule (Goyal et al. 2017): the lr grows with the batch, from `base_batch`."""
    return lr * batch_size / base_batch


def command(args: argparse.Namespace) -> int:
    """Run `extensor compare`."""
    flags = {o.key: getattr(args, o.key) for o in COMPARE_OPTIONS if hasattr(args, o.key)}
    from_file = config.load_toml(args.config, COMPARE_OPTIONS) if args.config else {}
    settings = config.resolve_with_task(COMPARE_OPTIONS, from_file, flags, comparing=True)
    chosen = parse_optimizers(settings.pop("optimizers"))
    seeds = [int(settings["seed"]) + k for k in range(int(settings.pop("seeds")))]
    batch_sizes: list[int] | None = settings.pop("batch_sizes")
    if batch_sizes is not None and (not batch_sizes or min(batch_sizes) < 1):
        raise ConfigError(f"--batch-sizes must list positive batch sizes, got {batch_sizes}")
    folder = Path(settings.pop("out") or Path("runs") / time.strftime("compare-%Y%m%d-%H%M%S"))
    task = TASKS[settings["task"]]
    base = config.resolve(TRAIN_OPTIONS, {**settings, "plots": False})
    base_batch = int(base["batch_size"])
    sizes = batch_sizes or [base_batch]
    curves: dict[str, list[dict[str, Any]]] = {}
    finals: dict[str, dict[int, list[float]]] = {}
    rows = []
    width = max(len(name) for name, _ in chosen)
    for name, lr in chosen:
        for batch_size in sizes:
            run_settings = base | PRESETS[name] | {"lr": lr, "batch_size": batch_size}
            run_settings["lr"] = _scaled_lr(builders.resolved_lr(run_settings), batch_size, base_batch)
            tag = name if batch_sizes is None else f"{name}/batch-{batch_size}"
            results = []
            for seed in seeds:
                where = folder / tag if len(seeds) == 1 else folder / tag / f"seed-{seed}"
                label = f"{name:<{width}} " + ("" if batch_sizes is None else f"batch {batch_size} ")
                label += "" if len(seeds) == 1 else f"seed {seed} "
                result = run_training(
                    run_settings | {"seed": seed, "out": str(where)},
                    folder=where,
                    checkpoints=False,
                    label=label,
                    write=lambda _line: None,
                )
                results.append(result)
            suffix = "" if batch_sizes is None else f", batch {batch_size}"
            curves[f"{name} (lr={run_settings['lr']:g}{suffix})"] = [
                {"step_loss": r.step_loss, "records": r.records, "steps_per_epoch": r.steps_per_epoch}
                for r in results
            ]
            finals.setdefault(name, {})[batch_size] = [float(r.records[-1][task.metric]) for r in results]
            row = _row(name, run_settings["lr"], results, task)
            rows.append(row if batch_sizes is None else [row[0], str(batch_size), *row[1:]])
    metric = "test accuracy %" if task.higher_is_better else task.metric.replace("_", " ")
    headers = ["optimizer", "lr", "final train loss", metric, "steps to target", "seconds to target",
               "wall time s", "steps/s"]  # fmt: skip
    if batch_sizes is not None:
        headers.insert(1, "batch")
    table = report.markdown_table(headers, rows)
    folder.mkdir(parents=True, exist_ok=True)
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]} (median [min, max])"
    batch_text = (
        f"batch {base_batch}"
        if batch_sizes is None
        else f"batches {', '.join(map(str, sizes))} (lr scaled linearly from batch {base_batch})"
    )
    header = (
        f"task {task.name} ({settings['model']} on {settings['dataset']}), target {task.describe_target()}; "
        f"{settings['epochs']} epochs, {batch_text}, {seed_text}, schedule {settings['scheduler']}"
    )
    (folder / "compare.md").write_text(f"{header}\n\n{table}\n", encoding="utf-8")
    figures = [plots.compare_plot(folder / "compare.png", curves, task.metric, task.target)]
    if batch_sizes is not None:
        figures.append(plots.batch_size_plot(folder / "batch_sizes.png", finals, task.metric))
    print(header)
    print()
    print(table)
    print(f"\nfigures: {', '.join(map(str, figures))}\ntable: {folder / 'compare.md'}")
    return 0
