"""Small helpers the native module calls back into."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar, Union

T = TypeVar("T")


async def ready(value: T) -> T:
    """An awaitable that returns ``value`` at once (for ``async with``)."""
    return value


async def in_executor(fn: Callable[[], T]) -> T:
    """Runs ``fn`` (which releases the GIL while it waits) in the loop's default executor."""
    return await asyncio.get_running_loop().run_in_executor(None, fn)


def load_toml(path: "Union[str, os.PathLike[str]]") -> "Tuple[Dict[str, Any], Optional[int]]":
    """The providers and reset interval of a TOML configuration file."""
    from ._errors import ConfigError

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - the package depends on tomli before 3.11
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{os.fspath(path)} is not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"cannot read {os.fspath(path)}: {e.strerror}") from None
    providers = data.pop("providers", {})
    interval = data.pop("reset_interval_ms", data.pop("resetIntervalMs", None))
    if data:
        raise ConfigError(f"{os.fspath(path)}: unknown top-level keys {sorted(data)}")
    return providers, interval


def wake(future: "asyncio.Future[Any]") -> None:
    """Ends a wait of a request's retry loop (called on the loop by the timer's waker)."""
    if not future.done():
        future.set_result(None)
