"""A usage file for mypy (`mypy --strict tests/typing/usage.py`): the public API as an
application uses it, checked against the package's stubs. Never run, only type-checked."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import httpx
import httpx2
import openai

from ai_key_rotator import (
    ConfigError,
    Credential,
    FileStore,
    KeyRotator,
    NoKeyAvailable,
    SqliteStore,
)
from ai_key_rotator.httpx import AsyncRotatingTransport
from ai_key_rotator.httpx2 import RotatingTransport


def quick_start() -> Optional[str]:
    rotator = KeyRotator(
        providers={"openai": {"credentials": [{"key": "sk-key1", "label": "personal"}]}},
        store=FileStore("state.json"),
    )
    cred: Optional[Credential] = rotator.get_key("openai")
    marked: bool = rotator.mark_exhausted("openai", "sk-key1")
    status: Dict[str, Any] = rotator.get_status("openai")
    names: List[str] = rotator.get_providers()
    count: int = rotator.reset_all()
    rotator.on("exhausted", lambda event: print(event["provider"]))
    print(marked, status, names, count)
    return None if cred is None else cred.key


def leases(rotator: KeyRotator) -> float:
    try:
        with rotator.acquire("openai", session="s-1") as lease:
            verdict = lease.report_response(429, {"retry-after": "3"}, b"")
            return 0.0 if verdict["blames_key"] else 1.0
    except NoKeyAvailable as e:
        return e.retry_after or 0.0


async def async_use(rotator: KeyRotator) -> bool:
    await rotator.asave()
    async with rotator.acquire("openai") as lease:
        lease.success(tokens_used=10)
    return await rotator.aload()


def sdk(rotator: KeyRotator) -> openai.OpenAI:
    transport = RotatingTransport(rotator, "openai", fallback=["openai-backup"], wait=5.0)
    return openai.OpenAI(api_key="unused", http_client=httpx2.Client(transport=transport))


def async_sdk(rotator: KeyRotator) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=AsyncRotatingTransport(rotator, "openai"))


def config_errors() -> str:
    try:
        with KeyRotator.from_toml("rotator.toml", store=SqliteStore("state.db")) as r:
            return repr(r)
    except ConfigError as e:
        return str(e)
