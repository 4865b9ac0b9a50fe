#!/usr/bin/env bash
# Propagation of a cooldown through a fleet of gateways sharing one Redis (issue 12): a private
# redis-server, N `ai-key-rotator serve` processes (release build) each in front of its own
# scripted mock upstream; one gateway cools a key (the mock answers 429), and the time until each
# other gateway's next request skips it is measured end to end, over many trials. Prints
# p50/p90/p99/max. Not run by CI.
#
#   bash scripts/measure-propagation.sh [gateways=4] [trials=200]
set -euo pipefail
cd "$(dirname "$0")/.."
gateways="${1:-4}"; trials="${2:-200}"
cargo build --release -q -p ai-key-rotator-gateway -p akr-mock-driver --bins
T=${CARGO_TARGET_DIR:-target}/release
echo "load before: $(uptime)"
python3 scripts/measure-propagation.py --gateways "$gateways" --trials "$trials" \
  --bin "$T/ai-key-rotator" --driver "$T/akr-mock-driver"
echo "load after: $(uptime)"
