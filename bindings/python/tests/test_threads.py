"""Many threads on one rotator."""

from __future__ import annotations

import threading
from typing import List

from ai_key_rotator import FakeClock, KeyRotator

THREADS = 8
CALLS = 5_000


def run_threads(target) -> None:  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(THREADS)
    errors: List[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_eight_threads_calling_get_key() -> None:
    keys = [f"sk-{i}" for i in range(4)]
    r = KeyRotator({"openai": {"credentials": keys}}, reset_interval_ms=0)
    seen: List[set] = [set() for _ in range(THREADS)]

    def work(i: int) -> None:
        for _ in range(CALLS):
            c = r.get_key("openai")
            assert c is not None
            seen[i].add(c.key)

    run_threads(work)
    # Nobody marked anything: fill-first hands every thread the first key, every time.
    assert all(s == {"sk-0"} for s in seen)
    status = r.get_status("openai")
    assert sum(c["times_used"] for c in status["credentials"]) == THREADS * CALLS


def test_eight_threads_marking_what_they_were_given(clock: FakeClock) -> None:
    keys = [f"sk-{i}" for i in range(64)]
    r = KeyRotator({"openai": {"credentials": keys, "cooldown": {"type": "fixed", "duration_ms": 60_000}}}, reset_interval_ms=0, clock=clock)
    marked: List[List[str]] = [[] for _ in range(THREADS)]

    def work(i: int) -> None:
        while True:
            c = r.get_key("openai")
            if c is None:
                return
            if r.mark_exhausted("openai", c):
                marked[i].append(c.key)

    run_threads(work)
    flat = [k for m in marked for k in m]
    # Every key was marked, none is left, and a mark of a cooling key only extends it.
    assert set(flat) == set(keys)
    assert not r.has_available("openai")
    assert r.get_status("openai")["available"] == 0
