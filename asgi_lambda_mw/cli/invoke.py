"""`asgi-lambda invoke MODULE:HANDLER`: call a Lambda handler once, in this process, with an event.

The event comes from a bundled example, a file or the command line, adjusted by request overrides;
the handler's answer is printed as JSON, or with --http as the HTTP response the gateway would
send. In-process (not over the Runtime API) so a debugger and print() work as usual.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from ..events import UnknownSampleEvent, sample_event
from ..local._context import LocalContext, new_request_id, new_trace_id
from ..local._gateway import GatewayResponse, MalformedAnswer, detect_format, read_answer
from ..local._handler_ref import HandlerImportError, HandlerRef, load_handler
from ..local._overrides import RequestOverrides, apply_overrides
from . import PROG, CommandError
from ._function_options import add_function_options
from .watch import read_env_file

__all__ = ["register"]

DEFAULT_EXAMPLE = "http-api"
_EXIT_HANDLER_RAISED = 1
_EXIT_IMPORT_FAILED = 2


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``invoke`` to the ``asgi-lambda`` parser."""
    parser = subcommands.add_parser(
        "invoke",
        help="call a Lambda handler once with a sample or given event",
        description=(
            "Call MODULE:HANDLER in this process with an event and print its answer. The event "
            f"is a bundled example (default: {DEFAULT_EXAMPLE}; see `{PROG} events list`), a "
            "file or inline JSON, changed by the request options."
        ),
    )
    parser.add_argument("handler", metavar="MODULE:HANDLER", help="e.g. demo_app.main:handler")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--example", metavar="NAME", help="a bundled event (`events list`)")
    source.add_argument("--data-file", metavar="FILE", help="a JSON event file ('-': stdin)")
    source.add_argument("--data", metavar="JSON", help="the event as inline JSON")
    request = parser.add_argument_group("request overrides (HTTP events)")
    request.add_argument("--method", help="HTTP method, e.g. POST")
    request.add_argument("--path", help="request path, e.g. /items/1")
    request.add_argument("--query", metavar="QS", help="query string, e.g. 'a=1&a=2' ('' clears)")
    request.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="set a request header (repeatable)",
    )
    request.add_argument("--body", help="request body text")
    request.add_argument("--source-ip", metavar="IP", help="the caller's IP address")
    parser.add_argument(
        "--http",
        action="store_true",
        help="print the HTTP response the gateway would send instead of the raw answer",
    )
    add_function_options(
        parser,
        timeout_help="what context.get_remaining_time_in_millis() counts down from",
        env_file_help="KEY=VALUE lines set in the environment before the import",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print the traceback when the handler raises"
    )
    parser.set_defaults(command=_invoke_command)


def _invoke_command(args: argparse.Namespace) -> int:
    try:
        ref = HandlerRef.parse(args.handler)
    except HandlerImportError as error:
        return _fail(str(error), _EXIT_IMPORT_FAILED)
    event = _event(args)
    overrides = RequestOverrides(
        method=args.method,
        path=args.path,
        query=args.query,
        headers=[_header(text) for text in args.header],
        body=args.body,
        source_ip=args.source_ip,
    )
    event_format = detect_format(event) if isinstance(event, dict) else None
    if overrides:
        if event_format is None:
            raise CommandError("request overrides need an HTTP event (API Gateway, ALB, URL)")
        event = apply_overrides(event, event_format, overrides)
    if args.http and event_format is None:
        raise CommandError("--http needs an HTTP event (API Gateway, ALB or Function URL)")

    for path in args.env_file:
        os.environ.update(read_env_file(Path(path)))
    name = args.function_name or ref.module.replace(".", "-")
    _lambda_environment(name, args.memory)
    try:
        handler = load_handler(ref)
    except HandlerImportError as error:
        if args.verbose and error.__cause__ is not None:
            traceback.print_exception(error.__cause__, file=sys.stderr)
        return _fail(str(error), _EXIT_IMPORT_FAILED)

    trace_id = new_trace_id()
    os.environ["_X_AMZN_TRACE_ID"] = trace_id
    context = LocalContext.from_environment(
        aws_request_id=new_request_id(),
        deadline_ms=int((time.time() + args.timeout) * 1000),
    )
    try:
        answer = handler(event, context)
        payload = json.dumps(answer).encode()
    except Exception as error:
        if args.verbose:
            traceback.print_exc(file=sys.stderr)
        return _fail(f"the handler raised {type(error).__name__}: {error}", _EXIT_HANDLER_RAISED)

    if not args.http:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        return 0
    assert event_format is not None
    try:
        response = read_answer(payload, event_format)
    except MalformedAnswer as error:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        return _fail(f"the gateway would answer 502: {error}", _EXIT_HANDLER_RAISED)
    _print_http(response)
    return 0


def _event(args: argparse.Namespace) -> Any:
    if args.data is not None:
        return _parse_json(args.data, "--data")
    if args.data_file is not None:
        if args.data_file == "-":
            return _parse_json(sys.stdin.read(), "stdin")
        try:
            text = Path(args.data_file).read_text(encoding="utf-8")
        except OSError as error:
            raise CommandError(f"cannot read {args.data_file}: {error.strerror}") from None
        return _parse_json(text, args.data_file)
    try:
        return sample_event(args.example or DEFAULT_EXAMPLE).load()
    except UnknownSampleEvent as error:
        raise CommandError(str(error)) from None


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise CommandError(f"{source} is not JSON: {error}") from None


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise CommandError(f"-H {text!r}: expected NAME:VALUE")
    return name.strip(), value.strip()


def _lambda_environment(function_name: str, memory: int) -> None:
    """What Lambda sets for a function, so code that reads it at import sees the same."""
    region = os.environ.get("AWS_REGION") or "us-east-1"
    os.environ.update(
        {
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION") or region,
            "AWS_LAMBDA_FUNCTION_NAME": function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "local/[$LATEST]invoke",
        }
    )


def _print_http(response: GatewayResponse) -> None:
    reason = response.reason or _phrase(response.status)
    lines = [f"HTTP/1.1 {response.status} {reason}".rstrip()]
    lines += [f"{name}: {value}" for name, value in response.headers]
    if not any(name.lower() == "content-length" for name, _ in response.headers):
        lines.append(f"content-length: {len(response.body)}")
    sys.stdout.write("\r\n".join(lines) + "\r\n\r\n")
    sys.stdout.flush()
    sys.stdout.buffer.write(response.body)
    sys.stdout.buffer.flush()
    if response.body and not response.body.endswith(b"\n") and sys.stdout.isatty():
        print()


def _phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _fail(message: str, status: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status
