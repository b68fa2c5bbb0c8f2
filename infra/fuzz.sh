#!/usr/bin/env bash
# Fuzz one parser (or all) for a bounded time with cargo-fuzz (libFuzzer).
#
#   infra/fuzz.sh                      # every target, 60 s each
#   infra/fuzz.sh TARGET [SECONDS]     # one target: phone normalise douyin hmac_sources wecom wecom_decrypt
#   infra/fuzz.sh --list
#
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs
# cargo-fuzz (pinned) into ~/.cargo/bin when it is missing. The committed seed
# corpus is fuzz/corpus/TARGET (read only); what the fuzzer learns goes to
# .local/fuzz/corpus/TARGET, crashes to .local/fuzz/artifacts/TARGET. A crash:
# fix the parser, copy the input into fuzz/corpus/TARGET/ (the stable test
# tests/tests/fuzz_corpus.rs then replays it in CI).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.12.0
TARGETS=(phone normalise douyin hmac_sources wecom wecom_decrypt)

if [[ "${1:-}" == "--list" ]]; then
    printf '%s\n' "${TARGETS[@]}"
    exit 0
fi

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz: a nightly toolchain is needed: rustup toolchain install nightly" >&2
    exit 1
fi

targets=("${TARGETS[@]}")
if [[ $# -ge 1 ]]; then
    targets=("$1")
fi
seconds="${2:-60}"
# FUZZ_JOBS=N runs N fuzzing processes in parallel (libFuzzer then logs to fuzz-*.log).
parallel=()
if [[ "${FUZZ_JOBS:-1}" -gt 1 ]]; then
    parallel=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
fi

for target in "${targets[@]}"; do
    corpus=".local/fuzz/corpus/$target"
    artifacts=".local/fuzz/artifacts/$target"
    mkdir -p "$corpus" "$artifacts"
    echo "== fuzz $target for ${seconds}s"
    # -max_len: bodies above intake's 256 KiB limit are refused before parsing.
    nice -n 10 cargo +nightly fuzz run --fuzz-dir fuzz "$target" "$corpus" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        "${parallel[@]}" -artifact_prefix="$artifacts/" -print_final_stats=1
done
