"""Run one function in several spawned OS processes that start together, and sum what they
report per round: how the multi-process exactness tests drive one key from a fleet."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

_spawn = multiprocessing.get_context("spawn")


def run_fleet(
    target: Callable[..., None], args: tuple[Any, ...], *, processes: int, rounds: int
) -> list[tuple[int, int]]:
    """Start ``processes`` copies of ``target(*args, barrier, results)``; each puts
    ``(round, first, second)`` tuples on ``results``. Returns the per-round sums of both counts.
    Every process must exit with status 0 within two minutes."""
    barrier = _spawn.Barrier(processes)
    results: multiprocessing.SimpleQueue[tuple[int, int, int]] = _spawn.SimpleQueue()
    fleet = [
        _spawn.Process(target=target, args=(*args, barrier, results)) for _ in range(processes)
    ]
    for process in fleet:
        process.start()
    try:
        for process in fleet:
            process.join(timeout=120)
        assert [process.exitcode for process in fleet] == [0] * processes
    finally:
        for process in fleet:
            if process.is_alive():
                process.kill()
                process.join()
    totals = [(0, 0)] * rounds
    while not results.empty():
        index, first, second = results.get()
        totals[index] = (totals[index][0] + first, totals[index][1] + second)
    return totals
