"""In-process storage for local development and single-instance use.

It runs the policy functions directly under a lock, keeps at most ``max_keys`` counters
(least recently used evicted first) and drops counters whose windows have passed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import ClassVar

from ...exceptions import ConfigurationError
from ..policy import Algorithm, Decision, Rate, WindowCounts, apply_hit

__all__ = ["MemoryStorage"]

_DEFAULT_MAX_KEYS = 100_000


class MemoryStorage:
    """Counters in a bounded in-process dict; never touches the network.

    ``max_keys`` (default 100 000) bounds memory: past it, the least recently used counter is
    evicted, which can only make the limiter more lenient towards that key, never stricter.
    ``clock`` (default ``time.time``) is injectable so tests control time.

    ``local = True``: ``hit`` never awaits, so RateLimitMiddleware arms no time budget around
    it (see Storage). A subclass whose ``hit`` awaits I/O must set ``local = False``.
    """

    local: ClassVar[bool] = True

    def __init__(
        self, *, max_keys: int = _DEFAULT_MAX_KEYS, clock: Callable[[], float] = time.time
    ) -> None:
        if max_keys < 1:
            raise ConfigurationError(f"MemoryStorage max_keys must be at least 1, not {max_keys}")
        self._max_keys = max_keys
        self._clock = clock
        # key -> (counters, epoch second after which they count for nothing)
        self._counters: OrderedDict[str, tuple[WindowCounts, float]] = OrderedDict()
        # Threads too (sync test clients, several loops): hits are short, so a plain lock is cheap.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._counters)

    async def hit(
        self, key: str, rate: Rate, *, algorithm: Algorithm = "sliding", cost: int = 1
    ) -> Decision:
        now = self._clock()
        slot = f"{key}#{rate.policy_name}#{algorithm}"
        with self._lock:
            entry = self._counters.pop(slot, None)
            state = entry[0] if entry is not None and entry[1] > now else None
            counts, decision = apply_hit(algorithm, state, rate, now, cost)
            # The counters matter until the window after theirs has slid past.
            self._counters[slot] = (counts, (counts.window + 2) * rate.period)
            self._evict(now)
        return decision

    def _evict(self, now: float) -> None:
        # Expired counters sit at the least recently used end in the steady state.
        while self._counters:
            oldest_slot, (_, expires_at) = next(iter(self._counters.items()))
            if expires_at > now and len(self._counters) <= self._max_keys:
                return
            del self._counters[oldest_slot]

    async def aclose(self) -> None:
        """Nothing to release; present for the Storage protocol."""
