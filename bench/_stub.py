"""A DynamoDB stand-in that answers every request at once (or after ``--delay-ms``) with the
same UpdateItem answer, so client CPU and client concurrency can be measured without the
server being the limit. It parses only HTTP/1.1 framing (Content-Length, keep-alive).

``python -m bench._stub --port P [--delay-ms 5] [--workers 2]``: the workers share one
listening socket (pre-fork), each on its own uvloop (asyncio without it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
from typing import cast

# What DynamoDB answers to UpdateItem with ReturnValues=UPDATED_NEW: the new count.
BODY = b'{"Attributes":{"cur":{"N":"1"}}}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/x-amz-json-1.0\r\n"
    b"x-amzn-RequestId: BENCHSTUB0000000000000000000000000000000000000000000\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


class _StubProtocol(asyncio.Protocol):
    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self._buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            total = end + 4 + length
            if len(self._buffer) < total:
                return
            self._buffer = self._buffer[total:]
            self._answer()

    def _answer(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._delay:
            asyncio.get_running_loop().call_later(self._delay, _write, transport)
        else:
            transport.write(RESPONSE)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


def _write(transport: asyncio.Transport) -> None:
    if not transport.is_closing():
        transport.write(RESPONSE)


def _serve(sock: socket.socket, delay: float) -> None:
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.run_until_complete(loop.create_server(lambda: _StubProtocol(delay), sock=sock))
    loop.run_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(1024)
    sock.setblocking(False)
    children = []
    for _ in range(args.workers - 1):
        pid = os.fork()
        if pid == 0:
            _serve(sock, args.delay_ms / 1000)
            os._exit(0)
        children.append(pid)

    try:  # SIGTERM stops this loop, then the workers
        _serve(sock, args.delay_ms / 1000)
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    main()
