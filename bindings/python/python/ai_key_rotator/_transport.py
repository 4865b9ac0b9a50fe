"""The rotating transports, independent of the HTTP library: `httpx.py` and `httpx2.py`
bind them to httpx and httpx2 (the SDKs of late 2026 take either)."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from ._errors import NoKeyAvailable
from ._native import Credential, KeyRotator, StreamWatch

# Every header an SDK may have written its own (placeholder) key into.
_KEY_HEADERS = frozenset({b"authorization", b"api-key", b"x-api-key", b"x-goog-api-key"})

Adapt = Callable[[Any, str], Any]


def _key_header(family: str, key: str) -> Tuple[bytes, bytes]:
    if family == "anthropic":
        return (b"x-api-key", key.encode())
    if family == "gemini":
        return (b"x-goog-api-key", key.encode())
    if family == "azure-openai":
        return (b"api-key", key.encode())
    return (b"authorization", b"Bearer " + key.encode())


def _with_key(request: Any, family: str, key: str) -> Any:
    """A copy of ``request`` carrying ``key`` and no other credential."""
    headers = [(n, v) for n, v in request.headers.raw if n.lower() not in _KEY_HEADERS]
    headers.append(_key_header(family, key))
    url = request.url
    if family == "gemini" and "key" in url.params:
        url = url.copy_remove_param("key")
    return type(request)(
        request.method,
        url,
        headers=headers,
        content=request.content,
        extensions=request.extensions,
    )


def _providers(provider: str, fallback: Union[str, Iterable[str]]) -> List[str]:
    if isinstance(fallback, str):
        return [provider, fallback]
    return [provider, *fallback]


def _is_event_stream(response: Any) -> bool:
    return str(response.headers.get("content-type", "")).startswith("text/event-stream")


# Stream wrappers per HTTP library: httpx checks that a response's stream is one of its own.
_WATCHED: Dict[Any, Tuple[type, type]] = {}


def _watched(http: Any, stream: Any, watch: StreamWatch, is_async: bool) -> Any:
    """`stream`, passing every chunk on unchanged after showing it to `watch` (src/stream.rs),
    which reports an error event inside a successful stream against the key."""
    if http not in _WATCHED:

        class Sync(http.SyncByteStream):  # type: ignore[misc]
            def __init__(self, inner: Any, w: StreamWatch) -> None:
                self._inner, self._watch = inner, w

            def __iter__(self) -> Iterator[bytes]:
                for chunk in self._inner:
                    self._watch.feed(chunk)
                    yield chunk
                self._watch.finish()

            def close(self) -> None:
                self._inner.close()

        class Async(http.AsyncByteStream):  # type: ignore[misc]
            def __init__(self, inner: Any, w: StreamWatch) -> None:
                self._inner, self._watch = inner, w

            async def __aiter__(self) -> AsyncIterator[bytes]:
                async for chunk in self._inner:
                    self._watch.feed(chunk)
                    yield chunk
                self._watch.finish()

            async def aclose(self) -> None:
                await self._inner.aclose()

        _WATCHED[http] = (Sync, Async)
    return _WATCHED[http][1 if is_async else 0](stream, watch)


# What `Execution.poll` answers (src/aio.rs).
_DONE, _SEND, _AGAIN, _WAIT = 0, 1, 2, 3


class _Base:
    #: The HTTP library (httpx or httpx2) whose transport sends by default.
    _http: Any = None

    def __init__(
        self,
        rotator: KeyRotator,
        provider: str,
        *,
        fallback: Union[str, Iterable[str]] = (),
        transport: Any = None,
        max_attempts: int = 4,
        wait: Optional[float] = None,
        session: Optional[str] = None,
        adapt: Optional[Adapt] = None,
    ) -> None:
        self._rotator = rotator
        self._providers = _providers(provider, fallback)
        # Resolving families now makes an unknown provider fail at construction.
        self._families = {p: rotator.family(p) for p in self._providers}
        self._inner = transport
        self._max_attempts = max_attempts
        self._wait = wait
        self._session = session
        self._adapt = adapt

    def _prepare(self, request: Any, key: str, provider: str) -> Any:
        prepared = _with_key(request, self._families[provider], key)
        if self._adapt is not None:
            prepared = self._adapt(prepared, provider)
        return prepared


class SyncRotating(_Base):
    """A synchronous httpx transport that rotates keys of ``provider`` (then of each
    provider of ``fallback``); see the module's documentation.

    ``transport`` is the transport that really sends (``httpx.HTTPTransport()`` by default);
    ``max_attempts`` bounds the attempts of one request; ``wait`` lets a request wait up to
    that many seconds for a cooling key; ``adapt(request, provider)`` may rewrite the request
    for a fallback provider (its URL, its body).
    """

    def handle_request(self, request: Any) -> Any:
        request.read()
        inner = self._inner
        if inner is None:
            inner = self._inner = self._http.HTTPTransport()

        def send(credential: Credential, provider: str, attempt: int) -> Tuple[int, Any, Optional[bytes], Any]:
            response = inner.handle_request(self._prepare(request, credential.key, provider))
            if response.status_code < 300:
                if _is_event_stream(response):
                    watch = self._rotator._watch_stream(credential)
                    response.stream = _watched(self._http, response.stream, watch, False)
                return (response.status_code, response.headers.raw, None, response)
            # Error bodies are small and the classifier needs them; reading also returns
            # the connection to the pool if the answer is dropped for a retry.
            response.read()
            return (response.status_code, response.headers.raw, response.content, response)

        try:
            return self._rotator._execute(
                self._providers,
                send,
                max_attempts=self._max_attempts,
                deadline=self._wait,
                session=self._session,
            )
        except NoKeyAvailable as e:
            if e.last_response is not None:
                e.last_response.close()
            raise

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()


class AsyncRotating(_Base):
    """The asyncio form of :class:`RotatingTransport` (``httpx.AsyncClient``). The retry loop
    runs in the core, off the event loop; each attempt is sent on the caller's loop."""

    async def handle_async_request(self, request: Any) -> Any:
        await request.aread()
        inner = self._inner
        if inner is None:
            inner = self._inner = self._http.AsyncHTTPTransport()

        async def send(credential: Credential, provider: str, attempt: int) -> Tuple[int, Any, Optional[bytes], Any]:
            response = await inner.handle_async_request(self._prepare(request, credential.key, provider))
            if response.status_code < 300:
                if _is_event_stream(response):
                    watch = self._rotator._watch_stream(credential)
                    response.stream = _watched(self._http, response.stream, watch, True)
                return (response.status_code, response.headers.raw, None, response)
            await response.aread()
            return (response.status_code, response.headers.raw, response.content, response)

        execution = self._rotator._execute_async(
            self._providers,
            asyncio.get_running_loop(),
            max_attempts=self._max_attempts,
            deadline=self._wait,
            session=self._session,
        )
        # The core's loop decides; this coroutine only sends what it asks for, inline, and
        # awaits its waits (see src/aio.rs).
        try:
            while True:
                kind, value = execution.poll()
                if kind == _DONE:
                    return value
                if kind == _SEND:
                    credential, provider, attempt = value
                    try:
                        answer = await send(credential, provider, attempt)
                    except Exception as e:  # a transport error: the core decides on a retry
                        execution.fail(e)
                    else:
                        execution.give(answer)
                elif kind == _WAIT:
                    await value
                else:  # _AGAIN: woken while polling; let the loop run once, then poll
                    await asyncio.sleep(0)
        except NoKeyAvailable as e:
            if e.last_response is not None:
                await e.last_response.aclose()
            raise
        finally:
            # Cancelled (or failed) mid-way: release the attempt's lease; no-op when done.
            execution.cancel()

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()


