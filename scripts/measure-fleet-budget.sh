#!/usr/bin/env bash
# Three processes share one 600 requests/minute budget through a private redis-server for three
# minutes (by default), each trying to acquire every millisecond; prints the most requests
# granted in any 60-second window (sliding, to the millisecond) and per process.
# Not run by CI (it takes minutes): `bash scripts/measure-fleet-budget.sh [processes] [rpm] [seconds]`.
set -euo pipefail
cd "$(dirname "$0")/.."
procs="${1:-3}"; rpm="${2:-600}"; seconds="${3:-180}"
cargo build --release -q -p ai-key-rotator --features redis --example fleet_budget
bin=target/release/examples/fleet_budget
dir="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" >/dev/null &
redis_pid=$!
trap 'kill "$redis_pid" 2>/dev/null; rm -rf "$dir"' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
pids=()
for i in $(seq 1 "$procs"); do
  "$bin" "redis://127.0.0.1:$port" "$rpm" "$seconds" >"$dir/grants-$i" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
python3 - "$dir" "$procs" "$rpm" "$seconds" <<'PY'
import sys, glob, bisect
d, procs, rpm, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
per = [list(map(int, open(f).read().split())) for f in sorted(glob.glob(f"{d}/grants-*"))]
ts = sorted(t for p in per for t in p)
best = max((bisect.bisect_left(ts, t + 60_000) - i for i, t in enumerate(ts)), default=0)
batch = max(1, -(-rpm // 60))
print(f"{procs} processes, {rpm}/min, {seconds} s: {len(ts)} granted ({[len(p) for p in per]})")
print(f"most in any 60 s window: {best} (limit {rpm}, documented bound {rpm + (procs + 1) * batch})")
PY
