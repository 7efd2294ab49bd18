"""From settings to objects: the datasets, the optimizer and the learning-rate schedule of a run.

When `--lr` is not given, the optimizer gets its recommended rate from `config.RECOMMENDED_LR`
(measured on the built-in models and Digits).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extensor.cli.config import OPTIMIZER_CLASSES, OPTIMIZER_CLI_DEFAULTS, RECOMMENDED_LR, ConfigError
from extensor.cli.tasks import TASKS
from extensor.data import Dataset

#: The hyperparameters with a flag of their own (each also a --config key); any other constructor
#: argument is given as --optimizer-arg KEY=VALUE.
_HYPERPARAMETERS = (
    "state_dtype",
    "momentum",
    "betas",
    "eps",
    "weight_decay",
    "nesterov",
    "dampening",
    "alpha",
    "centered",
    "amsgrad",
    "maximize",
    "trust_coefficient",
    "trust_clip",
)


#: The models that read token ids (the others classify images or feature vectors).
LANGUAGE_MODELS = ("gpt", "lstm")


@dataclass
class Data:
    """The train and test splits of a dataset, with the shape of one sample and the class count.

    For text (`language`), samples are windows of character ids, the "classes" are the
    vocabulary and the test split is the validation text.
    """

    name: str
    train: Dataset
    test: Dataset
    input_shape: tuple[int, ...]
    num_classes: int
    language: bool = False


def load_data(spec: str, seed: int = 0, block_size: int = 64) -> Data:
    """The dataset named by `spec`: ``digits``, ``spirals``, ``shakespeare`` (windows of `block_size`
    characters) or ``idx:PATH`` (a folder of MNIST IDX files)."""
    from extensor.data.datasets import MNIST, Digits, Spirals, TinyShakespeare

    train: Any
    test: Any
    if spec == "shakespeare":
        try:
            train, test = TinyShakespeare("train", block_size), TinyShakespeare("val", block_size)
        except ValueError as error:
            raise ConfigError(f"--block-size {block_size}: {error}") from None
        return Data(spec, train, test, (train.block_size,), len(train.vocabulary), language=True)
    if spec == "digits":
        train, test = Digits(train=True), Digits(train=False)
    elif spec == "spirals":
        train = Spirals(n_samples=900, n_classes=3, seed=seed, train=True)
        test = Spirals(n_samples=300, n_classes=3, seed=seed, train=False)
    elif spec.startswith("idx:"):
        folder = Path(spec[4:]).expanduser()
        if not spec[4:]:
            raise ConfigError("--dataset idx:PATH needs a folder after 'idx:'")
        if not folder.exists():
            raise ConfigError(f"dataset folder {str(folder)!r} does not exist")
        if not folder.is_dir():
            raise ConfigError(f"dataset path {str(folder)!r} is not a folder of IDX files")
        try:
            train, test = MNIST(folder, train=True), MNIST(folder, train=False)
        except FileNotFoundError as error:
            raise ConfigError(str(error)) from None
    else:
        raise ConfigError(f"unknown dataset {spec!r}; expected digits, spirals, shakespeare or idx:PATH")
    sample, _ = train[0]
    classes = getattr(train, "classes", None)
    num_classes = len(classes) if classes else int(max(train.targets.max(), test.targets.max())) + 1
    return Data(spec, train, test, tuple(sample.shape), num_classes)


def build_network(settings: Mapping[str, Any], data: Data) -> Any:
    """The model `settings["model"]` for `data`: a classifier for images and features, a language
    model (GPT, char-LSTM) for text; ConfigError for a model that cannot read the data."""
    from extensor.models import GPT, CharLSTM, build_model

    name = str(settings["model"])
    if data.language != (name in LANGUAGE_MODELS):
        wanted = ", ".join(LANGUAGE_MODELS) if data.language else "cnn, mlp"
        raise ConfigError(f"--model {name} cannot be trained on {data.name}; use --model {wanted}")
    dropout = float(settings["dropout"])
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"--dropout must be in [0, 1), got {dropout}")
    if name == "gpt":
        return GPT(data.num_classes, data.input_shape[0], dropout=dropout)
    if name == "lstm":
        return CharLSTM(data.num_classes, data.input_shape[0], dropout=dropout)
    try:
        return build_model(name, data.input_shape, data.num_classes, dropout)
    except ValueError as error:
        if name == "cnn" and len(data.input_shape) != 3:  # the library's error, a CLI hint
            raise ConfigError(f"--model cnn on {data.name}: {error} (--model mlp)") from None
        raise


def optimizer_kind(settings: Mapping[str, Any]) -> str:
    """The key of `RECOMMENDED_LR` for these settings ("sgd-momentum" for SGD with momentum > 0)."""
    name = str(settings["optimizer"])
    if name == "sgd" and (settings.get("momentum") or 0.0) > 0:
        return "sgd-momentum"
    return name


def resolved_lr(settings: Mapping[str, Any]) -> float:
    """`settings["lr"]`, or the recommended lr of the chosen optimizer when it is None (the task's
    own recommendation if it has one, else `config.RECOMMENDED_LR`'s, measured on digits-cnn)."""
    lr = settings.get("lr")
    if lr is not None:
        return float(lr)
    kind = optimizer_kind(settings)
    task = TASKS.get(str(settings.get("task")))
    if task is not None and kind in task.lr:
        return task.lr[kind]
    return RECOMMENDED_LR[kind]


def optimizer_class(name: str) -> Any:
    """The class `--optimizer NAME` means (ConfigError for a name the CLI does not know)."""
    from extensor.training import optimizers

    if name not in OPTIMIZER_CLASSES:
        raise ConfigError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZER_CLASSES)}")
    return getattr(optimizers, OPTIMIZER_CLASSES[name])


def _constructor_arguments(cls: Any) -> dict[str, inspect.Parameter]:
    """The hyperparameters `cls`'s constructor takes by name (all but `params` and `lr`)."""
    signature = inspect.signature(cls.__init__)
    return {
        key: parameter
        for key, parameter in signature.parameters.items()
        if key not in ("self", "params", "lr")
        and parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }


def _as_default_type(value: Any, default: Any) -> Any:
    """A --optimizer-arg value in the form of its default: [0.5, 1.2] -> (0.5, 1.2) for a tuple default,
    4.0 -> 4 for an integer one."""
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    integral = isinstance(default, int) and not isinstance(default, bool)
    if integral and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def build_optimizer(settings: Mapping[str, Any], parameters: Sequence[Any]) -> Any:
    """The optimizer the settings name, over `parameters`; hyperparameters left None take its defaults.

    Raises:
        ConfigError: an unknown optimizer, or a hyperparameter it does not take (e.g. --betas with sgd,
            or an --optimizer-arg key that is not one of its constructor's arguments).
        ValueError: an invalid value, as the optimizer's constructor reports it.
    """
    name = settings["optimizer"]
    cls = optimizer_class(name)
    accepted = _constructor_arguments(cls)
    kwargs: dict[str, Any] = {}
    for key in _HYPERPARAMETERS:
        value = settings.get(key)
        if value is None:
            continue
        if key not in accepted:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(f"{flag} does not apply to {name} (it takes: {', '.join(accepted)})")
        kwargs[key] = tuple(value) if key == "betas" else value
    for key, value in (settings.get("optimizer_arg") or {}).items():
        if key not in accepted:
            raise ConfigError(
                f"--optimizer-arg {key} does not apply to {name} (it takes: {', '.join(accepted)})"
            )
        if key in kwargs:
            raise ConfigError(f"{key} is given both as --{key.replace('_', '-')} and as --optimizer-arg")
        kwargs[key] = _as_default_type(value, accepted[key].default)
    for key, value in OPTIMIZER_CLI_DEFAULTS.get(name, {}).items():
        kwargs.setdefault(key, value)
    return cls(list(parameters), lr=resolved_lr(settings), **kwargs)


# ---------------------------------------------------------------------------------------------- schedules
#: Short names of schedulers and their class names in `extensor.training.schedulers`.
SCHEDULER_ALIASES: dict[str, str] = {
    "cosine": "CosineAnnealingLR",
    "step": "StepLR",
    "multistep": "MultiStepLR",
    "exponential": "ExponentialLR",
    "linear": "LinearLR",
    "polynomial": "PolynomialLR",
    "constant": "ConstantLR",
    "onecycle": "OneCycleLR",
    "cosine-restarts": "CosineAnnealingWarmRestarts",
    "cyclic": "CyclicLR",
    "plateau": "ReduceLROnPlateau",
}
#: Schedulers that bring their own warm-up or are stepped per epoch: no linear warm-up in front.
_NO_WARMUP = ("OneCycleLR", "ReduceLROnPlateau", "CyclicLR")
#: OneCycleLR's other way to give its length (total_steps = epochs x steps_per_epoch).
_CYCLE_SHAPE = {"epochs", "steps_per_epoch"}


def scheduler_class_name(name: str) -> str | None:
    """The class name for an alias or a class name (any case); None for "none"."""
    lowered = name.lower()
    if lowered == "none":
        return None
    if lowered in SCHEDULER_ALIASES:
        return SCHEDULER_ALIASES[lowered]
    for class_name in SCHEDULER_ALIASES.values():
        if class_name.lower() == lowered:
            return class_name
    if lowered in ("lambdalr", "multiplicativelr", "sequentiallr", "chainedscheduler"):
        raise ConfigError(
            f"scheduler {name!r} takes Python functions or other schedulers; use it from Python"
        )
    names = ", ".join(["none", *SCHEDULER_ALIASES])
    raise ConfigError(f"unknown scheduler {name!r}; expected one of {names} (or their class names)")


def _defaults(
    class_name: str, lr: float, main_steps: int, total_steps: int, steps_per_epoch: int
) -> dict[str, Any]:
    """Arguments filled in from the run's length (any of them can be overridden by --scheduler-arg)."""
    if class_name == "CosineAnnealingLR":
        return {"T_max": main_steps}
    if class_name == "StepLR":
        return {"step_size": max(1, main_steps // 3), "gamma": 0.1}
    if class_name == "MultiStepLR":
        return {"milestones": sorted({max(1, main_steps // 2), max(1, 3 * main_steps // 4)}), "gamma": 0.1}
    if class_name == "ExponentialLR":
        return {"gamma": 0.01 ** (1.0 / max(1, main_steps))}  # lr shrinks 100x over the run
    if class_name == "LinearLR":
        return {"start_factor": 1.0, "end_factor": 0.01, "total_iters": main_steps}
    if class_name == "PolynomialLR":
        return {"total_iters": main_steps, "power": 1.0}
    if class_name == "ConstantLR":
        return {"total_iters": max(1, main_steps // 4)}
    if class_name == "OneCycleLR":
        return {"max_lr": lr, "total_steps": total_steps}
    if class_name == "CosineAnnealingWarmRestarts":
        return {"T_0": max(1, steps_per_epoch)}
    if class_name == "CyclicLR":
        return {"base_lr": lr / 10, "max_lr": lr, "step_size_up": max(1, steps_per_epoch // 2)}
    return {}


@dataclass
class Schedule:
    """A built scheduler and how to step it: per optimizer step, or per epoch on the test loss."""

    scheduler: Any
    per_epoch: bool
    warmup_steps: int
    description: str


def build_scheduler(
    optimizer: Any,
    name: str,
    arguments: Mapping[str, Any],
    *,
    total_steps: int,
    steps_per_epoch: int,
    warmup_steps: int,
    warmup_start_factor: float,
) -> Schedule | None:
    """The scheduler `name` with `arguments`, preceded by a linear warm-up of `warmup_steps` steps.

    Schedulers are stepped once per optimizer step, so lengths are in steps; the ones that
    describe the run's length (T_max, total_iters, total_steps...) default to the steps left
    after the warm-up. ReduceLROnPlateau is stepped once per epoch with the test loss.
    OneCycleLR, CyclicLR and ReduceLROnPlateau get no extra warm-up.
    """
    from extensor.training import schedulers

    class_name = scheduler_class_name(name)
    if class_name is None:
        if arguments:
            raise ConfigError("--scheduler-arg given but --scheduler is none")
        return None
    cls = getattr(schedulers, class_name, None)
    if cls is None:
        raise ConfigError(f"scheduler {class_name} is not available in this version of extensor")
    if class_name in _NO_WARMUP:
        warmup_steps = 0
    if warmup_steps >= total_steps and warmup_steps > 0:
        raise ConfigError(
            f"the warm-up ({warmup_steps} steps) must be shorter than the run ({total_steps} steps)"
        )
    main_steps = total_steps - warmup_steps
    lr = float(optimizer.param_groups[0]["lr"])
    kwargs = _defaults(class_name, lr, main_steps, total_steps, steps_per_epoch) | dict(arguments)
    if class_name == "OneCycleLR" and "total_steps" not in arguments and arguments.keys() & _CYCLE_SHAPE:
        del kwargs["total_steps"]  # OneCycleLR ignores epochs x steps_per_epoch when total_steps is set
    accepted = [p for p in inspect.signature(cls).parameters if p not in ("self", "optimizer")]
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise ConfigError(
            f"scheduler {class_name} has no argument {unknown[0]!r} (it takes: {', '.join(accepted)})"
        )
    shown = ", ".join(f"{k}={_short(v)}" for k, v in kwargs.items())
    description = f"{class_name}({shown})"
    try:
        if warmup_steps == 0:
            built = cls(optimizer, **kwargs)
            _check_cycle_covers_run(built, total_steps, steps_per_epoch)
            return Schedule(built, class_name == "ReduceLROnPlateau", 0, description)
        # SequentialLR's order: the warm-up is built first, then the main schedule.
        warmup = schedulers.LinearLR(
            optimizer, start_factor=warmup_start_factor, end_factor=1.0, total_iters=warmup_steps
        )
        main = cls(optimizer, **kwargs)
    except TypeError as error:
        raise ConfigError(f"scheduler {class_name}: {error}") from None
    sequence = schedulers.SequentialLR(optimizer, [warmup, main], milestones=[warmup_steps])
    description = f"LinearLR warm-up ({warmup_steps} steps from {warmup_start_factor:g}x) then {description}"
    return Schedule(sequence, False, warmup_steps, description)


def _check_cycle_covers_run(scheduler: Any, total_steps: int, steps_per_epoch: int) -> None:
    """Refuse a OneCycleLR whose cycle ends before the run does: it would raise at step total_steps + 1,
    mid-training, so say it now, before anything is written. (It is the one scheduler with an end.)"""
    cycle = getattr(scheduler, "total_steps", None)
    if type(scheduler).__name__ == "OneCycleLR" and cycle is not None and cycle < total_steps:
        raise ConfigError(
            f"OneCycleLR's cycle has {cycle} steps but the run has {total_steps} "
            f"({steps_per_epoch} per epoch); leave total_steps/epochs/steps_per_epoch out of "
            "--scheduler-arg to fit the cycle to the run, or give at least that many"
        )


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def warmup_length(settings: Mapping[str, Any], steps_per_epoch: int, total_steps: int) -> int:
    """Warm-up steps: --warmup-steps when given; else round(--warmup-epochs x steps per epoch), at most
    a fifth of the run (so that short runs still get their main schedule)."""
    if settings.get("warmup_steps") is not None:
        return int(settings["warmup_steps"])
    epochs = float(settings.get("warmup_epochs") or 0.0)
    return min(math.floor(epochs * steps_per_epoch + 0.5), total_steps // 5)
