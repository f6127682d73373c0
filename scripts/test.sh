#!/usr/bin/env bash
#
# Every test chatload has, in one command (the README's test command; CI runs exactly this):
#   1. the local stack (Cassandra 5, Redis, Prometheus) is installed and started if needed;
#   2. formatting and lints (cargo fmt --check, cargo clippy -D warnings);
#   3. unit tests and integration tests against the real stack (cargo test).
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

step "cargo test (unit + integration against the local stack)"
cargo test --locked

printf '\n==> all tests passed in %ss\n' "$(($(date +%s) - started))"
