#!/usr/bin/env bash
# Parquet benchmark: write and read throughput of a ~120 MB (in-memory Arrow bytes) table of the frame
# ETL's shape, ours (build/bin/bench_parquet) and DuckDB (npm @duckdb/node-api) on the same table in the
# same run, median of --runs. Prints `name value unit` lines, ratios = ours / DuckDB.
#   bench/run parquet [--rows N] [--runs R] [--codecs "snappy zstd"] [--threads T]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=2500000 runs=3 codecs="snappy zstd" threads=2
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --codecs) codecs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    *) echo "bench/parquet.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
build=${BUILD:-build}
[ -x "$build/bin/bench_parquet" ] || { echo "build first: make build" >&2; exit 2; }
npm_dir=$(tests/parquet/setup-oracles.sh "$build") || npm_dir=""
work=$(mktemp -d "${TMPDIR:-/tmp}/dray-bench-parquet.XXXXXX")
trap 'rm -rf "$work"' EXIT

for codec in $codecs; do
  ours=$("$build/bin/bench_parquet" --rows "$rows" --runs "$runs" --codec "$codec" --threads "$threads" --out "$work")
  echo "$ours"
  [ -n "$npm_dir" ] || { echo "# DuckDB unavailable (npm unreachable): no anchor" >&2; continue; }
  mb=$(awk '$1 == "parquet_table_mb" {print $2}' <<<"$ours")
  # DuckDB: load the same table from our file (not timed), then time COPY TO parquet and reading back.
  duck=$(DRAY_NPM_DIR="$npm_dir" SRC="$work/dray.parquet" DST="$work/duck.parquet" CODEC="$codec" RUNS="$runs" \
    MB="$mb" THREADS="$threads" node --input-type=module -e '
import { createRequire } from "node:module"
const require = createRequire(process.env.DRAY_NPM_DIR + "/node_modules/")
const { DuckDBInstance } = await import(require.resolve("@duckdb/node-api"))
const db = await DuckDBInstance.create(":memory:", { threads: process.env.THREADS })
const c = await db.connect()
const { SRC, DST, CODEC, RUNS, MB } = process.env
await c.run(`CREATE TABLE t AS SELECT * FROM read_parquet(\x27${SRC}\x27)`)
const med = (v) => v.sort((a, b) => a - b)[v.length >> 1]
const tw = [], tr = []
const codec = CODEC === "none" ? "uncompressed" : CODEC
for (let i = 0; i < Number(RUNS); i++) {
  let t0 = performance.now()
  await c.run(`COPY t TO \x27${DST}\x27 (FORMAT parquet, COMPRESSION ${codec}, ROW_GROUP_SIZE 524288)`)
  tw.push((performance.now() - t0) / 1000)
}
for (let i = 0; i < Number(RUNS); i++) {
  let t0 = performance.now()
  await c.run(`CREATE OR REPLACE TABLE r AS SELECT * FROM read_parquet(\x27${DST}\x27)`)
  tr.push((performance.now() - t0) / 1000)
}
console.log(`duckdb_parquet_write_${CODEC}_mbps ${(MB / med(tw)).toFixed(1)} MB/s`)
console.log(`duckdb_parquet_read_${CODEC}_mbps ${(MB / med(tr)).toFixed(1)} MB/s`)
')
  echo "$duck"
  awk -v c="$codec" -v a="$(stat -c %s "$work/dray.parquet")" -v b="$(stat -c %s "$work/duck.parquet")" \
    'BEGIN { printf "parquet_file_%s_mb %.1f MB\nduckdb_parquet_file_%s_mb %.1f MB\n", c, a / 1e6, c, b / 1e6 }'
  awk -v c="$codec" -v t="$threads" '
    $1 == "parquet_write_" c "_mbps" { ow = $2 } $1 == "parquet_read_" c "_" t "threads_mbps" { orr = $2 }
    $1 == "duckdb_parquet_write_" c "_mbps" { dw = $2 } $1 == "duckdb_parquet_read_" c "_mbps" { dr = $2 }
    END { printf "ratio_parquet_write_%s %.2f x\nratio_parquet_read_%s %.2f x\n", c, ow / dw, c, orr / dr }
  ' <<<"$ours
$duck"
done
