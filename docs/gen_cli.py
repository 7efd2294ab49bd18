"""Run every ``extensor`` command on tiny settings and keep its real output in docs/generated/.

Each ``cli-<name>.txt`` holds the command line as typed (``$ extensor ...``) followed by what it
printed (stdout and stderr). The commands run in a temporary folder, so their run folders vanish.

Usage: ``python docs/gen_cli.py [--out DIR]`` (default docs/generated).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

COMMANDS: dict[str, list[list[str]]] = {
    "help": [["--help"]],
    "train": [["train", "--epochs", "2", "--no-progress", "--no-plots", "--out", "runs/digits"]],
    "train-help": [["train", "--help"]],
    "compare": [
        [
            "compare",
            "--optimizers",
            "sgd-momentum,adamw,lion",
            "--epochs",
            "2",
            "--no-progress",
            "--out",
            "runs/compare",
        ]
    ],
    "schedule": [
        ["schedule", "onecycle", "--steps", "100", "--every", "10"],
        ["schedule", "cosine", "--steps", "60", "--lr", "0.01", "--warmup-steps", "10", "--every", "10"],
    ],
    "sample": [
        [
            "train",
            "--task",
            "shakespeare-gpt",
            "--max-steps",
            "20",
            "--warmup-steps",
            "5",
            "--no-progress",
            "--no-plots",
            "--out",
            "runs/gpt",
        ],
        ["sample", "runs/gpt", "--prompt", "ROMEO:", "--length", "120", "--seed", "1"],
    ],
    "errors": [["train", "--optimizer", "sophia"], ["train", "--lr", "-1"]],
}


def run(args: list[str], cwd: Path) -> str:
    """Run ``extensor ARGS`` in `cwd`; return the transcript: the command line, then its output."""
    env = dict(os.environ, COLUMNS="100", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-m", "extensor", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=300,
        check=False,
    )
    status = "" if done.returncode == 0 else f"(exit status {done.returncode})\n"
    return f"$ extensor {shlex.join(args)}\n{done.stdout.rstrip()}\n{status}"


def main(argv: list[str] | None = None) -> None:
    """Capture every command's transcript into the output folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "generated")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, commands in COMMANDS.items():
            text = "\n".join(run(command, Path(tmp)) for command in commands)
            (args.out / f"cli-{name}.txt").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
