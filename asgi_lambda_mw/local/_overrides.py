"""`asgi-lambda invoke` overrides (--method, --path, --query, -H, --body, --source-ip), applied to
an event in whichever HTTP payload format it is, so every field a handler reads stays consistent.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

from ._gateway import EventFormat

__all__ = ["RequestOverrides", "apply_overrides"]


@dataclass(frozen=True)
class RequestOverrides:
    """What to change in the event; None (or empty) leaves a part as it is."""

    method: str | None = None
    path: str | None = None
    query: str | None = None
    headers: Sequence[tuple[str, str]] = ()
    body: str | None = None
    source_ip: str | None = None

    def __bool__(self) -> bool:
        return any(
            value not in (None, ())
            for value in (self.method, self.path, self.query, tuple(self.headers), self.body)
        ) or (self.source_ip is not None)


def apply_overrides(
    event: dict[str, Any], event_format: EventFormat, overrides: RequestOverrides
) -> dict[str, Any]:
    """A copy of ``event`` with ``overrides`` applied the way the gateway would have set them."""
    result = copy.deepcopy(event)
    if event_format in ("http-api", "function-url"):
        _v2(result, overrides)
    elif event_format == "rest":
        _rest(result, overrides)
    else:
        _alb(result, overrides, multi_value=event_format == "alb-multi-value")
    return result


def _v2(event: dict[str, Any], o: RequestOverrides) -> None:
    http = event.setdefault("requestContext", {}).setdefault("http", {})
    headers: dict[str, str] = event.setdefault("headers", {})
    if o.method:
        http["method"] = o.method.upper()
    if o.path is not None:
        event["rawPath"] = http["path"] = o.path
    if o.query is not None:
        event["rawQueryString"] = o.query
        query: dict[str, str] = {}
        for key, value in parse_qsl(o.query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        if query:
            event["queryStringParameters"] = query
        else:
            event.pop("queryStringParameters", None)
    for name, value in o.headers:
        if name.lower() == "cookie":
            event["cookies"] = [part.strip() for part in value.split(";") if part.strip()]
        else:
            headers[name.lower()] = value
            if name.lower() == "user-agent":
                http["userAgent"] = value
    if o.body is not None:
        _set_body(event, headers, o.body, lower=True)
    if o.source_ip:
        http["sourceIp"] = o.source_ip
        if "x-forwarded-for" in headers:
            headers["x-forwarded-for"] = o.source_ip


def _rest(event: dict[str, Any], o: RequestOverrides) -> None:
    context = event.setdefault("requestContext", {})
    if o.method:
        event["httpMethod"] = context["httpMethod"] = o.method.upper()
    if o.path is not None:
        event["path"] = o.path
        old_path = str(context.get("path", ""))
        stage = f"/{context.get('stage', '')}"
        # Keep the stage prefix if the example had one (a request through the execute-api host).
        context["path"] = stage + o.path if old_path.startswith(stage + "/") else o.path
        if "{proxy+}" in str(event.get("resource", "")):
            event["pathParameters"] = {"proxy": unquote(o.path.lstrip("/"))}
    if o.query is not None:
        multi: dict[str, list[str]] = {}
        for key, value in parse_qsl(o.query, keep_blank_values=True):
            multi.setdefault(key, []).append(value)
        event["multiValueQueryStringParameters"] = multi or None
        event["queryStringParameters"] = {k: v[-1] for k, v in multi.items()} or None
    for name, value in o.headers:
        _set_header(event, name, value, lower=False)
    if o.body is not None:
        _set_body(event, event.get("headers") or {}, o.body, lower=False)
    if o.source_ip:
        context.setdefault("identity", {})["sourceIp"] = o.source_ip
        if _find(event.get("headers") or {}, "x-forwarded-for") is not None:
            _set_header(event, "X-Forwarded-For", o.source_ip, lower=False)


def _alb(event: dict[str, Any], o: RequestOverrides, *, multi_value: bool) -> None:
    if o.method:
        event["httpMethod"] = o.method.upper()
    if o.path is not None:
        event["path"] = o.path
    if o.query is not None:
        pairs = [
            (key, value)
            for key, _, value in (part.partition("=") for part in o.query.split("&"))
            if key or value
        ]
        if multi_value:
            multi: dict[str, list[str]] = {}
            for key, value in pairs:
                multi.setdefault(key, []).append(value)
            event["multiValueQueryStringParameters"] = multi
        else:
            event["queryStringParameters"] = dict(pairs)
    for name, value in o.headers:
        _set_header(event, name.lower(), value, lower=True)
    if o.body is not None:
        event["body"] = o.body
        event["isBase64Encoded"] = False
        _set_header(event, "content-length", str(len(o.body.encode())), lower=True, only_if=True)
    if o.source_ip:
        _set_header(event, "x-forwarded-for", o.source_ip, lower=True)


def _find(headers: dict[str, Any], name: str) -> str | None:
    return next((key for key in headers if key.lower() == name.lower()), None)


def _set_header(
    event: dict[str, Any], name: str, value: str, *, lower: bool, only_if: bool = False
) -> None:
    """Set ``name`` in headers and multiValueHeaders, whichever the event has.

    ``only_if``: change it only where it is already present (content-length).
    """
    written = False
    for field, new in (("headers", value), ("multiValueHeaders", [value])):
        headers = event.get(field)
        if not isinstance(headers, dict):
            continue
        key = _find(headers, name)
        if key is None and only_if:
            continue
        if key is not None:
            del headers[key]
        headers[name.lower() if lower else (key or name)] = new
        written = True
    if not written and not only_if:  # a REST event with null headers
        event["headers"] = {name: value}
        if "multiValueHeaders" in event:
            event["multiValueHeaders"] = {name: [value]}


def _set_body(event: dict[str, Any], headers: dict[str, str], body: str, *, lower: bool) -> None:
    event["body"] = body
    event["isBase64Encoded"] = False
    length = str(len(body.encode()))
    if lower:
        key = _find(headers, "content-length")
        if key is not None:
            headers[key] = length
    else:
        _set_header(event, "Content-Length", length, lower=False, only_if=True)
