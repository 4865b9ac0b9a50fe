#!/usr/bin/env bash
# Builds the Node package (bindings/node) from source and runs its checks: the type check of a
# TypeScript usage file and `node --test` (the original README's examples, every method and
# event, worker threads, the canary key, stores, and the SDK adapters against mock-upstream).
set -euo pipefail
cd "$(dirname "$0")/.."

# The SDK tests talk to the project's mock upstream, run as a process.
# The workspace's binaries in the test profile, with the features `scripts/test.sh` builds them
# with: after the Rust tests this is a no-op, not a second build of every dependency.
cargo build --locked --workspace --all-features --profile test --bins
export AKR_MOCK_UPSTREAM="$PWD/target/debug/mock-upstream"
# The interop test reads a store written from Node with the gateway's command-line tool: the
# binary the workspace's tests built (scripts/test.sh runs before this in .ci/run).
if [ -x target/debug/ai-key-rotator ]; then
  export AKR_GATEWAY_BIN="$PWD/target/debug/ai-key-rotator"
fi

cd bindings/node
npm ci --no-audit --no-fund
npx napi build --platform --release --output-dir native --js binding.js --dts binding.d.ts
npx tsc --noEmit -p test/types
node --test test/
