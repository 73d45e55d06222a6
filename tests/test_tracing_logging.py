"""JSON access-log lines, request ids in the app's own records, configure_logging and LOG_LEVEL.

Field names follow AWS Lambda Powertools' Logger where they overlap:
https://docs.aws.amazon.com/powertools/python/latest/core/logger/#standard-structured-keys
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from asgi_lambda_mw.exceptions import ConfigurationError
from asgi_lambda_mw.handler import lambda_handler
from asgi_lambda_mw.tracing import (
    JSONFormatter,
    RequestContextFilter,
    TracingMiddleware,
    configure_logging,
    current_request_id,
)
from tests.lambda_events import LambdaContext, http_api_event
from tests.logging_state import clean_loggers

APP_LOGGER = "tests.tracing_app"
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
ACCESS_FIELDS = {
    "timestamp",
    "level",
    "message",
    "method",
    "path",
    "status",
    "duration_ms",
    "client_ip",
    "user_agent",
    "request_id",
    "xray_trace_id",
    "trace_id",
    "cold_start",
    "function_name",
    "function_request_id",
}


async def home(request: Request) -> Response:
    logging.getLogger(APP_LOGGER).info("handling home")
    return JSONResponse({"request_id": current_request_id()})


async def missing(request: Request) -> Response:
    return PlainTextResponse("no such thing", status_code=404)


async def broken(request: Request) -> Response:
    return PlainTextResponse("upstream failed", status_code=502)


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


def make_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/", home),
            Route("/missing", missing),
            Route("/broken", broken),
            Route("/health", health),
        ]
    )


class JSONLines(logging.Handler):
    """Collects records formatted by JSONFormatter, parsed back into dicts."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JSONFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def from_logger(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["logger"] == name]


_SAVED_LOGGERS = (
    "",
    "asgi_lambda_mw",
    "asgi_lambda_mw.access",
    "asgi_lambda_mw.errors",
    APP_LOGGER,
)


@pytest.fixture(autouse=True)
def _restore_loggers() -> Iterator[None]:
    """The middleware and configure_logging change global logging state; undo it after."""
    with clean_loggers(*_SAVED_LOGGERS):
        yield


@pytest.fixture
def logs() -> JSONLines:
    """JSON lines of the library's loggers and of the test app's logger."""
    handler = JSONLines()
    logging.getLogger("asgi_lambda_mw").addHandler(handler)
    app_logger = logging.getLogger(APP_LOGGER)
    app_logger.addHandler(handler)
    app_logger.setLevel(logging.INFO)
    return handler


async def request(app: Any, path: str = "/", **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, **kwargs)


async def test_access_line_is_json_with_every_field(logs: JSONLines) -> None:
    response = await request(
        TracingMiddleware(make_app()), "/", headers={"User-Agent": "probe/1.0"}
    )
    [line] = logs.from_logger("asgi_lambda_mw.access")
    assert ACCESS_FIELDS <= line.keys()
    assert ISO_UTC.fullmatch(line["timestamp"])
    assert line["level"] == "INFO"
    assert line["message"] == "GET / 200"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/", 200)
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["client_ip"] == "127.0.0.1"
    assert line["user_agent"] == "probe/1.0"
    assert line["request_id"] == response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", line["trace_id"])
    assert line["xray_trace_id"] is None
    assert line["cold_start"] is False
    assert line["function_name"] is None and line["function_request_id"] is None


async def test_access_line_duration_comes_from_the_injected_clock(logs: JSONLines) -> None:
    ticks = iter([10.0, 10.25, 10.5])  # start, response start (Server-Timing), end
    response = await request(TracingMiddleware(make_app(), clock=lambda: next(ticks)))
    [line] = logs.from_logger("asgi_lambda_mw.access")
    assert line["duration_ms"] == 500.0
    assert response.headers["server-timing"] == "total;dur=250.0"


@pytest.mark.usefixtures("lambda_loop")
def test_access_line_under_lambda_carries_function_fields_and_cold_start(
    logs: JSONLines,
) -> None:
    handler = lambda_handler(TracingMiddleware(make_app()), lifespan="off")
    xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    try:
        for aws_request_id in ("req-cold", "req-warm"):
            event = http_api_event(
                "GET", "/", headers={"X-Amzn-Trace-Id": xray}, request_id=f"gw-{aws_request_id}"
            )
            handler(event, LambdaContext(aws_request_id=aws_request_id))
    finally:
        handler.shutdown()
    cold, warm = logs.from_logger("asgi_lambda_mw.access")
    assert (cold["cold_start"], warm["cold_start"]) == (True, False)
    assert cold["function_name"] == "asgi-lambda-mw-test"
    assert cold["function_request_id"] == "req-cold"
    assert cold["request_id"] == "gw-req-cold"
    assert cold["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert cold["trace_id"] == "5759e988bd862e3fe1be46a994272793"
    assert cold["client_ip"] == "198.51.100.7"


async def test_server_error_status_is_logged_at_error(logs: JSONLines) -> None:
    await request(TracingMiddleware(make_app()), "/broken")
    [line] = logs.from_logger("asgi_lambda_mw.access")
    assert (line["status"], line["level"]) == (502, "ERROR")


async def test_client_error_status_is_logged_at_info(logs: JSONLines) -> None:
    await request(TracingMiddleware(make_app()), "/missing")
    [line] = logs.from_logger("asgi_lambda_mw.access")
    assert (line["status"], line["level"]) == (404, "INFO")


async def test_excluded_path_gets_no_access_line_but_keeps_its_headers(logs: JSONLines) -> None:
    app = TracingMiddleware(make_app(), exclude_paths=["/health"])
    response = await request(app, "/health")
    await request(app, "/")
    assert [line["path"] for line in logs.from_logger("asgi_lambda_mw.access")] == ["/"]
    assert "x-request-id" in response.headers


async def test_app_records_during_a_request_carry_its_ids(logs: JSONLines) -> None:
    response = await request(TracingMiddleware(make_app()), "/", headers={"X-Request-ID": "r-42"})
    [app_line] = logs.from_logger(APP_LOGGER)
    [access_line] = logs.from_logger("asgi_lambda_mw.access")
    assert app_line["message"] == "handling home"
    assert app_line["request_id"] == "r-42" == response.json()["request_id"]
    assert app_line["trace_id"] == access_line["trace_id"]


def test_app_records_outside_a_request_have_no_request_id(logs: JSONLines) -> None:
    logging.getLogger(APP_LOGGER).info("at import time")
    [line] = logs.from_logger(APP_LOGGER)
    assert "request_id" not in line


async def test_request_context_filter_serves_plain_text_formats() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(request_id)s %(message)s"))
    handler.addFilter(RequestContextFilter())
    app_logger = logging.getLogger(APP_LOGGER)
    app_logger.addHandler(handler)
    app_logger.setLevel(logging.INFO)
    app_logger.propagate = False
    await request(
        TracingMiddleware(make_app(), install_log_handler=False), headers={"X-Request-ID": "t-1"}
    )
    app_logger.info("after the request")
    assert stream.getvalue().splitlines() == ["t-1 handling home", "None after the request"]


async def test_access_lines_are_json_on_stdout_without_any_logging_setup(
    capsys: pytest.CaptureFixture[str],
) -> None:
    response = await request(TracingMiddleware(make_app()))
    lines = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert [(line["logger"], line["request_id"]) for line in lines] == [
        ("asgi_lambda_mw.access", response.headers["x-request-id"])
    ]


async def test_default_json_handler_does_not_repeat_lines_through_root_handlers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Lambda's runtime puts a plain-text handler on the root logger.
    runtime_output = io.StringIO()
    logging.getLogger().addHandler(logging.StreamHandler(runtime_output))
    await request(TracingMiddleware(make_app()))
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert runtime_output.getvalue() == ""


class _PassEverything(logging.Filter):
    """Changes nothing, but its presence makes logging itself handle the access line."""


@pytest.mark.parametrize("static_fields", [None, {"service": "orders"}])
async def test_default_access_line_is_the_line_logging_would_write(
    capsys: pytest.CaptureFixture[str], static_fields: dict[str, str] | None
) -> None:
    # The default set-up writes access lines without a LogRecord; a filter on the logger
    # sends them through logging. Both must write the same line.
    app = TracingMiddleware(make_app(), clock=lambda: 1.0)
    access = logging.getLogger("asgi_lambda_mw.access")
    [handler] = access.handlers
    handler.setFormatter(JSONFormatter(static_fields=static_fields))
    headers = {
        "X-Request-ID": "same-1",
        "User-Agent": 'probe/1.0 "quoted" \\ caf\xe9 \x7f'.encode("latin-1"),
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    path = "/caf%C3%A9-%22quoted%22"  # escaped alike in the message and the path fields
    await request(app, path, headers=headers)
    access.addFilter(_PassEverything())
    await request(app, path, headers=headers)
    direct, through_logging = capsys.readouterr().out.splitlines()
    direct_fields, logging_fields = json.loads(direct), json.loads(through_logging)
    assert direct_fields.pop("timestamp") and logging_fields.pop("timestamp")
    assert list(direct_fields.items()) == list(logging_fields.items())  # same fields and order
    assert direct.partition(",")[2] == through_logging.partition(",")[2]  # and the same text
    assert direct_fields["request_id"] == "same-1"
    assert direct_fields["message"] == 'GET /caf\xe9-"quoted" 404'
    assert direct_fields["user_agent"] == 'probe/1.0 "quoted" \\ caf\xe9 \x7f'
    assert direct_fields["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert direct_fields.get("service") == (static_fields or {}).get("service")


async def test_filters_and_levels_set_later_still_apply_to_access_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = TracingMiddleware(make_app())
    access = logging.getLogger("asgi_lambda_mw.access")
    [handler] = access.handlers
    handler.addFilter(lambda record: record.getMessage() != "GET / 200")
    await request(app)
    await request(app, "/missing")
    handler.filters.clear()
    handler.setLevel(logging.WARNING)
    await request(app)
    assert [json.loads(text)["message"] for text in capsys.readouterr().out.splitlines()] == [
        "GET /missing 404"
    ]


def test_library_logger_configured_by_the_user_is_left_alone() -> None:
    library = logging.getLogger("asgi_lambda_mw")
    stream = io.StringIO()
    library.addHandler(logging.StreamHandler(stream))
    TracingMiddleware(make_app())
    assert logging.getLogger("asgi_lambda_mw.access").handlers == []
    assert logging.getLogger("asgi_lambda_mw.access").propagate is True


async def test_configure_logging_twice_writes_each_line_once() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    configure_logging(stream=stream)
    await request(TracingMiddleware(make_app()))
    assert len(stream.getvalue().splitlines()) == 1
    assert json.loads(stream.getvalue())["logger"] == "asgi_lambda_mw.access"


async def test_configure_logging_root_turns_existing_root_handlers_to_json() -> None:
    runtime_output = io.StringIO()  # stands for Lambda's root handler
    logging.getLogger().addHandler(logging.StreamHandler(runtime_output))
    configure_logging(root=True, stream=io.StringIO())
    configure_logging(root=True, stream=io.StringIO())
    await request(TracingMiddleware(make_app()), headers={"X-Request-ID": "root-1"})
    lines = [json.loads(text) for text in runtime_output.getvalue().splitlines()]
    [line] = [line for line in lines if line["logger"] == APP_LOGGER]
    assert (line["message"], line["request_id"]) == ("handling home", "root-1")


async def test_log_level_from_environment_hides_lines_below_it(
    monkeypatch: pytest.MonkeyPatch, logs: JSONLines
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "warning")
    app = TracingMiddleware(make_app())
    await request(app, "/")
    await request(app, "/broken")
    assert [line["status"] for line in logs.from_logger("asgi_lambda_mw.access")] == [502]


async def test_log_level_argument_overrides_environment(
    monkeypatch: pytest.MonkeyPatch, logs: JSONLines
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "ERROR")
    await request(TracingMiddleware(make_app(), log_level="INFO"))
    assert len(logs.from_logger("asgi_lambda_mw.access")) == 1


def test_bad_log_level_in_environment_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigurationError, match="LOG_LEVEL='LOUD'"):
        TracingMiddleware(make_app())


def test_bad_log_level_argument_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="log_level='verbose'"):
        TracingMiddleware(make_app(), log_level="verbose")


def test_bad_request_id_header_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="request_id_header"):
        TracingMiddleware(make_app(), request_id_header="X Request ID")


def test_exclude_paths_as_a_string_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="exclude_paths"):
        TracingMiddleware(make_app(), exclude_paths="/health")


def test_json_formatter_writes_extra_fields_and_the_traceback(logs: JSONLines) -> None:
    app_logger = logging.getLogger(APP_LOGGER)
    try:
        raise KeyError("missing-key")
    except KeyError:
        app_logger.exception("lookup failed", extra={"order_id": 7})
    [line] = logs.from_logger(APP_LOGGER)
    assert (line["level"], line["order_id"], line["exception_name"]) == ("ERROR", 7, "KeyError")
    assert "Traceback (most recent call last)" in line["exception"]
    assert "missing-key" in line["exception"]


def test_json_formatter_writes_unencodable_values_as_text(logs: JSONLines) -> None:
    logging.getLogger(APP_LOGGER).info("odd", extra={"when": {1, 2}, "pair": {(1, 2): "x"}})
    [line] = logs.from_logger(APP_LOGGER)
    assert line["when"] == "{1, 2}"
    assert line["pair"] == "{(1, 2): 'x'}"


def test_json_formatter_static_fields_appear_on_every_line() -> None:
    record = logging.LogRecord(APP_LOGGER, logging.INFO, __file__, 1, "hello", (), None)
    line = json.loads(JSONFormatter(static_fields={"service": "orders"}).format(record))
    assert (line["service"], line["message"]) == ("orders", "hello")


async def test_control_characters_in_the_path_cannot_split_a_text_log_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access = logging.getLogger("asgi_lambda_mw.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    await request(TracingMiddleware(make_app()), "/a%0d%0aFORGED 200")
    assert stream.getvalue().count("\n") == 1
    assert "\\r\\nFORGED" in stream.getvalue()
