#!/usr/bin/env bash
#
# Every test chatload has, in one command (the README's test command; CI runs exactly this):
#   1. the local stack (Cassandra 5, Redis, Prometheus) is installed and started if needed;
#   2. formatting and lints (cargo fmt --check, cargo clippy -D warnings);
#   3. unit tests and integration tests against the real stack (cargo test; the status page test
#      uses Debian's chromium, installed here when missing);
#   4. the monitoring artefacts: promtool check/test of the alert rules, the Grafana dashboards
#      statically and live (every panel query returns data from a running chatload);
#   5. the deployment artefacts (scripts/check-deploy.sh: compose schema, Kubernetes schemas, Helm
#      lint and render, systemd-analyze, hadolint; no Docker engine is run), then the unit tests of
#      its Python checks (scripts/deploy_check/test_*.py, with the venv check-deploy.sh made).
# The stack is left running afterwards (`scripts/stack.sh down` stops it).

set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

step "local stack"
scripts/stack.sh up

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

if ! command -v chromium >/dev/null 2>&1; then
    step "installing chromium (headless, for the status page test)"
    [[ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit 2>/dev/null)" ]] || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

step "cargo test (unit + integration against the local stack)"
cargo test --locked

step "alert rules: promtool check and unit tests"
promtool check rules deploy/prometheus/rules/chatload-rules.yml
promtool test rules deploy/prometheus/rules/chatload-rules.test.yml

step "Grafana dashboards: static checks, then every query against a live chatload"
python3 scripts/check_dashboards.py --offline
scripts/test-dashboards.sh

step "deployment artefacts"
scripts/check-deploy.sh
printf '\n    unit tests of the checks (scripts/deploy_check):\n'
.stack/deploy-venv/bin/python -m unittest discover -s scripts/deploy_check

printf '\n==> all tests passed in %ss\n' "$(($(date +%s) - started))"
