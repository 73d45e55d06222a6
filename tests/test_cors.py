"""CORSMiddleware: origin matching, preflights, response headers, configuration.

Requests go through httpx's ASGI transport to the middleware around a small Starlette app;
the browser itself is exercised in test_cors_browser.py.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from asgi_lambda_mw.cors import DEFAULT_MAX_AGE, CORSMiddleware
from asgi_lambda_mw.exceptions import ConfigurationError
from asgi_lambda_mw.types import Message, Receive, Scope, Send

SITE = "https://example.com"
HOSTILE_ORIGINS = [
    "https://example.com.evil.com",
    "https://evilexample.com",
    "https://evil.com/https://example.com",
    "https://example.com@evil.com",
    "null",
    "http://example.com",
    "https://example.com:8443",
    "wss://example.com",
    "https://sub.example.com",
    "https://example.co",
    "",
]


class _App:
    """A Starlette app that counts the requests reaching it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.app = Starlette(
            routes=[
                Route("/", self._hello, methods=["GET", "POST", "OPTIONS"]),
                Route("/vary", self._vary),
                Route("/limited", self._limited),
                Route("/boom", self._boom),
                WebSocketRoute("/ws", self._websocket),
            ]
        )

    async def _hello(self, request: Request) -> Response:
        self.calls.append(request.method)
        return PlainTextResponse(f"hello {request.method}", headers={"X-Request-ID": "req-1"})

    async def _vary(self, request: Request) -> Response:
        self.calls.append(request.method)
        vary = request.query_params["vary"]
        return PlainTextResponse("varies", headers={"Vary": vary})

    async def _limited(self, request: Request) -> Response:
        self.calls.append(request.method)
        return PlainTextResponse(
            "Too Many Requests", status_code=429, headers={"Retry-After": "30", "RateLimit": "x"}
        )

    async def _boom(self, request: Request) -> Response:
        raise RuntimeError("the app failed")

    async def _websocket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()


def _client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://api.test")


async def _get(origin: str | None, path: str = "/", **options: Any) -> httpx.Response:
    headers = {} if origin is None else {"Origin": origin}
    async with _client(CORSMiddleware(_App().app, **options)) as client:
        return await client.get(path, headers=headers)


async def _preflight(
    origin: str = SITE,
    method: str = "POST",
    request_headers: str | None = None,
    extra: dict[str, str] | None = None,
    app: _App | None = None,
    **options: Any,
) -> httpx.Response:
    headers = {"Origin": origin, "Access-Control-Request-Method": method, **(extra or {})}
    if request_headers is not None:
        headers["Access-Control-Request-Headers"] = request_headers
    inner = app or _App()
    async with _client(CORSMiddleware(inner.app, **options)) as client:
        return await client.options("/", headers=headers)


def _vary(response: httpx.Response) -> list[str]:
    return [
        field.strip().lower()
        for value in response.headers.get_list("vary")
        for field in value.split(",")
    ]


# --- origins -----------------------------------------------------------------------------


async def test_listed_origin_gets_its_origin_back() -> None:
    response = await _get(SITE, allow_origins=[SITE, "https://other.example"])
    assert response.headers["access-control-allow-origin"] == SITE
    assert response.text == "hello GET"


async def test_origin_is_compared_with_case_insensitive_host_and_default_port() -> None:
    for sent in ("https://EXAMPLE.com", "HTTPS://example.com", "https://example.com:443"):
        response = await _get(sent, allow_origins=["https://Example.COM:443"])
        assert response.headers["access-control-allow-origin"] == sent


async def test_listed_origin_with_port_matches_only_that_port() -> None:
    allowed = await _get("http://localhost:5173", allow_origins=["http://localhost:5173"])
    other = await _get("http://localhost:5174", allow_origins=["http://localhost:5173"])
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("origin", HOSTILE_ORIGINS)
async def test_hostile_origin_never_matches_a_listed_origin(origin: str) -> None:
    response = await _get(origin, allow_origins=[SITE], allow_credentials=True)
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-credentials" not in response.headers
    assert "origin" in _vary(response)


@pytest.mark.parametrize("origin", HOSTILE_ORIGINS)
async def test_hostile_origin_preflight_is_denied(origin: str) -> None:
    response = await _preflight(origin=origin, allow_origins=[SITE])
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


async def test_regex_must_match_the_whole_origin() -> None:
    regex = r"https://[a-z0-9-]+\.example\.com"
    allowed = await _get("https://api.example.com", allow_origin_regex=regex)
    suffixed = await _get("https://api.example.com.evil.com", allow_origin_regex=regex)
    assert allowed.headers["access-control-allow-origin"] == "https://api.example.com"
    assert "access-control-allow-origin" not in suffixed.headers


async def test_predicate_decides_the_origin() -> None:
    def is_preview(origin: str) -> bool:
        return origin.startswith("https://pr-") and origin.endswith(".preview.example.com")

    allowed = await _get("https://pr-42.preview.example.com", allow_origin_predicate=is_preview)
    denied = await _get("https://pr-42.evil.com", allow_origin_predicate=is_preview)
    assert allowed.headers["access-control-allow-origin"] == "https://pr-42.preview.example.com"
    assert "access-control-allow-origin" not in denied.headers


async def test_predicate_that_raises_denies_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    def broken(origin: str) -> bool:
        raise LookupError("tenant table unavailable")

    with caplog.at_level(logging.ERROR, logger="asgi_lambda_mw.cors"):
        response = await _get(SITE, allow_origin_predicate=broken)
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    assert "allow_origin_predicate raised" in caplog.text


async def test_wildcard_origin_sends_star_without_vary() -> None:
    response = await _get("https://anyone.example", allow_origins="*", expose_headers=["X-A"])
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-expose-headers"] == "X-A"
    assert "origin" not in _vary(response)


# --- response headers --------------------------------------------------------------------


async def test_request_without_origin_gets_vary_origin_only() -> None:
    response = await _get(None, allow_origins=[SITE])
    assert "access-control-allow-origin" not in response.headers
    assert _vary(response) == ["origin"]


async def test_vary_is_appended_to_the_apps_vary() -> None:
    response = await _get(SITE, path="/vary?vary=Accept-Encoding", allow_origins=[SITE])
    assert response.headers.get_list("vary") == ["Accept-Encoding, Origin"]


async def test_vary_origin_set_by_the_app_is_not_repeated() -> None:
    response = await _get(SITE, path="/vary?vary=Accept, origin", allow_origins=[SITE])
    assert _vary(response) == ["accept", "origin"]


async def test_several_vary_headers_become_one_ending_with_origin() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"vary", b"Accept"), (b"x-other", b"1"), (b"vary", b"Cookie")]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async with _client(CORSMiddleware(app, allow_origins=[SITE])) as client:
        response = await client.get("/", headers={"Origin": SITE})
    assert response.headers.get_list("vary") == ["Accept, Cookie, Origin"]
    assert response.headers["x-other"] == "1"


async def test_apps_own_cors_headers_are_replaced_for_an_allowed_origin() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"access-control-allow-origin", b"*"), (b"access-control-expose-headers", b"X")]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async with _client(CORSMiddleware(app, allow_origins=[SITE], expose_headers="Y")) as client:
        response = await client.get("/", headers={"Origin": SITE})
    assert response.headers.get_list("access-control-allow-origin") == [SITE]
    assert response.headers.get_list("access-control-expose-headers") == ["Y"]


async def test_credentials_and_exposed_headers_for_an_allowed_origin() -> None:
    response = await _get(
        SITE,
        allow_origins=[SITE],
        allow_credentials=True,
        expose_headers=["X-Request-ID"],
        extra_expose_headers=["RateLimit", "x-request-id"],
    )
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-expose-headers"] == "X-Request-ID, RateLimit"


async def test_too_many_requests_response_carries_cors_headers() -> None:
    response = await _get(
        SITE, path="/limited", allow_origins=[SITE], expose_headers=["Retry-After"]
    )
    assert response.status_code == 429
    assert response.headers["access-control-allow-origin"] == SITE
    assert response.headers["access-control-expose-headers"] == "Retry-After"


async def test_app_server_error_carries_cors_headers() -> None:
    response = await _get(SITE, path="/boom", allow_origins=[SITE])
    assert response.status_code == 500
    assert response.headers["access-control-allow-origin"] == SITE


# --- preflights --------------------------------------------------------------------------


async def test_allowed_preflight_is_answered_without_calling_the_app() -> None:
    app = _App()
    response = await _preflight(
        request_headers="content-type, x-api-key",
        app=app,
        allow_origins=[SITE],
        allow_headers=["X-API-Key"],
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SITE
    assert "POST" in response.headers["access-control-allow-methods"].split(", ")
    assert "X-API-Key" in response.headers["access-control-allow-headers"].split(", ")
    assert response.headers["access-control-max-age"] == str(DEFAULT_MAX_AGE)
    assert "origin" in _vary(response)
    assert app.calls == []


@pytest.mark.parametrize(
    ("origin", "method", "request_headers", "refused"),
    [
        ("https://evil.com", "POST", None, "origin"),
        (SITE, "TRACE", None, "method"),
        (SITE, "POST", "x-secret", "headers"),
    ],
)
async def test_denied_preflight_is_400_without_grants(
    origin: str, method: str, request_headers: str | None, refused: str
) -> None:
    app = _App()
    response = await _preflight(origin, method, request_headers, app=app, allow_origins=[SITE])
    assert response.status_code == 400
    assert response.text == f"Disallowed CORS {refused}"
    for name in ("origin", "methods", "headers", "credentials"):
        assert f"access-control-allow-{name}" not in response.headers
    assert "access-control-max-age" not in response.headers
    assert app.calls == []


async def test_wildcard_methods_and_headers_allow_any_request() -> None:
    response = await _preflight(
        method="PATCH",
        request_headers="x-anything",
        allow_origins=[SITE],
        allow_methods="*",
        allow_headers="*",
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-headers"] == "x-anything"


async def test_methods_outside_the_default_set_are_denied() -> None:
    assert (await _preflight(method="DELETE", allow_origins=[SITE])).status_code == 200
    assert (await _preflight(method="PROPFIND", allow_origins=[SITE])).status_code == 400


async def test_max_age_option_is_sent() -> None:
    response = await _preflight(allow_origins=[SITE], max_age=7200)
    assert response.headers["access-control-max-age"] == "7200"


async def test_preflight_with_credentials_grants_them() -> None:
    response = await _preflight(allow_origins=[SITE], allow_credentials=True)
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-allow-origin"] == SITE


async def test_private_network_preflight_allowed_when_enabled() -> None:
    pna = {"Access-Control-Request-Private-Network": "true"}
    response = await _preflight(extra=pna, allow_origins=[SITE], allow_private_network=True)
    assert response.status_code == 200
    assert response.headers["access-control-allow-private-network"] == "true"


async def test_private_network_preflight_denied_by_default() -> None:
    pna = {"Access-Control-Request-Private-Network": "true"}
    response = await _preflight(extra=pna, allow_origins=[SITE])
    assert response.status_code == 400
    assert "access-control-allow-private-network" not in response.headers
    assert "access-control-allow-origin" not in response.headers


async def test_options_without_request_method_reaches_the_app() -> None:
    app = _App()
    async with _client(CORSMiddleware(app.app, allow_origins=[SITE])) as client:
        response = await client.options("/", headers={"Origin": SITE})
    assert response.text == "hello OPTIONS"
    assert response.headers["access-control-allow-origin"] == SITE
    assert app.calls == ["OPTIONS"]


# --- configuration -----------------------------------------------------------------------


async def test_unconfigured_layer_passes_everything_through() -> None:
    app = _App()
    response = await _preflight(app=app)
    assert response.text == "hello OPTIONS"
    assert "access-control-allow-origin" not in response.headers
    assert "vary" not in response.headers


async def test_environment_configures_the_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", f"{SITE}, http://localhost:3000")
    monkeypatch.setenv("CORS_ALLOW_CREDENTIALS", "true")
    monkeypatch.setenv("CORS_ALLOW_HEADERS", "X-API-Key")
    monkeypatch.setenv("CORS_EXPOSE_HEADERS", "X-Request-ID")
    monkeypatch.setenv("CORS_MAX_AGE", "60")
    simple = await _get("http://localhost:3000", extra_expose_headers=["RateLimit"])
    preflight = await _preflight(request_headers="x-api-key")
    assert simple.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert simple.headers["access-control-allow-credentials"] == "true"
    assert simple.headers["access-control-expose-headers"] == "X-Request-ID, RateLimit"
    assert preflight.status_code == 200
    assert preflight.headers["access-control-max-age"] == "60"


async def test_explicit_arguments_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", "https://from-env.example")
    monkeypatch.setenv("CORS_MAX_AGE", "60")
    from_env = await _get("https://from-env.example", allow_origins=[SITE])
    preflight = await _preflight(allow_origins=[SITE], max_age=5)
    assert "access-control-allow-origin" not in from_env.headers
    assert preflight.headers["access-control-max-age"] == "5"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CORS_ALLOW_CREDENTIALS", "maybe"),
        ("CORS_MAX_AGE", "ten"),
        ("CORS_MAX_AGE", "-1"),
        ("CORS_ALLOW_ORIGINS", "https://example.com/"),
        ("CORS_ALLOW_ORIGINS", "example.com"),
        ("CORS_ALLOW_HEADERS", "X-Ok, Bad Header"),
        ("CORS_EXPOSE_HEADERS", "X-A:"),
    ],
)
def test_bad_environment_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        CORSMiddleware(_App().app)


@pytest.mark.parametrize(
    ("origin", "hint"),
    [
        ("https://example.com/app", "no path"),
        ("https://example.com/", "no path"),
        ("example.com", "scheme://host"),
        ("https://example.com:99999", "scheme://host"),
        ("https://*.example.com", "allow_origin_regex"),
        ("null", "null"),
    ],
)
def test_origin_that_is_not_scheme_host_port_is_refused(origin: str, hint: str) -> None:
    with pytest.raises(ConfigurationError, match="allow_origins") as error:
        CORSMiddleware(_App().app, allow_origins=[origin])
    assert hint in str(error.value)


def test_wildcard_with_credentials_is_refused_naming_both_settings() -> None:
    with pytest.raises(ConfigurationError, match=r"allow_origins='\*'.*allow_credentials=true"):
        CORSMiddleware(_App().app, allow_origins="*", allow_credentials=True)


def test_wildcard_with_credentials_from_env_names_both_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", "*")
    monkeypatch.setenv("CORS_ALLOW_CREDENTIALS", "true")
    with pytest.raises(ConfigurationError, match=r"CORS_ALLOW_ORIGINS.*CORS_ALLOW_CREDENTIALS"):
        CORSMiddleware(_App().app)


def test_wildcard_exposed_headers_with_credentials_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="expose_headers"):
        CORSMiddleware(_App().app, allow_origins=[SITE], allow_credentials=True, expose_headers="*")


@pytest.mark.parametrize(
    "options",
    [
        {"allow_origins": ["*", SITE]},
        {"allow_origins": "*", "allow_origin_regex": "https://.*"},
        {"allow_origin_regex": "https://(unclosed"},
        {"allow_methods": ["GET", "BAD\r\nX-Injected: 1"]},
        {"allow_origins": [SITE], "max_age": -5},
    ],
)
def test_contradictory_or_malformed_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        CORSMiddleware(_App().app, **options)


# --- inside frameworks -------------------------------------------------------------------


async def test_works_with_starlette_middleware_list() -> None:
    inner = _App()
    app = Starlette(
        routes=inner.app.routes,
        middleware=[Middleware(CORSMiddleware, allow_origins=[SITE])],
    )
    async with _client(app) as client:
        response = await client.get("/", headers={"Origin": SITE})
    assert response.headers["access-control-allow-origin"] == SITE


async def test_works_with_fastapi_add_middleware() -> None:
    api = FastAPI()

    @api.post("/items")
    async def create_item() -> dict[str, str]:
        return {"created": "yes"}

    api.add_middleware(CORSMiddleware, allow_origins=[SITE], allow_headers=["Content-Type"])
    async with _client(api) as client:
        preflight = await client.options(
            "/items",
            headers={
                "Origin": SITE,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        created = await client.post("/items", json={}, headers={"Origin": SITE})
    assert preflight.status_code == 200
    assert created.json() == {"created": "yes"}
    assert created.headers["access-control-allow-origin"] == SITE


async def test_websocket_passes_through() -> None:
    scope = {
        "type": "websocket",
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "scheme": "ws",
        "query_string": b"",
        "headers": [(b"origin", SITE.encode())],
        "subprotocols": [],
    }
    incoming = [{"type": "websocket.connect"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    await CORSMiddleware(_App().app, allow_origins=[SITE])(scope, receive, send)
    assert [message["type"] for message in sent] == [
        "websocket.accept",
        "websocket.send",
        "websocket.close",
    ]
    assert sent[1]["text"] == "hi"
