"""`asgi-lambda invoke`: one event through a handler, in process, the answer on stdout.

The handlers are the parity suite's composed app (a real Mangum stack) and small echo modules
written into a temporary directory.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asgi_lambda_mw.cli import main

APP = "tests.parity_app:handler"

ECHO_MODULE = """
import os

def handler(event, context):
    return {
        "event": event,
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
        "greeting": os.environ.get("GREETING"),
    }

def failing(event, context):
    raise KeyError("no such thing")
"""


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """invoke sets Lambda's variables in this process, as the runtime would: undo that."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "echo_fn.py").write_text(textwrap.dedent(ECHO_MODULE))
    (tmp_path / "broken_fn.py").write_text("import not_installed_anywhere\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["invoke", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _answer(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    status, out, err = _run(capsys, *args)
    assert status == 0, err
    return json.loads(out)


def test_answer_of_the_composed_app_is_printed_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    answer = _answer(capsys, APP, "--path", "/echo")
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["path"] == "/echo"


@pytest.mark.parametrize("example", ["http-api", "rest", "alb-multi-value", "function-url"])
def test_query_override_reaches_the_app_in_every_format(
    capsys: pytest.CaptureFixture[str], example: str
) -> None:
    answer = _answer(
        capsys, APP, "--example", example, "--path", "/echo", "--query", "a=1&a=2&b=caf%C3%A9"
    )
    assert json.loads(answer["body"])["query"] == [["a", "1"], ["a", "2"], ["b", "café"]]


@pytest.mark.parametrize("example", ["http-api", "rest", "alb", "function-url"])
def test_method_header_and_body_overrides_reach_the_app(
    capsys: pytest.CaptureFixture[str], example: str
) -> None:
    answer = _answer(
        capsys,
        *(APP, "--example", example, "--method", "post", "--path", "/json"),
        *("-H", "Content-Type: application/json", "--body", '{"name": "widget"}'),
    )
    assert answer["statusCode"] == 201
    assert json.loads(answer["body"]) == {"received": {"name": "widget"}}


@pytest.mark.parametrize(
    ("example", "where"),
    [
        ("http-api", ("requestContext", "http", "sourceIp")),
        ("rest", ("requestContext", "identity", "sourceIp")),
        ("alb", ("headers", "x-forwarded-for")),
    ],
)
def test_source_ip_override_sets_the_field_the_gateway_fills(
    capsys: pytest.CaptureFixture[str], project: Path, example: str, where: tuple[str, ...]
) -> None:
    answer = _answer(capsys, "echo_fn:handler", "--example", example, "--source-ip", "192.0.2.9")
    value = answer["event"]
    for key in where:
        value = value[key]
    assert value == "192.0.2.9"


def test_cookie_header_override_becomes_the_cookies_field(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    answer = _answer(capsys, "echo_fn:handler", "-H", "Cookie: a=1; b=2")
    assert answer["event"]["cookies"] == ["a=1", "b=2"]


def test_http_output_is_the_gateway_response(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, APP, "--method", "POST", "--path", "/cookies/set", "--http")
    head, _, body = out.partition("\r\n\r\n")
    lines = head.split("\r\n")
    assert status == 0
    assert lines[0] == "HTTP/1.1 200 OK"
    assert sum(line.lower().startswith("set-cookie: ") for line in lines) == 2
    assert json.loads(body) == {"set": ["flavour", "session"]}


def test_data_file_and_inline_data_are_sent_as_is(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    (project / "event.json").write_text('{"custom": "event", "n": 1}')
    from_file = _answer(capsys, "echo_fn:handler", "--data-file", "event.json")
    inline = _answer(capsys, "echo_fn:handler", "--data", '{"custom": "event", "n": 1}')
    assert from_file["event"] == inline["event"] == {"custom": "event", "n": 1}


def test_context_and_environment_look_like_lambda(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    (project / "local.env").write_text("GREETING=hi\n")
    answer = _answer(
        capsys,
        *("echo_fn:handler", "--function-name", "orders", "--memory", "1024"),
        *("--timeout", "5", "--env-file", "local.env"),
    )
    assert answer["function_name"] == "orders"
    assert answer["memory"] == "1024"
    assert 0 < answer["remaining_ms"] <= 5000
    assert answer["trace"].startswith("Root=1-")
    assert answer["greeting"] == "hi"


def test_handler_exception_exits_1_with_one_line(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    status, out, err = _run(capsys, "echo_fn:failing")
    assert status == 1
    assert out == ""
    assert err.strip().splitlines() == [
        "asgi-lambda: error: the handler raised KeyError: 'no such thing'"
    ]


def test_verbose_shows_the_traceback(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    status, _, err = _run(capsys, "echo_fn:failing", "--verbose")
    assert status == 1
    assert "Traceback (most recent call last)" in err


def test_module_that_cannot_be_imported_exits_2(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    status, _, err = _run(capsys, "broken_fn:handler")
    assert status == 2
    assert "cannot import module 'broken_fn'" in err
    assert "not_installed_anywhere" in err
    assert "Traceback" not in err


def test_missing_handler_name_exits_2(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    status, _, err = _run(capsys, "echo_fn:nope")
    assert status == 2
    assert "has no attribute 'nope'" in err


def test_unknown_example_names_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _run(capsys, APP, "--example", "nope")
    assert status == 1
    assert "no sample event named 'nope'" in err and "http-api-jwt" in err


def test_inline_data_that_is_not_json_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _run(capsys, APP, "--data", "{not json")
    assert status == 1
    assert "--data is not JSON" in err


def test_overrides_on_a_non_http_event_are_refused(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    status, _, err = _run(capsys, "echo_fn:handler", "--data", '{"n": 1}', "--path", "/x")
    assert status == 1
    assert "need an HTTP event" in err
