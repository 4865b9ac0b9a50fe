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

from ai_key_rotator import ConfigError, FileStore, KeyRotator, RedisStore, SqliteStore, StoreError

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


def _make_test_ca(directory: pathlib.Path) -> bool:
    """A test CA and a certificate for 127.0.0.1 signed by it, made with the `openssl` command
    (as the core's `rediss://` tests make theirs); whether that worked."""

    def run(*args: str) -> bool:
        done = subprocess.run(["openssl", *args], cwd=directory, capture_output=True)
        return done.returncode == 0

    (directory / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    return (
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "2", "-subj", "/CN=akr python test ca")
        and run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
                "-subj", "/CN=localhost")
        and run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")
    )


@pytest.fixture
def redis_tls(tmp_path: pathlib.Path) -> Iterator[tuple[int, pathlib.Path]]:
    """A redis-server that listens with TLS only (its plain port is off), with a password;
    yields its TLS port and the test CA's file."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    if shutil.which("openssl") is None or not _make_test_ca(tmp_path):
        pytest.skip("the openssl command could not make a test CA (.ci/run installs openssl)")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(tmp_path / "server.crt"), "--tls-key-file", str(tmp_path / "server.key"),
         "--tls-ca-cert-file", str(tmp_path / "ca.crt"), "--tls-auth-clients", "no",
         "--requirepass", CANARY, "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _accepts(port), "redis-server listening with TLS")
        yield port, tmp_path / "ca.crt"
    finally:
        proc.terminate()
        proc.wait(10)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_redis_store_over_tls_with_a_ca_file(redis_tls: tuple[int, pathlib.Path]) -> None:
    port, ca = redis_tls
    # The password is the canary: it must show in no output.
    url = f"rediss://:{CANARY}@127.0.0.1:{port}"
    store_a = RedisStore(url, prefix="py-tls", ca_file=ca)
    a = KeyRotator(provider(), store=store_a, reset_interval_ms=0)
    b = KeyRotator(provider(), store=RedisStore(url, prefix="py-tls", ca_file=str(ca)), reset_interval_ms=0)
    assert a.store_error() is None and b.store_error() is None, (a.store_error(), b.store_error())
    a.mark_exhausted("openai", CANARY)
    a.flush()
    wait_until(lambda: current(b) == "sk-b", "the mark reaching the other rotator over TLS")
    shown = repr(store_a)
    assert "rediss://" in shown and "ca.crt" in shown and CANARY not in shown, shown
    a.close()
    b.close()
    # Without the test CA the system's roots do not trust the server: the rotator starts
    # fresh and says why, without the password.
    with KeyRotator(provider(), store=RedisStore(url, prefix="py-tls"), reset_interval_ms=0) as c:
        error = c.store_error()
        assert error is not None and "certificate" in error.lower() and CANARY not in error, error


def test_redis_store_with_a_missing_ca_file_names_it(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    with pytest.raises(ConfigError, match="no-such-ca.pem"):
        RedisStore("rediss://127.0.0.1:1", ca_file=missing)
