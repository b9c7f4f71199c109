#!/usr/bin/env bash
# dashboard benchmarks (bench/run dashboard [--runs N] [--tasks N] [--build DIR]), one process with two
# pairs of runtimes created in opposite orders (one of each pair serving a dashboard), averaged:
#   - dashboard_overhead_pct: core_empty_tasks_per_s's workload (1M no-op tasks from one thread, then
#     wait for all) on the watched runtime against the plain one, runs interleaved, medians;
#   - dashboard_overhead_paired_pct: 61 pairs of shorter runs, each watched run against the plain run
#     beside it; 1 minus the median of the pairs' ratios;
#   - dashboard_api_p99_ms: latency of the page's API calls (summary, tasks, the stream from its cursor,
#     nodes) over HTTP, 4 every 20 ms, while 1M-task runs go on until 400 calls were made.
#   - dashboard_overhead_process_pct: the same A/B with bench_core in fresh processes (see the end).
# The anchor is the same runtime without the dashboard, measured side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=9
tasks=1000000
build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --tasks) tasks=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    *) echo "usage: bench/run dashboard [--runs N] [--tasks N] [--build DIR]" >&2; exit 2 ;;
  esac
done
[ -x "$build/bin/bench_dashboard" ] || { echo "build first (make build)" >&2; exit 1; }
echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)"
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
med() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
off=$(echo "$ab" | awk '{print $1}' | med); on=$(echo "$ab" | awk '{print $2}' | med)
echo "core_empty_tasks_per_s_off $off tasks/s"
echo "core_empty_tasks_per_s_dashboard $on tasks/s"
awk -v a="$off" -v b="$on" 'BEGIN {printf "dashboard_overhead_process_pct %.2f %%\n", (1 - b / a) * 100}'
