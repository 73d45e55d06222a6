"""One contract for every rate-limit storage: MemoryStorage, and DynamoDBStorage on moto and on
dynalite (each test gets its own table, created by `asgi-lambda table create`).

Every storage must decide exactly as ``policy.apply_hit`` does for the same hits at the same times.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from asgi_lambda_mw.cli import main
from asgi_lambda_mw.ratelimit.policy import ALGORITHMS, Algorithm, Rate, WindowCounts, apply_hit
from asgi_lambda_mw.ratelimit.storage.base import Storage
from asgi_lambda_mw.ratelimit.storage.dynamodb import DynamoDBStorage
from asgi_lambda_mw.ratelimit.storage.memory import MemoryStorage

# A realistic epoch time at the start of a minute (and so of every shorter window).
START = 1_800_000_000.0
assert START % 3600 == 0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Backend:
    """A storage under test and a way to look at what it left behind."""

    storage: Storage
    items: Callable[[], list[dict[str, Any]]]
    """The items in the table; an empty list for MemoryStorage."""


def _table_items(endpoint: str, table: str) -> list[dict[str, Any]]:
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    items: list[dict[str, Any]] = client.scan(TableName=table, ConsistentRead=True)["Items"]
    return items


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "moto", pytest.param("dynalite", marks=pytest.mark.dynalite)])
async def backend(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[Backend]:
    if request.param == "memory":
        yield Backend(MemoryStorage(clock=clock), list)
        return
    endpoint = str(request.getfixturevalue(f"{request.param}_endpoint"))
    table = f"rate-limit-{uuid.uuid4().hex[:12]}"
    assert main(["table", "create", "--table", table, "--endpoint-url", endpoint]) == 0
    storage = DynamoDBStorage(table, endpoint_url=endpoint, clock=clock, timeout=5.0)
    try:
        yield Backend(storage, lambda: _table_items(endpoint, table))
    finally:
        await storage.aclose()


async def _allowed(storage: Storage, hits: int, rate: Rate, algorithm: Algorithm) -> list[bool]:
    return [(await storage.hit("client", rate, algorithm=algorithm)).allowed for _ in range(hits)]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_admits_exactly_the_limit_then_denies(backend: Backend, algorithm: Algorithm) -> None:
    rate = Rate(5, 60)

    assert await _allowed(backend.storage, 7, rate, algorithm) == [True] * 5 + [False] * 2


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_remaining_counts_down_to_zero(backend: Backend, algorithm: Algorithm) -> None:
    rate = Rate(3, 60)

    remaining = [
        (await backend.storage.hit("client", rate, algorithm=algorithm)).remaining for _ in range(4)
    ]

    assert remaining == [2, 1, 0, 0]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_denied_hits_are_not_counted(backend: Backend, algorithm: Algorithm) -> None:
    rate = Rate(5, 60)
    assert (await backend.storage.hit("client", rate, algorithm=algorithm, cost=4)).allowed
    denied = await backend.storage.hit("client", rate, algorithm=algorithm, cost=3)

    fits = await backend.storage.hit("client", rate, algorithm=algorithm, cost=1)

    assert (denied.allowed, fits.allowed, fits.remaining) == (False, True, 0)


async def test_sliding_retries_while_denied_do_not_push_the_next_window(
    backend: Backend, clock: Clock
) -> None:
    rate = Rate(2, 10)
    await _allowed(backend.storage, 2 + 8, rate, "sliding")  # 2 admitted, 8 retries denied

    clock.advance(15)  # half of the previous window still weighs: 2 * 0.5 = 1 of 2 used

    assert await _allowed(backend.storage, 2, rate, "sliding") == [True, False]


async def test_fixed_admits_again_in_the_next_window(backend: Backend, clock: Clock) -> None:
    rate = Rate(3, 60)
    clock.advance(20)
    await _allowed(backend.storage, 3, rate, "fixed")
    clock.advance(39.9)
    still_denied = await backend.storage.hit("client", rate, algorithm="fixed")

    clock.now = START + 60  # the next window starts
    decisions = [await backend.storage.hit("client", rate, algorithm="fixed") for _ in range(4)]

    assert not still_denied.allowed
    assert still_denied.retry_after == pytest.approx(0.1)
    assert [decision.allowed for decision in decisions] == [True, True, True, False]


async def test_sliding_admits_after_retry_after_and_not_before(
    backend: Backend, clock: Clock
) -> None:
    rate = Rate(3, 10)
    clock.advance(2)
    await _allowed(backend.storage, 3, rate, "sliding")
    denied = await backend.storage.hit("client", rate, algorithm="sliding")
    assert not denied.allowed
    denied_at = clock.now

    clock.now = denied_at + denied.retry_after - 0.01
    too_early = await backend.storage.hit("client", rate, algorithm="sliding")
    clock.now = denied_at + denied.retry_after + 0.01
    in_time = await backend.storage.hit("client", rate, algorithm="sliding")

    assert denied.retry_after > 8  # past the end of this window: 3 admitted must slide out
    assert (too_early.allowed, in_time.allowed) == (False, True)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_cost_counts_several_units(backend: Backend, algorithm: Algorithm) -> None:
    rate = Rate(10, 60)

    decisions = [
        await backend.storage.hit("client", rate, algorithm=algorithm, cost=cost)
        for cost in (4, 4, 4, 2)
    ]

    assert [(decision.allowed, decision.remaining) for decision in decisions] == [
        (True, 6),
        (True, 2),
        (False, 2),
        (True, 0),
    ]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_cost_above_the_limit_is_never_admitted(
    backend: Backend, algorithm: Algorithm
) -> None:
    rate = Rate(3, 60)

    too_costly = await backend.storage.hit("client", rate, algorithm=algorithm, cost=4)
    later = await backend.storage.hit("client", rate, algorithm=algorithm)

    assert (too_costly.allowed, too_costly.remaining) == (False, 3)
    assert (later.allowed, later.remaining) == (True, 2)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_keys_are_counted_independently(backend: Backend, algorithm: Algorithm) -> None:
    rate = Rate(2, 60)
    for _ in range(3):
        await backend.storage.hit("198.51.100.7", rate, algorithm=algorithm)

    other = await backend.storage.hit("2001:db8::/56", rate, algorithm=algorithm)

    assert (other.allowed, other.remaining) == (True, 1)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_rates_are_counted_independently(backend: Backend, algorithm: Algorithm) -> None:
    per_second, per_minute = Rate(2, 1), Rate(5, 60)
    for _ in range(3):
        await backend.storage.hit("client", per_second, algorithm=algorithm)

    minute = await backend.storage.hit("client", per_minute, algorithm=algorithm)

    assert (minute.allowed, minute.remaining) == (True, 4)


async def test_sliding_blocks_a_double_burst_at_a_window_edge(
    backend: Backend, clock: Clock
) -> None:
    rate = Rate(10, 60)
    clock.advance(59)
    first_burst = await _allowed(backend.storage, 10, rate, "sliding")

    clock.advance(2)  # a new window, but 58 of the last 60 seconds saw all 10
    second_burst = await _allowed(backend.storage, 10, rate, "sliding")

    assert all(first_burst)
    assert not any(second_burst)


async def test_fixed_admits_a_double_burst_at_a_window_edge(backend: Backend, clock: Clock) -> None:
    """The fixed window's known weakness, which the sliding algorithm exists to avoid."""
    rate = Rate(10, 60)
    clock.advance(59)
    first_burst = await _allowed(backend.storage, 10, rate, "fixed")

    clock.advance(2)
    second_burst = await _allowed(backend.storage, 10, rate, "fixed")

    assert all(first_burst) and all(second_burst)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_decisions_equal_the_policy_for_the_same_hits(
    backend: Backend, clock: Clock, algorithm: Algorithm
) -> None:
    rng = random.Random(20240601)
    rates = (Rate(5, 10), Rate(12, 60))
    model: dict[tuple[str, Rate], WindowCounts] = {}
    for _ in range(120):
        clock.advance(rng.choice((0.0, 0.0, 0.3, 1.7, 4.1, 9.5, 23.0)))
        key, rate, cost = rng.choice("ab"), rng.choice(rates), rng.choice((1, 1, 1, 2, 6))
        counts, expected = apply_hit(algorithm, model.get((key, rate)), rate, clock.now, cost)
        model[(key, rate)] = counts

        actual = await backend.storage.hit(key, rate, algorithm=algorithm, cost=cost)

        assert actual == expected, (key, rate, cost, clock.now)


async def test_sliding_ignores_expired_items_still_in_the_table(
    backend: Backend, clock: Clock
) -> None:
    rate = Rate(4, 60)
    await _allowed(backend.storage, 4, rate, "sliding")
    clock.advance(61)
    assert not (await backend.storage.hit("client", rate, algorithm="sliding")).allowed

    clock.advance(2 * 60)  # past the TTL of everything counted so far

    assert await _allowed(backend.storage, 5, rate, "sliding") == [True] * 4 + [False]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_items_past_their_ttl_count_for_nothing(
    backend: Backend, clock: Clock, algorithm: Algorithm
) -> None:
    rate = Rate(3, 60)
    await _allowed(backend.storage, 3, rate, algorithm)

    clock.now = START + 2 * 60 + 1
    left_in_table = backend.items()
    allowed = await _allowed(backend.storage, 4, rate, algorithm)

    assert allowed == [True] * 3 + [False]
    # DynamoDB's TTL deletes items up to two days late: the storage must not rely on it.
    assert all(int(item["expires_at"]["N"]) < clock.now for item in left_in_table)
    assert len(left_in_table) == (0 if isinstance(backend.storage, MemoryStorage) else 1)
