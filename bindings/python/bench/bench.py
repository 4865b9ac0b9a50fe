"""Benchmarks of the Python package, each side by side with its baseline in the same run.

    python bench/bench.py            # from bindings/python, with the package installed

1. `get_key` against a plain-Python port of the original library's fill-first `getKey`
   (below): the same provider lookup, sticky index, skip of exhausted keys and use count.
2. A chat completion request through `httpx.Client(transport=RotatingTransport(...))`
   against the same request with plain `httpx.Client`, both to the project's mock upstream
   (bindings/python/mock-driver) on loopback, alternating request by request; the same for
   `httpx.AsyncClient` and `AsyncRotatingTransport`.

Figures are the best of several repeats (get_key) or medians (requests); see BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
import timeit
from typing import Any, Dict, List, Optional

import httpx

from ai_key_rotator import KeyRotator
from ai_key_rotator.httpx import AsyncRotatingTransport, RotatingTransport

ROOT = pathlib.Path(__file__).resolve().parents[3]


class BaselineCredential:
    __slots__ = ("key", "label", "meta", "exhausted", "usage_count")

    def __init__(self, key: str, label: Optional[str] = None, meta: Optional[dict] = None) -> None:
        self.key, self.label, self.meta = key, label, meta
        self.exhausted = False
        self.usage_count = 0


class BaselineRotator:
    """The original's algorithm in plain Python: per provider an ordered list and a current
    index; `get_key` returns the first non-exhausted credential from the current index on
    and counts its use. (Exhausted keys come back in the original's background check, so
    `get_key` reads no clock.)"""

    def __init__(self, providers: Dict[str, Any]) -> None:
        self.providers: Dict[str, Dict[str, Any]] = {
            name: {
                "credentials": [BaselineCredential(c["key"], c.get("label"), c.get("meta")) for c in p["credentials"]],
                "current": 0,
            }
            for name, p in providers.items()
        }

    def get_key(self, provider: str) -> Optional[BaselineCredential]:
        state = self.providers.get(provider)
        if state is None:
            return None
        creds = state["credentials"]
        n = len(creds)
        start = state["current"]
        for i in range(n):
            idx = (start + i) % n
            cred = creds[idx]
            if not cred.exhausted:
                state["current"] = idx
                cred.usage_count += 1
                return cred
        return None


def per_call_ns(stmt: str, env: Dict[str, Any], number: int = 1_000_000, repeat: int = 7) -> float:
    return min(timeit.repeat(stmt, globals=env, number=number, repeat=repeat)) / number * 1e9


def bench_get_key() -> Dict[str, float]:
    config = {
        "openai": {"credentials": [{"key": f"sk-{i}", "label": f"k{i}"} for i in range(4)]},
        "google": {"credentials": [{"key": "AIza-1"}, {"key": "AIza-2"}]},
    }
    rotator = KeyRotator(config, reset_interval_ms=0)
    baseline = BaselineRotator(config)
    env = {"ours": rotator.get_key, "base": baseline.get_key, "p": "openai"}
    results = {}
    # Alternate so that both see the same machine load.
    ours, base = [], []
    for _ in range(3):
        ours.append(per_call_ns("ours(p)", env))
        base.append(per_call_ns("base(p)", env))
    results["get_key_ns"] = min(ours)
    results["baseline_ns"] = min(base)
    results["ratio"] = results["get_key_ns"] / results["baseline_ns"]
    rotator.close()
    return results


class Mock:
    def __init__(self) -> None:
        path = os.environ.get("AKR_MOCK_DRIVER") or str(ROOT / "target/debug/akr-mock-driver")
        self.proc = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.base_url = json.loads(self.proc.stdout.readline())["base_url"]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


def bench_transport(rounds: int = 20, per_round: int = 100) -> Dict[str, float]:
    mock = Mock()
    rotator = KeyRotator({"openai": {"credentials": ["sk-bench-1", "sk-bench-2"]}}, reset_interval_ms=0)
    url = f"{mock.base_url}/v1/chat/completions"
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    plain = httpx.Client(headers={"authorization": "Bearer sk-bench-1"})
    rotating = httpx.Client(transport=RotatingTransport(rotator, "openai"))

    def one(client: httpx.Client) -> float:
        t = time.perf_counter()
        r = client.post(url, json=body)
        r.read()
        elapsed = time.perf_counter() - t
        assert r.status_code == 200, r.status_code
        return elapsed

    for _ in range(per_round):  # warm-up: connections, code paths
        one(plain), one(rotating)
    a: List[float] = []
    b: List[float] = []
    # Alternate request by request, so that both see the same load on a shared machine.
    for _ in range(rounds * per_round):
        a.append(one(plain))
        b.append(one(rotating))
    plain.close()
    rotating.close()
    rotator.close()
    mock.close()
    return summary(a, b)


def summary(a: List[float], b: List[float]) -> Dict[str, float]:
    """Medians, and the overhead as the median of the differences of neighbouring requests
    (robust to the load drifting during the run)."""
    pa, pb = statistics.median(a) * 1e6, statistics.median(b) * 1e6
    paired = statistics.median(y - x for x, y in zip(a, b)) * 1e6
    return {"plain_us": pa, "rotating_us": pb, "overhead_us": paired, "requests": float(len(a))}


def bench_async_transport(rounds: int = 20, per_round: int = 100) -> Dict[str, float]:
    """The same comparison with `httpx.AsyncClient` and `AsyncRotatingTransport`."""
    import asyncio

    mock = Mock()
    rotator = KeyRotator({"openai": {"credentials": ["sk-bench-1", "sk-bench-2"]}}, reset_interval_ms=0)
    url = f"{mock.base_url}/v1/chat/completions"
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}

    async def run() -> Dict[str, float]:
        plain = httpx.AsyncClient(headers={"authorization": "Bearer sk-bench-1"})
        rotating = httpx.AsyncClient(transport=AsyncRotatingTransport(rotator, "openai"))

        async def one(client: httpx.AsyncClient) -> float:
            t = time.perf_counter()
            r = await client.post(url, json=body)
            await r.aread()
            elapsed = time.perf_counter() - t
            assert r.status_code == 200, r.status_code
            return elapsed

        for _ in range(per_round):
            await one(plain)
            await one(rotating)
        a: List[float] = []
        b: List[float] = []
        for _ in range(rounds * per_round):
            a.append(await one(plain))
            b.append(await one(rotating))
        await plain.aclose()
        await rotating.aclose()
        return summary(a, b)

    try:
        return asyncio.run(run())
    finally:
        rotator.close()
        mock.close()


def main() -> None:
    g = bench_get_key()
    print(f"get_key          {g['get_key_ns']:7.1f} ns/call")
    print(f"baseline (Python){g['baseline_ns']:7.1f} ns/call   ratio {g['ratio']:.2f}x")
    t = bench_transport()
    print(f"plain httpx      {t['plain_us']:7.1f} us/request (median of {int(t['requests'])})")
    print(f"RotatingTransport{t['rotating_us']:7.1f} us/request   overhead {t['overhead_us']:+.1f} us (median of pairs)")
    t = bench_async_transport()
    print(f"plain AsyncClient{t['plain_us']:7.1f} us/request (median of {int(t['requests'])})")
    print(f"AsyncRotating    {t['rotating_us']:7.1f} us/request   overhead {t['overhead_us']:+.1f} us (median of pairs)")
    print(f"python {sys.version.split()[0]}, httpx {httpx.__version__}")


if __name__ == "__main__":
    main()
