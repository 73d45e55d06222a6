"""Request ids and trace context chosen by TracingMiddleware: what is kept from the caller, what
comes from API Gateway or Lambda, what is made up; driven as ASGI, through httpx and Mangum.

HTTP API payload 2.0:
https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
W3C Trace Context: https://www.w3.org/TR/trace-context/
X-Ray header: https://docs.aws.amazon.com/xray/latest/devguide/xray-concepts.html#xray-concepts-tracingheader
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mangum import Mangum
from starlette.requests import Request
from starlette.responses import JSONResponse

from asgi_lambda_mw.tracing import (
    TracingMiddleware,
    current_trace_context,
)
from asgi_lambda_mw.types import Message, Receive, Scope, Send
from tests.lambda_events import LambdaContext, http_api_event
from tests.logging_state import clean_loggers

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
XRAY = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


async def trace_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the trace context it sees, as JSON."""
    context = current_trace_context()
    assert context is not None
    body = {
        "request_id": context.request_id,
        "trace_id": context.trace_id,
        "span_id": context.span_id,
        "parent_id": context.parent_id,
        "traceparent": context.traceparent,
        "tracestate": context.tracestate,
        "xray_trace_id": context.xray_trace_id,
        "xray_header": context.xray_header,
    }
    await JSONResponse(body)(scope, receive, send)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.dumps(record.__dict__, default=str))


_LIBRARY_LOGGERS = ("asgi_lambda_mw", "asgi_lambda_mw.access", "asgi_lambda_mw.errors")


@pytest.fixture(autouse=True)
def _restore_library_loggers() -> Iterator[None]:
    """The middleware may install a JSON handler: each test starts clean and leaves no trace."""
    with clean_loggers(*_LIBRARY_LOGGERS):
        yield


@pytest.fixture
def log_text() -> _Lines:
    """Every attribute of every library log record, as text."""
    handler = _Lines()
    logging.getLogger("asgi_lambda_mw").addHandler(handler)
    return handler


async def get(
    app: Any, headers: list[tuple[bytes, bytes]] | None = None, **scope_items: Any
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One GET through the ASGI interface, with header bytes exactly as given."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": headers or [],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        **scope_items,
    }
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = messages[0]
    response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in messages[1:])
    return start["status"], response_headers, json.loads(body)


def fixed_ids(*ids: str) -> Any:
    remaining = list(ids)
    return lambda: remaining.pop(0)


async def test_safe_incoming_request_id_is_kept_and_echoed() -> None:
    app = TracingMiddleware(trace_app, id_factory=fixed_ids("new"))
    _, headers, body = await get(app, [(b"x-request-id", b"abc-123.DEF:4_5")])
    assert headers["x-request-id"] == "abc-123.DEF:4_5"
    assert body["request_id"] == "abc-123.DEF:4_5"


@pytest.mark.parametrize(
    "unsafe",
    [
        pytest.param(b"abc\r\nX-Injected: yes", id="crlf"),
        pytest.param(b"a" * 10_240, id="10KB"),
        pytest.param("caf\u00e9-\u2603".encode(), id="unicode"),
        pytest.param(b"", id="empty"),
        pytest.param(b"has space", id="space"),
        pytest.param(b"a" * 129, id="129-chars"),
    ],
)
async def test_unsafe_incoming_request_id_is_replaced(unsafe: bytes) -> None:
    app = TracingMiddleware(trace_app, id_factory=fixed_ids("generated-1"))
    _, headers, body = await get(app, [(b"x-request-id", unsafe)])
    assert headers["x-request-id"] == "generated-1"
    assert body["request_id"] == "generated-1"


async def test_request_id_of_128_safe_characters_is_kept() -> None:
    app = TracingMiddleware(trace_app, id_factory=fixed_ids("new"))
    _, headers, _ = await get(app, [(b"x-request-id", b"a" * 128)])
    assert headers["x-request-id"] == "a" * 128


async def test_unsafe_request_id_never_reaches_the_logs(log_text: _Lines) -> None:
    app = TracingMiddleware(trace_app, id_factory=fixed_ids("generated-1"))
    await get(app, [(b"x-request-id", b"evil\r\nINJECTED-LINE " + b"x" * 10_000)])
    assert log_text.lines, "the access line was not logged"
    assert not any("INJECTED-LINE" in line for line in log_text.lines)
    assert any("generated-1" in line for line in log_text.lines)


async def test_new_request_id_is_a_uuid4_by_default() -> None:
    _, headers, _ = await get(TracingMiddleware(trace_app))
    assert UUID4.fullmatch(headers["x-request-id"])


async def test_each_request_gets_its_own_new_id() -> None:
    app = TracingMiddleware(trace_app, id_factory=fixed_ids("first", "second"))
    assert (await get(app))[1]["x-request-id"] == "first"
    assert (await get(app))[1]["x-request-id"] == "second"


async def test_custom_request_id_header_is_read_and_echoed() -> None:
    app = TracingMiddleware(trace_app, request_id_header="X-Correlation-ID")
    _, headers, _ = await get(app, [(b"x-correlation-id", b"corr-1")])
    assert headers["x-correlation-id"] == "corr-1"
    assert "x-request-id" not in headers


def _invoke(app: Any, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    handler: Any = Mangum(app, lifespan="off")
    response: dict[str, Any] = handler(event, context)
    return response


uses_mangum = pytest.mark.usefixtures("lambda_loop")


@uses_mangum
def test_api_gateway_request_id_is_used_under_mangum() -> None:
    app = TracingMiddleware(trace_app, id_factory=fixed_ids("unused"))
    event = http_api_event("GET", "/", request_id="JKJaXmPLvHcESHA=")
    response = _invoke(app, event, LambdaContext(aws_request_id="lambda-req-1"))
    assert response["headers"]["x-request-id"] == "JKJaXmPLvHcESHA="
    assert json.loads(response["body"])["request_id"] == "JKJaXmPLvHcESHA="


@uses_mangum
def test_safe_incoming_header_wins_over_api_gateway_request_id() -> None:
    app = TracingMiddleware(trace_app)
    event = http_api_event("GET", "/", headers={"X-Request-ID": "from-caller"})
    response = _invoke(app, event, LambdaContext())
    assert response["headers"]["x-request-id"] == "from-caller"


@uses_mangum
def test_lambda_aws_request_id_is_used_without_gateway_request_id() -> None:
    app = TracingMiddleware(trace_app, id_factory=fixed_ids("unused"))
    event = http_api_event("GET", "/")
    del event["requestContext"]["requestId"]
    context = LambdaContext(aws_request_id="c6af9ac6-7b61-11e6-9a41-93e8deadbeef")
    response = _invoke(app, event, context)
    assert response["headers"]["x-request-id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


@uses_mangum
def test_unsafe_incoming_header_falls_back_to_gateway_request_id() -> None:
    app = TracingMiddleware(trace_app)
    event = http_api_event("GET", "/", headers={"X-Request-ID": "x" * 300}, request_id="gw-1")
    response = _invoke(app, event, LambdaContext())
    assert response["headers"]["x-request-id"] == "gw-1"


async def test_valid_traceparent_keeps_trace_id_with_a_new_parent() -> None:
    _, _, body = await get(TracingMiddleware(trace_app), [(b"traceparent", TRACEPARENT.encode())])
    assert body["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert body["parent_id"] == "00f067aa0ba902b7"
    assert re.fullmatch(r"[0-9a-f]{16}", body["span_id"])
    assert body["span_id"] != "00f067aa0ba902b7"
    assert body["traceparent"] == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{body['span_id']}-01"


async def test_each_request_gets_a_new_span_id() -> None:
    app = TracingMiddleware(trace_app)
    header = [(b"traceparent", TRACEPARENT.encode())]
    assert (await get(app, header))[2]["span_id"] != (await get(app, header))[2]["span_id"]


@pytest.mark.parametrize(
    "invalid",
    [
        pytest.param("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", id="version"),
        pytest.param("00-00000000000000000000000000000000-00f067aa0ba902b7-01", id="zero-trace"),
        pytest.param("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", id="zero-parent"),
        pytest.param("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", id="upper-case"),
        pytest.param("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", id="short"),
        pytest.param("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1", id="flags"),
        pytest.param("garbage", id="garbage"),
    ],
)
async def test_invalid_traceparent_starts_a_new_trace(invalid: str) -> None:
    headers = [(b"traceparent", invalid.encode()), (b"tracestate", b"vendor=value")]
    _, _, body = await get(TracingMiddleware(trace_app), headers)
    assert re.fullmatch(r"[0-9a-f]{32}", body["trace_id"])
    assert body["trace_id"] not in invalid.lower()
    assert body["parent_id"] is None
    assert body["tracestate"] is None


async def test_two_traceparent_headers_start_a_new_trace() -> None:
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    headers = [(b"traceparent", TRACEPARENT.encode()), (b"traceparent", other.encode())]
    _, _, body = await get(TracingMiddleware(trace_app), headers)
    assert body["trace_id"] not in (TRACEPARENT, other)
    assert body["parent_id"] is None


async def test_tracestate_is_passed_along_with_a_valid_traceparent() -> None:
    headers = [(b"traceparent", TRACEPARENT.encode()), (b"tracestate", b"congo=t61rcWkgMzE")]
    _, _, body = await get(TracingMiddleware(trace_app), headers)
    assert body["tracestate"] == "congo=t61rcWkgMzE"


async def test_xray_header_from_the_request_is_read_and_passed_on() -> None:
    _, _, body = await get(TracingMiddleware(trace_app), [(b"x-amzn-trace-id", XRAY.encode())])
    assert body["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert body["xray_header"] == XRAY


async def test_xray_root_becomes_the_w3c_trace_id_without_traceparent() -> None:
    _, _, body = await get(TracingMiddleware(trace_app), [(b"x-amzn-trace-id", XRAY.encode())])
    assert body["trace_id"] == "5759e988bd862e3fe1be46a994272793"


async def test_xray_from_lambda_environment_wins_over_the_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env_value = "Root=1-67891233-abcdef012345678912345678;Parent=463ac35c9f6413ad;Sampled=1"
    monkeypatch.setenv("_X_AMZN_TRACE_ID", env_value)
    _, _, body = await get(TracingMiddleware(trace_app), [(b"x-amzn-trace-id", XRAY.encode())])
    assert body["xray_trace_id"] == "1-67891233-abcdef012345678912345678"
    assert body["xray_header"] == env_value


async def test_xray_environment_is_read_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    app = TracingMiddleware(trace_app)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-67891233-abcdef012345678912345678")
    first = (await get(app))[2]["xray_trace_id"]
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-67891234-abcdef012345678912345679")
    second = (await get(app))[2]["xray_trace_id"]
    assert (first, second) == (
        "1-67891233-abcdef012345678912345678",
        "1-67891234-abcdef012345678912345679",
    )


@pytest.mark.parametrize(
    "invalid",
    [
        "Root=2-5759e988-bd862e3fe1be46a994272793",
        "Root=1-5759e988-bd862e3f",
        "Parent=53995c3f42cd8ad8;Sampled=1",
        "Root=1-5759e988-bd862e3fe1be46a994272793\r\nX: y",
        "Root=1-5759e988-bd862e3fe1be46a994272793;" + "Lineage=" + "a" * 1000,
    ],
)
async def test_invalid_xray_header_is_ignored(invalid: str) -> None:
    _, _, body = await get(TracingMiddleware(trace_app), [(b"x-amzn-trace-id", invalid.encode())])
    assert body["xray_trace_id"] is None
    assert body["xray_header"] is None


async def test_bad_xray_parent_is_dropped_and_root_kept() -> None:
    value = b"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=zz;Sampled=1"
    _, _, body = await get(TracingMiddleware(trace_app), [(b"x-amzn-trace-id", value)])
    assert body["xray_header"] == "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"


async def test_trace_context_reaches_the_app_through_httpx() -> None:
    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        context = current_trace_context()
        assert context is not None
        await JSONResponse({"seen": request.headers["x-request-id"] == context.request_id})(
            scope, receive, send
        )

    transport = httpx.ASGITransport(app=TracingMiddleware(endpoint))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/", headers={"X-Request-ID": "via-httpx"})
    assert response.json() == {"seen": True}
    assert response.headers["x-request-id"] == "via-httpx"
