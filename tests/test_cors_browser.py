"""CORS as a real browser sees it: headless Chromium, a page on one origin, the API on another.

The API is compose()'s stack; both are served by uvicorn on 127.0.0.1. The page's script
fetches the API and writes what it could read (status, body, headers) into the DOM, which
Chromium dumps for the test to read.
Skipped when Chromium is not installed, except in CI, where that is a failure.
"""

from __future__ import annotations

import html
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from asgi_lambda_mw.ratelimit.storage.memory import MemoryStorage
from asgi_lambda_mw.stack import compose
from asgi_lambda_mw.types import ASGIApp

LIMIT = 2  # requests the API answers before it starts answering 429

_PAGE = """<!doctype html>
<html><head><title>running</title></head><body><pre id="result"></pre><script>
const READ = ["content-type", "ratelimit", "ratelimit-policy", "retry-after", "x-request-id",
              "x-not-exposed"];
async function run() {
  const plan = JSON.parse(new URLSearchParams(location.search).get("plan"));
  const results = [];
  for (const step of plan) {
    try {
      const response = await fetch(step.url, step.init || {});
      const headers = {};
      for (const name of READ) {
        const value = response.headers.get(name);
        if (value !== null) headers[name] = value;
      }
      results.push({status: response.status, body: await response.text(), headers});
    } catch (error) {
      results.push({error: String(error)});
    }
  }
  document.getElementById("result").textContent = JSON.stringify(results);
  document.title = "done";
}
run();
</script></body></html>
"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed: apt-get install -y chromium")
    pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")


@contextmanager
def _serve(app: ASGIApp) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread on 127.0.0.1; yield its origin."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", ws="none", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.025)
        if not server.started:
            raise RuntimeError("uvicorn did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class _CountingAPI:
    """The app at the bottom of the stack: records the requests that reach it."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.app = Starlette(
            routes=[
                Route("/hello", self._hello, methods=["GET", "POST"]),
                Route("/boom", self._boom),
            ]
        )

    async def _hello(self, request: Request) -> Response:
        self.requests.append(request.method)
        return PlainTextResponse(f"hello {request.method}", headers={"X-Not-Exposed": "secret"})

    async def _boom(self, request: Request) -> Response:
        self.requests.append("BOOM")
        raise RuntimeError("the app failed")


def _stack(app: ASGIApp, allowed_origin: str) -> ASGIApp:
    """The library's own stack, with a tiny rate limit and numbered request ids."""
    return compose(
        app,
        rate_limit={
            "rate": f"{LIMIT}/minute",
            "storage": MemoryStorage(),
            "exempt_paths": ["/boom"],
        },
        cors={"allow_origins": [allowed_origin], "allow_headers": ["Content-Type"]},
        tracing={"id_factory": _request_ids()},
    )


def _request_ids() -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"req-{next(numbers)}"


def _run_page(
    chromium: str, profile: Path, page_origin: str, plan: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Load the page in headless Chromium and return what its script could read."""
    url = f"{page_origin}/?plan={quote(json.dumps(plan))}"
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        # Keeps the page alive until its fetches are done (virtual time waits for the network).
        "--virtual-time-budget=20000",
        "--dump-dom",
        url,
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    found = re.search(r'<pre id="result">(.*?)</pre>', completed.stdout, re.DOTALL)
    if completed.returncode != 0 or found is None or not found.group(1):
        raise AssertionError(
            f"chromium exited {completed.returncode}; dump: {completed.stdout[-2000:]!r}; "
            f"stderr: {completed.stderr[-2000:]!r}"
        )
    results: list[dict[str, Any]] = json.loads(html.unescape(found.group(1)))
    return results


def _plan(api_origin: str) -> list[dict[str, Any]]:
    hello = f"{api_origin}/hello"
    json_post = {
        "method": "POST",
        "headers": {"Content-Type": "application/json"},
        "body": "{}",
    }  # not a simple request: the browser sends a preflight first
    return [
        {"url": hello},
        {"url": hello, "init": json_post},
        {"url": hello},
        {"url": f"{api_origin}/boom"},
    ]


def _page_app() -> Starlette:
    async def page(request: Request) -> Response:
        return HTMLResponse(_PAGE)

    return Starlette(routes=[Route("/", page)])


@pytest.fixture(scope="module")
def browser_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, tuple[list[dict[str, Any]], list[str]]]]:
    """Per page origin ("allowed", "denied"): what the page read, and what reached the app."""
    chromium = _chromium()
    runs = {}
    with _serve(_page_app()) as allowed_page, _serve(_page_app()) as denied_page:
        for name, page_origin in (("allowed", allowed_page), ("denied", denied_page)):
            api = _CountingAPI()
            stack = _stack(api.app, allowed_page)
            with _serve(stack) as api_origin:
                profile = tmp_path_factory.mktemp(f"chromium-{name}")
                results = _run_page(chromium, profile, page_origin, _plan(api_origin))
            runs[name] = (results, api.requests)
    yield runs


def test_allowed_origin_reads_the_body(browser_runs: Any) -> None:
    results, _ = browser_runs["allowed"]
    assert results[0]["status"] == 200
    assert results[0]["body"] == "hello GET"


def test_allowed_origin_reads_the_exposed_headers(browser_runs: Any) -> None:
    results, _ = browser_runs["allowed"]
    headers = results[0]["headers"]
    assert headers["x-request-id"].startswith("req-")
    assert re.search(r";r=1(;|$)", headers["ratelimit"])
    assert f";q={LIMIT};" in headers["ratelimit-policy"]


def test_headers_not_exposed_stay_hidden_from_the_page(browser_runs: Any) -> None:
    results, _ = browser_runs["allowed"]
    assert "x-not-exposed" not in results[0]["headers"]


def test_allowed_origin_passes_the_preflight_for_a_json_post(browser_runs: Any) -> None:
    results, reached_app = browser_runs["allowed"]
    assert results[1]["status"] == 200
    assert results[1]["body"] == "hello POST"
    assert "OPTIONS" not in reached_app


def test_allowed_origin_reads_a_429_and_its_headers(browser_runs: Any) -> None:
    results, reached_app = browser_runs["allowed"]
    limited = results[2]
    assert limited["status"] == 429
    assert json.loads(limited["body"])["title"] == "Too Many Requests"
    assert int(limited["headers"]["retry-after"]) >= 1
    assert re.search(r";r=0(;|$)", limited["headers"]["ratelimit"])
    assert limited["headers"]["x-request-id"].startswith("req-")
    assert reached_app[:2] == ["GET", "POST"]


def test_allowed_origin_reads_a_500_from_the_app(browser_runs: Any) -> None:
    results, _ = browser_runs["allowed"]
    failed = results[3]
    assert failed["status"] == 500
    assert json.loads(failed["body"])["request_id"] == failed["headers"]["x-request-id"]


def test_disallowed_origin_cannot_read_the_response(browser_runs: Any) -> None:
    results, _ = browser_runs["denied"]
    assert all("error" in result for result in results)
    assert results[0]["error"].startswith("TypeError")


def test_disallowed_origin_preflight_keeps_the_post_from_the_app(browser_runs: Any) -> None:
    _, reached_app = browser_runs["denied"]
    assert reached_app == ["GET", "GET", "BOOM"]
