"""The library's two exceptions: bad configuration (raised at start-up) and storage failures
(raised by a rate-limit storage, turned into fail-open or fail-closed by the middleware)."""

from __future__ import annotations


class ConfigurationError(ValueError):
    """A setting or environment variable has a value the library cannot use.

    The message always names the setting, so a bad deploy fails at start-up, not per request.
    """


class StorageError(Exception):
    """A rate-limit storage could not answer: unreachable, throttled, timed out or misconfigured.

    ``retryable`` tells whether the same call may succeed if tried again (throttling, 5xx,
    a dropped connection), as opposed to a permanent fault (missing table, bad credentials).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
