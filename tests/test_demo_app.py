"""The demo's routes under the composed stack (demo_app.main:app), through httpx's ASGI transport.

demo_app.main builds its stack at import from the environment, so each test imports it afresh
under known settings (a small rate limit, one allowed origin: new item store and counters), and
does so inside a running event loop, which Mangum's constructor then uses instead of making one.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

LIMIT = 3
ORIGIN = "https://app.example.com"
CLIENT_IP = "203.0.113.5"


_LIBRARY_LOGGERS = ("asgi_lambda_mw", "asgi_lambda_mw.access", "asgi_lambda_mw.errors")


@pytest.fixture(autouse=True)
def _restore_library_loggers() -> Iterator[None]:
    """The stack gives the library's loggers a JSON handler on first use; undo it after."""
    loggers = [logging.getLogger(name) for name in _LIBRARY_LOGGERS]
    saved = [(logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    try:
        yield
    finally:
        for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


@pytest.fixture
async def client(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("RATE_LIMIT", f"{LIMIT}/minute")
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", ORIGIN)
    sys.modules.pop("demo_app.main", None)
    demo = importlib.import_module("demo_app.main")
    transport = httpx.ASGITransport(app=demo.app, client=(CLIENT_IP, 43210))
    async with httpx.AsyncClient(transport=transport, base_url="http://demo.test") as session:
        yield session


def _json(response: httpx.Response) -> Any:
    return response.json()


async def test_index_greets(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert _json(response) == {"message": "Hello from asgi-lambda-mw"}


async def test_hello_greets_by_name(client: httpx.AsyncClient) -> None:
    response = await client.get("/hello/Ada")
    assert _json(response) == {"message": "Hello, Ada!"}


async def test_created_item_can_be_read_back(client: httpx.AsyncClient) -> None:
    created = await client.post("/items", json={"name": "lamp", "price": 12.5})
    assert created.status_code == 201
    item = _json(created)
    assert item == {"id": item["id"], "name": "lamp", "price": 12.5}
    fetched = await client.get(f"/items/{item['id']}")
    assert fetched.status_code == 200
    assert _json(fetched) == item


@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": "", "price": 1}, "name"), ({"name": "lamp", "price": -1}, "price")],
)
async def test_invalid_item_is_refused_with_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/items", json=body)
    assert response.status_code == 422
    assert [error["loc"] for error in _json(response)["detail"]] == [["body", field]]


async def test_unknown_item_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/999")
    assert response.status_code == 404
    assert _json(response) == {"detail": "item not found"}


async def test_image_is_served_as_png_bytes(client: httpx.AsyncClient) -> None:
    response = await client.get("/image.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert response.content.endswith(b"IEND\xaeB`\x82")


async def test_cookie_set_by_one_request_is_read_by_the_next(client: httpx.AsyncClient) -> None:
    set_response = await client.post("/cookies", params={"flavour": "oat"})
    assert _json(set_response) == {"set": "oat"}
    set_cookie = set_response.headers["set-cookie"]
    assert set_cookie.startswith("flavour=oat;")
    assert "HttpOnly" in set_cookie
    read = await client.get("/cookies")  # the client's jar sends it back
    assert _json(read) == {"flavour": "oat"}


async def test_no_cookie_reads_as_null(client: httpx.AsyncClient) -> None:
    response = await client.get("/cookies")
    assert _json(response) == {"flavour": None}


async def test_unhandled_error_is_a_json_500_with_request_id_and_cors_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/boom", headers={"Origin": ORIGIN, "X-Request-ID": "boom-42"})
    assert response.status_code == 500
    assert _json(response) == {"error": "Internal Server Error", "request_id": "boom-42"}
    assert response.headers["X-Request-ID"] == "boom-42"
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    exposed = response.headers["Access-Control-Expose-Headers"].lower()
    assert "x-request-id" in exposed


async def test_requests_past_the_limit_get_429(client: httpx.AsyncClient) -> None:
    statuses = [(await client.get("/hello/again")).status_code for _ in range(LIMIT + 1)]
    assert statuses == [200] * LIMIT + [429]


async def test_health_is_exempt_from_the_rate_limit(client: httpx.AsyncClient) -> None:
    for _ in range(LIMIT + 1):
        await client.get("/hello/spent")
    checks = [await client.get("/health") for _ in range(LIMIT + 2)]
    assert [check.status_code for check in checks] == [200] * (LIMIT + 2)
    assert all("RateLimit" not in check.headers for check in checks)
    assert _json(checks[-1]) == {"status": "ok"}


async def test_limited_routes_carry_rate_limit_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert f"q={LIMIT}" in response.headers["RateLimit-Policy"]
    assert f"r={LIMIT - 1}" in response.headers["RateLimit"]


async def test_whoami_reports_the_client_ip_and_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/whoami")
    body = _json(response)
    assert body["client_ip"] == CLIENT_IP
    assert body["request_id"] == response.headers["X-Request-ID"]


async def test_whoami_ignores_a_forwarded_for_header(client: httpx.AsyncClient) -> None:
    response = await client.get("/whoami", headers={"X-Forwarded-For": "198.51.100.9"})
    assert _json(response)["client_ip"] == CLIENT_IP


async def test_docs_page_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text.lower()


async def test_openapi_schema_lists_the_demo_routes(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    schema = _json(response)
    assert schema["info"]["title"] == "asgi-lambda-mw demo"
    assert {"/", "/hello/{name}", "/items", "/items/{item_id}", "/whoami", "/health"} <= set(
        schema["paths"]
    )
