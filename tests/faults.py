"""A loopback fault proxy for storage-fault tests: it sits between DynamoDBClient and a real
DynamoDB-compatible server on 127.0.0.1 and, request by request, forwards, delays, drops,
closes, resets, loses the answer or injects an error answer (throttling, 500) that a real server
cannot be made to produce on demand. It can be stopped (the port refuses) and started again.

It runs its own event loop in a thread, so sync tests (lambda_handler) and async tests alike
can use it: ``with FaultProxy(moto_endpoint) as proxy: proxy.fault = THROTTLING``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

__all__ = [
    "CLOSE",
    "DROP",
    "FORWARD",
    "INTERNAL_ERROR",
    "LOST_ANSWER",
    "PROVISIONED_THROUGHPUT_EXCEEDED",
    "RESET",
    "SERVICE_UNAVAILABLE",
    "THROTTLING",
    "TRUNCATED_ANSWER",
    "Fault",
    "FaultProxy",
    "answer",
    "delay",
]

FaultKind = Literal["forward", "delay", "drop", "close", "reset", "answer", "lost", "truncate"]

_REASONS = {200: "OK", 400: "Bad Request", 500: "Internal Server Error", 503: "Service Unavailable"}
_MAX_HEAD = 64 * 1024


@dataclass(frozen=True, slots=True)
class Fault:
    """What the proxy does with each request it reads.

    ``forward``: pass it on; ``delay``: wait ``seconds``, then pass it on (the write lands late,
    as on a slow server, even if the client has given up); ``drop``: never answer; ``close``:
    close the connection without answering (nothing was forwarded); ``reset``: the same with a
    TCP reset; ``answer``: answer ``status`` with a DynamoDB error body of ``error_type``, nothing
    forwarded; ``lost``: forward it, then close without passing the answer on (the write
    happened); ``truncate``: forward it and pass on only half of the answer.
    """

    kind: FaultKind
    seconds: float = 0.0
    status: int = 200
    error_type: str = ""
    message: str = ""


FORWARD = Fault("forward")
DROP = Fault("drop")
CLOSE = Fault("close")
RESET = Fault("reset")
LOST_ANSWER = Fault("lost")
TRUNCATED_ANSWER = Fault("truncate")


def delay(seconds: float) -> Fault:
    """Answer slowly: the request reaches the server ``seconds`` later."""
    return Fault("delay", seconds=seconds)


def answer(status: int, error_type: str, message: str) -> Fault:
    """Answer every request with this DynamoDB error, without forwarding it."""
    return Fault("answer", status=status, error_type=error_type, message=message)


# The error answers DynamoDB documents:
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html
PROVISIONED_THROUGHPUT_EXCEEDED = answer(
    400,
    "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "The level of configured provisioned throughput for the table was exceeded.",
)
THROTTLING = answer(
    400, "com.amazon.coral.availability#ThrottlingException", "Rate of requests exceeds the limit."
)
INTERNAL_ERROR = answer(500, "com.amazon.coral.service#InternalServerError", "Internal error.")
SERVICE_UNAVAILABLE = answer(
    503, "com.amazon.coral.availability#ServiceUnavailableException", "Service unavailable."
)


class _Counters:
    """What the proxy saw, read from the test's thread."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.requests = 0
        self.forwarded = 0
        self.injected = 0
        self.pending = 0  # requests read whose forwarding or delay has not finished


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream`` (``http://127.0.0.1:PORT``).

    ``fault`` applies to every request read from then on (default FORWARD). ``stop()`` closes
    the listening socket and every open connection; ``start()`` listens on the same port again.
    Use it as a context manager, or call ``close()``.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self._upstream = (parts.hostname, parts.port)
        self.fault = FORWARD
        self._counters = _Counters()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fault-proxy", daemon=True
        )
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> int:
        """Requests read from clients so far."""
        return self._counters.requests

    @property
    def forwarded(self) -> int:
        """Requests that reached the server so far."""
        return self._counters.forwarded

    @property
    def injected(self) -> int:
        """Requests answered with an injected error so far."""
        return self._counters.injected

    @contextmanager
    def faulty(self, fault: Fault) -> Iterator[FaultProxy]:
        """``fault`` inside the block, FORWARD after it."""
        self.fault = fault
        try:
            yield self
        finally:
            self.fault = FORWARD

    def wait_settled(self, timeout: float = 10.0) -> None:
        """Wait until every delayed or forwarded request has reached the server (or failed)."""
        counters = self._counters
        with counters.lock:
            if not counters.lock.wait_for(lambda: counters.pending == 0, timeout):
                raise TimeoutError(f"{counters.pending} proxied requests still pending")

    def start(self) -> None:
        """Listen (again) on ``port``."""
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        """Stop listening and close every connection, as a server that goes away."""
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)

    def close(self) -> None:
        """Stop and end the proxy's thread."""
        if self._loop.is_closed():
            return
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def _start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._serve, "127.0.0.1", self.port, reuse_address=True, limit=_MAX_HEAD
            )

    async def _stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                request = await _read_message(reader)
                if request is None:
                    return
                fault = self.fault
                self._count("requests")
                if fault.kind == "drop":
                    while await reader.read(65536):  # hold it open until the client gives up
                        pass
                    return
                if fault.kind == "close":
                    return
                if fault.kind == "reset":
                    _reset(writer)
                    return
                if fault.kind == "answer":
                    self._count("injected")
                    writer.write(_error_answer(fault))
                    await writer.drain()
                    continue
                self._pending(+1)
                try:
                    if fault.kind == "delay":
                        await asyncio.sleep(fault.seconds)
                    if upstream is None:
                        upstream = await asyncio.open_connection(*self._upstream, limit=_MAX_HEAD)
                    upstream[1].write(request)
                    await upstream[1].drain()
                    response = await _read_message(upstream[0])
                    self._count("forwarded")
                finally:
                    self._pending(-1)
                if response is None:
                    return
                if fault.kind == "lost":
                    return
                if fault.kind == "truncate":
                    writer.write(response[: len(response) // 2])
                    await writer.drain()
                    return
                if writer.is_closing():
                    return
                writer.write(response)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        except asyncio.CancelledError:  # stop(): the connection goes away with the server
            writer.transport.abort()
            return
        finally:
            self._tasks.discard(task)
            for stream in (writer, upstream[1] if upstream else None):
                if stream is not None:
                    stream.close()
                    with suppress(Exception):
                        await stream.wait_closed()

    def _count(self, name: str) -> None:
        counters = self._counters
        with counters.lock:
            setattr(counters, name, getattr(counters, name) + 1)

    def _pending(self, change: int) -> None:
        counters = self._counters
        with counters.lock:
            counters.pending += change
            counters.lock.notify_all()


async def _read_message(reader: asyncio.StreamReader) -> bytes | None:
    """One HTTP/1.1 message (request or response) with its body; None at a clean EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    headers = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            body += size_line
            size = int(size_line.split(b";")[0], 16)
            body += await reader.readexactly(size + 2)
            if size == 0:
                return head + bytes(body)
    length = int(headers.get("content-length", "0"))
    return head + await reader.readexactly(length)


def _error_answer(fault: Fault) -> bytes:
    body = json.dumps({"__type": fault.error_type, "message": fault.message}).encode()
    reason = _REASONS.get(fault.status, "Error")
    head = (
        f"HTTP/1.1 {fault.status} {reason}\r\n"
        "Content-Type: application/x-amz-json-1.0\r\n"
        f"x-amzn-RequestId: FAULTPROXY{fault.status}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST rather than a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
