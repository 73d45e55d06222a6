"""The HTTP/1.1 keep-alive pool under the DynamoDB client, against small scripted servers on
127.0.0.1: reuse, framing, Connection: close, stale and dropped connections, cancellation,
deadlines, TLS, and moving between event loops."""

from __future__ import annotations

import asyncio
import datetime
import gc
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from asgi_lambda_mw._aws.http import (
    ConnectError,
    ConnectionDropped,
    ConnectionPool,
    Endpoint,
    RequestTimeout,
)


@dataclass(frozen=True)
class StubRequest:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    connection: int  # 1 for the first connection the server accepted, and so on
    number_on_connection: int  # 1 for the first request on its connection


@dataclass(frozen=True)
class HangUp:
    """Send ``data`` (maybe nothing, maybe a partial response), then close the connection."""

    data: bytes = b""


class Silence:
    """Never answer; wait for the client to close the connection."""


Reply = bytes | HangUp | Silence
Respond = Callable[[StubRequest], Awaitable[Reply]]


def http_response(
    body: bytes = b"{}", *, status: int = 200, headers: tuple[str, ...] = ()
) -> bytes:
    """A complete HTTP/1.1 response with a Content-Length body."""
    extra = "".join(f"{line}\r\n" for line in headers)
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


class StubServer:
    """An HTTP/1.1 server on 127.0.0.1 whose answers a test scripts: ``respond`` returns the
    raw bytes to send, HangUp(...) to close the connection, or Silence() to never answer."""

    def __init__(self, respond: Respond, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._respond = respond
        self._ssl = ssl_context
        self.requests: list[StubRequest] = []
        self.connections = 0
        self.closed_by_client = 0
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def __aenter__(self) -> StubServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        connection = self.connections
        number = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.closed_by_client += 1
                    return
                request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
                method, target, _ = request_line.split(" ")
                headers = {}
                for line in lines:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                number += 1
                request = StubRequest(method, target, headers, body, connection, number)
                self.requests.append(request)
                reply = await self._respond(request)
                if isinstance(reply, Silence):
                    await reader.read()  # until the client hangs up
                    self.closed_by_client += 1
                    return
                if isinstance(reply, HangUp):
                    writer.write(reply.data)
                    await writer.drain()
                    return
                writer.write(reply)
                await writer.drain()
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)


@asynccontextmanager
async def serving(respond: Respond) -> AsyncIterator[StubServer]:
    async with StubServer(respond) as server:
        yield server


async def answer_ok(request: StubRequest) -> bytes:
    return http_response(b'{"ok":true}')


def _pool(url: str, *, max_idle_connections: int = 32) -> ConnectionPool:
    return ConnectionPool(Endpoint.parse(url), max_idle_connections=max_idle_connections)


async def _client_hang_ups(server: StubServer, count: int) -> None:
    async with asyncio.timeout(5):
        while server.closed_by_client < count:
            await asyncio.sleep(0.001)


async def _get(pool: ConnectionPool, *, deadline: float | None = None) -> bytes:
    response = await pool.request("POST", "/", [("X-Test", "1")], b"{}", deadline=deadline)
    assert response.status == 200
    return response.body


async def test_sequential_requests_share_one_connection() -> None:
    async with serving(answer_ok) as server:
        pool = _pool(server.url)
        for _ in range(20):
            assert await _get(pool) == b'{"ok":true}'
        await pool.aclose()
    assert len(server.requests) == 20
    assert server.connections == 1


async def test_request_carries_host_content_length_and_given_headers() -> None:
    async with serving(answer_ok) as server:
        pool = _pool(server.url)
        await pool.request("POST", "/", [("X-Amz-Target", "T.Op")], b'{"a":1}')
        await pool.aclose()
    request = server.requests[0]
    assert request.headers["host"] == f"127.0.0.1:{server.port}"
    assert request.headers["content-length"] == "7"
    assert request.headers["x-amz-target"] == "T.Op"
    assert request.body == b'{"a":1}'


async def test_concurrent_requests_keep_their_connections_for_the_next_burst() -> None:
    async with serving(answer_ok) as server:
        pool = _pool(server.url)
        await asyncio.gather(*(_get(pool) for _ in range(8)))
        opened = server.connections
        await asyncio.gather(*(_get(pool) for _ in range(8)))
        await pool.aclose()
    assert 1 <= opened <= 8
    assert server.connections == opened


async def test_idle_connections_beyond_the_cap_are_closed() -> None:
    release = asyncio.Event()

    async def slow(request: StubRequest) -> bytes:
        await release.wait()
        return http_response()

    async with serving(slow) as server:
        pool = _pool(server.url, max_idle_connections=1)
        burst = asyncio.gather(*(_get(pool) for _ in range(3)))
        while len(server.requests) < 3:
            await asyncio.sleep(0)
        release.set()
        await burst
        await _get(pool)
        await pool.aclose()
    assert server.connections == 3  # the fourth request reused the one kept


async def test_chunked_response_body_is_reassembled() -> None:
    async def chunked(request: StubRequest) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'5;name=value\r\n{"ok"\r\n6\r\n:true}\r\n0\r\nX-Trailer: 1\r\n\r\n'
        )

    async with serving(chunked) as server:
        pool = _pool(server.url)
        assert await _get(pool) == b'{"ok":true}'
        assert await _get(pool) == b'{"ok":true}'
        await pool.aclose()
    assert server.connections == 1


async def test_connection_close_header_is_honoured() -> None:
    async def closing(request: StubRequest) -> bytes:
        return http_response(headers=("Connection: close",))

    async with serving(closing) as server:
        pool = _pool(server.url)
        for _ in range(3):
            await _get(pool)
        await pool.aclose()
    assert server.connections == 3
    assert [request.number_on_connection for request in server.requests] == [1, 1, 1]


async def test_idle_connection_closed_by_the_server_is_replaced() -> None:
    async def answer_then_hang_up(request: StubRequest) -> Reply:
        return HangUp(http_response())  # no "Connection: close": an idle timeout, unannounced

    async with serving(answer_then_hang_up) as server:
        pool = _pool(server.url)
        for _ in range(3):
            assert await _get(pool) == b"{}"
        await pool.aclose()
    assert len(server.requests) == 3
    assert server.connections == 3


async def test_request_dropped_on_a_reused_connection_is_retried_once() -> None:
    async def drop_every_second(request: StubRequest) -> Reply:
        return HangUp() if request.number_on_connection == 2 else http_response()

    async with serving(drop_every_second) as server:
        pool = _pool(server.url)
        await _get(pool)
        await _get(pool)
        await pool.aclose()
    assert len(server.requests) == 3
    assert server.connections == 2


async def test_request_dropped_on_a_fresh_connection_is_not_retried() -> None:
    async def drop(request: StubRequest) -> Reply:
        return HangUp()

    async with serving(drop) as server:
        pool = _pool(server.url)
        with pytest.raises(ConnectionDropped):
            await _get(pool)
        await pool.aclose()
    assert len(server.requests) == 1


async def test_connection_dropped_mid_response_is_not_retried() -> None:
    async def partial(request: StubRequest) -> Reply:
        if request.number_on_connection == 1:
            return http_response()
        return HangUp(b"HTTP/1.1 200 OK\r\nContent-Len")

    async with serving(partial) as server:
        pool = _pool(server.url)
        await _get(pool)
        with pytest.raises(ConnectionDropped) as raised:
            await _get(pool)
        await pool.aclose()
    assert raised.value.response_started is True
    assert len(server.requests) == 2


async def test_truncated_body_raises_connection_dropped() -> None:
    async def truncated(request: StubRequest) -> Reply:
        return HangUp(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}")

    async with serving(truncated) as server:
        pool = _pool(server.url)
        with pytest.raises(ConnectionDropped):
            await _get(pool)
        await pool.aclose()


async def test_cancelled_request_closes_its_connection() -> None:
    async def silent_first(request: StubRequest) -> Reply:
        return Silence() if request.connection == 1 else http_response()

    async with serving(silent_first) as server:
        pool = _pool(server.url)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await _get(pool)
        await _client_hang_ups(server, 1)  # the abandoned connection is closed
        assert await _get(pool) == b"{}"
        await pool.aclose()
    assert server.connections == 2


async def test_deadline_bounds_a_request_that_never_answers() -> None:
    async def never(request: StubRequest) -> Reply:
        return Silence()

    async with serving(never) as server:
        pool = _pool(server.url)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RequestTimeout):
            await _get(pool, deadline=time.monotonic() + 0.1)
        assert loop.time() - started < 5
        await pool.aclose()


async def test_passed_deadline_sends_nothing() -> None:
    async with serving(answer_ok) as server:
        pool = _pool(server.url)
        with pytest.raises(RequestTimeout):
            await _get(pool, deadline=time.monotonic() - 1)
        await pool.aclose()
    assert server.requests == []


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_refused_connection_raises_connect_error() -> None:
    pool = _pool(f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(ConnectError, match="could not connect"):
        await _get(pool)
    await pool.aclose()


async def test_aclose_closes_idle_connections_and_pool_stays_usable() -> None:
    async with serving(answer_ok) as server:
        pool = _pool(server.url)
        await _get(pool)
        await pool.aclose()
        await _client_hang_ups(server, 1)
        await _get(pool)
        await pool.aclose()
    assert server.connections == 2


@contextmanager
def serving_in_thread(respond: Respond) -> Iterator[StubServer]:
    """A StubServer on its own loop in a thread, to outlive the client's event loops."""
    loop = asyncio.new_event_loop()
    server = StubServer(respond)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(5)
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_pool_works_across_successive_event_loops() -> None:
    with serving_in_thread(answer_ok) as server:
        pool = _pool(server.url)

        async def three_requests() -> list[bytes]:
            return [await _get(pool) for _ in range(3)]

        first = asyncio.run(three_requests())
        second = asyncio.run(three_requests())  # the first loop is closed by now
        gc.collect()  # an unclosed transport of the dead loop would warn (an error) here
        asyncio.run(pool.aclose())
    assert first == second == [b'{"ok":true}'] * 3
    assert server.connections == 2  # one per loop, each reused within its loop


def test_connections_of_a_finished_loop_are_closed_when_it_shuts_down() -> None:
    with serving_in_thread(answer_ok) as server:
        pool = _pool(server.url)
        asyncio.run(_get(pool))
        deadline = time.monotonic() + 5
        while server.closed_by_client == 0 and time.monotonic() < deadline:
            threading.Event().wait(0.005)
        closed = server.closed_by_client
    assert closed == 1


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 'localhost' and 127.0.0.1, made here."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_https_endpoint_speaks_tls_and_checks_the_certificate(
    tls_files: tuple[Path, Path],
) -> None:
    cert_file, key_file = tls_files
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    async with StubServer(answer_ok, ssl_context=server_context) as server:
        trusting = ConnectionPool(
            Endpoint.parse(f"https://localhost:{server.port}"),
            ssl_context=ssl.create_default_context(cafile=str(cert_file)),
        )
        assert await _get(trusting) == b'{"ok":true}'
        assert await _get(trusting) == b'{"ok":true}'
        await trusting.aclose()

        default_trust = _pool(f"https://localhost:{server.port}")
        with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await _get(default_trust)
        await default_trust.aclose()
    assert len(server.requests) == 2
    assert server.connections == 1  # the untrusted handshake never got to HTTP


@pytest.mark.parametrize(
    ("url", "host_header", "port", "tls"),
    [
        ("https://dynamodb.us-east-1.amazonaws.com", "dynamodb.us-east-1.amazonaws.com", 443, True),
        (
            "https://dynamodb.us-east-1.amazonaws.com:443/",
            "dynamodb.us-east-1.amazonaws.com",
            443,
            True,
        ),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", 8000, False),
        ("http://LOCALHOST", "localhost", 80, False),
        ("http://[::1]:4566", "[::1]:4566", 4566, False),
    ],
)
def test_endpoint_parsing(url: str, host_header: str, port: int, tls: bool) -> None:
    endpoint = Endpoint.parse(url)
    assert (endpoint.host_header, endpoint.port, endpoint.tls) == (host_header, port, tls)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com",
        "dynamodb.us-east-1.amazonaws.com",
        "http://",
        "http://h:99999",
        "http://h/some/path",
        "http://user:pw@h",
    ],
)
def test_unusable_endpoint_is_rejected(url: str) -> None:
    with pytest.raises(ValueError):
        Endpoint.parse(url)
