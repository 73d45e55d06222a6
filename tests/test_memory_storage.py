"""MemoryStorage beyond the shared contract: its memory stays bounded and it is safe to share
between threads (a sync test client, several event loops)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from asgi_lambda_mw.exceptions import ConfigurationError
from asgi_lambda_mw.ratelimit.policy import ALGORITHMS, Algorithm, Rate
from asgi_lambda_mw.ratelimit.storage.base import Storage
from asgi_lambda_mw.ratelimit.storage.memory import MemoryStorage

START = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def test_is_a_storage() -> None:
    assert isinstance(MemoryStorage(), Storage)


async def test_keeps_at_most_max_keys_counters() -> None:
    storage = MemoryStorage(max_keys=3, clock=Clock())

    for client in range(10):
        await storage.hit(f"client-{client}", Rate(5, 60))

    assert len(storage) == 3


async def test_evicts_the_least_recently_used_counter_first() -> None:
    storage = MemoryStorage(max_keys=2, clock=Clock())
    rate = Rate(1, 60)
    await storage.hit("first", rate)
    await storage.hit("second", rate)
    assert not (await storage.hit("first", rate)).allowed  # "first" is now the most recent

    await storage.hit("third", rate)  # evicts "second"

    assert not (await storage.hit("first", rate)).allowed
    assert (await storage.hit("second", rate)).allowed


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_purges_counters_whose_windows_have_passed(algorithm: Algorithm) -> None:
    clock = Clock()
    storage = MemoryStorage(clock=clock)
    for client in range(50):
        await storage.hit(f"client-{client}", Rate(5, 60), algorithm=algorithm)

    clock.now += 2 * 60
    await storage.hit("latecomer", Rate(5, 60), algorithm=algorithm)

    assert len(storage) == 1


async def test_keeps_counters_that_still_weigh_on_the_sliding_window() -> None:
    clock = Clock()
    storage = MemoryStorage(clock=clock)
    await storage.hit("early", Rate(5, 60))

    clock.now += 60 + 30  # half of the previous window still counts
    await storage.hit("latecomer", Rate(5, 60))

    assert len(storage) == 2


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_threads_with_their_own_event_loops_admit_exactly_the_limit(
    algorithm: Algorithm,
) -> None:
    storage = MemoryStorage(clock=Clock())
    rate = Rate(50, 60)
    allowed: list[int] = []
    barrier = threading.Barrier(8)

    async def hammer() -> int:
        decisions = await asyncio.gather(
            *(storage.hit("client", rate, algorithm=algorithm) for _ in range(40))
        )
        return sum(decision.allowed for decision in decisions)

    def worker() -> None:
        barrier.wait()
        allowed.append(asyncio.run(hammer()))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(allowed) == 50


def test_max_keys_below_one_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="max_keys"):
        MemoryStorage(max_keys=0)
