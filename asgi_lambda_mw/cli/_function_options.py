"""The options `watch` and `invoke` share: how the local function is configured."""

from __future__ import annotations

import argparse

from ..local._context import DEFAULT_MEMORY_MB

__all__ = ["DEFAULT_TIMEOUT", "add_function_options"]

DEFAULT_TIMEOUT = 30.0


def add_function_options(
    parser: argparse.ArgumentParser, *, timeout_help: str, env_file_help: str
) -> None:
    """--timeout, --memory, --function-name and --env-file, each with its command's help text."""
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"{timeout_help} (default: {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--memory",
        type=int,
        default=DEFAULT_MEMORY_MB,
        metavar="MB",
        help=f"context.memory_limit_in_mb (default: {DEFAULT_MEMORY_MB})",
    )
    parser.add_argument(
        "--function-name", help="AWS_LAMBDA_FUNCTION_NAME (default: from the module name)"
    )
    parser.add_argument(
        "--env-file",
        action="append",
        default=[],
        metavar="FILE",
        help=f"{env_file_help} (repeatable)",
    )
