#!/usr/bin/env bash
# Mutation testing of the pure rules (not part of CI): does the suite fail when a
# rule is broken? Installs a pinned cargo-mutants into .tools/ (gitignored), runs
# it on leads-domain one rule module at a time, and writes the surviving
# ("missed") mutants per module to docs/mutants/, with a summary line each.
#
# Usage: infra/mutants.sh [MODULE ...]     default: the rule modules below
#   MUTANTS_JOBS (default 1), MUTANTS_TIMEOUT (seconds per test run, default 120)
#   Work dirs and cargo-mutants' own output: .local/mutants/ (gitignored).
#
# The store and the router (shared/aws, functions/lead-router) are tested against
# the emulator, so a mutant there needs the stack up and the integration tests:
#   eval "$(infra/local/stack.sh up)"
#   .tools/bin/cargo-mutants mutants -p leads-aws -f shared/aws/src/store/leads.rs \
#     --test-package integration-tests -j 1 --timeout 600 -o .local/mutants/store
# (slow: every mutant rebuilds the integration tests; pick files with -f).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
version=25.3.1
tool="$repo/.tools/bin/cargo-mutants"
if ! "$tool" mutants --version 2>/dev/null | grep -qx "cargo-mutants $version"; then
  echo "mutants: installing cargo-mutants $version into .tools/ (a few minutes, once)" >&2
  cargo install --locked "cargo-mutants@$version" --root "$repo/.tools"
fi

modules=("$@")
[[ ${#modules[@]} -gt 0 ]] || modules=(routing assignment dedup status sla phone ranking)
jobs="${MUTANTS_JOBS:-1}"
timeout="${MUTANTS_TIMEOUT:-120}"
work="$repo/.local/mutants"
mkdir -p docs/mutants "$work"
# One target dir for every run, so each mutant is an incremental build.
export CARGO_TARGET_DIR="$work/target"
# Mutate a snapshot of the last commit, not the work tree: edits made while a
# long run goes on never leak into it.
rm -rf "$work/src" && mkdir -p "$work/src"
git archive HEAD | tar -x -C "$work/src"
commit="$(git rev-parse --short HEAD)"

for module in "${modules[@]}"; do
  file="shared/domain/src/$module.rs"
  out="$work/$module"
  started=$(date +%s)
  set +e
  "$tool" mutants -d "$work/src" -p leads-domain -f "$file" -j "$jobs" --timeout "$timeout" \
    --no-shuffle -o "$out" >"$out.log" 2>&1
  status=$?
  set -e
  seconds=$(( $(date +%s) - started ))
  count() { if [[ -f "$out/mutants.out/$1.txt" ]]; then grep -c . "$out/mutants.out/$1.txt" || true; else echo 0; fi; }
  caught=$(count caught) missed=$(count missed) timeout_n=$(count timeout) unviable=$(count unviable)
  cp "$out/mutants.out/missed.txt" "docs/mutants/$module-missed.txt" 2>/dev/null || : >"docs/mutants/$module-missed.txt"
  line="$module: caught $caught, missed $missed, timeout $timeout_n, unviable $unviable in ${seconds}s (exit $status, commit $commit, $(date -u +%F), $(nproc) cores, -j $jobs)"
  echo "$line" | tee -a docs/mutants/summary.txt
done
