#!/usr/bin/env bash
# The system's main job, locally (README quick start): the emulator with the
# template's tables and queues, the sample directory seeded, the real functions
# served by `cargo lambda watch` on 127.0.0.1, a realistic day of signed webhooks
# posted to them, the SQS trigger played for the router, and a report.
# Leaves nothing running. Extra arguments go to lead-demo (e.g. --customers 1000,
# --dealers 600, or --directory data/sample-directory.json without --dealers).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
step() { printf '\n== %s\n' "$*" >&2; }

step "tools (pinned, project-local .venv) and a debug build of the functions"
infra/local/bootstrap.sh
cargo build --locked -p webhook-intake -p lead-router -p api -p lead-demo

step "local stack (moto on 127.0.0.1, tables and queues from template.yaml)"
# A fresh emulator of its own (state in .local/demo), so a test run's data never
# slows the demo and the demo never disturbs a running test suite.
export LEADS_LOCAL_STATE="$repo/.local/demo"
infra/local/stack.sh down >/dev/null 2>&1 || true
eval "$(infra/local/stack.sh up)"

port="$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
watch_pid=""
cleanup() {
  if [[ -n "$watch_pid" ]]; then kill -- "-$watch_pid" 2>/dev/null || true; wait "$watch_pid" 2>/dev/null || true; fi
  infra/local/stack.sh down
}
trap cleanup EXIT


step "functions under cargo lambda watch on 127.0.0.1:$port (log: .local/demo/functions.log)"
# Its own process group, so cleanup stops it and every function it started.
setsid .venv/bin/cargo-lambda lambda watch -A 127.0.0.1 -P "$port" --ignore-changes \
  >"$LEADS_LOCAL_STATE/functions.log" 2>&1 </dev/null &
watch_pid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.2
done

step "replay: webhooks -> webhook-intake -> lead queue -> lead-router -> notification/CRM queues"
args=("$@")
[[ ${#args[@]} -gt 0 ]] || args=(--customers 240)
"${CARGO_TARGET_DIR:-target}"/debug/lead-demo --endpoint "http://127.0.0.1:$port" --functions-log "$LEADS_LOCAL_STATE/functions.log" "${args[@]}"
