"""httpx2 transports that rotate keys (the same as `ai_key_rotator.httpx`, for SDKs that
want an `httpx2.Client`, such as anthropic 2.14).

>>> import httpx2, openai
>>> from ai_key_rotator.httpx2 import RotatingTransport
>>> client = openai.OpenAI(  # doctest: +SKIP
...     api_key="unused",
...     http_client=httpx2.Client(transport=RotatingTransport(rotator, "openai")),
... )

Each request is sent with a key of the provider, written the provider's way
(``Authorization: Bearer`` for OpenAI and compatibles, ``api-key`` for Azure, ``x-api-key``
for Anthropic, ``x-goog-api-key`` for Gemini; whatever key the SDK wrote is removed). The
answer is classified by the core: a key the provider blames (rate limit, quota, invalid key)
is cooled or disabled and the request is sent again with the next key, or the next provider
of ``fallback``, before anything returns to the SDK. Successful answers, streams included,
pass through unread. The retry rules are the core's (``KeyRotator.execute``), the same the
gateway follows.

When no key is left, :class:`~ai_key_rotator.NoKeyAvailable` is raised with ``retry_after``
(the SDKs wrap it in their connection error; it is the ``__cause__``). With ``wait=seconds``
the transport waits for a cooling key that comes back within that time instead.
"""

from __future__ import annotations

import httpx2

from ._transport import AsyncRotating, SyncRotating


class RotatingTransport(SyncRotating, httpx2.BaseTransport):
    __doc__ = SyncRotating.__doc__
    _http = httpx2


class AsyncRotatingTransport(AsyncRotating, httpx2.AsyncBaseTransport):
    __doc__ = AsyncRotating.__doc__
    _http = httpx2


__all__ = ["RotatingTransport", "AsyncRotatingTransport"]
