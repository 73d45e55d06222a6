"""The Lambda Runtime API emulator and the function process behind `asgi-lambda watch`.

The protocol is checked with a plain HTTP client, then the same handlers run in a real function
process under our runtime loop and under AWS's awslambdaric: answers, errors, crashes, init
failures and timeouts, as Lambda reports them.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from asgi_lambda_mw.local._function import (
    FunctionHost,
    FunctionSettings,
    InvokeResult,
    python_command,
)
from asgi_lambda_mw.local._runtime_api import Invocation, InvocationQueue, RuntimeAPIServer

ARN = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
RUNTIMES = ("builtin", "awslambdaric")

FUNCTION_MODULE = """
import json, os, time

def handler(event, context):
    action = event.get("action")
    if action == "raise":
        raise ValueError("bad input")
    if action == "exit":
        os._exit(7)
    if action == "sleep":
        time.sleep(event["seconds"])
    return {
        "event": event,
        "pid": os.getpid(),
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "memory": str(context.memory_limit_in_mb),
        "arn": context.invoked_function_arn,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "trace_env": os.environ.get("_X_AMZN_TRACE_ID"),
    }
"""


@pytest.fixture
def queue() -> InvocationQueue:
    return InvocationQueue()


@pytest.fixture
def server(queue: InvocationQueue) -> Iterator[RuntimeAPIServer]:
    api = RuntimeAPIServer(queue, function_arn=ARN)
    api.start()
    yield api
    api.close()


@pytest.fixture
def connect() -> Iterator[Callable[[RuntimeAPIServer], http.client.HTTPConnection]]:
    """Opens connections to a Runtime API server, closed after the test."""
    opened: list[http.client.HTTPConnection] = []

    def _connect(server: RuntimeAPIServer) -> http.client.HTTPConnection:
        host, port = server.address.split(":")
        opened.append(http.client.HTTPConnection(host, int(port), timeout=10))
        return opened[-1]

    yield _connect
    for connection in opened:
        connection.close()


Connect = Callable[[RuntimeAPIServer], http.client.HTTPConnection]


def _invocation(payload: bytes = b'{"hello": "world"}', timeout: float = 30.0) -> Invocation:
    return Invocation(request_id="req-1", payload=payload, trace_id="Root=1-abc", timeout=timeout)


def test_next_invocation_carries_the_event_and_lambda_headers(
    queue: InvocationQueue, server: RuntimeAPIServer, connect: Connect
) -> None:
    queue.submit(_invocation())
    connection = connect(server)
    connection.request("GET", "/2018-06-01/runtime/invocation/next")
    response = connection.getresponse()

    assert response.status == 200
    assert response.read() == b'{"hello": "world"}'
    assert response.getheader("Lambda-Runtime-Aws-Request-Id") == "req-1"
    assert response.getheader("Lambda-Runtime-Invoked-Function-Arn") == ARN
    assert response.getheader("Lambda-Runtime-Trace-Id") == "Root=1-abc"
    deadline = int(response.getheader("Lambda-Runtime-Deadline-Ms") or 0)
    assert abs(deadline - (time.time() + 30) * 1000) < 5000


def test_next_invocation_waits_until_one_arrives(
    queue: InvocationQueue, server: RuntimeAPIServer, connect: Connect
) -> None:
    connection = connect(server)
    threading.Timer(0.2, queue.submit, args=(_invocation(),)).start()
    connection.request("GET", "/2018-06-01/runtime/invocation/next")
    assert connection.getresponse().getheader("Lambda-Runtime-Aws-Request-Id") == "req-1"


def test_posted_response_completes_the_invocation(
    queue: InvocationQueue, server: RuntimeAPIServer, connect: Connect
) -> None:
    invocation = _invocation()
    queue.submit(invocation)
    connection = connect(server)
    connection.request("GET", "/2018-06-01/runtime/invocation/next")
    connection.getresponse().read()
    connection.request("POST", "/2018-06-01/runtime/invocation/req-1/response", b'{"ok": true}')

    assert connection.getresponse().status == 202
    assert invocation.done.is_set()
    assert invocation.outcome is not None
    assert (invocation.outcome.kind, invocation.outcome.body) == ("response", b'{"ok": true}')


def test_posted_error_keeps_the_error_type(
    queue: InvocationQueue, server: RuntimeAPIServer, connect: Connect
) -> None:
    invocation = _invocation()
    queue.submit(invocation)
    connection = connect(server)
    connection.request("GET", "/2018-06-01/runtime/invocation/next")
    connection.getresponse().read()
    error = b'{"errorMessage": "boom", "errorType": "RuntimeError"}'
    connection.request(
        "POST",
        "/2018-06-01/runtime/invocation/req-1/error",
        error,
        {"Lambda-Runtime-Function-Error-Type": "Unhandled"},
    )

    assert connection.getresponse().status == 202
    assert invocation.outcome is not None
    assert invocation.outcome.kind == "error"
    assert invocation.outcome.error_type == "Unhandled"
    assert json.loads(invocation.outcome.body)["errorMessage"] == "boom"


def test_response_for_an_unknown_request_id_is_refused(
    server: RuntimeAPIServer, connect: Connect
) -> None:
    connection = connect(server)
    connection.request("POST", "/2018-06-01/runtime/invocation/nobody/response", b"{}")
    assert connection.getresponse().status == 400


def test_init_error_is_passed_on(queue: InvocationQueue, connect: Connect) -> None:
    reported: list[bytes] = []
    api = RuntimeAPIServer(queue, function_arn=ARN, on_init_error=reported.append)
    api.start()
    try:
        connection = connect(api)
        connection.request("POST", "/2018-06-01/runtime/init/error", b'{"errorType": "X"}')
        assert connection.getresponse().status == 202
    finally:
        api.close()
    assert reported == [b'{"errorType": "X"}']


# --- a real function process, under each runtime ------------------------------------------


@pytest.fixture
def function_dir(tmp_path: Path) -> Path:
    (tmp_path / "fn_module.py").write_text(textwrap.dedent(FUNCTION_MODULE))
    (tmp_path / "broken_module.py").write_text("raise ImportError('missing dependency x')\n")
    return tmp_path


def _host(
    function_dir: Path, runtime: str, *, module: str = "fn_module", timeout: float = 30.0
) -> FunctionHost:
    environment = dict(os.environ)
    environment.update(
        AWS_LAMBDA_FUNCTION_NAME="test-function",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        PYTHONPATH=os.pathsep.join([str(function_dir), *sys.path]),
        _HANDLER=f"{module}.handler",
    )
    if runtime == "awslambdaric":
        argv = python_command("awslambdaric", f"{module}.handler")
    else:
        argv = python_command("asgi_lambda_mw.local._bootstrap", f"{module}:handler")
    return FunctionHost(
        FunctionSettings(
            command=lambda address: argv,
            environment=environment,
            function_arn=ARN,
            timeout=timeout,
            cwd=str(function_dir),
        )
    )


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    if request.param == "awslambdaric":
        pytest.importorskip("awslambdaric")
    return str(request.param)


def _answer(
    host: FunctionHost, event: dict[str, object], trace_id: str | None = None
) -> tuple[InvokeResult, Any]:
    result = host.invoke(json.dumps(event).encode(), trace_id=trace_id)
    assert result.outcome.kind == "response", result.outcome
    return result, json.loads(result.outcome.body)


def test_handler_answer_comes_back_with_a_realistic_context(
    function_dir: Path, runtime: str
) -> None:
    host = _host(function_dir, runtime)
    trace_id = "Root=1-65f0a7de-0123456789abcdef01234567"
    try:
        result, answer = _answer(host, {"n": 1}, trace_id=trace_id)
    finally:
        host.stop()
    assert answer["event"] == {"n": 1}
    assert answer["request_id"] == result.request_id
    assert answer["function_name"] == "test-function"
    assert answer["memory"] == "256"
    assert answer["arn"] == ARN
    assert 0 < answer["remaining_ms"] <= 30_000
    assert answer["trace_env"] == trace_id


def test_first_invocation_is_a_cold_start_and_the_next_is_warm(
    function_dir: Path, runtime: str
) -> None:
    host = _host(function_dir, runtime)
    try:
        first, first_answer = _answer(host, {})
        second, second_answer = _answer(host, {})
    finally:
        host.stop()
    assert (first.cold_start, second.cold_start) == (True, False)
    assert first_answer["pid"] == second_answer["pid"]


def test_each_invocation_gets_its_own_trace_id(function_dir: Path, runtime: str) -> None:
    host = _host(function_dir, runtime)
    try:
        _, first = _answer(host, {})
        _, second = _answer(host, {})
    finally:
        host.stop()
    assert first["trace_env"].startswith("Root=1-")
    assert first["trace_env"] != second["trace_env"]


def test_handler_exception_is_an_error_outcome(function_dir: Path, runtime: str) -> None:
    host = _host(function_dir, runtime)
    try:
        result = host.invoke(b'{"action": "raise"}')
    finally:
        host.stop()
    assert result.outcome.kind == "error"
    error = json.loads(result.outcome.body)
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "bad input")


def test_crash_fails_the_invocation_and_the_next_one_gets_a_new_process(
    function_dir: Path, runtime: str
) -> None:
    host = _host(function_dir, runtime)
    try:
        _, before = _answer(host, {})
        crashed = host.invoke(b'{"action": "exit"}')
        after_result, after = _answer(host, {})
    finally:
        host.stop()
    assert crashed.outcome.kind == "crash"
    assert after_result.cold_start
    assert after["pid"] != before["pid"]


def test_import_failure_is_an_init_error(function_dir: Path, runtime: str) -> None:
    host = _host(function_dir, runtime, module="broken_module")
    try:
        result = host.invoke(b"{}")
    finally:
        host.stop()
    assert result.outcome.kind == "init_error"
    assert b"missing dependency x" in result.outcome.body


def test_invocation_past_the_timeout_times_out_and_the_process_is_replaced(
    function_dir: Path, runtime: str
) -> None:
    host = _host(function_dir, runtime, timeout=1.0)
    try:
        _, before = _answer(host, {})
        slow = host.invoke(b'{"action": "sleep", "seconds": 30}')
        _, after = _answer(host, {})
    finally:
        host.stop()
    assert slow.outcome.kind == "timeout"
    assert after["pid"] != before["pid"]


def test_stop_ends_the_function_process(function_dir: Path) -> None:
    host = _host(function_dir, "builtin")
    _, answer = _answer(host, {})
    host.stop()
    with pytest.raises(ProcessLookupError):
        for _ in range(100):  # the process is reaped by stop(); give the kernel a moment
            os.kill(answer["pid"], 0)
            time.sleep(0.05)
