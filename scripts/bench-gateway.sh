#!/usr/bin/env bash
# Load benchmark of the gateway, in one run on this machine:
#  1. against `mock-upstream --fast`: direct to the mock and through the gateway, at a fixed
#     1 000 req/s (examples/loadgen.rs, open loop) and at saturation (wrk, 1 thread, 32
#     connections), plus the gateway's peak RSS;
#  2. against a third-party reference: nginx (Debian's `nginx-light`) as the upstream mock
#     (`return 200` with the same fixed completion), and nginx as a plain reverse proxy in
#     front of it (`proxy_pass` with upstream keep-alive, one worker, the key injected as a
#     header), beside the gateway in front of the same nginx upstream: saturation throughput
#     (wrk -t1 -c32) and the median at one connection (wrk -t1 -c1), with the gateway's
#     throughput as a share of nginx-as-proxy's and each proxy's added median.
#
#   bash scripts/bench-gateway.sh            # release build, ~2 minutes
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
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
UP_PORT=${UP_PORT:-19314}
NX_PORT=${NX_PORT:-19315}
GW2_PORT=${GW2_PORT:-19316}
cargo build --release -q -p mock-upstream -p ai-key-rotator-gateway --bins --example loadgen
T=${CARGO_TARGET_DIR:-target}/release

work=$(mktemp -d)
cleanup() {
  kill "${GW_PID:-}" "${MOCK_PID:-}" "${GW2_PID:-}" "${UP_PID:-}" "${NX_PID:-}" 2>/dev/null || true
  rm -rf "$work"
}
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

echo
echo "== against nginx: nginx as the upstream mock; nginx (proxy_pass, keep-alive, 1 worker) and the gateway in front of it"
kill "$GW_PID" "$MOCK_PID" 2>/dev/null || true
wait "$GW_PID" "$MOCK_PID" 2>/dev/null || true
# The same fixed completion as `mock-upstream --fast`.
COMPLETION='{"id":"chatcmpl-mockfast","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the mock upstream."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":5,"total_tokens":14}}'
mkdir -p "$work/nginx"
cat > "$work/nginx/upstream.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx/upstream.pid;
error_log $work/nginx/upstream-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/up-body;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UP_PORT;
    location / {
      default_type application/json;
      return 200 '$COMPLETION';
    }
  }
}
NGINX
cat > "$work/nginx/proxy.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx/proxy.pid;
error_log $work/nginx/proxy-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/px-body;
  proxy_temp_path $work/nginx/px-proxy;
  keepalive_requests 1000000;
  upstream up {
    server 127.0.0.1:$UP_PORT;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$NX_PORT;
    location /openai/ {
      proxy_pass http://up/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer sk-bench-1";
    }
  }
}
NGINX
sed -e "s/$GW_PORT/$GW2_PORT/" -e "s/$MOCK_PORT/$UP_PORT/" "$work/rotator.toml" > "$work/rotator-nginx.toml"
chmod 600 "$work/rotator-nginx.toml"
"$NGINX" -c "$work/nginx/upstream.conf" -p "$work/nginx" 2>/dev/null &
UP_PID=$!
"$NGINX" -c "$work/nginx/proxy.conf" -p "$work/nginx" 2>/dev/null &
NX_PID=$!
RUST_LOG=warn "$T/ai-key-rotator" serve --config "$work/rotator-nginx.toml" >/dev/null &
GW2_PID=$!
for port in "$UP_PORT" "$NX_PORT" "$GW2_PORT"; do
  for _ in $(seq 50); do
    curl -fs -o /dev/null -X POST "http://127.0.0.1:$port/openai/v1/chat/completions" \
      -H "authorization: Bearer $TOKEN" -d "$BODY" 2>/dev/null && break || sleep 0.1
  done
done

targets=("direct http://127.0.0.1:$UP_PORT/v1/chat/completions"
         "nginx-proxy http://127.0.0.1:$NX_PORT/openai/v1/chat/completions"
         "gateway http://127.0.0.1:$GW2_PORT/openai/v1/chat/completions")
# Warm every pool first.
for t in "${targets[@]}"; do set -- $t; wrk -t1 -c32 -d1s -s "$work/post.lua" "$2" >/dev/null; done

declare -A RPS P50
for c in 32 1; do
  echo "-- wrk -t1 -c$c -d${SECONDS_SAT}s --latency"
  for t in "${targets[@]}"; do
    set -- $t
    out=$(wrk -t1 -c"$c" -d"${SECONDS_SAT}s" --latency -s "$work/post.lua" "$2")
    rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
    # wrk prints the 50th percentile with its unit (us, ms, s): in microseconds.
    p50=$(awk '$1 == "50%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
            m = (u == "ms") ? 1000 : (u == "s") ? 1000000 : 1; printf "%.0f", v * m }' <<<"$out")
    errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)
    printf '%-12s %10s req/s   p50 %6s us %s\n' "$1" "$rps" "$p50" "$errors"
    RPS[$1-$c]=$rps
    P50[$1-$c]=$p50
  done
done
awk -v d="${RPS[direct-32]}" -v n="${RPS[nginx-proxy-32]}" -v g="${RPS[gateway-32]}" \
  'BEGIN { printf "saturation: nginx-proxy %.0f%% of direct, gateway %.0f%% of direct = %.2fx nginx-proxy\n", 100*n/d, 100*g/d, g/n }'
echo "median added at one connection: nginx-proxy $(( ${P50[nginx-proxy-1]} - ${P50[direct-1]} )) us, gateway $(( ${P50[gateway-1]} - ${P50[direct-1]} )) us"
echo "== gateway memory (in front of nginx)"
grep -E 'VmHWM|VmRSS' "/proc/$GW2_PID/status"
