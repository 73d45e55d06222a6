"""CORS as a real browser sees it: headless Chromium, a page on one origin, the API on another.

Both are served by uvicorn on 127.0.0.1. The page's script fetches the API and writes what it
could read (status, body, headers) into the DOM, which Chromium dumps for the test to read.
Skipped when Chromium is not installed, except in CI, where that is a failure.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
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

from asgi_lambda_mw.cors import CORSMiddleware
from asgi_lambda_mw.types import ASGIApp

EXPOSED = ["RateLimit", "RateLimit-Policy", "Retry-After", "X-Request-ID"]
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
    """The app behind the CORS layer: answers LIMIT requests, then 429 like a rate limiter."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.app = Starlette(routes=[Route("/hello", self._hello, methods=["GET", "POST"])])

    async def _hello(self, request: Request) -> Response:
        self.requests.append(request.method)
        number = len(self.requests)
        headers = {
            "RateLimit": f'"default";r={max(LIMIT - number, 0)};t=60',
            "RateLimit-Policy": f'"default";q={LIMIT};w=60',
            "X-Request-ID": f"req-{number}",
            "X-Not-Exposed": "secret",
        }
        if number > LIMIT:
            headers["Retry-After"] = "60"
            return PlainTextResponse("Too Many Requests", status_code=429, headers=headers)
        return PlainTextResponse(f"hello {request.method}", headers=headers)


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
            stack = CORSMiddleware(
                api.app,
                allow_origins=[allowed_page],
                allow_headers=["Content-Type"],
                extra_expose_headers=EXPOSED,
            )
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
    assert headers["x-request-id"] == "req-1"
    assert headers["ratelimit"] == '"default";r=1;t=60'
    assert headers["ratelimit-policy"] == f'"default";q={LIMIT};w=60'


def test_headers_not_exposed_stay_hidden_from_the_page(browser_runs: Any) -> None:
    results, _ = browser_runs["allowed"]
    assert "x-not-exposed" not in results[0]["headers"]


def test_allowed_origin_passes_the_preflight_for_a_json_post(browser_runs: Any) -> None:
    results, reached_app = browser_runs["allowed"]
    assert results[1]["status"] == 200
    assert results[1]["body"] == "hello POST"
    assert "OPTIONS" not in reached_app


def test_allowed_origin_reads_a_429_and_its_headers(browser_runs: Any) -> None:
    results, _ = browser_runs["allowed"]
    limited = results[2]
    assert limited["status"] == 429
    assert limited["body"] == "Too Many Requests"
    assert limited["headers"]["retry-after"] == "60"
    assert limited["headers"]["ratelimit"] == '"default";r=0;t=60'
    assert limited["headers"]["x-request-id"] == "req-3"


def test_disallowed_origin_cannot_read_the_response(browser_runs: Any) -> None:
    results, _ = browser_runs["denied"]
    assert all("error" in result for result in results)
    assert results[0]["error"].startswith("TypeError")


def test_disallowed_origin_preflight_keeps_the_post_from_the_app(browser_runs: Any) -> None:
    _, reached_app = browser_runs["denied"]
    assert reached_app == ["GET", "GET"]
