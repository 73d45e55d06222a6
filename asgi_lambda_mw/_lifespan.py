"""The ASGI lifespan protocol driven once per Lambda execution environment.

lambda_handler starts the app's lifespan on the first invocation, on Mangum's event loop, and keeps
it suspended between invocations, so startup runs once and its state reaches every request.
"""

from __future__ import annotations

import asyncio
import atexit
import enum
import logging
from typing import Any, Literal

from .types import ASGIApp, Message

__all__ = ["LifespanMode", "LifespanStartupFailed", "OnceLifespan"]

LifespanMode = Literal["auto", "on", "off"]

logger = logging.getLogger("asgi_lambda_mw.handler")


class LifespanStartupFailed(Exception):
    """The app's lifespan startup failed (or, with lifespan="on", the app does not support it)."""


class _Outcome(enum.Enum):
    STARTED = enum.auto()
    FAILED = enum.auto()
    UNSUPPORTED = enum.auto()


class OnceLifespan:
    """Runs ``lifespan.startup`` once, keeps the app's lifespan task parked until ``shutdown()``.

    With mode "auto", an app that raises or sends a message before it has received
    ``lifespan.startup``, or returns without answering it, is taken to have no lifespan support (as
    uvicorn does); with "on" that is a startup failure. A failed startup is retried on the next call
    to ``start()``, so a transient fault heals and a persistent one fails every time.
    """

    def __init__(self, app: ASGIApp, *, mode: LifespanMode) -> None:
        self._app = app
        self._mode = mode
        self.started = mode == "off"
        self.state: dict[str, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._shutdown_requested: asyncio.Event | None = None
        self._shutdown_done: asyncio.Future[None] | None = None

    def ready(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether requests on ``loop`` can go ahead: startup ran on it, or none is needed."""
        return self.started and (self._loop is None or self._loop is loop)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run the app's startup to its end on ``loop``; raise LifespanStartupFailed if it fails.

        A lifespan started on another event loop (one that was replaced, as test runners do) is
        shut down first if that loop still runs, so the app's resources follow the new loop.
        """
        if self.ready(loop):
            return
        if self._loop is not None:
            self.shutdown()
        state: dict[str, Any] = {}
        startup: asyncio.Future[_Outcome] = loop.create_future()
        shutdown_requested = asyncio.Event()
        shutdown_done: asyncio.Future[None] = loop.create_future()
        received: list[str] = []
        failure: list[str] = []

        async def receive() -> Message:
            if not received:
                received.append("lifespan.startup")
                return {"type": "lifespan.startup"}
            await shutdown_requested.wait()
            received.append("lifespan.shutdown")
            return {"type": "lifespan.shutdown"}

        async def send(message: Message) -> None:
            kind = message.get("type")
            if not received:
                # A message before lifespan.startup: the app does not speak the protocol.
                raise _Unsupported(f"{kind!r} sent before lifespan.startup")
            if kind == "lifespan.startup.complete" and not startup.done():
                startup.set_result(_Outcome.STARTED)
            elif kind == "lifespan.startup.failed" and not startup.done():
                failure.append(str(message.get("message", "")))
                startup.set_result(_Outcome.FAILED)
            elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                if kind == "lifespan.shutdown.failed":
                    logger.error("lifespan shutdown failed: %s", message.get("message", ""))
                if not shutdown_done.done():
                    shutdown_done.set_result(None)
            else:
                raise RuntimeError(f"unexpected lifespan message {kind!r}")

        async def run() -> None:
            scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
            scope["state"] = state
            try:
                await self._app(scope, receive, send)
            except (GeneratorExit, asyncio.CancelledError):
                raise  # the loop is going away: nothing to report to
            except Exception as exc:
                if startup.done():
                    if startup.result() is _Outcome.STARTED:
                        logger.error("exception in the app's lifespan", exc_info=exc)
                elif not received or isinstance(exc, _Unsupported):
                    startup.set_result(_Outcome.UNSUPPORTED)
                    failure.append(f"{type(exc).__name__}: {exc}")
                else:
                    failure.append(f"{type(exc).__name__}: {exc}")
                    startup.set_result(_Outcome.FAILED)
                    logger.error("exception in the app's lifespan startup", exc_info=exc)
            if not startup.done():
                failure.append("the app returned before answering lifespan.startup")
                startup.set_result(_Outcome.UNSUPPORTED)
            if not shutdown_done.done():
                shutdown_done.set_result(None)

        task = loop.create_task(run())
        outcome = loop.run_until_complete(startup)
        if outcome is _Outcome.STARTED:
            self.state = state
            self._loop = loop
            self._task = task
            self._shutdown_requested = shutdown_requested
            self._shutdown_done = shutdown_done
            self.started = True
            _running.add(self)
            return
        # Let the app's lifespan coroutine finish (it usually re-raises after startup.failed).
        loop.run_until_complete(shutdown_done)
        detail = failure[0] if failure else ""
        if outcome is _Outcome.UNSUPPORTED and self._mode == "auto":
            logger.debug("the app does not support the ASGI lifespan protocol: %s", detail)
            self.started = True
            return
        if outcome is _Outcome.UNSUPPORTED:
            raise LifespanStartupFailed(
                f"lifespan is 'on' but the app does not support it: {detail}"
            )
        raise LifespanStartupFailed(f"the app's lifespan startup failed: {detail}")

    def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the app to answer; a no-op if never started."""
        loop, task = self._loop, self._task
        requested, done = self._shutdown_requested, self._shutdown_done
        if loop is None or task is None or requested is None or done is None:
            return
        self._loop = self._task = None
        self.started = self._mode == "off"
        _running.discard(self)
        if loop.is_closed() or loop.is_running() or task.done():
            return
        requested.set()
        loop.run_until_complete(done)
        loop.run_until_complete(task)


# Started lifespans, held so their parked task is never garbage-collected while pending, and
# shut down at interpreter exit so the app can close what its startup opened.
_running: set[OnceLifespan] = set()


@atexit.register
def _shut_down_at_exit() -> None:
    for lifespan in list(_running):
        try:
            lifespan.shutdown()
        except Exception:
            logger.exception("the app's lifespan shutdown failed at exit")


class _Unsupported(Exception):
    """Raised into the app when it sends a lifespan message before receiving lifespan.startup."""
