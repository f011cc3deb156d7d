#!/usr/bin/env bash
# Short libFuzzer runs of every cargo-fuzz target in fuzz/ (seconds each): proof that the targets
# build and that the parsers survive fresh mutations of the kept corpus. Fails on any crash,
# leaving the crashing input under the scratch directory it prints.
#
#   scripts/fuzz-smoke.sh                       every target, FUZZ_SECS (5) seconds each
#   FUZZ_SECS=600 scripts/fuzz-smoke.sh config  one target, ten minutes (a long local run)
#   FUZZ_KEEP=1 ...                             add what the run found to fuzz/corpus/<target>/
#                                               (then minimise: see fuzz/README.md)
#
# Needs the nightly toolchain (`cargo +nightly`); installs cargo-fuzz from crates.io if missing.
# Build output: ${SENDERO_CACHE:-~/.cache/sendero}/target-fuzz (kept between runs; no sanitizer,
# debug assertions on, so an integer overflow is a crash as it is in the test profile).
set -euo pipefail

cd "$(dirname "$0")/.."
cache_root="${SENDERO_CACHE:-$HOME/.cache/sendero}"
target_dir="${FUZZ_TARGET_DIR:-$cache_root/target-fuzz}"
secs="${FUZZ_SECS:-5}"
log() { printf 'fuzz-smoke: %s\n' "$*" >&2; }

if ! cargo +nightly --version >/dev/null 2>&1; then
  log "the nightly toolchain is missing (cargo +nightly): cargo fuzz needs it"
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi
flags=(--fuzz-dir fuzz --sanitizer none --debug-assertions --target-dir "$target_dir")

start=$(date +%s)
cargo +nightly fuzz build "${flags[@]}" 2>&1 | tail -n 3 >&2 || {
  log "build failed"
  exit 1
}
built=$(date +%s)
log "built in $((built - start)) s"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/sendero-fuzz.XXXXXX")
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t/new" "$scratch/$t/artifacts"
  out="$scratch/$t/log"
  # New inputs go to the scratch corpus (first directory); the kept corpus is only read.
  if cargo +nightly fuzz run "${flags[@]}" "$t" "$scratch/$t/new" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$scratch/$t/artifacts/" ${FUZZ_RUNS:+-runs="$FUZZ_RUNS"} >"$out" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -n 1)
    log "$t: ${runs:-?} executions in $secs s, 0 crashes"
    if [ -n "${FUZZ_KEEP:-}" ]; then
      cp -n "$scratch/$t/new/"* "fuzz/corpus/$t/" 2>/dev/null || true
    fi
  else
    failed+=("$t")
    log "$t: CRASH — input(s): $(ls -d "$scratch/$t/artifacts/"* 2>/dev/null | tr '\n' ' ')"
    grep -E "panicked|ERROR|SUMMARY" "$out" | head -n 5 >&2 || true
  fi
done
log "total $(($(date +%s) - start)) s (build $((built - start)) s)"
if [ ${#failed[@]} -gt 0 ]; then
  log "crashed: ${failed[*]} (logs and inputs under $scratch)"
  exit 1
fi
rm -rf "$scratch"
