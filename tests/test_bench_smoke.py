"""bench/run --smoke: every benchmark script still runs end to end (tiny counts, no verdicts).

Speed is never asserted here; BENCHMARKS.md holds the figures. Rows whose tools (wrk) or peer
packages (slowapi, asgi-correlation-id: the ``bench`` extra) are missing are skipped by the
scripts themselves.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_run_smoke_prints_one_table_with_every_measure() -> None:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    result = subprocess.run(
        [str(ROOT / "bench" / "run"), "--smoke"],
        cwd=ROOT,
        env={**env, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout
    assert "| measure" in table and "| ratio" in table
    for measure in (
        "cold start",
        "warm invoke",
        "uvicorn req/s",
        "DynamoDB client CPU/call",
        "flood",
        "MemoryStorage",
    ):
        assert measure in table, f"no {measure!r} row in:\n{table}"
    assert "FAILED" not in table
