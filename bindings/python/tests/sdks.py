"""The official SDKs pointed at the mock upstream through the rotating transports, with
nothing changed but the HTTP client."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import httpx2

import ai_key_rotator.httpx
import ai_key_rotator.httpx2
from ai_key_rotator import KeyRotator

EXPECTED = "Hello from the mock upstream."
PROMPT = [{"role": "user", "content": "hi"}]

# Which family each SDK's provider is classified as (the provider is named after the SDK).
SDKS = ["openai", "anthropic", "gemini"]


def library(sdk: str) -> Any:
    """The HTTP library and transport module for the SDK: anthropic 2.14 takes only httpx2
    clients; openai and google-genai take httpx (and httpx2)."""
    if sdk == "anthropic":
        return httpx2, ai_key_rotator.httpx2
    return httpx, ai_key_rotator.httpx


def call(sdk: str, base_url: str, rotator: KeyRotator, provider: str, stream: bool = False, **opts: Any) -> str:
    """One request with the SDK's sync client; returns the answer's text."""
    http, transports = library(sdk)
    client = http.Client(transport=transports.RotatingTransport(rotator, provider, **opts))
    with client:
        if sdk == "openai":
            import openai

            oai = openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", http_client=client, max_retries=0)
            if stream:
                chunks = oai.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, stream=True)  # type: ignore[arg-type]
                return "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
            r = oai.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)  # type: ignore[arg-type]
            return str(r.choices[0].message.content)
        if sdk == "anthropic":
            import anthropic

            ant = anthropic.Anthropic(base_url=base_url, api_key="unused", http_client=client, max_retries=0)
            if stream:
                with ant.messages.stream(model="claude-mock-1", max_tokens=64, messages=PROMPT) as s:  # type: ignore[arg-type]
                    return "".join(s.text_stream)
            m = ant.messages.create(model="claude-mock-1", max_tokens=64, messages=PROMPT)  # type: ignore[arg-type]
            return str(m.content[0].text)  # type: ignore[union-attr]
        from google import genai

        gem = genai.Client(api_key="unused", http_options={"base_url": base_url, "httpx_client": client})
        if stream:
            return "".join(c.text or "" for c in gem.models.generate_content_stream(model="gemini-2.0-flash", contents="hi"))
        return str(gem.models.generate_content(model="gemini-2.0-flash", contents="hi").text)


def acall(sdk: str, base_url: str, rotator: KeyRotator, provider: str, stream: bool = False, **opts: Any) -> str:
    """The same with the SDK's async client, on a fresh event loop."""

    async def main() -> str:
        http, transports = library(sdk)
        client = http.AsyncClient(transport=transports.AsyncRotatingTransport(rotator, provider, **opts))
        async with client:
            if sdk == "openai":
                import openai

                oai = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="unused", http_client=client, max_retries=0)
                if stream:
                    chunks = await oai.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, stream=True)  # type: ignore[arg-type]
                    return "".join([(c.choices[0].delta.content or "") async for c in chunks if c.choices])
                r = await oai.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)  # type: ignore[arg-type]
                return str(r.choices[0].message.content)
            if sdk == "anthropic":
                import anthropic

                ant = anthropic.AsyncAnthropic(base_url=base_url, api_key="unused", http_client=client, max_retries=0)
                if stream:
                    async with ant.messages.stream(model="claude-mock-1", max_tokens=64, messages=PROMPT) as s:  # type: ignore[arg-type]
                        return "".join([t async for t in s.text_stream])
                m = await ant.messages.create(model="claude-mock-1", max_tokens=64, messages=PROMPT)  # type: ignore[arg-type]
                return str(m.content[0].text)  # type: ignore[union-attr]
            from google import genai

            gem = genai.Client(api_key="unused", http_options={"base_url": base_url, "httpx_async_client": client})
            if stream:
                parts = await gem.aio.models.generate_content_stream(model="gemini-2.0-flash", contents="hi")
                return "".join([c.text or "" async for c in parts])
            r = await gem.aio.models.generate_content(model="gemini-2.0-flash", contents="hi")
            return str(r.text)

    return asyncio.run(main())
