"""A TCP proxy on 127.0.0.1 that counts the HTTP/1.1 requests passing through it (keep-alive,
Content-Length bodies), so the flood measure can count storage calls at the server side."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType


class CountingProxy:
    """``with CountingProxy(upstream_port) as proxy:`` then ``proxy.port``, ``proxy.count``."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._lock = threading.Lock()
        self._count = 0
        self.port = 0

    @property
    def count(self) -> int:
        with self._lock:
            return self._count

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self.port = future.result(timeout=10)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _relay(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        upstream, to_upstream = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        back = asyncio.create_task(_pump(upstream, to_client))
        try:
            while True:
                head = await client.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await client.readexactly(length) if length else b""
                with self._lock:
                    self._count += 1
                to_upstream.write(head + body)
                await to_upstream.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            to_upstream.close()
            back.cancel()
            to_client.close()


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except ConnectionError:
        pass
    finally:
        sink.close()
