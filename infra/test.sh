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

step "local stack (DynamoDB Local + moto on 127.0.0.1)"
# The default engine is AWS's DynamoDB Local; LOCAL_DYNAMODB=moto runs the whole
# suite on moto instead. Captured before eval: `eval "$(up)"` would hide a failed start.
started_here=false
infra/local/stack.sh status >/dev/null 2>&1 || started_here=true
if $started_here; then trap 'infra/local/stack.sh down' EXIT; fi
# `eval "$(... up)"` alone would carry on (eval of nothing exits 0) when `up` fails.
if ! stack_env="$(infra/local/stack.sh up)"; then
  echo "test.sh: the local stack did not come up (see above); stopping before the tests" >&2
  exit 1
fi
if [[ "$stack_env" != *"AWS_ENDPOINT_URL="* ]]; then
  echo "test.sh: infra/local/stack.sh up printed no AWS_ENDPOINT_URL; stopping before the tests" >&2
  exit 1
fi
eval "$stack_env"

log="$(mktemp)"
step "cargo test (unit, property and integration tests on $LOCAL_DYNAMODB)"
# An emulator test fails (never skips) when the stack is missing (tests/src/lib.rs).
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# Pages people look at, in a real browser (Debian's chromium, installed by the
# script if missing), against the same stack; the screenshot goes to a scratch
# file so a test run never rewrites docs/. Counted in the closing total.
step "browser tests of the ranking page and the brand dashboard (headless chromium)"
shots="$(mktemp -d)"
e2e_tail=""
if tests/e2e/run.sh "$shots/ranking-page.png" "$shots/dashboard.png" 2>&1 | tee "$shots/e2e.log"; then
  echo "test result: ok. 2 passed; 0 failed; 0 ignored (browser: ranking page, brand dashboard)" >>"$log"
else
  echo "test result: FAILED. 0 passed; 2 failed; 0 ignored (browser: ranking page, brand dashboard)" >>"$log"
  e2e_tail="$(tail -n 40 "$shots/e2e.log")"
  status=1
fi
rm -rf "$shots"
set -e
if $started_here; then trap - EXIT; infra/local/stack.sh down; fi

# The store and concurrency tests once more on the other DynamoDB engine, so every
# store rule holds on two independent implementations (AWS's DynamoDB Local and moto).
other=$([[ $LOCAL_DYNAMODB == ddblocal ]] && echo moto || echo ddblocal)
step "store and concurrency tests on the other engine ($other)"
other_state="$repo/.local/engine-$other"
if ! other_env="$(LOCAL_DYNAMODB=$other LEADS_LOCAL_STATE="$other_state" infra/local/stack.sh up)" ||
  [[ "$other_env" != *"AWS_ENDPOINT_URL="* ]]; then
  echo "test.sh: the $other stack did not come up; stopping" >&2
  exit 1
fi
set +e
(
  eval "$other_env"
  # Not router_contention: moto answers one request at a time, so 16 concurrent
  # routers time out behind each other there (measured: 3 messages given back).
  cargo test --locked --no-fail-fast -p integration-tests \
    --test template_resources --test lead_router --test router_edges --test request_counts \
    --test sla_sweeper --test api --test webhook_intake --test notifier --test manager_storm \
    --test brand_ranking --test directory_seed --test directory_apply --test insider \
    --test erasure
) 2>&1 | tee -a "$log"
other_status=${PIPESTATUS[0]}
set -e
LEADS_LOCAL_STATE="$other_state" infra/local/stack.sh down
[[ $status -ne 0 ]] || status=$other_status

# One closing line for the whole run (cargo prints one per test binary, the last
# of which is usually an empty doc-test run). Ignored tests are counted as
# skipped, never as passed.
if [[ -n $e2e_tail ]]; then printf '\n--- browser tests, last lines\n%s\n' "$e2e_tail"; fi
# CI keeps only the tail of the output, so the failures are named again right
# above the total: each failed test with the test binary it ran in.
awk '/^ *Running / { bin = $2 }
     /^test .* FAILED$/ { sub(/ \.\.\. FAILED$/, ""); sub(/^test /, ""); printf "failed: %s (%s)\n", $0, bin }
     /^test result: FAILED.*\(browser/ { print "failed: browser tests (tests/e2e/run.sh; its log is above)" }
     /^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "\ntotal: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
rm -f "$log"
exit "$status"
