"""Hostile callers against the whole stack (lambda_handler(compose(app)) and uvicorn): spoofed
forwarding headers, rotating IPv6 addresses, crafted rate-limit keys (checked in a real DynamoDB
table), hostile CORS origins, unsafe request ids and trace headers, oversized requests.

What each check found and what the stack is responsible for is in RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import boto3
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_lambda_mw.cli import main
from asgi_lambda_mw.exceptions import ConfigurationError
from asgi_lambda_mw.handler import LambdaHandler, lambda_handler
from asgi_lambda_mw.ratelimit.keys import header_key, principal_key
from asgi_lambda_mw.ratelimit.storage.dynamodb import DynamoDBStorage
from asgi_lambda_mw.ratelimit.storage.memory import MemoryStorage
from asgi_lambda_mw.stack import compose
from asgi_lambda_mw.types import ASGIApp

from .lambda_events import (
    LambdaContext,
    alb_event,
    function_url_event,
    http_api_event,
    rest_event,
)

START = 1_800_000_000.0
LIMIT = 5
SITE = "https://example.com"
API_GATEWAY_SHAPES: dict[str, Callable[..., dict[str, Any]]] = {
    "rest": rest_event,
    "http_api": http_api_event,
    "function_url": function_url_event,
}
ALL_SHAPES: dict[str, Callable[..., dict[str, Any]]] = {
    **API_GATEWAY_SHAPES,
    "alb": alb_event,
    "alb_multi_value": partial(alb_event, multi_value=True),
}


def _api() -> Starlette:
    async def page(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"ok": True, "bytes": len(body), "headers": len(request.headers)})

    return Starlette(routes=[Route("/", page, methods=["GET", "POST"])])


@pytest.fixture
def table(moto_endpoint: str) -> str:
    name = f"rate-limit-{uuid.uuid4().hex[:12]}"
    assert main(["table", "create", "--table", name, "--endpoint-url", moto_endpoint]) == 0
    return name


def _keys_in(endpoint: str, table: str) -> dict[str, int]:
    """Every bucket in the table with the count it holds."""
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    return {item["pk"]["S"]: int(item["cur"]["N"]) for item in items}


@contextmanager
def _limited_handler(
    endpoint: str, table: str, loop: asyncio.AbstractEventLoop, **rate_limit: Any
) -> Iterator[LambdaHandler]:
    storage = DynamoDBStorage(table, endpoint_url=endpoint, clock=lambda: START + 10, timeout=5)
    app = compose(
        _api(),
        rate_limit={"rate": f"{LIMIT}/minute", "storage": storage, "timeout": 5, **rate_limit},
        tracing={"install_log_handler": False},
    )
    handler = lambda_handler(app)
    try:
        yield handler
    finally:
        loop.run_until_complete(storage.aclose())
        handler.shutdown()


def _status(handler: LambdaHandler, event: dict[str, Any]) -> int:
    status: int = handler(event, LambdaContext())["statusCode"]
    return status


def _spoofed_headers(n: int) -> dict[str, str]:
    fake = f"192.0.2.{n % 250 + 1}"
    return {
        "X-Forwarded-For": f"{fake}, 10.0.{n % 250}.1",
        "X-Real-IP": fake,
        "Forwarded": f'for={fake};proto=https, for="[2001:db8::{n:x}]"',
        "CloudFront-Viewer-Address": f"{fake}:{40000 + n}",
        "True-Client-IP": fake,
        "X-Client-IP": fake,
        "X-Cluster-Client-IP": fake,
        "Fastly-Client-IP": fake,
    }


# --- spoofing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", API_GATEWAY_SHAPES)
def test_a_flood_with_rotating_spoofed_headers_still_hits_the_limit(
    shape: str, moto_endpoint: str, table: str, lambda_loop: asyncio.AbstractEventLoop
) -> None:
    build = API_GATEWAY_SHAPES[shape]
    with _limited_handler(moto_endpoint, table, lambda_loop, deny_cache_size=0) as handler:
        events = [
            build("GET", "/", headers=_spoofed_headers(n), source_ip="203.0.113.9")
            for n in range(30)
        ]
        statuses = [_status(handler, event) for event in events]

    assert statuses == [200] * LIMIT + [429] * (30 - LIMIT)
    assert _keys_in(moto_endpoint, table) == {"ip:203.0.113.9#5-per-60s#sliding": LIMIT}


@pytest.mark.parametrize("multi_value", [False, True], ids=["headers", "multi_value_headers"])
def test_alb_flood_with_rotating_left_hand_forwarded_for_still_hits_the_limit(
    multi_value: bool, moto_endpoint: str, table: str, lambda_loop: asyncio.AbstractEventLoop
) -> None:
    # The caller controls every X-Forwarded-For entry left of the one the load balancer adds.
    with _limited_handler(moto_endpoint, table, lambda_loop, deny_cache_size=0) as handler:
        statuses = []
        for n in range(30):
            headers = {key: value for key, value in _spoofed_headers(n).items() if key[0] != "X"}
            event = alb_event(
                "GET",
                "/",
                headers=headers,
                forwarded_for=[f"192.0.2.{n + 1}", f"198.18.0.{n + 1}"],
                source_ip="203.0.113.9",
                multi_value=multi_value,
            )
            statuses.append(_status(handler, event))

    assert statuses == [200] * LIMIT + [429] * (30 - LIMIT)
    assert _keys_in(moto_endpoint, table) == {"ip:203.0.113.9#5-per-60s#sliding": LIMIT}


def test_rotating_ipv6_addresses_inside_one_64_share_one_bucket(
    moto_endpoint: str, table: str, lambda_loop: asyncio.AbstractEventLoop
) -> None:
    sources = [f"2001:db8:aa:bb:{n:x}:{n * 7:x}::{n + 1:x}" for n in range(20)]
    with _limited_handler(moto_endpoint, table, lambda_loop, deny_cache_size=0) as handler:
        statuses = [_status(handler, http_api_event(source_ip=ip)) for ip in sources]
        neighbour = _status(handler, http_api_event(source_ip="2001:db8:aa:bc::1"))

    assert statuses == [200] * LIMIT + [429] * (20 - LIMIT)
    assert neighbour == 200
    assert _keys_in(moto_endpoint, table) == {
        "ip:2001:db8:aa:bb::/64#5-per-60s#sliding": LIMIT,
        "ip:2001:db8:aa:bc::/64#5-per-60s#sliding": 1,
    }


def test_ipv4_mapped_ipv6_source_shares_the_ipv4_bucket(
    moto_endpoint: str, table: str, lambda_loop: asyncio.AbstractEventLoop
) -> None:
    with _limited_handler(moto_endpoint, table, lambda_loop) as handler:
        for n in range(LIMIT):
            source = "203.0.113.9" if n % 2 else "::ffff:203.0.113.9"
            assert _status(handler, rest_event(source_ip=source)) == 200
        assert _status(handler, rest_event(source_ip="::ffff:cb00:7109")) == 429

    assert _keys_in(moto_endpoint, table) == {"ip:203.0.113.9#5-per-60s#sliding": LIMIT}


# Values a caller may choose that look like another bucket, a namespace or a key separator.
CRAFTED_VALUES = [
    "ip:198.51.100.7",
    "198.51.100.7",
    "ip:198.51.100.7#5-per-60s#sliding",
    "#5-per-60s#sliding",
    "fn:x",
    "sub:alice",
    "route:/|ip:198.51.100.7",
    "unknown:",
    "a#b#c",
    "#",
]


def test_crafted_api_key_headers_never_share_a_bucket_with_an_ip_or_each_other(
    moto_endpoint: str, table: str, lambda_loop: asyncio.AbstractEventLoop
) -> None:
    with _limited_handler(
        moto_endpoint, table, lambda_loop, key=header_key("X-API-Key")
    ) as handler:
        for value in CRAFTED_VALUES:
            for _ in range(LIMIT + 1):
                handler(rest_event(headers={"X-API-Key": value}), LambdaContext())
        ip_statuses = [_status(handler, rest_event()) for _ in range(LIMIT + 1)]

    keys = _keys_in(moto_endpoint, table)
    assert ip_statuses == [200] * LIMIT + [429]  # the IP's own bucket was untouched before
    assert len(keys) == len(CRAFTED_VALUES) + 1
    assert set(keys.values()) == {LIMIT}
    header_keys = [key for key in keys if key.startswith("hdr:x-api-key:")]
    assert len(header_keys) == len(CRAFTED_VALUES)
    assert not any(value in key for key in header_keys for value in CRAFTED_VALUES[:3])


def _callable_key(scope: dict[str, Any]) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-tenant":
            return bytes(value).decode("latin-1")
    return None


def test_crafted_callable_keys_never_share_a_bucket(
    moto_endpoint: str, table: str, lambda_loop: asyncio.AbstractEventLoop
) -> None:
    long_value = "tenant-" + "x" * 200
    # The stored form of a long value is "#" + 32 hex digits of its SHA-256: a caller who
    # sends exactly that must not land in the long value's bucket.
    digest_lookalike = "#" + hashlib.sha256(long_value.encode()).hexdigest()[:32]
    values = [*CRAFTED_VALUES, long_value, digest_lookalike]
    with _limited_handler(moto_endpoint, table, lambda_loop, key=_callable_key) as handler:
        statuses = {
            value: [
                _status(handler, http_api_event(headers={"X-Tenant": value}))
                for _ in range(LIMIT + 1)
            ]
            for value in values
        }

    assert all(got == [200] * LIMIT + [429] for got in statuses.values())
    keys = _keys_in(moto_endpoint, table)
    assert len(keys) == len(values)
    assert all(key.startswith("fn:") for key in keys)


def _with_principal(event: dict[str, Any], principal: str) -> dict[str, Any]:
    event["requestContext"]["authorizer"] = {"principalId": principal}
    return event


def test_crafted_principals_never_share_a_bucket_with_an_ip_or_each_other(
    moto_endpoint: str, table: str, lambda_loop: asyncio.AbstractEventLoop
) -> None:
    long_principal = "user-" + "p" * 300
    lookalike = "#" + hashlib.sha256(long_principal.encode()).hexdigest()[:32]
    principals = ["ip:198.51.100.7", "198.51.100.7", long_principal, lookalike, "a#b"]
    with _limited_handler(moto_endpoint, table, lambda_loop, key=principal_key()) as handler:
        for principal in principals:
            for _ in range(LIMIT):
                assert _status(handler, _with_principal(rest_event(), principal)) == 200
        ip_statuses = [_status(handler, rest_event()) for _ in range(LIMIT + 1)]

    assert ip_statuses == [200] * LIMIT + [429]
    assert len(_keys_in(moto_endpoint, table)) == len(principals) + 1


# --- CORS --------------------------------------------------------------------------------------

HOSTILE_ORIGINS = [
    "https://example.com.evil.com",
    "https://evilexample.com",
    "https://example.com.",
    "https://EXAMPLE.COM.",
    "null",
    "http://example.com",
    "wss://example.com",
    "ftp://example.com",
    "https://example.com:8443",
    "https://example.com:443443",
    "https://user@example.com",
    "https://example.com@evil.com",
    "https://evil.com#https://example.com",
    "https://example.com/",
    " https://example.com",
    "https://example.com, https://evil.com",
    "https://example.com https://evil.com",
    "https://ex\u0430mple.com",  # a Cyrillic a
    "https://xn--exmple-4nf.com",
    "https://example.com%2eevil.com",
    "https://example.com\x00",
    "https://example.com\t",
    "https://[::1]",
    "file://",
    "*",
    "",
]


@pytest.fixture
def cors_handler(lambda_loop: asyncio.AbstractEventLoop) -> Iterator[LambdaHandler]:
    storage = MemoryStorage(clock=lambda: START)
    app = compose(
        _api(),
        rate_limit={"rate": "1000/minute", "storage": storage},
        cors={"allow_origins": [SITE], "allow_credentials": True},
        tracing={"install_log_handler": False},
    )
    handler = lambda_handler(app)
    yield handler
    handler.shutdown()


def _headers(answer: dict[str, Any]) -> dict[str, str]:
    headers = {name.lower(): value for name, value in (answer.get("headers") or {}).items()}
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = ", ".join(values)
    return headers


@pytest.mark.parametrize("shape", ALL_SHAPES)
@pytest.mark.parametrize("origin", HOSTILE_ORIGINS)
def test_hostile_origin_gets_no_grant_through_the_stack(
    shape: str, origin: str, cors_handler: LambdaHandler
) -> None:
    event = ALL_SHAPES[shape]("GET", "/", headers={"Origin": origin})
    answer = cors_handler(event, LambdaContext())
    headers = _headers(answer)
    assert answer["statusCode"] == 200
    assert "access-control-allow-origin" not in headers
    assert "access-control-allow-credentials" not in headers
    assert "access-control-expose-headers" not in headers


@pytest.mark.parametrize("origin", HOSTILE_ORIGINS)
def test_hostile_origin_preflight_is_refused_before_the_rate_limiter(
    origin: str, lambda_loop: asyncio.AbstractEventLoop
) -> None:
    calls: list[str] = []

    class Recording(MemoryStorage):
        async def hit(self, key: str, *args: Any, **kwargs: Any) -> Any:
            calls.append(key)
            return await super().hit(key, *args, **kwargs)

    app = compose(
        _api(),
        rate_limit={"storage": Recording(), "exempt_methods": []},
        cors={"allow_origins": [SITE], "allow_credentials": True},
        tracing={"install_log_handler": False},
    )
    handler = lambda_handler(app)
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    answer = handler(http_api_event("OPTIONS", "/", headers=headers), LambdaContext())
    handler.shutdown()

    assert answer["statusCode"] == 400
    assert not [name for name in _headers(answer) if name.startswith("access-control-allow")]
    assert calls == []


@pytest.mark.parametrize(
    "origin", ["https://example.com", "https://EXAMPLE.com", "HTTPS://example.com:443"]
)
def test_spellings_of_the_listed_origin_are_granted_as_spelled(
    origin: str, cors_handler: LambdaHandler
) -> None:
    # The same origin (scheme and host are case-insensitive, 443 is https's port): granted with
    # the Origin sent echoed back, which a browser compares with what it sent.
    answer = cors_handler(rest_event(headers={"Origin": origin}), LambdaContext())
    assert _headers(answer)["access-control-allow-origin"] == origin


def test_regex_origin_is_matched_in_full_through_the_stack(
    lambda_loop: asyncio.AbstractEventLoop,
) -> None:
    app = compose(
        _api(),
        rate_limit=False,
        cors={"allow_origin_regex": r"https://[a-z0-9-]+\.example\.com"},
        tracing={"install_log_handler": False},
    )
    handler = lambda_handler(app)
    granted = {}
    for origin in [
        "https://app.example.com",
        "https://app.example.com.evil.com",
        "https://evil.com/.example.com",
        "https://app.example.com:8443",
        "https://a.b.example.com",
        "http://app.example.com",
    ]:
        answer = handler(http_api_event(headers={"Origin": origin}), LambdaContext())
        granted[origin] = _headers(answer).get("access-control-allow-origin")
    handler.shutdown()

    assert granted == {
        "https://app.example.com": "https://app.example.com",
        "https://app.example.com.evil.com": None,
        "https://evil.com/.example.com": None,
        "https://app.example.com:8443": None,
        "https://a.b.example.com": None,
        "http://app.example.com": None,
    }


def test_wildcard_with_credentials_is_refused_by_compose() -> None:
    with pytest.raises(ConfigurationError, match="allow_credentials"):
        compose(_api(), cors={"allow_origins": "*", "allow_credentials": True})


def test_wildcard_with_credentials_from_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", "*")
    monkeypatch.setenv("CORS_ALLOW_CREDENTIALS", "true")
    with pytest.raises(ConfigurationError, match="CORS_ALLOW_CREDENTIALS"):
        compose(_api())


def test_wildcard_never_echoes_the_origin_nor_grants_credentials(
    lambda_loop: asyncio.AbstractEventLoop,
) -> None:
    app = compose(_api(), rate_limit=False, cors={"allow_origins": "*"})
    handler = lambda_handler(app)
    answer = handler(
        rest_event(headers={"Origin": "https://evil.com"}, cookies=["session=secret"]),
        LambdaContext(),
    )
    handler.shutdown()
    headers = _headers(answer)
    assert headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in headers


# --- request ids and trace headers ---------------------------------------------------------------

UNSAFE_IDS = {
    "crlf": "abc\r\nSet-Cookie: stolen=1",
    "lf": "abc\ninjected-log-line",
    "10kb": "r" * 10 * 1024,
    "unicode": "идентификатор-🙂",
    "line-separator": "abc\u2028def",
    "nul": "abc\x00def",
    "html": "<script>alert(1)</script>",
}


@pytest.mark.parametrize("shape", ALL_SHAPES)
@pytest.mark.parametrize("header", ["X-Request-ID", "traceparent"])
@pytest.mark.parametrize("value", UNSAFE_IDS.values(), ids=UNSAFE_IDS.keys())
def test_unsafe_ids_are_replaced_and_never_logged(
    shape: str,
    header: str,
    value: str,
    lambda_loop: asyncio.AbstractEventLoop,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = compose(_api(), rate_limit={"storage": MemoryStorage()})  # JSON logs on stdout
    handler = lambda_handler(app)
    answer = handler(ALL_SHAPES[shape]("GET", "/", headers={header: value}), LambdaContext())
    handler.shutdown()
    logged = capsys.readouterr().out

    request_id = _headers(answer)["x-request-id"]
    assert answer["statusCode"] == 200
    assert request_id != value
    assert request_id.isascii() and request_id.isprintable() and len(request_id) <= 128
    lines = [json.loads(line) for line in logged.splitlines()]
    assert [line["request_id"] for line in lines] == [request_id]
    fragment = value[:12] if header == "traceparent" else value
    assert fragment not in logged
    assert json.dumps(value)[1:13] not in logged  # nor in its JSON-escaped form
    if header == "traceparent":
        assert len(lines[0]["trace_id"]) == 32


@contextmanager
def _uvicorn(app: ASGIApp) -> Iterator[int]:
    """``app`` under uvicorn in a thread on 127.0.0.1; yields the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", ws="none", log_level="error", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            threading.Event().wait(0.02)
        assert server.started, "uvicorn did not start"
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _raw_exchange(port: int, request: bytes, *, timeout: float = 10) -> tuple[int, bytes, bytes]:
    """Send raw bytes, read one response; (status, head, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(head.split(b" ")[1]), head, body


RAW_IDS = {
    "bare-cr": b"abc\rdef",
    "nul": b"abc\x00def",
    "10kb": b"r" * 10 * 1024,
    "utf-8": "идентификатор".encode(),
    "latin-1": b"\xff\xfe\xfd",
}


@pytest.mark.parametrize("header", [b"X-Request-ID", b"traceparent"])
@pytest.mark.parametrize("value", RAW_IDS.values(), ids=RAW_IDS.keys())
def test_unsafe_ids_under_uvicorn_are_refused_or_replaced_never_echoed(
    header: bytes, value: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    app = compose(_api(), rate_limit={"storage": MemoryStorage()})
    request = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + header + b": " + value
    with _uvicorn(app) as port:
        status, head, body = _raw_exchange(port, request + b"\r\n\r\n")
    logged = capsys.readouterr().out

    # Control characters never get past uvicorn's parser; everything else reaches the stack.
    assert status == (400 if value in (b"abc\rdef", b"abc\x00def") else 200)
    assert value not in head and value not in body
    assert value.decode("latin-1") not in logged
    assert value.decode("utf-8", "replace") not in logged
    if status == 200:
        (line,) = (line for line in head.split(b"\r\n") if line.lower().startswith(b"x-request-id"))
        assert len(line) < 200


# --- oversized requests ------------------------------------------------------------------------


def test_ten_thousand_headers_in_a_lambda_event_are_served_without_trouble(
    lambda_loop: asyncio.AbstractEventLoop,
) -> None:
    app = compose(_api(), rate_limit={"storage": MemoryStorage()})
    handler = lambda_handler(app)
    headers = {f"X-Filler-{n}": "v" * 20 for n in range(10_000)}
    started = time.perf_counter()
    answer = handler(rest_event(headers=headers), LambdaContext())
    elapsed = time.perf_counter() - started
    handler.shutdown()
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["headers"] > 10_000
    assert elapsed < 5


def test_a_body_at_lambdas_6_mb_limit_reaches_the_app_whole(
    lambda_loop: asyncio.AbstractEventLoop,
) -> None:
    # Lambda refuses a synchronous invocation payload over 6 MB before the handler runs; the
    # largest body the stack can see is therefore about 4.4 MB once base64-encoded.
    body = bytes(range(256)) * (4_400_000 // 256)
    app = compose(_api(), rate_limit={"storage": MemoryStorage()})
    handler = lambda_handler(app)
    event = http_api_event("POST", "/", body=body)
    answer = handler(event, LambdaContext())
    handler.shutdown()
    assert len(json.dumps(event)) < 6 * 1024 * 1024
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["bytes"] == len(body)


def test_a_limited_client_announcing_a_huge_body_gets_429_without_sending_it() -> None:
    app = compose(
        _api(),
        rate_limit={"rate": "1/minute", "storage": MemoryStorage()},
        tracing={"install_log_handler": False},
    )
    head = (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: 1000000000\r\n\r\n"
    )
    with _uvicorn(app) as port:
        first, _, _ = _raw_exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        started = time.perf_counter()
        second, second_head, body = _raw_exchange(port, head + b"x" * 1000)
        elapsed = time.perf_counter() - started

    assert (first, second) == (200, 429)
    assert json.loads(body)["status"] == 429
    assert b"retry-after" in second_head.lower()
    assert elapsed < 5  # answered without waiting for the gigabyte


def test_invalid_base64_body_is_a_json_400_not_a_500(
    lambda_loop: asyncio.AbstractEventLoop,
) -> None:
    app = compose(_api(), rate_limit={"storage": MemoryStorage()})
    handler = lambda_handler(app)
    event = rest_event("POST", "/", body=b"payload")
    event["body"] = base64.b64encode(b"payload").decode()[:-2] + "!*"
    answer = handler(event, LambdaContext())
    handler.shutdown()
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["error"] == "Bad Request"
