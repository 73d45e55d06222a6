"""Fuzzed Lambda events through lambda_handler(compose(app)): real REST, HTTP API, Function URL
and ALB payloads (tests.lambda_events) mutated by hypothesis: fields missing, null or of the
wrong type, invalid base64, huge and unencodable headers, mismatched multi-value fields, unknown
payload versions. The handler must always answer a well-formed Lambda response (or the
documented non-HTTP answer), never raise, and never put exception text in a body.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_lambda_mw.handler import LambdaHandler, lambda_handler
from asgi_lambda_mw.ratelimit.storage.memory import MemoryStorage
from asgi_lambda_mw.stack import compose

from .lambda_events import (
    LambdaContext,
    alb_event,
    function_url_event,
    http_api_event,
    rest_event,
)

SHAPES: dict[str, Callable[..., dict[str, Any]]] = {
    "rest": rest_event,
    "http_api": http_api_event,
    "function_url": function_url_event,
    "alb": alb_event,
    "alb_multi_value": partial(alb_event, multi_value=True),
}
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# What must never reach a client: a traceback, a source location, an exception's name.
LEAKS = ("Traceback", 'File "', ".py", "Exception", "KeyError", "TypeError", "ValueError")

Path = tuple[str | int, ...]


def _api() -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse(
            {"path": request.url.path, "bytes": len(body), "query": str(request.query_params)}
        )

    return Starlette(routes=[Route("/{rest:path}", echo, methods=["GET", "POST", "PUT"])])


@pytest.fixture(scope="module")
def handler(lambda_module_loop: asyncio.AbstractEventLoop) -> Iterator[LambdaHandler]:
    app = compose(
        _api(),
        rate_limit={"rate": "1000000/minute", "storage": MemoryStorage()},
        cors={"allow_origins": ["https://app.example"]},
        tracing={"install_log_handler": False},
    )
    lambda_app = lambda_handler(app)
    yield lambda_app
    lambda_app.shutdown()


def _base_event(shape: str) -> dict[str, Any]:
    return SHAPES[shape](
        "POST",
        "/items/42",
        query={"q": ["1", "2"], "x": "y"},
        headers={"Origin": "https://app.example", "X-Request-ID": "fuzz-1"},
        cookies=["a=1", "b=2"],
        body={"hello": "world"},
    )


def _paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every path to a value inside the event (dict keys and list indices)."""
    paths: list[Path] = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            paths += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths += _paths(item, (*prefix, index))
    return paths


def _parent(event: dict[str, Any], path: Path) -> Any:
    node: Any = event
    for step in path[:-1]:
        node = node[step]
    return node


WRONG_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.lists(st.text(max_size=5), max_size=3),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.just(""),
    st.just({}),
    st.just([]),
)
# Header text: control characters, lone surrogates (not encodable as UTF-8), non-Latin-1,
# and very long values.
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(codec="latin-1"), max_size=40),
    st.sampled_from(["\udcff", "a\udc80b", "\r\n", "\x00", "\u2028", "é", "🙂", " "]),
    st.integers(min_value=1, max_value=200_000).map(lambda n: "h" * n),
)


@st.composite
def mutated_events(draw: st.DrawFn, shape: str) -> dict[str, Any]:
    """A real event of ``shape`` with one to four mutations."""
    event = _base_event(shape)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(
            st.sampled_from(
                ["delete", "wrong_type", "header", "multi_value", "base64", "version", "body"]
            )
        )
        paths = _paths(event)
        if kind == "delete" and paths:
            path = draw(st.sampled_from(paths))
            parent = _parent(event, path)
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, list) and path[-1] < len(parent):  # type: ignore[operator]
                del parent[path[-1]]  # type: ignore[arg-type]
        elif kind == "wrong_type" and paths:
            path = draw(st.sampled_from(paths))
            _parent(event, path)[path[-1]] = draw(WRONG_VALUES)
        elif kind == "header":
            target = draw(st.sampled_from(["headers", "multiValueHeaders"]))
            name = draw(
                HOSTILE_TEXT | st.sampled_from(["Host", "Cookie", "Origin", "X-Forwarded-For"])
            )
            value = draw(HOSTILE_TEXT)
            headers = event.get(target)
            if not isinstance(headers, dict):
                headers = event[target] = {}
            headers[name] = [value] if target == "multiValueHeaders" else value
        elif kind == "multi_value":
            # headers and multiValueHeaders (or the query pairs) that disagree
            single, multi = draw(
                st.sampled_from(
                    [
                        ("headers", "multiValueHeaders"),
                        ("queryStringParameters", "multiValueQueryStringParameters"),
                    ]
                )
            )
            event[single] = draw(
                st.one_of(st.none(), st.dictionaries(HOSTILE_TEXT, HOSTILE_TEXT, max_size=3))
            )
            event[multi] = draw(
                st.one_of(
                    st.none(),
                    st.dictionaries(
                        HOSTILE_TEXT,
                        st.one_of(st.lists(HOSTILE_TEXT, max_size=3), WRONG_VALUES),
                        max_size=3,
                    ),
                )
            )
        elif kind == "base64":
            event["isBase64Encoded"] = draw(st.sampled_from([True, "true", 1, None, "yes"]))
            event["body"] = draw(
                st.sampled_from(["!!!", "abc", "a===", "====", "Zm9v\n", "\udcff", "", "Zg"])
                | st.text(max_size=30)
            )
        elif kind == "version":
            event["version"] = draw(
                st.sampled_from(["3.0", "1.0", "2.1", "", 2, 2.0, None, [], "2.0"])
            )
        else:
            event["body"] = draw(
                st.one_of(
                    WRONG_VALUES,
                    st.integers(min_value=1, max_value=1_000_000).map(lambda n: "b" * n),
                    st.text(max_size=50),
                )
            )
    return event


def _assert_well_formed(answer: Any) -> None:
    assert isinstance(answer, dict)
    if "statusCode" not in answer:
        # the documented answers to events that are not HTTP requests
        assert answer.get("ignored") is True or "warm" in answer, answer
        return
    status = answer["statusCode"]
    assert type(status) is int and 100 <= status <= 599
    assert status != 500 or json.loads(answer["body"])["error"] == "Internal Server Error"
    headers = answer.get("headers")
    multi = answer.get("multiValueHeaders")
    assert headers is not None or multi is not None
    if headers is not None:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
    if multi is not None:
        assert all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(i, str) for i in v)
            for k, v in multi.items()
        )
    assert isinstance(answer["body"], str)
    assert type(answer["isBase64Encoded"]) is bool
    cookies = answer.get("cookies")
    assert cookies is None or all(isinstance(cookie, str) for cookie in cookies)
    text = answer["body"]
    assert not any(leak in text for leak in LEAKS), text[:300]


@pytest.mark.parametrize("shape", SHAPES)
def test_every_mutated_event_gets_a_well_formed_answer(shape: str, handler: LambdaHandler) -> None:
    seen: set[int] = set()

    @FUZZ
    @given(event=mutated_events(shape))
    def check(event: dict[str, Any]) -> None:
        answer = handler(event, LambdaContext())
        _assert_well_formed(answer)
        if "statusCode" in answer:
            seen.add(answer["statusCode"])

    check()
    assert seen & {200}, seen  # the fuzzing reached the app, not only the error paths
    assert seen & {400}, seen


ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@FUZZ
@given(
    event=st.one_of(
        ANY_JSON,
        st.fixed_dictionaries(
            {"requestContext": ANY_JSON},
            optional={
                "version": ANY_JSON,
                "resource": ANY_JSON,
                "httpMethod": ANY_JSON,
                "rawPath": ANY_JSON,
                "headers": ANY_JSON,
                "body": ANY_JSON,
                "isBase64Encoded": ANY_JSON,
            },
        ),
        st.fixed_dictionaries(
            {
                "requestContext": st.fixed_dictionaries(
                    {"elb": ANY_JSON}, optional={"http": ANY_JSON}
                )
            },
            optional={"httpMethod": ANY_JSON, "path": ANY_JSON, "headers": ANY_JSON},
        ),
        st.fixed_dictionaries({"Records": st.lists(ANY_JSON, max_size=2)}),
    )
)
def test_arbitrary_json_events_get_a_well_formed_answer(handler: LambdaHandler, event: Any) -> None:
    _assert_well_formed(handler(event, LambdaContext()))


@pytest.mark.parametrize("shape", SHAPES)
def test_arbitrary_header_names_and_values_are_served_or_refused_cleanly(
    shape: str, handler: LambdaHandler
) -> None:
    @FUZZ
    @given(headers=st.dictionaries(HOSTILE_TEXT, HOSTILE_TEXT, min_size=1, max_size=5))
    def check(headers: dict[str, str]) -> None:
        event = SHAPES[shape]("GET", "/ok", headers=headers)
        answer = handler(event, LambdaContext())
        _assert_well_formed(answer)
        assert answer["statusCode"] in (200, 400), answer

    check()
