"""Test helpers: rotators on a fake clock, and the project's mock upstream as a process.

The mock is `akr-mock-driver` (bindings/python/mock-driver): the `mock-upstream` crate on
127.0.0.1:0, scripted per key over stdin. Its path comes from `AKR_MOCK_DRIVER`, else the
debug build in the workspace's target directory (`cargo build -p akr-mock-driver`).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

from ai_key_rotator import FakeClock, KeyRotator

ROOT = pathlib.Path(__file__).resolve().parents[3]

#: A key that must never appear in any output: repr, status, events, errors, saved state.
CANARY = "sk-canary-5f1d2e9a7c3b4e60a1b2c3d4e5f60718"


def drain_until(
    got: List[Any], condition: Callable[[], bool], signal: threading.Event, timeout: float = 10.0
) -> None:
    """Waits (for at most `timeout`, generous on a loaded machine) until `condition()` holds;
    callbacks set `signal` whenever they append to `got`. Fails the test otherwise."""
    import time

    end = time.monotonic() + timeout
    while not condition():
        left = end - time.monotonic()
        assert left > 0, f"condition not met; got {got!r}"
        signal.wait(min(left, 0.5))
        signal.clear()


class Mock:
    """The mock upstream process; `cmd` sends one command and returns its JSON answer."""

    def __init__(self) -> None:
        path = os.environ.get("AKR_MOCK_DRIVER") or str(ROOT / "target/debug/akr-mock-driver")
        if not os.path.exists(path):
            pytest.fail(f"{path} is missing: run `cargo build -p akr-mock-driver`")
        self.proc = subprocess.Popen(
            [path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        assert self.proc.stdout is not None
        self.base_url: str = json.loads(self.proc.stdout.readline())["base_url"]
        self._lock = threading.Lock()

    def cmd(self, **command: Any) -> Dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
            answer: Dict[str, Any] = json.loads(self.proc.stdout.readline())
        assert "error" not in answer, answer
        return answer

    def on_key(self, key: str, behavior: Any) -> None:
        self.cmd(op="on_key", key=key, behavior=behavior)

    def count(self, key: str) -> int:
        return int(self.cmd(op="count", key=key)["count"])

    def requests(self) -> List[Dict[str, Any]]:
        return list(self.cmd(op="requests")["requests"])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def two_keys(clock: Optional[FakeClock] = None, **provider: Any) -> KeyRotator:
    """A rotator with provider `openai`: keys `sk-a` (label a) and `sk-b` (label b)."""
    config: Dict[str, Any] = {
        "credentials": [{"key": "sk-a", "label": "a"}, {"key": "sk-b", "label": "b"}],
        "cooldown": {"type": "fixed", "duration_ms": 60_000},
    }
    config.update(provider)
    return KeyRotator({"openai": config}, reset_interval_ms=0, clock=clock)
