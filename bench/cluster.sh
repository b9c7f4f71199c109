#!/usr/bin/env bash
# bench/run cluster [--dask] [--runs N]: a head (`dray start --head`) and two worker processes on this
# machine over loopback, driven by bench_cluster; with --dask the same work on dask.distributed
# (LocalCluster, 2 worker processes, 1 thread each) and ratio_<name> lines (dray / Dask for rates,
# Dask / dray for latencies and times). Every process started here is stopped and its directory removed.
# BENCH_ONLY=tasks,latency,actor,nested,put runs a subset (both sides); BENCH_KEEP_LOG=FILE keeps the worker
# nodes' log. The workers offer resources n0=1 and n1=1 so the put/get metric can pin its two tasks.
# DRAY_SPILL=0 (passed on to the worker nodes) keeps nested tasks on their node: cluster_nested_spread_s
# without spillback.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
runs=5; dask=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dask) dask=1 ;;
    --runs) runs=$2; shift ;;
    *) echo "usage: bench/run cluster [--dask] [--runs N]" >&2; exit 2 ;;
  esac
  shift
done
dir=$(mktemp -d /tmp/dray-bench-XXXXXX); out=$(mktemp)
export DRAY_CLUSTER_DIR=$dir
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  "$build/bin/dray" stop >/dev/null 2>&1 || true
  [ -n "${BENCH_KEEP_LOG:-}" ] && cp "$dir/bench-workers.log" "$BENCH_KEEP_LOG" || true
  rm -rf "$dir" "$out"
}
trap cleanup EXIT
"$build/bin/dray" start --head --port "$port" >/dev/null
for i in 0 1; do
  DRAY_WORKER_ADDRESS=127.0.0.1:$port DRAY_WORKER_CPUS=1 DRAY_WORKER_RESOURCES=n$i=1 \
    "$build/bin/bench_cluster" \
    2>>"$dir/bench-workers.log" &
  pids+=($!)
done
DRAY_ADDRESS=127.0.0.1:$port DRAY_MIN_NODES=2 "$build/bin/bench_cluster" --runs "$runs" ${BENCH_ONLY:+--only $BENCH_ONLY} | tee -a "$out"
# The seed's array example as a driver on the same nodes (every dray binary has the array functions).
if [ -x "$build/bin/array_mean" ]; then
  for i in $(seq "$runs"); do
    res=$(DRAY_ADDRESS=127.0.0.1:$port DRAY_MIN_NODES=2 "$build/bin/array_mean")
    grep -q "check: ok" <<<"$res" || { echo "array_mean on the cluster failed its check" >&2; exit 1; }
    sed -n 's/.* tasks, \([0-9.]*\) s,.*/\1/p' <<<"$res"
  done | sort -g | awk '{v[NR]=$1} END {printf "cluster_array_random_mean_s %.3f s\n", v[int((NR+1)/2)]}' |
    tee -a "$out"
fi
# The machine's floor for a round trip: a bare TCP ping-pong between two processes (no dray).
"$build/bin/bench_loopback" | tee -a "$out"
if [ $dask = 1 ]; then
  /usr/bin/python3 bench/dask_cluster.py --runs "$runs" ${BENCH_ONLY:+--only $BENCH_ONLY} | tee -a "$out"
fi
awk '
  { v[$1] = $2 }
  END {
    for (k in v) {
      if (k ~ /^dask_/) {
        base = k; sub(/^dask_/, "", base)
        if (!(base in v) || v[base] == 0 || v[k] == 0) continue
        r = (base ~ /(latency|mean_s$)/) ? v[k] / v[base] : v[base] / v[k]
        printf "ratio_%s %.3g x\n", base, r
      }
    }
  }' "$out" | sort
