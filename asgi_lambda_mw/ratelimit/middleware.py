"""RateLimitMiddleware: the layer that decides whether the app runs. It keys the request (client
IP by default), counts it in a storage (DynamoDB on Lambda) and answers 429 without calling the
app when the client is over its rate. Sits inside CORS and tracing, outside the app.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from starlette.responses import Response

from .._env import env_bool, env_str
from .._scope import record_timing, route_path
from ..client import ClientIPResolver, TrustedProxy
from ..exceptions import ConfigurationError, StorageError
from ..types import ASGIApp, Message, Receive, Scope, Send
from ._deny_cache import DenyCache
from ._headers import RouteHeaders, add_missing_fields, replace_fields, retry_after_seconds
from ._paths import PathTable
from ._throttled_log import ThrottledLog
from .keys import KeyFunction, _bounded, _IPKey, _NamespacedKey
from .policy import ALGORITHMS, Algorithm, Decision, Rate, parse_rates
from .storage.base import Storage
from .storage.memory import MemoryStorage

__all__ = [
    "RateLimitExceeded",
    "RateLimitMiddleware",
    "default_limited_response",
    "default_unavailable_response",
]

logger = logging.getLogger("asgi_lambda_mw.ratelimit")

RateSpec: TypeAlias = str | Rate | Sequence[Rate]
UnknownClient = Literal["allow", "shared"]

DEFAULT_RATE = "100/minute"
_DEFAULT_TIMEOUT = 0.25
_DEFAULT_DENY_CACHE_SIZE = 10_000
# Seconds a client is told to wait when the limiter is down and fails closed.
_UNAVAILABLE_RETRY_AFTER = 5
_UNAVAILABLE_FIELDS = [(b"retry-after", str(_UNAVAILABLE_RETRY_AFTER).encode())]
# At most one warning of each kind per this many seconds.
_LOG_INTERVAL = 60.0


@dataclass(frozen=True, slots=True)
class RateLimitExceeded:
    """What ``on_limited`` is told about a refused request.

    ``key``: the bucket (``ip:203.0.113.7``); ``rate``: the rate that refused it;
    ``decision``: the storage's verdict; ``retry_after``: whole seconds, at least 1, as sent
    in ``Retry-After``.
    """

    key: str
    rate: Rate
    decision: Decision
    retry_after: int


LimitedHandler = Callable[[Scope, RateLimitExceeded], ASGIApp]
"""``(scope, exceeded) -> ASGI app`` answering a refused request (a Starlette Response)."""
UnavailableHandler = Callable[[Scope, Exception], ASGIApp]
"""``(scope, error) -> ASGI app`` answering when the storage fails and ``fail_open`` is off."""


def _problem(status: int, title: str, detail: str) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return Response(
        json.dumps(body, separators=(",", ":")).encode(),
        status_code=status,
        media_type="application/problem+json",
    )


def default_limited_response(scope: Scope, exceeded: RateLimitExceeded) -> ASGIApp:
    """429 with an RFC 9457 problem+json body."""
    rate = exceeded.rate
    return _problem(
        429,
        "Too Many Requests",
        f"Rate limit of {rate.limit} per {rate.period} seconds exceeded; "
        f"retry in {exceeded.retry_after} seconds.",
    )


def default_unavailable_response(scope: Scope, error: Exception) -> ASGIApp:
    """503 with an RFC 9457 problem+json body; never reveals the storage error."""
    return _problem(503, "Service Unavailable", "The rate limiter is unavailable; retry later.")


def _rates_from(spec: object, setting: str) -> tuple[Rate, ...]:
    if isinstance(spec, str):
        try:
            return parse_rates(spec)
        except ConfigurationError as error:
            raise ConfigurationError(f"{setting}: {error}") from None
    if isinstance(spec, Rate):
        return (spec,)
    if isinstance(spec, Sequence) and spec and all(isinstance(rate, Rate) for rate in spec):
        rates = tuple(spec)
        if len(set(rates)) != len(rates):
            raise ConfigurationError(f"{setting}: the same rate is given twice")
        return rates
    raise ConfigurationError(
        f"{setting} must be a rate string such as '100/minute', a Rate or a list of Rates, "
        f"not {spec!r}"
    )


class _Route:
    """Everything per-route that does not change per request."""

    # A private record, not a frozen dataclass: building the dataclass costs ~0.7 ms of cold
    # start (Lambda pays it on every new execution environment) for nothing a caller sees.
    __slots__ = ("headers", "namespace", "rates")

    def __init__(self, namespace: str, rates: tuple[Rate, ...], headers: RouteHeaders) -> None:
        self.namespace = namespace  # prefix of storage keys, so each route has its own buckets
        self.rates = rates
        self.headers = headers


class RateLimitMiddleware:
    """Limits how often each client may call the app; plain ASGI, usable with
    ``app.add_middleware(RateLimitMiddleware, ...)`` or ``RateLimitMiddleware(app, ...)``.

    Built with only ``app``, it configures itself from the environment. Every option:

    - ``rate``: ``"100/minute"``, ``"10/second; 1000/hour"`` (every rate must pass), a Rate or
      a list of Rates. Default ``$RATE_LIMIT``, else ``"100/minute"``.
    - ``storage``: where counters live. Default: DynamoDBStorage on ``$RATE_LIMIT_TABLE`` when
      it is set, else a MemoryStorage (per process).
    - ``algorithm``: ``"sliding"`` (sliding window) or ``"fixed"``. Default
      ``$RATE_LIMIT_ALGORITHM``, else ``"sliding"``.
    - ``fail_open``: when the storage fails or exceeds ``timeout``, let the request through
      without rate-limit headers (True) or answer 503 with ``Retry-After`` (False). Default
      ``$RATE_LIMIT_FAIL_OPEN``, else True. Either way one WARNING per minute at most.
    - ``key``: who shares a bucket: ``ip_key()``, ``header_key(name)``, ``principal_key()``
      from ``asgi_lambda_mw.ratelimit.keys``, or any ``(scope) -> str | None`` callable (sync
      or async; its values are namespaced ``fn:``). When it returns None the client IP is used.
      Default: the client IP, IPv6 grouped by ``ipv6_prefix``.
    - ``routes``: per-route rates, ``{"POST /login": "5/minute", "/api/*": "1000/hour"}``;
      pattern ``[METHOD ]PATH``, PATH exact or ending in ``*`` (a prefix: ``/api/*`` matches
      ``/api`` and everything under it); exact beats prefix, longer prefix beats shorter.
      Each route counts in its own buckets. Default: none (``rate`` everywhere).
    - ``exempt_paths``: patterns (same syntax) never limited, such as ``"/health"``. Default none.
    - ``exempt_methods``: methods never limited. Default ``("OPTIONS",)`` (CORS preflights).
    - ``cost``: what one request counts, an int or ``(scope) -> int``; a cost of 0 or less
      exempts the request. Default 1.
    - ``timeout``: seconds the storage may take per request (all rates together) before it
      counts as failed. Default 0.25.
    - ``legacy_headers``: also send ``X-RateLimit-Limit``/``-Remaining``/``-Reset`` (seconds).
      Default False.
    - ``on_limited``: ``(scope, RateLimitExceeded) -> ASGI app`` for the 429. Default: a
      problem+json 429. RateLimit headers and ``Retry-After`` are added unless it sets them.
    - ``on_unavailable``: ``(scope, error) -> ASGI app`` for the fail-closed 503. Default: a
      problem+json 503. ``Retry-After: 5`` is added unless it sets one.
    - ``trusted_proxies``, ``trusted_hops``, ``ipv6_prefix``: how the client IP is found and
      grouped (see ``client_ip``). Defaults ``()``, 0 and 64 (None: no IPv6 grouping).
    - ``unknown_client``: when no client IP can be found: ``"allow"`` the request unlimited,
      with a WARNING at most once a minute, or put all such requests in one ``"shared"``
      bucket. Default ``"allow"``.
    - ``deny_cache_size``: how many refused buckets are remembered in-process, so their
      further requests are refused with no storage call until they could pass. 0 disables.
      Default 10 000.
    - ``clock``: monotonic seconds, for the deny cache and log throttling. Default
      ``time.monotonic``.

    Raises ConfigurationError, naming the option or variable, for a bad setting.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        rate: RateSpec | None = None,
        storage: Storage | None = None,
        algorithm: Algorithm | None = None,
        fail_open: bool | None = None,
        key: KeyFunction | None = None,
        routes: Mapping[str, RateSpec] | None = None,
        exempt_paths: Iterable[str] = (),
        exempt_methods: Iterable[str] = ("OPTIONS",),
        cost: int | Callable[[Scope], int] = 1,
        timeout: float = _DEFAULT_TIMEOUT,
        legacy_headers: bool = False,
        on_limited: LimitedHandler | None = None,
        on_unavailable: UnavailableHandler | None = None,
        trusted_proxies: Iterable[TrustedProxy] = (),
        trusted_hops: int = 0,
        ipv6_prefix: int | None = 64,
        unknown_client: UnknownClient = "allow",
        deny_cache_size: int = _DEFAULT_DENY_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        if rate is None:
            env_rate = env_str("RATE_LIMIT")
            rates = _rates_from(env_rate, f"RATE_LIMIT={env_rate!r}") if env_rate else None
            rates = rates or parse_rates(DEFAULT_RATE)
        else:
            rates = _rates_from(rate, "rate")

        if algorithm is None:
            env_algorithm = env_str("RATE_LIMIT_ALGORITHM")
            if env_algorithm is not None and env_algorithm.lower() not in ALGORITHMS:
                raise ConfigurationError(
                    f"RATE_LIMIT_ALGORITHM={env_algorithm!r} is not one of {', '.join(ALGORITHMS)}"
                )
            algorithm = "fixed" if env_algorithm and env_algorithm.lower() == "fixed" else "sliding"
        elif algorithm not in ALGORITHMS:
            raise ConfigurationError(
                f"algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}"
            )
        self._algorithm: Algorithm = algorithm

        self._fail_open = env_bool("RATE_LIMIT_FAIL_OPEN", True) if fail_open is None else fail_open
        self._storage = storage if storage is not None else _storage_from_env()
        # Storage.local (optional, see storage.base): hit() never awaits I/O, so no time budget.
        self._storage_is_local = getattr(self._storage, "local", False) is True

        if isinstance(cost, bool) or not (callable(cost) or (isinstance(cost, int) and cost >= 1)):
            raise ConfigurationError(
                f"cost must be a whole number of at least 1 or a callable, not {cost!r}"
            )
        self._cost = cost
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout < math.inf
        ):
            raise ConfigurationError(
                f"timeout must be a positive number of seconds, not {timeout!r}"
            )
        self._timeout = float(timeout)
        if unknown_client not in ("allow", "shared"):
            raise ConfigurationError(
                f"unknown_client must be 'allow' or 'shared', not {unknown_client!r}"
            )
        self._share_unknown = unknown_client == "shared"
        if isinstance(deny_cache_size, bool) or not isinstance(deny_cache_size, int):
            raise ConfigurationError(
                f"deny_cache_size must be a whole number, not {deny_cache_size!r}"
            )
        self._deny_cache = DenyCache(deny_cache_size)

        self._ip_key = _IPKey(
            ClientIPResolver(
                trusted_proxies=trusted_proxies, trusted_hops=trusted_hops, ipv6_prefix=ipv6_prefix
            )
        )
        if key is not None and not callable(key):
            raise ConfigurationError(f"key must be a callable (scope) -> str | None, not {key!r}")
        self._key = key if key is not None else self._ip_key
        self._key_is_namespaced = isinstance(self._key, _NamespacedKey)

        legacy = bool(legacy_headers)
        self._default_route = _Route("", rates, RouteHeaders(rates, legacy=legacy))
        route_entries = []
        for pattern, spec in (routes or {}).items():
            route_rates = _rates_from(spec, f"routes[{pattern!r}]")
            route = _Route(
                f"route:{pattern}|", route_rates, RouteHeaders(route_rates, legacy=legacy)
            )
            route_entries.append((pattern, route))
        self._routes = PathTable(route_entries, setting="routes")
        self._exempt_paths = PathTable(
            ((pattern, True) for pattern in _patterns(exempt_paths, "exempt_paths")),
            setting="exempt_paths",
        )
        self._exempt_methods = frozenset(
            method.strip().upper() for method in _patterns(exempt_methods, "exempt_methods")
        )

        self._on_limited = on_limited or default_limited_response
        self._on_unavailable = on_unavailable or default_unavailable_response
        self._clock = clock
        self._storage_log = ThrottledLog(
            logger, level=logging.WARNING, interval=_LOG_INTERVAL, clock=clock
        )
        self._error_log = ThrottledLog(
            logger, level=logging.ERROR, interval=_LOG_INTERVAL, clock=clock
        )
        self._unknown_log = ThrottledLog(
            logger, level=logging.WARNING, interval=_LOG_INTERVAL, clock=clock
        )

    @property
    def storage(self) -> Storage:
        """The storage in use (close it with ``await middleware.storage.aclose()`` at shutdown)."""
        return self._storage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path = route_path(scope)
        if method in self._exempt_methods or (
            self._exempt_paths and self._exempt_paths.match(method, path)
        ):
            await self.app(scope, receive, send)
            return
        route = (self._routes and self._routes.match(method, path)) or self._default_route
        cost = self._cost if isinstance(self._cost, int) else self._cost(scope)
        if cost <= 0:
            await self.app(scope, receive, send)
            return

        bucket = await self._bucket(scope)
        if bucket is None:
            await self.app(scope, receive, send)
            return
        bucket = route.namespace + bucket

        cached = self._deny_cache.check(bucket, self._clock())
        if cached is not None:
            await self._refuse(scope, receive, send, bucket, route, *cached)
            return

        started = time.perf_counter()
        try:
            rate, decision = await self._hit(bucket, route.rates, cost)
        except (StorageError, TimeoutError) as error:
            self._storage_log.emit(
                "rate-limit storage failed (%s); failing %s",
                _describe(error, self._timeout),
                "open" if self._fail_open else "closed",
                ratelimit_error=type(error).__name__,
            )
            await self._unavailable(scope, receive, send, error)
            return
        except Exception as error:
            self._error_log.emit(
                "rate-limit storage raised an unexpected error; failing %s",
                "open" if self._fail_open else "closed",
                exc_info=True,
                ratelimit_error=type(error).__name__,
            )
            await self._unavailable(scope, receive, send, error)
            return
        finally:
            record_timing(scope, "ratelimit", (time.perf_counter() - started) * 1000)

        if not decision.allowed:
            self._deny_cache.remember(bucket, rate, decision, self._clock())
            await self._refuse(scope, receive, send, bucket, route, rate, decision)
            return

        fields = route.headers.raw_fields(rate, decision)
        names = route.headers.names

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                replace_fields(message, fields, names)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _bucket(self, scope: Scope) -> str | None:
        """The request's namespaced key; None when the client is unknown and allowed."""
        result = self._key(scope)
        # A str first: isawaitable's ABC check was the costliest line of this method.
        key: object = (
            result if isinstance(result, str) or not inspect.isawaitable(result) else await result
        )
        if isinstance(key, str):
            return key if self._key_is_namespaced else "fn:" + _bounded(key)
        if key is not None:
            raise TypeError(f"rate-limit key function returned {key!r}, not a str or None")
        if self._key is not self._ip_key:
            ip = self._ip_key(scope)
            if ip is not None:
                return ip
        if self._share_unknown:
            return "unknown:"
        self._unknown_log.emit(
            "cannot tell who sent %s %s (no client IP); not rate-limiting it",
            scope["method"],
            scope["path"],
        )
        return None

    async def _hit(self, bucket: str, rates: Sequence[Rate], cost: int) -> tuple[Rate, Decision]:
        """Count the hit under every rate, within the time budget unless the storage is local."""
        if self._storage_is_local:
            # A task can only be timed out where it suspends, and a local storage's hit never
            # does: the budget could not fire, and arming it (a timer handle per request) is a
            # quarter of this layer's cost.
            return await self._hit_rates(bucket, rates, cost)
        async with asyncio.timeout(self._timeout):
            return await self._hit_rates(bucket, rates, cost)

    async def _hit_rates(
        self, bucket: str, rates: Sequence[Rate], cost: int
    ) -> tuple[Rate, Decision]:
        """Count the hit under every rate, stopping at the first refusal; the refusing or
        else the most restrictive (fewest remaining) rate and its decision."""
        worst: tuple[Rate, Decision] | None = None
        for rate in rates:
            decision = await self._storage.hit(bucket, rate, algorithm=self._algorithm, cost=cost)
            if not decision.allowed:
                return rate, decision
            if worst is None or (decision.remaining, -decision.reset_after) < (
                worst[1].remaining,
                -worst[1].reset_after,
            ):
                worst = rate, decision
        assert worst is not None  # rates is never empty
        return worst

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        bucket: str,
        route: _Route,
        rate: Rate,
        decision: Decision,
    ) -> None:
        retry_after = retry_after_seconds(decision.retry_after)
        response = self._on_limited(scope, RateLimitExceeded(bucket, rate, decision, retry_after))
        fields = route.headers.raw_fields(rate, decision)
        fields.append((b"retry-after", str(retry_after).encode()))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_missing_fields(message, fields)
            await send(message)

        await response(scope, receive, send_with_headers)

    async def _unavailable(
        self, scope: Scope, receive: Receive, send: Send, error: Exception
    ) -> None:
        if self._fail_open:
            await self.app(scope, receive, send)
            return
        response = self._on_unavailable(scope, error)

        async def send_with_retry_after(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_missing_fields(message, _UNAVAILABLE_FIELDS)
            await send(message)

        await response(scope, receive, send_with_retry_after)


def _patterns(values: Iterable[str], setting: str) -> list[str]:
    if isinstance(values, str):
        raise ConfigurationError(f"{setting} must be a list, not the string {values!r}")
    items = list(values)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ConfigurationError(f"{setting}: {item!r} is not a valid entry")
    return items


def _describe(error: BaseException, timeout: float) -> str:
    if isinstance(error, TimeoutError) and not str(error):
        return f"no answer within {timeout:g} s"
    return f"{type(error).__name__}: {error}"


def _storage_from_env() -> Storage:
    table = env_str("RATE_LIMIT_TABLE")
    if table is None:
        return MemoryStorage()
    # Imported only here: MemoryStorage users never pay for the DynamoDB client.
    from .storage.dynamodb import DynamoDBStorage

    return DynamoDBStorage(table)
