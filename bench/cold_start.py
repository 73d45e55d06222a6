"""Measure 1, cold start: a fresh process imports a handler module and answers its first HTTP
API event. Our stack uses DynamoDB storage (RATE_LIMIT_TABLE set), so its first invocation makes
one real UpdateItem round trip, to the local stub (bench/_stub.py) started once here.

The variants run in rotation (A B C ... A B C), medians of import + first invoke. One reference
variant runs the demo stack without usable bytecode, as on Lambda from a zip without .pyc (its
file system is read-only, so nothing compiled is kept): what deploy/bundle_dependencies.py saves.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile

from bench._common import (
    ORIGIN,
    PYTHON,
    ROOT,
    Row,
    Target,
    alternate,
    bench_env,
    free_port,
    http_api_event,
    median,
    process,
    row,
)

_VARIANTS = {
    "demo_stack": "bench.apps.lambda_demo_stack",
    "demo_bare": "bench.apps.lambda_demo_bare",
    "demo_peer": "bench.apps.lambda_demo_peer",
    "demo_boto3": "bench.apps.lambda_demo_boto3",
    "one_stack": "bench.apps.lambda_one_stack",
    "one_bare": "bench.apps.lambda_one_bare",
    "demo_stack_no_bytecode": "bench.apps.lambda_demo_stack",
}


def _cold(module: str, env: dict[str, str]) -> dict[str, float]:
    read, write = os.pipe()
    try:
        child = subprocess.run(
            [PYTHON, "-m", "bench.apps.cold", module, str(write)],
            cwd=ROOT,
            env=env,
            pass_fds=(write,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        os.close(write)
        write = -1
        with os.fdopen(read, "r") as source:
            read = -1
            text = source.read()
    finally:
        for fd in (read, write):
            if fd >= 0:
                os.close(fd)
    if child.returncode != 0 or not text:
        raise RuntimeError(f"{module}: {child.stderr.decode(errors='replace')[-2000:]}")
    result: dict[str, float] = json.loads(text)
    if result["status"] != 200:
        raise RuntimeError(f"{module} answered {result['status']}, not 200")
    return result


def _available(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def measure(smoke: bool) -> list[Row]:
    rounds = 1 if smoke else 20
    port = free_port()
    env = bench_env(
        RATE_LIMIT_TABLE="bench-rate-limits",
        AWS_ENDPOINT_URL_DYNAMODB=f"http://127.0.0.1:{port}",
        CORS_ALLOW_ORIGINS=ORIGIN,
        BENCH_EVENT=json.dumps(http_api_event()),
    )
    have_peers = _available("slowapi") and _available("asgi_correlation_id")
    names = [name for name in _VARIANTS if have_peers or name != "demo_peer"]
    with (
        process([PYTHON, "-m", "bench._stub", "--port", str(port)], port=port),
        tempfile.TemporaryDirectory(prefix="no-bytecode-") as empty_cache,
    ):
        # Bytecode looked for in an empty directory and never written: every module compiled.
        envs = {name: env for name in names}
        envs["demo_stack_no_bytecode"] = {
            **env,
            "PYTHONPYCACHEPREFIX": empty_cache,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        if not smoke:  # compile bytecode and warm the page cache, uncounted
            for name in names:
                _cold(_VARIANTS[name], envs[name])
        results = alternate(
            [functools.partial(_cold, _VARIANTS[name], envs[name]) for name in names], rounds
        )
    # The verdicts use CPU time (user + system) of import + first invoke: on a shared 2-core
    # machine wall time also counts waiting for the CPU. Wall-clock medians are in the note.
    ms = {
        name: median([r["cpu_ms"] for r in runs]) for name, runs in zip(names, results, strict=True)
    }
    wall = {
        name: median([_total(r) for r in runs]) for name, runs in zip(names, results, strict=True)
    }
    invoke = {
        name: median([r["invoke_ms"] for r in runs])
        for name, runs in zip(names, results, strict=True)
    }
    note = (
        f"CPU ms of import + first invoke, median of {rounds} fresh processes each; wall ms: "
        + ", ".join(f"{name} {wall[name]:.0f}" for name in names)
        + "; first invoke alone (wall): "
        + ", ".join(f"{name} {invoke[name]:.1f}" for name in names)
    )
    rows = [
        row(
            "cold start (CPU): demo FastAPI, full stack (DynamoDB) vs bare Mangum",
            ms["demo_stack"],
            ms["demo_bare"],
            "ms",
            Target(1.10),
            smoke=smoke,
            note=note,
        ),
        row(
            "cold start (CPU): one-route Starlette, full stack (DynamoDB) vs bare Mangum",
            ms["one_stack"],
            ms["one_bare"],
            "ms",
            Target(1.20),
            smoke=smoke,
        ),
    ]
    if "demo_peer" in ms:
        rows.append(
            row(
                "cold start (CPU): demo, peer composition vs bare Mangum",
                ms["demo_peer"],
                ms["demo_bare"],
                "ms",
                None,
                smoke=smoke,
            )
        )
    rows.append(
        row(
            "cold start (CPU): demo full stack, no bytecode (a zip without .pyc) vs with",
            ms["demo_stack_no_bytecode"],
            ms["demo_stack"],
            "ms",
            None,
            smoke=smoke,
        )
    )
    rows.append(
        row(
            "cold start (CPU): demo, boto3 client at import vs bare Mangum",
            ms["demo_boto3"],
            ms["demo_bare"],
            "ms",
            None,
            smoke=smoke,
        )
    )
    return rows


def _total(result: dict[str, float]) -> float:
    return result["import_ms"] + result["invoke_ms"]


if __name__ == "__main__":
    from bench._common import main

    main(measure)
