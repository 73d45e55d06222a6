"""One-route Starlette app (``GET /hello/{name}`` answering JSON), and ASGI factories for
uvicorn (``uvicorn --factory bench.apps.one_route:stack``): bare, inside our stack, inside the
peer composition, and with one DynamoDB call per request (our storage, or boto3 in threads).

Only Starlette is imported here; each factory imports what it wraps the app in.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ORIGIN = "https://app.example.com"
UNLIMITED_RATE = "1000000000/minute"
BENCH_TABLE = "bench-rate-limits"


async def _hello(request: Request) -> Response:
    return JSONResponse({"message": f"Hello, {request.path_params['name']}!"})


def build_app() -> Starlette:
    """A fresh instance of the app, so wrappers that mutate it never share it."""
    return Starlette(routes=[Route("/hello/{name}", _hello)])


def bare() -> Any:
    return build_app()


def stack() -> Any:
    """The full stack with memory storage; every request counted and let through."""
    from asgi_lambda_mw import MemoryStorage, compose

    return compose(
        build_app(),
        rate_limit={"rate": UNLIMITED_RATE, "storage": MemoryStorage()},
        cors={"allow_origins": [ORIGIN]},
    )


def peer() -> Any:
    """slowapi (in-memory, pure-ASGI middleware) + Starlette's CORSMiddleware +
    asgi-correlation-id: what a user assembles from the usual packages."""
    return add_peer_middleware(build_app(), rate=UNLIMITED_RATE.replace("/", " per "))


def add_peer_middleware(app: Any, *, rate: str) -> Any:
    from asgi_correlation_id import CorrelationIdMiddleware
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.middleware import SlowAPIASGIMiddleware
    from slowapi.util import get_remote_address
    from starlette.middleware.cors import CORSMiddleware

    app.state.limiter = Limiter(key_func=get_remote_address, default_limits=[rate])
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)
    # add_middleware wraps what is there: the last one added is the outermost.
    app.add_middleware(SlowAPIASGIMiddleware)
    app.add_middleware(CORSMiddleware, allow_origins=[ORIGIN], expose_headers=["X-Request-ID"])
    app.add_middleware(CorrelationIdMiddleware)
    return app


def storage_lean() -> Any:
    """One DynamoDBStorage.hit per request (our client), on $AWS_ENDPOINT_URL_DYNAMODB."""
    from asgi_lambda_mw import DynamoDBStorage, Rate

    storage = DynamoDBStorage(BENCH_TABLE)
    rate = Rate.parse(UNLIMITED_RATE)

    async def hit(request: Request) -> Response:
        decision = await storage.hit(f"ip:{request.path_params['name']}", rate)
        return JSONResponse({"allowed": decision.allowed})

    return Starlette(routes=[Route("/hello/{name}", hit)])


def storage_boto3_threads() -> Any:
    """One boto3 update_item per request, in a worker thread (anyio.to_thread), with a
    connection pool as large as the thread pool so boto3 is not held back by its default 10."""
    import anyio.to_thread
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "dynamodb",
        endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"],
        config=Config(max_pool_connections=64),
    )

    def update(key: str) -> Any:
        return client.update_item(**update_item_request(key))

    async def hit(request: Request) -> Response:
        answer = await anyio.to_thread.run_sync(update, f"ip:{request.path_params['name']}")
        return JSONResponse({"allowed": "Attributes" in answer})

    return Starlette(routes=[Route("/hello/{name}", hit)])


def update_item_request(key: str) -> dict[str, Any]:
    """The UpdateItem our storage sends in the steady state (sliding window), for boto3."""
    return {
        "TableName": BENCH_TABLE,
        "Key": {"pk": {"S": f"{key}#1000000000-per-60s#sliding"}},
        "UpdateExpression": "ADD #cur :cost SET #ttl = :ttl, #win = :win, #prev = :prev",
        "ConditionExpression": "attribute_not_exists(#cur) OR "
        "(#win = :win AND #prev = :prev AND #cur <= :ceiling)",
        "ExpressionAttributeNames": {
            "#cur": "cur",
            "#ttl": "expires_at",
            "#win": "win",
            "#prev": "prev",
        },
        "ExpressionAttributeValues": {
            ":cost": {"N": "1"},
            ":ttl": {"N": "1800000000"},
            ":ceiling": {"N": "999999999"},
            ":win": {"N": "29000000"},
            ":prev": {"N": "0"},
        },
        "ReturnValues": "UPDATED_NEW",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


class _PassThrough:
    """The least a pure-ASGI layer that touches responses does: wrap ``send`` and add one
    header to the response start."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-layer", b"1")]
            await send(message)

        await self.app(scope, receive, send_with_header)


class _OneJSONLine(_PassThrough):
    """A layer whose ``send`` wrapper notes the status (adding no header), and which writes the
    least an access log writes: one JSON line (method, path, status) per request on stdout,
    flushed."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def send_noting_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_noting_status)
        line = {"method": scope["method"], "path": scope["path"], "status": status}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


def floor() -> Any:
    """The floor of any three-layer stack with an access log: three pass-through layers and
    one JSON line per request, doing none of the layers' work (no ids, no limits, no CORS)."""
    return _OneJSONLine(_PassThrough(_PassThrough(build_app())))


def layer_rate_limit() -> Any:
    """Only the rate limiter (memory storage), for the per-layer breakdown."""
    from asgi_lambda_mw import MemoryStorage, compose

    options = {"rate": UNLIMITED_RATE, "storage": MemoryStorage()}
    return compose(build_app(), rate_limit=options, cors=False, tracing=False)


def layer_cors() -> Any:
    """Only CORS, for the per-layer breakdown."""
    from asgi_lambda_mw import compose

    return compose(build_app(), rate_limit=False, cors={"allow_origins": [ORIGIN]}, tracing=False)


def layer_tracing() -> Any:
    """Only tracing (with its JSON access log), for the per-layer breakdown."""
    from asgi_lambda_mw import compose

    return compose(build_app(), rate_limit=False, cors=False, tracing=True)


def layer_tracing_no_log() -> Any:
    """Tracing with the access log excluded for the benchmark path, for the breakdown."""
    from asgi_lambda_mw import compose

    return compose(
        build_app(), rate_limit=False, cors=False, tracing={"exclude_paths": ["/hello/world"]}
    )
