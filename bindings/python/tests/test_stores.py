"""Stores: state that outlives the process and is shared between processes."""

from __future__ import annotations

import pathlib
import shutil
import socket
import subprocess
import threading
import time
from typing import Iterator

import pytest

from ai_key_rotator import FileStore, KeyRotator, RedisStore, SqliteStore, StoreError

from support import CANARY


def provider() -> dict:
    return {"openai": {"credentials": [{"key": CANARY, "label": "canary"}, "sk-b"], "cooldown": {"type": "fixed", "duration_ms": 600_000}}}


def current(r: KeyRotator) -> str:
    c = r.get_key("openai")
    assert c is not None
    return c.key


def wait_until(condition, what: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    """Polls a property that another process's store makes true, with a generous bound."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"{what} did not happen within {timeout} s"
        time.sleep(0.01)


def test_file_store_keeps_state_across_restarts(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    with KeyRotator(provider(), store=FileStore(path), reset_interval_ms=0) as first:
        first.mark_exhausted("openai", CANARY)
        first.flush()
    assert CANARY not in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with KeyRotator(provider(), store=FileStore(path), reset_interval_ms=0) as second:
        assert second.store_error() is None
        assert current(second) == "sk-b"


def test_file_store_corrupt_file_starts_fresh(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{ not json")
    with KeyRotator(provider(), store=FileStore(path), reset_interval_ms=0) as r:
        assert r.store_error() is not None
        assert current(r) == CANARY


def test_sqlite_store_is_shared_between_rotators(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "state.db"
    a = KeyRotator(provider(), store=SqliteStore(db, poll_interval_ms=10), reset_interval_ms=0)
    b = KeyRotator(provider(), store=SqliteStore(db, poll_interval_ms=10), reset_interval_ms=0)
    a.mark_exhausted("openai", CANARY)
    a.flush()
    wait_until(lambda: current(b) == "sk-b", "the mark reaching the other rotator")
    a.close()
    b.close()
    for f in tmp_path.iterdir():
        assert CANARY.encode() not in f.read_bytes(), f


def test_sqlite_store_that_cannot_open_is_a_store_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(StoreError):
        KeyRotator(provider(), store=SqliteStore(tmp_path / "missing-dir" / "x" / "state.db"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_url(tmp_path: pathlib.Path) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path), "--rdbcompression", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _ping(port), "redis-server answering")
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def test_redis_store_pushes_changes_between_rotators(redis_url: str, tmp_path: pathlib.Path) -> None:
    a = KeyRotator(provider(), store=RedisStore(redis_url, prefix="py-test"), reset_interval_ms=0)
    b = KeyRotator(provider(), store=RedisStore(redis_url, prefix="py-test"), reset_interval_ms=0)
    seen = threading.Event()
    b.on("remote", lambda e: seen.set())
    a.mark_exhausted("openai", CANARY)
    a.flush()
    wait_until(lambda: current(b) == "sk-b", "the mark reaching the other rotator")
    assert seen.wait(20)
    # Nothing Redis holds names the key.
    port = int(redis_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"SAVE\r\n")
        assert s.recv(16).startswith(b"+OK")
    dump = (tmp_path / "dump.rdb").read_bytes()
    assert b"py-test" in dump and CANARY.encode() not in dump
    a.close()
    b.close()
