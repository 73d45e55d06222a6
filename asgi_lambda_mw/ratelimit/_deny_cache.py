"""An in-process memory of denied buckets, so a client hammering past its limit costs no
storage call until the moment it could pass again. Bounded; oldest entries go first."""

from __future__ import annotations

from collections import OrderedDict

from .policy import Decision, Rate

__all__ = ["DenyCache"]


class _Denial:
    # A private record, not a frozen dataclass: building the dataclass costs ~0.7 ms of cold
    # start (Lambda pays it on every new execution environment) for nothing a caller sees.
    __slots__ = ("limit", "rate", "reset_at", "until")

    def __init__(self, rate: Rate, limit: int, until: float, reset_at: float) -> None:
        self.rate = rate
        self.limit = limit
        self.until = until  # clock time from which a request could pass
        self.reset_at = reset_at  # clock time at which the window's quota is restored


class DenyCache:
    """Bucket -> when it may next pass. Times come from the middleware's monotonic clock."""

    __slots__ = ("_entries", "_max_size")

    def __init__(self, max_size: int) -> None:
        self._max_size = max_size
        self._entries: OrderedDict[str, _Denial] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, bucket: str, rate: Rate, decision: Decision, now: float) -> None:
        if self._max_size <= 0 or decision.retry_after <= 0:
            return
        self._entries.pop(bucket, None)
        self._entries[bucket] = _Denial(
            rate,
            decision.limit,
            now + decision.retry_after,
            now + max(decision.reset_after, decision.retry_after),
        )
        while len(self._entries) > self._max_size:
            try:
                self._entries.popitem(last=False)
            except KeyError:  # emptied meanwhile by another thread
                break

    def check(self, bucket: str, now: float) -> tuple[Rate, Decision] | None:
        """The denial still in force for ``bucket`` at ``now``, or None."""
        if not self._entries:
            return None
        denial = self._entries.get(bucket)
        if denial is None:
            return None
        if now >= denial.until:
            self._entries.pop(bucket, None)
            return None
        retry_after = denial.until - now
        decision = Decision(
            allowed=False,
            limit=denial.limit,
            remaining=0,
            reset_after=max(denial.reset_at - now, retry_after),
            retry_after=retry_after,
        )
        return denial.rate, decision
