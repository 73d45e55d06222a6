"""DynamoDBStorage beyond the shared contract: the items it leaves in the table, the round trips
it costs, and how it fails (always StorageError, never a hang)."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import boto3
import pytest

from asgi_lambda_mw._aws.dynamodb import DynamoDBClient
from asgi_lambda_mw.cli import main
from asgi_lambda_mw.exceptions import ConfigurationError, StorageError
from asgi_lambda_mw.ratelimit.policy import Algorithm, Rate
from asgi_lambda_mw.ratelimit.storage.dynamodb import DynamoDBStorage

START = 1_800_000_000.0  # the start of a minute
WINDOW = int(START // 60)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class CountingClient(DynamoDBClient):
    """The real client, recording each operation it is asked to run."""

    operations: list[str]

    async def call(
        self, operation: str, payload: Mapping[str, Any], *, deadline: float | None = None
    ) -> dict[str, Any]:
        self.operations.append(operation)
        return await super().call(operation, payload, deadline=deadline)

    def take(self) -> list[str]:
        taken, self.operations = self.operations, []
        return taken


def _new_table(endpoint: str) -> str:
    table = f"rate-limit-{uuid.uuid4().hex[:12]}"
    assert main(["table", "create", "--table", table, "--endpoint-url", endpoint]) == 0
    return table


def _item(endpoint: str, table: str, pk: str) -> dict[str, Any]:
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    item: dict[str, Any] = client.get_item(
        TableName=table, Key={"pk": {"S": pk}}, ConsistentRead=True
    )["Item"]
    return item


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def counting_client(moto_endpoint: str) -> AsyncIterator[CountingClient]:
    client = CountingClient(region="us-east-1", endpoint_url=moto_endpoint)
    client.operations = []
    yield client
    await client.aclose()


@pytest.fixture
def unused_port() -> Iterator[int]:
    """A loopback port nothing listens on (held bound, never listening, during the test)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield int(holder.getsockname()[1])


async def test_fixed_window_item_holds_the_count_and_a_numeric_ttl(
    dynamodb_endpoint: str, clock: Clock
) -> None:
    table = _new_table(dynamodb_endpoint)
    storage = DynamoDBStorage(table, endpoint_url=dynamodb_endpoint, clock=clock)
    for _ in range(3):
        await storage.hit("198.51.100.7", Rate(5, 60), algorithm="fixed")
    await storage.aclose()

    item = _item(dynamodb_endpoint, table, f"198.51.100.7#5-per-60s#fixed#{WINDOW}")

    assert item["cur"] == {"N": "3"}
    assert item["expires_at"] == {"N": str((WINDOW + 2) * 60)}


async def test_sliding_item_holds_window_counts_and_a_numeric_ttl(
    dynamodb_endpoint: str, clock: Clock
) -> None:
    table = _new_table(dynamodb_endpoint)
    storage = DynamoDBStorage(table, endpoint_url=dynamodb_endpoint, clock=clock)
    for _ in range(4):
        await storage.hit("198.51.100.7", Rate(5, 60))
    clock.now += 60
    await storage.hit("198.51.100.7", Rate(5, 60))
    await storage.aclose()

    item = _item(dynamodb_endpoint, table, "198.51.100.7#5-per-60s#sliding")

    assert {name: item[name] for name in ("win", "cur", "prev", "expires_at")} == {
        "win": {"N": str(WINDOW + 1)},
        "cur": {"N": "1"},
        "prev": {"N": "4"},
        "expires_at": {"N": str((WINDOW + 3) * 60)},
    }


@pytest.mark.parametrize("algorithm", ["fixed", "sliding"])
async def test_each_allowed_hit_is_one_update_item(
    moto_endpoint: str, counting_client: CountingClient, clock: Clock, algorithm: Algorithm
) -> None:
    storage = DynamoDBStorage(_new_table(moto_endpoint), client=counting_client, clock=clock)

    for _ in range(10):
        clock.now += 1
        assert (await storage.hit("client", Rate(100, 60), algorithm=algorithm)).allowed

    assert counting_client.take() == ["UpdateItem"] * 10


async def test_a_denied_hit_is_one_round_trip_when_the_server_returns_the_old_item(
    moto_endpoint: str, counting_client: CountingClient, clock: Clock
) -> None:
    storage = DynamoDBStorage(_new_table(moto_endpoint), client=counting_client, clock=clock)
    for _ in range(3):
        await storage.hit("client", Rate(3, 60))
    counting_client.take()

    denied = await storage.hit("client", Rate(3, 60))

    assert not denied.allowed
    assert counting_client.take() == ["UpdateItem"]


async def test_sliding_learns_the_previous_count_once_per_window(
    moto_endpoint: str, counting_client: CountingClient, clock: Clock
) -> None:
    table = _new_table(moto_endpoint)
    other_instance = DynamoDBStorage(table, endpoint_url=moto_endpoint, clock=clock)
    for _ in range(5):
        await other_instance.hit("client", Rate(100, 60))
    clock.now += 60
    await other_instance.hit("client", Rate(100, 60))  # the item moves to the next window
    await other_instance.aclose()
    storage = DynamoDBStorage(table, client=counting_client, clock=clock)

    await storage.hit("client", Rate(100, 60))
    first = counting_client.take()
    for _ in range(5):
        await storage.hit("client", Rate(100, 60))

    assert first == ["UpdateItem", "UpdateItem"]  # guessed prev=0, told prev=5, counted
    assert counting_client.take() == ["UpdateItem"] * 5


async def test_previous_count_cache_is_bounded(
    moto_endpoint: str, counting_client: CountingClient, clock: Clock
) -> None:
    table = _new_table(moto_endpoint)
    other_instance = DynamoDBStorage(table, endpoint_url=moto_endpoint, clock=clock)
    for key in ("a", "b", "a", "b"):
        await other_instance.hit(key, Rate(100, 60))
    clock.now += 60
    for key in ("a", "b"):
        await other_instance.hit(key, Rate(100, 60))
    await other_instance.aclose()
    storage = DynamoDBStorage(table, client=counting_client, clock=clock, previous_cache_size=1)

    round_trips = []
    for key in ("a", "b", "a"):
        await storage.hit(key, Rate(100, 60))
        round_trips.append(len(counting_client.take()))

    assert round_trips == [2, 2, 2]  # "a" was forgotten when "b" came in


async def test_unreachable_endpoint_raises_storage_error(unused_port: int) -> None:
    storage = DynamoDBStorage("rate-limit", endpoint_url=f"http://127.0.0.1:{unused_port}")

    with pytest.raises(StorageError) as raised:
        await storage.hit("client", Rate(5, 60))

    assert raised.value.retryable
    await storage.aclose()


async def test_missing_table_raises_storage_error(moto_endpoint: str) -> None:
    storage = DynamoDBStorage("no-such-table", endpoint_url=moto_endpoint)

    with pytest.raises(StorageError, match="no-such-table: ResourceNotFoundException") as raised:
        await storage.hit("client", Rate(5, 60), algorithm="fixed")

    assert not raised.value.retryable
    await storage.aclose()


async def test_a_silent_server_fails_the_hit_within_the_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        storage = DynamoDBStorage(
            "rate-limit", endpoint_url=f"http://127.0.0.1:{port}", timeout=0.2
        )
        started = time.monotonic()

        with pytest.raises(StorageError):
            await storage.hit("client", Rate(5, 60))

        assert time.monotonic() - started < 5
        await storage.aclose()


def test_table_name_defaults_to_rate_limit_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_TABLE", "from-the-environment")

    assert DynamoDBStorage().table_name == "from-the-environment"


def test_no_table_names_rate_limit_table() -> None:
    with pytest.raises(ConfigurationError, match="RATE_LIMIT_TABLE"):
        DynamoDBStorage()


def test_bad_endpoint_variable_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "ftp://example")

    with pytest.raises(ConfigurationError, match="AWS_ENDPOINT_URL_DYNAMODB"):
        DynamoDBStorage("rate-limit")
