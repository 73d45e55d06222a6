"""Rates and the counting algorithms, as pure functions of (state, now)."""

from __future__ import annotations

import pytest

from asgi_lambda_mw.exceptions import ConfigurationError
from asgi_lambda_mw.ratelimit.policy import (
    Rate,
    WindowCounts,
    admission_ceiling,
    apply_hit,
    parse_rates,
    roll_window,
)


@pytest.mark.parametrize(
    ("text", "limit", "period"),
    [
        ("100/minute", 100, 60),
        ("10/second", 10, 1),
        ("1000/hour", 1000, 3600),
        ("5/10 seconds", 5, 10),
        ("5 per 10 seconds", 5, 10),
        ("2/day", 2, 86400),
        (" 7 / 2 Minutes ", 7, 120),
        ("3/s", 3, 1),
    ],
)
def test_rate_parse_accepts_common_spellings(text: str, limit: int, period: int) -> None:
    assert Rate.parse(text) == Rate(limit=limit, period=period)


@pytest.mark.parametrize(
    "text", ["", "100", "100/fortnight", "-1/minute", "0/minute", "10/0 seconds", "ten/minute"]
)
def test_rate_parse_rejects_bad_strings_quoting_them(text: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid rate"):
        Rate.parse(text)


def test_parse_rates_reads_several_rates() -> None:
    assert parse_rates("10/second; 500/hour") == (Rate(10, 1), Rate(500, 3600))


def test_parse_rates_rejects_a_repeated_rate() -> None:
    with pytest.raises(ConfigurationError, match="twice"):
        parse_rates("10/second; 10/second")


def test_fixed_window_admits_the_limit_then_denies_until_the_next_window() -> None:
    rate, state = Rate(3, 10), None
    verdicts = []
    for _ in range(4):
        state, decision = apply_hit("fixed", state, rate, now=1001.0)
        verdicts.append(decision.allowed)
    assert verdicts == [True, True, True, False]
    assert decision.retry_after == pytest.approx(9.0)
    _, decision = apply_hit("fixed", state, rate, now=1010.0)
    assert decision.allowed
    assert decision.remaining == 2


def test_denied_hits_are_not_counted() -> None:
    rate = Rate(2, 10)
    state, _ = apply_hit("fixed", None, rate, now=0.0)
    state, _ = apply_hit("fixed", state, rate, now=0.0)
    for _ in range(50):
        state, decision = apply_hit("fixed", state, rate, now=1.0)
        assert not decision.allowed
    assert state.current == 2


def test_sliding_window_blocks_the_double_burst_at_a_window_edge() -> None:
    rate, state = Rate(10, 60), None
    for _ in range(10):  # a full burst at the very end of one window
        state, _ = apply_hit("sliding", state, rate, now=59.0)
    admitted = 0
    for _ in range(10):  # and again right after the edge
        state, decision = apply_hit("sliding", state, rate, now=61.0)
        admitted += decision.allowed
    assert admitted == 0


def test_sliding_window_admits_again_exactly_at_retry_after() -> None:
    rate, state = Rate(10, 60), None
    for _ in range(10):
        state, _ = apply_hit("sliding", state, rate, now=30.0)
    state, denied = apply_hit("sliding", state, rate, now=61.0)
    assert not denied.allowed
    just_before = 61.0 + denied.retry_after - 0.01
    _, early = apply_hit("sliding", state, rate, now=just_before)
    assert not early.allowed
    _, on_time = apply_hit("sliding", state, rate, now=61.0 + denied.retry_after)
    assert on_time.allowed


def test_sliding_window_counts_nothing_from_windows_older_than_the_previous() -> None:
    rate = Rate(5, 10)
    stale = WindowCounts(window=1, current=5, previous=5)
    assert roll_window(stale, rate, now=100.0) == WindowCounts(window=10)


def test_remaining_falls_by_the_cost() -> None:
    rate = Rate(10, 60)
    _, decision = apply_hit("sliding", None, rate, now=0.0, cost=4)
    assert decision.remaining == 6


def test_a_cost_above_the_limit_is_always_denied() -> None:
    _, decision = apply_hit("sliding", None, Rate(3, 60), now=0.0, cost=4)
    assert not decision.allowed
    assert decision.retry_after > 0


def test_admission_ceiling_subtracts_the_weighted_previous_window() -> None:
    counts = WindowCounts(window=1, current=0, previous=10)
    # A quarter of the way into window 1, three quarters of window 0 still overlap.
    assert admission_ceiling("sliding", Rate(10, 60), counts, 1, now=75.0) == 1
    assert admission_ceiling("fixed", Rate(10, 60), counts, 1, now=75.0) == 9
