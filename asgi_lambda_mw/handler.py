"""The AWS Lambda entry point: ``lambda_handler(app)`` turns an ASGI app into a Lambda handler.

It sits outside the whole onion. Mangum reads API Gateway (REST and HTTP API), ALB and Function URL
events; around it this module runs the app's lifespan once per execution environment, sets the
stage as ``root_path``, the real client address behind ALB and the cold-start flag, answers
non-HTTP events (warm-up pings, schedules) without the app and malformed events with a JSON 400.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any, cast
from urllib.parse import unquote

from mangum.adapter import DEFAULT_TEXT_MIME_TYPES
from mangum.handlers import ALB, APIGateway, HTTPGateway, LambdaAtEdge
from mangum.types import LambdaConfig
from mangum.types import LambdaHandler as _MangumHandler
from mangum.types import Response as _MangumResponse

from ._http_cycle import HTTPCycle
from ._lifespan import LifespanMode, LifespanStartupFailed, OnceLifespan
from ._scope import COLD_START_KEY
from .client import ClientIPResolver
from .exceptions import ConfigurationError
from .types import ASGIApp, LambdaContext, Scope

__all__ = ["LambdaHandler", "lambda_handler"]

logger = logging.getLogger("asgi_lambda_mw.handler")

EventCallback = Callable[[Any, LambdaContext], Any]
"""``on_event(event, context)``: answers Lambda events that are not HTTP requests."""

_WARMUP_SOURCES = frozenset({"serverless-plugin-warmup"})
# Mangum's list plus structured-syntax suffixes, so an application/problem+json 429 stays text:
# a REST API passes a base64 body through undecoded unless binary media types are configured.
_TEXT_MIME_TYPES = (*DEFAULT_TEXT_MIME_TYPES, "+json", "+xml")
_JSON_SEPARATORS = (",", ":")


class _CachedScopeALB(ALB):
    """Mangum's ALB handler, but the scope is built once (its response step rebuilds it)."""

    @cached_property
    def scope(self) -> Scope:
        result: Scope = super().scope
        return result


class _CachedScopeHTTPGateway(HTTPGateway):
    """Mangum's HTTP API / Function URL handler, with the scope built once."""

    @cached_property
    def scope(self) -> Scope:
        result: Scope = super().scope
        return result


class _MalformedEvent(Exception):
    """The event looks like an HTTP request but cannot be read as one."""


class LambdaHandler:
    """The callable that AWS Lambda invokes: ``handler(event, context)``.

    Create it once, at import time (module scope), so that its lifespan state and cold-start
    flag live as long as the execution environment. ``shutdown()`` runs the app's lifespan
    shutdown (Lambda gives no reliable hook for it; tests and local runners call it).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        lifespan: LifespanMode = "auto",
        api_gateway_base_path: str = "/",
        alb_trusted_hops: int = 0,
        on_event: EventCallback | None = None,
        text_mime_types: Sequence[str] | None = None,
        exclude_headers: Sequence[str] | None = None,
    ) -> None:
        if lifespan not in ("auto", "on", "off"):
            raise ConfigurationError(f"lifespan must be 'auto', 'on' or 'off', not {lifespan!r}")
        if isinstance(alb_trusted_hops, bool) or not isinstance(alb_trusted_hops, int):
            raise ConfigurationError(
                f"alb_trusted_hops must be a whole number of 0 or more, not {alb_trusted_hops!r}"
            )
        if alb_trusted_hops < 0:
            raise ConfigurationError(
                f"alb_trusted_hops must be a whole number of 0 or more, not {alb_trusted_hops}"
            )
        if not isinstance(api_gateway_base_path, str):
            raise ConfigurationError(
                f"api_gateway_base_path must be a string, not {api_gateway_base_path!r}"
            )
        # Mangum's types want a Protocol class; any ASGI callable is fine at run time.
        self._app: Any = cast(Any, app)
        # Mangum's handlers read events and write responses; the base path is handled here,
        # because Mangum strips it from the path without making it the root_path. The Mangum
        # adapter itself is not built: it would create an event loop at import, and
        # _current_loop() makes the one loop per process on the first invocation instead.
        self._config = LambdaConfig(
            api_gateway_base_path="/",
            text_mime_types=list(_TEXT_MIME_TYPES if text_mime_types is None else text_mime_types),
            exclude_headers=[name.lower() for name in exclude_headers or ()],
        )
        self._base_path = _normalise_base_path(api_gateway_base_path)
        self._alb_client_ip = ClientIPResolver(trusted_hops=alb_trusted_hops)
        self._on_event = on_event
        self._lifespan = OnceLifespan(app, mode=lifespan)
        self._pass_state = lifespan != "off"
        self._cold_start = True

    def __call__(self, event: Any, context: LambdaContext) -> Any:
        """Answer one invocation: an HTTP response dict, or the answer to a non-HTTP event."""
        cold_start = self._cold_start
        self._cold_start = False
        try:
            handler_cls = _http_handler_class(event)
        except _MalformedEvent as exc:
            return self._malformed(event, context, exc)
        if handler_cls is None:
            return self._non_http(event, context, cold_start)
        try:
            handler = handler_cls(event, context, self._config)
            scope = handler.scope
            body = handler.body if handler_cls is LambdaAtEdge else _request_body(event)
            if not isinstance(scope["method"], str) or not scope["method"]:
                raise _MalformedEvent("the HTTP method is not a string")
            if not isinstance(scope["path"], str):
                raise _MalformedEvent("the path is not a string")
        except Exception as exc:
            return self._malformed(event, context, exc)

        lifespan = self._lifespan
        loop = _current_loop()
        if not lifespan.ready(loop):
            try:
                lifespan.start(loop)
            except LifespanStartupFailed:
                logger.exception("the app's lifespan startup failed; answering 500")
                return handler(_json_response(500, _startup_failed_body(context)))

        if handler_cls is _CachedScopeALB:
            # Mangum puts the raw X-Forwarded-For string there, which is not an address.
            ip = self._alb_client_ip(scope)
            scope["client"] = (ip, 0) if ip else None
        elif handler_cls is not LambdaAtEdge:
            self._set_root_path(scope, event, handler_cls)
            if handler_cls is APIGateway:
                _join_repeated_cookie_headers(scope, event)
        if self._pass_state:
            scope["state"] = lifespan.state.copy()
        scope[COLD_START_KEY] = cold_start

        response = HTTPCycle(body, loop).run(self._app, scope)
        if response is None:  # logged by the cycle
            response = _json_response(500, _internal_error_body(context))
        try:
            result: dict[str, Any] = handler(response)
        except Exception:
            logger.exception("the response could not be turned into a Lambda answer")
            return _error_answer(event, 500, _internal_error_body(context))
        return result

    def shutdown(self) -> None:
        """Run the app's lifespan shutdown if it started; a later invocation starts it again."""
        self._lifespan.shutdown()

    def _set_root_path(self, scope: Scope, event: dict[str, Any], handler_cls: type) -> None:
        path: str = scope["path"]
        base = self._base_path
        if base and (path == base or path.startswith(base + "/")):
            scope["root_path"] = base
            if path == base:
                scope["path"] = base + "/"
            return
        stage = event["requestContext"].get("stage")
        if not isinstance(stage, str) or not stage or stage == "$default":
            return
        prefix = "/" + stage
        if handler_cls is APIGateway:
            # Through the execute-api host the event's path lacks the stage, which only
            # requestContext.path carries; through a custom domain neither has it.
            context_path = event["requestContext"].get("path")
            if isinstance(context_path, str) and (
                unquote(context_path) == prefix + path or (path == "/" and context_path == prefix)
            ):
                scope["root_path"] = prefix
                scope["path"] = prefix + path
        elif path == prefix or path.startswith(prefix + "/"):
            # HTTP API: a named stage stays at the front of rawPath and requestContext.http.path.
            scope["root_path"] = prefix
            if path == prefix:
                scope["path"] = prefix + "/"

    def _non_http(self, event: Any, context: LambdaContext, cold_start: bool) -> Any:
        if isinstance(event, dict) and (
            event.get("source") in _WARMUP_SOURCES or event.get("warmer") is True
        ):
            logger.debug("warm-up ping answered (cold start: %s)", cold_start)
            return self._warm_up(cold_start)
        kind = _non_http_kind(event)
        if self._on_event is not None:
            return self._on_event(event, context)
        logger.info("ignored a %s Lambda event: no on_event callback is configured", kind)
        return {"ignored": True, "event": kind}

    def _warm_up(self, cold_start: bool) -> dict[str, Any]:
        # A warm-up exists to make the next request fast, so it also runs the lifespan startup.
        loop = _current_loop()
        if not self._lifespan.ready(loop):
            try:
                self._lifespan.start(loop)
            except LifespanStartupFailed:
                logger.exception("the app's lifespan startup failed during a warm-up ping")
                return {"warm": False, "cold_start": cold_start, "error": "startup failed"}
        return {"warm": True, "cold_start": cold_start}

    def _malformed(self, event: Any, context: LambdaContext, exc: Exception) -> dict[str, Any]:
        keys = sorted(str(key) for key in event) if isinstance(event, dict) else []
        logger.warning(
            "malformed Lambda HTTP event answered with 400 (%s: %s)",
            type(exc).__name__,
            exc,
            extra={"event_keys": keys},
        )
        body = {
            "error": "Bad Request",
            "message": "The Lambda event could not be read as an HTTP request.",
            "request_id": getattr(context, "aws_request_id", None),
        }
        return _error_answer(event, 400, body)


def lambda_handler(
    app: ASGIApp,
    *,
    lifespan: LifespanMode = "auto",
    api_gateway_base_path: str = "/",
    alb_trusted_hops: int = 0,
    on_event: EventCallback | None = None,
    text_mime_types: Sequence[str] | None = None,
    exclude_headers: Sequence[str] | None = None,
) -> LambdaHandler:
    """Make the Lambda handler for ``app``: ``handler = lambda_handler(compose(app))``.

    - ``lifespan`` ("auto"): "auto" runs the app's lifespan startup once per execution environment
      if the app supports it; "on" requires it; "off" never runs it. Its state is passed as
      ``scope["state"]`` to every request. A failed startup answers every HTTP request with a JSON
      500 (logged) and is tried again on the next invocation.
    - ``api_gateway_base_path`` ("/"): a custom-domain base path mapping (e.g. "/v1"), removed
      from the routing path and made the ASGI ``root_path``. The REST API or HTTP API stage, when it
      is in the URL, becomes the ``root_path`` on its own.
    - ``alb_trusted_hops`` (0): proxies in front of an ALB (e.g. 1 for CloudFront) whose
      ``X-Forwarded-For`` entries are skipped to find the client address.
    - ``on_event`` (None): called as ``on_event(event, context)`` for events that are neither HTTP
      requests nor warm-up pings (schedules, queues, anything else); its return value is the
      invocation's result, and its exceptions propagate so Lambda can retry. Without it such
      events are answered ``{"ignored": True, "event": "scheduled" | "unrecognised"}``.
    - ``text_mime_types`` (None: Mangum's list plus "+json" and "+xml"): response content types,
      matched as substrings, whose bodies are sent as text rather than base64.
    - ``exclude_headers`` (None): response headers to drop, passed to Mangum.

    Warm-up pings (``{"source": "serverless-plugin-warmup"}`` or ``{"warmer": true}``) run the
    lifespan startup and are answered ``{"warm": True, "cold_start": bool}``; they never reach the
    app. An event that looks like an HTTP request but cannot be read is answered with a JSON 400.
    """
    return LambdaHandler(
        app,
        lifespan=lifespan,
        api_gateway_base_path=api_gateway_base_path,
        alb_trusted_hops=alb_trusted_hops,
        on_event=on_event,
        text_mime_types=text_mime_types,
        exclude_headers=exclude_headers,
    )


def _current_loop() -> asyncio.AbstractEventLoop:
    """The thread's event loop, which Mangum's HTTP cycle runs on; a new one if there is none
    or it was closed (on Lambda, the loop Mangum made at import lives as long as the process)."""
    try:
        loop = asyncio.get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    return loop


def _http_handler_class(event: Any) -> type[_MangumHandler] | None:
    """Which Mangum handler reads this event; None for a non-HTTP event (Mangum's order)."""
    if not isinstance(event, dict):
        return None
    context = event.get("requestContext")
    if context is not None:
        if not isinstance(context, dict):
            raise _MalformedEvent("requestContext is not an object")
        if "elb" in context:
            return _CachedScopeALB
        if "version" in event:
            return _CachedScopeHTTPGateway
        if "resource" in event:
            return APIGateway
        raise _MalformedEvent("requestContext without resource, version or elb")
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        return LambdaAtEdge if "cf" in records[0] else None
    if "httpMethod" in event or "rawPath" in event:
        raise _MalformedEvent("an HTTP request without requestContext")
    return None


def _request_body(event: dict[str, Any]) -> bytes:
    # Mangum's decoding drops characters outside the base64 alphabet; a body that is not valid
    # base64 is a malformed event, not an empty or truncated body.
    body = event.get("body") or b""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body, validate=True)
    return body if isinstance(body, bytes) else body.encode()


def _non_http_kind(event: Any) -> str:
    if (
        isinstance(event, dict)
        and event.get("source") == "aws.events"
        and event.get("detail-type") == "Scheduled Event"
    ):
        return "scheduled"
    return "unrecognised"


def _normalise_base_path(base_path: str) -> str:
    stripped = base_path.strip("/")
    return f"/{stripped}" if stripped else ""


def _join_repeated_cookie_headers(scope: Scope, event: dict[str, Any]) -> None:
    # Mangum joins repeated request headers with ", ", which splits cookies wrongly.
    multi = event.get("multiValueHeaders")
    if not multi:
        return
    for name, values in multi.items():
        if name.lower() == "cookie" and isinstance(values, list) and len(values) > 1:
            joined = "; ".join(values).encode()
            scope["headers"] = [
                [key, joined if key == b"cookie" else value] for key, value in scope["headers"]
            ]
            return


def _json_response(status: int, payload: dict[str, Any]) -> _MangumResponse:
    body = json.dumps(payload, separators=_JSON_SEPARATORS).encode()
    return {"status": status, "headers": [[b"content-type", b"application/json"]], "body": body}


def _error_answer(event: Any, status: int, payload: dict[str, Any]) -> dict[str, Any]:
    """A Lambda HTTP response built without Mangum, for events it cannot read."""
    answer: dict[str, Any] = {
        "statusCode": status,
        "body": json.dumps(payload, separators=_JSON_SEPARATORS),
        "isBase64Encoded": False,
    }
    if isinstance(event, dict) and isinstance(event.get("multiValueHeaders"), dict):
        # ALB with multi-value headers on reads only this key; REST APIs read both.
        answer["multiValueHeaders"] = {"content-type": ["application/json"]}
    else:
        answer["headers"] = {"content-type": "application/json"}
    return answer


def _startup_failed_body(context: LambdaContext) -> dict[str, Any]:
    return {
        "error": "Internal Server Error",
        "message": "The application failed to start.",
        "request_id": getattr(context, "aws_request_id", None),
    }


def _internal_error_body(context: LambdaContext) -> dict[str, Any]:
    return {
        "error": "Internal Server Error",
        "request_id": getattr(context, "aws_request_id", None),
    }
