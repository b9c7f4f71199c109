#!/usr/bin/env bash
# Frame benchmarks: `bench/run frame [--rows N] [--data GLOB] [--dask] [--duckdb] [--runs K]`.
# Generates ~1 GB of the seed's CSV in 8 files under bench/data (once) unless --data is given, then
# prints `name value unit` lines, medians of K runs (default 3). --dask runs the same work with
# dask.dataframe (Debian's python3-dask, 2 threads) and --duckdb with DuckDB (npm @duckdb/node-api,
# 2 threads) in the same run, with ratio_* lines (anchor time / ours). bench_frame keeps freed memory
# in its process (mallopt; DRAY_BENCH_MALLOC=default keeps glibc's defaults): see docs/frame.md.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
rows=24000000; data=""; dask=0; duck=0; runs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows=$2; shift 2;;
    --data) data=$2; shift 2;;
    --dask) dask=1; shift;;
    --duckdb) duck=1; shift;;
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
ours() { # ours MODE GLOB: median seconds of bench_frame
  for _ in $(seq "$runs"); do rm -rf "$out/o"; "$build/bin/bench_frame" "$1" "$2" "$out/o" | cut -d' ' -f1; done | median
}
gbps() { awk -v b="$1" -v s="$2" 'BEGIN {printf "%.3f", b/s/1e9}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }

npm_dir=""
[ "$duck" = 1 ] && npm_dir=$(bash tests/parquet/setup-oracles.sh "$build")
duck_run() { for _ in $(seq "$runs"); do rm -rf "$out/d"; DRAY_NPM_DIR=$npm_dir node bench/frame_duckdb.mjs "$1" "$2" "$out/d"; done | median; }
# each metric runs dray then DuckDB back to back, so both see the same machine load
both() { # both VAR MODE GLOB
  eval "$1=\$(ours $2 \"$3\")"
  [ "$duck" = 1 ] && eval "d$1=\$(duck_run $2 \"$3\")"
  return 0
}
both parse parse "$data"; both etl etl "$data"; both gb groupby "$data"; both join join "$data"
# the Parquet the ETL writes, kept for the read benchmark
rm -rf "$out/pq"; "$build/bin/bench_frame" etl "$data" "$out/pq" >/dev/null
pqbytes=$(cat "$out"/pq/*.parquet | wc -c)
both pq pqread "$out/pq/*.parquet"
echo "frame_csv_parse_gbps $(gbps "$bytes" "$parse") GB/s"
echo "frame_etl_s $etl s"
echo "frame_groupby_s $gb s"
echo "frame_parquet_read_gbps $(gbps "$pqbytes" "$pq") GB/s"
echo "frame_join_s $join s"
# sort of the whole data set with its shuffle spilled to disk in 16 MiB partitions (the runtime's
# limit is set to 256 MB but the core does not enforce it: the frame's spilling bounds the memory)
rm -rf "$out/o" "$out/spill"
rss=$( { DRAY_MEMORY_LIMIT=$((256 << 20)) DRAY_SPILL_DIR="$out/spill" DRAY_CSV_BLOCK=$((16 << 20)) \
  /usr/bin/time -f "%M %e" "$build/bin/bench_frame" sort "$data" "$out/o" >/dev/null; } 2>&1 | tail -1)
echo "frame_out_of_core_peak_rss_mb $(( ${rss% *} / 1024 )) MB (sort took ${rss#* } s)"
rm -rf "$out/o" "$out/spill"

if [ "$duck" = 1 ]; then
  echo "duckdb_csv_parse_gbps $(gbps "$bytes" "$dparse") GB/s"
  echo "duckdb_etl_s $detl s"
  echo "duckdb_groupby_s $dgb s"
  echo "duckdb_parquet_read_gbps $(gbps "$pqbytes" "$dpq") GB/s"
  echo "duckdb_join_s $djoin s"
  echo "ratio_duckdb_csv_parse $(ratio "$dparse" "$parse") x"
  echo "ratio_duckdb_etl $(ratio "$detl" "$etl") x"
  echo "ratio_duckdb_groupby $(ratio "$dgb" "$gb") x"
  echo "ratio_duckdb_parquet_read $(ratio "$dpq" "$pq") x"
  echo "ratio_duckdb_join $(ratio "$djoin" "$join") x"
fi

if [ "$dask" = 1 ]; then
  dask_run() {
    for _ in $(seq "$runs"); do
      rm -rf "$out/k"
      /usr/bin/python3 - "$1" "$data" "$out/k" <<'PY'
import sys, time, dask, dask.dataframe as dd, numpy as np
dask.config.set(scheduler="threads", num_workers=2)
mode, pat, out = sys.argv[1:4]
t = time.time()
d = dd.read_csv(pat, parse_dates=["ts"], blocksize=64 << 20)
if mode == "parse": d.amount.sum().compute()
elif mode == "groupby": d.groupby("category").amount.mean().compute()
elif mode == "join": print(len(d.merge(d[d.id % 10 == 0][["id"]], on="id")), file=sys.stderr)
else:
    d = d[d.amount > 100]; d = d.assign(log_amount=np.log(d.amount)); d.to_csv(out + "/part-*.csv", index=False)
print(time.time() - t)
PY
    done | median
  }
  kparse=$(dask_run parse); ketl=$(dask_run etl); kgb=$(dask_run groupby)
  echo "dask_csv_parse_gbps $(gbps "$bytes" "$kparse") GB/s"
  echo "dask_etl_s $ketl s (to CSV: Debian's dask has no Parquet engine)"
  echo "dask_groupby_s $kgb s"
  echo "ratio_dask_csv_parse $(ratio "$kparse" "$parse") x"
  echo "ratio_dask_etl $(ratio "$ketl" "$etl") x"
  echo "ratio_dask_groupby $(ratio "$kgb" "$gb") x"
fi
