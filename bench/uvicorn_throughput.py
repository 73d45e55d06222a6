"""Measure 3, uvicorn throughput: wrk, 32 connections on 127.0.0.1, against the one-route
Starlette app bare, inside our stack (memory storage, every request counted and let through)
and inside the peer composition. One uvicorn worker (uvloop, httptools) pinned to CPU 0, wrk
pinned to CPU 1, so the load generator does not take the server's core. Runs in rotation.
"""

from __future__ import annotations

import contextlib

from bench import _wrk
from bench._common import (
    Row,
    Target,
    free_port,
    process,
    row,
    skipped,
    uvicorn_command,
)


def measure(smoke: bool) -> list[Row]:
    name = "uvicorn req/s: full stack (memory) vs bare app"
    if not _wrk.available():
        return [skipped(name, "wrk is not installed (apt-get install wrk)")]
    seconds, rounds = (1.0, 1) if smoke else (3.0, 6)
    factories = ["stack", "bare", "floor"]
    try:
        import asgi_correlation_id  # noqa: F401
        import slowapi  # noqa: F401

        factories.append("peer")
    except ImportError:
        pass
    ports = {factory: free_port() for factory in factories}
    with contextlib.ExitStack() as servers:
        for factory, port in ports.items():
            servers.enter_context(process(uvicorn_command(factory, port), port=port))
        urls = {factory: f"http://127.0.0.1:{port}/hello/world" for factory, port in ports.items()}
        rps = _wrk.alternated_requests_per_second(urls, seconds=seconds, rounds=rounds)
    note = f"median req/s of {rounds} wrk runs of {seconds:.0f} s each, in rotation"
    rows = [
        row(
            name,
            rps["stack"],
            rps["bare"],
            "req/s",
            Target(0.85, at_most=False),
            smoke=smoke,
            digits=0,
            note=note,
        ),
        row(
            "uvicorn req/s: floor (3 pass-through layers + 1 JSON line) vs bare app",
            rps["floor"],
            rps["bare"],
            "req/s",
            None,
            smoke=smoke,
            digits=0,
        ),
    ]
    if "peer" in rps:
        rows.append(
            row(
                "uvicorn req/s: peer composition vs bare app",
                rps["peer"],
                rps["bare"],
                "req/s",
                None,
                smoke=smoke,
                digits=0,
            )
        )
    return rows


if __name__ == "__main__":
    from bench._common import main

    main(measure)
