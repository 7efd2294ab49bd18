"""Workloads of `extensor train --task` and `extensor compare --task`: model, data, budget and target.

A task is a named set of option defaults plus the metric that says when a run has succeeded
(in the spirit of DeepOBS and MLCommons AlgoPerf: fixed workloads, a target, time to reach
it). The user's flags and config keys still win over a task's defaults.

| task | model | data | metric, target |
|---|---|---|---|
| digits-cnn (default) | LeNet-5-style CNN | 8x8 Digits | test accuracy >= 97% |
| digits-mlp | MLP | 8x8 Digits | test accuracy >= 95% |
| spirals | MLP | 3 interleaved spirals | test accuracy >= 95% |
| shakespeare-lstm | 2-layer char-LSTM, 256 | Tiny Shakespeare | validation loss <= 2.0 nats/char |
| shakespeare-gpt | GPT, 4 layers of 128 | Tiny Shakespeare | validation loss <= 1.9 nats/char |

On the language tasks "test" is the validation split, the loss and accuracy are per character,
and an epoch is one pass over non-overlapping windows of `block_size` characters (491 steps of
batch 32). `extensor train` gives them 4 epochs; `extensor compare`, which trains one run per
optimizer and seed, 2 (as it gives digits 10 epochs instead of 20).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Task:
    """One workload.

    Attributes:
        name: the `--task` value.
        summary: one line for help texts and reports.
        settings: option defaults the task sets (keys of the CLI options).
        metric: the record key judged against `target` ("test_accuracy" or "test_loss").
        target: the value a successful run reaches.
        lr: recommended learning rates on this task by optimizer kind (others: `config.RECOMMENDED_LR`).
        compare: what `extensor compare` changes in `settings` to race several optimizers in less time.
    """

    name: str
    summary: str
    settings: Mapping[str, Any]
    metric: str
    target: float
    lr: Mapping[str, float] = field(default_factory=dict)
    compare: Mapping[str, Any] = field(default_factory=dict)

    @property
    def higher_is_better(self) -> bool:
        """Accuracy targets are reached from below, loss targets from above."""
        return self.metric.endswith("accuracy")

    def reached(self, value: float) -> bool:
        """Whether a metric value meets the target."""
        return value >= self.target if self.higher_is_better else value <= self.target

    def describe_target(self) -> str:
        """E.g. "test accuracy >= 0.97"."""
        relation = ">=" if self.higher_is_better else "<="
        return f"{self.metric.replace('_', ' ')} {relation} {self.target:g}"


#: Learning rates on the Shakespeare tasks: Adam-style optimizers at nanoGPT's 1e-3 (its
#: Shakespeare "baby GPT"); the others at the rates their short digits runs prefer, scaled down.
_TEXT_LR = {
    "adam": 1e-3,
    "adamw": 1e-3,
    "rmsprop": 1e-3,
    "sgd": 1.0,
    "sgd-momentum": 0.1,
    "lars": 1.0,
}

#: Every task by name; `DEFAULT_TASK` is today's default run.
TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("digits-cnn", "LeNet-5-style CNN on 8x8 Digits", {"model": "cnn", "dataset": "digits"},
             "test_accuracy", 0.97),
        Task("digits-mlp", "MLP on 8x8 Digits", {"model": "mlp", "dataset": "digits"}, "test_accuracy", 0.95),
        Task("spirals", "MLP on three interleaved spirals", {"model": "mlp", "dataset": "spirals"},
             "test_accuracy", 0.95),
        Task(
            "shakespeare-lstm",
            "2-layer char-LSTM (256) on Tiny Shakespeare",
            {"model": "lstm", "dataset": "shakespeare", "epochs": 4, "batch_size": 32, "block_size": 64,
             "warmup_steps": 100, "eval_batch_size": 256},
            "test_loss",
            2.0,
            _TEXT_LR,
            {"epochs": 2},
        ),
        Task(
            "shakespeare-gpt",
            "GPT (4 layers of 128, 4 heads, context 64) on Tiny Shakespeare",
            {"model": "gpt", "dataset": "shakespeare", "epochs": 4, "batch_size": 32, "block_size": 64,
             "warmup_steps": 100, "eval_batch_size": 256},
            "test_loss",
            1.9,
            _TEXT_LR,
            {"epochs": 2},
        ),
    )
}  # fmt: skip
DEFAULT_TASK = "digits-cnn"


def task_defaults(name: Any, *, comparing: bool = False) -> dict[str, Any]:
    """The option defaults of task `name` (with its `compare` budget when `comparing`), or {} for a
    name that is not a task (refused later, with the list of tasks, by the option check)."""
    task = TASKS.get(str(name).lower()) if isinstance(name, str) else None
    if task is None:
        return {}
    return dict(task.settings) | (dict(task.compare) if comparing else {})


def chosen_task(from_file: Mapping[str, Any], from_flags: Mapping[str, Any]) -> Any:
    """The task the user asked for: the flag, else the config file's, else the default."""
    return from_flags.get("task", from_file.get("task", DEFAULT_TASK))
