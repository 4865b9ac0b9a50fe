"""Rotate API keys across AI providers: the Rust core of ai-key-rotator, in-process.

>>> from ai_key_rotator import KeyRotator
>>> rotator = KeyRotator(providers={
...     "openai": {
...         "credentials": [{"key": "sk-key1", "label": "personal"},
...                         {"key": "sk-key2", "label": "work"}],
...         "cooldown": {"type": "fixed", "durationMs": 60_000},
...     },
... })
>>> rotator.get_key("openai").key
'sk-key1'
>>> rotator.mark_exhausted("openai", "sk-key1")
True
>>> rotator.get_key("openai").label
'work'
"""

from __future__ import annotations

from . import _native
from ._errors import (
    ConfigError,
    NoKeyAvailable,
    RotatorError,
    StateError,
    StoreError,
    UnknownProvider,
)
from ._native import Credential, KeyRotator as _KeyRotator, FakeClock, FileStore, Lease, RedisStore, SqliteStore, fingerprint

#: The rotator (the original's ``AIKeyRotator``); see its docstrings.
KeyRotator = _KeyRotator

try:
    from importlib.metadata import version as _version

    __version__ = _version("ai-key-rotator")
except Exception:  # pragma: no cover - not installed as a distribution
    __version__ = "0.0.0"

__all__ = [
    "KeyRotator",
    "Credential",
    "Lease",
    "FileStore",
    "SqliteStore",
    "RedisStore",
    "FakeClock",
    "fingerprint",
    "RotatorError",
    "ConfigError",
    "UnknownProvider",
    "StateError",
    "StoreError",
    "NoKeyAvailable",
]
