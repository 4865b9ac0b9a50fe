"""Events: delivered to `on` callbacks on the rotator's event thread, never blocking."""

from __future__ import annotations

import threading
from typing import Any, Dict, List

from ai_key_rotator import FakeClock, KeyRotator

from support import drain_until, two_keys


class Recorder:
    def __init__(self) -> None:
        self.events: List[Dict[str, Any]] = []
        self.signal = threading.Event()
        self.threads: set = set()

    def __call__(self, event: Dict[str, Any]) -> None:
        self.events.append(event)
        self.threads.add(threading.get_ident())
        self.signal.set()

    def names(self) -> List[str]:
        return [e["event"] for e in self.events]

    def wait_for(self, name: str, count: int = 1) -> None:
        drain_until(self.events, lambda: self.names().count(name) >= count, self.signal)


def test_the_originals_events(clock: FakeClock) -> None:
    r = two_keys(clock)
    rec = Recorder()
    for name in ["exhausted", "rotated", "all_exhausted", "reset"]:
        r.on(name, rec)
    r.mark_exhausted("openai", "sk-a")
    r.mark_exhausted("openai", "sk-b")
    r.reset_all("openai")
    rec.wait_for("reset")
    assert rec.names() == ["exhausted", "rotated", "exhausted", "all_exhausted", "reset"]
    first = rec.events[0]
    assert first["provider"] == "openai"
    assert first["credential"]["label"] == "a"
    assert first["until"] == int((clock.now() + 60) * 1000)
    assert rec.events[1]["from"]["label"] == "a" and rec.events[1]["to"]["label"] == "b"
    assert sorted(c["label"] for c in rec.events[4]["credentials"]) == ["a", "b"]
    assert threading.get_ident() not in rec.threads  # delivered on the event thread
    r.close()


def test_richer_events_and_wildcard(clock: FakeClock) -> None:
    r = KeyRotator(
        {"gemini": {"credentials": [{"key": "g-1", "scope": "proj"}, {"key": "g-2", "scope": "proj"}]}},
        reset_interval_ms=0,
        clock=clock,
    )
    rec = Recorder()
    r.on("*", rec)
    c = r.get_key("gemini")
    assert c is not None
    body = b'{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}'
    assert r.report_response(c, 400, {}, body)["kind"] == "invalid-key"
    rec.wait_for("disabled")
    assert r.enable("gemini", "g-1")
    rec.wait_for("enabled")
    quota = b'{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message":"Quota exceeded","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"38s"}]}}'
    c = r.get_key("gemini")
    assert c is not None
    r.report_response(c, 429, {}, quota)
    rec.wait_for("scope_exhausted")
    scope = next(e for e in rec.events if e["event"] == "scope_exhausted")
    assert scope["scope"] == "proj" and len(scope["credentials"]) == 2
    assert scope["until"] == int((clock.now() + 38) * 1000)


def test_a_blocked_callback_never_blocks_get_key(clock: FakeClock) -> None:
    r = two_keys(clock)
    release = threading.Event()
    entered = threading.Event()
    lagged = Recorder()

    def slow(event: Dict[str, Any]) -> None:
        entered.set()
        release.wait(60)

    r.on("exhausted", slow)
    r.on("lagged", lagged)
    done = threading.Event()

    def work() -> None:
        # Far more events than the subscriber's queue holds (1024), while it is stuck.
        for _ in range(3000):
            r.mark_exhausted("openai", "sk-a")
            r.reset_all()
            assert r.get_key("openai") is not None
        done.set()

    t = threading.Thread(target=work)
    t.start()
    assert entered.wait(30)
    assert done.wait(120), "get_key and mark_exhausted waited for a blocked callback"
    release.set()
    t.join()
    lagged.wait_for("lagged")
    assert lagged.events[0]["missed"] > 0
    r.close()


def test_off_and_close_stop_delivery(clock: FakeClock) -> None:
    r = two_keys(clock)
    rec, other = Recorder(), Recorder()
    r.on("exhausted", rec)
    r.on("exhausted", other)
    r.off("exhausted", rec)
    r.mark_exhausted("openai", "sk-a")
    other.wait_for("exhausted")
    assert rec.events == []
