#!/usr/bin/env bash
# The project's test command (README and CI): format check, clippy with -D warnings, and every test.
# Slow real-model suites run only with UE8_SLOW=1 (they fetch data); CI leaves them off.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
cargo test --workspace --doc --locked
