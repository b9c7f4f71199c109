// DuckDB anchor for bench/frame.sh: runs one frame benchmark query in DuckDB (npm @duckdb/node-api,
// installed by tests/parquet/setup-oracles.sh into $DRAY_NPM_DIR) with 2 threads and prints seconds.
//   node frame_duckdb.mjs parse|etl|groupby|pqread|join GLOB [OUTDIR]
import { createRequire } from 'node:module'

const require = createRequire(process.env.DRAY_NPM_DIR + '/node_modules/')
const { DuckDBInstance } = await import(require.resolve('@duckdb/node-api'))
const [mode, glob, out] = process.argv.slice(2)
const inst = await DuckDBInstance.create(':memory:', { threads: '2' })
const con = await inst.connect()
const csv = `read_csv('${glob}')`
const queries = {
  parse: `SELECT sum(amount) FROM ${csv}`,
  groupby: `SELECT category, avg(amount) FROM ${csv} GROUP BY category`,
  etl: `COPY (SELECT *, ln(amount) AS log_amount FROM ${csv} WHERE amount > 100) TO '${out}' ` +
       `(FORMAT parquet, COMPRESSION snappy, PER_THREAD_OUTPUT true)`,
  pqread: `SELECT sum(amount) FROM read_parquet('${glob}')`,
  join: `SELECT count(*) FROM ${csv} a JOIN (SELECT id FROM ${csv} WHERE id % 10 = 0) b ON a.id = b.id`,
}
if (!queries[mode]) { console.error(`unknown mode ${mode}`); process.exit(2) }
const t = performance.now()
await con.run(queries[mode])
console.log(((performance.now() - t) / 1000).toFixed(4))
