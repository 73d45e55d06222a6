"""RateLimitMiddleware end to end: a Starlette app behind the middleware, driven through httpx
(or Mangum with real Lambda events), counting in a real MemoryStorage on an injected clock."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from asgi_lambda_mw._scope import SERVER_TIMING_KEY
from asgi_lambda_mw.exceptions import StorageError
from asgi_lambda_mw.ratelimit.keys import header_key, principal_key
from asgi_lambda_mw.ratelimit.middleware import RateLimitExceeded, RateLimitMiddleware
from asgi_lambda_mw.ratelimit.policy import Algorithm, Decision, Rate
from asgi_lambda_mw.ratelimit.storage.memory import MemoryStorage
from asgi_lambda_mw.types import ASGIApp, Message, Receive, Scope, Send
from tests.test_client_ip import alb_event, http_api_event, invoke, rest_event

# A start time on a day boundary, so every window (second to day) starts here; requests are
# made 10 s in, so a 60 s window has 50 s left.
START = 864_000.0
CLIENT = "203.0.113.7"
LOGGER = "asgi_lambda_mw.ratelimit"


class Clock:
    """One clock for MemoryStorage and the middleware, moved by hand."""

    def __init__(self) -> None:
        self.now = START + 10

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingStorage:
    """A MemoryStorage that records every hit it is asked for."""

    def __init__(self, clock: Clock) -> None:
        self.inner = MemoryStorage(clock=clock)
        self.keys: list[str] = []

    async def hit(
        self, key: str, rate: Rate, *, algorithm: Algorithm = "sliding", cost: int = 1
    ) -> Decision:
        self.keys.append(key)
        return await self.inner.hit(key, rate, algorithm=algorithm, cost=cost)

    async def aclose(self) -> None:
        await self.inner.aclose()


class FailingStorage:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def hit(
        self, key: str, rate: Rate, *, algorithm: Algorithm = "sliding", cost: int = 1
    ) -> Decision:
        self.calls += 1
        raise self.error

    async def aclose(self) -> None:
        pass


class HangingStorage:
    async def hit(
        self, key: str, rate: Rate, *, algorithm: Algorithm = "sliding", cost: int = 1
    ) -> Decision:
        await asyncio.sleep(60)
        raise AssertionError("the time budget should have cancelled this")

    async def aclose(self) -> None:
        pass


class Harness:
    """The app behind the middleware, with what the app and the storage saw."""

    def __init__(self, *, storage: Any = None, **options: Any) -> None:
        self.clock = Clock()
        self.storage = storage if storage is not None else CountingStorage(self.clock)
        self.calls: list[str] = []

        async def endpoint(request: Request) -> Response:
            self.calls.append(request.url.path)
            if request.url.path == "/upload":
                return PlainTextResponse(f"read {len(await request.body())} bytes")
            return PlainTextResponse("ok")

        paths = ["/", "/hello", "/health", "/static/app.js", "/api/items", "/expensive", "/a", "/b"]
        routes = [Route(path, endpoint) for path in paths]
        routes += [Route(path, endpoint, methods=["POST"]) for path in ("/login", "/upload")]
        options.setdefault("algorithm", "fixed")
        options.setdefault("clock", self.clock)
        self.app: ASGIApp = RateLimitMiddleware(
            Starlette(routes=routes), storage=self.storage, **options
        )

    def client(self, ip: str = CLIENT) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 51234))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")

    async def get(self, path: str = "/", ip: str = CLIENT, **kwargs: Any) -> httpx.Response:
        async with self.client(ip) as client:
            return await client.get(path, **kwargs)

    def lambda_invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        return invoke(self.app, event)


def _header(response: dict[str, Any], name: str) -> str | None:
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return str(values[0])
    return None


# --- headers and the 429 ---------------------------------------------------------------------


async def test_allowed_response_carries_ratelimit_headers() -> None:
    harness = Harness(rate="3/minute")
    response = await harness.get()
    assert response.status_code == 200
    assert response.headers["RateLimit-Policy"] == '"3-per-60s";q=3;w=60'
    assert response.headers["RateLimit"] == '"3-per-60s";r=2;t=50'
    assert "Retry-After" not in response.headers


async def test_remaining_counts_down_per_request() -> None:
    harness = Harness(rate="3/minute")
    remaining = [(await harness.get()).headers["RateLimit"] for _ in range(3)]
    assert remaining == ['"3-per-60s";r=2;t=50', '"3-per-60s";r=1;t=50', '"3-per-60s";r=0;t=50']


async def test_app_error_responses_carry_ratelimit_headers_too() -> None:
    harness = Harness(rate="3/minute")
    response = await harness.get("/no-such-page")
    assert response.status_code == 404
    assert response.headers["RateLimit"] == '"3-per-60s";r=2;t=50'


async def test_request_over_the_limit_gets_429_with_headers_and_retry_after() -> None:
    harness = Harness(rate="2/minute")
    for _ in range(2):
        await harness.get()
    response = await harness.get()
    assert response.status_code == 429
    assert response.headers["RateLimit-Policy"] == '"2-per-60s";q=2;w=60'
    assert response.headers["RateLimit"] == '"2-per-60s";r=0;t=50'
    assert response.headers["Retry-After"] == "50"


async def test_429_body_is_problem_json() -> None:
    harness = Harness(rate="1/minute")
    await harness.get()
    response = await harness.get()
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "Rate limit of 1 per 60 seconds exceeded; retry in 50 seconds.",
    }


async def test_429_does_not_call_the_app() -> None:
    harness = Harness(rate="1/minute")
    await harness.get()
    await harness.get()
    await harness.get()
    assert harness.calls == ["/"]


async def test_429_does_not_read_the_request_body() -> None:
    harness = Harness(rate="1/minute")
    inner = harness.app
    received: list[Message] = []

    async def counting_receive_app(scope: Scope, receive: Receive, send: Send) -> None:
        async def counting_receive() -> Message:
            message = await receive()
            received.append(message)
            return message

        await inner(scope, counting_receive, send)

    harness.app = counting_receive_app
    async with harness.client() as client:
        first = await client.post("/upload", content=b"x" * 1000)
        received.clear()
        second = await client.post("/upload", content=b"x" * 1000)
    assert first.text == "read 1000 bytes"
    assert second.status_code == 429
    assert received == []


async def test_client_passes_again_once_the_window_allows() -> None:
    harness = Harness(rate="1/minute")
    await harness.get()
    assert (await harness.get()).status_code == 429
    harness.clock.advance(50)
    assert (await harness.get()).status_code == 200


async def test_legacy_headers_option_adds_x_ratelimit_headers() -> None:
    harness = Harness(rate="3/minute", legacy_headers=True)
    response = await harness.get()
    assert response.headers["X-RateLimit-Limit"] == "3"
    assert response.headers["X-RateLimit-Remaining"] == "2"
    assert response.headers["X-RateLimit-Reset"] == "50"


async def test_legacy_headers_are_off_by_default() -> None:
    response = await Harness(rate="3/minute").get()
    assert not any(name.lower().startswith("x-ratelimit") for name in response.headers)


async def test_legacy_headers_on_429_report_zero_remaining() -> None:
    harness = Harness(rate="1/minute", legacy_headers=True)
    await harness.get()
    response = await harness.get()
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert response.headers["X-RateLimit-Reset"] == "50"


async def test_every_rate_must_pass_and_headers_report_the_most_restrictive() -> None:
    harness = Harness(rate="2/minute; 5/hour")
    response = await harness.get()
    assert response.headers["RateLimit-Policy"] == (
        '"2-per-60s";q=2;w=60, "5-per-3600s";q=5;w=3600'
    )
    assert response.headers["RateLimit"] == '"2-per-60s";r=1;t=50'


async def test_a_later_rate_refuses_when_an_earlier_one_passes() -> None:
    harness = Harness(rate="5/minute; 2/hour")
    await harness.get()
    await harness.get()
    response = await harness.get()
    assert response.status_code == 429
    assert response.headers["RateLimit"] == '"2-per-3600s";r=0;t=3590'
    assert response.headers["Retry-After"] == "3590"


async def test_counting_stops_at_the_first_refusing_rate() -> None:
    harness = Harness(rate="1/minute; 5/hour", deny_cache_size=0)
    await harness.get()
    await harness.get()
    storage = harness.storage
    assert isinstance(storage, CountingStorage)
    assert len(storage.keys) == 3  # two rates for the first request, one for the second


async def test_storage_time_is_recorded_for_server_timing() -> None:
    harness = Harness(rate="3/minute")
    inner = harness.app
    timings: dict[str, float] = {}

    async def tracing_app(scope: Scope, receive: Receive, send: Send) -> None:
        scope[SERVER_TIMING_KEY] = timings
        await inner(scope, receive, send)

    harness.app = tracing_app
    await harness.get()
    assert timings["ratelimit"] >= 0


# --- hooks -------------------------------------------------------------------------------------


async def test_on_limited_hook_reshapes_the_429() -> None:
    seen: list[RateLimitExceeded] = []

    def on_limited(scope: Scope, exceeded: RateLimitExceeded) -> ASGIApp:
        seen.append(exceeded)
        return JSONResponse({"error": "slow down"}, status_code=429, headers={"Retry-After": "120"})

    harness = Harness(rate="1/minute", on_limited=on_limited)
    await harness.get()
    response = await harness.get()
    assert response.json() == {"error": "slow down"}
    assert response.headers["Retry-After"] == "120"
    assert response.headers["RateLimit"] == '"1-per-60s";r=0;t=50'
    assert seen[0].key == f"ip:{CLIENT}"
    assert seen[0].rate == Rate(1, 60)
    assert seen[0].retry_after == 50


async def test_on_unavailable_hook_reshapes_the_503() -> None:
    def on_unavailable(scope: Scope, error: Exception) -> ASGIApp:
        return PlainTextResponse(f"maintenance ({type(error).__name__})", status_code=503)

    harness = Harness(
        storage=FailingStorage(StorageError("table missing")),
        fail_open=False,
        on_unavailable=on_unavailable,
    )
    response = await harness.get()
    assert response.status_code == 503
    assert response.text == "maintenance (StorageError)"
    assert response.headers["Retry-After"] == "5"


# --- storage failures --------------------------------------------------------------------------


async def test_storage_error_fails_open_without_ratelimit_headers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness = Harness(storage=FailingStorage(StorageError("connection refused", retryable=True)))
    response = await harness.get()
    assert response.status_code == 200
    assert harness.calls == ["/"]
    assert "RateLimit" not in response.headers


async def test_fail_open_warning_does_not_flood_over_1000_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    harness = Harness(storage=FailingStorage(StorageError("connection refused")))
    async with harness.client() as client:
        for _ in range(1000):
            assert (await client.get("/")).status_code == 200
    records = [record for record in caplog.records if record.name == LOGGER]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert "connection refused" in records[0].getMessage()
    assert "failing open" in records[0].getMessage()


async def test_next_warning_reports_how_many_were_suppressed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    harness = Harness(storage=FailingStorage(StorageError("connection refused")))
    async with harness.client() as client:
        for _ in range(10):
            await client.get("/")
        harness.clock.advance(61)
        await client.get("/")
    records = [record for record in caplog.records if record.name == LOGGER]
    assert len(records) == 2
    assert "9 similar messages suppressed" in records[1].getMessage()


async def test_storage_error_fails_closed_with_503_and_retry_after() -> None:
    harness = Harness(storage=FailingStorage(StorageError("table missing")), fail_open=False)
    response = await harness.get()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 503
    assert "table missing" not in response.text
    assert harness.calls == []


async def test_unexpected_storage_exception_is_handled_and_logged_with_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    harness = Harness(storage=FailingStorage(RuntimeError("bug in storage")))
    response = await harness.get()
    assert response.status_code == 200
    [record] = [record for record in caplog.records if record.name == LOGGER]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


async def test_unexpected_storage_exception_fails_closed_when_configured() -> None:
    harness = Harness(storage=FailingStorage(KeyError("x")), fail_open=False)
    assert (await harness.get()).status_code == 503


async def test_slow_storage_is_cut_off_by_the_time_budget_and_fails_open() -> None:
    harness = Harness(storage=HangingStorage(), timeout=0.05)
    started = time.perf_counter()
    response = await harness.get()
    assert response.status_code == 200
    assert time.perf_counter() - started < 5


async def test_slow_storage_fails_closed_within_the_time_budget() -> None:
    harness = Harness(storage=HangingStorage(), timeout=0.05, fail_open=False)
    started = time.perf_counter()
    response = await harness.get()
    assert response.status_code == 503
    assert time.perf_counter() - started < 5


# --- deny cache --------------------------------------------------------------------------------


async def test_denied_client_is_refused_without_storage_calls_until_it_could_pass() -> None:
    harness = Harness(rate="2/minute")
    storage = harness.storage
    assert isinstance(storage, CountingStorage)
    for _ in range(3):
        await harness.get()
    assert len(storage.keys) == 3
    for _ in range(5):
        assert (await harness.get()).status_code == 429
    assert len(storage.keys) == 3
    harness.clock.advance(50)
    assert (await harness.get()).status_code == 200
    assert len(storage.keys) == 4


async def test_deny_cache_answers_count_down_retry_after() -> None:
    harness = Harness(rate="1/minute")
    await harness.get()
    assert (await harness.get()).headers["Retry-After"] == "50"
    harness.clock.advance(20)
    response = await harness.get()
    assert response.headers["Retry-After"] == "30"
    assert response.headers["RateLimit"] == '"1-per-60s";r=0;t=30'


async def test_deny_cache_is_bounded() -> None:
    harness = Harness(rate="1/minute", deny_cache_size=1)
    storage = harness.storage
    assert isinstance(storage, CountingStorage)
    for ip in ("198.51.100.1", "198.51.100.2"):
        await harness.get(ip=ip)
        await harness.get(ip=ip)  # refused and remembered; the second evicts the first
    before = storage.keys.count("ip:198.51.100.1")
    assert (await harness.get(ip="198.51.100.1")).status_code == 429
    assert storage.keys.count("ip:198.51.100.1") == before + 1


async def test_deny_cache_size_zero_asks_the_storage_every_time() -> None:
    harness = Harness(rate="1/minute", deny_cache_size=0)
    storage = harness.storage
    assert isinstance(storage, CountingStorage)
    for _ in range(4):
        await harness.get()
    assert len(storage.keys) == 4


# --- what is limited ---------------------------------------------------------------------------


async def test_exempt_paths_are_not_limited() -> None:
    harness = Harness(rate="1/minute", exempt_paths=["/health", "/static/*"])
    for path in ("/health", "/health", "/static/app.js", "/static/app.js"):
        response = await harness.get(path)
        assert response.status_code == 200
        assert "RateLimit" not in response.headers
    assert (await harness.get("/")).status_code == 200
    assert (await harness.get("/")).status_code == 429


async def test_exempt_path_is_exact_unless_it_ends_with_a_star() -> None:
    harness = Harness(rate="1/minute", exempt_paths=["/api"])
    await harness.get("/api/items")
    assert (await harness.get("/api/items")).status_code == 429


async def test_options_requests_are_exempt_by_default() -> None:
    harness = Harness(rate="1/minute")
    async with harness.client() as client:
        for _ in range(3):
            response = await client.options("/")
            assert response.status_code != 429
            assert "RateLimit" not in response.headers


async def test_exempt_methods_can_be_chosen() -> None:
    harness = Harness(rate="1/minute", exempt_methods=["GET"])
    for _ in range(3):
        assert (await harness.get()).status_code == 200
    async with harness.client() as client:
        await client.options("/")
        assert (await client.options("/")).status_code == 429


async def test_route_rate_applies_to_its_route_in_its_own_bucket() -> None:
    harness = Harness(rate="3/minute", routes={"POST /login": "1/minute"})
    async with harness.client() as client:
        first = await client.post("/login")
        second = await client.post("/login")
        other = await client.get("/")
    assert first.status_code == 200
    assert first.headers["RateLimit-Policy"] == '"1-per-60s";q=1;w=60'
    assert second.status_code == 429
    assert other.headers["RateLimit"] == '"3-per-60s";r=2;t=50'


async def test_route_prefix_pattern_and_longest_match() -> None:
    harness = Harness(rate="5/minute", routes={"/api/*": "2/minute", "/api/items": "1/minute"})
    assert (await harness.get("/api/other")).headers["RateLimit-Policy"].startswith('"2-per-60s"')
    assert (await harness.get("/api/items")).headers["RateLimit-Policy"].startswith('"1-per-60s"')
    assert (await harness.get("/")).headers["RateLimit-Policy"].startswith('"5-per-60s"')


async def test_cost_counts_several_units_per_request() -> None:
    harness = Harness(rate="4/minute", cost=2)
    assert (await harness.get()).headers["RateLimit"] == '"4-per-60s";r=2;t=50'
    assert (await harness.get()).headers["RateLimit"] == '"4-per-60s";r=0;t=50'
    assert (await harness.get()).status_code == 429


async def test_cost_callable_prices_each_request() -> None:
    def cost(scope: Scope) -> int:
        return 3 if scope["path"] == "/expensive" else 1

    harness = Harness(rate="4/minute", cost=cost)
    assert (await harness.get("/expensive")).headers["RateLimit"] == '"4-per-60s";r=1;t=50'
    assert (await harness.get("/")).headers["RateLimit"] == '"4-per-60s";r=0;t=50'


async def test_cost_of_zero_makes_a_request_free() -> None:
    harness = Harness(rate="1/minute", cost=lambda scope: 0 if scope["path"] == "/a" else 1)
    for _ in range(3):
        response = await harness.get("/a")
        assert response.status_code == 200
        assert "RateLimit" not in response.headers


# --- keys --------------------------------------------------------------------------------------


async def test_clients_have_separate_buckets_by_ip() -> None:
    harness = Harness(rate="1/minute")
    assert (await harness.get(ip="198.51.100.1")).status_code == 200
    assert (await harness.get(ip="198.51.100.2")).status_code == 200
    assert (await harness.get(ip="198.51.100.1")).status_code == 429


async def test_ipv6_clients_in_one_64_share_a_bucket() -> None:
    harness = Harness(rate="1/minute")
    assert (await harness.get(ip="2001:db8:1:2::1")).status_code == 200
    assert (await harness.get(ip="2001:db8:1:2:ffff::9")).status_code == 429
    assert (await harness.get(ip="2001:db8:1:3::1")).status_code == 200


async def test_ipv6_grouping_can_be_turned_off() -> None:
    harness = Harness(rate="1/minute", ipv6_prefix=None)
    assert (await harness.get(ip="2001:db8:1:2::1")).status_code == 200
    assert (await harness.get(ip="2001:db8:1:2::2")).status_code == 200


async def test_header_key_shares_a_bucket_across_ips() -> None:
    harness = Harness(rate="1/minute", key=header_key("X-API-Key"))
    headers = {"X-API-Key": "secret-key-1"}
    assert (await harness.get(ip="198.51.100.1", headers=headers)).status_code == 200
    assert (await harness.get(ip="198.51.100.2", headers=headers)).status_code == 429
    other = {"X-API-Key": "secret-key-2"}
    assert (await harness.get(ip="198.51.100.1", headers=other)).status_code == 200


async def test_header_key_stores_a_digest_not_the_secret() -> None:
    harness = Harness(rate="5/minute", key=header_key("X-API-Key"))
    await harness.get(headers={"X-API-Key": "secret-key-1" * 1000})
    storage = harness.storage
    assert isinstance(storage, CountingStorage)
    [key] = storage.keys
    assert key.startswith("hdr:x-api-key:")
    assert "secret" not in key
    assert len(key) < 64


async def test_missing_key_header_falls_back_to_the_client_ip() -> None:
    harness = Harness(rate="1/minute", key=header_key("X-API-Key"))
    assert (await harness.get(ip="198.51.100.1")).status_code == 200
    assert (await harness.get(ip="198.51.100.1")).status_code == 429
    assert (await harness.get(ip="198.51.100.2")).status_code == 200


async def test_callable_key_groups_requests() -> None:
    def tenant(scope: Scope) -> str | None:
        return "tenant-a" if scope["path"] in ("/a", "/b") else None

    harness = Harness(rate="1/minute", key=tenant)
    assert (await harness.get("/a", ip="198.51.100.1")).status_code == 200
    assert (await harness.get("/b", ip="198.51.100.2")).status_code == 429
    storage = harness.storage
    assert isinstance(storage, CountingStorage)
    assert storage.keys == ["fn:tenant-a", "fn:tenant-a"]


async def test_async_callable_key_is_awaited() -> None:
    async def tenant(scope: Scope) -> str | None:
        await asyncio.sleep(0)
        return "tenant-b"

    harness = Harness(rate="1/minute", key=tenant)
    assert (await harness.get(ip="198.51.100.1")).status_code == 200
    assert (await harness.get(ip="198.51.100.2")).status_code == 429


async def test_callable_key_values_cannot_collide_with_ip_buckets() -> None:
    def impersonate(scope: Scope) -> str | None:
        return f"ip:{CLIENT}" if scope["path"] == "/a" else None

    harness = Harness(rate="1/minute", key=impersonate)
    assert (await harness.get("/a")).status_code == 200
    assert (await harness.get("/")).status_code == 200  # the real ip: bucket is untouched


def test_principal_key_uses_http_api_jwt_sub() -> None:
    harness = Harness(rate="1/minute", key=principal_key())
    responses = []
    for source_ip in ("198.51.100.1", "198.51.100.2"):
        event = http_api_event(source_ip)
        event["requestContext"]["authorizer"] = {
            "jwt": {"claims": {"sub": "user-123", "iss": "https://issuer"}, "scopes": None}
        }
        responses.append(harness.lambda_invoke(event)["statusCode"])
    assert responses == [200, 429]


def test_principal_key_uses_rest_lambda_authorizer_principal_id() -> None:
    harness = Harness(rate="1/minute", key=principal_key())
    responses = []
    for source_ip in ("198.51.100.1", "198.51.100.2"):
        event = rest_event(source_ip)
        event["requestContext"]["authorizer"] = {"principalId": "user-9", "integrationLatency": 3}
        responses.append(harness.lambda_invoke(event)["statusCode"])
    assert responses == [200, 429]


def test_principal_key_uses_rest_cognito_claims_sub() -> None:
    harness = Harness(rate="1/minute", key=principal_key())
    responses = []
    for sub in ("alice", "bob", "alice"):
        event = rest_event("198.51.100.1")
        event["requestContext"]["authorizer"] = {"claims": {"sub": sub, "email": "x@example.com"}}
        responses.append(harness.lambda_invoke(event)["statusCode"])
    assert responses == [200, 200, 429]


def test_principal_key_without_authorizer_falls_back_to_source_ip() -> None:
    harness = Harness(rate="1/minute", key=principal_key())
    first = harness.lambda_invoke(rest_event("198.51.100.1"))
    second = harness.lambda_invoke(rest_event("198.51.100.1"))
    assert (first["statusCode"], second["statusCode"]) == (200, 429)


# --- the client IP on Lambda -------------------------------------------------------------------


@pytest.mark.parametrize("build", [rest_event, http_api_event])
def test_spoofed_forwarding_headers_on_api_gateway_do_not_change_the_bucket(
    build: Callable[..., dict[str, Any]],
) -> None:
    harness = Harness(rate="1/minute")
    first = harness.lambda_invoke(build(CLIENT, {"X-Forwarded-For": "6.6.6.1"}))
    spoofed = {"X-Forwarded-For": "6.6.6.2", "X-Real-IP": "6.6.6.3", "Forwarded": "for=6.6.6.4"}
    second = harness.lambda_invoke(build(CLIENT, spoofed))
    assert first["statusCode"] == 200
    assert second["statusCode"] == 429
    assert _header(second, "Retry-After") == "50"


def test_api_gateway_clients_are_told_apart_by_source_ip() -> None:
    harness = Harness(rate="1/minute")
    spoofed = {"X-Forwarded-For": "6.6.6.6"}
    assert harness.lambda_invoke(rest_event("198.51.100.1", spoofed))["statusCode"] == 200
    assert harness.lambda_invoke(rest_event("198.51.100.2", spoofed))["statusCode"] == 200


def test_alb_trusted_hops_finds_the_client_behind_a_proxy() -> None:
    harness = Harness(rate="1/minute", trusted_hops=1)
    first = harness.lambda_invoke(alb_event("198.51.100.1, 130.176.0.5"))
    second = harness.lambda_invoke(alb_event("198.51.100.1, 130.176.0.6"))
    assert (first["statusCode"], second["statusCode"]) == (200, 429)


def test_alb_without_trusted_hops_limits_the_right_most_entry() -> None:
    harness = Harness(rate="1/minute")
    first = harness.lambda_invoke(alb_event("6.6.6.6, 130.176.0.5", multi_value=True))
    second = harness.lambda_invoke(alb_event("6.6.6.7, 130.176.0.5", multi_value=True))
    assert (first["statusCode"], second["statusCode"]) == (200, 429)


async def test_trusted_proxy_forwarded_for_is_used_under_uvicorn() -> None:
    harness = Harness(rate="1/minute", trusted_proxies=["127.0.0.1"])
    forwarded = {"X-Forwarded-For": "198.51.100.1"}
    assert (await harness.get(ip="127.0.0.1", headers=forwarded)).status_code == 200
    assert (
        await harness.get(ip="127.0.0.1", headers={"X-Forwarded-For": "198.51.100.2"})
    ).status_code == 200
    assert (await harness.get(ip="127.0.0.1", headers=forwarded)).status_code == 429


# --- unknown clients ---------------------------------------------------------------------------


async def test_unknown_client_is_allowed_by_default_with_a_throttled_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    harness = Harness(rate="1/minute")
    for _ in range(5):
        response = await harness.get(ip="testclient")
        assert response.status_code == 200
        assert "RateLimit" not in response.headers
    records = [record for record in caplog.records if record.name == LOGGER]
    assert len(records) == 1
    assert "no client IP" in records[0].getMessage()


async def test_unknown_clients_share_one_bucket_when_configured() -> None:
    harness = Harness(rate="1/minute", unknown_client="shared")
    assert (await harness.get(ip="testclient")).status_code == 200
    assert (await harness.get(ip="not-an-ip")).status_code == 429
    assert (await harness.get(ip="198.51.100.1")).status_code == 200


# --- ASGI plumbing and frameworks --------------------------------------------------------------


@pytest.mark.parametrize("scope_type", ["lifespan", "websocket"])
async def test_non_http_scopes_pass_straight_through(scope_type: str) -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    storage = FailingStorage(StorageError("must not be called"))
    middleware = RateLimitMiddleware(inner, rate="1/minute", storage=storage, fail_open=False)

    async def receive() -> Message:
        return {"type": f"{scope_type}.connect"}

    async def send(message: Message) -> None:
        raise AssertionError(f"nothing should be sent, got {message}")

    for _ in range(3):
        await middleware({"type": scope_type, "path": "/", "client": None}, receive, send)
    assert seen == [scope_type] * 3
    assert storage.calls == 0


def _page(request: Request) -> Response:
    return PlainTextResponse("page")


def _client(app: ASGIApp) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(CLIENT, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_works_under_starlette_add_middleware() -> None:
    app = Starlette(routes=[Route("/", _page)])
    app.add_middleware(RateLimitMiddleware, rate="1/minute", storage=MemoryStorage())
    async with _client(app) as client:
        first = await client.get("/")
        second = await client.get("/")
    assert first.status_code == 200
    assert first.headers["RateLimit-Policy"] == '"1-per-60s";q=1;w=60'
    assert second.status_code == 429
    assert json.loads(second.text)["status"] == 429


async def test_works_under_fastapi_add_middleware() -> None:
    api = FastAPI()

    @api.get("/items")
    def items() -> dict[str, int]:
        return {"count": 3}

    api.add_middleware(RateLimitMiddleware, rate="1/minute", storage=MemoryStorage())
    async with _client(api) as client:
        first = await client.get("/items")
        second = await client.get("/items")
    assert first.json() == {"count": 3}
    assert "RateLimit" in first.headers
    assert second.status_code == 429


# --- real storage faults: DynamoDBStorage on a closed port and on a server that never answers ---


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_dynamodb_on_a_closed_port_fails_open() -> None:
    from asgi_lambda_mw.ratelimit.storage.dynamodb import DynamoDBStorage

    storage = DynamoDBStorage("limits", endpoint_url=f"http://127.0.0.1:{_closed_port()}")
    harness = Harness(storage=storage, timeout=5)
    try:
        response = await harness.get()
    finally:
        await storage.aclose()
    assert response.status_code == 200
    assert "RateLimit" not in response.headers


async def test_dynamodb_that_never_answers_fails_closed_within_the_budget() -> None:
    from asgi_lambda_mw.ratelimit.storage.dynamodb import DynamoDBStorage

    connections: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    storage = DynamoDBStorage("limits", endpoint_url=f"http://127.0.0.1:{port}", timeout=30)
    harness = Harness(storage=storage, timeout=0.1, fail_open=False)
    try:
        started = time.perf_counter()
        response = await harness.get()
        elapsed = time.perf_counter() - started
    finally:
        await storage.aclose()
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert elapsed < 5
