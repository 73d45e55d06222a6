"""Soak test: the whole stack under uvicorn for a minute (``--duration``) with 64 keep-alive
connections, counters in memory or in a DynamoDB-compatible server on loopback (moto or
dynalite). Reports errors, p50/p99 latency and the server's RSS at start and end; the figures
of the last run are in RELIABILITY.md.

    .venv/bin/python scripts/soak.py --storage memory
    .venv/bin/python scripts/soak.py --storage dynamodb --server dynalite --duration 60

It is also uvicorn's app factory (``soak:make_app``), configured from the environment that
the script sets for the server process. Exit status 1 when any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DYNALITE = REPO / "node_modules" / ".bin" / "dynalite"
_CLI = "import sys; from asgi_lambda_mw.cli import main; sys.exit(main(sys.argv[1:]))"


def make_app() -> object:
    """The app uvicorn serves: a small Starlette app inside compose(), with the rate limit,
    CORS and tracing from the environment (RATE_LIMIT, RATE_LIMIT_TABLE, CORS_*), and the
    load generator's X-Forwarded-For trusted from loopback so each simulated client has its
    own bucket."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from asgi_lambda_mw import compose

    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"hello": request.path_params["name"]})

    api = Starlette(routes=[Route("/hello/{name}", hello)])
    return compose(api, rate_limit={"trusted_proxies": ["127.0.0.1/32"]})


@dataclass(frozen=True)
class Report:
    storage: str
    server: str | None
    duration_s: float
    connections: int
    requests: int
    requests_per_s: float
    status_counts: dict[str, int]
    errors: int
    served_without_rate_limit_headers: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    rss_start_mib: float
    rss_end_mib: float
    rss_samples_mib: list[float]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port}")


@contextmanager
def _process(command: list[str], port: int, what: str, env: dict[str, str]) -> Iterator[int]:
    """Start ``command``, wait for ``port``, yield the pid; terminate it afterwards."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO
    )
    try:
        _wait_for_port(port, process, what)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            errors = process.stderr.read().decode(errors="replace").strip()
            process.stderr.close()
            if errors and process.returncode not in (0, -15):
                print(f"{what} stderr:\n{errors[-2000:]}", file=sys.stderr)


@contextmanager
def _dynamodb_server(kind: str, env: dict[str, str]) -> Iterator[str]:
    port = _free_port()
    if kind == "dynalite":
        if not DYNALITE.exists() or shutil.which("node") is None:
            raise SystemExit("dynalite is not installed: run `npm ci`")
        command = [
            str(DYNALITE),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--createTableMs",
            "0",
        ]
    else:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with _process(command, port, kind, env):
        yield f"http://127.0.0.1:{port}"


def _rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` (Linux /proc), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class _Connection:
    """One keep-alive HTTP/1.1 connection of the load generator: a raw asyncio stream, so the
    generator costs far less CPU than the server it measures (httpx's pool does not scale to
    64 busy connections on two cores)."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, target: str, forwarded_for: str) -> tuple[int, bytes]:
        """(status, lower-cased head) of one GET; raises OSError or ValueError on failure."""
        if self._streams is None:
            self._streams = await asyncio.open_connection("127.0.0.1", self._port)
        reader, writer = self._streams
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: {forwarded_for}"
            "\r\nOrigin: https://app.example\r\n\r\n".encode()
        )
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).lower()
            length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
        except (asyncio.IncompleteReadError, IndexError) as error:
            self.close()
            raise ValueError(f"bad or missing response: {error!r}") from None
        if b"connection: close" in head:
            self.close()
        return int(head[9:12]), head

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def _load(
    port: int, *, pid: int, duration: float, connections: int, clients: int
) -> tuple[list[float], Counter[str], int, int, list[float]]:
    """``connections`` workers, each with one keep-alive connection, looping until
    ``duration``; each request comes from one of ``clients`` simulated client IPs."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors = 0
    unlimited = 0
    samples: list[float] = []
    pool = [_Connection(port) for _ in range(connections)]
    # Warm up every connection and the app before the clock and the first RSS reading.
    for _ in range(2):
        await asyncio.gather(*(c.get("/hello/warm-up", "10.255.255.255") for c in pool))
    samples.append(_rss_mib(pid))
    deadline = time.monotonic() + duration
    interval = max(1.0, duration / 12)

    async def worker(number: int) -> None:
        nonlocal errors, unlimited
        connection = pool[number]
        sequence = number
        while time.monotonic() < deadline:
            sequence += connections
            who = sequence % clients
            ip = f"10.{who // 65536 % 256}.{who // 256 % 256}.{who % 256}"
            started = time.perf_counter()
            try:
                async with asyncio.timeout(10):
                    status, head = await connection.get(f"/hello/c{who}", ip)
            except (OSError, ValueError, TimeoutError) as error:
                connection.close()
                errors += 1
                statuses[type(error).__name__] += 1
                continue
            latencies.append(time.perf_counter() - started)
            statuses[str(status)] += 1
            if status not in (200, 429):
                errors += 1
            elif b"\r\nratelimit:" not in head:
                unlimited += 1  # the limiter failed open: the storage did not answer in time

    async def sampler() -> None:
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(interval, left))
            samples.append(_rss_mib(pid))

    await asyncio.gather(sampler(), *(worker(n) for n in range(connections)))
    for connection in pool:
        connection.close()
    samples.append(_rss_mib(pid))
    return latencies, statuses, errors, unlimited, samples


def run(
    *,
    storage: str,
    server: str,
    duration: float,
    connections: int,
    clients: int,
    rate: str,
) -> Report:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "RATE_LIMIT", "CORS_"))
    }
    env |= {
        "AWS_ACCESS_KEY_ID": "soak",
        "AWS_SECRET_ACCESS_KEY": "soak",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "RATE_LIMIT": rate,
        "CORS_ALLOW_ORIGINS": "https://app.example",
        "PYTHONPATH": str(REPO),
    }
    with tempfile.TemporaryDirectory() as scratch:
        env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = str(Path(scratch) / "none")
        with _storage_environment(storage, server, env):
            port = _free_port()
            uvicorn = [
                *(sys.executable, "-m", "uvicorn", "soak:make_app", "--factory"),
                *("--app-dir", str(REPO / "scripts"), "--host", "127.0.0.1"),
                *("--port", str(port), "--log-level", "warning", "--no-access-log"),
            ]
            with _process(uvicorn, port, "uvicorn", env) as pid:
                started = time.monotonic()
                latencies, statuses, errors, unlimited, samples = asyncio.run(
                    _load(
                        port,
                        pid=pid,
                        duration=duration,
                        connections=connections,
                        clients=clients,
                    )
                )
                elapsed = time.monotonic() - started
    ordered = sorted(latencies)
    requests = sum(statuses.values())
    return Report(
        storage=storage,
        server=server if storage == "dynamodb" else None,
        duration_s=round(elapsed, 1),
        connections=connections,
        requests=requests,
        requests_per_s=round(requests / elapsed, 1),
        status_counts=dict(sorted(statuses.items())),
        errors=errors,
        served_without_rate_limit_headers=unlimited,
        p50_ms=round(_percentile(ordered, 0.50) * 1000, 2),
        p99_ms=round(_percentile(ordered, 0.99) * 1000, 2),
        max_ms=round((ordered[-1] if ordered else 0.0) * 1000, 2),
        rss_start_mib=round(samples[0], 1),
        rss_end_mib=round(samples[-1], 1),
        rss_samples_mib=[round(sample, 1) for sample in samples],
    )


@contextmanager
def _storage_environment(storage: str, server: str, env: dict[str, str]) -> Iterator[None]:
    if storage == "memory":
        yield
        return
    with _dynamodb_server(server, env) as endpoint:
        table = f"soak-{uuid.uuid4().hex[:8]}"
        subprocess.run(
            [
                *(sys.executable, "-c", _CLI, "table", "create"),
                *("--table", table, "--endpoint-url", endpoint),
            ],
            env=env,
            cwd=REPO,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        env["RATE_LIMIT_TABLE"] = table
        env["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", choices=["memory", "dynamodb"], default="memory")
    parser.add_argument(
        "--server", choices=["moto", "dynalite"], default="moto", help="with --storage dynamodb"
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--connections", type=int, default=64, help="default 64")
    parser.add_argument(
        "--clients", type=int, default=1000, help="distinct client IPs (default 1000)"
    )
    parser.add_argument("--rate", default="100/minute", help="RATE_LIMIT (default 100/minute)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    options = parser.parse_args(argv)
    report = run(
        storage=options.storage,
        server=options.server,
        duration=options.duration,
        connections=options.connections,
        clients=options.clients,
        rate=options.rate,
    )
    if options.json:
        print(json.dumps(asdict(report)))
    else:
        for name, value in asdict(report).items():
            print(f"{name:>36}: {value}")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
