"""Every method of KeyRotator, Credential and Lease."""

from __future__ import annotations

import asyncio
import json
import pathlib
from typing import Dict, Optional

import pytest

from ai_key_rotator import (
    ConfigError,
    Credential,
    FakeClock,
    KeyRotator,
    NoKeyAvailable,
    StateError,
    UnknownProvider,
    fingerprint,
)

from support import two_keys


def key(r: KeyRotator, provider: str = "openai") -> Optional[str]:
    c = r.get_key(provider)
    return None if c is None else c.key


def test_get_key_is_sticky_and_none_for_unknown(clock: FakeClock) -> None:
    r = two_keys(clock)
    assert [key(r) for _ in range(3)] == ["sk-a"] * 3
    assert r.get_key("nope") is None


def test_credential_attributes() -> None:
    r = KeyRotator({"p": {"credentials": [{"key": "sk-1234567890abcd", "label": "l", "meta": {"m": [1, 2]}}]}})
    c = r.get_key("p")
    assert isinstance(c, Credential)
    assert (c.key, c.label, c.provider, c.meta) == ("sk-1234567890abcd", "l", "p", {"m": [1, 2]})
    assert c.fingerprint == fingerprint("sk-1234567890abcd") and len(c.fingerprint) == 16
    assert "abcd" in c.masked_key and "1234567890" not in c.masked_key
    assert c == r.get_key("p") and hash(c) == hash(r.get_key("p"))
    r.close()


def test_mark_exhausted_by_key_current_and_credential(clock: FakeClock) -> None:
    r = two_keys(clock)
    assert r.mark_exhausted("openai", "sk-b") is True
    assert key(r) == "sk-a"
    assert r.mark_exhausted("openai") is True  # the current key: sk-a
    assert key(r) is None
    assert r.mark_exhausted("openai", "sk-unknown") is False
    clock.advance(60)
    c = r.get_key("openai")
    assert c is not None
    assert r.mark_exhausted("openai", c) is True
    assert key(r) != c.key


def test_cooldown_ends_exactly(clock: FakeClock) -> None:
    r = two_keys(clock)
    r.mark_exhausted("openai", "sk-a")
    clock.advance(1)
    r.mark_exhausted("openai", "sk-b")
    assert not r.has_available("openai")
    clock.advance(58.999)
    assert key(r) is None
    clock.advance(0.001)  # sk-a's minute is over, sk-b's is not
    assert key(r) == "sk-a"


def test_rotate_next_has_available_providers(clock: FakeClock) -> None:
    r = two_keys(clock)
    assert r.rotate_next("openai") is True
    assert key(r) == "sk-b"
    assert r.has_available("openai")
    assert not r.has_available("nope")
    assert r.get_providers() == ["openai"]


def test_status(clock: FakeClock) -> None:
    r = two_keys(clock)
    r.mark_exhausted("openai", "sk-a")
    s = r.get_status("openai")
    assert (s["name"], s["total"], s["available"]) == ("openai", 2, 1)
    a = s["credentials"][0]
    assert (a["label"], a["state"], a["until"]) == ("a", "cooling", int((clock.now() + 60) * 1000))
    whole = r.get_status()
    assert [p["name"] for p in whole["providers"]] == ["openai"]
    with pytest.raises(UnknownProvider, match="`nope`"):
        r.get_status("nope")


def test_add_and_remove_credentials_and_providers(clock: FakeClock) -> None:
    r = two_keys(clock)
    r.add_credential("openai", {"key": "sk-c", "label": "c"})
    r.add_credential("openai", "sk-d")
    assert r.get_status("openai")["total"] == 4
    with pytest.raises(ConfigError, match="duplicate"):
        r.add_credential("openai", "sk-c")
    with pytest.raises(UnknownProvider):
        r.add_credential("nope", "sk-x")
    assert r.remove_credential("openai", "sk-a") is True
    assert r.remove_credential("openai", "sk-a") is False
    assert key(r) == "sk-b"
    r.add_provider("anthropic", {"credentials": [{"key": "sk-ant"}]})
    assert r.get_providers() == ["openai", "anthropic"]
    assert key(r, "anthropic") == "sk-ant"
    with pytest.raises(ConfigError, match="already exists"):
        r.add_provider("anthropic", {"credentials": ["sk-x"]})


def test_reset_all_disable_enable(clock: FakeClock) -> None:
    r = two_keys(clock)
    r.mark_exhausted("openai", "sk-a")
    r.mark_exhausted("openai", "sk-b")
    assert r.reset_all("openai") == 2
    assert key(r) == "sk-b"  # sticky: the provider stays on its current key
    assert r.disable("openai", "sk-b") is True
    assert r.disable("openai", "sk-b") is False
    assert key(r) == "sk-a"
    r.mark_exhausted("openai", "sk-a")
    assert key(r) is None
    assert r.reset_all() == 1  # disabled keys stay disabled
    assert key(r) == "sk-a"
    assert r.enable("openai", "sk-b") is True
    assert r.enable("openai", "sk-b") is False


def test_config_errors_name_provider_and_field() -> None:
    cases = [
        ({"p": {"credentials": []}}, "provider `p` has no credentials"),
        ({"p": {"credentials": [{"key": " "}]}}, "credential #1 of provider `p` has an empty key"),
        ({"p": {"credentials": [{"key": "k", "lable": "x"}]}}, "unknown field `lable`"),
        ({"p": {"credentials": ["k"], "cooldown": {"type": "fixed", "durationMs": 0}}}, "zero-length"),
        ({"p": {"credentials": ["k"], "cooldown": {"type": "daily-at", "time_zone": "Mars/Olympus"}}}, "provider `p` has an invalid cooldown"),
        ({"p": {"credentials": ["k"], "strategy": "random"}}, "provider `p`"),
        ({"p": {"credentials": [{"key": "k", "label": "x", "weight": 0}]}}, "credential x of provider `p` has weight 0"),
    ]
    for providers, message in cases:
        with pytest.raises(ConfigError, match=message):
            KeyRotator(providers)


def test_from_toml(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "rotator.toml"
    path.write_text(
        'reset_interval_ms = 0\n[providers.openai]\ncooldown = { type = "fixed", duration_ms = 1000 }\n'
        'credentials = [{ key = "sk-1", label = "one" }, { key = "sk-2" }]\n'
    )
    with KeyRotator.from_toml(path) as r:
        assert key(r) == "sk-1"
    path.write_text("[providers.openai\n")
    with pytest.raises(ConfigError, match="invalid TOML configuration"):
        KeyRotator.from_toml(path)
    with pytest.raises(ConfigError, match="cannot read"):
        KeyRotator.from_toml(tmp_path / "missing.toml")


class Memory:
    """The original's persistence adapter shape: save(state) and load()."""

    def __init__(self) -> None:
        self.state: Optional[str] = None

    def save(self, state: str) -> None:
        self.state = state

    def load(self) -> Optional[str]:
        return self.state


def test_save_and_load(clock: FakeClock) -> None:
    store = Memory()
    first = two_keys(clock)
    first = KeyRotator({"openai": {"credentials": ["sk-a", "sk-b"]}}, persistence=store, clock=clock)
    first.mark_exhausted("openai", "sk-a")
    first.save()
    assert store.state is not None and json.loads(store.state)["version"] >= 1
    second = KeyRotator({"openai": {"credentials": ["sk-a", "sk-b"]}}, persistence=store, clock=clock)
    assert second.load() is True
    assert key(second) == "sk-b"
    store.state = "not json"
    with pytest.raises(StateError, match="corrupt"):
        second.load()
    assert KeyRotator({"openai": {"credentials": ["sk-a"]}}).load() is False


def test_asave_and_aload(clock: FakeClock) -> None:
    store = Memory()
    r = KeyRotator({"openai": {"credentials": ["sk-a", "sk-b"]}}, persistence=store, clock=clock)
    r.mark_exhausted("openai", "sk-a")

    async def main() -> bool:
        await r.asave()
        other = KeyRotator({"openai": {"credentials": ["sk-a", "sk-b"]}}, persistence=store, clock=clock)
        loaded = await other.aload()
        assert key(other) == "sk-b"
        async with other:
            pass
        return loaded

    assert asyncio.run(main()) is True


def test_export_and_import_state(clock: FakeClock) -> None:
    r = two_keys(clock)
    r.mark_exhausted("openai", "sk-a")
    other = two_keys(clock)
    other.import_state(r.export_state())
    assert key(other) == "sk-b"
    with pytest.raises(StateError):
        other.import_state('{"version": 999}')


def test_lease_context_managers(clock: FakeClock) -> None:
    r = two_keys(clock)
    with r.acquire("openai") as lease:
        assert lease.key == "sk-a" and lease.provider == "openai" and lease.active
        assert lease.credential.label == "a"
    assert not lease.active

    async def main() -> None:
        async with r.acquire("openai") as lease:
            verdict = lease.report_response(429, {"retry-after": "30"}, b"")
            assert verdict["kind"] == "rate-limited" and verdict["blames_key"]
            assert not lease.active

    asyncio.run(main())
    assert key(r) == "sk-b"  # sk-a cools for the provider's 30 s
    assert r.get_status("openai")["credentials"][0]["until"] == int((clock.now() + 30) * 1000)
    clock.advance(30)
    assert r.get_status("openai")["credentials"][0]["state"] == "available"
    with r.acquire("openai") as lease:
        lease.success(tokens_used=12)
        with pytest.raises(Exception, match="already ended"):
            lease.success()
    with pytest.raises(UnknownProvider):
        r.acquire("nope")


def test_acquire_raises_no_key_with_exact_retry_after(clock: FakeClock) -> None:
    r = two_keys(clock)
    r.mark_exhausted("openai", "sk-a")
    clock.advance(10)
    r.mark_exhausted("openai", "sk-b")
    with pytest.raises(NoKeyAvailable) as e:
        r.acquire("openai")
    assert e.value.provider == "openai"
    assert e.value.retry_after == pytest.approx(50.0)
    assert e.value.retry_at == pytest.approx(clock.now() + 50.0)


def test_events_name_validation(clock: FakeClock) -> None:
    r = two_keys(clock)
    with pytest.raises(ConfigError, match="unknown event `exausted`"):
        r.on("exausted", print)
    with pytest.raises(ConfigError, match="not callable"):
        r.on("exhausted", 3)
    r.on("allExhausted", print)  # the original's camelCase name
    r.off("allExhausted", print)
    r.close()


def test_save_from_inside_the_transports_loop(clock: FakeClock) -> None:
    """`save` called by code the sync transport runs (an `adapt` hook) must not trip over the
    runtime the transport's loop runs in."""
    import httpx

    from ai_key_rotator.httpx import RotatingTransport

    store = Memory()
    r = KeyRotator({"openai": {"credentials": ["sk-a"]}}, persistence=store, clock=clock)

    class Answer:
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, json={})

        def close(self) -> None:
            pass

    def adapt(request: httpx.Request, provider: str) -> httpx.Request:
        r.save()
        return request

    client = httpx.Client(transport=RotatingTransport(r, "openai", transport=Answer(), adapt=adapt))
    assert client.get("http://127.0.0.1:9/v1/models").status_code == 200
    assert store.state is not None
