/* Frame benchmarks, one measurement per run: `bench_frame MODE GLOB [OUTDIR]` prints the seconds the
 * operation took on the embedded runtime and a check value (bench/frame.sh takes medians). Modes:
 * parse (read_csv + sum amount), groupby (mean amount by category), etl (filter, log, to_parquet
 * snappy into OUTDIR), pqread (read_parquet GLOB + sum amount), join (GLOB's ids against every
 * tenth id), sort (by amount into Parquet files in OUTDIR; DRAY_SPILL_DIR spills the shuffle,
 * DRAY_MEMORY_LIMIT sets the runtime's limit). DRAY_CSV_BLOCK overrides the CSV block size. */
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dray/frame.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* sum8: d[0..8) summed in a fixed pairwise order (four independent chains across calls). */
static inline void sum8(double acc[4], const double *d)
{
    acc[0] += d[0] + d[4];
    acc[1] += d[1] + d[5];
    acc[2] += d[2] + d[6];
    acc[3] += d[3] + d[7];
}

/* sum_amount: a one-row table with the partition's sum of amount (nulls skipped). */
static dray_status sum_amount(const dray_table *in, void *arg, dray_table **out)
{
    (void)arg;
    int c = dray_table_find(in, "amount");
    double acc[4] = {0, 0, 0, 0}, tail = 0;
    if (c >= 0) {
        dray_column *am = dray_table_column(in, (size_t)c);
        const double *d = dray_column_data(am);
        const uint8_t *v = dray_column_validity(am);
        int64_t n = dray_table_num_rows(in), i = 0;
        for (; i + 8 <= n; i += 8) { /* eight rows a validity byte: all valid is the common case */
            uint8_t m = v ? v[i >> 3] : 0xff;
            if (m == 0xff) {
                sum8(acc, d + i);
            } else {
                for (int k = 0; k < 8; k++)
                    tail += m >> k & 1 ? d[i + k] : 0.0;
            }
        }
        for (; i < n; i++)
            if (!v || (v[i >> 3] >> (i & 7) & 1))
                tail += d[i];
    }
    double s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + tail;
    dray_column *col;
    dray_status st = dray_column_from_values(DRAY_DT_FLOAT64, 0, &s, NULL, 1, &col);
    if (st)
        return st;
    const char *name = "sum";
    st = dray_table_create(&name, &col, 1, out);
    dray_column_release(col);
    return st;
}

int main(int argc, char **argv)
{
    /* Keep freed memory in the process (DRAY_BENCH_MALLOC=default leaves glibc's defaults): glibc
     * otherwise returns each partition's large buffers to the kernel when they are freed, and the
     * next partition pays a page fault per 4 KiB to get them back (about a quarter of the CSV
     * parse's CPU time on this machine). */
    const char *mc = getenv("DRAY_BENCH_MALLOC");
    if (!mc || strcmp(mc, "default")) {
        mallopt(M_MMAP_THRESHOLD, 256 << 20);
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
    }
    if (argc < 3) {
        fprintf(stderr, "usage: bench_frame parse|groupby|etl GLOB [OUTDIR]\n");
        return 2;
    }
    dray_config cfg;
    dray_config_init(&cfg);
    const char *limit = getenv("DRAY_MEMORY_LIMIT");
    if (limit)
        cfg.memory_limit = (size_t)strtoull(limit, NULL, 10);
    dray_runtime *rt;
    if (dray_init(&cfg, &rt))
        return 1;
    dray_frame *f = NULL, *g = NULL, *h = NULL;
    dray_table *t = NULL;
    double t0 = now(), check = 0;
    bool pq = !strcmp(argv[1], "pqread");
    const char *amount = "amount";
    dray_parquet_read_opts po = {&amount, 1, NULL}; /* projection: only the summed column */
    dray_csv_opts co;
    dray_csv_opts_init(&co);
    if (getenv("DRAY_CSV_BLOCK"))
        co.block_size = (size_t)strtoull(getenv("DRAY_CSV_BLOCK"), NULL, 10);
    dray_status st = pq ? dray_frame_read_parquet(rt, argv[2], &po, &f) : dray_frame_read_csv(rt, argv[2], &co, &f);
    if (!st && (pq || !strcmp(argv[1], "parse"))) {
        if (!(st = dray_frame_map_partitions(f, sum_amount, NULL, NULL, &g)) &&
            !(st = dray_frame_compute(g, &t)))
            for (int64_t i = 0; i < dray_table_num_rows(t); i++)
                check += dray_column_get_f64(dray_table_column(t, 0), i);
    } else if (!st && !strcmp(argv[1], "groupby")) {
        const char *key = "category";
        dray_agg_spec a = {"amount", DRAY_AGG_MEAN, NULL};
        if (!(st = dray_frame_groupby(f, &key, 1, &a, 1, &t)))
            check = (double)dray_table_num_rows(t);
    } else if (!st && !strcmp(argv[1], "etl") && argc > 3) {
        if (!(st = dray_frame_filter(f, "amount > 100", &g)) &&
            !(st = dray_frame_assign(g, "log_amount", "log(amount)", &h)))
            st = dray_frame_to_parquet(h, argv[3], NULL);
    } else if (!st && !strcmp(argv[1], "join")) {
        const char *on = "id";
        dray_frame *j = NULL;
        if (!(st = dray_frame_filter(f, "id % 10 == 0", &g)) &&
            !(st = dray_frame_join(f, g, &on, &on, 1, DRAY_JOIN_INNER, &j)))
            st = dray_frame_count(j, &(int64_t){0});
        dray_frame_destroy(j);
    } else if (!st && !strcmp(argv[1], "sort") && argc > 3) {
        /* out of core: with DRAY_SPILL_DIR the shuffle's buckets go to disk, and the sorted
         * partitions are written out (to Parquet in OUTDIR) one task at a time */
        const char *by = "amount", *spill = getenv("DRAY_SPILL_DIR");
        if (spill)
            st = dray_frame_spill_to(f, spill);
        if (!st && !(st = dray_frame_sort(f, &by, NULL, 1, &g)))
            st = dray_frame_to_parquet(g, argv[3], NULL);
    } else if (!st) {
        fprintf(stderr, "bench_frame: unknown mode '%s'\n", argv[1]);
        st = DRAY_EINVAL;
    }
    double t1 = now();
    if (st)
        fprintf(stderr, "bench_frame: %s\n", dray_last_error());
    else
        printf("%.4f %.6g\n", t1 - t0, check);
    dray_table_release(t);
    dray_frame_destroy(h);
    dray_frame_destroy(g);
    dray_frame_destroy(f);
    dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
    return st ? 1 : 0;
}
