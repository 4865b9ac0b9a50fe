"""httpx transports that rotate keys: plug the rotator into the official SDKs.

>>> import httpx, openai
>>> from ai_key_rotator.httpx import RotatingTransport
>>> client = openai.OpenAI(  # doctest: +SKIP
...     api_key="unused",
...     http_client=httpx.Client(transport=RotatingTransport(rotator, "openai")),
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

import httpx

from ._transport import AsyncRotating, SyncRotating


class RotatingTransport(SyncRotating, httpx.BaseTransport):
    __doc__ = SyncRotating.__doc__
    _http = httpx


class AsyncRotatingTransport(AsyncRotating, httpx.AsyncBaseTransport):
    __doc__ = AsyncRotating.__doc__
    _http = httpx


__all__ = ["RotatingTransport", "AsyncRotatingTransport"]
