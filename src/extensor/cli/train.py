"""`extensor train`: train a classifier, with progress bars, a run folder, checkpoints and exact resume.

The loop is the seed's complete training loop (tape, zero_grad, backward, clipping, optimizer
step, scheduler step per optimizer step). What makes a resumed run bit-identical to an
uninterrupted one with the same seed:

- the data order of epoch k is a pure function of (seed, k) (`DataLoader.set_epoch`);
- a checkpoint stores the model, the optimizer and scheduler state, the library's default random
  generator (dropout draws from it) and the loop's position: the epoch, the batches done in it,
  the running sums of its metrics and the per-step history;
- resuming rebuilds everything from the saved configuration, loads the checkpoint, and starts the
  current epoch at its first batch not yet done (`set_epoch(k, start_batch=b)`: the batches
  before it are not even fetched).

Checkpoints are written at the end of every epoch (and every `--checkpoint-every` steps), and on
Ctrl-C (SIGINT): the run stops after the current step, saves, and exits with status 130.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from extensor.cli import builders, config, plots, report
from extensor.cli.config import ConfigError
from extensor.files import atomic_write_bytes
from extensor.training.checkpoint import CheckpointManager, load_checkpoint, read_checkpoint

#: Every option of `extensor train` (also the keys of its config file).
TRAIN_OPTIONS = config.COMMON_OPTIONS + config.OPTIMIZER_OPTIONS + config.TRAIN_ONLY_OPTIONS
#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED_STATUS = 130


class Interrupted(Exception):
    """Raised after Ctrl-C once the checkpoint is saved; carries its path."""

    def __init__(self, checkpoint: Path | None) -> None:
        super().__init__(f"interrupted; checkpoint saved to {checkpoint}")
        self.checkpoint = checkpoint


@dataclass
class Position:
    """Where the loop is and what it has measured; saved in every checkpoint."""

    epoch: int = 0  # the epoch in progress (0-based)
    batch: int = 0  # batches of it already done
    step: int = 0  # optimizer steps done in total
    loss_sum: float = 0.0  # sum over this epoch's examples so far
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0  # wall time of the run so far (all sessions)
    step_seconds: float = 0.0  # time inside training steps, without each session's first (JIT warm-up)
    timed_steps: int = 0  # the steps step_seconds covers
    records: list[dict[str, Any]] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    step_lr: list[float] = field(default_factory=list)

    def to_extra(self) -> dict[str, Any]:
        """The JSON-and-arrays form stored in a checkpoint's `extra`."""
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "loss_sum": self.loss_sum,
            "correct": self.correct,
            "seen": self.seen,
            "seconds": self.seconds,
            "step_seconds": self.step_seconds,
            "timed_steps": self.timed_steps,
            "records": self.records,
            "step_loss": np.asarray(self.step_loss, np.float64),
            "step_lr": np.asarray(self.step_lr, np.float64),
        }

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> Position:
        """Inverse of `to_extra`."""
        return cls(
            epoch=int(extra["epoch"]),
            batch=int(extra["batch"]),
            step=int(extra["step"]),
            loss_sum=float(extra["loss_sum"]),
            correct=int(extra["correct"]),
            seen=int(extra["seen"]),
            seconds=float(extra["seconds"]),
            step_seconds=float(extra["step_seconds"]),
            timed_steps=int(extra["timed_steps"]),
            records=[dict(r) for r in extra["records"]],
            step_loss=[float(v) for v in extra["step_loss"]],
            step_lr=[float(v) for v in extra["step_lr"]],
        )


@dataclass
class RunResult:
    """What a finished run returns: its records, per-step history and timing."""

    records: list[dict[str, Any]]
    step_loss: list[float]
    step_lr: list[float]
    steps_per_epoch: int
    seconds: float
    step_seconds: float
    timed_steps: int
    steps: int
    folder: Path | None
    model: Any

    @property
    def steps_per_second(self) -> float:
        """Training throughput over the timed steps (optimizer steps per second of step time)."""
        return self.timed_steps / self.step_seconds if self.step_seconds > 0 else float("nan")


class _InterruptFlag:
    """Turns the first SIGINT into a flag the loop checks after each step; a second one aborts."""

    def __init__(self) -> None:
        self.raised = False
        self._previous: Any = None

    def __enter__(self) -> _InterruptFlag:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave Ctrl-C alone
            self._previous = None
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.raised:
            raise KeyboardInterrupt
        self.raised = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _data_parallel(settings: Mapping[str, Any]) -> Any:
    """The `DataParallelLoop` of a `--distributed` run over the MPI world, or None."""
    if not settings.get("distributed"):
        return None
    from extensor.distributed.loop import DataParallelLoop

    return DataParallelLoop(shard_optimizer=bool(settings["shard_optimizer"]))


def _prints(settings: Mapping[str, Any]) -> bool:
    """Whether this process reports to the user: always, except on ranks > 0 of a distributed run."""
    if not settings.get("distributed"):
        return True
    from extensor.distributed import world

    return world().rank == 0


def _silent(line: str) -> None:
    """`write` for the ranks that do not print."""


def _describe_lr(optimizer: Any) -> float:
    return float(optimizer.param_groups[0]["lr"])


class TokenLoss:
    """A classification loss over the last axis of the logits, whatever the leading axes: one
    prediction per sample (N, C) for a classifier, one per character (N, T, V) for a language model."""

    def __init__(self, loss: Any) -> None:
        self.loss = loss

    def __call__(self, logits: Any, targets: Any) -> Any:
        if logits.ndim == 2:
            return self.loss(logits, targets)
        return self.loss(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def hits(logits: Any, targets: Any) -> tuple[int, int]:
    """(predictions, correct ones) of a batch: per sample, or per character for text."""
    return int(targets.data.size), int((logits.data.argmax(axis=-1) == targets.data).sum())


def evaluate(model: Any, loader: Any, criterion: Any) -> tuple[float, float]:
    """Mean loss and accuracy of `model` over `loader`, in eval mode and without recording."""
    from extensor.autograd import no_grad

    was_training = model.training
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    with no_grad():
        for inputs, targets in loader:
            logits = model(inputs)
            count, right = hits(logits, targets)
            loss_sum += float(criterion(logits, targets).item()) * count
            correct += right
            seen += count
    model.train(was_training)
    return loss_sum / max(seen, 1), correct / max(seen, 1)


def run_training(
    settings: Mapping[str, Any],
    *,
    folder: Path | None,
    resume: Path | None = None,
    checkpoints: bool = True,
    label: str = "",
    write: Callable[[str], None] = print,
) -> RunResult:
    """Train as `settings` say (see `TRAIN_OPTIONS`), writing the run folder when `folder` is given.

    Args:
        settings: resolved options (`config.resolve`).
        folder: run folder for metrics.jsonl, config.toml, checkpoints/ and plots (None: write nothing).
        resume: a checkpoint to continue from (its settings must equal `settings`).
        checkpoints: write checkpoints (needs `folder`).
        label: prefix of the progress bars' description.
        write: where to print lines meant for the user.

    Raises:
        Interrupted: after Ctrl-C, once the checkpoint is written.
    """
    from tqdm import tqdm

    from extensor import nn
    from extensor.autograd import Tape
    from extensor.core.random import manual_seed
    from extensor.data import DataLoader
    from extensor.distributed.comm import SingleProcess
    from extensor.distributed.threads import limit_threads
    from extensor.training import clip_grad_norm, clip_grad_value

    parallel = _data_parallel(settings)
    if parallel is None:
        # BLAS's thread count changes the rounding of matrix products: fixing it (and recording it in
        # the config) keeps a resumed run bit-identical whatever the environment says. Distributed
        # ranks get their share of the cores from the data-parallel loop instead.
        limit_threads(SingleProcess(), threads=int(settings["threads"]))
    show_progress = bool(settings["progress"])
    if parallel is not None and not parallel.is_root:
        folder, write, show_progress = None, _silent, False  # rank 0 prints and writes the run folder
    seed = int(settings["seed"])
    data = builders.load_data(settings["dataset"], seed=seed, block_size=int(settings["block_size"]))
    manual_seed(seed)
    model = builders.build_network(settings, data)
    parameters = list(model.parameters())
    optimizer = builders.build_optimizer(settings, parameters)
    if parallel is not None and (optimizer.requires_closure or callable(getattr(optimizer, "eval", None))):
        raise ConfigError(
            f"--optimizer {settings['optimizer']} needs a closure or switches the weights between training "
            "and evaluation; it cannot run --distributed"
        )
    criterion = TokenLoss(nn.CrossEntropyLoss())
    if parallel is None:
        loader = DataLoader(data.train, batch_size=settings["batch_size"], shuffle=True, seed=seed)
    else:  # each rank a shard of every epoch's order, an equal share of every global batch
        batch_size = parallel.local_batch(settings["batch_size"])
        loader = DataLoader(data.train, batch_size=batch_size, sampler=parallel.sampler(data.train, seed))
    test_loader = DataLoader(data.test, batch_size=settings["eval_batch_size"])
    steps_per_epoch = len(loader)
    epochs = int(settings["epochs"])
    total_steps = epochs * steps_per_epoch
    if settings["max_steps"] is not None:  # a step budget ends the run inside an epoch
        total_steps = min(total_steps, int(settings["max_steps"]))
    schedule = builders.build_scheduler(
        optimizer,
        settings["scheduler"],
        settings["scheduler_arg"],
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        warmup_steps=builders.warmup_length(settings, steps_per_epoch, total_steps),
        warmup_start_factor=settings["warmup_start_factor"],
    )
    scheduler = schedule.scheduler if schedule else None
    position = Position()
    if resume is not None:
        meta = load_checkpoint(resume, model=model, optimizer=optimizer, scheduler=scheduler)
        position = Position.from_extra(meta["extra"]["position"])
    # what the loop calls and steps: the model and optimizer, or their data-parallel wrappers
    network, stepper = (model, optimizer) if parallel is None else parallel.wrap(model, optimizer)
    # Everything that can refuse the settings has run: only now is the run folder created.
    manager = None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        if checkpoints:
            manager = CheckpointManager(folder / "checkpoints", keep_last=settings["keep_checkpoints"])
    metrics_path = folder / "metrics.jsonl" if folder is not None else None
    if folder is not None and metrics_path is not None:
        atomic_write_bytes(folder / "config.toml", config.to_toml(settings, TRAIN_OPTIONS).encode())
        # a resumed run drops any records written after its checkpoint
        report.write_records(metrics_path, position.records)
        if resume is None:
            n_params = sum(int(p.size) for p in parameters)
            write(
                f"{label}{settings['model']} ({n_params:,} parameters) on {data.name}: "
                f"{len(data.train)} train / {len(data.test)} test examples, {steps_per_epoch} steps per epoch"
            )
            write(
                f"{label}optimizer {type(optimizer).__name__} lr={builders.resolved_lr(settings):g}; "
                f"schedule: {schedule.description if schedule else 'constant lr'}"
            )
        else:
            write(f"{label}resuming from {resume} at epoch {position.epoch + 1}, step {position.step}")

    session_start = time.perf_counter() - position.seconds

    def save(reason: str) -> Path | None:
        # every rank enters: a sharded optimizer's state is gathered from all of them
        with contextlib.nullcontext() if parallel is None else parallel.gathered_state():
            if manager is None:
                return None
            position.seconds = time.perf_counter() - session_start
            return manager.save(
                position.step,
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                extra={"config": dict(settings), "position": position.to_extra(), "reason": reason},
            )

    def stop_requested() -> bool:
        # all ranks stop together, even if Ctrl-C reached them between different steps
        if parallel is None:
            return interrupt.raised
        return parallel.all_sum([interrupt.raised])[0] > 0

    clip_norm = settings["clip_norm"]
    clip_value = settings["clip_value"]

    def forward_backward(inputs: Any, targets: Any) -> tuple[Any, Any]:
        """The batch's logits and loss, the gradients computed (averaged over ranks) and clipped."""
        tape = Tape()
        with tape:
            logits = network(inputs)
            loss = criterion(logits, targets)
        stepper.zero_grad()
        tape.backward(loss)
        if parallel is not None:  # average over the ranks, then clip as one process would
            parallel.finish_gradients(clip_norm, clip_value)
        else:
            if clip_norm:
                clip_grad_norm(parameters, clip_norm)
            if clip_value is not None:
                clip_grad_value(parameters, clip_value)
        return logits, loss

    def closure_step(inputs: Any, targets: Any) -> tuple[Any, Any]:
        """A step of an optimizer that re-evaluates the batch (`requires_closure`); returns the
        first evaluation, the batch's loss before the step, as the other optimizers report it."""
        evaluations: list[tuple[Any, Any]] = []

        def closure() -> float:
            evaluations.append(forward_backward(inputs, targets))
            return float(evaluations[-1][1].item())

        stepper.step(closure)
        return evaluations[0]

    def set_optimizer_mode(training: bool) -> None:
        """Switch an optimizer that keeps the weights elsewhere between steps (Schedule-Free's
        train()/eval()); the others have no such mode."""
        switch = getattr(optimizer, "train" if training else "eval", None)
        if callable(switch):
            switch()

    model.train()
    warm = False  # the first step of a session compiles/loads kernels: not counted in steps/s
    with _InterruptFlag() as interrupt:
        while position.epoch < epochs and position.step < total_steps:
            epoch = position.epoch
            loader.set_epoch(epoch, start_batch=position.batch)  # a resumed epoch skips its done batches
            set_optimizer_mode(training=True)
            bar = tqdm(
                total=steps_per_epoch,
                initial=position.batch,
                desc=f"{label}epoch {epoch + 1}/{epochs}",
                unit="step",
                leave=True,
                file=sys.stderr,
                disable=not show_progress,
                dynamic_ncols=True,
                mininterval=0.2,
            )
            try:
                for inputs, targets in loader:
                    if position.step >= total_steps:
                        break
                    step_start = time.perf_counter()
                    lr = _describe_lr(optimizer)
                    if optimizer.requires_closure:  # LBFGS re-evaluates the batch as it searches
                        logits, loss = closure_step(inputs, targets)
                    else:
                        logits, loss = forward_backward(inputs, targets)
                        stepper.step()
                    if scheduler is not None and not schedule.per_epoch:  # type: ignore[union-attr]
                        scheduler.step()
                    if warm:
                        position.step_seconds += time.perf_counter() - step_start
                        position.timed_steps += 1
                    warm = True
                    count, correct = hits(logits, targets)
                    loss_value = float(loss.item())
                    if parallel is not None:  # the global batch's numbers, on every rank
                        total, right, seen = parallel.all_sum([loss_value * count, correct, count])
                        count, correct, loss_value = int(seen), int(right), total / seen
                    position.loss_sum += loss_value * count
                    position.correct += correct
                    position.seen += count
                    position.batch += 1
                    position.step += 1
                    position.step_loss.append(loss_value)
                    position.step_lr.append(lr)
                    bar.update(1)
                    if position.batch % 5 == 0 or position.batch == steps_per_epoch:
                        bar.set_postfix(
                            loss=f"{position.loss_sum / position.seen:.4f}",
                            acc=f"{position.correct / position.seen:.3f}",
                            lr=f"{lr:.2e}",
                            refresh=False,
                        )
                    every = settings["checkpoint_every"]
                    if stop_requested():
                        raise Interrupted(save("interrupted"))
                    if every and position.step % every == 0 and position.batch < steps_per_epoch:
                        save("periodic")
                set_optimizer_mode(training=False)  # Schedule-Free: evaluate (and save) at x
                test_loss, test_accuracy = evaluate(model, test_loader, criterion)
                record = {
                    "epoch": epoch + 1,
                    "step": position.step,
                    "train_loss": position.loss_sum / max(position.seen, 1),
                    "train_accuracy": position.correct / max(position.seen, 1),
                    "test_loss": test_loss,
                    "test_accuracy": test_accuracy,
                    "lr": position.step_lr[-1]
                    if position.step_lr
                    else _describe_lr(optimizer),  # last step's
                    "seconds": round(time.perf_counter() - session_start, 3),
                }
                bar.set_postfix(
                    loss=f"{record['train_loss']:.4f}",
                    acc=f"{record['train_accuracy']:.3f}",
                    test_acc=f"{test_accuracy:.3f}",
                    lr=f"{record['lr']:.2e}",
                )
            finally:
                bar.close()
            if scheduler is not None and schedule.per_epoch:  # type: ignore[union-attr]
                scheduler.step(test_loss)
            position.records.append(record)
            position.epoch += 1
            position.batch = position.seen = position.correct = 0
            position.loss_sum = 0.0
            if metrics_path is not None:
                report.append_record(metrics_path, record)
            save("epoch")
            if stop_requested():
                raise Interrupted(manager.latest() if manager else None)
    position.seconds = time.perf_counter() - session_start
    if folder is not None and settings["plots"] and position.records:
        plots.run_plots(folder, position.records, position.step_loss, position.step_lr, steps_per_epoch)
    return RunResult(
        records=position.records,
        step_loss=position.step_loss,
        step_lr=position.step_lr,
        steps_per_epoch=steps_per_epoch,
        seconds=position.seconds,
        step_seconds=position.step_seconds,
        timed_steps=position.timed_steps,
        steps=position.step,
        folder=folder,
        model=model,
    )


# ---------------------------------------------------------------------------------------------- command
def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `extensor train` and its flags."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "train",
        help="train a classifier (default: LeNet-5-style CNN on Digits with AdamW, warm-up + cosine)",
        description="Train a classifier on a built-in dataset. "
        "Every flag is also a key of --config FILE.toml. "
        "Writes metrics.jsonl, config.toml, checkpoints/ and PNG plots to the run folder.",
    )
    parser.add_argument("--config", metavar="FILE.toml", help="read options from a TOML file (flags win)")
    parser.add_argument(
        "--resume",
        metavar="CHECKPOINT",
        help="continue from a checkpoint file (or a run folder: its newest checkpoint)",
    )
    config.add_arguments(parser, TRAIN_OPTIONS)
    parser.set_defaults(handler=command)
    return parser


def _resolve_checkpoint(path: Path) -> Path:
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        latest = CheckpointManager(folder).latest()
        if latest is None:
            raise ConfigError(f"no checkpoint found in {str(path)!r}")
        return latest
    if not path.exists():
        raise ConfigError(f"checkpoint {str(path)!r} does not exist")
    return path


def _default_folder() -> Path:
    base = Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


def _shown(value: Any) -> str:
    """A setting as the user typed it; None is an option left to its default."""
    return "(not set: the default)" if value is None else repr(value)


def command(args: argparse.Namespace) -> int:
    """Run `extensor train` with parsed arguments; returns the exit status."""
    flags = {o.key: getattr(args, o.key) for o in TRAIN_OPTIONS if hasattr(args, o.key)}
    from_file = config.load_toml(args.config, TRAIN_OPTIONS) if args.config else {}
    resume = None
    if args.resume:
        resume = _resolve_checkpoint(Path(args.resume))
        saved = read_checkpoint(resume)
        stored = saved.extra.get("config") if isinstance(saved.extra, dict) else None
        if not isinstance(stored, dict) or "position" not in saved.extra:
            raise ConfigError(
                f"checkpoint {str(resume)!r} was not written by extensor train; cannot resume it"
            )
        base = config.resolve(TRAIN_OPTIONS, stored)
        requested = config.resolve(TRAIN_OPTIONS, base | from_file, flags)
        for key in config.explicit_keys(TRAIN_OPTIONS, from_file, flags) - config.RUN_NEUTRAL:
            if requested[key] != base[key]:
                flag = "--" + key.replace("_", "-")
                raise ConfigError(
                    f"{flag} {_shown(requested[key])} differs from the checkpoint's {_shown(base[key])}; "
                    "a resumed run keeps its checkpoint's settings"
                )
        settings = requested
        if "out" not in flags and "out" not in from_file:
            run_folder = resume.parent.parent if resume.parent.name == "checkpoints" else resume.parent
            settings["out"] = str(run_folder)
    else:
        settings = config.resolve_with_task(TRAIN_OPTIONS, from_file, flags)
    folder = Path(settings["out"]) if settings["out"] else _default_folder()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {str(folder)!r} is a file; the run folder must be a folder")
    if resume is None and (folder / "checkpoints").is_dir() and any((folder / "checkpoints").iterdir()):
        raise ConfigError(
            f"run folder {str(folder)!r} already has checkpoints; continue it with --resume {folder} "
            "or choose another --out"
        )
    settings["out"] = str(folder)
    try:
        result = run_training(settings, folder=folder, resume=resume)
    except Interrupted as stop:
        if not _prints(settings):
            return INTERRUPTED_STATUS
        print(f"\ninterrupted: checkpoint saved to {stop.checkpoint}", file=sys.stderr)
        if stop.checkpoint is not None:
            print(f"continue with: extensor train --resume {stop.checkpoint}", file=sys.stderr)
        return INTERRUPTED_STATUS
    if not _prints(settings):
        return 0
    print(report.epochs_table(result.records))
    final = result.records[-1]
    # a session's first step is not timed (JIT warm-up): a one-step run has no rate to show
    rate = f" ({result.steps_per_second:.0f} steps/s)" if result.timed_steps else ""
    print(
        f"\nfinal test accuracy {100 * final['test_accuracy']:.2f}% after {result.steps} steps in "
        f"{result.seconds:.1f} s{rate}; run folder: {folder}"
    )
    return 0
