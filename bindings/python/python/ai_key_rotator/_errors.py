"""The package's exceptions. Messages name providers and credentials by label or
fingerprint, never by key."""

from __future__ import annotations

from typing import Any, Optional


class RotatorError(Exception):
    """Base class of every exception the package raises."""


class ConfigError(RotatorError, ValueError):
    """A configuration that cannot be used; the message names the provider, the credential
    (by label or fingerprint) and the field."""


class UnknownProvider(ConfigError, KeyError):
    """An operation on a provider that is not configured."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class StateError(RotatorError):
    """Saved state that could not be loaded (corrupt, foreign or newer); nothing changed."""


class StoreError(RotatorError):
    """A store that could not be opened."""


class NoKeyAvailable(RotatorError):
    """No key of the provider is available.

    ``retry_after`` is the wait in seconds until the earliest key is back and ``retry_at``
    that time in Unix seconds; both are ``None`` when no key will come back by itself (every
    key disabled). From the httpx transports, ``last_response`` is the provider's last
    answer (already closed), if there was one.
    """

    def __init__(
        self,
        message: str,
        provider: Optional[str] = None,
        retry_at: Optional[float] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.retry_at = retry_at
        self.retry_after = retry_after
        self.last_response: Any = None


__all__ = [
    "RotatorError",
    "ConfigError",
    "UnknownProvider",
    "StateError",
    "StoreError",
    "NoKeyAvailable",
]
