"""`asgi-lambda events` and the sample events it ships: listed, shown, realistic, safe, readable
by the stack, and inside the wheel.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from asgi_lambda_mw.cli import main
from asgi_lambda_mw.events import SAMPLE_EVENTS, SampleEvent, load
from asgi_lambda_mw.local._gateway import detect_format
from tests import parity_app
from tests.lambda_events import LambdaContext

REPO = Path(__file__).resolve().parent.parent
_DOCUMENTATION_NETWORKS = [
    ipaddress.ip_network(network)
    for network in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
]
_IPV4 = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])([0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{0,4}){2,7})(?![\w:])")
_EVENT_IDS = [event.name for event in SAMPLE_EVENTS]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["events", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_list_names_every_event_with_its_format(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "list")
    rows = [line.split()[:2] for line in out.splitlines()]
    assert status == 0
    assert rows == [[event.name, event.event_format] for event in SAMPLE_EVENTS]


def test_list_with_urls_shows_the_aws_page_of_each(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, "list", "--urls")
    for event in SAMPLE_EVENTS:
        assert event.doc_url in out
        assert event.doc_url.startswith("https://docs.aws.amazon.com/")


def test_show_prints_the_event_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "show", "rest-multi-value")
    assert status == 0
    assert json.loads(out)["multiValueQueryStringParameters"]["tag"] == ["a", "b"]


def test_show_of_an_unknown_event_fails_and_names_the_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, _, err = _run(capsys, "show", "nope")
    assert status == 1
    assert "no sample event named 'nope'" in err and "function-url" in err


def test_catalogue_covers_what_the_docs_describe() -> None:
    names = {event.name for event in SAMPLE_EVENTS}
    assert {"rest", "rest-authorizer", "rest-multi-value"} <= names
    assert {"http-api", "http-api-jwt", "http-api-cookies", "http-api-binary"} <= names
    assert {"alb", "alb-multi-value", "function-url"} <= names


@pytest.mark.parametrize("event", SAMPLE_EVENTS, ids=_EVENT_IDS)
def test_event_is_in_the_payload_format_it_claims(event: SampleEvent) -> None:
    assert detect_format(event.load()) == event.event_format


@pytest.mark.parametrize("event", SAMPLE_EVENTS, ids=_EVENT_IDS)
def test_event_holds_only_documentation_addresses(event: SampleEvent) -> None:
    text = event.text()
    addresses = [match for match in _IPV4.findall(text)]
    addresses += [match for match in _IPV6.findall(text) if "::" in match]
    assert addresses, "each event names its caller's address"
    for address in addresses:
        ip = ipaddress.ip_address(address)
        assert any(ip in network for network in _DOCUMENTATION_NETWORKS), address


@pytest.mark.parametrize("event", SAMPLE_EVENTS, ids=_EVENT_IDS)
def test_event_is_read_by_the_composed_stack_as_an_http_request(event: SampleEvent) -> None:
    answer: dict[str, Any] = parity_app.handler(event.load(), LambdaContext())
    # Any answer from the app (a 404 for a path it lacks is fine), never the handler's 400
    # for an event it could not read, nor a crash.
    assert answer["statusCode"] in {200, 201, 404, 405}, answer


def test_binary_event_body_decodes_to_a_png() -> None:
    event = load("http-api-binary")
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]).startswith(b"\x89PNG\r\n\x1a\n")


def test_sample_events_are_in_the_wheel(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")  # in the dev extra; builds offline with it
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("--wheel-dir", str(tmp_path), str(REPO)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for event in SAMPLE_EVENTS:
        assert f"asgi_lambda_mw/events/{event.filename}" in names
