"""The `extensor` command (also `python -m extensor`): train, compare, schedule, sample.

Bad input — an unknown optimizer, a negative learning rate, a missing dataset folder, an unknown
config key, a damaged checkpoint, a path that cannot be written, and the ValueError/TypeError that
constructors raise for invalid values — ends with ONE line on stderr and exit status 2, never a
traceback (set EXTENSOR_DEBUG=1 to see it). Ctrl-C during training saves a checkpoint and exits with
status 130.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

#: Exit status for bad input.
USAGE_ERROR = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`extensor train: error: ...`) and exit status 2.

    Abbreviated long options are refused (`allow_abbrev=False`): otherwise `compare --optimizer adam`
    would silently mean `--optimizers adam`, and adding an option could change what an old command
    line means. Sub-command parsers are made with this class too, so the rule holds everywhere.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The `extensor` parser with its sub-commands."""
    from extensor import __version__
    from extensor.cli import compare, sample, schedule, train

    parser = OneLineParser(
        prog="extensor",
        description="Train, compare optimizers and plot learning-rate schedules with extensor.",
    )
    parser.add_argument("--version", action="version", version=f"extensor {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=OneLineParser)
    train.add_parser(subparsers)
    compare.add_parser(subparsers)
    schedule.add_parser(subparsers)
    sample.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `extensor` command line; returns the exit status."""
    from extensor.cli.config import ConfigError
    from extensor.cli.train import INTERRUPTED_STATUS, Interrupted
    from extensor.training.checkpoint import CheckpointError

    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    try:
        return int(handler(args))
    except (ConfigError, CheckpointError, ValueError, TypeError, OSError) as error:
        if os.environ.get("EXTENSOR_DEBUG"):
            raise
        text = str(error)
        if isinstance(error, OSError) and error.strerror and error.filename:
            text = f"{error.strerror}: {str(error.filename)!r}"  # not "[Errno 20] ..."
        message = " ".join(text.split())  # one line, whatever the exception's text
        print(f"extensor: error: {message}", file=sys.stderr)
    except (KeyboardInterrupt, Interrupted):
        print("extensor: interrupted", file=sys.stderr)
        return INTERRUPTED_STATUS
    return USAGE_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
