#!/usr/bin/env bash
# Array benchmarks: `bench/run array [--dask] [--reps N]`. Prints `name value unit` lines (medians of
# N runs, default 5): the seed example, its hardware-bound loop (same generator, 2 threads, no
# runtime), a fused elementwise expression, blocked matmul vs one big dgemm, and the seed's peak RSS.
# --dask runs the same with dask.array (threaded scheduler) side by side and prints dask_* and ratio_*.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
bin=$BUILD/bin/bench_array
reps=5 dask=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dask) dask=1 ;;
    --reps) reps=$2; shift ;;
    *) echo "usage: bench/run array [--dask] [--reps N]" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$bin" ] || { echo "build first: $bin missing" >&2; exit 1; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# Each dray metric is followed at once by its Dask anchor, so that load from other processes on a
# shared machine hits both alike.
dask_run() {
  if [ "$dask" = 1 ]; then /usr/bin/python3 bench/array_dask.py "$reps" "$@" | tee -a "$out"; fi
}
"$bin" bound "$reps" | tee -a "$out"
"$bin" seed "$reps" | tee -a "$out"
dask_run seed
"$bin" rss | tee -a "$out"
"$bin" elementwise "$reps" | tee -a "$out"
dask_run elementwise
"$bin" matmul "$reps" | tee -a "$out"
dask_run matmul
val() { awk -v k="$1" '$1 == k { print $2 }' "$out"; }
awk -v s="$(val array_random_mean_s)" -v b="$(val array_bound_s)" \
  'BEGIN { printf "ratio_array_seed_vs_bound %.2f x\n", s / b }'
if [ "$dask" = 1 ]; then
  awk -v d="$(val dask_array_random_mean_s)" -v s="$(val array_random_mean_s)" \
      -v de="$(val dask_array_elementwise_s)" -v se="$(val array_elementwise_s)" \
      -v dm="$(val dask_array_matmul_gflops)" -v sm="$(val array_matmul_gflops)" \
      -v dc="$(val dask_array_random_mean_cpu_s)" -v sc="$(val array_random_mean_cpu_s)" \
    'BEGIN { printf "ratio_array_random_mean %.1f x\n", d / s;
             printf "ratio_array_random_mean_cpu %.1f x\n", dc / sc;
             printf "ratio_array_elementwise %.1f x\n", de / se;
             printf "ratio_array_matmul %.2f x\n", sm / dm }'
fi
