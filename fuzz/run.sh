#!/usr/bin/env bash
# Run every cargo-fuzz target for a bounded time: `bash fuzz/run.sh [SECONDS] [TARGET...]`
# (default 20 s each, all targets). Needs a nightly toolchain and cargo-fuzz
# (`rustup toolchain install nightly --profile minimal; cargo install cargo-fuzz`);
# without them it says so and exits 0, as CI's fresh machine has neither (the corpora
# are still replayed on stable by tests/fuzz_replay.rs).
# New inputs go to a scratch corpus, not fuzz/corpus/; a crash leaves its input in
# fuzz/artifacts/TARGET/ and fails the run (keep it in fuzz/regressions/TARGET/ once fixed).
# For the 10^7-executions goal: `bash fuzz/run.sh 0 TARGET` with FUZZ_RUNS=10000000.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
shift || true
if ! cargo +nightly --version >/dev/null 2>&1 || ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: skipped (no nightly toolchain or no cargo-fuzz)"
    exit 0
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
limit=(-max_total_time="$secs")
[ -n "${FUZZ_RUNS:-}" ] && limit=(-runs="$FUZZ_RUNS")
work="$(mktemp -d /tmp/coracle-fuzz.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# Build only the targets asked for (the instrumented build is the long part).
if [ $# -gt 0 ]; then
    for t in "${targets[@]}"; do cargo +nightly fuzz build -s none "$t"; done
else
    cargo +nightly fuzz build -s none
fi
for t in "${targets[@]}"; do
    mkdir -p "$work/$t"
    echo "== fuzz: $t (${FUZZ_RUNS:+$FUZZ_RUNS runs}${FUZZ_RUNS:-$secs s})"
    rc=0
    nice -n 10 cargo +nightly fuzz run -s none "$t" "$work/$t" "fuzz/corpus/$t" -- \
        -max_len=65536 -timeout=10 -rss_limit_mb=2048 "${limit[@]}" \
        -print_final_stats=1 >"$work/$t.log" 2>&1 || rc=$?
    grep -E '^(stat::(number_of_executed_units|peak_rss_mb)|#[0-9]+ +DONE|SUMMARY|thread .* panicked)' "$work/$t.log" || true
    if [ "$rc" -ne 0 ]; then
        tail -40 "$work/$t.log"
        echo "fuzz: $t failed; its input is in fuzz/artifacts/$t/"
        exit 1
    fi
done
