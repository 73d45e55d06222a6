"""RateLimit header values: IETF draft syntax (checked with a Structured Fields parser),
rounding of reset and Retry-After, and the legacy X-RateLimit-* trio."""

from __future__ import annotations

import http_sf
import pytest

from asgi_lambda_mw.ratelimit._headers import RouteHeaders, retry_after_seconds
from asgi_lambda_mw.ratelimit.policy import Decision, Rate

MINUTE = Rate(100, 60)
HOUR = Rate(1000, 3600)


def allowed(remaining: int, reset_after: float, limit: int = 100) -> Decision:
    return Decision(
        allowed=True, limit=limit, remaining=remaining, reset_after=reset_after, retry_after=0
    )


def test_policy_field_is_a_structured_list_of_quota_policies() -> None:
    headers = RouteHeaders([MINUTE, HOUR], legacy=False)
    parsed = http_sf.parse(headers.policy.encode(), tltype="list")
    assert parsed == [
        ("100-per-60s", {"q": 100, "w": 60}),
        ("1000-per-3600s", {"q": 1000, "w": 3600}),
    ]


def test_ratelimit_field_names_the_policy_with_remaining_and_reset() -> None:
    fields = dict(RouteHeaders([MINUTE], legacy=False).fields(MINUTE, allowed(42, 16.2)))
    assert fields["RateLimit"] == '"100-per-60s";r=42;t=17'
    assert http_sf.parse(fields["RateLimit"].encode(), tltype="list") == [
        ("100-per-60s", {"r": 42, "t": 17})
    ]


def test_ratelimit_field_reports_zero_remaining_when_denied() -> None:
    denied = Decision(allowed=False, limit=100, remaining=3, reset_after=30.0, retry_after=5.0)
    fields = dict(RouteHeaders([MINUTE], legacy=False).fields(MINUTE, denied))
    assert fields["RateLimit"] == '"100-per-60s";r=0;t=30'


def test_reset_that_is_a_whole_number_is_not_rounded_up_by_float_noise() -> None:
    fields = dict(RouteHeaders([MINUTE], legacy=False).fields(MINUTE, allowed(1, 17.0000000001)))
    assert fields["RateLimit"].endswith(";t=17")


def test_legacy_headers_are_absent_by_default() -> None:
    fields = dict(RouteHeaders([MINUTE], legacy=False).fields(MINUTE, allowed(42, 17)))
    assert set(fields) == {"RateLimit-Policy", "RateLimit"}


def test_legacy_headers_report_limit_remaining_and_reset_seconds() -> None:
    fields = dict(RouteHeaders([MINUTE], legacy=True).fields(MINUTE, allowed(42, 16.5)))
    assert fields["X-RateLimit-Limit"] == "100"
    assert fields["X-RateLimit-Remaining"] == "42"
    assert fields["X-RateLimit-Reset"] == "17"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.0, 1), (0.001, 1), (1.0, 1), (1.2, 2), (16.000000000001, 16), (59.9, 60)],
)
def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one(
    seconds: float, expected: int
) -> None:
    assert retry_after_seconds(seconds) == expected
