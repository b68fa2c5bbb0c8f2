#!/usr/bin/env bash
# Mutation testing (not part of CI): does the suite fail when a rule is broken?
# Installs a pinned cargo-mutants into .tools/ (gitignored), mutates a snapshot of
# the last commit, and writes the surviving ("missed") mutants to docs/mutants/,
# with a summary line per run in docs/mutants/summary.txt.
#
# Usage: infra/mutants.sh [MODULE ...]
#          leads-domain, one rule module at a time (default: the rule modules below),
#          with the domain crate's own tests.
#        infra/mutants.sh --store [--test NAME]... [--re RE] [--exclude-re RE] FILE...
#          the store or the router (files of shared/aws or functions/lead-router), one
#          file at a time, against the local stack (started, or the running one used):
#          only the integration test binaries named with --test (default: a list per file, below). --re /
#          --exclude-re restrict the mutants (regex on the names `--list` shows).
#          Each mutant rebuilds the functions and those binaries: minutes each.
#   MUTANTS_JOBS (default 1), MUTANTS_TIMEOUT (seconds per test run, default 120;
#   600 with --store). Work dirs and cargo-mutants' own output: .local/mutants/
#   (gitignored).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
version=25.3.1
tool="$repo/.tools/bin/cargo-mutants"
if ! "$tool" mutants --version 2>/dev/null | grep -qx "cargo-mutants $version"; then
  echo "mutants: installing cargo-mutants $version into .tools/ (a few minutes, once)" >&2
  cargo install --locked "cargo-mutants@$version" --root "$repo/.tools"
fi

store=0
if [[ "${1:-}" == --store ]]; then store=1; shift; fi
tests=() filter=()
modules=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --test) tests+=("$2"); shift 2 ;;
    --re) filter+=(--re "$2"); shift 2 ;;
    --exclude-re) filter+=(--exclude-re "$2"); shift 2 ;;
    -*) echo "mutants: unknown option $1" >&2; exit 2 ;;
    *) modules+=("$1"); shift ;;
  esac
done
if [[ $store -eq 0 && ( ${#tests[@]} -gt 0 || ${#filter[@]} -gt 0 ) ]]; then
  echo "mutants: --test, --re and --exclude-re go with --store" >&2; exit 2
fi
if [[ $store -eq 1 && ${#modules[@]} -eq 0 ]]; then
  echo "mutants: --store needs the files to mutate" >&2; exit 2
fi
[[ ${#modules[@]} -gt 0 ]] || modules=(routing assignment dedup status sla phone ranking)
jobs="${MUTANTS_JOBS:-1}"
work="$repo/.local/mutants"
mkdir -p docs/mutants "$work"
if [[ $store -eq 1 ]]; then
  timeout="${MUTANTS_TIMEOUT:-600}"
  # Its own target dir and snapshot, so a domain run may go on meanwhile; seeded
  # from the work tree's target so the dependencies are not built again.
  export CARGO_TARGET_DIR="$work/target-store"
  # A build writing to target meanwhile can make cp fail: only a slower start.
  [[ -d "$CARGO_TARGET_DIR" || ! -d "$repo/target" ]] || cp -a "$repo/target" "$CARGO_TARGET_DIR" ||
    echo "mutants.sh: target not fully copied (a build was writing it); the store run builds what is missing" >&2
  src="$work/src-store"
  env="$(infra/local/stack.sh up)" && eval "$env"
else
  timeout="${MUTANTS_TIMEOUT:-120}"
  # One target dir for every run, so each mutant is an incremental build.
  export CARGO_TARGET_DIR="$work/target"
  src="$work/src"
fi
# Mutate a snapshot of the last commit, not the work tree: edits made while a
# long run goes on never leak into it.
rm -rf "$src" && mkdir -p "$src"
git archive HEAD | tar -x -C "$src"
commit="$(git rev-parse --short HEAD)"

# The integration test binaries that exercise a store/router file, unless --test.
default_tests() {
  case "$1" in
    shared/aws/src/store/leads/keys.rs) echo webhook_intake lead_router router_edges brand_ranking ;;
    shared/aws/src/store/tickets.rs) echo router_edges router_contention sla_sweeper ;;
    shared/aws/src/store/leads/assign.rs) echo lead_router router_edges router_contention sla_sweeper ;;
    *) echo lead_router router_edges ;;
  esac
}

# Appends the run's summary line and writes its missed list.
record() {
  local name="$1" out="$2" seconds="$3" status="$4" extra="$5"
  count() { if [[ -f "$out/mutants.out/$1.txt" ]]; then grep -c . "$out/mutants.out/$1.txt" || true; else echo 0; fi; }
  local caught missed timeout_n unviable
  caught=$(count caught) missed=$(count missed) timeout_n=$(count timeout) unviable=$(count unviable)
  cp "$out/mutants.out/missed.txt" "docs/mutants/$name-missed.txt" 2>/dev/null || : >"docs/mutants/$name-missed.txt"
  echo "$name: caught $caught, missed $missed, timeout $timeout_n, unviable $unviable in ${seconds}s (exit $status, commit $commit, $(date -u +%F), $(nproc) cores, -j $jobs$extra)" \
    | tee -a docs/mutants/summary.txt
}

for module in "${modules[@]}"; do
  if [[ $store -eq 1 ]]; then
    file="$module"
    case "$file" in
      shared/aws/src/*) package=leads-aws name="aws-${file#shared/aws/src/}" ;;
      functions/lead-router/src/*) package=lead-router name="router-${file#functions/lead-router/src/}" ;;
      *) echo "mutants: --store takes files of shared/aws/src or functions/lead-router/src, not $file" >&2; exit 2 ;;
    esac
    [[ -f "$file" ]] || { echo "mutants: no file $file" >&2; exit 2; }
    name="${name%.rs}" name="${name//\//-}"
    # shellcheck disable=SC2207
    [[ ${#tests[@]} -gt 0 ]] && binaries=("${tests[@]}") || binaries=($(default_tests "$file"))
    # Only the integration-tests package: cargo-mutants passes the `--test`
    # names to every test package, and the mutated crate has no such targets.
    test_args=()
    for t in "${binaries[@]}"; do test_args+=(--test "$t"); done
    extra=", tests ${binaries[*]}${filter[*]:+, ${filter[*]}}"
    run=(-p "$package" --test-package integration-tests "${filter[@]}"
      --build-timeout "$timeout" -- "${test_args[@]}")
  else
    file="shared/domain/src/$module.rs" name="$module" extra="" run=(-p leads-domain)
  fi
  out="$work/$name"
  started=$(date +%s)
  set +e
  "$tool" mutants -d "$src" -f "$file" -j "$jobs" --timeout "$timeout" --no-shuffle -o "$out" \
    "${run[@]}" >"$out.log" 2>&1
  status=$?
  set -e
  record "$name" "$out" "$(( $(date +%s) - started ))" "$status" "$extra"
done
