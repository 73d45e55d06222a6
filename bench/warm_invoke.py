"""Measure 2, warm invocations: one process answers HTTP API events through
``lambda_handler(compose(app))`` (memory storage, every request counted and let through),
bare ``Mangum(app)`` with its default lifespan "auto", and the peer composition under Mangum,
all on the same one-route Starlette app. Each target is its own alternation of two handlers
(blocks of invocations, A B A B ...), medians per block.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from bench._common import (
    Context,
    Row,
    Target,
    alternate,
    cpu_and_wall,
    http_api_event,
    median,
    quiet_stdout,
    row,
)
from bench.apps import one_route

Handler = Callable[[dict[str, Any], Any], Any]


def _handlers() -> dict[str, Handler]:
    from mangum import Mangum

    from asgi_lambda_mw import lambda_handler

    handlers: dict[str, Handler] = {
        "stack": lambda_handler(one_route.stack()),
        "mangum": Mangum(one_route.bare(), lifespan="auto"),
    }
    try:
        handlers["peer"] = Mangum(one_route.peer(), lifespan="auto")
    except ImportError:
        pass
    return handlers


def _alternated(
    handlers: dict[str, Handler], names: tuple[str, str], block: int, rounds: int
) -> dict[str, tuple[float, float]]:
    """(CPU, wall) µs per invocation of two handlers, the medians of ``rounds`` alternated
    blocks of ``block`` invocations each."""
    event, context = http_api_event(), Context()
    results = alternate(
        [
            functools.partial(
                cpu_and_wall, functools.partial(handlers[name], event, context), block
            )
            for name in names
        ],
        rounds,
    )
    return {
        name: (median([r[0] for r in runs]), median([r[1] for r in runs]))
        for name, runs in zip(names, results, strict=True)
    }


def measure(smoke: bool) -> list[Row]:
    block, rounds = (50, 2) if smoke else (1000, 20)
    asyncio.set_event_loop(asyncio.new_event_loop())
    event, context = http_api_event(), Context()
    with quiet_stdout():
        handlers = _handlers()
        for name, handler in handlers.items():
            answer = handler(event, context)
            if answer["statusCode"] != 200:
                raise RuntimeError(f"{name} answered {answer['statusCode']}")
        # Two separate comparisons, the peer last: its rate limiter (limits' MemoryStorage)
        # runs a timer thread after its hits, which slowed whichever handler came next.
        comparisons = [("stack", "mangum")] + ([("stack", "peer")] if "peer" in handlers else [])
        for pair in comparisons:
            _alternated(handlers, pair, block, 1)  # warm-up
        figures = [_alternated(handlers, pair, block, rounds) for pair in comparisons]
    rows = []
    for (a, b), measured, target, title in zip(
        comparisons,
        figures,
        (Target(1.0), Target(0.6)),
        (
            "full stack (memory) vs Mangum lifespan auto",
            "full stack vs peer composition under Mangum",
        ),
        strict=False,
    ):
        note = (
            f"CPU µs per invocation (this thread), median of {rounds} blocks of {block} "
            f"(x{rounds * block} per handler, {a} and {b} alternated, one process); "
            f"wall µs: {a} {measured[a][1]:.0f}, {b} {measured[b][1]:.0f}"
        )
        rows.append(
            row(
                f"warm invoke (CPU): {title}",
                measured[a][0],
                measured[b][0],
                "µs",
                target,
                smoke=smoke,
                note=note,
            )
        )
    return rows


if __name__ == "__main__":
    from bench._common import main

    main(measure)
