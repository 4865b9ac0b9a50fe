#!/usr/bin/env python3
"""Propagation of a cooldown through a fleet of gateways, end to end (issue 12).

Starts a private redis-server and N `ai-key-rotator serve` processes sharing it as their store,
each in front of its own `akr-mock-driver` (the project's mock-upstream, scripted over stdin).
All gateways hold the same keys, in the same order, with the fill-first strategy, so every
gateway uses the same key until it cools. Each trial:

1. the other gateways' pollers start sending requests, one at a time each, back to back;
2. the mock behind gateway 1 is told to answer the current key's next request with a 429
   (`retry-after` of 10 minutes), and one request is sent through gateway 1 at T0: it cools the
   key and fails over to the next one;
3. each poller goes on until its gateway has skipped the key; the mock behind each gateway
   recorded which key every poll used, so the first poll that went to the next key is found
   exactly, and its propagation time is when that poll's answer came back, minus T0.

The figure is an upper bound on the propagation itself: it includes gateway 1's round trip to
its mock and back, and one whole poll (the resolution of polling with requests). Each trial cools
the next key, so no reset is needed between trials. Not run by CI.

    bash scripts/measure-propagation.sh [gateways] [trials]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TOKEN = "prop-client-token-0123456789abcdef"
BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
PATH = "/openai/v1/chat/completions"
# A poller gives up on a trial after this long (the trial then counts as a miss).
GIVE_UP_S = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.02)


class Driver:
    """One `akr-mock-driver` process: a mock upstream scripted over stdin."""

    def __init__(self, binary: str) -> None:
        self.proc = subprocess.Popen(
            [binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        assert self.proc.stdout is not None
        self.base_url = json.loads(self.proc.stdout.readline())["base_url"]

    def call(self, **cmd: object) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        if "error" in answer:
            sys.exit(f"mock driver: {answer['error']}")
        return answer

    def keys_used(self) -> list[str]:
        return [r["key"] for r in self.call(op="requests")["requests"]]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


class Client:
    """A keep-alive connection to one gateway."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def post(self) -> tuple[int, int]:
        """Sends one request; its status and the gateway's count of available keys."""
        headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
        self.conn.request("POST", PATH, body=BODY, headers=headers)
        r = self.conn.getresponse()
        r.read()
        return r.status, int(r.getheader("x-akr-pool-available-keys") or -1)


def gateway_config(port: int, upstream: str, redis_port: int, keys: list[str]) -> str:
    key_list = ", ".join(f'{{ key = "{k}", label = "k{i}" }}' for i, k in enumerate(keys))
    return f"""listen = "127.0.0.1:{port}"
client_tokens = ["{TOKEN}"]
store = {{ type = "redis", url = "redis://127.0.0.1:{redis_port}", prefix = "prop" }}
[providers.openai]
family = "openai"
upstream = "{upstream}"
keys = [{key_list}]
"""


def poll(client: Client, go: threading.Event, available: int, times: list[float]) -> None:
    """Once `go` is set, sends requests back to back, recording when each answer came back,
    until the gateway says fewer than `available` keys are available (it knows the key
    cools), then one more (which cannot use the key), or until it gives up."""
    go.wait()
    give_up = time.perf_counter() + GIVE_UP_S
    seen = False
    while time.perf_counter() < give_up:
        status, now_available = client.post()
        times.append(time.perf_counter())
        if status != 200:
            sys.exit(f"poll through gateway on port {client.port} answered {status}")
        if seen:
            return
        seen = 0 <= now_available < available


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateways", type=int, default=4)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--bin", required=True, help="the ai-key-rotator binary")
    ap.add_argument("--driver", required=True, help="the akr-mock-driver binary")
    args = ap.parse_args()
    if args.gateways < 2:
        sys.exit("at least 2 gateways: one cools, the others observe")
    redis = shutil.which("redis-server")
    if redis is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")

    keys = [f"sk-prop-{i:04d}-{os.getpid()}" for i in range(args.trials + 2)]
    work = tempfile.mkdtemp(prefix="akr-prop-")
    procs: list[subprocess.Popen] = []
    drivers: list[Driver] = []
    try:
        redis_port = free_port()
        procs.append(subprocess.Popen(
            [redis, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", work], stdout=subprocess.DEVNULL))
        ports = []
        for g in range(args.gateways):
            d = Driver(args.driver)
            drivers.append(d)
            port = free_port()
            ports.append(port)
            cfg = os.path.join(work, f"gw{g}.toml")
            with open(cfg, "w") as f:
                f.write(gateway_config(port, d.base_url, redis_port, keys))
            os.chmod(cfg, 0o600)
            env = dict(os.environ, RUST_LOG="warn")
            procs.append(subprocess.Popen([args.bin, "serve", "--config", cfg], env=env,
                                          stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, f"gw{g}.log"), "w")))

        def healthy(p: int) -> bool:
            try:
                c = http.client.HTTPConnection("127.0.0.1", p, timeout=1)
                c.request("GET", "/healthz")
                return c.getresponse().status == 200
            except OSError:
                return False

        for p in ports:
            wait_for(lambda p=p: healthy(p), f"gateway on port {p}")
        clients = [Client(p) for p in ports]
        # Warm up every connection (gateway → mock too) with the first key.
        for c in clients:
            for _ in range(20):
                c.post()
        if any(c.post()[1] != len(keys) for c in clients):
            sys.exit("every key should be available at the start")

        cooler, observers = clients[0], clients[1:]
        results: list[list[float]] = [[] for _ in observers]  # ms per observer per trial
        polls_needed: list[int] = []
        misses = 0
        for trial in range(args.trials):
            key = keys[trial]
            for d in drivers:
                d.call(op="clear")
            drivers[0].call(op="once", key=key, behavior={"rate_limited_ms": 600_000})
            go = threading.Event()
            times: list[list[float]] = [[] for _ in observers]
            # Keys 0 … trial-1 cool already; the one this trial cools is still available.
            available = len(keys) - trial
            threads = [threading.Thread(target=poll, args=(c, go, available, times[i]))
                       for i, c in enumerate(observers)]
            for t in threads:
                t.start()
            go.set()
            time.sleep(0.002)  # the pollers are sending
            t0 = time.perf_counter()
            if cooler.post()[0] != 200:
                sys.exit("the cooling request did not fail over to the next key")
            for t in threads:
                t.join()
            first_key = drivers[0].keys_used()
            if first_key[:2] != [key, keys[trial + 1]]:
                sys.exit(f"trial {trial}: gateway 1 sent {first_key}, expected the cooled key then the next")
            for i, d in enumerate(drivers[1:]):
                used = d.keys_used()
                # Polls before T0 may still be recorded: the poll whose answer came back first
                # after T0 with the next key is the first that skipped.
                try:
                    n = used.index(keys[trial + 1])
                except ValueError:
                    misses += 1
                    continue
                if any(k != keys[trial + 1] for k in used[n:]):
                    sys.exit(f"trial {trial}: a gateway went back to the cooled key: {used}")
                done = times[i][n]
                results[i].append((done - t0) * 1000)
                polls_needed.append(sum(1 for t in times[i][: n + 1] if t > t0))

        flat = sorted(ms for r in results for ms in r)
        def pct(p: float) -> float:
            return flat[min(len(flat) - 1, int(round(p / 100 * (len(flat) - 1))))]
        print(f"{args.gateways} gateways sharing one redis-server, {args.trials} trials, "
              f"{len(flat)} observations ({args.gateways - 1} observers per trial), {misses} misses "
              f"(not skipped within {GIVE_UP_S} s)")
        print(f"propagation, T0 = cooling request sent through gateway 1, until the first answer "
              f"from another gateway that used the next key (ms):")
        print(f"  p50 {pct(50):.3f}  p90 {pct(90):.3f}  p99 {pct(99):.3f}  max {flat[-1]:.3f}  "
              f"mean {statistics.mean(flat):.3f}")
        for i, r in enumerate(results):
            r = sorted(r)
            print(f"  gateway {i + 2}: p50 {r[len(r) // 2]:.3f}  max {r[-1]:.3f}")
        polls_needed.sort()
        print(f"polls answered after T0 up to and including the first skip: median "
              f"{polls_needed[len(polls_needed) // 2]}, max {polls_needed[-1]}")
    finally:
        for d in drivers:
            try:
                d.close()
            except Exception:
                d.proc.kill()
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
