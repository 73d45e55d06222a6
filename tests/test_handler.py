"""lambda_handler with a small FastAPI app, fed real API Gateway, ALB and Function URL events."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response

from asgi_lambda_mw._scope import COLD_START_KEY
from asgi_lambda_mw.exceptions import ConfigurationError
from asgi_lambda_mw.handler import LambdaHandler, lambda_handler
from asgi_lambda_mw.types import Receive, Scope, Send

from .lambda_events import (
    EXECUTE_API_HOST,
    FUNCTION_URL_HOST,
    LambdaContext,
    alb_event,
    function_url_event,
    http_api_event,
    rest_event,
    scheduled_event,
    warmup_event,
)

EventBuilder = Callable[..., dict[str, Any]]

SHAPES: dict[str, EventBuilder] = {
    "rest": rest_event,
    "http_api": http_api_event,
    "function_url": function_url_event,
    "alb": alb_event,
    "alb_multi_value": partial(alb_event, multi_value=True),
}


@dataclass
class Calls:
    """What the app saw: lifespan startups and shutdowns, HTTP requests."""

    startups: int = 0
    shutdowns: int = 0
    requests: list[str] = field(default_factory=list)
    fail_startup: bool = False


def make_app(calls: Calls) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        calls.startups += 1
        if calls.fail_startup:
            raise RuntimeError("database unreachable")
        yield {"greeting": "hello from startup"}
        calls.shutdowns += 1

    app = FastAPI(lifespan=lifespan)

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Any:
        calls.requests.append(request.url.path)
        return await call_next(request)

    @app.get("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        return {
            "path": request.url.path,
            "root_path": request.scope.get("root_path"),
            "url": str(request.url),
            "query": [list(item) for item in request.query_params.multi_items()],
            "x_test": request.headers.getlist("x-test"),
            "cookies": dict(request.cookies),
            "client": request.client.host if request.client else None,
            "state": getattr(request.state, "greeting", None),
            "cold_start": request.scope.get(COLD_START_KEY),
            "item_url": str(request.url_for("read_item", item_id=7)),
        }

    @app.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.post("/json")
    async def post_json(payload: dict[str, Any]) -> dict[str, Any]:
        return {"received": payload}

    @app.post("/binary")
    async def post_binary(request: Request) -> Response:
        return Response(content=(await request.body())[::-1], media_type="image/png")

    @app.get("/problem")
    async def problem() -> Response:
        body = b'{"type":"about:blank","title":"Teapot","status":418}'
        return Response(body, status_code=418, media_type="application/problem+json")

    @app.get("/cookies")
    async def set_cookies(response: Response) -> dict[str, bool]:
        response.set_cookie("flavour", "chocolate")
        response.set_cookie("size", "large")
        return {"ok": True}

    return app


@pytest.fixture(scope="module", autouse=True)
def _lambda_event_loop(lambda_module_loop: asyncio.AbstractEventLoop) -> None:
    """Every test here runs on one Lambda-like event loop, closed after the module."""


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def make_handler(calls: Calls) -> Iterator[Callable[..., LambdaHandler]]:
    """lambda_handler(make_app(calls), **options); every handler's lifespan is shut down after."""
    made: list[LambdaHandler] = []

    def build(app: Any = None, **options: Any) -> LambdaHandler:
        handler = lambda_handler(app if app is not None else make_app(calls), **options)
        made.append(handler)
        return handler

    yield build
    for handler in made:
        handler.shutdown()


def body_of(answer: dict[str, Any]) -> bytes:
    body = answer.get("body") or ""
    return base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()


def json_of(answer: dict[str, Any]) -> Any:
    return json.loads(body_of(answer))


def header_values(answer: dict[str, Any], name: str) -> list[str]:
    """A header's values across ``headers`` and ``multiValueHeaders``, any key casing."""
    values: list[str] = []
    for key, value in (answer.get("headers") or {}).items():
        if key.lower() == name:
            values.append(value)
    for key, multi in (answer.get("multiValueHeaders") or {}).items():
        if key.lower() == name:
            values.extend(multi)
    return values


def invoke(handler: LambdaHandler, event: Any) -> Any:
    return handler(event, LambdaContext())


# --- requests in, responses out, for every event shape ---------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_path_reaches_the_route(shape: str, make_handler: Callable[..., LambdaHandler]) -> None:
    answer = invoke(make_handler(), SHAPES[shape]("GET", "/items/42"))
    assert answer["statusCode"] == 200
    assert json_of(answer) == {"item_id": 42}


@pytest.mark.parametrize("shape", SHAPES)
def test_query_keeps_repeated_keys(shape: str, make_handler: Callable[..., LambdaHandler]) -> None:
    query = [("tag", "a"), ("tag", "b"), ("q", "x y&z")]
    answer = invoke(make_handler(), SHAPES[shape]("GET", "/echo", query=query))
    expected = [["tag", "a"], ["tag", "b"], ["q", "x y&z"]]
    if shape == "alb":
        # Without multi-value headers the load balancer passes only the last value of a key.
        expected = [["tag", "b"], ["q", "x y&z"]]
    assert json_of(answer)["query"] == expected


@pytest.mark.parametrize("shape", SHAPES)
def test_request_headers_reach_the_app(
    shape: str, make_handler: Callable[..., LambdaHandler]
) -> None:
    event = SHAPES[shape]("GET", "/echo", headers={"X-Test": "hello"})
    assert json_of(invoke(make_handler(), event))["x_test"] == ["hello"]


@pytest.mark.parametrize("shape", SHAPES)
def test_request_cookies_reach_the_app(
    shape: str, make_handler: Callable[..., LambdaHandler]
) -> None:
    event = SHAPES[shape]("GET", "/echo", cookies=["flavour=chocolate", "size=large"])
    assert json_of(invoke(make_handler(), event))["cookies"] == {
        "flavour": "chocolate",
        "size": "large",
    }


def test_rest_repeated_cookie_headers_are_all_read(
    make_handler: Callable[..., LambdaHandler],
) -> None:
    event = rest_event("GET", "/echo", headers=[("Cookie", "a=1"), ("Cookie", "b=2")])
    assert json_of(invoke(make_handler(), event))["cookies"] == {"a": "1", "b": "2"}


@pytest.mark.parametrize("shape", ["rest", "alb", "alb_multi_value"])
def test_set_cookies_come_out_as_separate_headers(
    shape: str, make_handler: Callable[..., LambdaHandler]
) -> None:
    answer = invoke(make_handler(), SHAPES[shape]("GET", "/cookies"))
    cookies = header_values(answer, "set-cookie")
    assert [cookie.split(";")[0] for cookie in cookies] == ["flavour=chocolate", "size=large"]
    if shape != "alb":
        assert len(answer["multiValueHeaders"]["set-cookie"]) == 2


@pytest.mark.parametrize("shape", ["http_api", "function_url"])
def test_set_cookies_come_out_in_the_cookies_list(
    shape: str, make_handler: Callable[..., LambdaHandler]
) -> None:
    answer = invoke(make_handler(), SHAPES[shape]("GET", "/cookies"))
    assert [cookie.split(";")[0] for cookie in answer["cookies"]] == [
        "flavour=chocolate",
        "size=large",
    ]
    assert header_values(answer, "set-cookie") == []


@pytest.mark.parametrize("shape", SHAPES)
def test_json_body_in_and_out(shape: str, make_handler: Callable[..., LambdaHandler]) -> None:
    event = SHAPES[shape]("POST", "/json", body={"name": "widget", "price": 2.5})
    answer = invoke(make_handler(), event)
    assert answer["statusCode"] == 200
    assert answer["isBase64Encoded"] is False
    assert json.loads(answer["body"]) == {"received": {"name": "widget", "price": 2.5}}


@pytest.mark.parametrize("shape", SHAPES)
def test_binary_body_in_and_out(shape: str, make_handler: Callable[..., LambdaHandler]) -> None:
    payload = bytes(range(256))
    answer = invoke(make_handler(), SHAPES[shape]("POST", "/binary", body=payload))
    assert answer["isBase64Encoded"] is True
    assert body_of(answer) == payload[::-1]
    assert header_values(answer, "content-type") == ["image/png"]


@pytest.mark.parametrize("shape", SHAPES)
def test_problem_json_body_is_sent_as_text(
    shape: str, make_handler: Callable[..., LambdaHandler]
) -> None:
    # A REST API would hand a base64 body to the client undecoded.
    answer = invoke(make_handler(), SHAPES[shape]("GET", "/problem"))
    assert answer["isBase64Encoded"] is False
    assert json.loads(answer["body"])["title"] == "Teapot"


# --- who is calling --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["rest", "http_api", "function_url"])
def test_client_is_the_request_context_source_ip(
    shape: str, make_handler: Callable[..., LambdaHandler]
) -> None:
    event = SHAPES[shape](
        "GET", "/echo", source_ip="203.0.113.9", headers={"X-Forwarded-For": "10.9.9.9"}
    )
    assert json_of(invoke(make_handler(), event))["client"] == "203.0.113.9"


@pytest.mark.parametrize("multi_value", [False, True])
def test_alb_client_is_the_peer_of_the_load_balancer(
    multi_value: bool, make_handler: Callable[..., LambdaHandler]
) -> None:
    event = alb_event(
        "GET",
        "/echo",
        source_ip="203.0.113.9",
        forwarded_for=["10.9.9.9"],  # a spoofed entry the client wrote itself
        multi_value=multi_value,
    )
    assert json_of(invoke(make_handler(), event))["client"] == "203.0.113.9"


def test_alb_client_behind_a_trusted_hop(make_handler: Callable[..., LambdaHandler]) -> None:
    # A CDN in front of the ALB appended the real client; the ALB appended the CDN's address.
    event = alb_event("GET", "/echo", source_ip="130.176.0.5", forwarded_for=["192.0.2.44"])
    answer = invoke(make_handler(alb_trusted_hops=1), event)
    assert json_of(answer)["client"] == "192.0.2.44"


# --- root path: the stage and base path mappings ---------------------------------------------


def test_rest_stage_is_the_root_path_through_the_execute_api_host(
    make_handler: Callable[..., LambdaHandler],
) -> None:
    echo = json_of(invoke(make_handler(), rest_event("GET", "/echo", stage="prod")))
    assert echo["root_path"] == "/prod"
    assert echo["url"] == f"https://{EXECUTE_API_HOST}/prod/echo"
    assert echo["item_url"] == f"https://{EXECUTE_API_HOST}/prod/items/7"


def test_rest_custom_domain_has_no_root_path(make_handler: Callable[..., LambdaHandler]) -> None:
    event = rest_event("GET", "/echo", stage="prod", custom_domain="api.example.com")
    echo = json_of(invoke(make_handler(), event))
    assert echo["root_path"] == ""
    assert echo["item_url"] == "https://api.example.com/items/7"


def test_base_path_mapping_is_the_root_path(make_handler: Callable[..., LambdaHandler]) -> None:
    event = rest_event("GET", "/echo", custom_domain="api.example.com", base_path="/v1")
    echo = json_of(invoke(make_handler(api_gateway_base_path="v1"), event))
    assert echo["root_path"] == "/v1"
    assert echo["item_url"] == "https://api.example.com/v1/items/7"


def test_base_path_is_matched_on_whole_segments(
    make_handler: Callable[..., LambdaHandler],
) -> None:
    event = rest_event("GET", "/v1x/echo", custom_domain="api.example.com")
    answer = invoke(make_handler(api_gateway_base_path="/v1"), event)
    assert answer["statusCode"] == 404


def test_http_api_named_stage_is_the_root_path(
    make_handler: Callable[..., LambdaHandler],
) -> None:
    echo = json_of(invoke(make_handler(), http_api_event("GET", "/echo", stage="prod")))
    assert echo["root_path"] == "/prod"
    assert echo["item_url"] == f"https://{EXECUTE_API_HOST}/prod/items/7"


def test_function_url_has_no_root_path(make_handler: Callable[..., LambdaHandler]) -> None:
    echo = json_of(invoke(make_handler(), function_url_event("GET", "/echo")))
    assert echo["root_path"] == ""
    assert echo["item_url"] == f"https://{FUNCTION_URL_HOST}/items/7"


@pytest.mark.parametrize(
    "builder", [partial(rest_event, stage="prod"), partial(http_api_event, stage="prod")]
)
def test_docs_under_the_stage_load_the_openapi_document_under_the_stage(
    builder: EventBuilder, make_handler: Callable[..., LambdaHandler]
) -> None:
    handler = make_handler()
    docs = invoke(handler, builder("GET", "/docs"))
    assert docs["statusCode"] == 200
    assert "'/prod/openapi.json'" in body_of(docs).decode()
    schema = invoke(handler, builder("GET", "/openapi.json"))
    assert schema["statusCode"] == 200
    assert "/items/{item_id}" in json_of(schema)["paths"]


# --- lifespan ---------------------------------------------------------------------------------


def test_lifespan_starts_once_over_100_invocations_and_its_state_reaches_requests(
    calls: Calls, make_handler: Callable[..., LambdaHandler]
) -> None:
    handler = make_handler()
    answers = [invoke(handler, http_api_event("GET", "/echo")) for _ in range(100)]
    assert calls.startups == 1
    assert {json_of(answer)["state"] for answer in answers} == {"hello from startup"}


def test_shutdown_runs_the_apps_lifespan_shutdown(
    calls: Calls, make_handler: Callable[..., LambdaHandler]
) -> None:
    handler = make_handler()
    invoke(handler, rest_event("GET", "/echo"))
    handler.shutdown()
    assert (calls.startups, calls.shutdowns) == (1, 1)


def test_lifespan_off_never_starts_the_app(
    calls: Calls, make_handler: Callable[..., LambdaHandler]
) -> None:
    answer = invoke(make_handler(lifespan="off"), rest_event("GET", "/echo"))
    assert answer["statusCode"] == 200
    assert calls.startups == 0
    assert json_of(answer)["state"] is None


def test_failed_startup_answers_json_500_and_is_tried_again(
    calls: Calls, make_handler: Callable[..., LambdaHandler]
) -> None:
    calls.fail_startup = True
    handler = make_handler()
    context = LambdaContext()
    first = handler(http_api_event("GET", "/echo"), context)
    second = handler(http_api_event("GET", "/echo"), LambdaContext())
    assert (first["statusCode"], second["statusCode"]) == (500, 500)
    assert json_of(first) == {
        "error": "Internal Server Error",
        "message": "The application failed to start.",
        "request_id": context.aws_request_id,
    }
    assert "database unreachable" not in first["body"]
    assert calls.requests == []
    calls.fail_startup = False
    assert invoke(handler, http_api_event("GET", "/echo"))["statusCode"] == 200
    assert calls.startups == 3


async def _http_only_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        raise RuntimeError("this app only speaks HTTP")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"plain"})


def test_app_without_lifespan_support_is_served(
    make_handler: Callable[..., LambdaHandler],
) -> None:
    answer = invoke(make_handler(_http_only_app), rest_event("GET", "/"))
    assert answer["statusCode"] == 200
    assert body_of(answer) == b"plain"


def test_lifespan_on_with_an_app_without_lifespan_answers_500(
    make_handler: Callable[..., LambdaHandler],
) -> None:
    answer = invoke(make_handler(_http_only_app, lifespan="on"), rest_event("GET", "/"))
    assert answer["statusCode"] == 500
    assert json_of(answer)["message"] == "The application failed to start."


def test_a_replaced_event_loop_gets_the_lifespan_on_the_new_loop(
    calls: Calls, make_handler: Callable[..., LambdaHandler]
) -> None:
    handler = make_handler()
    original = asyncio.get_event_loop()
    invoke(handler, rest_event("GET", "/echo"))
    asyncio.set_event_loop(None)  # as a test runner may do between tests
    try:
        answer = invoke(handler, rest_event("GET", "/echo"))
        replacement = asyncio.get_event_loop()
        handler.shutdown()
    finally:
        asyncio.get_event_loop().close()
        asyncio.set_event_loop(original)
    assert answer["statusCode"] == 200
    assert replacement is not original
    assert json_of(answer)["state"] == "hello from startup"
    assert (calls.startups, calls.shutdowns) == (2, 2)


# --- cold start -------------------------------------------------------------------------------


def test_cold_start_is_true_on_the_first_invocation_only(
    make_handler: Callable[..., LambdaHandler],
) -> None:
    handler = make_handler()
    flags = [json_of(invoke(handler, rest_event("GET", "/echo")))["cold_start"] for _ in range(3)]
    assert flags == [True, False, False]


# --- events that are not HTTP requests --------------------------------------------------------


def test_warmup_ping_is_answered_without_calling_the_app(
    calls: Calls, make_handler: Callable[..., LambdaHandler]
) -> None:
    handler = make_handler()
    assert invoke(handler, warmup_event()) == {"warm": True, "cold_start": True}
    assert calls.requests == []
    # The ping ran the startup, so the first request finds the app ready and warm.
    assert calls.startups == 1
    assert json_of(invoke(handler, rest_event("GET", "/echo")))["cold_start"] is False
    assert calls.startups == 1


def test_scheduled_event_is_ignored_without_on_event(
    calls: Calls, make_handler: Callable[..., LambdaHandler]
) -> None:
    answer = invoke(make_handler(), scheduled_event())
    assert answer == {"ignored": True, "event": "scheduled"}
    assert json.loads(json.dumps(answer)) == answer
    assert calls.requests == []


def test_scheduled_event_goes_to_on_event(
    calls: Calls, make_handler: Callable[..., LambdaHandler]
) -> None:
    seen: list[tuple[Any, Any]] = []

    def on_event(event: Any, context: Any) -> dict[str, str]:
        seen.append((event, context))
        return {"done": "nightly cleanup"}

    event, context = scheduled_event(), LambdaContext()
    assert make_handler(on_event=on_event)(event, context) == {"done": "nightly cleanup"}
    assert seen == [(event, context)]
    assert calls.requests == []


@pytest.mark.parametrize(
    "event",
    [None, 42, "ping", [], [{"requestContext": {}}], {}, {"Records": [{"eventSource": "aws:sqs"}]}],
    ids=["none", "int", "str", "empty-list", "list", "empty-dict", "sqs"],
)
def test_unrecognised_events_are_answered_not_raised(
    event: Any, calls: Calls, make_handler: Callable[..., LambdaHandler]
) -> None:
    answer = invoke(make_handler(), event)
    assert answer == {"ignored": True, "event": "unrecognised"}
    assert calls.requests == []


# --- malformed HTTP events --------------------------------------------------------------------


def _without(event: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in event.items() if name != key}


MALFORMED: dict[str, Callable[[], Any]] = {
    "rest-no-method": lambda: _without(rest_event(), "httpMethod"),
    "rest-method-not-string": lambda: {**rest_event(), "httpMethod": 42},
    "rest-headers-list": lambda: {**rest_event(), "headers": ["Host"], "multiValueHeaders": None},
    "rest-bad-base64": lambda: {**rest_event("POST"), "body": "abc", "isBase64Encoded": True},
    "http-no-http-context": lambda: {**http_api_event(), "requestContext": {"stage": "$default"}},
    "http-bad-base64": lambda: {**http_api_event("POST"), "body": "*=", "isBase64Encoded": True},
    "alb-no-path": lambda: _without(alb_event(), "path"),
    "alb-headers-null": lambda: {**alb_event(), "headers": None},
    "request-context-string": lambda: {**rest_event(), "requestContext": "nope"},
    "request-context-unknown": lambda: _without(rest_event(), "resource"),
    "no-request-context": lambda: _without(rest_event(), "requestContext"),
}


@pytest.mark.parametrize("make_event", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_http_event_answers_json_400(
    make_event: Callable[[], Any],
    calls: Calls,
    make_handler: Callable[..., LambdaHandler],
    caplog: pytest.LogCaptureFixture,
) -> None:
    context = LambdaContext()
    with caplog.at_level(logging.WARNING, logger="asgi_lambda_mw.handler"):
        answer = make_handler()(make_event(), context)
    assert answer["statusCode"] == 400
    assert header_values(answer, "content-type") == ["application/json"]
    assert json_of(answer) == {
        "error": "Bad Request",
        "message": "The Lambda event could not be read as an HTTP request.",
        "request_id": context.aws_request_id,
    }
    assert calls.requests == []
    assert [record.levelname for record in caplog.records] == ["WARNING"]
    assert "malformed" in caplog.records[0].getMessage()


def test_app_that_sends_no_response_answers_json_500(
    make_handler: Callable[..., LambdaHandler],
) -> None:
    async def silent_app(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    answer = invoke(make_handler(silent_app, lifespan="off"), http_api_event("GET", "/"))
    assert answer["statusCode"] == 500
    assert json_of(answer)["error"] == "Internal Server Error"


async def _start(send: Send, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [[b"x-a", b"1"]]})


def test_app_that_raises_before_responding_answers_json_500_and_is_logged(
    make_handler: Callable[..., LambdaHandler], caplog: pytest.LogCaptureFixture
) -> None:
    async def failing_app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="asgi_lambda_mw.handler"):
        answer = invoke(make_handler(failing_app, lifespan="off"), http_api_event("GET", "/"))
    assert answer["statusCode"] == 500
    assert json_of(answer)["error"] == "Internal Server Error"
    assert "boom" not in body_of(answer).decode()
    [record] = caplog.records
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)


def test_app_that_raises_mid_body_answers_500_not_a_truncated_200(
    make_handler: Callable[..., LambdaHandler],
) -> None:
    async def half_app(scope: Scope, receive: Receive, send: Send) -> None:
        await _start(send)
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise ValueError("boom")

    answer = invoke(make_handler(half_app, lifespan="off"), http_api_event("GET", "/"))
    assert answer["statusCode"] == 500
    assert json_of(answer)["error"] == "Internal Server Error"


def test_app_that_raises_after_a_complete_response_keeps_the_response(
    make_handler: Callable[..., LambdaHandler], caplog: pytest.LogCaptureFixture
) -> None:
    async def late_failure(scope: Scope, receive: Receive, send: Send) -> None:
        await _start(send, 201)
        await send({"type": "http.response.body", "body": b"done"})
        raise ValueError("cleanup failed")

    with caplog.at_level(logging.ERROR, logger="asgi_lambda_mw.handler"):
        answer = invoke(make_handler(late_failure, lifespan="off"), http_api_event("GET", "/"))
    assert (answer["statusCode"], body_of(answer)) == (201, b"done")
    assert "after" in caplog.records[0].getMessage()


def test_streamed_body_chunks_are_joined_and_the_app_sees_the_disconnect(
    make_handler: Callable[..., LambdaHandler],
) -> None:
    seen: list[Any] = []

    async def streaming_app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((await receive())["body"])

        async def listen() -> None:  # as Starlette's StreamingResponse does
            seen.append((await receive())["type"])

        listener = asyncio.ensure_future(listen())
        await _start(send)
        for chunk in (b"a", b"", b"bc"):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"d"})
        await listener

    event = http_api_event("POST", "/", body="payload")
    answer = invoke(make_handler(streaming_app, lifespan="off"), event)
    assert (answer["statusCode"], body_of(answer)) == (200, b"abcd")
    assert header_values(answer, "x-a") == ["1"]
    assert seen == [b"payload", "http.disconnect"]


def test_body_before_the_response_start_answers_500(
    make_handler: Callable[..., LambdaHandler],
) -> None:
    async def confused_app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.body", "body": b"too early"})

    answer = invoke(make_handler(confused_app, lifespan="off"), http_api_event("GET", "/"))
    assert answer["statusCode"] == 500


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"lifespan": "sometimes"}, "lifespan"),
        ({"alb_trusted_hops": -1}, "alb_trusted_hops"),
        ({"alb_trusted_hops": "1"}, "alb_trusted_hops"),
        ({"api_gateway_base_path": None}, "api_gateway_base_path"),
    ],
)
def test_bad_options_raise_configuration_error_naming_them(
    options: dict[str, Any], named: str
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    with pytest.raises(ConfigurationError, match=named):
        lambda_handler(app, **options)
