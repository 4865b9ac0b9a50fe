#!/usr/bin/env bash
# What the dashboard and the usage statistics cost the proxy, in one run on this machine:
# the gateway with 1 000 keys and its default SQLite store (usage statistics written every 5 s)
# at a fixed 1 000 req/s (examples/loadgen.rs, open loop) and at saturation (wrk, 1 thread,
# 32 connections), first with no dashboard open, then with 10 dashboards open (10 pollers of
# /dashboard.json every 2 s, as the page polls), and the gateway's peak RSS at the end.
#
#   bash scripts/bench-dashboard.sh          # release build, ~1 minute
#   SECONDS_FIXED=10 SECONDS_SAT=5 KEYS=1000 bash scripts/bench-dashboard.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_FIXED=${SECONDS_FIXED:-10}
SECONDS_SAT=${SECONDS_SAT:-5}
RATE=${RATE:-1000}
KEYS=${KEYS:-1000}
DASHBOARDS=${DASHBOARDS:-10}
MOCK_PORT=${MOCK_PORT:-19412}
GW_PORT=${GW_PORT:-19413}
TOKEN=bench-client-token-0123456789abcdef
BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'

if ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
cargo build --release -q -p mock-upstream -p ai-key-rotator-gateway --bins --example loadgen
T=${CARGO_TARGET_DIR:-target}/release

work=$(mktemp -d)
POLLERS=()
cleanup() {
  kill "${POLLERS[@]}" 2>/dev/null || true
  kill "${GW_PID:-}" "${MOCK_PID:-}" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

{
  echo "listen = \"127.0.0.1:$GW_PORT\""
  echo "client_tokens = [\"$TOKEN\"]"
  echo "[providers.openai]"
  echo "family = \"openai\""
  echo "upstream = \"http://127.0.0.1:$MOCK_PORT\""
  printf 'keys = ['
  for i in $(seq "$KEYS"); do printf '{ key = "sk-bench-%04d", label = "k%04d" }, ' "$i" "$i"; done
  echo ']'
} > "$work/rotator.toml"
chmod 600 "$work/rotator.toml"

"$T/mock-upstream" --fast --listen "127.0.0.1:$MOCK_PORT" 2>/dev/null &
MOCK_PID=$!
RUST_LOG=warn "$T/ai-key-rotator" serve --config "$work/rotator.toml" >/dev/null &
GW_PID=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$GW_PORT/healthz" >/dev/null 2>&1 && break || sleep 0.1
done

cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $TOKEN"
LUA

proxy="127.0.0.1:$GW_PORT"
echo "== warm-up"
"$T/examples/loadgen" "$proxy" /openai/v1/chat/completions 500 1 4 "$TOKEN" "$BODY" >/dev/null

run() {
  printf 'fixed %s req/s %ss: ' "$RATE" "$SECONDS_FIXED"
  "$T/examples/loadgen" "$proxy" /openai/v1/chat/completions "$RATE" "$SECONDS_FIXED" 8 "$TOKEN" "$BODY"
  echo "saturation (wrk -t1 -c32 -d${SECONDS_SAT}s):"
  wrk -t1 -c32 -d"${SECONDS_SAT}s" --latency -s "$work/post.lua" \
    "http://$proxy/openai/v1/chat/completions" | grep -E 'Requests/sec|Non-2xx|^ +(50|99)%|Socket errors'
}

echo "== no dashboard open"
run
echo "== $DASHBOARDS dashboards open"
curl -fs -H "authorization: Bearer $TOKEN" "http://$proxy/dashboard" -o "$work/page.html"
echo "page: $(wc -c < "$work/page.html") bytes; json: $(curl -fs -H "authorization: Bearer $TOKEN" "http://$proxy/dashboard.json" | wc -c) bytes"
for _ in $(seq "$DASHBOARDS"); do
  ( while true; do
      curl -fs -H "authorization: Bearer $TOKEN" "http://$proxy/dashboard.json" >/dev/null || true
      sleep 2
    done ) &
  POLLERS+=($!)
done
sleep 2
run

echo "== gateway memory ($KEYS keys, dashboards open)"
grep -E 'VmHWM|VmRSS' "/proc/$GW_PID/status"
