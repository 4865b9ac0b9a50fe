"""Provider intelligence, policies, scopes, strategies and budgets through the Python API."""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict

import pytest

from ai_key_rotator import FakeClock, KeyRotator, NoKeyAvailable

from support import two_keys

OPENAI_TPM = (
    b'{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-x on tokens per '
    b'min (TPM): Limit 200000, Used 199000, Requested 2000. Please try again in 3.202s.",'
    b'"type":"tokens","param":null,"code":"rate_limit_exceeded"}}'
)


def ms(clock: FakeClock, seconds: float = 0.0) -> int:
    return int(round((clock.now() + seconds) * 1000))


def test_report_response_cools_until_the_providers_time(clock: FakeClock) -> None:
    r = two_keys(clock)
    c = r.get_key("openai")
    assert c is not None
    verdict = r.report_response(c, 429, [("content-type", "application/json")], OPENAI_TPM)
    assert verdict["kind"] == "rate-limited" and verdict["blames_key"] is True
    assert verdict["until"] == ms(clock, 3.202)
    status = r.get_status("openai")["credentials"][0]
    assert status["until"] == ms(clock, 3.202)  # the provider's time wins over the 60 s policy
    assert r.get_key("openai").key == "sk-b"  # type: ignore[union-attr]


def test_ok_with_remaining_zero_cools_before_the_429(clock: FakeClock) -> None:
    r = two_keys(clock)
    c = r.get_key("openai")
    assert c is not None
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s"}
    verdict = r.report_response(c, 200, headers)
    assert verdict["kind"] == "ok" and not verdict["blames_key"]
    assert r.get_status("openai")["credentials"][0]["until"] == ms(clock, 360)


def test_invalid_key_is_disabled_until_enabled(clock: FakeClock) -> None:
    r = two_keys(clock)
    c = r.get_key("openai")
    assert c is not None
    body = b'{"error":{"message":"Incorrect API key provided: sk-a.","type":"invalid_request_error","code":"invalid_api_key"}}'
    assert r.report_response(c, 401, {}, body)["kind"] == "invalid-key"
    assert r.get_status("openai")["credentials"][0]["state"] == "disabled"
    clock.advance(365 * 86400)
    assert r.reset_all() == 0
    assert r.get_key("openai").key == "sk-b"  # type: ignore[union-attr]


def test_server_errors_blame_no_key(clock: FakeClock) -> None:
    r = two_keys(clock)
    c = r.get_key("openai")
    assert c is not None
    assert r.report_response(c, 503, {"retry-after": "2"})["blames_key"] is False
    # Not held against the key: it stays available and is not counted as exhausted (the next
    # request may still go to another key, since a server error says nothing about this one).
    status = r.get_status("openai")["credentials"][0]
    assert status["state"] == "available"
    assert status["times_exhausted"] == 0


def next_midnight_utc(clock: FakeClock) -> int:
    now = dt.datetime.fromtimestamp(clock.now(), dt.timezone.utc)
    midnight = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(midnight.timestamp() * 1000)


@pytest.mark.parametrize(
    "cooldown, expected",
    [
        ({"type": "fixed", "durationMs": 90_000}, lambda c: ms(c, 90)),
        ({"type": "midnight-utc"}, next_midnight_utc),
        (None, next_midnight_utc),  # the original's default
        ({"type": "daily-at", "at": "00:00", "time_zone": "UTC"}, next_midnight_utc),
        ({"type": "monthly", "day": 1, "at": "00:00", "time_zone": "UTC"}, None),
        ({"type": "exponential", "base_ms": 1000, "max_ms": 8000, "jitter": False}, lambda c: ms(c, 1)),
        ({"type": "from-response", "fallback": {"type": "fixed", "duration_ms": 5000}}, lambda c: ms(c, 5)),
    ],
)
def test_every_cooldown_policy(clock: FakeClock, cooldown: Any, expected: Any) -> None:
    provider: Dict[str, Any] = {"credentials": ["sk-a", "sk-b"]}
    if cooldown is not None:
        provider["cooldown"] = cooldown
    r = KeyRotator({"p": provider}, reset_interval_ms=0, clock=clock)
    assert r.mark_exhausted("p", "sk-a")
    until = r.get_status("p")["credentials"][0]["until"]
    if expected is None:  # the 1st of next month, 00:00 UTC
        now = dt.datetime.fromtimestamp(clock.now(), dt.timezone.utc)
        first = (now.replace(day=1) + dt.timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        assert until == int(first.timestamp() * 1000)
    else:
        assert until == expected(clock)


def test_exponential_grows_with_repeated_failures(clock: FakeClock) -> None:
    r = KeyRotator(
        {"p": {"credentials": ["sk-a"], "cooldown": {"type": "exponential", "base_ms": 1000, "max_ms": 3000, "jitter": False}}},
        reset_interval_ms=0,
        clock=clock,
    )
    rests = []
    for _ in range(4):
        r.mark_exhausted("p", "sk-a")
        until = r.get_status("p")["credentials"][0]["until"]
        rests.append(until - ms(clock))
        clock.advance((until - ms(clock)) / 1000)
    assert rests == [1000, 2000, 3000, 3000]


def test_round_robin_and_weighted_strategies(clock: FakeClock) -> None:
    rr = two_keys(clock, strategy="round-robin")
    assert [rr.get_key("openai").key for _ in range(4)] == ["sk-a", "sk-b", "sk-a", "sk-b"]  # type: ignore[union-attr]
    weighted = KeyRotator(
        {"p": {"strategy": "weighted", "credentials": [{"key": "sk-a", "weight": 3}, {"key": "sk-b"}]}},
        reset_interval_ms=0,
        clock=clock,
    )
    picks = [weighted.get_key("p").key for _ in range(400)]  # type: ignore[union-attr]
    assert picks.count("sk-a") == 300 and picks.count("sk-b") == 100


def test_sessions_stick_to_a_key(clock: FakeClock) -> None:
    r = two_keys(clock, strategy="round-robin")
    keys = set()
    for _ in range(10):
        with r.acquire("openai", session="conversation-1") as lease:
            keys.add(lease.key)
    assert len(keys) == 1


def test_budgets_refuse_before_the_provider_does(clock: FakeClock) -> None:
    r = KeyRotator(
        {"p": {"credentials": ["sk-a"], "budget": {"requests_per_minute": 2}}},
        reset_interval_ms=0,
        clock=clock,
    )
    for _ in range(2):
        with r.acquire("p") as lease:
            lease.success()
    with pytest.raises(NoKeyAvailable) as e:
        r.acquire("p")
    assert e.value.retry_after is not None and 0 < e.value.retry_after <= 30.0
    clock.advance(e.value.retry_after)
    with r.acquire("p") as lease:
        assert lease.key == "sk-a"


def test_in_flight_budget_counts_leases(clock: FakeClock) -> None:
    r = KeyRotator({"p": {"credentials": ["sk-a"], "budget": {"max_in_flight": 1}}}, reset_interval_ms=0, clock=clock)
    with r.acquire("p"):
        with pytest.raises(NoKeyAvailable):
            r.acquire("p")
    with r.acquire("p") as lease:
        assert lease.active


def test_scope_shared_limit_cools_the_whole_scope(clock: FakeClock) -> None:
    r = KeyRotator(
        {"openai": {"credentials": [
            {"key": "sk-1", "scope": "org-1"},
            {"key": "sk-2", "scope": "org-1"},
            {"key": "sk-3", "scope": "org-2"},
        ]}},
        reset_interval_ms=0,
        clock=clock,
    )
    c = r.get_key("openai")
    assert c is not None
    r.report_response(c, 429, {}, OPENAI_TPM)
    assert r.get_key("openai").key == "sk-3"  # type: ignore[union-attr]
    states = [s["state"] for s in r.get_status("openai")["credentials"]]
    assert states == ["cooling", "cooling", "available"]


@pytest.mark.parametrize(
    "strategy", ["fill-first", "round-robin", "least-recently-used", "weighted", "least-in-flight", "most-remaining"]
)
def test_every_strategy_hands_out_only_available_keys(clock: FakeClock, strategy: str) -> None:
    r = KeyRotator(
        {"p": {"strategy": strategy, "credentials": ["sk-a", "sk-b", "sk-c"]}}, reset_interval_ms=0, clock=clock
    )
    r.mark_exhausted("p", "sk-b")
    picked = set()
    for _ in range(30):
        with r.acquire("p") as lease:
            picked.add(lease.key)
            lease.success()
    assert "sk-b" not in picked and picked <= {"sk-a", "sk-c"}


def test_least_in_flight_spreads_held_leases(clock: FakeClock) -> None:
    r = KeyRotator({"p": {"strategy": "least-in-flight", "credentials": ["sk-a", "sk-b"]}}, reset_interval_ms=0, clock=clock)
    first, second = r.acquire("p"), r.acquire("p")
    assert {first.key, second.key} == {"sk-a", "sk-b"}
    first.release()
    second.release()


def test_report_success_resets_the_exponential_backoff(clock: FakeClock) -> None:
    r = KeyRotator(
        {"p": {"credentials": ["sk-a"], "cooldown": {"type": "exponential", "base_ms": 1000, "max_ms": 60_000, "jitter": False}}},
        reset_interval_ms=0,
        clock=clock,
    )
    assert r.now() == clock.now()
    r.mark_exhausted("p", "sk-a")
    clock.advance(1)
    c = r.get_key("p")
    assert c is not None
    r.report_success(c)
    r.mark_exhausted("p", "sk-a")
    assert r.get_status("p")["credentials"][0]["until"] == ms(clock, 1)  # back to the base
