"""TracingMiddleware as a layer: lifespan passes through, the trace context reaches the app and
its outgoing calls, Server-Timing carries inner layers' metrics, and Starlette's add_middleware
works.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from asgi_lambda_mw.ratelimit.middleware import RateLimitMiddleware
from asgi_lambda_mw.ratelimit.storage.memory import MemoryStorage
from asgi_lambda_mw.tracing import (
    TracingMiddleware,
    current_request_id,
    current_trace_context,
    outgoing_headers,
)
from asgi_lambda_mw.types import Message
from tests.logging_state import clean_loggers

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
XRAY = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
_LIBRARY_LOGGERS = ("asgi_lambda_mw", "asgi_lambda_mw.access", "asgi_lambda_mw.errors")


@pytest.fixture(autouse=True)
def _restore_library_loggers() -> Iterator[None]:
    with clean_loggers(*_LIBRARY_LOGGERS):
        yield


async def show_outgoing(request: Request) -> Response:
    return JSONResponse(outgoing_headers())


async def with_own_timing(request: Request) -> Response:
    return PlainTextResponse("ok", headers={"Server-Timing": "db;dur=3.0"})


async def boom(request: Request) -> Response:
    raise RuntimeError("database password is hunter2")


def make_app(**starlette_options: Any) -> Starlette:
    return Starlette(
        routes=[
            Route("/", show_outgoing),
            Route("/own-timing", with_own_timing),
            Route("/boom", boom),
        ],
        **starlette_options,
    )


async def request(app: Any, path: str = "/", **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, **kwargs)


async def test_lifespan_passes_through_to_the_app() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    middleware = TracingMiddleware(make_app(lifespan=lifespan))
    incoming: asyncio.Queue[Message] = asyncio.Queue()
    for kind in ("lifespan.startup", "lifespan.shutdown"):
        incoming.put_nowait({"type": kind})
    sent: list[str] = []

    async def send(message: Message) -> None:
        sent.append(message["type"])

    await middleware({"type": "lifespan", "asgi": {"version": "3.0"}}, incoming.get, send)
    assert events == ["startup", "shutdown"]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_outgoing_headers_continue_the_trace_with_this_request_as_parent() -> None:
    headers = {
        "traceparent": TRACEPARENT,
        "tracestate": "congo=t61rcWkgMzE",
        "X-Amzn-Trace-Id": XRAY,
        "X-Request-ID": "req-7",
    }
    outgoing = (await request(TracingMiddleware(make_app()), headers=headers)).json()
    assert re.fullmatch(
        r"00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01", outgoing["traceparent"]
    )
    assert outgoing["traceparent"] != TRACEPARENT
    assert outgoing["tracestate"] == "congo=t61rcWkgMzE"
    assert outgoing["X-Amzn-Trace-Id"] == XRAY
    assert outgoing["X-Request-ID"] == "req-7"


async def test_outgoing_headers_start_a_trace_when_none_came_in() -> None:
    outgoing = (await request(TracingMiddleware(make_app()))).json()
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", outgoing["traceparent"])
    assert set(outgoing) == {"traceparent", "X-Request-ID"}


async def test_outgoing_headers_use_the_configured_request_id_header() -> None:
    app = TracingMiddleware(make_app(), request_id_header="X-Correlation-ID")
    outgoing = (await request(app, headers={"X-Correlation-ID": "c-1"})).json()
    assert outgoing["X-Correlation-ID"] == "c-1"


async def test_nothing_is_current_outside_a_request() -> None:
    await request(TracingMiddleware(make_app()))
    assert current_request_id() is None
    assert current_trace_context() is None
    assert outgoing_headers() == {}


async def test_concurrent_requests_each_see_their_own_context() -> None:
    both_inside = asyncio.Barrier(2)

    async def wait_then_answer(request: Request) -> Response:
        before = current_request_id()
        await both_inside.wait()  # the other request is now in flight too
        return JSONResponse({"before": before, "after": current_request_id()})

    app = TracingMiddleware(Starlette(routes=[Route("/", wait_then_answer)]))
    first, second = await asyncio.gather(
        request(app, headers={"X-Request-ID": "one"}),
        request(app, headers={"X-Request-ID": "two"}),
    )
    assert first.json() == {"before": "one", "after": "one"}
    assert second.json() == {"before": "two", "after": "two"}


async def test_server_timing_has_total_and_the_rate_limiter_metric() -> None:
    limited = RateLimitMiddleware(make_app(), rate="10/minute", storage=MemoryStorage())
    response = await request(TracingMiddleware(limited))
    metrics = [part.strip() for part in response.headers["server-timing"].split(",")]
    assert re.fullmatch(r"total;dur=\d+\.\d", metrics[0])
    assert [re.sub(r"dur=\d+\.\d", "dur=N", part) for part in metrics] == [
        "total;dur=N",
        "ratelimit;dur=N",
    ]


async def test_server_timing_keeps_the_apps_own_metrics() -> None:
    response = await request(TracingMiddleware(make_app()), "/own-timing")
    values = response.headers.get_list("server-timing")
    assert values[0] == "db;dur=3.0"
    assert values[1].startswith("total;dur=")


async def test_server_timing_can_be_turned_off() -> None:
    response = await request(TracingMiddleware(make_app(), server_timing=False))
    assert "server-timing" not in response.headers
    assert "x-request-id" in response.headers


async def test_added_with_starlette_add_middleware() -> None:
    app = make_app()
    app.add_middleware(TracingMiddleware, request_id_header="X-Request-ID", server_timing=True)
    response = await request(app, headers={"X-Request-ID": "via-add-middleware"})
    assert response.headers["x-request-id"] == "via-add-middleware"
    assert response.json()["X-Request-ID"] == "via-add-middleware"


async def test_added_with_starlette_add_middleware_answers_errors_with_json() -> None:
    app = make_app()
    app.add_middleware(TracingMiddleware)
    response = await request(app, "/boom", headers={"X-Request-ID": "err-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "Internal Server Error", "request_id": "err-1"}
    assert response.headers["x-request-id"] == "err-1"


async def test_without_catch_exceptions_the_error_reaches_the_server() -> None:
    app = TracingMiddleware(make_app(), catch_exceptions=False)
    with pytest.raises(RuntimeError, match="hunter2"):
        await request(app, "/boom")
