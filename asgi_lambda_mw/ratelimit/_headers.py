"""RateLimit response headers, per the IETF httpapi draft (draft-ietf-httpapi-ratelimit-headers,
revisions 08-11): ``RateLimit-Policy: "100-per-60s";q=100;w=60`` and
``RateLimit: "100-per-60s";r=42;t=17`` (Structured Field lists), plus ``Retry-After`` and
the optional legacy ``X-RateLimit-*`` trio. What does not change per request is built once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .policy import Decision, Rate

__all__ = ["RouteHeaders", "retry_after_seconds"]

# Float arithmetic must not turn an exact 17 s into 18 s.
_EPSILON = 1e-9


def retry_after_seconds(seconds: float) -> int:
    """Whole seconds, rounded up, at least 1: a client that waits this long is not refused
    for the same reason again."""
    return max(1, math.ceil(seconds - _EPSILON))


def _reset_seconds(seconds: float) -> int:
    return max(0, math.ceil(seconds - _EPSILON))


class RouteHeaders:
    """Header values for one set of rates, with the policy field precomputed."""

    __slots__ = ("_legacy", "_prefixes", "policy")

    def __init__(self, rates: Sequence[Rate], *, legacy: bool) -> None:
        # The policy identifier is a Structured Field String; policy_name is a plain token.
        self.policy = ", ".join(
            f'"{rate.policy_name}";q={rate.limit};w={rate.period}' for rate in rates
        )
        self._prefixes = {rate: f'"{rate.policy_name}";r=' for rate in rates}
        self._legacy = legacy

    def fields(self, rate: Rate, decision: Decision) -> list[tuple[str, str]]:
        """The fields for a response under ``decision`` (the most restrictive rate's)."""
        remaining = decision.remaining if decision.allowed else 0
        reset = _reset_seconds(decision.reset_after)
        fields = [
            ("RateLimit-Policy", self.policy),
            ("RateLimit", f"{self._prefixes[rate]}{remaining};t={reset}"),
        ]
        if self._legacy:
            fields += [
                ("X-RateLimit-Limit", str(decision.limit)),
                ("X-RateLimit-Remaining", str(remaining)),
                ("X-RateLimit-Reset", str(reset)),
            ]
        return fields
