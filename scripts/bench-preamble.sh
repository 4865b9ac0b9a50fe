#!/usr/bin/env bash
# What holding a stream's preamble costs: time to first byte of a stream whose first content
# comes at once (mock-upstream sends the whole stream back to back), through two gateways in
# front of one mock, one holding the preamble (the default) and one not
# (`stream_preamble_bytes = 0`). Requests alternate between them, one at a time, so drift on a
# shared machine hits both alike. Prints the median and p90 of curl's time_starttransfer for
# each, and the difference of the medians.
#
#   bash scripts/bench-preamble.sh            # release build, 400 requests per gateway and dialect
#   N=100 bash scripts/bench-preamble.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-400}
MOCK_PORT=${MOCK_PORT:-19322}
HOLD_PORT=${HOLD_PORT:-19323}
PASS_PORT=${PASS_PORT:-19324}
TOKEN=bench-client-token-0123456789abcdef

cargo build --release -q -p mock-upstream -p ai-key-rotator-gateway --bins
T=${CARGO_TARGET_DIR:-target}/release

work=$(mktemp -d)
cleanup() { kill "${HOLD_PID:-}" "${PASS_PID:-}" "${MOCK_PID:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

config() { # PORT EXTRA
  cat <<TOML
listen = "127.0.0.1:$1"
client_tokens = ["$TOKEN"]
store = { type = "memory" }
access_log = "off"
$2
[providers.openai]
family = "openai"
upstream = "http://127.0.0.1:$MOCK_PORT"
keys = ["sk-bench-1"]
[providers.anthropic]
family = "anthropic"
upstream = "http://127.0.0.1:$MOCK_PORT"
keys = ["sk-ant-bench-1"]
TOML
}
config "$HOLD_PORT" "" > "$work/hold.toml"
config "$PASS_PORT" "stream_preamble_bytes = 0" > "$work/pass.toml"
chmod 600 "$work"/*.toml

"$T/mock-upstream" --listen "127.0.0.1:$MOCK_PORT" 2>/dev/null &
MOCK_PID=$!
RUST_LOG=warn "$T/ai-key-rotator" serve --config "$work/hold.toml" >/dev/null &
HOLD_PID=$!
RUST_LOG=warn "$T/ai-key-rotator" serve --config "$work/pass.toml" >/dev/null &
PASS_PID=$!
for port in "$HOLD_PORT" "$PASS_PORT"; do
  for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break || sleep 0.1
  done
done

ttfb() { # PORT PATH BODY
  curl -s -o /dev/null -w '%{time_starttransfer}\n' -H "authorization: Bearer $TOKEN" \
    -H "x-api-key: $TOKEN" -H 'content-type: application/json' \
    --data "$3" "http://127.0.0.1:$1$2"
}

stats() { # FILE -> "median p90" in microseconds
  sort -n "$1" | awk '{ v[NR] = $1 * 1e6 } END { printf "%.0f %.0f", v[int(NR * 0.5) + 1], v[int(NR * 0.9) + 1] }'
}

run() { # NAME PATH BODY
  : > "$work/hold.txt"; : > "$work/pass.txt"
  for _ in $(seq 20); do ttfb "$HOLD_PORT" "$2" "$3" >/dev/null; ttfb "$PASS_PORT" "$2" "$3" >/dev/null; done
  for _ in $(seq "$N"); do
    ttfb "$HOLD_PORT" "$2" "$3" >> "$work/hold.txt"
    ttfb "$PASS_PORT" "$2" "$3" >> "$work/pass.txt"
  done
  read -r hm hp <<<"$(stats "$work/hold.txt")"
  read -r pm pp <<<"$(stats "$work/pass.txt")"
  printf '%-22s holding: median %5d us p90 %5d us | not holding: median %5d us p90 %5d us | added: %d us\n' \
    "$1" "$hm" "$hp" "$pm" "$pp" "$((hm - pm))"
}

echo "== time to first byte, $N requests each, alternating"
run "openai responses" /openai/v1/responses '{"model":"gpt-4o-mini","input":"hi","stream":true}'
run "openai chat" /openai/v1/chat/completions '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}'
run "anthropic messages" /anthropic/v1/messages '{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}'
