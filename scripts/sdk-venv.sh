#!/usr/bin/env bash
# Makes target/sdk-venv with the official Python SDKs that the gateway's end-to-end tests
# drive (crates/ai-key-rotator-gateway/tests/sdk.rs), and prints the interpreter's path.
# Use: export AKR_SDK_PYTHON="$(bash scripts/sdk-venv.sh)"
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x target/sdk-venv/bin/python ]; then
  python3 -m venv target/sdk-venv >&2
fi
target/sdk-venv/bin/pip install -q openai anthropic google-genai >&2
echo "$PWD/target/sdk-venv/bin/python"
