"""`asgi-lambda watch`: the command as a user runs it, in a subprocess on a free loopback port,
serving small handler modules written into a temporary project directory.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from asgi_lambda_mw.local._gateway import PAYLOAD_LIMIT

REPO = Path(__file__).resolve().parent.parent
_CLI = "import sys; from asgi_lambda_mw.cli import main; sys.exit(main())"
_START_TIMEOUT = 30.0

APP_MODULE = """
import json, os, time

def handler(event, context):
    path = event.get("rawPath") or event.get("path")
    if path == "/raise":
        raise RuntimeError("the handler failed")
    if path == "/exit":
        os._exit(3)
    if path == "/sleep":
        time.sleep(30)
    if path == "/junk":
        return {"statusCode": "not a number"}
    if path == "/bare":
        return {"just": "a dict"}
    body = {
        "event": event,
        "pid": os.getpid(),
        "function_name": context.function_name,
        "memory": str(context.memory_limit_in_mb),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "env": {
            name: os.environ.get(name)
            for name in (
                "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_REGION",
                "_X_AMZN_TRACE_ID", "GREETING", "RATE_LIMIT_TABLE",
            )
        },
        "version": VERSION,
    }
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "cookies": ["first=1", "second=2"],
        "body": json.dumps(body),
    }

VERSION = 1
"""


@dataclass
class Watch:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "app_module.py").write_text(textwrap.dedent(APP_MODULE))
    return tmp_path


def _environment() -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "RATE_LIMIT", "CORS_"))
    }
    environment.update(
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        PYTHONPATH=os.pathsep.join([str(REPO), environment.get("PYTHONPATH", "")]),
    )
    return environment


@pytest.fixture
def start_watch(project: Path) -> Iterator[Callable[..., Watch]]:
    """Starts `asgi-lambda watch` in ``project``; every process is stopped after the test."""
    started: list[Watch] = []

    def _start(*options: str, handler: str = "app_module:handler") -> Watch:
        log = project / f"watch-{len(started)}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-c", _CLI, "watch", handler, "--port", "0", *options],
                cwd=project,
                env=_environment(),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        watch = Watch("", process, log)
        started.append(watch)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            found = re.search(r"url:\s+(http://\S+)", watch.output())
            if found:
                watch.url = found.group(1)
                return watch
            if process.poll() is not None:
                raise AssertionError(f"watch exited with {process.returncode}:\n{watch.output()}")
            time.sleep(0.05)
        raise AssertionError(f"watch did not start:\n{watch.output()}")

    yield _start
    for watch in started:
        if watch.process.poll() is None:
            watch.process.terminate()
        try:
            watch.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            watch.process.kill()
            watch.process.wait()


def _get(watch: Watch, path: str, **options: object) -> httpx.Response:
    return httpx.get(watch.url + path, timeout=30.0, **options)  # type: ignore[arg-type]


def _answer(watch: Watch, path: str = "/") -> dict[str, object]:
    response = _get(watch, path)
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


def test_banner_names_the_url_format_and_storage(start_watch: Callable[..., Watch]) -> None:
    watch = start_watch("--event-format", "rest")
    banner = watch.output()
    assert re.search(r"url:\s+http://127\.0\.0\.1:\d+", banner)
    assert "event format: rest" in banner
    assert "storage:" in banner and "in memory" in banner


def test_request_becomes_an_event_in_the_chosen_format(start_watch: Callable[..., Watch]) -> None:
    watch = start_watch("--event-format", "rest")
    event = _answer(watch, "/items/7?tag=a&tag=b")["event"]
    assert isinstance(event, dict)
    assert event["httpMethod"] == "GET"
    assert event["path"] == "/items/7"
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"]}
    assert event["requestContext"]["identity"]["sourceIp"] == "127.0.0.1"


def test_http_api_answer_cookies_become_set_cookie_headers(
    start_watch: Callable[..., Watch],
) -> None:
    watch = start_watch()
    response = _get(watch, "/")
    assert response.headers.get_list("set-cookie") == ["first=1", "second=2"]
    assert "apigw-requestid" in response.headers


def test_http_api_infers_a_response_from_an_answer_without_status(
    start_watch: Callable[..., Watch],
) -> None:
    watch = start_watch()
    response = _get(watch, "/bare")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"just": "a dict"}


def test_function_gets_lambda_context_and_environment(start_watch: Callable[..., Watch]) -> None:
    watch = start_watch("--memory", "512", "--timeout", "20", "--function-name", "orders")
    answer = _answer(watch)
    assert answer["function_name"] == "orders"
    assert answer["memory"] == "512"
    assert 0 < int(str(answer["remaining_ms"])) <= 20_000
    env = answer["env"]
    assert isinstance(env, dict)
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "orders"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert env["AWS_REGION"] == "us-east-1"


def test_each_invocation_has_its_own_trace_id(start_watch: Callable[..., Watch]) -> None:
    watch = start_watch()
    first, second = _answer(watch)["env"], _answer(watch)["env"]
    assert isinstance(first, dict) and isinstance(second, dict)
    assert str(first["_X_AMZN_TRACE_ID"]).startswith("Root=1-")
    assert first["_X_AMZN_TRACE_ID"] != second["_X_AMZN_TRACE_ID"]


def test_env_file_values_reach_the_function(
    start_watch: Callable[..., Watch], project: Path
) -> None:
    (project / "local.env").write_text("# settings\nexport GREETING='hello there'\n")
    watch = start_watch("--env-file", "local.env")
    env = _answer(watch)["env"]
    assert isinstance(env, dict)
    assert env["GREETING"] == "hello there"


def test_unhandled_exception_is_a_502(start_watch: Callable[..., Watch]) -> None:
    watch = start_watch()
    response = _get(watch, "/raise")
    assert response.status_code == 502
    assert response.json() == {"message": "Internal Server Error"}
    assert "RuntimeError: the handler failed" in watch.output()


def test_malformed_answer_is_a_502(start_watch: Callable[..., Watch]) -> None:
    watch = start_watch("--event-format", "rest")
    assert _get(watch, "/junk").status_code == 502
    assert "malformed answer" in watch.output()


def test_crash_is_contained_and_the_next_request_gets_a_new_process(
    start_watch: Callable[..., Watch],
) -> None:
    watch = start_watch()
    before = _answer(watch)["pid"]
    assert _get(watch, "/exit").status_code == 502
    after = _answer(watch)["pid"]
    assert after != before
    assert "exited with status 3" in watch.output()


def test_request_past_the_timeout_is_a_504(start_watch: Callable[..., Watch]) -> None:
    watch = start_watch("--timeout", "1")
    response = _get(watch, "/sleep")
    assert response.status_code == 504
    assert _get(watch, "/").status_code == 200  # a fresh process serves the next one


def test_request_over_the_payload_limit_is_a_413(start_watch: Callable[..., Watch]) -> None:
    watch = start_watch()
    body = b"x" * (PAYLOAD_LIMIT - 1000)  # fits as a body, not once inside the JSON event
    response = httpx.post(
        watch.url + "/", content=body, headers={"content-type": "application/octet-stream"}
    )
    assert response.status_code == 413


def test_head_request_has_headers_and_no_body(start_watch: Callable[..., Watch]) -> None:
    watch = start_watch()
    response = httpx.head(watch.url + "/")
    assert response.status_code == 200
    assert response.content == b""


def test_alb_without_multi_value_headers_passes_the_last_value(
    start_watch: Callable[..., Watch],
) -> None:
    watch = start_watch("--event-format", "alb")
    event = _answer(watch, "/?tag=a&tag=b")["event"]
    assert isinstance(event, dict)
    assert event["queryStringParameters"] == {"tag": "b"}
    assert "multiValueHeaders" not in event


def test_reload_restarts_the_function_when_a_python_file_changes(
    start_watch: Callable[..., Watch], project: Path
) -> None:
    watch = start_watch("--reload")
    assert _answer(watch)["version"] == 1
    module = project / "app_module.py"
    module.write_text(module.read_text().replace("VERSION = 1", "VERSION = 2"))
    deadline = time.monotonic() + 20
    version = 1
    while version == 1 and time.monotonic() < deadline:
        version = int(str(_answer(watch)["version"]))
    assert version == 2
    assert "changed: app_module.py" in watch.output()


def test_dynamodb_embedded_creates_the_table_and_points_the_function_at_it(
    start_watch: Callable[..., Watch], project: Path
) -> None:
    (project / "table_module.py").write_text(
        textwrap.dedent(
            """
            import json, os
            import boto3

            def handler(event, context):
                client = boto3.client("dynamodb")  # endpoint and credentials from the env
                table = client.describe_table(TableName=os.environ["RATE_LIMIT_TABLE"])["Table"]
                return {"statusCode": 200, "body": json.dumps(table["KeySchema"])}
            """
        )
    )
    watch = start_watch("--dynamodb", "embedded", handler="table_module:handler")
    assert "DynamoDB table asgi-lambda-rate-limit on embedded moto" in watch.output()
    response = _get(watch, "/")
    assert response.status_code == 200, watch.output()
    assert response.json() == [{"AttributeName": "pk", "KeyType": "HASH"}]


def test_awslambdaric_runs_the_same_handler(start_watch: Callable[..., Watch]) -> None:
    pytest.importorskip("awslambdaric")
    watch = start_watch("--runtime", "awslambdaric")
    answer = _answer(watch, "/hello")
    assert answer["event"]["rawPath"] == "/hello"  # type: ignore[index]
    assert str(answer["env"]["_X_AMZN_TRACE_ID"]).startswith("Root=1-")  # type: ignore[index]


def test_sigterm_stops_watch_and_its_function_process(start_watch: Callable[..., Watch]) -> None:
    watch = start_watch()
    pid = int(str(_answer(watch)["pid"]))
    watch.process.send_signal(signal.SIGTERM)
    assert watch.process.wait(timeout=15) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_non_loopback_host_is_refused(project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _CLI, "watch", "app_module:handler", "--host", "0.0.0.0"],
        cwd=project,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "not a loopback address" in result.stderr


def test_missing_module_is_reported_at_start(project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _CLI, "watch", "no_such_module:handler"],
        cwd=project,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "no module named 'no_such_module'" in result.stderr


def test_one_log_line_per_request(start_watch: Callable[..., Watch]) -> None:
    watch = start_watch()
    _get(watch, "/logged?x=1")
    lines = [line for line in watch.output().splitlines() if "GET /logged?x=1 200" in line]
    assert len(lines) == 1
    assert "cold start" in lines[0]


def test_answer_is_json_decodable(start_watch: Callable[..., Watch]) -> None:
    watch = start_watch("--event-format", "function-url")
    event = _answer(watch, "/x")["event"]
    assert json.loads(json.dumps(event))["requestContext"]["domainName"].endswith(
        ".lambda-url.us-east-1.on.aws"
    )
