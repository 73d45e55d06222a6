"""Shared helpers for the benchmark scripts: rows and the table, ABAB alternation, medians,
child processes (free ports, waiting for a port, CPU pinning) and the HTTP API event.

Every measure module exposes ``measure(smoke: bool) -> list[Row]`` and runs alone with
``python -m bench.<module> [--smoke]``; ``bench/run`` runs each in its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# Read as a file: importing asgi_lambda_mw.events would charge the library to the baselines.
EVENT_FILE = ROOT / "asgi_lambda_mw" / "events" / "http_api.json"
ORIGIN = "https://app.example.com"
# Rates high enough that every benchmark request is counted and let through.
UNLIMITED_RATE = "1000000000/minute"


@dataclass(frozen=True)
class Row:
    """One line of the table: A against its baseline B, measured in the same run."""

    measure: str
    a: str
    b: str
    ratio: float | None
    target: str
    verdict: str
    note: str = ""


@dataclass(frozen=True)
class Target:
    """``ratio <= limit`` (``at_most``) or ``ratio >= limit``."""

    limit: float
    at_most: bool = True

    def __str__(self) -> str:
        return f"{'<=' if self.at_most else '>='} {self.limit:.2f}x"

    def verdict(self, ratio: float | None, smoke: bool) -> str:
        if smoke or ratio is None:
            return "-"
        met = ratio <= self.limit if self.at_most else ratio >= self.limit
        return "PASS" if met else "MISS"


def row(
    measure: str,
    a: float,
    b: float,
    unit: str,
    target: Target | None,
    *,
    smoke: bool,
    digits: int = 1,
    note: str = "",
) -> Row:
    """A row whose ratio is a / b; ``target`` None makes it a reference row."""
    ratio = a / b if b else None
    return Row(
        measure=measure,
        a=f"{a:,.{digits}f} {unit}",
        b=f"{b:,.{digits}f} {unit}",
        ratio=ratio,
        target=str(target) if target else "reference",
        verdict=target.verdict(ratio, smoke) if target else "-",
        note=note,
    )


def skipped(measure: str, why: str) -> Row:
    return Row(measure, "-", "-", None, "-", "skipped", note=why)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def alternate(runs: Sequence[Callable[[], T]], rounds: int) -> list[list[T]]:
    """Run each callable once per round, in order (A B C A B C ...): one list of results each."""
    results: list[list[T]] = [[] for _ in runs]
    for _ in range(rounds):
        for index, run in enumerate(runs):
            results[index].append(run())
    return results


def format_table(rows: Sequence[Row]) -> str:
    header = ("measure", "A", "B", "ratio", "target", "verdict")
    lines = [
        (r.measure, r.a, r.b, "-" if r.ratio is None else f"{r.ratio:.2f}x", r.target, r.verdict)
        for r in rows
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=True)]
    out = [
        "| "
        + " | ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True))
        + " |",
        "|" + "|".join("-" * (width + 2) for width in widths) + "|",
    ]
    for line in lines:
        out.append(
            "| "
            + " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
            + " |"
        )
    notes = [f"- {r.measure}: {r.note}" for r in rows if r.note]
    return "\n".join(out + (["", *notes] if notes else []))


def main(measure: Callable[[bool], list[Row]]) -> None:
    """Command line of one measure module: print its rows, or write them as JSON to --out."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny counts, no verdicts")
    parser.add_argument("--out", help="write the rows as JSON here instead of printing them")
    args = parser.parse_args()
    rows = measure(args.smoke)
    if args.out:
        Path(args.out).write_text(json.dumps([asdict(r) for r in rows]))
    else:
        print(format_table(rows))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def pinned(command: Sequence[str], cpu: int) -> list[str]:
    """``command`` pinned to one CPU with taskset when there is more than one (else as is)."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu), *command]
    return list(command)


def uvicorn_command(factory: str, port: int) -> list[str]:
    """uvicorn serving ``bench.apps.one_route:<factory>`` on 127.0.0.1, pinned to CPU 0 (the load
    generator gets CPU 1), without uvicorn's own access log."""
    command = [PYTHON, "-m", "uvicorn", "--factory", f"bench.apps.one_route:{factory}"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    command += ["--log-level", "warning", "--loop", "uvloop", "--http", "httptools"]
    return pinned(command, 0)


def bench_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: this one without the library's own settings,
    dummy credentials, a region, and the repository on the import path."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "RATE_LIMIT", "CORS_", "LOG_LEVEL"))
    }
    env.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        PYTHONPATH=str(ROOT),
        PYTHONDONTWRITEBYTECODE="",
    )
    env.pop("PYTHONDONTWRITEBYTECODE")
    env.update(extra)
    return env


@contextmanager
def process(
    command: Sequence[str], *, port: int | None = None, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a child (output discarded), wait for ``port``, and stop it on exit."""
    child = subprocess.Popen(
        list(command),
        cwd=ROOT,
        env=env if env is not None else bench_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        if port is not None:
            try:
                wait_for_port(port, child)
            except RuntimeError:
                child.kill()
                _, err = child.communicate()
                raise RuntimeError(err.decode(errors="replace")[-2000:]) from None
        yield child
    finally:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if child.stderr is not None:
            child.stderr.close()


def http_api_event(path: str = "/hello/world", source_ip: str = "198.51.100.23") -> dict[str, Any]:
    """The package's sample HTTP API (payload 2.0) event, from a browser page on ORIGIN."""
    event: dict[str, Any] = json.loads(EVENT_FILE.read_text())
    event["rawPath"] = path
    event["rawQueryString"] = ""
    event.pop("queryStringParameters", None)
    event["headers"] = {**event["headers"], "origin": ORIGIN}
    event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["sourceIp"] = source_ip
    return event


class Context:
    """The parts of a Lambda context object the handlers read."""

    function_name = "bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    memory_limit_in_mb: int | str = 1024
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "2024/01/01/[$LATEST]bench"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send what is printed (the stack's JSON access-log lines) to /dev/null meanwhile."""
    with open(os.devnull, "w") as devnull, redirect_stdout(devnull):
        yield


def cpu_and_wall(run: Callable[[], object], count: int) -> tuple[float, float]:
    """Microseconds per call of ``run`` over ``count`` calls: (this thread's CPU, wall).

    The calling thread's CPU, not the process's: the peer composition's rate limiter (limits'
    MemoryStorage) expires its counters in a timer thread every 10 ms, which process CPU time
    charged to whichever variant ran next, ~10 % of a block.
    """
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(count):
        run()
    return (
        (time.thread_time() - cpu) / count * 1e6,
        (time.perf_counter() - wall) / count * 1e6,
    )
