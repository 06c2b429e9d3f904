#!/usr/bin/env bash
# The whole test suite, as the README gives it and CI runs it.
#
# Installs what the tests need on a fresh machine, then checks formatting,
# lints, and runs every unit and integration test of the workspace. Integration
# tests start their own processes and stores on loopback ports and temp dirs.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace --no-fail-fast
