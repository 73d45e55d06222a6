"""The demo end to end under serverless-offline: serverless.yml's function, run by the local
virtualenv's Python behind an emulated HTTP API (payload 2.0, at /...) and REST API (payload
1.0, at /offline/...), counting in a table on the moto server that `table create` made.

Each test calls from its own loopback address (127.0.0.N), so each has its own rate-limit bucket.
serverless-offline adds CORS headers of its own to any request with an Origin, which API Gateway
does not do with `cors: false`; the CORS checks look only at what it would not produce.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from asgi_lambda_mw.cli.table import create_table
from asgi_lambda_mw.ratelimit.storage._schema import KEY_ATTRIBUTE

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SERVERLESS = REPO / "node_modules" / ".bin" / "serverless"
ORIGIN = "https://app.example.com"
LIMIT = 3
REGION = "us-east-1"
# Where each emulated API serves the function (REST paths carry the stage).
APIS = {"http-api": "", "rest": "/offline"}
_addresses = itertools.count(10)


class OfflineServer:
    def __init__(self, base_url: str, table: str, dynamodb_endpoint: str) -> None:
        self.base_url = base_url
        self.table = table
        self.dynamodb_endpoint = dynamodb_endpoint


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment(dynamodb_endpoint: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "RATE_LIMIT", "CORS_", "SLS_", "SERVERLESS_"))
        and name not in {"LOG_LEVEL", "_X_AMZN_TRACE_ID", "PYTHONPATH"}
    }
    venv_bin = str(Path(sys.executable).parent)
    env |= {
        # serverless-offline runs `python3` from PATH, after VIRTUAL_ENV/bin: this venv's.
        "PATH": os.pathsep.join([venv_bin, env.get("PATH", "")]),
        "VIRTUAL_ENV": sys.prefix,
        # The checkout under test, ahead of whatever is installed in the venv.
        "PYTHONPATH": str(REPO),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
        "SLS_TELEMETRY_DISABLED": "1",
        "SLS_NOTIFICATIONS_MODE": "off",
    }
    return env


def _wait_until_ready(
    process: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"serverless offline exited ({process.returncode}):\n{log.read_text()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"serverless offline did not listen within {timeout} s:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT to the process group started for it (node and the Python handlers it spawned),
    then SIGKILL for whatever is still there."""
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=15)


@pytest.fixture(scope="module")
def offline(
    moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OfflineServer]:
    if not SERVERLESS.exists() or shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail("serverless-offline is not installed: run `npm ci` (the Makefile does)")
        pytest.skip("serverless-offline is not installed: run `npm ci`")
    table = f"offline-{uuid.uuid4().hex[:12]}"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in _environment(moto_endpoint).items():
            if name.startswith("AWS_"):
                patch.setenv(name, value)
        create_table(table, region=REGION, endpoint_url=moto_endpoint)
    http_port, lambda_port = _free_port(), _free_port()
    log = tmp_path_factory.mktemp("serverless-offline") / "offline.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(SERVERLESS),
                "offline",
                "start",
                "--stage",
                "offline",
                "--host",
                "127.0.0.1",
                "--httpPort",
                str(http_port),
                "--lambdaPort",
                str(lambda_port),
                f"--param=rateLimit={LIMIT}/minute",
                f"--param=rateLimitTable={table}",
                f"--param=corsAllowOrigins={ORIGIN}",
            ],
            cwd=REPO,
            env=_environment(moto_endpoint),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_ready(process, http_port, log)
        yield OfflineServer(f"http://127.0.0.1:{http_port}", table, moto_endpoint)
    finally:
        _stop(process)


@pytest.fixture
def caller_ip() -> str:
    """A loopback address no other test calls from: its own rate-limit bucket."""
    return f"127.0.0.{next(_addresses)}"


@pytest.fixture
def client(offline: OfflineServer, caller_ip: str) -> Iterator[httpx.Client]:
    transport = httpx.HTTPTransport(local_address=caller_ip)
    # Generous: the first request starts Python and imports FastAPI.
    with httpx.Client(base_url=offline.base_url, transport=transport, timeout=30) as session:
        yield session


def _json(response: httpx.Response) -> Any:
    return response.json()


@pytest.mark.parametrize("api", APIS)
def test_route_answers_with_rate_limit_headers(client: httpx.Client, api: str) -> None:
    response = client.get(f"{APIS[api]}/hello/world")
    assert response.status_code == 200
    assert _json(response) == {"message": "Hello, world!"}
    assert re.search(rf"\bq={LIMIT}\b", response.headers["RateLimit-Policy"])
    assert re.search(rf"\br={LIMIT - 1}\b", response.headers["RateLimit"])


def test_limit_is_shared_by_both_apis_and_the_next_request_gets_429(
    client: httpx.Client,
) -> None:
    paths = ["/hello/a", "/offline/hello/b", "/hello/c"]
    assert [client.get(path).status_code for path in paths] == [200] * LIMIT
    refused = client.get("/offline/hello/d")
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert int(refused.headers["Retry-After"]) > 0
    assert re.search(r"\br=0\b", refused.headers["RateLimit"])


def test_counters_are_kept_in_the_table_serverless_yml_names(
    client: httpx.Client, offline: OfflineServer, caller_ip: str
) -> None:
    assert client.get("/hello/table").status_code == 200
    dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=offline.dynamodb_endpoint)
    items = dynamodb.scan(TableName=offline.table)["Items"]
    keys = [item[KEY_ATTRIBUTE]["S"] for item in items]
    assert any(caller_ip in key for key in keys), keys


@pytest.mark.parametrize("api", APIS)
def test_preflight_from_the_allowed_origin_is_answered_past_the_limit(
    client: httpx.Client, api: str
) -> None:
    for _ in range(LIMIT + 1):
        client.get(f"{APIS[api]}/hello/spent")
    preflight = client.options(
        f"{APIS[api]}/items",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    # The library's full method list (the emulator would echo only the requested one).
    assert "DELETE" in preflight.headers["Access-Control-Allow-Methods"]
    assert "x-request-id" in preflight.headers


@pytest.mark.parametrize("api", APIS)
def test_health_check_is_answered_past_the_limit(client: httpx.Client, api: str) -> None:
    for _ in range(LIMIT + 1):
        client.get(f"{APIS[api]}/hello/spent")
    health = client.get(f"{APIS[api]}/health")
    assert health.status_code == 200
    assert _json(health) == {"status": "ok"}


@pytest.mark.parametrize("api", APIS)
def test_request_id_sent_by_the_caller_is_echoed(client: httpx.Client, api: str) -> None:
    response = client.get(f"{APIS[api]}/whoami", headers={"X-Request-ID": "checkout-7f3a"})
    assert response.headers["X-Request-ID"] == "checkout-7f3a"
    assert _json(response)["request_id"] == "checkout-7f3a"


def test_rest_api_request_id_is_api_gateways_per_request_id(client: httpx.Client) -> None:
    first, second = client.get("/offline/whoami"), client.get("/offline/whoami")
    ids = [first.headers["X-Request-ID"], second.headers["X-Request-ID"]]
    assert ids == [_json(first)["request_id"], _json(second)["request_id"]]
    assert ids[0] != ids[1]
    assert all(uuid.UUID(request_id) for request_id in ids)


def test_http_api_request_id_comes_from_the_payload_2_request_context(
    client: httpx.Client,
) -> None:
    response = client.get("/whoami")
    # serverless-offline's payload-2.0 requestContext.requestId (a fixed placeholder).
    assert response.headers["X-Request-ID"] == "offlineContext_resourceId"
    assert _json(response)["request_id"] == "offlineContext_resourceId"


@pytest.mark.parametrize("api", APIS)
def test_client_ip_is_the_callers_address_not_a_forwarded_header(
    client: httpx.Client, api: str, caller_ip: str
) -> None:
    response = client.get(f"{APIS[api]}/whoami", headers={"X-Forwarded-For": "203.0.113.7"})
    assert _json(response)["client_ip"] == caller_ip


@pytest.mark.parametrize("api", APIS)
def test_binary_response_arrives_intact(client: httpx.Client, api: str) -> None:
    response = client.get(f"{APIS[api]}/image.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("api", APIS)
def test_unhandled_error_is_a_json_500_with_the_request_id(client: httpx.Client, api: str) -> None:
    response = client.get(f"{APIS[api]}/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/json")
    assert _json(response) == {"error": "Internal Server Error", "request_id": "boom-1"}
