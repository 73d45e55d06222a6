"""compose(): the order of the layers, each layer off, options mappings and the environment."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse

from asgi_lambda_mw.cors import CORSMiddleware
from asgi_lambda_mw.exceptions import ConfigurationError
from asgi_lambda_mw.ratelimit.middleware import RateLimitMiddleware
from asgi_lambda_mw.ratelimit.storage.memory import MemoryStorage
from asgi_lambda_mw.stack import compose
from asgi_lambda_mw.tracing import ServerErrorMiddleware, TracingMiddleware
from asgi_lambda_mw.types import ASGIApp

ORIGIN = "https://app.example"

ClientFactory = Callable[[ASGIApp], httpx.AsyncClient]


def make_api() -> FastAPI:
    api = FastAPI()

    @api.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @api.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret database password in the message")

    return api


def layers(app: ASGIApp) -> list[type]:
    """The classes of the stack, outermost first, down to the app."""
    found: list[type] = []
    current: Any = app
    while True:
        found.append(type(current))
        if isinstance(current, FastAPI) or not hasattr(current, "app"):
            return found
        current = current.app


def fixed_clock_storage() -> MemoryStorage:
    return MemoryStorage(clock=lambda: 1_700_000_000.0)


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[ASGIApp], httpx.AsyncClient]]:
    """httpx clients calling an ASGI app in process; closed after the test."""
    clients: list[httpx.AsyncClient] = []

    def make(app: ASGIApp) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


# --- order and layers off ---------------------------------------------------------------------


def test_layers_are_in_order_outermost_first() -> None:
    api = make_api()
    assert layers(compose(api)) == [
        TracingMiddleware,
        CORSMiddleware,
        ServerErrorMiddleware,
        RateLimitMiddleware,
        FastAPI,
    ]


@pytest.mark.parametrize(
    ("off", "expected"),
    [
        ("rate_limit", [TracingMiddleware, CORSMiddleware, ServerErrorMiddleware, FastAPI]),
        ("cors", [TracingMiddleware, ServerErrorMiddleware, RateLimitMiddleware, FastAPI]),
        ("tracing", [CORSMiddleware, ServerErrorMiddleware, RateLimitMiddleware, FastAPI]),
    ],
)
def test_each_layer_can_be_turned_off(off: str, expected: list[type]) -> None:
    assert layers(compose(make_api(), **{off: False})) == expected


def test_all_layers_off_returns_the_app_untouched() -> None:
    api = make_api()
    handlers_before = dict(api.exception_handlers)
    assert compose(api, rate_limit=False, cors=False, tracing=False) is api
    assert api.exception_handlers == handlers_before


# --- options ----------------------------------------------------------------------------------


async def test_rate_limit_options_mapping_is_used(client_for: ClientFactory) -> None:
    app = compose(make_api(), rate_limit={"rate": "2/minute", "storage": fixed_clock_storage()})
    client = client_for(app)
    statuses = [(await client.get("/ok")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_cors_options_mapping_is_used(client_for: ClientFactory) -> None:
    app = compose(make_api(), cors={"allow_origins": [ORIGIN]}, rate_limit=False)
    response = await client_for(app).get("/ok", headers={"Origin": ORIGIN})
    assert response.headers["access-control-allow-origin"] == ORIGIN


async def test_tracing_options_mapping_is_used(client_for: ClientFactory) -> None:
    app = compose(
        make_api(), tracing={"id_factory": lambda: "fixed-id"}, rate_limit=False, cors=False
    )
    response = await client_for(app).get("/ok")
    assert response.headers["x-request-id"] == "fixed-id"


def _exposed(response: httpx.Response) -> list[str]:
    return [item.strip() for item in response.headers["access-control-expose-headers"].split(",")]


async def test_rate_limit_and_request_id_headers_are_exposed_to_browsers(
    client_for: ClientFactory,
) -> None:
    app = compose(
        make_api(),
        rate_limit={"storage": fixed_clock_storage()},
        cors={"allow_origins": [ORIGIN], "expose_headers": ["X-Total-Count"]},
    )
    response = await client_for(app).get("/ok", headers={"Origin": ORIGIN})
    assert _exposed(response) == [
        "X-Total-Count",
        "RateLimit",
        "RateLimit-Policy",
        "Retry-After",
        "X-Request-ID",
    ]


async def test_exposed_headers_follow_the_layers_options(client_for: ClientFactory) -> None:
    app = compose(
        make_api(),
        rate_limit={"storage": fixed_clock_storage(), "legacy_headers": True},
        cors={"allow_origins": [ORIGIN], "extra_expose_headers": ["X-Extra"]},
        tracing={"request_id_header": "X-Correlation-ID"},
    )
    response = await client_for(app).get("/ok", headers={"Origin": ORIGIN})
    assert _exposed(response) == [
        "X-Extra",
        "RateLimit",
        "RateLimit-Policy",
        "Retry-After",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "X-Correlation-ID",
    ]


async def test_headers_of_layers_that_are_off_are_not_exposed(client_for: ClientFactory) -> None:
    app = compose(make_api(), rate_limit=False, tracing=False, cors={"allow_origins": [ORIGIN]})
    response = await client_for(app).get("/ok", headers={"Origin": ORIGIN})
    assert "access-control-expose-headers" not in response.headers


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"rate_limit": "yes"}, "rate_limit"),
        ({"cors": ["https://app.example"]}, "cors"),
        ({"tracing": None}, "tracing"),
        ({"rate_limit": {"rate": "1/second", "ratee": "x"}}, "ratee"),
        ({"cors": {"origins": ["https://app.example"]}}, "origins"),
    ],
)
def test_bad_options_raise_configuration_error_naming_them(
    options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        compose(make_api(), **options)


# --- the environment --------------------------------------------------------------------------


async def test_environment_configures_every_layer(
    monkeypatch: pytest.MonkeyPatch, client_for: ClientFactory
) -> None:
    monkeypatch.setenv("RATE_LIMIT", "1/minute")
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", ORIGIN)
    client = client_for(compose(make_api()))
    first = await client.get("/ok", headers={"Origin": ORIGIN})
    second = await client.get("/ok", headers={"Origin": ORIGIN})
    assert (first.status_code, second.status_code) == (200, 429)
    assert second.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in second.headers


def test_bad_environment_fails_at_compose_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_MAX_AGE", "ten minutes")
    with pytest.raises(ConfigurationError, match="CORS_MAX_AGE"):
        compose(make_api())


# --- the JSON 500 -----------------------------------------------------------------------------


async def test_unhandled_exception_is_a_json_500_with_cors_and_the_request_id(
    client_for: ClientFactory,
) -> None:
    app = compose(make_api(), rate_limit=False, cors={"allow_origins": [ORIGIN]})
    response = await client_for(app).get("/boom", headers={"Origin": ORIGIN})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": "Internal Server Error",
        "request_id": response.headers["x-request-id"],
    }
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "secret" not in response.text


def test_json_error_handler_is_installed_on_a_starlette_app() -> None:
    api = make_api()
    compose(api, rate_limit=False)
    assert Exception in api.exception_handlers


async def test_apps_own_500_handler_is_kept(client_for: ClientFactory) -> None:
    api = make_api()

    async def own_handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"mine": True}, status_code=500)

    api.add_exception_handler(Exception, own_handler)
    response = await client_for(compose(api, rate_limit=False)).get("/boom")
    assert response.status_code == 500
    assert json.loads(response.text) == {"mine": True}
