"""Several OS processes, each with many concurrent tasks, counting on ONE key through
DynamoDBStorage on moto and dynalite: the server-side conditions must hold the limit exactly, as
they do across Lambda instances. Each child's clock is fixed per round, so window boundaries are
crossed only on purpose."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import uuid
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from typing import Any

import pytest

from asgi_lambda_mw.cli import main
from asgi_lambda_mw.exceptions import StorageError
from asgi_lambda_mw.ratelimit.policy import Algorithm, Decision, Rate, apply_hit
from asgi_lambda_mw.ratelimit.storage.dynamodb import DynamoDBStorage
from tests.fleet import run_fleet

PROCESSES = 4
TASKS_PER_PROCESS = 20
RATE = Rate(30, 60)
START = 1_800_000_000.0  # the start of a minute


@pytest.fixture
def atomic_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto apply one DynamoDB request at a time, as DynamoDB applies each write to an item.

    moto's threaded server checks a ConditionExpression and then updates the item in separate,
    unsynchronised steps, so concurrent conditional writes race inside moto itself (measured:
    37 of 30 admitted by a single conditional UpdateItem). The server runs in this process.
    """
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    call_action: Callable[..., Any] = DynamoHandler.call_action

    def one_at_a_time(self: DynamoHandler) -> Any:
        with lock:
            return call_action(self)

    monkeypatch.setattr(DynamoHandler, "call_action", one_at_a_time)


def _child(
    endpoint: str,
    table: str,
    algorithm: Algorithm,
    rounds: tuple[float, ...],
    barrier: Barrier,
    results: multiprocessing.SimpleQueue[tuple[int, int, int]],
) -> None:
    """Runs in a spawned process: one burst of concurrent hits per round, at that round's time."""
    now = [0.0]
    storage = DynamoDBStorage(table, endpoint_url=endpoint, clock=lambda: now[0], timeout=30)

    async def burst() -> tuple[int, int]:
        outcomes = await asyncio.gather(
            *(
                storage.hit("one-client", RATE, algorithm=algorithm)
                for _ in range(TASKS_PER_PROCESS)
            ),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, StorageError):
                raise outcome
        allowed = sum(isinstance(outcome, Decision) and outcome.allowed for outcome in outcomes)
        return allowed, sum(isinstance(outcome, StorageError) for outcome in outcomes)

    async def run() -> None:
        for index, at in enumerate(rounds):
            now[0] = at
            await asyncio.to_thread(barrier.wait, 60)  # every process starts the round together
            allowed, errors = await burst()
            results.put((index, allowed, errors))
        await storage.aclose()

    asyncio.run(run())


def _run_processes(
    endpoint: str, algorithm: Algorithm, rounds: tuple[float, ...]
) -> list[tuple[int, int]]:
    """(allowed, errors) per round, summed over every process."""
    table = f"rate-limit-{uuid.uuid4().hex[:12]}"
    assert main(["table", "create", "--table", table, "--endpoint-url", endpoint]) == 0
    return run_fleet(
        _child, (endpoint, table, algorithm, rounds), processes=PROCESSES, rounds=len(rounds)
    )


def _policy_admits(algorithm: Algorithm, rounds: tuple[float, ...]) -> list[int]:
    """How many of the same hits policy.apply_hit admits in each round, one after another."""
    state, admitted = None, []
    for at in rounds:
        count = 0
        for _ in range(PROCESSES * TASKS_PER_PROCESS):
            state, decision = apply_hit(algorithm, state, RATE, at)
            count += decision.allowed
        admitted.append(count)
    return admitted


@pytest.mark.parametrize("algorithm", ["fixed", "sliding"])
@pytest.mark.usefixtures("atomic_moto")
def test_processes_sharing_a_key_are_admitted_exactly_the_limit(
    dynamodb_endpoint: str, algorithm: Algorithm
) -> None:
    assert _run_processes(dynamodb_endpoint, algorithm, (START + 10,)) == [(RATE.limit, 0)]


@pytest.mark.parametrize(("algorithm", "second_round"), [("fixed", 30), ("sliding", 15)])
@pytest.mark.usefixtures("atomic_moto")
def test_processes_crossing_a_window_boundary_agree_with_the_policy(
    dynamodb_endpoint: str, algorithm: Algorithm, second_round: int
) -> None:
    # The second round is half-way through the next window: the sliding algorithm still
    # weighs half of the first round's 30.
    rounds = (START + 50, START + 90)

    totals = _run_processes(dynamodb_endpoint, algorithm, rounds)

    assert _policy_admits(algorithm, rounds) == [30, second_round]
    assert totals == [(30, 0), (second_round, 0)]


@pytest.mark.usefixtures("atomic_moto")
@pytest.mark.parametrize("algorithm", ["fixed", "sliding"])
async def test_concurrent_tasks_in_one_process_are_admitted_exactly_the_limit(
    dynamodb_endpoint: str, algorithm: Algorithm
) -> None:
    table = f"rate-limit-{uuid.uuid4().hex[:12]}"
    assert main(["table", "create", "--table", table, "--endpoint-url", dynamodb_endpoint]) == 0
    storage = DynamoDBStorage(
        table, endpoint_url=dynamodb_endpoint, clock=lambda: START + 10, timeout=30
    )

    decisions = await asyncio.gather(
        *(storage.hit("one-client", RATE, algorithm=algorithm) for _ in range(100))
    )

    assert sum(decision.allowed for decision in decisions) == RATE.limit
    await storage.aclose()
