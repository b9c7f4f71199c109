/* Parquet cross-checked with independent implementations (tests/parquet/oracle.mjs): files we write are
 * read by DuckDB and hyparquet, for every type, with nulls, every codec; files DuckDB writes (every
 * type, nulls, every codec, dictionary on/off, format v1 and v2) are read by ours. The schema's physical,
 * converted and logical types and the statistics are checked through DuckDB's parquet_schema() and
 * parquet_metadata(). Skipped with a message when npm is unreachable. */
#include "pq_test.h"

static const char *const codec_names[] = {"uncompressed", "snappy", "gzip", "zstd", "lz4_raw"};

static void write_ours(const char *path, dray_parquet_codec codec, bool dict, int64_t rows,
                       int64_t rg, int null_every, char **rendered)
{
    struct ArrowSchema *s;
    struct ArrowArray *b;
    pqt_make(rows, (uint64_t)codec * 31 + 7, null_every, 25, &s, &b);
    dray_parquet_write_opts o;
    dray_parquet_write_opts_init(&o);
    o.codec = codec;
    o.dictionary = dict;
    o.row_group_rows = rg;
    o.page_bytes = 2048;
    pqt_write(path, s, b, &o);
    pqt_text t = {0};
    pqt_render_header(&t, s);
    pqt_render_rows(&t, s, b, 0, b->length);
    *rendered = t.s;
    pqt_free(s, b);
}

/* pqt_read_text: the contents of a text file the oracle wrote (caller frees). */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        TEST_FAIL_("oracle output %s missing", path);
    pqt_text t = {0};
    pqt_printf(&t, "%s", "");
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        pqt_printf(&t, "%.*s", (int)n, buf);
    fclose(f);
    unlink(path);
    return t.s;
}

TEST(ours_read_by_duckdb_and_hyparquet)
{
    if (!pqt_npm())
        return;
    /* every codec with dictionary off and on, then an empty file and one of only nulls */
    enum { NC = (DRAY_PARQUET_LZ4_RAW + 1) * 2, N = NC + 2 };
    char *paths[N], *want[N];
    pqt_text args = {0};
    pqt_printf(&args, "dump-files");
    for (int i = 0; i < N; i++) {
        char name[64];
        snprintf(name, sizeof(name), "ours-%d.parquet", i);
        paths[i] = pqt_tmp(name);
        if (i < NC)
            write_ours(paths[i], (dray_parquet_codec)(i / 2), i % 2, 1200, 500, 3 + i / 2, &want[i]);
        else
            write_ours(paths[i], DRAY_PARQUET_SNAPPY, true, i == NC ? 0 : 300, 128, 1, &want[i]);
        pqt_printf(&args, " '%s'", paths[i]);
    }
    free(pqt_oracle(args.s)); /* one node process reads them all */
    for (int i = 0; i < N; i++) {
        static const char *const readers[2] = {"duckdb", "hyparquet"};
        for (int k = 0; k < 2; k++) {
            char out[4200], what[128];
            snprintf(out, sizeof(out), "%s.%s.txt", paths[i], readers[k]);
            char *got = read_text(out);
            snprintf(what, sizeof(what), "%s reading ours (%s, dictionary %d)", readers[k],
                     i < NC ? codec_names[i / 2] : i == NC ? "empty file" : "all nulls", i % 2);
            pqt_same_text(want[i], got, what);
            free(got);
        }
        free(want[i]);
        unlink(paths[i]);
        free(paths[i]);
    }
    free(args.s);
}

/* Physical, converted and logical types as DuckDB sees them. */
TEST(ours_schema_types)
{
    if (!pqt_npm())
        return;
    char *path = pqt_tmp("types.parquet");
    char *want;
    write_ours(path, DRAY_PARQUET_SNAPPY, true, 10, 10, 0, &want);
    char args[4200];
    snprintf(args, sizeof(args), "duckdb-schema '%s'", path);
    char *got = pqt_oracle(args);
    /* DuckDB prints the i8 bitWidth as a raw character: 8 -> \x08, 16 -> \x10, 32 -> ' ', 64 -> '@' */
    static const char expect[] =
        "i8\tINT32\tINT_8\tIntType(bitWidth=\x08, isSigned=1)\n"
        "i16\tINT32\tINT_16\tIntType(bitWidth=\x10, isSigned=1)\n"
        "i32\tINT32\tINT_32\tIntType(bitWidth= , isSigned=1)\n"
        "i64\tINT64\tINT_64\tIntType(bitWidth=@, isSigned=1)\n"
        "u8\tINT32\tUINT_8\tIntType(bitWidth=\x08, isSigned=0)\n"
        "u16\tINT32\tUINT_16\tIntType(bitWidth=\x10, isSigned=0)\n"
        "u32\tINT32\tUINT_32\tIntType(bitWidth= , isSigned=0)\n"
        "u64\tINT64\tUINT_64\tIntType(bitWidth=@, isSigned=0)\n"
        "f32\tFLOAT\tN\tN\n"
        "f64\tDOUBLE\tN\tN\n"
        "b\tBOOLEAN\tN\tN\n"
        "str\tBYTE_ARRAY\tUTF8\tStringType()\n"
        "d\tINT32\tDATE\tDateType()\n"
        "ts_s\tINT64\tN\tTimestampType(isAdjustedToUTC=0, unit=TimeUnit(MILLIS=MilliSeconds(), MICROS=<null>, NANOS=<null>))\n"
        "ts_ms\tINT64\tN\tTimestampType(isAdjustedToUTC=0, unit=TimeUnit(MILLIS=MilliSeconds(), MICROS=<null>, NANOS=<null>))\n"
        "ts_us\tINT64\tN\tTimestampType(isAdjustedToUTC=0, unit=TimeUnit(MILLIS=<null>, MICROS=MicroSeconds(), NANOS=<null>))\n"
        "ts_ns\tINT64\tN\tTimestampType(isAdjustedToUTC=0, unit=TimeUnit(MILLIS=<null>, MICROS=<null>, NANOS=NanoSeconds()))\n"
        "ts_tz\tINT64\tTIMESTAMP_MICROS\tTimestampType(isAdjustedToUTC=1, unit=TimeUnit(MILLIS=<null>, MICROS=MicroSeconds(), NANOS=<null>))\n"
        "cat\tBYTE_ARRAY\tUTF8\tStringType()\n"
        "bin\tBYTE_ARRAY\tN\tN\n";
    pqt_same_text(expect, got, "schema types seen by DuckDB");
    free(got);
    free(want);
    unlink(path);
    free(path);
}

/* Our statistics, decoded by DuckDB, equal DuckDB's min/max/null count of the data it reads. */
TEST(ours_statistics_by_duckdb)
{
    if (!pqt_npm())
        return;
    char *path = pqt_tmp("ostats.parquet");
    char *want;
    write_ours(path, DRAY_PARQUET_ZSTD, true, 900, 400, 5, &want);
    char args[4200];
    snprintf(args, sizeof(args), "duckdb-stats-check '%s' 400", path);
    char *got = pqt_oracle(args);
    ASSERT_STREQ(got, "ok\n");
    free(got);
    free(want);
    unlink(path);
    free(path);
}

/* Files written by DuckDB, read by ours. */
TEST(duckdb_files_read_by_ours)
{
    if (!pqt_npm())
        return;
    static const char *const versions[] = {"v1", "v2"};
    enum { N = 5 * 2 * 2 };
    char *paths[N];
    pqt_text args = {0};
    pqt_printf(&args, "duckdb-write-many");
    for (int i = 0; i < N; i++) {
        char name[64];
        snprintf(name, sizeof(name), "duck-%d.parquet", i);
        paths[i] = pqt_tmp(name);
        pqt_printf(&args, " '%s,%s,%d,%s,700,256'", paths[i], codec_names[i / 4], i / 2 % 2,
                   versions[i % 2]);
    }
    free(pqt_oracle(args.s));
    for (int i = 0; i < N; i++) {
        char out[4200], what[128];
        snprintf(out, sizeof(out), "%s.want.txt", paths[i]);
        char *want = read_text(out);
        char *got = pqt_render_file(paths[i], NULL, 0);
        snprintf(what, sizeof(what), "ours reading DuckDB's (%s, dictionary %d, %s)",
                 codec_names[i / 4], i / 2 % 2, versions[i % 2]);
        pqt_same_text(want, got, what);
        free(want);
        free(got);
        unlink(paths[i]);
        free(paths[i]);
    }
    free(args.s);
}

RUN_TESTS(T_(ours_read_by_duckdb_and_hyparquet), T_(ours_schema_types), T_(ours_statistics_by_duckdb),
          T_(duckdb_files_read_by_ours))
