"""`extensor compare`: the same model, data and seed trained with several optimizers, side by side.

By default it runs the seed's comparison table — SGD, SGD with momentum, Adam, AdamW, RMSprop and
LARS — each at the learning rate `config.RECOMMENDED_LR` gives it, then writes one figure with
every loss and accuracy curve (compare.png) and a markdown table (compare.md, also printed) of the
final train loss, test accuracy, wall time and steps per second.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

from extensor.cli import builders, config, plots, report
from extensor.cli.config import ConfigError, Option
from extensor.cli.train import TRAIN_OPTIONS, run_training

#: The optimizers of the seed's comparison table, compared by default.
SEED_TABLE = ("sgd", "sgd-momentum", "adam", "adamw", "rmsprop", "lars")
#: Every name --optimizers accepts and the settings it means: each optimizer of the CLI, plus
#: "sgd-momentum" (SGD with momentum 0.9, the seed table's vision default).
PRESETS: dict[str, dict[str, Any]] = {
    "sgd": {"optimizer": "sgd"},
    "sgd-momentum": {"optimizer": "sgd", "momentum": 0.9},
    **{name: {"optimizer": name} for name in config.OPTIMIZER_CLASSES if name != "sgd"},
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
        help="train the same model with several optimizers and compare them",
        description="Train the same model on the same data from the same seed with several optimizers; write "
        "compare.png (loss and accuracy curves) and compare.md (table). Every flag is also a --config key.",
    )
    parser.add_argument("--config", metavar="FILE.toml", help="read options from a TOML file (flags win)")
    config.add_arguments(parser, COMPARE_OPTIONS)
    parser.set_defaults(handler=command)
    return parser


def command(args: argparse.Namespace) -> int:
    """Run `extensor compare`."""
    flags = {o.key: getattr(args, o.key) for o in COMPARE_OPTIONS if hasattr(args, o.key)}
    from_file = config.load_toml(args.config, COMPARE_OPTIONS) if args.config else {}
    settings = config.resolve_with_task(COMPARE_OPTIONS, from_file, flags)
    chosen = parse_optimizers(settings.pop("optimizers"))
    folder = Path(settings.pop("out") or Path("runs") / time.strftime("compare-%Y%m%d-%H%M%S"))
    base = config.resolve(TRAIN_OPTIONS, {**settings, "plots": False})
    runs: dict[str, dict[str, Any]] = {}
    rows = []
    width = max(len(name) for name, _ in chosen)
    for name, lr in chosen:
        run_settings = base | PRESETS[name] | {"lr": lr}
        run_settings["lr"] = builders.resolved_lr(run_settings)
        run_settings["out"] = str(folder / name)
        result = run_training(
            run_settings,
            folder=folder / name,
            checkpoints=False,
            label=f"{name:<{width}} ",
            write=lambda _line: None,
        )
        final = result.records[-1]
        runs[f"{name} (lr={run_settings['lr']:g})"] = {
            "step_loss": result.step_loss,
            "records": result.records,
            "steps_per_epoch": result.steps_per_epoch,
        }
        rows.append(
            [
                name,
                f"{run_settings['lr']:g}",
                f"{final['train_loss']:.4g}",
                f"{100 * final['test_accuracy']:.2f}",
                f"{result.seconds:.1f}",
                f"{result.steps_per_second:.0f}",
            ]
        )
    table = report.markdown_table(
        ["optimizer", "lr", "final train loss", "test accuracy %", "wall time s", "steps/s"], rows
    )
    folder.mkdir(parents=True, exist_ok=True)
    header = (
        f"{settings['model']} on {settings['dataset']}, {settings['epochs']} epochs, batch "
        f"{settings['batch_size']}, seed {settings['seed']}, schedule {settings['scheduler']}"
    )
    (folder / "compare.md").write_text(f"{header}\n\n{table}\n", encoding="utf-8")
    figure = plots.compare_plot(folder / "compare.png", runs)
    print(header)
    print()
    print(table)
    print(f"\nfigure: {figure}\ntable: {folder / 'compare.md'}")
    return 0
