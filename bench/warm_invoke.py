"""Measure 2, warm invocations: one process answers HTTP API events through
``lambda_handler(compose(app))`` (memory storage, every request counted and let through),
bare ``Mangum(app)`` with its default lifespan "auto", and the peer composition under Mangum,
all on the same one-route Starlette app. Blocks of invocations in rotation, medians per block.
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


def _handlers() -> dict[str, Callable[[dict[str, Any], Any], Any]]:
    from mangum import Mangum

    from asgi_lambda_mw import lambda_handler

    handlers: dict[str, Callable[[dict[str, Any], Any], Any]] = {
        "stack": lambda_handler(one_route.stack()),
        "mangum": Mangum(one_route.bare(), lifespan="auto"),
    }
    try:
        handlers["peer"] = Mangum(one_route.peer(), lifespan="auto")
    except ImportError:
        pass
    return handlers


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
            cpu_and_wall(functools.partial(handler, event, context), block)  # warm-up
        results = alternate(
            [
                functools.partial(cpu_and_wall, functools.partial(handler, event, context), block)
                for handler in handlers.values()
            ],
            rounds,
        )
    cpu = {name: median([r[0] for r in runs]) for name, runs in zip(handlers, results, strict=True)}
    wall = {
        name: median([r[1] for r in runs]) for name, runs in zip(handlers, results, strict=True)
    }
    note = (
        f"CPU µs per invocation, median of {rounds} blocks of {block} (x{rounds * block} per "
        "handler, in rotation, one process); wall µs: "
        + ", ".join(f"{name} {value:.0f}" for name, value in wall.items())
    )
    rows = [
        row(
            "warm invoke (CPU): full stack (memory) vs Mangum lifespan auto",
            cpu["stack"],
            cpu["mangum"],
            "µs",
            Target(1.0),
            smoke=smoke,
            note=note,
        )
    ]
    if "peer" in cpu:
        rows.append(
            row(
                "warm invoke (CPU): full stack vs peer composition under Mangum",
                cpu["stack"],
                cpu["peer"],
                "µs",
                Target(0.6),
                smoke=smoke,
            )
        )
    return rows


if __name__ == "__main__":
    from bench._common import main

    main(measure)
