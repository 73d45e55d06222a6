"""RateLimitMiddleware configuration: environment variables (RATE_LIMIT, RATE_LIMIT_ALGORITHM,
RATE_LIMIT_TABLE, RATE_LIMIT_FAIL_OPEN), explicit arguments winning over them, and bad
settings refused at construction with a message that names them."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from asgi_lambda_mw.exceptions import ConfigurationError, StorageError
from asgi_lambda_mw.ratelimit.middleware import RateLimitMiddleware
from asgi_lambda_mw.ratelimit.policy import Algorithm, Decision, Rate
from asgi_lambda_mw.ratelimit.storage._schema import create_table_arguments
from asgi_lambda_mw.ratelimit.storage.memory import MemoryStorage
from asgi_lambda_mw.types import ASGIApp

CLIENT = "203.0.113.7"
START = 864_010.0  # 10 s into a minute, an hour and a day


def _ok(request: Request) -> Response:
    return PlainTextResponse("ok")


APP = Starlette(routes=[Route("/", _ok)])


class _Failing:
    async def hit(
        self, key: str, rate: Rate, *, algorithm: Algorithm = "sliding", cost: int = 1
    ) -> Decision:
        raise StorageError("unreachable")

    async def aclose(self) -> None:
        pass


def _memory() -> MemoryStorage:
    return MemoryStorage(clock=lambda: START)


async def _get(app: ASGIApp, times: int = 1) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app, client=(CLIENT, 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return [await client.get("/") for _ in range(times)]


# --- RATE_LIMIT ---------------------------------------------------------------------------------


async def test_default_rate_is_100_per_minute() -> None:
    [response] = await _get(RateLimitMiddleware(APP, storage=_memory()))
    assert response.headers["RateLimit-Policy"] == '"100-per-60s";q=100;w=60'


async def test_rate_limit_variable_sets_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT", "10/second; 500/hour")
    [response] = await _get(RateLimitMiddleware(APP, storage=_memory()))
    assert response.headers["RateLimit-Policy"] == (
        '"10-per-1s";q=10;w=1, "500-per-3600s";q=500;w=3600'
    )


async def test_rate_argument_wins_over_rate_limit_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RATE_LIMIT", "10/second")
    [response] = await _get(RateLimitMiddleware(APP, rate="7/minute", storage=_memory()))
    assert response.headers["RateLimit-Policy"] == '"7-per-60s";q=7;w=60'


@pytest.mark.parametrize("value", ["lots", "0/minute", "10/fortnight", ";"])
def test_bad_rate_limit_variable_is_named(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("RATE_LIMIT", value)
    with pytest.raises(ConfigurationError, match="RATE_LIMIT="):
        RateLimitMiddleware(APP, storage=_memory())


# --- RATE_LIMIT_ALGORITHM -----------------------------------------------------------------------


async def _status_after_full_window(app_options: dict[str, Any]) -> int:
    """Fill a 2/minute bucket in one window, then ask 10 s into the next: sliding still
    counts most of the previous window (429), fixed starts afresh (200)."""
    now = [START]
    storage = MemoryStorage(clock=lambda: now[0])
    middleware = RateLimitMiddleware(APP, rate="2/minute", storage=storage, **app_options)
    await _get(middleware, 2)
    now[0] += 60
    [response] = await _get(middleware)
    return response.status_code


async def test_algorithm_defaults_to_sliding() -> None:
    assert await _status_after_full_window({}) == 429


async def test_rate_limit_algorithm_variable_selects_fixed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RATE_LIMIT_ALGORITHM", "fixed")
    assert await _status_after_full_window({}) == 200


async def test_algorithm_argument_wins_over_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_ALGORITHM", "fixed")
    assert await _status_after_full_window({"algorithm": "sliding"}) == 429


def test_bad_rate_limit_algorithm_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_ALGORITHM", "token-bucket")
    with pytest.raises(ConfigurationError, match="RATE_LIMIT_ALGORITHM="):
        RateLimitMiddleware(APP, storage=_memory())


# --- RATE_LIMIT_FAIL_OPEN -----------------------------------------------------------------------


async def test_fails_open_by_default() -> None:
    [response] = await _get(RateLimitMiddleware(APP, storage=_Failing()))
    assert response.status_code == 200


async def test_rate_limit_fail_open_false_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_FAIL_OPEN", "false")
    [response] = await _get(RateLimitMiddleware(APP, storage=_Failing()))
    assert response.status_code == 503


async def test_fail_open_argument_wins_over_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_FAIL_OPEN", "false")
    [response] = await _get(RateLimitMiddleware(APP, storage=_Failing(), fail_open=True))
    assert response.status_code == 200


def test_bad_rate_limit_fail_open_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_FAIL_OPEN", "sometimes")
    with pytest.raises(ConfigurationError, match="RATE_LIMIT_FAIL_OPEN="):
        RateLimitMiddleware(APP, storage=_memory())


# --- RATE_LIMIT_TABLE ---------------------------------------------------------------------------


def test_without_rate_limit_table_the_storage_is_in_memory() -> None:
    assert isinstance(RateLimitMiddleware(APP).storage, MemoryStorage)


def test_rate_limit_table_selects_dynamodb_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    from asgi_lambda_mw.ratelimit.storage.dynamodb import DynamoDBStorage

    monkeypatch.setenv("RATE_LIMIT_TABLE", "my-limits")
    storage = RateLimitMiddleware(APP).storage
    assert isinstance(storage, DynamoDBStorage)
    assert storage.table_name == "my-limits"


def test_storage_argument_wins_over_rate_limit_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_TABLE", "my-limits")
    storage = _memory()
    assert RateLimitMiddleware(APP, storage=storage).storage is storage


@pytest.fixture
def limits_table(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"limits-{uuid.uuid4().hex[:8]}"
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    dynamodb.create_table(**create_table_arguments(name))
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_endpoint)
    monkeypatch.setenv("RATE_LIMIT_TABLE", name)
    try:
        yield name
    finally:
        dynamodb.delete_table(TableName=name)


async def test_configured_from_environment_alone_it_limits_in_dynamodb(
    limits_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATE_LIMIT", "2/minute")
    monkeypatch.setenv("RATE_LIMIT_FAIL_OPEN", "false")
    middleware = RateLimitMiddleware(APP, timeout=5)
    try:
        responses = await _get(middleware, 3)
    finally:
        await middleware.storage.aclose()
    assert [response.status_code for response in responses] == [200, 200, 429]
    assert responses[0].headers["RateLimit-Policy"] == '"2-per-60s";q=2;w=60'


def test_memory_storage_does_not_import_boto3_or_botocore() -> None:
    code = (
        "import sys\n"
        "from starlette.applications import Starlette\n"
        "from asgi_lambda_mw.ratelimit.middleware import RateLimitMiddleware\n"
        "RateLimitMiddleware(Starlette())\n"
        "loaded = [m for m in ('boto3', 'botocore') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- explicit options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"rate": "fast"}, "rate"),
        ({"rate": []}, "rate"),
        ({"rate": [Rate(1, 60), Rate(1, 60)]}, "rate"),
        ({"rate": 100}, "rate"),
        ({"algorithm": "leaky"}, "algorithm"),
        ({"cost": 0}, "cost"),
        ({"cost": "1"}, "cost"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"unknown_client": "deny"}, "unknown_client"),
        ({"deny_cache_size": 1.5}, "deny_cache_size"),
        ({"routes": {"login": "1/minute"}}, "routes"),
        ({"routes": {"/a*b": "1/minute"}}, "routes"),
        ({"routes": {"/login": "often"}}, "routes"),
        ({"routes": {"/a": "1/minute", "/a ": "2/minute"}}, "routes"),
        ({"exempt_paths": "/health"}, "exempt_paths"),
        ({"exempt_paths": ["health"]}, "exempt_paths"),
        ({"exempt_methods": "OPTIONS"}, "exempt_methods"),
        ({"key": "x-api-key"}, "key"),
        ({"trusted_proxies": ["10.0.0.0/40"]}, "trusted_proxies"),
        ({"trusted_hops": -1}, "trusted_hops"),
        ({"ipv6_prefix": 200}, "ipv6_prefix"),
    ],
)
def test_bad_option_is_refused_at_construction_naming_it(
    options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        RateLimitMiddleware(APP, storage=_memory(), **options)
