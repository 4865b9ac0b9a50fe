#!/usr/bin/env bash
# The project's test command (named in README.md and run by .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --locked --no-fail-fast
else
  cargo test --workspace --all-features --locked --no-fail-fast
fi
# nextest does not run doc tests.
cargo test --workspace --all-features --locked --doc
