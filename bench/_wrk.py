"""Running wrk (the HTTP load generator, Debian package ``wrk``) and reading its req/s."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from bench._common import ORIGIN, alternate, median, pinned

_RATE = re.compile(r"Requests/sec:\s+([0-9.]+)")
_TOTAL = re.compile(r"(\d+) requests in")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
# A stray failure under full load (a connection reset) is tolerated; more means a broken run.
_MAX_FAILURES = 0.01

# POST a small JSON body, as a DynamoDB client does (for load on the stub itself).
_POST_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"TableName":"bench-rate-limits","Key":{"pk":{"S":"k"}}}'
wrk.headers["Content-Type"] = "application/x-amz-json-1.0"
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def requests_per_second(
    url: str, *, connections: int = 32, seconds: float = 3.0, cpu: int = 1, post: bool = False
) -> float:
    """wrk with one thread pinned to ``cpu``, ``connections`` keep-alive connections, for
    ``seconds``; raises if more than 1 % of requests failed (non-2xx/3xx or socket errors)."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "-H",
        f"Origin: {ORIGIN}",
    ]
    with tempfile.TemporaryDirectory() as directory:
        if post:
            script = Path(directory) / "post.lua"
            script.write_text(_POST_SCRIPT)
            command += ["-s", str(script)]
        output = subprocess.run(
            pinned([*command, url], cpu), capture_output=True, text=True, check=True
        ).stdout
    total = _TOTAL.search(output)
    non_2xx = _NON_2XX.search(output)
    sockets = _SOCKET_ERRORS.search(output)
    failures = (int(non_2xx[1]) if non_2xx else 0) + (
        sum(int(count) for count in sockets.groups()) if sockets else 0
    )
    if total is None or failures > _MAX_FAILURES * max(1, int(total[1])):
        raise RuntimeError(f"wrk saw failures against {url}:\n{output}")
    match = _RATE.search(output)
    if match is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{output}")
    return float(match[1])


def alternated_requests_per_second(
    urls: Mapping[str, str], *, seconds: float, rounds: int
) -> dict[str, float]:
    """Median req/s per URL of ``rounds`` wrk runs in rotation (A B A B ...), after one
    uncounted 1 s run against each."""
    for url in urls.values():
        requests_per_second(url, seconds=1)
    results = alternate(
        [functools.partial(requests_per_second, url, seconds=seconds) for url in urls.values()],
        rounds,
    )
    return {name: median(values) for name, values in zip(urls, results, strict=True)}
