#!/usr/bin/env bash
# Load benchmark of the gateway against `mock-upstream --fast`, in one run on this machine:
# direct to the mock and through the gateway, at a fixed 1 000 req/s (examples/loadgen.rs,
# open loop) and at saturation (wrk, 1 thread, 32 connections), plus the gateway's peak RSS.
#
#   bash scripts/bench-gateway.sh            # release build, ~1 minute
#   SECONDS_FIXED=10 SECONDS_SAT=5 bash scripts/bench-gateway.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_FIXED=${SECONDS_FIXED:-10}
SECONDS_SAT=${SECONDS_SAT:-5}
RATE=${RATE:-1000}
MOCK_PORT=${MOCK_PORT:-19312}
GW_PORT=${GW_PORT:-19313}
TOKEN=bench-client-token-0123456789abcdef
BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'

if ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
cargo build --release -q -p mock-upstream -p ai-key-rotator-gateway --bins --example loadgen
T=${CARGO_TARGET_DIR:-target}/release

work=$(mktemp -d)
cleanup() { kill "${GW_PID:-}" "${MOCK_PID:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cat > "$work/rotator.toml" <<TOML
listen = "127.0.0.1:$GW_PORT"
client_tokens = ["$TOKEN"]
[providers.openai]
family = "openai"
upstream = "http://127.0.0.1:$MOCK_PORT"
keys = [{ key = "sk-bench-1", label = "one" }, { key = "sk-bench-2", label = "two" }]
TOML
chmod 600 "$work/rotator.toml"

"$T/mock-upstream" --fast --listen "127.0.0.1:$MOCK_PORT" 2>/dev/null &
MOCK_PID=$!
RUST_LOG=warn "$T/ai-key-rotator" serve --config "$work/rotator.toml" >/dev/null &
GW_PID=$!
for _ in $(seq 50); do
  curl -fs "http://127.0.0.1:$GW_PORT/healthz" >/dev/null 2>&1 && break || sleep 0.1
done

cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $TOKEN"
LUA

direct="127.0.0.1:$MOCK_PORT"
proxy="127.0.0.1:$GW_PORT"
echo "== warm-up"
"$T/examples/loadgen" "$proxy" /openai/v1/chat/completions 500 1 4 "$TOKEN" "$BODY" >/dev/null

echo "== fixed rate: $RATE req/s for ${SECONDS_FIXED}s, 8 connections (latency from due time)"
printf 'direct  '; "$T/examples/loadgen" "$direct" /v1/chat/completions "$RATE" "$SECONDS_FIXED" 8 "" "$BODY"
printf 'gateway '; "$T/examples/loadgen" "$proxy" /openai/v1/chat/completions "$RATE" "$SECONDS_FIXED" 8 "$TOKEN" "$BODY"

echo "== saturation: wrk -t1 -c32 -d${SECONDS_SAT}s --latency"
for target in "direct http://$direct/v1/chat/completions" "gateway http://$proxy/openai/v1/chat/completions"; do
  set -- $target
  echo "-- $1"
  wrk -t1 -c32 -d"${SECONDS_SAT}s" --latency -s "$work/post.lua" "$2" \
    | grep -E 'Requests/sec|Non-2xx|^ +(50|99)%|Socket errors'
done

echo "== gateway memory"
grep -E 'VmHWM|VmRSS' "/proc/$GW_PID/status"
