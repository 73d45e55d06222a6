"""The Storage protocol every rate-limit backend implements.

A storage counts hits atomically on its side and answers with a Decision; it raises
StorageError (and nothing else) when it cannot, so the middleware can fail open or closed.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..policy import Algorithm, Decision, Rate

__all__ = ["Storage"]


@runtime_checkable
class Storage(Protocol):
    """Counts hits per key and rate.

    A storage whose ``hit`` never awaits anything (it cannot hang) may say so with a class
    attribute ``local = True``: RateLimitMiddleware then arms no time budget around it. The
    attribute is optional and not part of the protocol's checks; without it the budget applies.
    """

    async def hit(
        self, key: str, rate: Rate, *, algorithm: Algorithm = "sliding", cost: int = 1
    ) -> Decision:
        """Count a hit of ``cost`` for ``key`` under ``rate`` if the algorithm admits it.

        Denied hits are not counted. Raises StorageError when the backend cannot answer.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; the storage may be used again afterwards."""
        ...
