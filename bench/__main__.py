"""``bench/run [--smoke] [--only NAME ...]``: every measure in its own process, one table.

Each measure writes its rows as JSON; a measure that fails becomes a row saying so, and the
exit status is 1. Figures are ratios against baselines measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import PYTHON, ROOT, Row, bench_env, format_table

MEASURES = (
    "cold_start",
    "warm_invoke",
    "uvicorn_throughput",
    "dynamodb_client",
    "flood",
    "memory_keys",
)


def _run(name: str, smoke: bool) -> tuple[list[Row], str]:
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "rows.json"
        command = [PYTHON, "-m", f"bench.{name}", "--out", str(out)]
        if smoke:
            command.append("--smoke")
        child = subprocess.run(
            command,
            cwd=ROOT,
            env=bench_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        if child.returncode != 0 or not out.exists():
            error = child.stderr.decode(errors="replace").strip().splitlines()
            return [Row(name, "-", "-", None, "-", "FAILED", note=" | ".join(error[-3:]))], (
                child.stderr.decode(errors="replace")
            )
        return [Row(**fields) for fields in json.loads(out.read_text())], ""


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny counts in seconds, no verdicts")
    parser.add_argument("--only", nargs="+", choices=MEASURES, help="run only these measures")
    args = parser.parse_args()
    started = time.perf_counter()
    rows: list[Row] = []
    failed = False
    for name in args.only or MEASURES:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        measured, error = _run(name, args.smoke)
        if error:
            failed = True
            print(error, file=sys.stderr)
        rows += measured
    print(format_table(rows))
    print(
        f"\n{'smoke run' if args.smoke else 'run'} took {time.perf_counter() - started:.0f} s "
        f"on {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
