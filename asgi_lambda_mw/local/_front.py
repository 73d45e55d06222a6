"""The HTTP side of `asgi-lambda watch`: a loopback server that plays the gateway.

Each request becomes an event (``_gateway``), goes to the function through FunctionHost, and the
answer becomes the response, with the gateway's errors: 413 over Lambda's payload limit, 502 for
a crash or a bad answer, 504 past the timeout. One log line per request.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler

from ._context import new_request_id, new_trace_id
from ._function import FunctionHost
from ._gateway import (
    PAYLOAD_LIMIT,
    EventFormat,
    GatewayRequest,
    GatewayResponse,
    MalformedAnswer,
    build_event,
    gateway_error,
    http_date,
    read_answer,
)
from ._runtime_api import LocalHTTPServer

__all__ = ["GatewayServer", "LocalGateway"]

logger = logging.getLogger("asgi_lambda_mw.local.gateway")

# Bodies past this are refused before they are read (a 6 MB body can never fit in an event).
_MAX_BODY = PAYLOAD_LIMIT
_NO_BODY_STATUSES = frozenset({204, 304})


class LocalGateway:
    """Turns GatewayRequests into invocations of ``function`` and back, in ``event_format``."""

    def __init__(
        self,
        function: FunctionHost,
        *,
        event_format: EventFormat,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._function = function
        self._format = event_format
        self._clock = clock

    @property
    def event_format(self) -> EventFormat:
        return self._format

    def handle(self, request: GatewayRequest) -> GatewayResponse:
        started = time.monotonic()
        now = self._clock()
        gateway_id = self._gateway_request_id()
        trace_id = new_trace_id(now)
        event = build_event(
            request, self._format, request_id=gateway_id, trace_id=trace_id, now=now
        )
        payload = json.dumps(event).encode()
        note = ""
        request_id = "-"
        if len(payload) > PAYLOAD_LIMIT:
            response = gateway_error(413, self._format)
            note = f"event of {len(payload)} bytes is over Lambda's 6 MB limit"
        else:
            result = self._function.invoke(payload, trace_id=trace_id)
            request_id = result.request_id
            outcome = result.outcome
            if result.cold_start:
                note = "cold start"
            if outcome.kind == "response":
                try:
                    response = read_answer(outcome.body, self._format)
                except MalformedAnswer as error:
                    response = gateway_error(502, self._format)
                    note = _join(note, f"malformed answer: {error}")
            elif outcome.kind == "timeout":
                response = gateway_error(504, self._format)
                note = _join(note, "task timed out")
            else:
                response = gateway_error(502, self._format)
                failure = _describe_failure(outcome.kind, outcome.error_type, outcome.body)
                note = _join(note, failure)
        response = self._with_gateway_headers(response, gateway_id, request_id, now)
        logger.info(
            "%s %s %d %dB %.1fms request_id=%s%s",
            request.method,
            request.target,
            response.status,
            len(response.body),
            (time.monotonic() - started) * 1000,
            request_id,
            f" ({note})" if note else "",
        )
        return response

    def _gateway_request_id(self) -> str:
        if self._format in ("http-api", "function-url"):
            return secrets.token_urlsafe(12)[:15] + "="  # like HTTP API's "JKJaXmPLvHcESHA="
        return new_request_id()

    def _with_gateway_headers(
        self, response: GatewayResponse, gateway_id: str, request_id: str, now: float
    ) -> GatewayResponse:
        added: list[tuple[str, str]] = [("date", http_date(now))]
        if self._format == "http-api":
            added.append(("apigw-requestid", gateway_id))
        elif self._format == "rest":
            added.append(("x-amzn-requestid", gateway_id))
        elif self._format == "function-url":
            added.append(("x-amzn-requestid", request_id))
        return GatewayResponse(
            response.status, tuple(added) + response.headers, response.body, response.reason
        )


def _join(first: str, second: str) -> str:
    return f"{first}; {second}" if first else second


def _describe_failure(kind: str, error_type: str | None, body: bytes) -> str:
    detail = ""
    try:
        document = json.loads(body) if body else {}
        if isinstance(document, dict):
            detail = str(document.get("errorMessage", ""))
            error_type = error_type or document.get("errorType")
    except ValueError:
        pass
    what = {
        "error": "unhandled error",
        "crash": "function process crashed",
        "init_error": "function failed to initialise",
    }.get(kind, kind)
    parts = [what, error_type or "", detail]
    return ": ".join(part for part in parts if part)


class GatewayServer:
    """``LocalGateway`` over HTTP/1.1 on ``host:port`` (port 0 picks a free one)."""

    def __init__(self, gateway: LocalGateway, *, host: str = "127.0.0.1", port: int = 9000) -> None:
        self._gateway = gateway
        self._server = LocalHTTPServer((host, port), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.serve_forever, name="gateway", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop serving (from another thread than ``serve_forever``'s) and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        gateway = self._gateway
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without this, Nagle's algorithm and
            # delayed ACKs add ~40 ms to every exchange.
            disable_nagle_algorithm = True
            server_version = "asgi-lambda-watch"

            def log_message(self, format: str, *args: object) -> None:
                logger.debug(format, *args)

            def _serve(self) -> None:
                body = self._read_body()
                if body is None:
                    self.close_connection = True
                    self._send(self.command, gateway_error(413, gateway.event_format))
                    return
                port = server.port
                request = GatewayRequest(
                    method=self.command,
                    target=self.path,
                    headers=tuple(self.headers.items()),
                    body=body,
                    source_ip=self.client_address[0],
                    port=port,
                )
                self._send(self.command, gateway.handle(request))

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

            def _read_body(self) -> bytes | None:
                """The request body (Content-Length or chunked), or None when over the limit."""
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    chunks: list[bytes] = []
                    total = 0
                    while True:
                        size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return b"".join(chunks)
                        total += size
                        if total > _MAX_BODY:
                            return None
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                if length > _MAX_BODY:
                    return None
                return self.rfile.read(length) if length else b""

            def _send(self, method: str, response: GatewayResponse) -> None:
                reason = response.reason or _phrase(response.status)
                self.send_response_only(response.status, reason)
                length = str(len(response.body))
                if method == "HEAD" or response.status in _NO_BODY_STATUSES:
                    # The answer's own length stands (a HEAD says what the GET would send).
                    length = response.header("content-length") or (
                        "" if response.status in _NO_BODY_STATUSES else length
                    )
                for name, value in response.headers:
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                if length:
                    self.send_header("Content-Length", length)
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                if method != "HEAD" and response.status not in _NO_BODY_STATUSES:
                    self.wfile.write(response.body)

        return _Handler


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
