#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD/bin for SECONDS each on its corpus fuzz/corpus/<target minus fuzz_>.
set -euo pipefail
build=${1:-build-fuzz}; secs=${2:-20}
cd "$(dirname "$0")/.."
shopt -s nullglob
for bin in "$build"/bin/fuzz_*; do
  name=$(basename "$bin"); corpus="fuzz/corpus/${name#fuzz_}"
  mkdir -p "$corpus"
  echo "== $name ($secs s)"
  work=$(mktemp -d)
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$work" "$corpus" 2>&1 | tail -3
  rm -rf "$work"
done
