#!/usr/bin/env bash
# Frame benchmarks: `bench/run frame [--rows N] [--data GLOB] [--dask] [--runs K]`. Generates ~1 GB of
# the seed's CSV in 8 files under bench/data (once) unless --data is given, then prints
# `name value unit` lines, medians of K runs (default 3), with Dask (Debian's python3-dask) measured
# in the same run when --dask is given.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
rows=22000000; data=""; dask=0; runs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows=$2; shift 2;;
    --data) data=$2; shift 2;;
    --dask) dask=1; shift;;
    --runs) runs=$2; shift 2;;
    *) echo "frame.sh: unknown option $1" >&2; exit 2;;
  esac
done
if [ -z "$data" ]; then
  dir=bench/data/frame-$rows
  if [ ! -f "$dir/data-7.csv" ]; then mkdir -p "$dir"; "$build/bin/dray" gen csv --rows "$rows" --files 8 "$dir" >&2; fi
  data="$dir/data-*.csv"
fi
bytes=$(cat $data | wc -c)
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() { # run MODE: median seconds of bench_frame MODE
  for _ in $(seq "$runs"); do rm -rf "$out/etl"; "$build/bin/bench_frame" "$1" "$data" "$out/etl" | cut -d' ' -f1; done | median
}
parse=$(run parse); etl=$(run etl); gb=$(run groupby)
awk -v b="$bytes" -v s="$parse" 'BEGIN {printf "frame_csv_parse_gbps %.3f GB/s\n", b/s/1e9}'
echo "frame_etl_s $etl s (to CSV: the Parquet writer is not merged yet)"
echo "frame_groupby_s $gb s"
if [ "$dask" = 1 ]; then
  dask_run() {
    for _ in $(seq "$runs"); do
      rm -rf "$out/dask"
      /usr/bin/python3 - "$1" "$data" "$out/dask" <<'PY'
import sys, time, dask, dask.dataframe as dd, numpy as np
dask.config.set(scheduler="threads", num_workers=2)
mode, pat, out = sys.argv[1:4]
t = time.time()
d = dd.read_csv(pat, parse_dates=["ts"], blocksize=64 << 20)
if mode == "parse": d.amount.sum().compute()
elif mode == "groupby": d.groupby("category").amount.mean().compute()
else:
    d = d[d.amount > 100]; d = d.assign(log_amount=np.log(d.amount)); d.to_csv(out + "/part-*.csv", index=False)
print(time.time() - t)
PY
    done | median
  }
  dparse=$(dask_run parse); detl=$(dask_run etl); dgb=$(dask_run groupby)
  awk -v b="$bytes" -v s="$dparse" 'BEGIN {printf "dask_csv_parse_gbps %.3f GB/s\n", b/s/1e9}'
  echo "dask_etl_s $detl s (to CSV: Debian's dask has no Parquet engine)"
  echo "dask_groupby_s $dgb s"
  awk -v a="$dparse" -v b="$parse" 'BEGIN {printf "ratio_csv_parse %.2f x\n", a/b}'
  awk -v a="$detl" -v b="$etl" 'BEGIN {printf "ratio_etl %.2f x\n", a/b}'
  awk -v a="$dgb" -v b="$gb" 'BEGIN {printf "ratio_groupby %.2f x\n", a/b}'
fi
