"""A log line that cannot flood: at most one record per interval, the next one carrying the
number suppressed meanwhile. Used for storage failures and unknown clients, which can
happen on every request."""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["ThrottledLog"]


class ThrottledLog:
    """Emits through ``logger`` at most once per ``interval`` seconds of ``clock``."""

    __slots__ = ("_clock", "_interval", "_level", "_logger", "_next_at", "_suppressed")

    def __init__(
        self,
        logger: logging.Logger,
        *,
        level: int,
        interval: float,
        clock: Callable[[], float],
    ) -> None:
        self._logger = logger
        self._level = level
        self._interval = interval
        self._clock = clock
        self._next_at = float("-inf")
        self._suppressed = 0

    def emit(self, message: str, *args: object, exc_info: bool = False, **fields: object) -> None:
        now = self._clock()
        if now < self._next_at:
            self._suppressed += 1
            return
        suppressed, self._suppressed = self._suppressed, 0
        self._next_at = now + self._interval
        if not self._logger.isEnabledFor(self._level):
            return
        if suppressed:
            message += " (%d similar messages suppressed since the last one)"
            args = (*args, suppressed)
        self._logger.log(
            self._level,
            message,
            *args,
            exc_info=exc_info,
            extra={**fields, "suppressed": suppressed},
        )
