// Independent Parquet implementations as test oracles for the parquet module: DuckDB (@duckdb/node-api)
// and hyparquet (+ hyparquet-compressors). Prints tables in a canonical text form the C tests compare
// with their own rendering (tests/parquet/pq_test.h): a header line of column names, then one line per
// row, tab-separated; N = null, integers in decimal, booleans 0/1, float32/float64 as f/d + hex of the
// IEEE bits (nan for any NaN), strings as s + hex of their UTF-8 bytes, dates as days since 1970,
// timestamps as nanoseconds since 1970.
//
//   node oracle.mjs duckdb-dump FILE              the table as DuckDB reads it
//   node oracle.mjs hyparquet-dump FILE           the table as hyparquet reads it
//   node oracle.mjs duckdb-schema FILE            name, type, converted and logical type per column
//   node oracle.mjs duckdb-stats-check FILE RG    "ok" when the statistics match the data (RG rows/group)
//   node oracle.mjs duckdb-stats FILE             row group, column, min, max, null count per chunk
//   node oracle.mjs duckdb-write OUT CODEC DICT VERSION ROWS RGSIZE   writes the test table, prints it
//   node oracle.mjs dump-files FILE...            writes FILE.duckdb.txt and FILE.hyparquet.txt for each
//   node oracle.mjs duckdb-write-many SPEC...     SPEC = OUT,CODEC,DICT,VERSION,ROWS,RGSIZE: writes OUT
//                                                 and OUT.want.txt (DuckDB's reading) for each
import { createRequire } from 'node:module'
import { readFileSync, writeFileSync } from 'node:fs'

const require = createRequire(process.env.DRAY_NPM_DIR + '/node_modules/')
const duck = await import(require.resolve('@duckdb/node-api'))
const hyp = await import(require.resolve('hyparquet'))
const comp = await import(require.resolve('hyparquet-compressors'))

const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer)
const f64 = new Float64Array(1), u64 = new BigUint64Array(f64.buffer)
function floatBits(x, single) {
  if (x === null || x === undefined) return 'N'
  if (Number.isNaN(x)) return 'nan'
  if (single) { f32[0] = x; return 'f' + u32[0].toString(16) }
  f64[0] = x
  return 'd' + u64[0].toString(16)
}
const hex = (bytes) => Buffer.from(bytes).toString('hex')

async function connect() {
  const db = await duck.DuckDBInstance.create(':memory:')
  return db.connect()
}
const q = (s) => "'" + s.replace(/'/g, "''") + "'"

async function duckdbDump(conn, file) {
  const desc = (await conn.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${q(file)})`)).getRows()
  const exprs = [], kinds = []
  for (const [name, type] of desc) {
    const c = '"' + name.replace(/"/g, '""') + '"'
    if (type.startsWith('TIMESTAMP')) exprs.push(`CAST(epoch_ns(${c}) AS VARCHAR)`), kinds.push('s')
    else if (type === 'DATE') exprs.push(`CAST(${c} - DATE '1970-01-01' AS VARCHAR)`), kinds.push('s')
    else if (type === 'VARCHAR') exprs.push(`'s' || lower(hex(encode(${c})))`), kinds.push('s')
    else if (type === 'BLOB') exprs.push(`'s' || lower(hex(${c}))`), kinds.push('s')
    else if (type === 'BOOLEAN') exprs.push(`CAST(CAST(${c} AS INTEGER) AS VARCHAR)`), kinds.push('s')
    else if (type === 'FLOAT') exprs.push(c), kinds.push('f')
    else if (type === 'DOUBLE') exprs.push(c), kinds.push('d')
    else exprs.push(`CAST(${c} AS VARCHAR)`), kinds.push('s')
  }
  const rows = (await conn.runAndReadAll(`SELECT ${exprs.join(', ')} FROM read_parquet(${q(file)})`)).getRows()
  const out = [desc.map((d) => d[0]).join('\t')]
  for (const r of rows) {
    out.push(r.map((v, i) => (kinds[i] === 's' ? (v === null ? 'N' : String(v)) : floatBits(v, kinds[i] === 'f'))).join('\t'))
  }
  return out.join('\n') + '\n'
}

async function hyparquetDump(file) {
  const buf = readFileSync(file)
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)
  const meta = hyp.parquetMetadata(ab)
  const leaves = meta.schema.slice(1)
  const parsers = {
    timestampFromMilliseconds: (x) => BigInt(x) * 1000000n,
    timestampFromMicroseconds: (x) => BigInt(x) * 1000n,
    timestampFromNanoseconds: (x) => BigInt(x),
    dateFromDays: (d) => ({ days: d }),
    stringFromBytes: (b) => (b ? { bytes: b } : b),
  }
  const rows = await hyp.parquetReadObjects({ file: ab, compressors: comp.compressors, parsers, rowFormat: 'array' })
  const out = [leaves.map((l) => l.name).join('\t')]
  for (const r of rows) {
    out.push(leaves.map((l, i) => {
      const v = Array.isArray(r) ? r[i] : r[l.name]
      if (v === null || v === undefined) return 'N'
      if (l.type === 'FLOAT' || l.type === 'DOUBLE') return floatBits(v, l.type === 'FLOAT')
      if (l.type === 'BOOLEAN') return v ? '1' : '0'
      if (typeof v === 'object' && 'days' in v) return String(v.days)
      if (typeof v === 'object' && 'bytes' in v) return 's' + hex(v.bytes)
      if (v instanceof Uint8Array) return 's' + hex(v)
      return String(v)
    }).join('\t'))
  }
  return out.join('\n') + '\n'
}

async function duckdbSchema(conn, file) {
  const rows = (await conn.runAndReadAll(
    `SELECT name, type, converted_type, logical_type FROM parquet_schema(${q(file)}) WHERE type IS NOT NULL`)).getRows()
  return rows.map((r) => r.map((v) => (v === null ? 'N' : String(v))).join('\t')).join('\n') + '\n'
}

async function duckdbStats(conn, file) {
  const rows = (await conn.runAndReadAll(
    `SELECT row_group_id, path_in_schema, stats_min_value, stats_max_value, stats_null_count, encodings, compression
     FROM parquet_metadata(${q(file)}) ORDER BY row_group_id, column_id`)).getRows()
  return rows.map((r) => r.map((v) => (v === null ? 'N' : String(v))).join('\t')).join('\n') + '\n'
}

// Checks the statistics in the file against min/max/null counts DuckDB computes from the data itself,
// row group g holding rows [g*rg, (g+1)*rg). Prints "ok" or the first mismatch.
async function duckdbStatsCheck(conn, file, rg) {
  const desc = (await conn.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${q(file)})`)).getRows()
  const meta = (await conn.runAndReadAll(
    `SELECT row_group_id, column_id, stats_min_value, stats_max_value, stats_null_count
     FROM parquet_metadata(${q(file)}) ORDER BY row_group_id, column_id`)).getRows()
  for (const [g, col, smin, smax, snull] of meta) {
    const [name, type] = desc[Number(col)]
    const c = '"' + name + '"'
    const keep = type === 'FLOAT' || type === 'DOUBLE' ? `${c} IS NOT NULL AND NOT isnan(${c})` : `${c} IS NOT NULL`
    const [[lo, hi, nulls]] = (await conn.runAndReadAll(
      `SELECT CAST(min(${c}) FILTER (WHERE ${keep}) AS VARCHAR), CAST(max(${c}) FILTER (WHERE ${keep}) AS VARCHAR),
              count(*) - count(${c})
       FROM read_parquet(${q(file)}, file_row_number = true) WHERE file_row_number // ${rg} = ${g}`)).getRows()
    const norm = (v) => (v === null ? null : String(v))
    if (norm(smin) !== norm(lo) || norm(smax) !== norm(hi) || BigInt(snull) !== BigInt(nulls))
      return `row group ${g} column ${name}: stats min=${smin} max=${smax} nulls=${snull}; data min=${lo} max=${hi} nulls=${nulls}\n`
  }
  return 'ok\n'
}

// The test table DuckDB writes: every type the C side reads, nulls in every column, edge values.
function testTableSql(rows) {
  const nul = (k, e) => `CASE WHEN i % ${k} = 3 THEN NULL ELSE ${e} END`
  return `SELECT
    ${nul(7, "CAST((i % 256) - 128 AS TINYINT)")} AS i8,
    ${nul(5, "CAST((i * 37) % 65536 - 32768 AS SMALLINT)")} AS i16,
    ${nul(6, "CAST(CASE WHEN i = 0 THEN -2147483648 WHEN i = 1 THEN 2147483647 ELSE i * 7919 - 100000 END AS INTEGER)")} AS i32,
    ${nul(9, "CAST(CASE WHEN i = 0 THEN -9223372036854775808 WHEN i = 1 THEN 9223372036854775807 ELSE i * 1000003 - 5000000 END AS BIGINT)")} AS i64,
    ${nul(8, "CAST(i % 256 AS UTINYINT)")} AS u8,
    ${nul(8, "CAST((i * 101) % 65536 AS USMALLINT)")} AS u16,
    ${nul(8, "CAST(CASE WHEN i = 2 THEN 4294967295 ELSE i * 65537 END AS UINTEGER)")} AS u32,
    ${nul(8, "CAST(CASE WHEN i = 2 THEN 18446744073709551615 ELSE i * 4294967311 END AS UBIGINT)")} AS u64,
    ${nul(4, "CAST(CASE WHEN i = 5 THEN CAST('nan' AS FLOAT) WHEN i = 6 THEN CAST('-inf' AS FLOAT) ELSE CAST((i - 50) / 8.0 AS FLOAT) END AS FLOAT)")} AS f32,
    ${nul(4, "CAST(CASE WHEN i = 5 THEN CAST('nan' AS DOUBLE) WHEN i = 6 THEN CAST('inf' AS DOUBLE) ELSE (i - 50) * 1.1::DOUBLE END AS DOUBLE)")} AS f64,
    ${nul(3, "i % 3 = 1")} AS b,
    ${nul(10, "CASE WHEN i % 11 = 0 THEN '' WHEN i % 13 = 0 THEN 'héllo ✓ ' || i ELSE 'cat' || (i % 17) END")} AS s,
    ${nul(12, "DATE '1970-01-01' + CAST(i * 37 - 9000 AS INTEGER)")} AS d,
    ${nul(7, "make_timestamp(CAST(i * 1000003 - 7000000 AS BIGINT) * 1000)")} AS ts_us,
    ${nul(7, "CAST(make_timestamp(CAST(i * 1000003 AS BIGINT) * 1000) AS TIMESTAMP_MS)")} AS ts_ms,
    ${nul(7, "make_timestamp_ns(CAST(i AS BIGINT) * 1000000007 - 3)")} AS ts_ns,
    ${nul(7, "CAST(make_timestamp(CAST(i AS BIGINT) * 3600000000) AS TIMESTAMP_S)")} AS ts_s,
    ${nul(7, "CAST(make_timestamp(CAST(i AS BIGINT) * 61000000) AS TIMESTAMPTZ)")} AS ts_tz
  FROM range(${rows}) t(i)`
}

async function duckdbWrite(conn, out, codec, dict, version, rows, rgsize) {
  const opts = [`FORMAT parquet`, `COMPRESSION ${codec}`, `ROW_GROUP_SIZE ${rgsize}`, `PARQUET_VERSION ${version}`]
  if (dict === '0') opts.push('DICTIONARY_SIZE_LIMIT 0')
  await conn.run(`COPY (${testTableSql(Number(rows))}) TO ${q(out)} (${opts.join(', ')})`)
  return duckdbDump(conn, out)
}

const [cmd, ...args] = process.argv.slice(2)
const conn = cmd.startsWith('duckdb') || cmd === 'dump-files' ? await connect() : null
if (conn) await conn.run("SET TimeZone = 'UTC'")
switch (cmd) {
  case 'duckdb-dump': process.stdout.write(await duckdbDump(conn, args[0])); break
  case 'dump-files':
    for (const f of args) {
      writeFileSync(f + '.duckdb.txt', await duckdbDump(conn, f))
      writeFileSync(f + '.hyparquet.txt', await hyparquetDump(f))
    }
    break
  case 'hyparquet-dump': process.stdout.write(await hyparquetDump(args[0])); break
  case 'duckdb-schema': process.stdout.write(await duckdbSchema(conn, args[0])); break
  case 'duckdb-stats-check': process.stdout.write(await duckdbStatsCheck(conn, args[0], Number(args[1]))); break
  case 'duckdb-stats': process.stdout.write(await duckdbStats(conn, args[0])); break
  case 'duckdb-write': process.stdout.write(await duckdbWrite(conn, ...args)); break
  case 'duckdb-write-many':
    for (const spec of args) {
      const [out, ...rest] = spec.split(',')
      writeFileSync(out + '.want.txt', await duckdbWrite(conn, out, ...rest))
    }
    break
  default:
    process.stderr.write(`oracle.mjs: unknown command ${cmd}\n`)
    process.exit(2)
}
