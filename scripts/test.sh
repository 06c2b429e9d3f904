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

step "system packages (C toolchain for the bundled librdkafka, PostgreSQL for the durable tests)"
missing=()
command -v make >/dev/null 2>&1 || missing+=(make)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v perl >/dev/null 2>&1 || missing+=(perl)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
[ -e /usr/include/zlib.h ] || missing+=(zlib1g-dev)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
# Prometheus (promtool for the rule tests, the server for the scrape test)
# and headless Chromium for the status-page test.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-pip)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
# Running as root, the test clusters run as the postgres OS user.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --no-create-home postgres
fi

step "Kafka-protocol broker for the outbox tests (tansu)"
export PATH="$HOME/.cargo/bin:$PATH"
command -v tansu >/dev/null 2>&1 || cargo install tansu --locked --features dynostore

step "Prometheus config and rules (promtool check + unit tests)"
promtool check config deploy/prometheus/prometheus.yml
promtool test rules deploy/prometheus/tests/alerts_test.yml

step "Kubernetes manifests (kubernetes-validate, offline schemas)"
if ! python3 -c 'import kubernetes_validate' >/dev/null 2>&1; then
  python3 -m pip install kubernetes-validate \
    || python3 -m pip install --break-system-packages kubernetes-validate
fi
python3 scripts/validate_deploy.py
haproxy -c -q -f deploy/postgres/haproxy.cfg

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "fuzz smoke (cargo-fuzz, 30 s per target over the committed corpus)"
bash scripts/fuzz_smoke.sh 30

step "cargo test"
cargo test --workspace --no-fail-fast
