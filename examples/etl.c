/* The seed pipeline: read_csv("data-*.csv") -> filter amount > 100 -> log_amount = log(amount) ->
 * to_parquet(OUTDIR) (snappy, one file per partition). `etl [GLOB OUTDIR]`; with no arguments it
 * generates small demo data in a temporary directory. Reads the Parquet files back and checks them
 * against an independent recount from the CSV; exits non-zero when they differ. */
#include <math.h>
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

/* recount: rows with amount > 100 in the files and their sum of log(amount), by a plain loop over
 * the parsed table (the check). */
static int64_t recount(const char *pattern, double *sum_log)
{
    dray_runtime *rt = NULL;
    dray_frame *f = NULL;
    dray_table *t = NULL;
    int64_t n = -1;
    if (dray_init(NULL, &rt) || dray_frame_read_csv(rt, pattern, NULL, &f) || dray_frame_compute(f, &t))
        goto out;
    int c = dray_table_find(t, "amount");
    if (c < 0)
        goto out;
    dray_column *am = dray_table_column(t, (size_t)c);
    n = 0;
    *sum_log = 0;
    for (int64_t i = 0; i < dray_table_num_rows(t); i++)
        if (dray_column_is_valid(am, i) && dray_column_get_f64(am, i) > 100) {
            n++;
            *sum_log += log(dray_column_get_f64(am, i));
        }
out:
    dray_table_release(t);
    dray_frame_destroy(f);
    if (rt)
        dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
    return n;
}

int main(int argc, char **argv)
{
    char tmp[] = "/tmp/dray_etl_XXXXXX", pattern[256], outdir[256];
    bool demo = argc < 3;
    if (demo) {
        if (!mkdtemp(tmp) || dray_csv_gen(tmp, 200000, 4, 1)) {
            fprintf(stderr, "etl: cannot make demo data: %s\n", dray_last_error());
            return 1;
        }
        snprintf(pattern, sizeof(pattern), "%s/data-*.csv", tmp);
        snprintf(outdir, sizeof(outdir), "%s/out", tmp);
    } else {
        snprintf(pattern, sizeof(pattern), "%s", argv[1]);
        snprintf(outdir, sizeof(outdir), "%s", argv[2]);
    }
    dray_runtime *rt;
    dray_frame *f = NULL, *g = NULL, *h = NULL;
    dray_table *res = NULL;
    int rc = 1;
    if (dray_init(NULL, &rt)) {
        fprintf(stderr, "etl: %s\n", dray_last_error());
        return 1;
    }
    double t0 = now();
    if (dray_frame_read_csv(rt, pattern, NULL, &f) || dray_frame_filter(f, "amount > 100", &g) ||
        dray_frame_assign(g, "log_amount", "log(amount)", &h) || dray_frame_to_parquet(h, outdir, NULL)) {
        fprintf(stderr, "etl: %s\n", dray_last_error());
        goto out;
    }
    double t1 = now();
    /* check: read what was written back and compare with an independent recount */
    char outpat[300];
    snprintf(outpat, sizeof(outpat), "%s/part-*.parquet", outdir);
    dray_frame *back;
    if (dray_frame_read_parquet(rt, outpat, NULL, &back) || dray_frame_compute(back, &res)) {
        fprintf(stderr, "etl: reading the output: %s\n", dray_last_error());
        goto out;
    }
    dray_frame_destroy(back);
    double want_log = 0, got_log = 0;
    int64_t want = recount(pattern, &want_log);
    int lc = dray_table_find(res, "log_amount");
    for (int64_t i = 0; lc >= 0 && i < dray_table_num_rows(res); i++)
        got_log += dray_column_get_f64(dray_table_column(res, (size_t)lc), i);
    printf("etl: %lld rows with amount > 100 in %zu partitions -> %s (%.3f s); sum(log_amount) "
           "%.6f\n", (long long)dray_table_num_rows(res), dray_frame_num_partitions(h), outdir,
           t1 - t0, got_log);
    if (want != dray_table_num_rows(res) || lc < 0 || fabs(want_log - got_log) > 1e-6 * fabs(want_log)) {
        fprintf(stderr, "etl: check failed: %lld rows, sum %.6f; recount %lld, sum %.6f\n",
                (long long)dray_table_num_rows(res), got_log, (long long)want, want_log);
        goto out;
    }
    rc = 0;
out:
    dray_table_release(res);
    dray_frame_destroy(h);
    dray_frame_destroy(g);
    dray_frame_destroy(f);
    dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
    if (demo) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
        if (system(cmd) != 0)
            fprintf(stderr, "etl: could not remove %s\n", tmp);
    }
    return rc;
}
