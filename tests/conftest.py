"""Shared fixtures: real DynamoDB-compatible servers on loopback, started and stopped here.

moto's server always runs; dynalite (npm) runs where it is installed (`npm ci`), and CI,
which installs it, fails rather than skips when it is missing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

REPO = Path(__file__).resolve().parent.parent
DYNALITE = REPO / "node_modules" / ".bin" / "dynalite"


@pytest.fixture(autouse=True)
def _aws_test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and a region, and no AWS settings leaking in from the machine."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "RATE_LIMIT", "CORS_")) or name in {
            "LOG_LEVEL",
            "_X_AMZN_TRACE_ID",
        }:
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(autouse=True)
def _restore_library_loggers() -> Iterator[None]:
    """The tracing layer installs JSON handlers on the library's loggers (global state): give
    every test the loggers as they were before it."""
    names = ["asgi_lambda_mw"] + [
        name for name in logging.root.manager.loggerDict if name.startswith("asgi_lambda_mw.")
    ]
    saved = {}
    for name in names:
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), logger.propagate, logger.level)
    yield
    for name in logging.root.manager.loggerDict:
        if name == "asgi_lambda_mw" or name.startswith("asgi_lambda_mw."):
            logger = logging.getLogger(name)
            handlers, propagate, level = saved.get(name, ([], True, logging.NOTSET))
            logger.handlers[:] = handlers
            logger.propagate = propagate
            logger.setLevel(level)


def _own_event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        asyncio.set_event_loop(None)
        loop.close()


@pytest.fixture
def lambda_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """The process's one event loop, as on Lambda (Mangum runs everything on the current loop),
    closed after the test so none is left open."""
    yield from _own_event_loop()


@pytest.fixture(scope="module")
def lambda_module_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """Like ``lambda_loop``, shared by a module's tests and closed after the module."""
    yield from _own_event_loop()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto DynamoDB server on 127.0.0.1 for the whole session; tests use unique table names."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dynalite exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"dynalite did not listen on 127.0.0.1:{port} within {timeout} s")


@pytest.fixture(scope="session")
def dynalite_endpoint() -> Iterator[str]:
    """dynalite on 127.0.0.1: stricter than moto (it lacks UpdateTimeToLive and
    ReturnValuesOnConditionCheckFailure)."""
    if not DYNALITE.exists() or shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail("dynalite is not installed: run `npm ci` (the Makefile does)")
        pytest.skip("dynalite is not installed: run `npm ci`")
    port = _free_port()
    process = subprocess.Popen(
        [str(DYNALITE), "--host", "127.0.0.1", "--port", str(port), "--createTableMs", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(params=["moto", pytest.param("dynalite", marks=pytest.mark.dynalite)])
def dynamodb_endpoint(request: pytest.FixtureRequest) -> str:
    """Each DynamoDB-compatible server in turn."""
    return str(request.getfixturevalue(f"{request.param}_endpoint"))
