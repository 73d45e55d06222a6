"""The rate limiter's storage failing under the whole stack: compose(app) with DynamoDBStorage
talking to a real DynamoDB-compatible server on loopback through tests.faults.FaultProxy
(stopped, silent, slow, closing, resetting, throttling, 500/503, lost answers), then recovering;
and exactness under load: several processes x concurrent clients on one key across windows.

Fail open serves every request within the time budget with one warning a minute; fail closed
answers a JSON 503 with Retry-After; neither ever answers 500, raises out of lambda_handler or
hangs. Results are summarised in RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_lambda_mw.cli import main
from asgi_lambda_mw.handler import LambdaHandler, lambda_handler
from asgi_lambda_mw.ratelimit.policy import Algorithm, Rate, WindowCounts, apply_hit
from asgi_lambda_mw.ratelimit.storage.dynamodb import DynamoDBStorage
from asgi_lambda_mw.stack import compose
from asgi_lambda_mw.types import ASGIApp

from .faults import (
    CLOSE,
    DROP,
    FORWARD,
    INTERNAL_ERROR,
    LOST_ANSWER,
    PROVISIONED_THROUGHPUT_EXCEEDED,
    RESET,
    SERVICE_UNAVAILABLE,
    THROTTLING,
    TRUNCATED_ANSWER,
    Fault,
    FaultProxy,
    delay,
)
from .fleet import run_fleet
from .lambda_events import LambdaContext, http_api_event, rest_event
from .test_storage_multiprocess import atomic_moto  # noqa: F401  (a fixture)

START = 1_800_000_000.0  # the start of a minute
LIMIT = 5
CLIENT = ("203.0.113.7", 40000)
ORIGIN = "https://app.example"
BUDGET = 0.25  # the middleware's default time budget (seconds): a loaded CI machine has slowed
# moto past 0.1 s in a request that should have been answered
# Generous: the budget plus scheduling noise on a loaded CI machine; a hang would be 30 s+.
LATENCY_BOUND = BUDGET + 1.5
STOPPED = "stopped"  # not a proxy fault: the proxy's port is closed

# Faults during which nothing reaches the server: counting must resume exactly where it was.
CLEAN_FAULTS: dict[str, Fault | str] = {
    "stopped": STOPPED,
    "silent": DROP,
    "closes": CLOSE,
    "resets": RESET,
    "provisioned-throughput-exceeded": PROVISIONED_THROUGHPUT_EXCEEDED,
    "throttling": THROTTLING,
    "500": INTERNAL_ERROR,
    "503": SERVICE_UNAVAILABLE,
}
# Faults after which writes do land (late, or with their answer lost).
LANDING_FAULTS: dict[str, Fault | str] = {
    "slow": delay(0.5),
    "lost-answer": LOST_ANSWER,
    "truncated-answer": TRUNCATED_ANSWER,
}
ALL_FAULTS = {**CLEAN_FAULTS, **LANDING_FAULTS}


class Clock:
    """The middleware's monotonic clock (log throttling, deny cache), moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _app() -> Starlette:
    async def page(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/", page)])


def _new_table(endpoint: str) -> str:
    table = f"rate-limit-{uuid.uuid4().hex[:12]}"
    assert main(["table", "create", "--table", table, "--endpoint-url", endpoint]) == 0
    return table


def _scan(endpoint: str, table: str) -> list[dict[str, Any]]:
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    items: list[dict[str, Any]] = client.scan(TableName=table, ConsistentRead=True)["Items"]
    return items


def _counted(endpoint: str, table: str) -> int:
    """Everything admitted so far, read from the table behind the proxy's back."""
    return sum(int(item["cur"]["N"]) for item in _scan(endpoint, table))


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_endpoint) as proxy:
        yield proxy


@pytest.fixture
def table(moto_endpoint: str) -> str:
    return _new_table(moto_endpoint)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _stack(
    proxy: FaultProxy, table: str, clock: Clock, *, fail_open: bool = True
) -> tuple[ASGIApp, DynamoDBStorage]:
    storage = DynamoDBStorage(table, endpoint_url=proxy.url, clock=lambda: START + 10)
    app = compose(
        _app(),
        rate_limit={
            "rate": f"{LIMIT}/minute",
            "storage": storage,
            "fail_open": fail_open,
            "timeout": BUDGET,
            "clock": clock,
        },
        cors={"allow_origins": [ORIGIN]},
        tracing={"install_log_handler": False},
    )
    return app, storage


def _inject(proxy: FaultProxy, fault: Fault | str) -> None:
    if fault == STOPPED:
        proxy.stop()
    else:
        assert isinstance(fault, Fault)
        proxy.fault = fault


def _recover(proxy: FaultProxy, fault: Fault | str) -> None:
    if fault == STOPPED:
        proxy.start()
    else:
        proxy.fault = FORWARD
    proxy.wait_settled()


class Timed:
    """Requests through httpx's ASGI transport, each one timed."""

    def __init__(self, app: ASGIApp) -> None:
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=CLIENT), base_url="http://testserver"
        )
        self.latencies: list[float] = []

    async def get(self) -> httpx.Response:
        started = time.perf_counter()
        response = await self.client.get("/", headers={"Origin": ORIGIN})
        self.latencies.append(time.perf_counter() - started)
        return response

    async def burst(self, count: int) -> list[httpx.Response]:
        return list(await asyncio.gather(*(self.get() for _ in range(count))))

    async def until_limited(self, most: int = 3 * LIMIT) -> list[httpx.Response]:
        """Requests one after another until the first 429 (included)."""
        responses = []
        for _ in range(most):
            responses.append(await self.get())
            if responses[-1].status_code == 429:
                break
        return responses

    async def aclose(self) -> None:
        await self.client.aclose()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "asgi_lambda_mw.ratelimit" and record.levelno >= logging.WARNING
    ]


# --- fail open ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ALL_FAULTS.values(), ids=ALL_FAULTS.keys())
async def test_fail_open_serves_every_request_within_the_budget(
    proxy: FaultProxy, table: str, clock: Clock, fault: Fault | str
) -> None:
    app, storage = _stack(proxy, table, clock)
    client = Timed(app)
    _inject(proxy, fault)
    try:
        responses = await client.burst(20) + [await client.get() for _ in range(5)]
    finally:
        await client.aclose()
        await storage.aclose()
        _recover(proxy, fault)

    assert [response.status_code for response in responses] == [200] * 25
    assert all(response.json() == {"ok": True} for response in responses)
    assert not any("RateLimit" in response.headers for response in responses)
    assert all(response.headers["X-Request-ID"] for response in responses)
    assert max(client.latencies) < LATENCY_BOUND


@pytest.mark.parametrize("fault", ALL_FAULTS.values(), ids=ALL_FAULTS.keys())
async def test_fail_open_warns_once_however_many_requests_fail(
    proxy: FaultProxy,
    table: str,
    clock: Clock,
    fault: Fault | str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="asgi_lambda_mw")
    app, storage = _stack(proxy, table, clock)
    client = Timed(app)
    _inject(proxy, fault)
    try:
        await client.burst(30)
        warned_first = len(_warnings(caplog))
        clock.now += 61  # a minute later the next failure is reported again
        await client.get()
    finally:
        await client.aclose()
        await storage.aclose()
        _recover(proxy, fault)

    warnings = _warnings(caplog)
    assert warned_first == 1
    assert len(warnings) == 2
    assert "failing open" in warnings[0].getMessage()
    assert "29 similar messages suppressed" in warnings[1].getMessage()
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.parametrize("fault", CLEAN_FAULTS.values(), ids=CLEAN_FAULTS.keys())
async def test_counting_resumes_exactly_where_it_was_when_the_server_is_back(
    proxy: FaultProxy, moto_endpoint: str, table: str, clock: Clock, fault: Fault | str
) -> None:
    app, storage = _stack(proxy, table, clock)
    client = Timed(app)
    try:
        before = [await client.get() for _ in range(2)]
        forwarded = proxy.forwarded
        _inject(proxy, fault)
        during = await client.burst(10)
        nothing_reached_the_server = proxy.forwarded == forwarded
        _recover(proxy, fault)
        after = await client.until_limited()
    finally:
        await client.aclose()
        await storage.aclose()

    assert nothing_reached_the_server
    assert [response.status_code for response in before + during] == [200] * 12
    assert [r.headers["RateLimit"] for r in before] == [
        f'"{LIMIT}-per-60s";r={LIMIT - 1};t=50',
        f'"{LIMIT}-per-60s";r={LIMIT - 2};t=50',
    ]
    assert [response.status_code for response in after] == [200] * (LIMIT - 2) + [429]
    assert all("RateLimit" in response.headers for response in after)
    assert int(after[-1].headers["Retry-After"]) >= 1
    assert _counted(moto_endpoint, table) == LIMIT


@pytest.mark.parametrize("fault", LANDING_FAULTS.values(), ids=LANDING_FAULTS.keys())
async def test_writes_that_landed_during_a_fault_count_once_the_server_is_back(
    proxy: FaultProxy, moto_endpoint: str, table: str, clock: Clock, fault: Fault | str
) -> None:
    # A write the server applied but whose answer never came back (late, lost, cut short) is
    # counted: the limiter errs towards refusing, never towards letting more through.
    app, storage = _stack(proxy, table, clock)
    client = Timed(app)
    try:
        _inject(proxy, fault)
        during = [await client.get()]
        _recover(proxy, fault)
        landed = _counted(moto_endpoint, table)
        after = await client.until_limited()
    finally:
        await client.aclose()
        await storage.aclose()

    admitted = sum(response.status_code == 200 for response in after)
    assert during[0].status_code == 200
    assert 1 <= landed <= LIMIT
    assert admitted == LIMIT - landed
    assert after[-1].status_code == 429
    assert all("RateLimit" in response.headers for response in after)
    assert _counted(moto_endpoint, table) == LIMIT


async def test_server_stopped_mid_run_with_requests_in_flight_fails_open_at_once(
    proxy: FaultProxy, moto_endpoint: str, table: str, clock: Clock
) -> None:
    storage = DynamoDBStorage(table, endpoint_url=proxy.url, clock=lambda: START + 10, timeout=10)
    app = compose(
        _app(),
        rate_limit={"rate": f"{LIMIT}/minute", "storage": storage, "timeout": 10, "clock": clock},
        tracing={"install_log_handler": False},
    )
    client = Timed(app)
    proxy.fault = DROP  # the server holds every request ...
    try:
        burst = asyncio.ensure_future(client.burst(10))
        while proxy.requests < 10 and not burst.done():
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        proxy.stop()  # ... and goes away with all of them open
        responses = await burst
        elapsed = time.perf_counter() - started
        proxy.fault = FORWARD
        proxy.start()
        after = await client.until_limited()
    finally:
        await client.aclose()
        await storage.aclose()

    assert [response.status_code for response in responses] == [200] * 10
    assert elapsed < 5  # noticed when the connections closed, not at the 10 s budget
    assert [response.status_code for response in after] == [200] * LIMIT + [429]


# --- fail closed -------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ALL_FAULTS.values(), ids=ALL_FAULTS.keys())
async def test_fail_closed_answers_json_503_with_retry_after(
    proxy: FaultProxy, table: str, clock: Clock, fault: Fault | str
) -> None:
    app, storage = _stack(proxy, table, clock, fail_open=False)
    client = Timed(app)
    _inject(proxy, fault)
    try:
        responses = await client.burst(10)
    finally:
        await client.aclose()
        await storage.aclose()
        _recover(proxy, fault)

    assert [response.status_code for response in responses] == [503] * 10
    for response in responses:
        assert response.headers["Retry-After"] == "5"
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 503
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert response.headers["X-Request-ID"]
        assert "dynamodb" not in response.text.lower()
        assert table not in response.text
    assert max(client.latencies) < LATENCY_BOUND


# --- through lambda_handler ---------------------------------------------------------------------


def _invoke_all(
    handler: LambdaHandler, count: int, make_event: Callable[..., dict[str, Any]]
) -> list[tuple[dict[str, Any], float]]:
    answers = []
    for _ in range(count):
        started = time.perf_counter()
        answer = handler(
            make_event("GET", "/", headers={"Origin": ORIGIN}, source_ip=CLIENT[0]),
            LambdaContext(),
        )
        answers.append((answer, time.perf_counter() - started))
    return answers


@pytest.mark.parametrize("fail_open", [True, False], ids=["open", "closed"])
@pytest.mark.parametrize("fault", ALL_FAULTS.values(), ids=ALL_FAULTS.keys())
def test_lambda_handler_never_raises_answers_500_or_hangs(
    proxy: FaultProxy,
    table: str,
    clock: Clock,
    fault: Fault | str,
    fail_open: bool,
    lambda_loop: asyncio.AbstractEventLoop,
) -> None:
    app, storage = _stack(proxy, table, clock, fail_open=fail_open)
    handler = lambda_handler(app)
    _inject(proxy, fault)
    try:
        answers = _invoke_all(handler, 3, rest_event) + _invoke_all(handler, 3, http_api_event)
    finally:
        lambda_loop.run_until_complete(storage.aclose())
        handler.shutdown()
        _recover(proxy, fault)

    expected = 200 if fail_open else 503
    assert [answer["statusCode"] for answer, _ in answers] == [expected] * 6
    for answer, elapsed in answers:
        assert elapsed < LATENCY_BOUND
        body = json.loads(answer["body"])
        assert body == {"ok": True} if fail_open else body["status"] == 503
        if not fail_open:
            headers = {name.lower(): value for name, value in answer["headers"].items()}
            assert headers["retry-after"] == "5"


def test_lambda_handler_counts_again_after_the_server_comes_back(
    proxy: FaultProxy, table: str, clock: Clock, lambda_loop: asyncio.AbstractEventLoop
) -> None:
    app, storage = _stack(proxy, table, clock)
    handler = lambda_handler(app)
    try:
        before = _invoke_all(handler, 2, http_api_event)
        proxy.stop()
        during = _invoke_all(handler, 4, http_api_event)
        proxy.start()
        after = _invoke_all(handler, LIMIT, http_api_event)
    finally:
        lambda_loop.run_until_complete(storage.aclose())
        handler.shutdown()

    def statuses(answers: list[tuple[dict[str, Any], float]]) -> list[int]:
        return [answer["statusCode"] for answer, _ in answers]

    assert statuses(before) == [200, 200]
    assert statuses(during) == [200] * 4
    assert not any("ratelimit" in {h.lower() for h in a["headers"]} for a, _ in during)
    assert statuses(after) == [200] * (LIMIT - 2) + [429] * 2
    assert all("ratelimit" in {h.lower() for h in a["headers"]} for a, _ in after)


# --- exactness under load ----------------------------------------------------------------------

PROCESSES = 4
CLIENTS_PER_PROCESS = 12
LOAD_RATE = Rate(20, 60)
# Round instants (seconds after START): inside a window, just before and after its end,
# half-way through the next, a skipped window, and the first instant of a window.
ROUNDS = (10.0, 59.5, 60.0, 90.0, 119.999, 181.0, 240.0, 250.0)


def _load_child(
    endpoint: str,
    table: str,
    algorithm: Algorithm,
    barrier: Barrier,
    results: multiprocessing.SimpleQueue[tuple[int, int, int]],
) -> None:
    """One process of the fleet: the whole stack, its clients firing together each round."""
    now = [0.0]
    storage = DynamoDBStorage(table, endpoint_url=endpoint, clock=lambda: now[0], timeout=30)

    async def page(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = compose(
        page,
        rate_limit={
            "rate": LOAD_RATE,
            "storage": storage,
            "algorithm": algorithm,
            "timeout": 30,
            "fail_open": False,  # a storage failure shows up as a 503, never as an admission
            "clock": lambda: now[0],  # the deny cache on the same clock as the windows
        },
        cors=False,
        tracing=False,
    )

    async def run() -> None:
        transport = httpx.ASGITransport(app=app, client=("198.51.100.23", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://fleet") as client:
            for index, offset in enumerate(ROUNDS):
                now[0] = START + offset
                await asyncio.to_thread(barrier.wait, 60)
                responses = await asyncio.gather(
                    *(client.get("/") for _ in range(CLIENTS_PER_PROCESS))
                )
                statuses = [response.status_code for response in responses]
                other = sum(status not in (200, 429) for status in statuses)
                results.put((index, statuses.count(200), other))
        await storage.aclose()

    asyncio.run(run())


def _run_fleet(endpoint: str, table: str, algorithm: Algorithm) -> list[tuple[int, int]]:
    return run_fleet(
        _load_child, (endpoint, table, algorithm), processes=PROCESSES, rounds=len(ROUNDS)
    )


def _policy(algorithm: Algorithm) -> tuple[list[int], dict[int, int], WindowCounts | None]:
    """What policy.apply_hit admits per round, the fixed-window counts per window, and the
    sliding state it ends with."""
    state: WindowCounts | None = None
    fixed: dict[int, int] = {}
    admitted = []
    for offset in ROUNDS:
        count = 0
        for _ in range(PROCESSES * CLIENTS_PER_PROCESS):
            state, decision = apply_hit(algorithm, state, LOAD_RATE, START + offset)
            count += decision.allowed
        admitted.append(count)
        assert state is not None
        fixed[state.window] = state.current
    return admitted, fixed, state


@pytest.mark.usefixtures("atomic_moto")
@pytest.mark.parametrize("algorithm", ["fixed", "sliding"])
def test_a_fleet_on_one_key_admits_what_the_policy_says_across_windows(
    dynamodb_endpoint: str, algorithm: Algorithm
) -> None:
    table = _new_table(dynamodb_endpoint)
    expected, fixed_counts, sliding_state = _policy(algorithm)

    totals = _run_fleet(dynamodb_endpoint, table, algorithm)

    assert totals == [(admitted, 0) for admitted in expected]
    if algorithm == "fixed":  # every window touched was flooded: exactly the limit in each
        assert set(fixed_counts.values()) == {LOAD_RATE.limit}
    else:
        assert all(admitted <= LOAD_RATE.limit for admitted in expected)
    items = {item["pk"]["S"]: item for item in _scan(dynamodb_endpoint, table)}
    key = f"ip:198.51.100.23#{LOAD_RATE.policy_name}"
    if algorithm == "fixed":
        assert {pk: int(item["cur"]["N"]) for pk, item in items.items()} == {
            f"{key}#fixed#{window}": count for window, count in fixed_counts.items()
        }
        for pk, item in items.items():
            window = int(pk.rpartition("#")[2])
            assert int(item["expires_at"]["N"]) == (window + 2) * LOAD_RATE.period
    else:
        assert sliding_state is not None
        (item,) = items.values()
        assert next(iter(items)) == f"{key}#sliding"
        assert (
            WindowCounts(int(item["win"]["N"]), int(item["cur"]["N"]), int(item["prev"]["N"]))
            == sliding_state
        )
        assert int(item["expires_at"]["N"]) == (sliding_state.window + 2) * LOAD_RATE.period


# --- soak (the 60 s runs are scripts/soak.py; this is its few-seconds smoke run) -----------------

SOAK = Path(__file__).resolve().parent.parent / "scripts" / "soak.py"


@pytest.mark.parametrize("storage", ["memory", "dynamodb"])
def test_short_soak_under_uvicorn_has_no_errors(storage: str) -> None:
    command = [sys.executable, str(SOAK), "--storage", storage, "--json"]
    command += ["--duration", "2", "--connections", "8", "--clients", "4", "--rate", "5/minute"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads(finished.stdout)
    assert report["requests"] > 50
    assert report["errors"] == 0
    assert set(report["status_counts"]) == {"200", "429"}
    assert report["rss_end_mib"] < report["rss_start_mib"] + 50
