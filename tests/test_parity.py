"""Parity: the same requests to the composed app under uvicorn and through `asgi-lambda watch`
in every event format must get the same status, body and headers.

Both sides run tests/parity_app.py in subprocesses on free 127.0.0.1 ports. Each event format
sends its requests from its own loopback address (127.0.0.2, .3, ...), to uvicorn and to its
watch server alike, so each rate-limit counter sees the same requests on both sides whatever
order or subset of tests runs.

Differences a gateway legitimately makes, and nothing else, are allowed:

- ``date``: the time of each response; ``server``: uvicorn names itself, gateways do not;
- ``x-request-id``, ``server-timing``, ``traceparent``: per-request values; on Lambda the
  request id is the gateway's (and it is in the JSON 500 body, compared with it masked);
- ``apigw-requestid`` (HTTP API), ``x-amzn-requestid`` (REST, Function URL): added by AWS;
- ``content-type: application/json`` on a bodiless answer in payload format 2.0: Mangum's
  HTTP API handler adds it where the app sent none;
- ``connection``/``transfer-encoding``: hop-by-hop, chosen by each server.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests import parity_app

REPO = Path(__file__).resolve().parent.parent
FORMATS = ("http-api", "rest", "alb", "alb-multi-value", "function-url")
SOURCE_IPS = {name: f"127.0.0.{index}" for index, name in enumerate(FORMATS, start=2)}
_V2_FORMATS = {"http-api", "function-url"}
_ALWAYS_DIFFERENT = frozenset(
    {
        "date",
        "server",
        "x-request-id",
        "server-timing",
        "traceparent",
        "apigw-requestid",
        "x-amzn-requestid",
        "connection",
        "transfer-encoding",
    }
)
_START_TIMEOUT = 30.0
_CLI = "import sys; from asgi_lambda_mw.cli import main; sys.exit(main())"
_ORIGIN = parity_app.ALLOWED_ORIGIN


@dataclass(frozen=True)
class Case:
    """One request (or a short series, for the rate limit) sent to both sides."""

    name: str
    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    chunked: bool = False
    repeat: int = 1
    skip_formats: Mapping[str, str] = field(default_factory=dict)


_LAST_VALUE_ONLY = {
    "alb": "without multi-value headers an ALB passes only the last value of a repeated "
    "header or query key (documented; see test_cli_watch)"
}
_BINARY = bytes(range(256)) * 64

CASES = (
    Case("plain_get", "GET", "/echo"),
    Case("repeated_query_keys", "GET", "/echo?a=1&a=2&b=3", skip_formats=_LAST_VALUE_ONLY),
    Case("percent_encoded_query", "GET", "/echo?q=caf%C3%A9&sp=a+b&pct=100%25&amp=%26"),
    Case("query_key_without_value", "GET", "/echo?flag&empty="),
    Case("unicode_path", "GET", "/path/caf%C3%A9/%E2%9C%93"),
    Case("percent_encoded_space_in_path", "GET", "/path/a%20b/c"),
    Case("encoded_slash_in_path", "GET", "/path/a%2Fb/c"),
    Case(
        "repeated_request_header",
        "GET",
        "/echo",
        headers=(("x-custom", "one"), ("x-custom", "two")),
        skip_formats=_LAST_VALUE_ONLY,
    ),
    Case(
        "json_body",
        "POST",
        "/json",
        headers=(("content-type", "application/json"),),
        body='{"name": "widget", "tags": ["a", "ü"]}'.encode(),
    ),
    Case(
        "form_body",
        "POST",
        "/form",
        headers=(("content-type", "application/x-www-form-urlencoded"),),
        body=b"a=1&a=2&text=hello+world&sym=%26%3D",
    ),
    Case(
        "text_body_put",
        "PUT",
        "/echo",
        headers=(("content-type", "text/plain; charset=utf-8"),),
        body="plain text ✓".encode(),
    ),
    Case(
        "binary_upload",
        "POST",
        "/upload",
        headers=(("content-type", "application/octet-stream"),),
        body=_BINARY,
    ),
    Case("binary_download", "GET", "/download"),
    Case(
        "chunked_request_body",
        "POST",
        "/upload",
        headers=(("content-type", "application/octet-stream"),),
        body=_BINARY,
        chunked=True,
    ),
    Case(
        "large_request_body",
        "POST",
        "/upload",
        headers=(("content-type", "application/octet-stream"),),
        body=os.urandom(1_500_000),
    ),
    Case("large_response_body", "GET", "/large?size=1000000"),
    Case("empty_post_body", "POST", "/echo"),
    Case("empty_response_204", "GET", "/empty"),
    Case("set_cookies", "POST", "/cookies/set"),
    Case(
        "read_cookies",
        "GET",
        "/cookies",
        headers=(("cookie", "flavour=chocolate; session=abc123"),),
    ),
    Case("redirect", "GET", "/redirect"),
    Case("head_request", "HEAD", "/echo"),
    Case("head_of_binary", "HEAD", "/download"),
    Case("not_found", "GET", "/no/such/page"),
    Case("method_not_allowed", "DELETE", "/json"),
    Case("cors_simple_request", "GET", "/echo", headers=(("origin", _ORIGIN),)),
    Case(
        "allowed_preflight",
        "OPTIONS",
        "/echo",
        headers=(
            ("origin", _ORIGIN),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "content-type, x-custom"),
        ),
    ),
    Case(
        "denied_preflight",
        "OPTIONS",
        "/echo",
        headers=(("origin", "https://evil.example.net"), ("access-control-request-method", "PUT")),
    ),
    Case("rate_limited_after_limit", "GET", "/limited", repeat=parity_app.LIMITED_RATE + 1),
    Case("unhandled_exception_500", "GET", "/boom", headers=(("origin", _ORIGIN),)),
)


@dataclass(frozen=True)
class Seen:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment() -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "RATE_LIMIT", "CORS_")) and name != "LOG_LEVEL"
    }
    environment.update(
        AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"
    )
    return environment


def _wait_for_url(log: Path, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"watch exited with {process.returncode}: {log.read_text()}")
        found = re.search(r"url:\s+(http://\S+)", log.read_text())
        if found:
            return found.group(1)
        time.sleep(0.05)
    raise RuntimeError(f"watch did not start: {log.read_text()}")


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"uvicorn did not listen: {log.read_text()}")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Base URLs: "uvicorn" and one per event format, all started at once and stopped after."""
    logs = tmp_path_factory.mktemp("parity")
    environment = _environment()
    processes: list[subprocess.Popen[bytes]] = []
    urls: dict[str, str] = {}
    try:
        uvicorn_port = _free_port()
        uvicorn_log = logs / "uvicorn.log"
        with uvicorn_log.open("wb") as sink:
            uvicorn = subprocess.Popen(
                [
                    *(sys.executable, "-m", "uvicorn", "tests.parity_app:app"),
                    *("--host", "127.0.0.1", "--port", str(uvicorn_port), "--log-level", "warning"),
                ],
                cwd=REPO,
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )
        processes.append(uvicorn)
        watch_logs: dict[str, Path] = {}
        for event_format in FORMATS:
            watch_logs[event_format] = logs / f"watch-{event_format}.log"
            with watch_logs[event_format].open("wb") as sink:
                processes.append(
                    subprocess.Popen(
                        [
                            *(sys.executable, "-c", _CLI, "watch", "tests.parity_app:handler"),
                            *("--port", "0", "--event-format", event_format),
                        ],
                        cwd=REPO,
                        env=environment,
                        stdout=subprocess.DEVNULL,
                        stderr=sink,
                    )
                )
        _wait_for_port(uvicorn_port, uvicorn, uvicorn_log)
        urls["uvicorn"] = f"http://127.0.0.1:{uvicorn_port}"
        for event_format, process in zip(FORMATS, processes[1:], strict=True):
            urls[event_format] = _wait_for_url(watch_logs[event_format], process)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def clients() -> Iterator[dict[str, httpx.Client]]:
    """One client per event format, sending from that format's own loopback address."""
    made = {
        name: httpx.Client(
            transport=httpx.HTTPTransport(local_address=ip), timeout=30.0, follow_redirects=False
        )
        for name, ip in SOURCE_IPS.items()
    }
    yield made
    for client in made.values():
        client.close()


def _send(client: httpx.Client, base_url: str, case: Case) -> list[Seen]:
    seen = []
    for _ in range(case.repeat):
        client.cookies.clear()  # only the cookies a case sends itself
        content: bytes | Iterator[bytes] | None = case.body
        if case.chunked and case.body is not None:
            body = case.body
            content = iter([body[i : i + 4096] for i in range(0, len(body), 4096)])
        response = client.request(
            case.method, base_url + case.path, headers=list(case.headers), content=content
        )
        headers = tuple(response.headers.multi_items())
        seen.append(Seen(response.status_code, headers, response.content))
    return seen


def _comparable(seen: Seen) -> tuple[int, dict[str, list[str]], bytes]:
    headers: dict[str, list[str]] = {}
    for name, value in seen.headers:
        if name.lower() not in _ALWAYS_DIFFERENT:
            headers.setdefault(name.lower(), []).append(value)
    body = seen.body
    request_id = dict((name.lower(), value) for name, value in seen.headers).get("x-request-id")
    if request_id and request_id.encode() in body:
        body = body.replace(request_id.encode(), b"<request-id>")
        # Request ids differ in length: each side's length must be right for its own body.
        assert headers.pop("content-length") == [str(len(seen.body))]
    return seen.status, headers, body


@pytest.mark.parametrize("event_format", FORMATS)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_lambda_matches_uvicorn(
    case: Case,
    event_format: str,
    servers: dict[str, str],
    clients: dict[str, httpx.Client],
) -> None:
    if event_format in case.skip_formats:
        pytest.skip(case.skip_formats[event_format])
    client = clients[event_format]
    expected = _send(client, servers["uvicorn"], case)
    actual = _send(client, servers[event_format], case)
    for number, (want, got) in enumerate(zip(expected, actual, strict=True), start=1):
        want_status, want_headers, want_body = _comparable(want)
        got_status, got_headers, got_body = _comparable(got)
        if (
            event_format in _V2_FORMATS
            and not got_body
            and "content-type" not in want_headers
            and got_headers.get("content-type") == ["application/json"]
        ):
            del got_headers["content-type"]  # Mangum's HTTP API handler adds it; see above
        where = f"response {number} of {case.repeat}"
        assert got_status == want_status, where
        assert sorted(got_headers.items()) == sorted(want_headers.items()), where
        assert got_body == want_body, where


def test_rate_limited_case_ends_in_429(
    servers: dict[str, str], clients: dict[str, httpx.Client]
) -> None:
    """The 429 case compares a real 429: the limit is reached on the Lambda side too."""
    client = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.20"))
    with client:
        statuses = [
            client.get(servers["rest"] + parity_app.LIMITED_PATH).status_code
            for _ in range(parity_app.LIMITED_RATE + 1)
        ]
    assert statuses == [200] * parity_app.LIMITED_RATE + [429]


def test_suite_has_at_least_25_cases() -> None:
    assert len(CASES) >= 25
