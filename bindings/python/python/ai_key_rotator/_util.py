"""Small helpers the native module calls back into."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, TypeVar

T = TypeVar("T")


async def ready(value: T) -> T:
    """An awaitable that returns ``value`` at once (for ``async with``)."""
    return value


async def in_executor(fn: Callable[[], T]) -> T:
    """Runs ``fn`` (which releases the GIL while it waits) in the loop's default executor."""
    return await asyncio.get_running_loop().run_in_executor(None, fn)


def wake(future: "asyncio.Future[Any]") -> None:
    """Ends a wait of a request's retry loop (called on the loop by the timer's waker)."""
    if not future.done():
        future.set_result(None)
