"""One HTTP request through the app under Lambda: the request body in, the whole response out.

``lambda_handler`` runs this in place of Mangum's HTTPCycle, to the same effect without its
queue, its body buffer and its per-request log line: a tenth of a bare invocation's instructions.
"""

from __future__ import annotations

import asyncio
import logging

from mangum.types import Response

from .types import ASGIApp, Message, Scope

__all__ = ["HTTPCycle"]

logger = logging.getLogger("asgi_lambda_mw.handler")


class HTTPCycle:
    """The ``receive`` and ``send`` of one request. ``receive`` gives the request once, then
    waits until the response is complete and says the client disconnected, as Mangum's does."""

    __slots__ = (
        "_body",
        "_chunks",
        "_complete",
        "_disconnected",
        "_loop",
        "_request_read",
        "_start",
    )

    def __init__(self, body: bytes, loop: asyncio.AbstractEventLoop) -> None:
        self._body = body
        self._loop = loop
        self._request_read = False
        self._start: Message | None = None
        self._chunks: list[bytes] = []
        self._complete = False
        self._disconnected: asyncio.Future[None] | None = None  # made only if awaited

    def run(self, app: ASGIApp, scope: Scope) -> Response | None:
        """Run ``app`` on the loop until it returns; the response, or None (logged) when the
        app failed or returned before completing one."""
        self._loop.run_until_complete(self._call(app, scope))
        if self._start is None or not self._complete:
            return None
        return {
            "status": self._start["status"],
            "headers": self._start.get("headers", []),
            "body": b"".join(self._chunks),
        }

    async def _call(self, app: ASGIApp, scope: Scope) -> None:
        try:
            await app(scope, self.receive, self.send)
        except (Exception, asyncio.CancelledError):
            when = "after" if self._complete else "before"
            logger.exception("the app raised %s its response was complete", when)
            return
        if not self._complete:
            what = "an incomplete response" if self._start else "no response"
            logger.error("the app returned %s; answering 500", what)

    async def receive(self) -> Message:
        if not self._request_read:
            self._request_read = True
            return {"type": "http.request", "body": self._body, "more_body": False}
        if not self._complete:
            if self._disconnected is None:
                self._disconnected = self._loop.create_future()
            await self._disconnected
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self._start is None:
            if kind != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {kind!r}")
            self._start = message
        elif kind == "http.response.body" and not self._complete:
            chunk = message.get("body", b"")
            if chunk:
                self._chunks.append(chunk)
            if not message.get("more_body", False):
                self._complete = True
                if self._disconnected is not None:
                    self._disconnected.set_result(None)
        else:
            state = "is complete" if self._complete else "has started"
            raise RuntimeError(f"unexpected {kind!r} message: the response {state}")
