"""The app of the parity suite (tests/test_parity.py): one Starlette app in compose()'s stack with
MemoryStorage, served as ``tests.parity_app:app`` by uvicorn and as ``tests.parity_app:handler``
by `asgi-lambda watch`. Each process has its own storage, so each side counts on its own.

The storage and the limiter run on a frozen clock, so the RateLimit headers of the two sides
depend only on the requests each has seen, never on when they arrived.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from asgi_lambda_mw.handler import lambda_handler
from asgi_lambda_mw.ratelimit.storage.memory import MemoryStorage
from asgi_lambda_mw.stack import compose

ALLOWED_ORIGIN = "https://app.example.com"
LIMITED_PATH = "/limited"
LIMITED_RATE = 3
_FROZEN_NOW = 1_800_000_000.0


def _frozen_clock() -> float:
    return _FROZEN_NOW


async def echo(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": [list(pair) for pair in request.query_params.multi_items()],
            "content_type": request.headers.get("content-type"),
            # A repeated header may arrive joined with commas (RFC 9110 5.3): read it as a list.
            "x_custom": [
                item.strip()
                for value in request.headers.getlist("x-custom")
                for item in value.split(",")
            ],
        }
    )


async def echo_json(request: Request) -> JSONResponse:
    return JSONResponse({"received": await request.json()}, status_code=201)


async def echo_form(request: Request) -> JSONResponse:
    # parse_qsl rather than request.form(): that needs python-multipart, not a dependency here.
    fields = parse_qsl((await request.body()).decode(), keep_blank_values=True)
    return JSONResponse({"fields": [list(pair) for pair in fields]})


async def upload(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"length": len(body), "sha256": hashlib.sha256(body).hexdigest()})


async def download(request: Request) -> Response:
    return Response(bytes(range(256)) * 4, media_type="application/octet-stream")


async def set_cookies(request: Request) -> JSONResponse:
    response = JSONResponse({"set": ["flavour", "session"]})
    response.set_cookie("flavour", "chocolate chip", httponly=True, samesite="lax")
    response.set_cookie("session", "abc123", path="/", secure=True)
    return response


async def read_cookies(request: Request) -> JSONResponse:
    return JSONResponse({"cookies": dict(sorted(request.cookies.items()))})


async def redirect(request: Request) -> RedirectResponse:
    return RedirectResponse("/echo?from=redirect", status_code=302)


async def empty(request: Request) -> Response:
    return Response(status_code=204)


async def large(request: Request) -> PlainTextResponse:
    size = int(request.query_params.get("size", "0"))
    return PlainTextResponse("abcdefghij" * (size // 10))


async def limited(request: Request) -> JSONResponse:
    return JSONResponse({"limited": "ok"})


async def boom(request: Request) -> Response:
    raise RuntimeError("an unhandled error, for the parity suite")


api = Starlette(
    routes=[
        Route("/echo", echo, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        Route("/path/{rest:path}", echo),
        Route("/json", echo_json, methods=["POST"]),
        Route("/form", echo_form, methods=["POST"]),
        Route("/upload", upload, methods=["POST"]),
        Route("/download", download),
        Route("/cookies/set", set_cookies, methods=["POST"]),
        Route("/cookies", read_cookies),
        Route("/redirect", redirect),
        Route("/empty", empty),
        Route("/large", large),
        Route(LIMITED_PATH, limited),
        Route("/boom", boom),
    ]
)

app = compose(
    api,
    rate_limit={
        "rate": "1000/minute",
        "routes": {LIMITED_PATH: f"{LIMITED_RATE}/minute"},
        "storage": MemoryStorage(clock=_frozen_clock),
        "clock": _frozen_clock,
    },
    cors={
        "allow_origins": [ALLOWED_ORIGIN],
        "allow_methods": ["GET", "POST", "PUT"],
        "allow_headers": ["content-type", "x-custom"],
        "max_age": 600,
    },
    tracing={"install_log_handler": False},
)
handler = lambda_handler(app)
