"""A Lambda Runtime API (version 2018-06-01) server on loopback, for one function process.

It serves ``GET /runtime/invocation/next`` (long poll), ``POST .../{id}/response``,
``.../{id}/error`` and ``/runtime/init/error`` from a shared InvocationQueue. One server per
function process: when the process dies its server goes with it, so a stale long poll can never
take an invocation meant for the next process.
"""

from __future__ import annotations

import collections
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

from ._gateway import PAYLOAD_LIMIT

__all__ = ["Invocation", "InvocationQueue", "LocalHTTPServer", "Outcome", "RuntimeAPIServer"]

logger = logging.getLogger("asgi_lambda_mw.local.runtime_api")

_PREFIX = "/2018-06-01/runtime"
_POLL_SECONDS = 0.2


class LocalHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server whose clients may hang up at any time without a traceback."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            logger.debug("client %s went away: %s", client_address, error)
        else:
            logger.exception("error while serving %s", client_address)


OutcomeKind = Literal["response", "error", "crash", "timeout", "init_error"]


@dataclass(frozen=True)
class Outcome:
    """How an invocation ended: the runtime's answer, its error document, or the platform's."""

    kind: OutcomeKind
    body: bytes = b""
    error_type: str | None = None


@dataclass(eq=False)
class Invocation:
    """One invocation on its way through the queue (mutable: it is this request's own state)."""

    request_id: str
    payload: bytes
    trace_id: str
    timeout: float
    deadline_ms: int | None = None
    cold_start: bool = False
    owner: object = None
    """The Runtime API server that delivered it, once one has."""
    outcome: Outcome | None = None
    dequeued: threading.Event = field(default_factory=threading.Event)
    """Set when a runtime takes it, or when it is ended before one could."""
    done: threading.Event = field(default_factory=threading.Event)


class InvocationQueue:
    """Invocations waiting for a runtime, and those a runtime is working on."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._pending: collections.deque[Invocation] = collections.deque()
        self._in_flight: dict[str, Invocation] = {}
        self._changed = threading.Condition()

    def submit(self, invocation: Invocation) -> int:
        """Queue ``invocation``; return how many were queued or running before it."""
        with self._changed:
            ahead = len(self._pending) + len(self._in_flight)
            self._pending.append(invocation)
            self._changed.notify_all()
            return ahead

    def has_pending(self) -> bool:
        with self._changed:
            return bool(self._pending)

    def take(
        self, is_current: Callable[[], bool], *, cold_start: bool, owner: object
    ) -> Invocation | None:
        """Wait for the next invocation while ``is_current()``; set its deadline and return it."""
        with self._changed:
            while not self._pending:
                if not is_current():
                    return None
                self._changed.wait(_POLL_SECONDS)
            if not is_current():
                return None
            invocation = self._pending.popleft()
            invocation.deadline_ms = int((self._clock() + invocation.timeout) * 1000)
            invocation.cold_start = cold_start
            invocation.owner = owner
            self._in_flight[invocation.request_id] = invocation
            invocation.dequeued.set()
            return invocation

    def finish(self, request_id: str, outcome: Outcome) -> bool:
        """Record the outcome of an in-flight invocation; False if it is unknown or over."""
        with self._changed:
            invocation = self._in_flight.pop(request_id, None)
        if invocation is None:
            return False
        invocation.outcome = outcome
        invocation.done.set()
        return True

    def withdraw(self, invocation: Invocation, outcome: Outcome) -> None:
        """End ``invocation`` wherever it is (queued or in flight) with ``outcome``."""
        with self._changed:
            try:
                self._pending.remove(invocation)
            except ValueError:
                pass
            self._in_flight.pop(invocation.request_id, None)
        if not invocation.done.is_set():
            invocation.outcome = outcome
            invocation.done.set()
        invocation.dequeued.set()

    def fail_in_flight(self, outcome: Outcome, *, owner: object) -> int:
        """End the invocations ``owner`` delivered and that are still running."""
        with self._changed:
            running = [key for key, value in self._in_flight.items() if value.owner is owner]
        return sum(self.finish(request_id, outcome) for request_id in running)

    def in_flight(self, *, owner: object) -> int:
        with self._changed:
            return sum(1 for value in self._in_flight.values() if value.owner is owner)

    def fail_oldest_pending(self, outcome: Outcome) -> bool:
        with self._changed:
            if not self._pending:
                return False
            invocation = self._pending.popleft()
        invocation.outcome = outcome
        invocation.done.set()
        invocation.dequeued.set()
        return True

    def fail_all(self, outcome: Outcome) -> None:
        with self._changed:
            waiting = list(self._pending) + list(self._in_flight.values())
            self._pending.clear()
            self._in_flight.clear()
            self._changed.notify_all()
        for invocation in waiting:
            invocation.outcome = outcome
            invocation.done.set()
            invocation.dequeued.set()


class RuntimeAPIServer:
    """The Runtime API for one function process, on 127.0.0.1 and a free port.

    ``function_arn`` goes into every invocation's headers; ``on_init_error(body)`` is called
    when the runtime reports an initialisation failure.
    """

    def __init__(
        self,
        queue: InvocationQueue,
        *,
        function_arn: str,
        on_init_error: Callable[[bytes], None] = lambda body: None,
    ) -> None:
        self._queue = queue
        self._function_arn = function_arn
        self._on_init_error = on_init_error
        self._alive = True
        self._taking = True
        self._served_first = False
        self._lock = threading.Lock()
        self._server = LocalHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="runtime-api", daemon=True
        )

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``: the value of AWS_LAMBDA_RUNTIME_API."""
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    @property
    def served_invocation(self) -> bool:
        """Whether the runtime has taken an invocation (it got past its initialisation)."""
        return self._served_first

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop serving; long polls in progress return without an invocation."""
        with self._lock:
            if not self._alive:
                return
            self._alive = False
        self._server.shutdown()
        self._server.server_close()

    def stop_taking(self) -> None:
        """Hand out no more invocations (their runtime is being replaced); answers still count."""
        self._taking = False

    def _is_current(self) -> bool:
        return self._alive and self._taking

    def _take(self) -> Invocation | None:
        with self._lock:
            cold = not self._served_first
        invocation = self._queue.take(self._is_current, cold_start=cold, owner=self)
        if invocation is not None:
            self._served_first = True
        return invocation

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without this, Nagle's algorithm and
            # delayed ACKs add ~40 ms to every exchange.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                logger.debug("runtime api: " + format, *args)

            def do_GET(self) -> None:
                if self.path != f"{_PREFIX}/invocation/next":
                    self._reply(404, {"errorMessage": "not found", "errorType": "NotFound"})
                    return
                invocation = api._take()
                if invocation is None:  # this process is being replaced
                    self.close_connection = True
                    self._reply(410, {"errorMessage": "runtime stopped", "errorType": "Gone"})
                    return
                self.send_response_only(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(invocation.payload)))
                self.send_header("Lambda-Runtime-Aws-Request-Id", invocation.request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(invocation.deadline_ms))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", api._function_arn)
                self.send_header("Lambda-Runtime-Trace-Id", invocation.trace_id)
                self.end_headers()
                try:
                    self.wfile.write(invocation.payload)
                except OSError:
                    api._queue.finish(invocation.request_id, Outcome("crash"))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > PAYLOAD_LIMIT:
                    self.close_connection = True
                    request_id = self.path.split("/")[-2]
                    api._queue.finish(
                        request_id,
                        Outcome("error", error_type="Function.ResponseSizeTooLarge"),
                    )
                    self._reply(413, {"errorMessage": "payload too large", "errorType": "Payload"})
                    return
                body = self.rfile.read(length)
                parts = self.path.removeprefix(_PREFIX).strip("/").split("/")
                if parts == ["init", "error"]:
                    api._on_init_error(body)
                    self._reply(202, {"status": "OK"})
                    return
                if (
                    len(parts) == 3
                    and parts[0] == "invocation"
                    and parts[2]
                    in {
                        "response",
                        "error",
                    }
                ):
                    if parts[2] == "response":
                        outcome = Outcome("response", body)
                    else:
                        error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
                        outcome = Outcome("error", body, error_type)
                    if api._queue.finish(parts[1], outcome):
                        self._reply(202, {"status": "OK"})
                    else:
                        self._reply(
                            400,
                            {"errorMessage": "unknown request id", "errorType": "InvalidRequestID"},
                        )
                    return
                self._reply(404, {"errorMessage": "not found", "errorType": "NotFound"})

            def _reply(self, status: int, document: dict[str, str]) -> None:
                body = json.dumps(document).encode()
                self.send_response_only(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:  # the runtime went away (it is being stopped)
                    self.close_connection = True

        return _Handler
