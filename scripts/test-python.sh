#!/usr/bin/env bash
# The Python package (bindings/python): builds the wheel from source in a virtual environment
# of its own, then runs its pytest suite (against the project's mock upstream, and Redis when
# redis-server is installed) and the mypy check of its stubs and a usage file.
# Run by .ci/run; by hand: bash scripts/test-python.sh
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== Python package (bindings/python)"
venv=target/python-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q pytest mypy httpx httpx2 openai anthropic google-genai
# The mock upstream the SDK tests talk to (bindings/python/mock-driver).
# As in scripts/test-node.sh: the test profile and features of `scripts/test.sh`, so no rebuild.
cargo build --locked -q --workspace --all-features --profile test --bins
# What the README tells users to run: pip builds the wheel with maturin (the build backend).
# Built for the host's triple, as `napi build` builds the Node package, so both packages share
# one target directory and their common dependencies (aws-lc-sys's C build above all) compile
# once per CI run instead of once per package.
CARGO_BUILD_TARGET=$(rustc -vV | sed -n 's/^host: //p') \
  "$venv/bin/pip" install -q --force-reinstall --no-deps ./bindings/python
export AKR_MOCK_DRIVER="$PWD/target/debug/akr-mock-driver"
cd bindings/python
"$OLDPWD/$venv/bin/python" -m pytest -q -p no:cacheprovider tests
"$OLDPWD/$venv/bin/python" -m mypy --strict --cache-dir "$OLDPWD/target/mypy-cache" \
  python/ai_key_rotator tests/typing/usage.py
