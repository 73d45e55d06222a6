"""The `asgi-lambda` command line: local development and deployment chores around the library.

Each subcommand group lives in its own module of this package and adds itself to the parser
through ``register(subcommands)``; ``main`` turns CommandError into a one-line error and an
exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from ..exceptions import ConfigurationError

__all__ = ["CommandError", "build_parser", "main"]

PROG = "asgi-lambda"
# Modules of this package, each with ``register(subcommands) -> None``; listed, not discovered,
# so `--help` is stable and a broken optional module fails loudly.
_COMMAND_GROUPS: tuple[str, ...] = ("watch", "invoke", "events", "table")

Command = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """A failure the user can act on: printed as one line on stderr, exit status 1."""


def build_parser() -> argparse.ArgumentParser:
    """The full parser, one subcommand per group module."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Develop, invoke and deploy ASGI apps on AWS Lambda with asgi-lambda-mw.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subcommands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in _COMMAND_GROUPS:
        importlib.import_module(f"{__name__}.{name}").register(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``asgi-lambda`` with ``argv`` (default: the process arguments); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, usage errors: argparse has printed already
        return exit_.code if isinstance(exit_.code, int) else 1
    command: Command | None = getattr(args, "command", None)
    if command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return command(args)
    except (CommandError, ConfigurationError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
