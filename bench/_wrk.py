"""Running wrk (the HTTP load generator, Debian package ``wrk``) and reading its req/s."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench._common import ORIGIN, pinned

_RATE = re.compile(r"Requests/sec:\s+([0-9.]+)")
_ERRORS = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)|Socket errors:.*")

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
    ``seconds``; raises if any response was not 2xx/3xx or a socket failed."""
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
    errors = _ERRORS.search(output)
    if errors:
        raise RuntimeError(f"wrk saw failures against {url}:\n{output}")
    match = _RATE.search(output)
    if match is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{output}")
    return float(match[1])
