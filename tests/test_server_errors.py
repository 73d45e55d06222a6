"""The safety net: an unhandled exception becomes a JSON 500 with the request id (never the
exception text), logged once with its traceback; one raised after the response started is
logged once and never crashes uvicorn or the Lambda handler.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from mangum import Mangum
from starlette.background import BackgroundTask
from starlette.responses import PlainTextResponse

from asgi_lambda_mw.cors import CORSMiddleware
from asgi_lambda_mw.tracing import (
    ServerErrorMiddleware,
    TracingMiddleware,
    json_server_error_handler,
)
from asgi_lambda_mw.types import ASGIApp, Message, Receive, Scope, Send
from tests.lambda_events import LambdaContext, http_api_event
from tests.logging_state import clean_loggers

SECRET = "database password is hunter2"
_WATCHED_LOGGERS = ("asgi_lambda_mw", "mangum", "uvicorn.error")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def errors(self) -> list[logging.LogRecord]:
        """Records that report an unhandled exception, whoever logged them."""
        return [r for r in self.records if r.exc_info or "Exception in ASGI" in r.getMessage()]

    def access_statuses(self) -> list[Any]:
        return [
            getattr(r, "status", None) for r in self.records if r.name == "asgi_lambda_mw.access"
        ]


@pytest.fixture
def logs() -> Iterator[Records]:
    """Records of the library, Mangum and uvicorn, with logging state restored after."""
    handler = Records()
    names = (*_WATCHED_LOGGERS, "asgi_lambda_mw.access", "asgi_lambda_mw.errors")
    with clean_loggers(*names) as loggers:
        for logger in loggers[: len(_WATCHED_LOGGERS)]:
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
        yield handler


async def fail_before_start(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError(SECRET)


async def fail_mid_stream(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-part", b"1")]})
    await send({"type": "http.response.body", "body": b"first part", "more_body": True})
    raise RuntimeError(SECRET)


async def stream_fine(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in (b"one ", b"two ", b"three"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def fail_after_response(scope: Scope, receive: Receive, send: Send) -> Any:
    def cleanup() -> None:
        raise RuntimeError(SECRET)

    return PlainTextResponse("done", background=BackgroundTask(cleanup))(scope, receive, send)


def stack(app: ASGIApp) -> ASGIApp:
    """The composition's order: Tracing -> CORS -> ServerError -> app."""
    cors = CORSMiddleware(ServerErrorMiddleware(app), allow_origins=["https://app.example"])
    return TracingMiddleware(cors)


async def request(app: Any, path: str = "/", **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # re-raises anything the app lets escape
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, **kwargs)


async def test_exception_before_start_is_a_json_500_with_the_request_id(logs: Records) -> None:
    response = await request(stack(fail_before_start), headers={"X-Request-ID": "r-500"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "Internal Server Error", "request_id": "r-500"}
    assert response.headers["x-request-id"] == "r-500"


async def test_json_500_shows_no_exception_text_or_traceback(logs: Records) -> None:
    response = await request(stack(fail_before_start))
    assert SECRET not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text


async def test_exception_before_start_is_logged_once_with_its_traceback(logs: Records) -> None:
    response = await request(stack(fail_before_start))
    [record] = logs.errors()
    assert record.name == "asgi_lambda_mw.errors"
    assert record.exc_info is not None and str(record.exc_info[1]) == SECRET
    formatted = logging.Formatter().format(record)
    assert "Traceback (most recent call last)" in formatted
    assert record.request_id == response.headers["x-request-id"]  # type: ignore[attr-defined]
    assert logs.access_statuses() == [500]


async def test_json_500_gets_cors_headers_inside_the_cors_layer(logs: Records) -> None:
    response = await request(stack(fail_before_start), headers={"Origin": "https://app.example"})
    assert response.status_code == 500
    assert response.headers["access-control-allow-origin"] == "https://app.example"


async def test_tracing_alone_answers_with_the_same_json_500_logged_once(logs: Records) -> None:
    response = await request(TracingMiddleware(fail_before_start), headers={"X-Request-ID": "a1"})
    assert response.status_code == 500
    assert response.json() == {"error": "Internal Server Error", "request_id": "a1"}
    assert len(logs.errors()) == 1


async def test_server_error_middleware_alone_answers_without_a_request_id(logs: Records) -> None:
    response = await request(ServerErrorMiddleware(fail_before_start))
    assert response.status_code == 500
    assert response.json() == {"error": "Internal Server Error", "request_id": None}
    assert len(logs.errors()) == 1


async def test_exception_after_start_is_logged_once_and_not_raised(logs: Records) -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    await stack(fail_mid_stream)(scope, receive, send)  # returns: nothing raised
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 200 and sent[1]["more_body"] is True
    [record] = logs.errors()
    assert record.response_started is True  # type: ignore[attr-defined]
    assert logs.access_statuses() == [200]


async def test_exception_after_the_response_completed_leaves_it_intact(logs: Records) -> None:
    response = await request(stack(fail_after_response))
    assert (response.status_code, response.text) == (200, "done")
    assert len(logs.errors()) == 1


async def test_failure_to_send_the_500_does_not_raise(logs: Records) -> None:
    async def gone(message: Message) -> None:
        raise OSError("client went away")

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    await ServerErrorMiddleware(fail_before_start)(scope, receive, gone)
    assert len(logs.errors()) == 1


async def test_lifespan_passes_through_the_server_error_layer() -> None:
    sent: list[Message] = []

    async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        await send({"type": "lifespan.startup.complete"})

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        sent.append(message)

    await ServerErrorMiddleware(lifespan_app)({"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}]


def make_fastapi(*, json_handler: bool) -> FastAPI:
    api = FastAPI()

    @api.get("/boom")
    async def boom() -> None:
        raise RuntimeError(SECRET)

    if json_handler:
        api.add_exception_handler(Exception, json_server_error_handler)
    return api


async def test_fastapi_with_json_handler_answers_json_500_logged_once(logs: Records) -> None:
    app = stack(make_fastapi(json_handler=True))
    response = await request(app, "/boom", headers={"X-Request-ID": "fa-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "Internal Server Error", "request_id": "fa-1"}
    assert len(logs.errors()) == 1


async def test_fastapi_without_json_handler_keeps_its_text_500_logged_once(
    logs: Records,
) -> None:
    response = await request(stack(make_fastapi(json_handler=False)), "/boom")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/plain")
    assert len(logs.errors()) == 1


def invoke(app: Any, event: dict[str, Any]) -> dict[str, Any]:
    handler: Any = Mangum(app, lifespan="off")
    response: dict[str, Any] = handler(event, LambdaContext())
    return response


@pytest.mark.usefixtures("lambda_loop")
def test_under_mangum_exception_before_start_is_a_json_500(logs: Records) -> None:
    response = invoke(stack(fail_before_start), http_api_event(request_id="gw-500"))
    assert response["statusCode"] == 500
    assert json.loads(response["body"]) == {
        "error": "Internal Server Error",
        "request_id": "gw-500",
    }
    assert response["headers"]["x-request-id"] == "gw-500"
    assert len(logs.errors()) == 1


@pytest.mark.usefixtures("lambda_loop")
def test_under_mangum_failure_mid_stream_is_a_500_not_a_truncated_200(logs: Records) -> None:
    response = invoke(stack(fail_mid_stream), http_api_event(request_id="gw-mid"))
    assert response["statusCode"] == 500
    assert json.loads(response["body"]) == {
        "error": "Internal Server Error",
        "request_id": "gw-mid",
    }
    assert "x-part" not in response["headers"]
    assert len(logs.errors()) == 1


@pytest.mark.usefixtures("lambda_loop")
def test_under_mangum_an_app_that_never_answers_gets_a_json_500(logs: Records) -> None:
    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    response = invoke(stack(silent), http_api_event(request_id="gw-none"))
    assert response["statusCode"] == 500
    assert json.loads(response["body"])["request_id"] == "gw-none"
    assert [r.getMessage() for r in logs.records if r.name == "asgi_lambda_mw.errors"] == [
        "The app returned without a response to GET /"
    ]


@pytest.mark.usefixtures("lambda_loop")
def test_under_mangum_a_streamed_body_arrives_whole(logs: Records) -> None:
    response = invoke(stack(stream_fine), http_api_event())
    assert (response["statusCode"], response["body"]) == (200, "one two three")


@pytest.fixture
def serve() -> Iterator[Callable[[ASGIApp], str]]:
    """Runs apps under a real uvicorn on 127.0.0.1 and stops them after the test."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: ASGIApp) -> str:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, lifespan="off", log_config=None, access_log=False
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        running.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=10)


def test_under_uvicorn_failure_mid_stream_closes_the_connection_and_server_lives(
    logs: Records, serve: Callable[[ASGIApp], str]
) -> None:
    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        app = fail_mid_stream if scope["path"] == "/fail" else stream_fine
        await app(scope, receive, send)

    base = serve(stack(route))
    with httpx.Client(base_url=base) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/fail")
        after = client.get("/ok")
    assert (after.status_code, after.text) == (200, "one two three")
    [record] = logs.errors()  # ours; uvicorn logged no "Exception in ASGI application"
    assert record.name == "asgi_lambda_mw.errors"


def test_under_uvicorn_exception_before_start_is_a_json_500(
    logs: Records, serve: Callable[[ASGIApp], str]
) -> None:
    base = serve(stack(fail_before_start))
    response = httpx.get(base + "/", headers={"X-Request-ID": "uv-1"})
    assert response.status_code == 500
    assert response.json() == {"error": "Internal Server Error", "request_id": "uv-1"}
    assert len(logs.errors()) == 1
