#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD/bin for SECONDS each on its corpus fuzz/corpus/<target minus fuzz_>.
# A passing target prints its final stats; a failing one prints the report (crash, leak, timeout) and
# the reproducer, and the script exits non-zero after trying every target.
set -uo pipefail
build=${1:-build-fuzz}; secs=${2:-20}
cd "$(dirname "$0")/.."
shopt -s nullglob
failed=()
for bin in "$build"/bin/fuzz_*; do
  name=$(basename "$bin"); corpus="fuzz/corpus/${name#fuzz_}"
  mkdir -p "$corpus"
  echo "== $name ($secs s)"
  work=$(mktemp -d)
  log="$work/log"
  if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$work/" "$work" "$corpus" >"$log" 2>&1; then
    tail -3 "$log"
  else
    failed+=("$name")
    grep -v -E '^#[0-9]+' "$log" | tail -60
    for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
      echo "-- reproducer $(basename "$a") (base64): $(base64 -w0 "$a")"
    done
  fi
  rm -rf "$work"
done
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
