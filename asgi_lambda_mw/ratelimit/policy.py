"""Rates ("100/minute") and the two counting algorithms, as pure functions of (state, now).

Every storage runs the same arithmetic: MemoryStorage applies these functions directly, and
DynamoDBStorage turns ``admission_ceiling`` into a server-side condition, so both agree exactly.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from ..exceptions import ConfigurationError

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "Decision",
    "Rate",
    "WindowCounts",
    "admission_ceiling",
    "apply_hit",
    "decide",
    "parse_rates",
    "roll_window",
]

Algorithm = Literal["sliding", "fixed"]
ALGORITHMS: tuple[Algorithm, ...] = ("sliding", "fixed")

_UNIT_SECONDS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_RATE_PATTERN = re.compile(
    r"^\s*(?P<limit>\d+)\s*(?:/|per)\s*(?P<count>\d+)?\s*(?P<unit>[a-z]+?)s?\s*$", re.IGNORECASE
)
# Float arithmetic on epoch seconds must never admit one request too many or too few.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` requests (or cost units) per ``period`` seconds."""

    limit: int
    period: int

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period < 1:
            raise ConfigurationError(f"a rate needs a limit and a period of at least 1, not {self}")

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Parse one rate: ``100/minute``, ``10/second``, ``1000/hour``, ``5/10 seconds``."""
        match = _RATE_PATTERN.match(text)
        unit = match and _UNIT_SECONDS.get(match["unit"].lower())
        if match is None or unit is None:
            raise ConfigurationError(
                f"invalid rate {text!r}: expected LIMIT/[COUNT] UNIT, such as '100/minute', "
                "'5/10 seconds' or '1000/hour'"
            )
        count = int(match["count"] or 1)
        try:
            return cls(limit=int(match["limit"]), period=count * unit)
        except ConfigurationError:
            raise ConfigurationError(
                f"invalid rate {text!r}: limit and period must be positive"
            ) from None

    def __str__(self) -> str:
        return f"{self.limit}/{self.period}s"

    @property
    def policy_name(self) -> str:
        """A stable token naming this rate in ``RateLimit-Policy`` and in storage keys."""
        return f"{self.limit}-per-{self.period}s"


def parse_rates(text: str) -> tuple[Rate, ...]:
    """Parse ``"10/second; 500/hour"`` (``;`` or ``,`` separated): every rate must pass."""
    parts = [part for part in re.split(r"[;,]", text) if part.strip()]
    if not parts:
        raise ConfigurationError(f"invalid rate {text!r}: no rate given")
    rates = tuple(Rate.parse(part) for part in parts)
    if len(set(rates)) != len(rates):
        raise ConfigurationError(f"invalid rate {text!r}: the same rate is given twice")
    return rates


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """Counters for one key: the window index (``floor(now / period)``), the cost admitted in
    it and, for the sliding algorithm, the cost admitted in the window before it."""

    window: int
    current: int = 0
    previous: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict for one hit, with what the response headers report.

    ``reset_after`` is the number of seconds until the window's quota is restored;
    ``retry_after`` the number of seconds until a request of the same cost could pass
    (0 when allowed).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float


def roll_window(state: WindowCounts | None, rate: Rate, now: float) -> WindowCounts:
    """The counters as they stand at ``now``: stale windows carried over or dropped.

    An item whose window is older than the previous one (an expired item that DynamoDB's TTL
    has not deleted yet) counts for nothing.
    """
    window = math.floor(now / rate.period)
    if state is None or state.window < window - 1:
        return WindowCounts(window)
    if state.window == window - 1:
        return WindowCounts(window, 0, state.current)
    # The same window, or a newer one written by a process whose clock runs ahead: keep it.
    return state


def _previous_weight(rate: Rate, window: int, now: float) -> float:
    """The share of the previous window that still overlaps the sliding period ending now."""
    window_end = (window + 1) * rate.period
    return max(0.0, min(1.0, (window_end - now) / rate.period))


def admission_ceiling(
    algorithm: Algorithm, rate: Rate, counts: WindowCounts, cost: int, now: float
) -> int:
    """The largest ``counts.current`` that still admits a hit of ``cost`` at ``now``.

    A hit is admitted when ``counts.current <= ceiling``; a negative ceiling admits nothing.
    DynamoDBStorage sends this as a condition, so the check and the increment are atomic.
    """
    if algorithm == "fixed":
        return rate.limit - cost
    weighted_previous = counts.previous * _previous_weight(rate, counts.window, now)
    return math.floor(rate.limit - cost - weighted_previous + _EPSILON)


def _seconds_until_admitted(
    algorithm: Algorithm, rate: Rate, counts: WindowCounts, cost: int, now: float
) -> float:
    """When a hit of ``cost`` could next pass if nothing else is admitted meanwhile."""
    window_end = (counts.window + 1) * rate.period
    if algorithm == "fixed" or cost > rate.limit:
        return max(0.0, window_end - now)
    if counts.current + cost <= rate.limit and counts.previous:
        # Passes later in this window, once enough of the previous window has slid out.
        share = 1 - (rate.limit - counts.current - cost) / counts.previous
        return max(0.0, counts.window * rate.period + share * rate.period - now)
    # Passes in the next window, once enough of this window's count has slid out.
    share = max(0.0, 1 - (rate.limit - cost) / counts.current)
    return max(0.0, window_end + share * rate.period - now)


def apply_hit(
    algorithm: Algorithm,
    state: WindowCounts | None,
    rate: Rate,
    now: float,
    cost: int = 1,
) -> tuple[WindowCounts, Decision]:
    """One hit against ``state``: the new state and the decision.

    Denied hits are not counted, so a client that keeps retrying is not locked out: it is
    admitted as soon as the algorithm's window lets it.
    """
    counts = roll_window(state, rate, now)
    ceiling = admission_ceiling(algorithm, rate, counts, cost, now)
    allowed = counts.current <= ceiling
    if allowed:
        counts = WindowCounts(counts.window, counts.current + cost, counts.previous)
    return counts, decide(algorithm, rate, counts, now, allowed=allowed, cost=cost)


def decide(
    algorithm: Algorithm,
    rate: Rate,
    counts: WindowCounts,
    now: float,
    *,
    allowed: bool,
    cost: int,
) -> Decision:
    """The decision for ``counts`` after a hit (counted if ``allowed``)."""
    window_end = (counts.window + 1) * rate.period
    # Remaining: how many more unit-cost hits the current counters admit right now.
    remaining = max(0, admission_ceiling(algorithm, rate, counts, 1, now) - counts.current + 1)
    retry_after = 0.0 if allowed else _seconds_until_admitted(algorithm, rate, counts, cost, now)
    reset_after = max(window_end - now, retry_after)
    return Decision(
        allowed=allowed,
        limit=rate.limit,
        remaining=remaining,
        reset_after=reset_after,
        retry_after=retry_after,
    )
