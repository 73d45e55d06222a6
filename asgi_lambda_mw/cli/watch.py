"""`asgi-lambda watch MODULE:HANDLER`: run a Lambda handler locally behind an emulated gateway.

HTTP on loopback -> an event in the chosen payload format -> the function in its own process over
the Lambda Runtime API (our small runtime loop, or AWS's awslambdaric) -> the HTTP response, with
the gateway's 413/502/504. Options for reload on change and an embedded DynamoDB.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import ipaddress
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from .._env import env_str
from ..local._context import function_arn
from ..local._embedded_dynamodb import MotoMissing, embedded_dynamodb
from ..local._front import GatewayServer, LocalGateway
from ..local._function import FunctionHost, FunctionSettings, python_command
from ..local._gateway import EVENT_FORMATS, EventFormat
from ..local._handler_ref import HandlerImportError, HandlerRef
from ..local._reload import SourceWatcher
from . import CommandError
from ._function_options import add_function_options

__all__ = ["read_env_file", "register"]

logger = logging.getLogger("asgi_lambda_mw.cli.watch")

DEFAULT_PORT = 9000
_RUNTIMES = ("builtin", "awslambdaric")
_FORMAT_TITLES: dict[EventFormat, str] = {
    "http-api": "API Gateway HTTP API, payload 2.0",
    "rest": "API Gateway REST API, payload 1.0",
    "alb": "Application Load Balancer",
    "alb-multi-value": "Application Load Balancer, multi-value headers",
    "function-url": "Lambda Function URL",
}


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``watch`` to the ``asgi-lambda`` parser."""
    parser = subcommands.add_parser(
        "watch",
        help="serve a Lambda handler locally over HTTP, through an emulated gateway",
        description=(
            "Serve MODULE:HANDLER on loopback: each HTTP request becomes a Lambda event, runs in "
            "a separate function process over the Lambda Runtime API, and the answer becomes the "
            "HTTP response, as API Gateway, an ALB or a Function URL would send it."
        ),
    )
    parser.add_argument("handler", metavar="MODULE:HANDLER", help="e.g. demo_app.main:handler")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0: any)"
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow --host to be a non-loopback address (off: loopback only)",
    )
    parser.add_argument(
        "--event-format",
        choices=EVENT_FORMATS,
        default="http-api",
        help="payload the function receives (default: http-api, payload 2.0)",
    )
    add_function_options(
        parser,
        timeout_help="function timeout; past it the request gets 504",
        env_file_help="KEY=VALUE lines added to the function's environment",
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        help="restart the function when a .py file under the current directory changes",
    )
    parser.add_argument(
        "--dynamodb",
        metavar="embedded|URL",
        help=(
            "rate-limit storage: 'embedded' runs moto's DynamoDB server in-process; a URL points "
            "at a running DynamoDB-compatible server. Either way the table is created and "
            "RATE_LIMIT_TABLE/AWS_ENDPOINT_URL_DYNAMODB are set for the function"
        ),
    )
    parser.add_argument(
        "--runtime",
        choices=_RUNTIMES,
        default="builtin",
        help="runtime loop of the function process: builtin (default) or awslambdaric",
    )
    parser.set_defaults(command=_watch_command)


@dataclass(frozen=True)
class _Storage:
    description: str
    environment: Mapping[str, str]


def _watch_command(args: argparse.Namespace) -> int:
    _configure_logging()
    try:
        ref = HandlerRef.parse(args.handler)
    except HandlerImportError as error:
        raise CommandError(str(error)) from None
    _check_module_exists(ref)
    _check_host(args.host, allow_remote=args.allow_remote)
    if args.timeout <= 0:
        raise CommandError("--timeout must be more than 0 seconds")
    if args.runtime == "awslambdaric" and importlib.util.find_spec("awslambdaric") is None:
        raise CommandError("--runtime awslambdaric needs it installed: pip install awslambdaric")
    file_environment: dict[str, str] = {}
    for path in args.env_file:
        file_environment.update(read_env_file(Path(path)))
    region = file_environment.get("AWS_REGION") or env_str("AWS_REGION") or "us-east-1"
    table = (
        file_environment.get("RATE_LIMIT_TABLE")
        or env_str("RATE_LIMIT_TABLE")
        or _default_table_name()
    )
    with _storage(args.dynamodb, table_name=table, region=region) as storage:
        name = args.function_name or ref.module.replace(".", "-")
        environment = _function_environment(
            ref,
            function_name=name,
            memory=args.memory,
            region=region,
            extra={**file_environment, **storage.environment},
        )
        if args.runtime == "awslambdaric":
            command = python_command("awslambdaric", ref.dotted)
        else:
            command = python_command("asgi_lambda_mw.local._bootstrap", str(ref))
        host = FunctionHost(
            FunctionSettings(
                command=lambda address: command,
                environment=environment,
                function_arn=function_arn(name, region),
                timeout=args.timeout,
                cwd=os.getcwd(),
            )
        )
        gateway = LocalGateway(host, event_format=args.event_format)
        try:
            server = GatewayServer(gateway, host=args.host, port=args.port)
        except OSError as error:
            raise CommandError(f"cannot listen on {args.host}:{args.port}: {error}") from None
        watcher = None
        if args.reload:
            watcher = SourceWatcher(Path.cwd(), lambda paths: _reload(host, paths))
        _print_banner(args, ref, server.port, storage.description)
        stop = threading.Event()
        previous = _on_stop_signals(stop)
        try:
            server.start()
            if watcher is not None:
                watcher.start()
            while not stop.wait(0.5):
                pass
        finally:
            _restore_signals(previous)
            print("asgi-lambda watch: stopping", file=sys.stderr)
            if watcher is not None:
                watcher.stop()
            server.shutdown()
            host.stop()
    return 0


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines; blank lines, ``#`` comments and a leading ``export`` are allowed,
    values may be quoted."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise CommandError(f"cannot read --env-file {path}: {error.strerror}") from None
    values: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        text = text.removeprefix("export ").strip()
        key, equals, value = text.partition("=")
        key, value = key.strip(), value.strip()
        if not equals or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise CommandError(f"{path}:{number}: expected KEY=VALUE, got {line.strip()!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def _default_table_name() -> str:
    from ..ratelimit.storage._schema import DEFAULT_TABLE_NAME

    return DEFAULT_TABLE_NAME


@contextlib.contextmanager
def _storage(option: str | None, *, table_name: str, region: str) -> Iterator[_Storage]:
    if option is None:
        if env_str("RATE_LIMIT_TABLE"):
            yield _Storage(f"DynamoDB table {table_name} (RATE_LIMIT_TABLE)", {})
        else:
            yield _Storage("in memory, per function process (no RATE_LIMIT_TABLE)", {})
        return
    if option == "embedded":
        try:
            with embedded_dynamodb(table_name=table_name, region=region) as dynamodb:
                yield _Storage(
                    f"DynamoDB table {table_name} on embedded moto at {dynamodb.endpoint_url}",
                    _dynamodb_environment(dynamodb.endpoint_url, table_name, dummy=True),
                )
        except MotoMissing as error:
            raise CommandError(str(error)) from None
        return
    if not option.startswith(("http://", "https://")):
        raise CommandError(f"--dynamodb {option!r}: use 'embedded' or an http(s):// endpoint URL")
    from .table import create_table

    create_table(table_name, region=region, endpoint_url=option)
    yield _Storage(
        f"DynamoDB table {table_name} at {option}",
        _dynamodb_environment(option, table_name, dummy=False),
    )


def _dynamodb_environment(endpoint: str, table_name: str, *, dummy: bool) -> dict[str, str]:
    environment = {"RATE_LIMIT_TABLE": table_name, "AWS_ENDPOINT_URL_DYNAMODB": endpoint}
    if dummy:
        environment.update(AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
        environment.pop("AWS_SESSION_TOKEN", None)
    return environment


def _function_environment(
    ref: HandlerRef,
    *,
    function_name: str,
    memory: int,
    region: str,
    extra: Mapping[str, str],
) -> dict[str, str]:
    """The function process's environment: ours, then --env-file and storage, then Lambda's."""
    environment = dict(os.environ)
    environment.update(AWS_REGION=region, AWS_DEFAULT_REGION=region)
    environment.update(extra)
    if "AWS_ACCESS_KEY_ID" in extra:
        environment.pop("AWS_SESSION_TOKEN", None)
    cwd = os.getcwd()
    python_path = environment.get("PYTHONPATH")
    environment.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "local/[$LATEST]watch",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info[0]}.{sys.version_info[1]}",
            "LAMBDA_TASK_ROOT": cwd,
            "_HANDLER": ref.dotted,
            "PYTHONPATH": os.pathsep.join(filter(None, [cwd, python_path])),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return environment


def _check_module_exists(ref: HandlerRef) -> None:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        found = importlib.util.find_spec(ref.module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise CommandError(f"no module named {ref.module!r} (looked from {cwd})")


def _check_host(host: str, *, allow_remote: bool) -> None:
    if allow_remote or host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise CommandError(
            f"--host {host} is not a loopback address: pass --allow-remote to serve beyond this "
            "machine (the emulator has no authentication)"
        )


def _reload(host: FunctionHost, paths: list[str]) -> None:
    shown = ", ".join(os.path.relpath(path) for path in paths[:3])
    more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
    logger.info(
        "changed: %s%s; restarting the function (next request is a cold start)", shown, more
    )
    host.restart(graceful=True)


def _print_banner(args: argparse.Namespace, ref: HandlerRef, port: int, storage: str) -> None:
    host = f"[{args.host}]" if ":" in args.host else args.host
    lines = [
        f"asgi-lambda watch: {ref}",
        f"  url:          http://{host}:{port}",
        f"  event format: {args.event_format} ({_FORMAT_TITLES[args.event_format]})",
        f"  runtime:      {args.runtime}, timeout {args.timeout:g} s, memory {args.memory} MB"
        + (", reload on change" if args.reload else ""),
        f"  storage:      {storage}",
        "Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    for name in ("asgi_lambda_mw.local", "asgi_lambda_mw.cli"):
        package_logger = logging.getLogger(name)
        package_logger.setLevel(logging.INFO)
        package_logger.addHandler(handler)
        package_logger.propagate = False


def _on_stop_signals(stop: threading.Event) -> dict[int, object]:
    def _handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, object] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous  # only the main thread may set handlers (tests call main() elsewhere)
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, _handle)
    return previous


def _restore_signals(previous: dict[int, object]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)  # type: ignore[arg-type]
