"""The whole stack on Lambda: lambda_handler(compose(fastapi_app)) fed every event shape."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from fastapi import FastAPI

from asgi_lambda_mw.handler import LambdaHandler, lambda_handler
from asgi_lambda_mw.ratelimit.policy import Algorithm, Decision, Rate
from asgi_lambda_mw.ratelimit.storage.memory import MemoryStorage
from asgi_lambda_mw.stack import compose

from .lambda_events import (
    LambdaContext,
    alb_event,
    function_url_event,
    http_api_event,
    rest_event,
)

ORIGIN = "https://app.example"

SHAPES: dict[str, Callable[..., dict[str, Any]]] = {
    "rest": rest_event,
    "http_api": http_api_event,
    "function_url": function_url_event,
    "alb": alb_event,
    "alb_multi_value": partial(alb_event, multi_value=True),
}


class CountingStorage:
    """MemoryStorage on a fixed clock, counting the calls the rate limiter makes."""

    def __init__(self) -> None:
        self.inner = MemoryStorage(clock=lambda: 1_700_000_000.0)
        self.calls = 0

    async def hit(
        self, key: str, rate: Rate, *, algorithm: Algorithm = "sliding", cost: int = 1
    ) -> Decision:
        self.calls += 1
        return await self.inner.hit(key, rate, algorithm=algorithm, cost=cost)

    async def aclose(self) -> None:
        await self.inner.aclose()


def make_api() -> FastAPI:
    api = FastAPI()

    @api.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @api.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret database password in the message")

    @api.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return api


@pytest.fixture(scope="module", autouse=True)
def _lambda_event_loop(lambda_module_loop: asyncio.AbstractEventLoop) -> None:
    """Every test here runs on one Lambda-like event loop, closed after the module."""


@pytest.fixture
def storage() -> CountingStorage:
    return CountingStorage()


@pytest.fixture
def handler(storage: CountingStorage) -> Iterator[LambdaHandler]:
    app = compose(
        make_api(),
        rate_limit={"rate": "2/minute", "storage": storage, "exempt_paths": ["/health"]},
        cors={"allow_origins": [ORIGIN]},
    )
    lambda_app = lambda_handler(app)
    yield lambda_app
    lambda_app.shutdown()


def header(answer: dict[str, Any], name: str) -> str | None:
    """One response header, from ``headers`` or ``multiValueHeaders``, any key casing."""
    for key, value in (answer.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    for key, values in (answer.get("multiValueHeaders") or {}).items():
        if key.lower() == name:
            return ", ".join(values)
    return None


def body_json(answer: dict[str, Any]) -> Any:
    body = answer["body"]
    return json.loads(base64.b64decode(body) if answer["isBase64Encoded"] else body)


def get(handler: LambdaHandler, shape: str, path: str, **options: Any) -> dict[str, Any]:
    headers = {"Origin": ORIGIN, **options.pop("headers", {})}
    answer: dict[str, Any] = handler(
        SHAPES[shape]("GET", path, headers=headers, **options), LambdaContext()
    )
    return answer


def assert_readable_by_the_page(answer: dict[str, Any]) -> None:
    assert header(answer, "access-control-allow-origin") == ORIGIN
    exposed = {
        item.strip() for item in (header(answer, "access-control-expose-headers") or "").split(",")
    }
    assert {"RateLimit", "RateLimit-Policy", "Retry-After", "X-Request-ID"} <= exposed


@pytest.mark.parametrize("shape", SHAPES)
def test_429_carries_cors_headers_the_request_id_and_a_json_body(
    shape: str, handler: LambdaHandler
) -> None:
    statuses = [get(handler, shape, "/ok")["statusCode"] for _ in range(2)]
    limited = get(handler, shape, "/ok")
    assert statuses == [200, 200]
    assert limited["statusCode"] == 429
    assert_readable_by_the_page(limited)
    assert header(limited, "x-request-id")
    assert header(limited, "retry-after")
    assert header(limited, "content-type") == "application/problem+json"
    assert limited["isBase64Encoded"] is False
    assert body_json(limited)["status"] == 429


@pytest.mark.parametrize("shape", SHAPES)
def test_500_carries_cors_headers_the_request_id_and_a_json_body(
    shape: str, handler: LambdaHandler
) -> None:
    answer = get(handler, shape, "/boom")
    assert answer["statusCode"] == 500
    assert_readable_by_the_page(answer)
    assert header(answer, "content-type") == "application/json"
    assert body_json(answer) == {
        "error": "Internal Server Error",
        "request_id": header(answer, "x-request-id"),
    }
    assert "secret" not in answer["body"]


@pytest.mark.parametrize("shape", SHAPES)
def test_preflight_is_answered_without_touching_the_storage(
    shape: str, handler: LambdaHandler, storage: CountingStorage
) -> None:
    event = SHAPES[shape](
        "OPTIONS",
        "/ok",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
    )
    answer = handler(event, LambdaContext())
    assert answer["statusCode"] == 200
    assert header(answer, "access-control-allow-origin") == ORIGIN
    assert storage.calls == 0


@pytest.mark.parametrize("shape", SHAPES)
def test_every_log_line_is_json_and_carries_the_ids(
    shape: str, handler: LambdaHandler, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    contexts = [LambdaContext() for _ in range(3)]
    answers = [
        handler(SHAPES[shape]("GET", path, headers={"Origin": ORIGIN}), context)
        for path, context in zip(["/ok", "/boom", "/ok"], contexts, strict=True)
    ]
    assert [answer["statusCode"] for answer in answers] == [200, 500, 429]
    output = capsys.readouterr()
    lines = [line for line in (output.out + output.err).splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    access = [record for record in records if record["logger"] == "asgi_lambda_mw.access"]
    assert [record["status"] for record in access] == [200, 500, 429]
    for record, answer, context in zip(access, answers, contexts, strict=True):
        assert record["request_id"] == header(answer, "x-request-id")
        assert record["function_request_id"] == context.aws_request_id
        assert record["trace_id"]
    errors = [record for record in records if record["logger"] == "asgi_lambda_mw.errors"]
    assert [record["request_id"] for record in errors] == [header(answers[1], "x-request-id")]
    assert all(record.get("request_id") for record in records)


@pytest.mark.parametrize(
    "request_id",
    ["abc\r\nSet-Cookie: stolen=1", "a" * 10 * 1024],
    ids=["crlf", "10kb"],
)
@pytest.mark.parametrize("shape", SHAPES)
def test_unsafe_request_id_is_replaced(shape: str, request_id: str, handler: LambdaHandler) -> None:
    answer = get(handler, shape, "/ok", headers={"X-Request-ID": request_id})
    returned = header(answer, "x-request-id")
    assert returned
    assert returned != request_id
    assert len(returned) <= 128
    assert "\r" not in returned and "\n" not in returned
    assert header(answer, "set-cookie") is None


@pytest.mark.parametrize("shape", SHAPES)
def test_safe_request_id_is_kept(shape: str, handler: LambdaHandler) -> None:
    answer = get(handler, shape, "/ok", headers={"X-Request-ID": "client-id-42"})
    assert header(answer, "x-request-id") == "client-id-42"


@pytest.mark.parametrize("shape", SHAPES)
def test_each_client_has_its_own_budget(shape: str, handler: LambdaHandler) -> None:
    for _ in range(2):
        get(handler, shape, "/ok", source_ip="203.0.113.1")
    assert get(handler, shape, "/ok", source_ip="203.0.113.1")["statusCode"] == 429
    assert get(handler, shape, "/ok", source_ip="203.0.113.2")["statusCode"] == 200


@pytest.mark.parametrize("shape", SHAPES)
def test_exempt_path_is_never_limited(shape: str, handler: LambdaHandler) -> None:
    options = {"custom_domain": "api.example.com"} if shape == "rest" else {}
    statuses = [get(handler, shape, "/health", **options)["statusCode"] for _ in range(4)]
    assert statuses == [200, 200, 200, 200]


@pytest.mark.parametrize(
    "builder", [partial(rest_event, stage="prod"), partial(http_api_event, stage="prod")]
)
def test_exempt_path_is_never_limited_under_a_stage(
    builder: Callable[..., dict[str, Any]], handler: LambdaHandler
) -> None:
    # Under a stage the ASGI path is "/prod/health" and root_path "/prod" (as uvicorn does with
    # --root-path); path patterns must match the path below root_path.
    statuses = [handler(builder("GET", "/health"), LambdaContext())["statusCode"] for _ in range(4)]
    assert statuses == [200, 200, 200, 200]


def test_excluded_path_has_no_access_line_under_a_stage(
    storage: CountingStorage, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = lambda_handler(
        compose(
            make_api(),
            rate_limit={"storage": storage},
            tracing={"exclude_paths": ["/health"]},
        )
    )
    capsys.readouterr()
    try:
        answer = handler(rest_event("GET", "/health", stage="prod"), LambdaContext())
    finally:
        handler.shutdown()
    output = capsys.readouterr()
    assert answer["statusCode"] == 200
    assert "/health" not in output.out + output.err
