#!/usr/bin/env bash
# Browser end-to-end tests of the dealer ranking page and the brand dashboard,
# against the local stack:
#   1. Debian chromium (+ a CJK font for the screenshot) via apt-get if missing; npm ci
#   2. the local stack (infra/local/stack.sh up: reuses a running one, never stops it)
#   3. a demo brand: directory, 31 days of daily stats, yesterday's-but-one ranking
#      (examples/ranking_demo_seed.rs)
#   4. `cargo lambda watch` serving the functions on a free loopback port; the
#      brand-ranking binary ranks the date, the api binary serves page and API
#   5. tests/e2e/ranking-page.mjs drives headless Chromium, checks the page against
#      the API, and writes the screenshot (default docs/ranking-page.png)
#   6. a dashboard brand whose leads' fates the seed chose (dashboard_demo_seed in
#      the integration-tests crate), then tests/e2e/dashboard.mjs: the page against
#      the API and the API against the seed; screenshot (default docs/dashboard.png)
# Usage: tests/e2e/run.sh [ranking.png [dashboard.png]]. infra/test.sh runs it
# (screenshots to scratch files); run it alone with no argument to refresh docs/.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$repo/tests/e2e"
shot="$(realpath -m "${1:-$repo/docs/ranking-page.png}")"
dashboard_shot="$(realpath -m "${2:-$repo/docs/dashboard.png}")"
cd "$repo"
# Nothing here reads input; a held-open stdin once left npm spinning.
exec </dev/null
step() { printf '\n== %s\n' "$*" >&2; }
started=$SECONDS

step "browser and node packages"
need=()
command -v chromium >/dev/null || need+=(chromium)
# Without a CJK font the Chinese labels render as boxes.
fc-list :lang=zh 2>/dev/null | grep -q . || need+=(fonts-wqy-microhei)
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
(cd "$here" && timeout 300 npm ci --no-audit --no-fund --loglevel=error)

step "local stack"
eval "$(infra/local/stack.sh up)"
export PATH="$repo/.venv/bin:$PATH"

step "build (api, brand-ranking, demo seeds)"
cargo build -q -p api -p brand-ranking --bins --examples
cargo build -q -p integration-tests --example dashboard_demo_seed

step "seed a demo brand"
# The seed's answer is its last line (the ranking job before it prints its
# CloudWatch metrics as EMF lines on stdout, as it does in Lambda).
seed="$(cargo run -q -p brand-ranking --example ranking_demo_seed | tail -n 1)"
job="$(printf '%s' "$seed" | python3 -c 'import json, sys; d = json.load(sys.stdin); print(json.dumps({"date": d["date"], "brand_id": d["brand_id"]}))')"
echo "seeded: $job" >&2

step "functions (cargo lambda watch on loopback)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log="$(mktemp)"
# --ignore-changes: edits elsewhere in the workspace must not restart a function mid-test.
setsid cargo lambda watch -A 127.0.0.1 -P "$port" --ignore-changes >"$log" 2>&1 &
watch_pid=$!
cleanup() { kill -- "-$watch_pid" 2>/dev/null || true; rm -f "$log"; }
# On a failure: cargo lambda's errors (its own 500s carry no function log) and the tail.
show_log() {
  echo "--- cargo lambda watch: errors and panics" >&2
  grep -nE "ERROR|panicked" "$log" | grep -v "default function route is disabled" | tail -20 >&2 || true
  echo "--- cargo lambda watch log (tail)" >&2
  tail -60 "$log" >&2
}
trap cleanup EXIT
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$port/" && break
  sleep 0.2
done

step "rank $job through the brand-ranking binary"
timeout 300 cargo lambda invoke brand-ranking -A 127.0.0.1 -P "$port" --data-ascii "$job" >&2
echo >&2

step "browser test"
mkdir -p "$(dirname "$shot")"
(cd "$here" && BASE_URL="http://127.0.0.1:$port/lambda-url/api" SEED="$seed" SCREENSHOT="$shot" \
  timeout 300 node ranking-page.mjs) || { show_log; exit 1; }

step "seed the dashboard brand (router and API in process)"
dashboard_seed="$(cargo run -q -p integration-tests --example dashboard_demo_seed | tail -n 1)"
echo "seeded: $(printf '%s' "$dashboard_seed" | python3 -c 'import json, sys; print(json.load(sys.stdin)["brand_id"])')" >&2

step "browser test of the brand dashboard"
mkdir -p "$(dirname "$dashboard_shot")"
(cd "$here" && BASE_URL="http://127.0.0.1:$port/lambda-url/api" SEED="$dashboard_seed" SCREENSHOT="$dashboard_shot" \
  timeout 300 node dashboard.mjs) || { show_log; exit 1; }
echo "e2e: $((SECONDS - started)) s in all" >&2
