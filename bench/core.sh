#!/usr/bin/env bash
# bench/run core [--dask] [--tbb] [--runs N]: the core runtime benchmarks (bench_core), optionally with
# Dask's threaded scheduler and oneTBB measured in the same run, and ratio_<name> lines
# (dray / anchor for rates, anchor / dray for latencies).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
runs=5; dask=0; tbb=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dask) dask=1 ;;
    --tbb) tbb=1 ;;
    --runs) runs=$2; shift ;;
    *) echo "usage: bench/run core [--dask] [--tbb] [--runs N]" >&2; exit 2 ;;
  esac
  shift
done
out=$(mktemp); trap 'rm -f "$out"' EXIT
"$build/bin/bench_core" --runs "$runs" | tee -a "$out"
"$build/bin/bench_core" --only core_bytes_per_pending_task | tee -a "$out"
if [ $dask = 1 ]; then
  /usr/bin/python3 bench/dask_core.py --runs "$runs" | tee -a "$out"
fi
if [ $tbb = 1 ]; then
  [ -x "$build/bin/tbb_core" ] || { echo "tbb_core not built (install libtbb-dev, rebuild)" >&2; exit 1; }
  "$build/bin/tbb_core" --runs "$runs" | tee -a "$out"
fi
# Ratios: dray over each anchor (for latencies, anchor over dray: higher is better for dray).
awk '
  { v[$1] = $2 }
  END {
    for (k in v) {
      if (k ~ /^(dask|tbb)_/) {
        base = k; sub(/^(dask|tbb)_/, "", base); who = k; sub(/_.*/, "", who)
        if (!(base in v) || v[base] == 0 || v[k] == 0) continue
        r = (base ~ /latency/) ? v[k] / v[base] : v[base] / v[k]
        printf "ratio_%s_vs_%s %.3g x\n", base, who, r
      }
    }
  }' "$out" | sort
