"""RateLimit response headers, per the IETF httpapi draft (draft-ietf-httpapi-ratelimit-headers,
revisions 08-11): ``RateLimit-Policy: "100-per-60s";q=100;w=60`` and
``RateLimit: "100-per-60s";r=42;t=17`` (Structured Field lists), plus ``Retry-After`` and
the optional legacy ``X-RateLimit-*`` trio. What does not change per request is built once.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

from ..types import Message
from .policy import Decision, Rate

__all__ = [
    "RawFields",
    "RouteHeaders",
    "add_missing_fields",
    "replace_fields",
    "retry_after_seconds",
]

# Float arithmetic must not turn an exact 17 s into 18 s.
_EPSILON = 1e-9


def retry_after_seconds(seconds: float) -> int:
    """Whole seconds, rounded up, at least 1: a client that waits this long is not refused
    for the same reason again."""
    return max(1, math.ceil(seconds - _EPSILON))


def _reset_seconds(seconds: float) -> int:
    return max(0, math.ceil(seconds - _EPSILON))


RawFields = list[tuple[bytes, bytes]]
"""Header fields as ASGI carries them: lower-case latin-1 names and values."""

_POLICY = b"ratelimit-policy"
_RATELIMIT = b"ratelimit"
_LEGACY = (b"x-ratelimit-limit", b"x-ratelimit-remaining", b"x-ratelimit-reset")
_DISPLAY_NAMES = {
    _POLICY: "RateLimit-Policy",
    _RATELIMIT: "RateLimit",
    _LEGACY[0]: "X-RateLimit-Limit",
    _LEGACY[1]: "X-RateLimit-Remaining",
    _LEGACY[2]: "X-RateLimit-Reset",
}


class RouteHeaders:
    """Header values for one set of rates, with the policy field precomputed."""

    __slots__ = ("_legacy", "_policy_field", "_prefixes", "names", "policy")

    def __init__(self, rates: Sequence[Rate], *, legacy: bool) -> None:
        # The policy identifier is a Structured Field String; policy_name is a plain token.
        self.policy = ", ".join(
            f'"{rate.policy_name}";q={rate.limit};w={rate.period}' for rate in rates
        )
        self._policy_field = (_POLICY, self.policy.encode("latin-1"))
        self._prefixes = {rate: f'"{rate.policy_name}";r=' for rate in rates}
        self._legacy = legacy
        # The raw names of every field raw_fields returns, for replace_fields.
        self.names = frozenset((_POLICY, _RATELIMIT, *(_LEGACY if legacy else ())))

    def raw_fields(self, rate: Rate, decision: Decision) -> RawFields:
        """The fields for a response under ``decision`` (the most restrictive rate's), ready
        to go into an ASGI message: built per request, so only what varies is formatted."""
        remaining = decision.remaining if decision.allowed else 0
        reset = _reset_seconds(decision.reset_after)
        fields = [
            self._policy_field,
            (_RATELIMIT, f"{self._prefixes[rate]}{remaining};t={reset}".encode("latin-1")),
        ]
        if self._legacy:
            fields += [
                (_LEGACY[0], str(decision.limit).encode()),
                (_LEGACY[1], str(remaining).encode()),
                (_LEGACY[2], str(reset).encode()),
            ]
        return fields

    def fields(self, rate: Rate, decision: Decision) -> list[tuple[str, str]]:
        """``raw_fields`` as text, with the names spelled as the draft spells them."""
        return [
            (_DISPLAY_NAMES[name], value.decode("latin-1"))
            for name, value in self.raw_fields(rate, decision)
        ]


def replace_fields(message: Message, fields: RawFields, names: Collection[bytes]) -> None:
    """Put ``fields`` into a response start ``message``, replacing any field of the same
    name (``names``: theirs), as ``MutableHeaders.__setitem__`` would, without building one."""
    message["headers"] = [
        field for field in message.get("headers", ()) if field[0] not in names
    ] + fields


def add_missing_fields(message: Message, fields: RawFields) -> None:
    """Add those of ``fields`` the response start ``message`` lacks (the sender's own win),
    as ``MutableHeaders.setdefault`` would."""
    headers = list(message.get("headers", ()))
    present = {name for name, _ in headers}
    headers += [field for field in fields if field[0] not in present]
    message["headers"] = headers
