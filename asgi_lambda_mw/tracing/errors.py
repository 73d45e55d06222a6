"""The safety net: an unhandled exception becomes a JSON 500 with the request id, logged once.

ServerErrorMiddleware sits inside CORS (Tracing -> CORS -> ServerError -> RateLimit -> app) so
the 500 gets CORS headers; TracingMiddleware runs the same net when used on its own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..types import ASGIApp, Message, Receive, Scope, Send
from ._context import current_request_id, current_trace_context
from ._logging import printable

__all__ = ["ServerErrorMiddleware", "json_server_error_handler"]

_ERROR_LOGGER = "asgi_lambda_mw.errors"

# The exception a safety net has logged for this request, so no other net logs it again.
_HANDLED_KEY = "asgi_lambda_mw.server_error"

_CONTENT_TYPE = b"application/json"


def error_body(request_id: str | None) -> bytes:
    """The 500 body: no exception text, no traceback, only what a caller can quote to support."""
    return json.dumps(
        {"error": "Internal Server Error", "request_id": request_id}, separators=(",", ":")
    ).encode()


async def json_server_error_handler(request: Request, exc: Exception) -> Response:
    """A Starlette/FastAPI exception handler that answers with the same JSON 500 as the
    safety net: ``app.add_exception_handler(Exception, json_server_error_handler)``.

    Starlette's own ServerErrorMiddleware sends this response and re-raises the exception; the
    outer safety net then logs it, once.
    """
    return Response(
        error_body(current_request_id()), status_code=500, media_type="application/json"
    )


StartHook = Callable[[Message], None]
"""Called with each ``http.response.start`` message just before it goes out (may change it)."""


class _ResponseTracker:
    """Per-request wrapper of ``send`` that knows whether anything reached the client.

    When ``hold`` is set the response start and body chunks are kept back until the body is
    complete, so a failure half-way through a streamed body can still become a clean 500. That
    is how Mangum answers anyway (it returns the whole response to Lambda at the end).
    ``on_start`` lets TracingMiddleware add its headers here rather than through a second
    wrapper of ``send``, which would cost another coroutine per message.
    """

    __slots__ = ("_held", "_on_start", "_send", "complete", "hold", "started")

    def __init__(self, send: Send, hold: bool, on_start: StartHook | None = None) -> None:
        self._send = send
        self._on_start = on_start
        self.hold = hold
        self.started = False  # a response start went out to the outer layers
        self.complete = False
        self._held: list[Message] = []

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self.hold and (self._held or kind == "http.response.start"):
            if kind == "http.response.body" and not message.get("more_body", False):
                await self._flush_held(message)
                return
            if kind in ("http.response.start", "http.response.body"):
                self._held.append(message)
                return
            await self._flush_held(None)  # an extension message: stop holding
        if kind == "http.response.start":
            self.started = True
            if self._on_start is not None:
                self._on_start(message)
        elif kind == "http.response.body" and not message.get("more_body", False):
            self.complete = True
        await self._send(message)

    async def _flush_held(self, last: Message | None) -> None:
        held, self._held, self.hold = self._held, [], False
        start, chunks = held[0], held[1:]
        self.started = True
        if self._on_start is not None:
            self._on_start(start)
        await self._send(start)
        if last is None:
            for chunk in chunks:
                await self._send(chunk)
            return
        if chunks:
            body = b"".join([*(chunk.get("body", b"") for chunk in chunks), last.get("body", b"")])
            last = {"type": "http.response.body", "body": body, "more_body": False}
        self.complete = True
        await self._send(last)

    async def release(self) -> None:
        """The app returned without finishing its body: pass on what it sent, as is."""
        if self._held:
            await self._flush_held(None)


class SafetyNet:
    """The logic shared by ServerErrorMiddleware and TracingMiddleware's own net."""

    __slots__ = ("_hold", "_logger")

    def __init__(self, *, logger: logging.Logger | None, hold_responses: bool | None) -> None:
        self._logger = logger if logger is not None else logging.getLogger(_ERROR_LOGGER)
        self._hold = hold_responses

    async def run(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        on_start: StartHook | None = None,
    ) -> None:
        """Run ``app``; ``on_start`` (default None) sees every response start that goes out to
        ``send``, the JSON 500 included."""
        hold = self._hold if self._hold is not None else "aws.event" in scope
        tracker = _ResponseTracker(send, hold, on_start)
        try:
            await app(scope, receive, tracker.send)
        except Exception as exc:
            self._log(scope, exc, started=tracker.started)
            if not tracker.started:
                await self._send_500(send, on_start)
            # Otherwise part of the response is out: the server closes the connection, which
            # tells the client more truthfully than a 500 status could now.
            return
        await tracker.release()
        if not tracker.started:
            # uvicorn would answer 500 itself, but Mangum fails the invocation instead.
            self._logger.error(
                "The app returned without a response to %s %s",
                scope.get("method"),
                printable(str(scope.get("path"))),
                extra=self._fields(scope, started=False),
            )
            await self._send_500(send, on_start)

    def _log(self, scope: Scope, exc: Exception, *, started: bool) -> None:
        if scope.get(_HANDLED_KEY) is exc:
            return
        scope[_HANDLED_KEY] = exc
        self._logger.error(
            "Unhandled exception in %s %s",
            scope.get("method"),
            printable(str(scope.get("path"))),
            exc_info=exc,
            extra=self._fields(scope, started=started),
        )

    @staticmethod
    def _fields(scope: Scope, *, started: bool) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "method": scope.get("method"),
            "path": scope.get("path"),
            "response_started": started,
        }
        context = current_trace_context()
        if context is not None:  # on the record itself, for handlers that format later
            fields["request_id"] = context.request_id
            fields["xray_trace_id"] = context.xray_trace_id
            fields["trace_id"] = context.trace_id
        return fields

    async def _send_500(self, send: Send, on_start: StartHook | None) -> None:
        body = error_body(current_request_id())
        headers = [(b"content-type", _CONTENT_TYPE), (b"content-length", str(len(body)).encode())]
        start: Message = {"type": "http.response.start", "status": 500, "headers": headers}
        try:
            if on_start is not None:
                on_start(start)
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})
        except Exception:  # the client went away, or an outer layer broke: nothing to answer
            self._logger.debug("Could not send the 500 response", exc_info=True)


class ServerErrorMiddleware:
    """Turns an exception raised before the response started into a JSON 500
    (``{"error": "Internal Server Error", "request_id": ...}``, no exception text) and logs
    it once with its traceback on ``asgi_lambda_mw.errors``; one raised after the response
    started is logged once and swallowed, never crashing the server or the Lambda handler.
    An app that returns without sending any response gets the same 500 (and a log line).

    ``logger`` (default None: ``logging.getLogger("asgi_lambda_mw.errors")``).
    ``hold_responses`` (default None: only under Mangum, detected by ``scope["aws.event"]``):
    keep a streamed response back until its body is complete, so a failure mid-stream still
    becomes a 500 rather than a truncated success. Mangum buffers every response anyway.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        logger: logging.Logger | None = None,
        hold_responses: bool | None = None,
    ) -> None:
        self.app = app
        self._net = SafetyNet(logger=logger, hold_responses=hold_responses)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self._net.run(self.app, scope, receive, send)
