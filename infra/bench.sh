#!/usr/bin/env bash
# Benchmarks (README "Benchmarks"): builds release binaries, runs the criterion
# benches of the pure domain, the emulator measurements (AWS requests per piece
# of work, end-to-end latency, request units, cost per 1 M leads) and the cold
# starts under cargo-lambda's runtime API, a live group-buy burst with DynamoDB's
# transaction conflicts on (the local stack's contention mode), writes the raw results to
# docs/benchmarks/ and regenerates the README table between its markers.
#
# Usage: infra/bench.sh            everything (about 10 min on 2 cores after the first build)
#        infra/bench.sh --render   only regenerate the README table from docs/benchmarks/
#        --no-build                measure the release binaries already in target/release
#        --no-criterion            keep the criterion results already in target/criterion
# Runs on a fresh emulator of its own (.local/bench), never the shared one.
# BENCH_RUNS (cold starts per binary, default 20), BENCH_CUSTOMERS (default 240),
# BENCH_E2E (end-to-end iterations, default 200) tune it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
out="$repo/docs/benchmarks"
step() { printf '\n== %s\n' "$*" >&2; }
py() { "$repo/.venv/bin/python" "$@"; }

build=1 criterion=1
for arg in "$@"; do
  case "$arg" in
    --render) infra/local/bootstrap.sh; py benches/render.py "$out" README.md; exit 0 ;;
    --no-build) build=0 ;;
    --no-criterion) criterion=0 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done
infra/local/bootstrap.sh
mkdir -p "$out"
target="${CARGO_TARGET_DIR:-$repo/target}"
functions=(webhook-intake lead-router api notifier sla-sweeper brand-ranking)

step "release build: the functions, the hello-world baseline and the bench tools (same profile)"
pkgs=()
for f in "${functions[@]}"; do pkgs+=(-p "$f"); done
if [[ $build == 1 ]]; then
  nice cargo build --release --locked "${pkgs[@]}" -p leads-benches --bins
fi

step "machine"
py - "$out/machine.json" <<'EOF'
import json, os, platform, subprocess, sys, datetime
def sh(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
model = next((l.split(":", 1)[1].strip() for l in sh("lscpu").splitlines() if l.startswith("Model name")), platform.processor())
info = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "cpu": model,
    "cores": os.cpu_count(),
    "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    "kernel": platform.release(),
    "rustc": sh("rustc", "--version"),
    "commit": sh("git", "rev-parse", "--short", "HEAD"),
    "load_before": os.getloadavg()[0],
    "mem_available_gib": round(int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemAvailable"))) / 2**20, 1),
}
json.dump(info, open(sys.argv[1], "w"), indent=1)
print(info)
EOF

step "emulator of its own (.local/bench)"
export LEADS_LOCAL_STATE="$repo/.local/bench"
infra/local/stack.sh down >/dev/null 2>&1 || true
stack_env="$(infra/local/stack.sh up)" || { echo "the local stack did not come up" >&2; exit 1; }
eval "$stack_env"
watch_pid=""
cleanup() {
  if [[ -n "$watch_pid" ]]; then kill -- "-$watch_pid" 2>/dev/null || true; wait "$watch_pid" 2>/dev/null || true; fi
  infra/local/stack.sh down
}
trap cleanup EXIT

step "cold starts under cargo lambda's runtime API (--only-lambda-apis), on the still empty emulator"
port="$(py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
setsid .venv/bin/cargo-lambda lambda watch --only-lambda-apis -A 127.0.0.1 -P "$port" \
  >"$LEADS_LOCAL_STATE/runtime-api.log" 2>&1 </dev/null &
watch_pid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
bins=(hello="$target/release/hello")
for f in "${functions[@]}"; do bins+=("$f=$target/release/$f"); done
"$target/release/cold-start" --port "$port" --runs "${BENCH_RUNS:-20}" --out "$out/cold-start.json" "${bins[@]}" \
  | tee "$out/cold-start.txt"
kill -- "-$watch_pid" 2>/dev/null || true; wait "$watch_pid" 2>/dev/null || true; watch_pid=""

step "AWS requests, request units, end-to-end latency and cost (bench-emulator)"
"$target/release/bench-emulator" --customers "${BENCH_CUSTOMERS:-240}" --e2e "${BENCH_E2E:-200}" \
  --out "$out/emulator.json" | tee "$out/emulator.txt"

step "live group-buy burst in contention mode (burst): ${BENCH_BURST_LEADS:-400} leads in 20 s, one dealer, then 20 dealers"
# A burst the local stack does not absorb is a finding (its JSON says what was
# lost to 500s), not a reason to leave the other results unrendered.
# Each on a fresh stack of its own: the burst counts every lead in the table.
for dealers in 1 20; do
  (
    export LEADS_LOCAL_STATE="$repo/.local/burst" LOCAL_DDB_CONFLICT_MS="${BENCH_CONFLICT_MS:-10}"
    infra/local/stack.sh down >/dev/null 2>&1 || true
    burst_env="$(infra/local/stack.sh up)" || { echo "the burst stack did not come up" >&2; exit 1; }
    eval "$burst_env"
    trap 'infra/local/stack.sh down' EXIT
    "$target/release/burst" --leads "${BENCH_BURST_LEADS:-400}" --seconds 20 --dealers "$dealers" \
      --consumers 32 --out "$out/burst-$dealers-dealers.json" | tee "$out/burst-$dealers-dealers.txt"
  ) || echo "burst with $dealers dealer(s): not absorbed (docs/benchmarks/burst-$dealers-dealers.json)" >&2
done

step "lead export: ${BENCH_EXPORT_LEADS:-50000} leads of one dealer as CSV (export)"
(
  export LEADS_LOCAL_STATE="$repo/.local/export"
  infra/local/stack.sh down >/dev/null 2>&1 || true
  export_env="$(infra/local/stack.sh up)" || { echo "the export stack did not come up" >&2; exit 1; }
  eval "$export_env"
  trap 'infra/local/stack.sh down' EXIT
  "$target/release/export" --leads "${BENCH_EXPORT_LEADS:-50000}" --out "$out/export.json" | tee "$out/export.txt"
)

step "pure compute (criterion)"
if [[ $criterion == 1 ]]; then
  rm -rf "$target/criterion"
  nice cargo bench --locked -p leads-benches --bench pure 2>&1 | tee "$out/pure.txt"
fi
py - "$target/criterion" "$out/pure.json" <<'EOF'
import datetime, json, pathlib, sys
root, results = pathlib.Path(sys.argv[1]), {}
for est in sorted(root.glob("*/*/new/estimates.json")):
    bench = json.load(open(est.parent / "benchmark.json"))
    e = json.load(open(est))
    # The estimate criterion prints: the slope of linear sampling, else the mean.
    point = e.get("slope") or e["mean"]
    results[bench["full_id"]] = {
        "mean_ns": point["point_estimate"],
        "mean_low_ns": point["confidence_interval"]["lower_bound"],
        "mean_high_ns": point["confidence_interval"]["upper_bound"],
        "elements": (bench.get("throughput") or {}).get("Elements"),
        "measured_at": datetime.datetime.fromtimestamp(est.stat().st_mtime, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
json.dump(results, open(sys.argv[2], "w"), indent=1)
EOF

step "README table"
py benches/render.py "$out" README.md
