#!/usr/bin/env bash
# The project's one test command (README quick start; .ci/run calls exactly this).
# Installs what it needs (pinned Python tools into .venv), checks formatting, lints
# and the template, starts the local emulator with the template's tables and queues,
# runs every test against it, and stops the emulator again if it started it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
step() { printf '\n== %s\n' "$*" >&2; }

step "tools (pinned, project-local .venv)"
infra/local/bootstrap.sh
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "template lint (cfn-lint, sam validate --lint)"
infra/lint.sh

step "local stack (moto on 127.0.0.1)"
started_here=false
infra/local/stack.sh status >/dev/null 2>&1 || started_here=true
eval "$(infra/local/stack.sh up)"
if $started_here; then trap 'infra/local/stack.sh down' EXIT; fi

step "cargo test (unit, property and emulator integration tests)"
# CI=true makes an integration test fail, not skip, if the emulator is missing.
log="$(mktemp)"
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if $started_here; then trap - EXIT; infra/local/stack.sh down; fi
# One closing line for the whole run (cargo prints one per test binary, the last
# of which is usually an empty doc-test run).
awk '/^test result:/ { p += $4; f += $6 } END { printf "\ntotal: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
