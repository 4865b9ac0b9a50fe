"""The httpx transports with the real openai, anthropic and google-genai SDKs against the
project's mock upstream: failover, disabling, exhaustion with an exact retry time, streams."""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

import pytest

from ai_key_rotator import KeyRotator, NoKeyAvailable

from sdks import EXPECTED, SDKS, acall, call
from support import Mock, drain_until

CALLS = {"sync": call, "async": acall}
KEY_HEADER = {"openai": "authorization", "anthropic": "x-api-key", "gemini": "x-goog-api-key"}


def rotator(sdk: str, *keys: str, **provider: Any) -> KeyRotator:
    config = {"credentials": list(keys), "cooldown": {"type": "fixed", "duration_ms": 600_000}}
    config.update(provider)
    return KeyRotator({sdk: config}, reset_interval_ms=0)


def cause(e: Optional[BaseException], kind: type) -> Any:
    """`e` or the exception it was raised from (the SDKs wrap transport errors)."""
    while e is not None and not isinstance(e, kind):
        e = e.__cause__ or e.__context__
    return e


@pytest.fixture(params=SDKS)
def sdk(request: Any) -> str:
    return str(request.param)


@pytest.fixture(params=["sync", "async"])
def send(request: Any) -> Callable[..., str]:
    return CALLS[request.param]  # type: ignore[return-value]


def test_answers_with_a_rotated_key_written_the_providers_way(mock: Mock, sdk: str, send: Callable[..., str]) -> None:
    k = f"{sdk}-ok-1"
    assert send(sdk, mock.base_url, rotator(sdk, k), sdk) == EXPECTED
    [req] = mock.requests()
    assert req["key"] == k
    headers = dict(req["headers"])
    assert k in headers[KEY_HEADER[sdk]]
    assert all("unused" not in v for _, v in req["headers"]), req["headers"]
    assert "unused" not in (req["query"] or "")


def test_rate_limited_key_fails_over_to_the_next(mock: Mock, sdk: str, send: Callable[..., str]) -> None:
    k1, k2 = f"{sdk}-429-1", f"{sdk}-429-2"
    mock.on_key(k1, {"rate_limited_ms": 20_000})
    r = rotator(sdk, k1, k2)
    assert send(sdk, mock.base_url, r, sdk) == EXPECTED
    assert send(sdk, mock.base_url, r, sdk) == EXPECTED
    assert (mock.count(k1), mock.count(k2)) == (1, 2)
    first = r.get_status(sdk)["credentials"][0]
    assert first["state"] == "cooling"
    # The provider's 20 s, not the 10 min policy.
    assert 15_000 <= first["until"] - first["last_exhausted_at"] <= 20_000


def test_invalid_key_is_disabled(mock: Mock, sdk: str, send: Callable[..., str]) -> None:
    k1, k2 = f"{sdk}-bad-1", f"{sdk}-bad-2"
    mock.on_key(k1, "invalid_key")
    r = rotator(sdk, k1, k2)
    assert send(sdk, mock.base_url, r, sdk) == EXPECTED
    assert r.get_status(sdk)["credentials"][0]["state"] == "disabled"
    assert send(sdk, mock.base_url, r, sdk) == EXPECTED
    assert mock.count(k1) == 1


def test_all_cooling_raises_no_key_available_with_the_exact_retry_time(
    mock: Mock, sdk: str, send: Callable[..., str]
) -> None:
    k1, k2 = f"{sdk}-dry-1", f"{sdk}-dry-2"
    mock.on_key(k1, {"rate_limited_ms": 30_000})
    mock.on_key(k2, {"rate_limited_ms": 20_000})
    r = rotator(sdk, k1, k2)
    with pytest.raises(Exception) as raised:
        send(sdk, mock.base_url, r, sdk)
    no_key = cause(raised.value, NoKeyAvailable)
    assert isinstance(no_key, NoKeyAvailable), raised.value
    back = r.get_status(sdk)["next_available_at"]
    assert no_key.retry_at is not None and round(no_key.retry_at * 1000) == back
    assert no_key.retry_after is not None and 0 < no_key.retry_after <= 20.0
    assert no_key.provider == sdk
    # The next request fails at once, without reaching the provider.
    with pytest.raises(Exception) as again:
        send(sdk, mock.base_url, r, sdk)
    assert isinstance(cause(again.value, NoKeyAvailable), NoKeyAvailable)
    assert (mock.count(k1), mock.count(k2)) == (1, 1)


def test_streams_pass_through(mock: Mock, sdk: str, send: Callable[..., str]) -> None:
    k1, k2 = f"{sdk}-stream-1", f"{sdk}-stream-2"
    mock.on_key(k1, {"rate_limited_ms": 20_000})
    assert send(sdk, mock.base_url, rotator(sdk, k1, k2), sdk, stream=True) == EXPECTED
    assert mock.count(k2) == 1


def test_fallback_provider_takes_over(mock: Mock, send: Callable[..., str]) -> None:
    mock.on_key("primary-1", {"rate_limited_ms": 20_000})
    r = KeyRotator(
        {
            "openai": {"credentials": ["primary-1"]},
            "openai-backup": {"credentials": ["backup-1"], "family": "openai"},
        },
        reset_interval_ms=0,
    )
    assert send("openai", mock.base_url, r, "openai", fallback="openai-backup") == EXPECTED
    assert (mock.count("primary-1"), mock.count("backup-1")) == (1, 1)


def test_server_errors_are_passed_on_after_the_attempts(mock: Mock, send: Callable[..., str]) -> None:
    import openai

    mock.on_key("srv-1", "server_error")
    r = rotator("openai", "srv-1", "srv-2")
    with pytest.raises(openai.InternalServerError):
        send("openai", mock.base_url, r, "openai", max_attempts=1)
    # A server error blames no key: nothing cools, and the next request uses the same key.
    assert r.get_status("openai")["available"] == 2


def test_wait_for_a_key_that_comes_back_within_the_limit(mock: Mock, send: Callable[..., str]) -> None:
    mock.cmd(op="once", key="wait-1", behavior={"rate_limited_ms": 300})
    r = rotator("openai", "wait-1")
    # The only key cools for 0.3 s; with `wait` the transport sleeps (in the core's loop)
    # rather than failing, then the key answers.
    assert send("openai", mock.base_url, r, "openai", wait=30.0) == EXPECTED
    assert mock.count("wait-1") == 2


def test_adapt_rewrites_the_request_for_a_fallback(mock: Mock, send: Callable[..., str]) -> None:
    mock.on_key("a-primary", "invalid_key")
    seen = []

    def adapt(request: Any, provider: str) -> Any:
        seen.append(provider)
        request.headers["x-provider"] = provider
        return request

    r = KeyRotator(
        {"openai": {"credentials": ["a-primary"]}, "backup": {"credentials": ["a-backup"], "family": "openai"}},
        reset_interval_ms=0,
    )
    assert send("openai", mock.base_url, r, "openai", fallback=["backup"], adapt=adapt) == EXPECTED
    assert seen == ["openai", "backup"]
    assert [dict(q["headers"]).get("x-provider") for q in mock.requests()] == ["openai", "backup"]


def test_canary_key_stays_out_of_errors_and_status(mock: Mock, send: Callable[..., str]) -> None:
    from support import CANARY

    mock.on_key(CANARY, {"rate_limited_ms": 20_000})
    r = rotator("openai", CANARY)
    with pytest.raises(Exception) as raised:
        send("openai", mock.base_url, r, "openai")
    texts = [str(raised.value), repr(raised.value), str(r.get_status())]
    e: Optional[BaseException] = raised.value
    while e is not None:
        texts += [str(e), repr(e)]
        e = e.__cause__ or e.__context__
    for text in texts:
        assert CANARY not in text and CANARY[3:-4] not in text, text


def test_a_cancelled_async_request_releases_its_key(mock: Mock) -> None:
    import asyncio

    import httpx

    from ai_key_rotator.httpx import AsyncRotatingTransport

    mock.on_key("slow-1", {"delay_ms": 60_000})
    r = KeyRotator({"openai": {"credentials": ["slow-1"], "budget": {"max_in_flight": 1}}}, reset_interval_ms=0)

    async def main() -> None:
        async with httpx.AsyncClient(transport=AsyncRotatingTransport(r, "openai")) as client:
            request = client.post(f"{mock.base_url}/v1/chat/completions", json={"model": "m", "messages": []})
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(request, 0.5)

    asyncio.run(main())

    # The one in-flight slot is free again: the lease of the cancelled attempt was released
    # (by the core's loop ending on the runtime's thread, hence the bounded wait).
    def acquired() -> bool:
        try:
            with r.acquire("openai"):
                return True
        except NoKeyAvailable:
            return False

    drain_until([], acquired, threading.Event())


class Failing:
    """An inner transport that raises `error` on every request, counting them."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.calls = 0

    def handle_request(self, request: Any) -> Any:
        self.calls += 1
        raise self.error

    def close(self) -> None:
        pass


def test_transport_errors_are_retried_then_raised() -> None:
    import httpx

    from ai_key_rotator.httpx import RotatingTransport

    inner = Failing(httpx.ConnectError("refused"))
    r = rotator("openai", "t-1", "t-2")
    client = httpx.Client(transport=RotatingTransport(r, "openai", transport=inner, max_attempts=2))
    with pytest.raises(httpx.ConnectError):
        client.get("http://127.0.0.1:9/v1/models")
    assert inner.calls == 2
    assert r.get_status("openai")["available"] == 2  # a connection failure blames no key


def test_keyboard_interrupt_ends_the_loop_at_once() -> None:
    import httpx

    from ai_key_rotator.httpx import RotatingTransport

    inner = Failing(KeyboardInterrupt())
    r = rotator("openai", "t-1", "t-2")
    client = httpx.Client(transport=RotatingTransport(r, "openai", transport=inner, max_attempts=4))
    with pytest.raises(KeyboardInterrupt):
        client.get("http://127.0.0.1:9/v1/models")
    assert inner.calls == 1


def test_an_error_event_inside_a_successful_stream_reaches_the_key(mock: Mock, send: Callable[..., str]) -> None:
    import asyncio

    import httpx

    from ai_key_rotator.httpx import AsyncRotatingTransport, RotatingTransport

    stream = (
        'event: message_start\ndata: {"type":"message_start","message":{"id":"m"}}\n\n'
        'event: error\ndata: {"type":"error","error":{"type":"rate_limit_error",'
        '"message":"Number of request tokens has exceeded your per-minute rate limit"}}\n\n'
    )
    raw = {"raw": {"status": 200, "headers": [["content-type", "text/event-stream"]], "body": stream}}
    mock.on_key("sse-1", raw)
    r = KeyRotator({"anthropic": {"credentials": ["sse-1", "sse-2"]}}, reset_interval_ms=0)
    url = f"{mock.base_url}/v1/messages"
    headers = {"anthropic-version": "2023-06-01"}
    if send is CALLS["sync"]:
        with httpx.Client(transport=RotatingTransport(r, "anthropic")) as client:
            with client.stream("POST", url, headers=headers, json={}) as response:
                body = b"".join(response.iter_raw())
    else:

        async def main() -> bytes:
            async with httpx.AsyncClient(transport=AsyncRotatingTransport(r, "anthropic")) as client:
                async with client.stream("POST", url, headers=headers, json={}) as response:
                    return b"".join([c async for c in response.aiter_raw()])

        body = asyncio.run(main())
    assert body == stream.encode()  # passed through unchanged
    first = r.get_status("anthropic")["credentials"][0]
    assert first["state"] == "cooling"
    assert r.get_key("anthropic").key == "sse-2"  # type: ignore[union-attr]
