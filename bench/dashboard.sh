#!/usr/bin/env bash
# dashboard benchmarks (bench/run dashboard [--runs N] [--tasks N] [--build DIR]), one process with two
# pairs of runtimes created in opposite orders (one of each pair serving a dashboard), averaged:
#   - dashboard_overhead_pct: core_empty_tasks_per_s's workload (1M no-op tasks from one thread, then
#     wait for all) on the watched runtime against the plain one, runs interleaved, medians;
#   - dashboard_overhead_paired_pct: 61 pairs of shorter runs, each watched run against the plain run
#     beside it; 1 minus the median of the pairs' ratios;
#   - dashboard_api_p99_ms: latency of the page's API calls (summary, tasks, the stream from its cursor,
#     nodes) over HTTP, 4 every 20 ms, while 1M-task runs go on until 400 calls were made.
#   - dashboard_overhead_process_pct: the same A/B with bench_core in fresh processes (see below).
#   - dashboard_cluster_overhead_pct: cluster_empty_tasks_per_s (bench_cluster --only tasks) on a fresh
#     head + 2 worker processes, with the head's dashboard watched (a client polling its API, so the
#     nodes record and ship task events) against unwatched, alternating, fresh processes every run.
# The anchor is the same runtime without the dashboard, measured side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=9
tasks=1000000
build=build
cluster_pairs=6
only_cluster=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --cluster-pairs) cluster_pairs=$2; shift 2 ;;
    --only-cluster) only_cluster=1; shift ;;
    --tasks) tasks=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    *) echo "usage: bench/run dashboard [--runs N] [--tasks N] [--build DIR] [--cluster-pairs N]" \
            "[--only-cluster]" >&2; exit 2 ;;
  esac
done
[ -x "$build/bin/bench_dashboard" ] || { echo "build first (make build)" >&2; exit 1; }
echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)"
med() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# One fresh cluster (head + 2 worker processes of bench_cluster, 1 CPU each), watched or not; prints
# bench_cluster's cluster_empty_tasks_per_s (median of 3 runs). Watched: a client polls the head's
# API (as the page does, once a second) from before the run, and the run starts once both nodes
# report recording.
cluster_rate() {
  local watch=$1 dir port url pids=() poller="" rate
  dir=$(mktemp -d /tmp/dray-dashbench-XXXXXX)
  port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  DRAY_CLUSTER_DIR=$dir DRAY_DASHBOARD_PORT=0 "$build/bin/dray" start --head --port "$port" >/dev/null
  url=$(cut -d' ' -f1 "$dir/dashboard.url")
  for i in 0 1; do
    DRAY_CLUSTER_DIR=$dir DRAY_WORKER_ADDRESS=127.0.0.1:$port DRAY_WORKER_CPUS=1 \
      "$build/bin/bench_cluster" 2>>"$dir/workers.log" &
    pids+=($!)
  done
  if [ "$watch" = 1 ]; then
    (while :; do for r in summary nodes tasks progress memory "stream?since=0&limit=1"; do
       curl -s -o /dev/null "${url}api/v0/$r"; done; sleep 1; done) &
    poller=$!
    for _ in $(seq 200); do
      [ "$(curl -s "${url}api/v0/nodes" | grep -o '"recording":true' | wc -l)" -ge 2 ] && break
      sleep 0.1
    done
  fi
  rate=$(DRAY_CLUSTER_DIR=$dir DRAY_ADDRESS=127.0.0.1:$port DRAY_MIN_NODES=2 \
           "$build/bin/bench_cluster" --only tasks --runs 3 | awk '{print $2}')
  if [ -n "$poller" ]; then kill "$poller"; wait "$poller" 2>/dev/null || true; fi
  if [ "$watch" = 1 ] && ! grep -q "recording task events" "$dir/workers.log"; then
    echo "the watched nodes did not record" >&2; rate=""
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  DRAY_CLUSTER_DIR=$dir "$build/bin/dray" stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  echo "$rate"
}

cluster_ab() {
  local ab off on
  ab=$(for i in $(seq "$cluster_pairs"); do
    if [ $((i % 2)) = 1 ]; then a=$(cluster_rate 0); b=$(cluster_rate 1)
    else b=$(cluster_rate 1); a=$(cluster_rate 0); fi
    echo "$a $b"
  done)
  echo "$ab" | sed 's/^/# cluster pair (off on): /'
  off=$(echo "$ab" | awk '{print $1}' | med); on=$(echo "$ab" | awk '{print $2}' | med)
  echo "cluster_empty_tasks_per_s_off $off tasks/s"
  echo "cluster_empty_tasks_per_s_watched $on tasks/s"
  awk -v a="$off" -v b="$on" 'BEGIN {printf "dashboard_cluster_overhead_pct %.2f %%\n", (1 - b / a) * 100}'
}

if [ "$only_cluster" = 1 ]; then
  cluster_ab
  exit 0
fi
"$build/bin/bench_dashboard" --runs "$runs" --tasks "$tasks"
# The same A/B across processes: bench_core's core_empty_tasks_per_s (median of 5 runs in a fresh
# process) alternately without and with --dashboard, 12 pairs; medians of each side. This one avoids
# the two-runtimes-in-one-process order effect the in-process figures average out.
pairs=12
ab=$(for _ in $(seq "$pairs"); do
  a=$("$build/bin/bench_core" --only core_empty_tasks_per_s --runs 5 | cut -d' ' -f2)
  b=$("$build/bin/bench_core" --only core_empty_tasks_per_s --runs 5 --dashboard | cut -d' ' -f2)
  echo "$a $b"
done)
off=$(echo "$ab" | awk '{print $1}' | med); on=$(echo "$ab" | awk '{print $2}' | med)
echo "core_empty_tasks_per_s_off $off tasks/s"
echo "core_empty_tasks_per_s_dashboard $on tasks/s"
awk -v a="$off" -v b="$on" 'BEGIN {printf "dashboard_overhead_process_pct %.2f %%\n", (1 - b / a) * 100}'
cluster_ab
