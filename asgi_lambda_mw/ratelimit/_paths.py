"""Path patterns for RateLimitMiddleware's ``routes`` and ``exempt_paths``, compiled once.

Syntax: ``[METHOD ]PATH``. PATH is exact (``/login``) or a prefix ending in ``*``
(``/api/*`` matches ``/api``, ``/api/`` and everything under it). Exact beats prefix, a longer
prefix beats a shorter one, and a pattern with a method beats one without.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from ..exceptions import ConfigurationError

__all__ = ["PathTable"]

T = TypeVar("T")


def _parse(pattern: object, setting: str) -> tuple[str | None, str, bool]:
    """(method or None, path or prefix, is_prefix) of one pattern."""
    if not isinstance(pattern, str):
        raise ConfigurationError(f"{setting}: {pattern!r} is not a path pattern")
    method, _, path = pattern.strip().rpartition(" ")
    method = method.strip().upper()
    if method and not method.isalpha():
        raise ConfigurationError(f"{setting}: {pattern!r} has an invalid method {method!r}")
    if not path.startswith("/") or "*" in path[:-1]:
        raise ConfigurationError(
            f"{setting}: {pattern!r} must be '[METHOD ]/path' where the path is exact "
            "or ends with '*' (such as '/health', 'POST /login' or '/api/*')"
        )
    if path.endswith("*"):
        return method or None, path[:-1], True
    return method or None, path, False


class PathTable(Generic[T]):
    """Maps ``(method, path)`` to the value of the best matching pattern."""

    __slots__ = ("_exact", "_prefixes")

    def __init__(self, entries: Iterable[tuple[str, T]], *, setting: str) -> None:
        self._exact: dict[tuple[str | None, str], T] = {}
        prefixes: dict[tuple[str | None, str], T] = {}
        for pattern, value in entries:
            method, path, is_prefix = _parse(pattern, setting)
            table = prefixes if is_prefix else self._exact
            if (method, path) in table:
                raise ConfigurationError(f"{setting}: {pattern!r} is given twice")
            table[(method, path)] = value
        # Longest prefix first; at equal length, a pattern with a method first.
        self._prefixes = sorted(
            ((method, prefix, value) for (method, prefix), value in prefixes.items()),
            key=lambda item: (-len(item[1]), item[0] is None),
        )

    def __bool__(self) -> bool:
        return bool(self._exact or self._prefixes)

    def match(self, method: str, path: str) -> T | None:
        exact = self._exact
        if exact:
            value = exact.get((method, path))
            if value is None:
                value = exact.get((None, path))
            if value is not None:
                return value
        for pattern_method, prefix, value in self._prefixes:
            if pattern_method is not None and pattern_method != method:
                continue
            if path.startswith(prefix) or (prefix.endswith("/") and path == prefix[:-1]):
                return value
        return None
