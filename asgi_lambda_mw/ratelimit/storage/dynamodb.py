"""Rate-limit counters in DynamoDB, shared by every Lambda instance and uvicorn worker.

The policy's admission ceiling becomes a condition on an atomic ``UpdateItem``, so the check and
the increment happen together on the server: one round trip per allowed request in the steady
state, no read-then-write races, and decisions identical to ``policy.apply_hit``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..._aws.dynamodb import ConditionalCheckFailed, DynamoDBClient, DynamoDBError
from ..._env import env_str
from ...exceptions import ConfigurationError, StorageError
from ..policy import Algorithm, Decision, Rate, WindowCounts, admission_ceiling, decide, roll_window
from ._schema import (
    COUNT_ATTRIBUTE,
    KEY_ATTRIBUTE,
    PREVIOUS_ATTRIBUTE,
    TABLE_ENV,
    TTL_ATTRIBUTE,
    WINDOW_ATTRIBUTE,
)

__all__ = ["DynamoDBStorage"]

logger = logging.getLogger("asgi_lambda_mw.ratelimit.storage.dynamodb")

# The same as RateLimitMiddleware's default budget, so retries stop before it cancels the call.
_DEFAULT_TIMEOUT = 0.25
_DEFAULT_PREVIOUS_CACHE_SIZE = 10_000
# Conditional writes lost to concurrent writers before giving up; each loss means another
# process made progress, so a handful is plenty.
_MAX_ATTEMPTS = 8

Item = dict[str, Any]
"""An item in DynamoDB's JSON form: ``{"cur": {"N": "3"}, ...}``."""


class DynamoDBStorage:
    """Counters in a DynamoDB table (create it with ``asgi-lambda table create``).

    ``table_name`` defaults to ``$RATE_LIMIT_TABLE``; ``region`` and ``endpoint_url`` to
    ``$AWS_REGION`` and ``$AWS_ENDPOINT_URL_DYNAMODB`` (else ``$AWS_ENDPOINT_URL``).
    ``timeout`` (default 0.25 s) bounds each hit, retries included. ``clock`` (default
    ``time.time``) is injectable so tests control time. ``client`` shares an existing
    DynamoDBClient (its owner closes it). ``previous_cache_size`` (default 10 000) bounds the
    in-process memory of each sliding key's previous-window count.

    Nothing touches the network here; a bad region or endpoint raises ConfigurationError now,
    everything that goes wrong later raises StorageError from ``hit``.
    """

    def __init__(
        self,
        table_name: str | None = None,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        key_attribute: str = KEY_ATTRIBUTE,
        ttl_attribute: str = TTL_ATTRIBUTE,
        clock: Callable[[], float] = time.time,
        client: DynamoDBClient | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
        previous_cache_size: int = _DEFAULT_PREVIOUS_CACHE_SIZE,
    ) -> None:
        table_name = table_name or env_str(TABLE_ENV)
        if not table_name:
            raise ConfigurationError(
                f"DynamoDBStorage needs a table: pass table_name= or set {TABLE_ENV}"
            )
        if not timeout > 0:
            raise ConfigurationError(f"DynamoDBStorage timeout must be positive, not {timeout}")
        if previous_cache_size < 1:
            raise ConfigurationError(
                f"DynamoDBStorage previous_cache_size must be at least 1, not {previous_cache_size}"
            )
        for option, name in (("key_attribute", key_attribute), ("ttl_attribute", ttl_attribute)):
            if name in {COUNT_ATTRIBUTE, WINDOW_ATTRIBUTE, PREVIOUS_ATTRIBUTE} or not name:
                raise ConfigurationError(f"DynamoDBStorage {option}={name!r} is reserved or empty")
        if key_attribute == ttl_attribute:
            raise ConfigurationError("DynamoDBStorage key_attribute and ttl_attribute must differ")
        self.table_name = table_name
        self._key_attribute = key_attribute
        self._ttl_attribute = ttl_attribute
        self._clock = clock
        self._timeout = timeout
        self._owns_client = client is None
        self._client = client or DynamoDBClient.from_environment(
            region=region, endpoint_url=endpoint_url
        )
        self._previous = _PreviousCountCache(previous_cache_size)

    def __repr__(self) -> str:
        return f"DynamoDBStorage(table_name={self.table_name!r})"

    async def hit(
        self, key: str, rate: Rate, *, algorithm: Algorithm = "sliding", cost: int = 1
    ) -> Decision:
        now = self._clock()
        deadline = time.monotonic() + self._timeout
        try:
            hit = _Hit(self, key, rate, cost, now, deadline)
            if algorithm == "fixed":
                return await hit.fixed()
            return await hit.sliding()
        except DynamoDBError as error:  # name the table: the error alone does not
            raise DynamoDBError(
                f"DynamoDB table {self.table_name}: {error}",
                code=error.code,
                status=error.status,
                retryable=error.retryable,
            ) from error
        except StorageError:
            raise
        except Exception as error:  # a malformed response, a client bug: still a storage failure
            logger.warning(
                "rate-limit storage failed unexpectedly",
                extra={"table": self.table_name, "error": repr(error)},
            )
            raise StorageError(
                f"DynamoDB table {self.table_name}: unexpected {type(error).__name__}: {error}"
            ) from error

    async def aclose(self) -> None:
        """Close the connections of the client this storage created (a shared client is left
        to its owner); the storage reconnects on the next hit."""
        if self._owns_client:
            await self._client.aclose()


class _PreviousCountCache:
    """``(partition key, window) -> previous-window count``, least recently used evicted.

    A window's previous count is frozen once the window has started, so a cached value is
    never stale; a missing one only costs one extra round trip.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, int], int] = OrderedDict()
        # The storage may be shared by threads running their own event loops.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, pk: str, window: int) -> int | None:
        with self._lock:
            previous = self._entries.get((pk, window))
            if previous is not None:
                self._entries.move_to_end((pk, window))
            return previous

    def put(self, pk: str, window: int, previous: int) -> None:
        with self._lock:
            self._entries[(pk, window)] = previous
            self._entries.move_to_end((pk, window))
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


class _Hit:
    """One hit's round trips: the per-request state kept off the storage object."""

    def __init__(
        self,
        storage: DynamoDBStorage,
        key: str,
        rate: Rate,
        cost: int,
        now: float,
        deadline: float,
    ) -> None:
        self._client = storage._client
        self._previous = storage._previous
        self._table = storage.table_name
        self._key_attribute = storage._key_attribute
        self._names_ttl = {"#ttl": storage._ttl_attribute}
        self._key = key
        self._rate = rate
        self._cost = cost
        self._now = now
        self._deadline = deadline

    async def fixed(self) -> Decision:
        rate, cost, now = self._rate, self._cost, self._now
        counts = roll_window(None, rate, now)
        # The window is part of the key, so an expired item is never even read.
        pk = f"{self._key}#{rate.policy_name}#fixed#{counts.window}"
        ceiling = admission_ceiling("fixed", rate, counts, cost, now)
        if ceiling >= 0:
            added = await self._add(pk, counts.window, ceiling, previous=None)
            if isinstance(added, int):
                counts = WindowCounts(counts.window, added)
                return decide("fixed", rate, counts, now, allowed=True, cost=cost)
            item = added if added is not None else await self._get(pk)
        else:  # costlier than the whole limit: never admitted, but report the true count
            item = await self._get(pk)
        counts = WindowCounts(counts.window, _number(item, COUNT_ATTRIBUTE))
        return decide("fixed", rate, counts, now, allowed=False, cost=cost)

    async def sliding(self) -> Decision:
        rate, cost, now = self._rate, self._cost, self._now
        pk = f"{self._key}#{rate.policy_name}#sliding"
        cache = self._previous
        window = math.floor(now / rate.period)
        # Steady state: assume the item is in this window with the previous count seen before
        # (0 if none, which also creates a missing item); the condition checks the assumption
        # along with the ceiling.
        assumed = WindowCounts(window, 0, cache.get(pk, window) or 0)
        ceiling = admission_ceiling("sliding", rate, assumed, cost, now)
        stored: WindowCounts | None
        if ceiling >= 0:
            added = await self._add(pk, window, ceiling, previous=assumed.previous)
            if isinstance(added, int):
                cache.put(pk, window, assumed.previous)
                counts = WindowCounts(window, added, assumed.previous)
                return decide("sliding", rate, counts, now, allowed=True, cost=cost)
            stored = _sliding_counts(added if added is not None else await self._get(pk))
        else:
            stored = _sliding_counts(await self._get(pk))
        for _ in range(_MAX_ATTEMPTS):
            counts = roll_window(stored, rate, now)
            cache.put(pk, counts.window, counts.previous)
            ceiling = admission_ceiling("sliding", rate, counts, cost, now)
            if counts.current > ceiling:
                return decide("sliding", rate, counts, now, allowed=False, cost=cost)
            if stored is not None and stored.window == counts.window:
                added = await self._add(pk, counts.window, ceiling, previous=counts.previous)
            else:
                added = await self._start_window(pk, counts, stored)
            if isinstance(added, int):
                counts = WindowCounts(counts.window, added, counts.previous)
                return decide("sliding", rate, counts, now, allowed=True, cost=cost)
            # Another writer got there first: decide again on what it left.
            stored = _sliding_counts(added if added is not None else await self._get(pk))
        logger.warning("rate-limit counter too contended", extra={"table": self._table, "key": pk})
        raise StorageError(
            f"DynamoDB table {self._table}: gave up on {pk!r} after {_MAX_ATTEMPTS} conflicting "
            "concurrent writes",
            retryable=True,
        )

    async def _add(
        self, pk: str, window: int, ceiling: int, *, previous: int | None
    ) -> int | Item | None:
        """ADD the cost if the count is at most ``ceiling`` (and, for a sliding item, the item
        is in ``window`` with ``previous``, or missing and ``previous`` is 0): the new count,
        else the item as it stood (None if the server did not return it)."""
        names = {"#cur": COUNT_ATTRIBUTE, **self._names_ttl}
        values = {
            ":cost": _n(self._cost),
            ":ttl": _n(self._expires_at(window)),
            ":ceiling": _n(ceiling),
        }
        update = "ADD #cur :cost SET #ttl = :ttl"
        if previous is None:
            condition = "attribute_not_exists(#cur) OR #cur <= :ceiling"
        else:
            # Setting win and prev to the values the condition requires changes nothing on an
            # existing item and starts a missing one.
            update += ", #win = :win, #prev = :prev"
            condition = "#win = :win AND #prev = :prev AND #cur <= :ceiling"
            if previous == 0:
                condition = f"attribute_not_exists(#cur) OR ({condition})"
            names |= {"#win": WINDOW_ATTRIBUTE, "#prev": PREVIOUS_ATTRIBUTE}
            values |= {":win": _n(window), ":prev": _n(previous)}
        response = await self._update(
            pk,
            {
                "UpdateExpression": update,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
                "ReturnValues": "UPDATED_NEW",
            },
        )
        if isinstance(response, _Rejected):
            return response.item
        return _number(response.get("Attributes"), COUNT_ATTRIBUTE)

    async def _start_window(
        self, pk: str, counts: WindowCounts, stored: WindowCounts | None
    ) -> int | Item | None:
        """Move the item to ``counts.window`` (the previous count carried over) with this hit
        counted, if nobody changed it since it was read as ``stored``."""
        names = {
            "#win": WINDOW_ATTRIBUTE,
            "#cur": COUNT_ATTRIBUTE,
            "#prev": PREVIOUS_ATTRIBUTE,
            **self._names_ttl,
        }
        values = {
            ":win": _n(counts.window),
            ":cost": _n(self._cost),
            ":prev": _n(counts.previous),
            ":ttl": _n(self._expires_at(counts.window)),
        }
        if stored is None:
            condition = "attribute_not_exists(#pk)"
            names["#pk"] = self._key_attribute
        else:
            condition = "#win = :old_win AND #cur = :old_cur"
            values |= {":old_win": _n(stored.window), ":old_cur": _n(stored.current)}
        response = await self._update(
            pk,
            {
                "UpdateExpression": "SET #win = :win, #cur = :cost, #prev = :prev, #ttl = :ttl",
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            },
        )
        if isinstance(response, _Rejected):
            return response.item
        return self._cost

    async def _update(self, pk: str, request: dict[str, Any]) -> Item | _Rejected:
        try:
            response: Item = await self._client.call(
                "UpdateItem",
                {
                    "TableName": self._table,
                    "Key": {self._key_attribute: {"S": pk}},
                    **request,
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                },
                deadline=self._deadline,
            )
        except ConditionalCheckFailed as failure:
            return _Rejected(failure.item)
        return response

    async def _get(self, pk: str) -> Item | None:
        """The item, read consistently (servers without ReturnValuesOnConditionCheckFailure)."""
        response = await self._client.call(
            "GetItem",
            {
                "TableName": self._table,
                "Key": {self._key_attribute: {"S": pk}},
                "ConsistentRead": True,
            },
            deadline=self._deadline,
        )
        item: Item | None = response.get("Item")
        return item

    def _expires_at(self, window: int) -> int:
        # The counts matter until the window after theirs has slid past.
        return (window + 2) * self._rate.period


class _Rejected:
    """A conditional write that did not happen, with the item as the server last saw it."""

    __slots__ = ("item",)

    def __init__(self, item: Item | None) -> None:
        self.item = item


def _n(number: int) -> dict[str, str]:
    return {"N": str(number)}


def _number(item: Item | None, attribute: str) -> int:
    if not item or attribute not in item:
        return 0
    return int(item[attribute]["N"])


def _sliding_counts(item: Item | None) -> WindowCounts | None:
    if not item or WINDOW_ATTRIBUTE not in item:
        return None
    return WindowCounts(
        _number(item, WINDOW_ATTRIBUTE),
        _number(item, COUNT_ATTRIBUTE),
        _number(item, PREVIOUS_ATTRIBUTE),
    )
