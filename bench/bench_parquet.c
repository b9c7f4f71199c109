/* Parquet write/read throughput on a generated table of the frame ETL's shape (id int64, amount float64
 * with nulls, category utf8 of 20 values, ts timestamp[us], note utf8 of many values), as in-memory Arrow
 * bytes per second; median of --runs. Prints `name value unit` lines. Used by bench/parquet.sh, which
 * measures DuckDB on the same table in the same run.
 *   bench_parquet [--rows N] [--runs R] [--codec none|snappy|gzip|zstd|lz4_raw] [--threads T]
 *                 [--only write|read] --out DIR        (--only: for profiling one side) */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dray/parquet.h"

#define NCOL 5

typedef struct table {
    int64_t rows;
    int64_t *id, *ts;
    double *amount;
    uint8_t *amount_valid;
    int32_t *cat_off, *note_off;
    char *cat_data, *note_data;
    size_t bytes; /* Arrow bytes of all buffers */
} table;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return v[n / 2];
}

static void gen(table *t, int64_t rows)
{
    uint64_t s = 0x243f6a8885a308d3ull;
    t->rows = rows;
    t->id = malloc((size_t)rows * 8);
    t->ts = malloc((size_t)rows * 8);
    t->amount = malloc((size_t)rows * 8);
    t->amount_valid = calloc((size_t)rows / 8 + 1, 1);
    t->cat_off = malloc(((size_t)rows + 1) * 4);
    t->note_off = malloc(((size_t)rows + 1) * 4);
    t->cat_data = malloc((size_t)rows * 12);
    t->note_data = malloc((size_t)rows * 24);
    if (!t->id || !t->ts || !t->amount || !t->amount_valid || !t->cat_off || !t->note_off ||
        !t->cat_data || !t->note_data) {
        fprintf(stderr, "bench_parquet: out of memory\n");
        exit(1);
    }
    size_t cl = 0, nl = 0;
    t->cat_off[0] = t->note_off[0] = 0;
    for (int64_t i = 0; i < rows; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        t->id[i] = i;
        t->ts[i] = 1700000000000000LL + i * 1000 + (int64_t)(s % 1000);
        t->amount[i] = ((double)(s % 100000) - 5000.0) / 10.0;
        if (s % 50 != 7)
            t->amount_valid[i >> 3] |= (uint8_t)(1u << (i & 7));
        cl += (size_t)sprintf(t->cat_data + cl, "cat_%02d", (int)(s >> 20) % 20);
        t->cat_off[i + 1] = (int32_t)cl;
        nl += (size_t)sprintf(t->note_data + nl, "note-%llu", (unsigned long long)(s >> 24) % 1000000);
        t->note_off[i + 1] = (int32_t)nl;
    }
    t->bytes = (size_t)rows * (8 + 8 + 8 + 4 + 4) + (size_t)rows / 8 + cl + nl;
}

/* Arrow views of the table (no copies; release does nothing: the table owns the memory). */
static void no_release_a(struct ArrowArray *a) { a->release = NULL; }
static void no_release_s(struct ArrowSchema *s) { s->release = NULL; }

typedef struct views {
    struct ArrowSchema schema, cs[NCOL], *csp[NCOL];
    struct ArrowArray batch, ca[NCOL], *cap[NCOL];
    const void *bufs[NCOL][3];
} views;

static void make_views(const table *t, int64_t from, int64_t n, views *v)
{
    static const char *names[NCOL] = {"id", "amount", "category", "ts", "note"};
    static const char *fmts[NCOL] = {"l", "g", "u", "tsu:", "u"};
    memset(v, 0, sizeof(*v));
    for (int c = 0; c < NCOL; c++) {
        v->cs[c] = (struct ArrowSchema){.format = fmts[c], .name = names[c], .flags = ARROW_FLAG_NULLABLE,
                                        .release = no_release_s};
        v->csp[c] = &v->cs[c];
        v->ca[c] = (struct ArrowArray){.length = from + n, .n_buffers = fmts[c][0] == 'u' ? 3 : 2,
                                       .buffers = v->bufs[c], .release = no_release_a};
        v->cap[c] = &v->ca[c];
    }
    v->bufs[0][1] = t->id;
    v->bufs[1][0] = t->amount_valid;
    v->bufs[1][1] = t->amount;
    v->ca[1].null_count = -1;
    v->bufs[2][1] = t->cat_off;
    v->bufs[2][2] = t->cat_data;
    v->bufs[3][1] = t->ts;
    v->bufs[4][1] = t->note_off;
    v->bufs[4][2] = t->note_data;
    v->schema = (struct ArrowSchema){.format = "+s", .name = "", .n_children = NCOL, .children = v->csp,
                                     .release = no_release_s};
    v->batch = (struct ArrowArray){.length = n, .offset = from, .n_buffers = 1, .n_children = NCOL,
                                   .children = v->cap, .release = no_release_a};
    static const void *none[1];
    v->batch.buffers = none;
}

static void die(dray_status st, const char *what)
{
    fprintf(stderr, "bench_parquet: %s: %s: %s\n", what, dray_status_str(st), dray_last_error());
    exit(1);
}

static void write_file(const table *t, const char *path, const dray_parquet_write_opts *o)
{
    views v;
    make_views(t, 0, t->rows, &v);
    dray_parquet_writer *w;
    dray_status st = dray_parquet_writer_open(path, &v.schema, o, &w);
    if (st)
        die(st, "open");
    if ((st = dray_parquet_writer_write(w, &v.batch)))
        die(st, "write");
    if ((st = dray_parquet_writer_close(w)))
        die(st, "close");
}

typedef struct reader_arg {
    const dray_parquet_file *f;
    int first, step;
    double sum;
    dray_status st;
} reader_arg;

/* Reads every step-th row group from `first`, sums `amount` so the decode is used. */
static void *read_groups(void *p)
{
    reader_arg *a = p;
    for (int g = a->first; g < dray_parquet_num_row_groups(a->f); g += a->step) {
        struct ArrowArray arr;
        if ((a->st = dray_parquet_read_row_group(a->f, g, NULL, 0, NULL, &arr)))
            return NULL;
        const struct ArrowArray *am = arr.children[1];
        const double *x = am->buffers[1];
        for (int64_t i = 0; i < am->length; i++)
            a->sum += x[i];
        arr.release(&arr);
    }
    return NULL;
}

static double read_file(const char *path, int threads)
{
    dray_parquet_file *f;
    dray_status st = dray_parquet_open(path, &f);
    if (st)
        die(st, "open for reading");
    pthread_t th[16];
    reader_arg args[16];
    double sum = 0;
    for (int i = 0; i < threads; i++) {
        args[i] = (reader_arg){f, i, threads, 0, DRAY_OK};
        pthread_create(&th[i], NULL, read_groups, &args[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        if (args[i].st)
            die(args[i].st, "read");
        sum += args[i].sum;
    }
    dray_parquet_close(f);
    return sum;
}

int main(int argc, char **argv)
{
    int64_t rows = 2500000;
    int runs = 3, threads = 2;
    const char *out = NULL, *codec = "snappy", *only = "";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rows"))
            rows = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--runs"))
            runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--out"))
            out = argv[i + 1];
        else if (!strcmp(argv[i], "--codec"))
            codec = argv[i + 1];
        else if (!strcmp(argv[i], "--only"))
            only = argv[i + 1];
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
    }
    if (!out || runs < 1 || runs > 99 || threads < 1 || threads > 16) {
        fprintf(stderr, "usage: bench_parquet [--rows N] [--runs R] [--codec C] [--threads T] "
                        "[--only write|read] --out DIR\n");
        return 2;
    }
    dray_parquet_write_opts o;
    dray_parquet_write_opts_init(&o);
    o.row_group_rows = 1 << 19;
    const char *codecs[] = {"none", "snappy", "gzip", "zstd", "lz4_raw"};
    for (int c = 0; c < 5; c++)
        if (!strcmp(codec, codecs[c]))
            o.codec = (dray_parquet_codec)c;
    table t;
    gen(&t, rows);
    char path[4096];
    snprintf(path, sizeof(path), "%s/dray.parquet", out);
    double tw[99], tr[99], tr1[99];
    for (int r = 0; r < runs; r++) {
        if (!strcmp(only, "read") && r > 0) {
            tw[r] = tw[0];
            continue;
        }
        double t0 = now();
        write_file(&t, path, &o);
        tw[r] = now() - t0;
    }
    double check = 0;
    if (!strcmp(only, "write")) {
        printf("parquet_write_%s_mbps %.1f MB/s\n", codec, (double)t.bytes / 1e6 / median(tw, runs));
        return 0;
    }
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        check = read_file(path, 1);
        tr1[r] = now() - t0;
        t0 = now();
        read_file(path, threads);
        tr[r] = now() - t0;
    }
    double want = 0;
    for (int64_t i = 0; i < rows; i++)
        if (t.amount_valid[i >> 3] >> (i & 7) & 1)
            want += t.amount[i];
    if (fabs(check - want) > 1e-6 * fabs(want) + 1e-6) {
        fprintf(stderr, "bench_parquet: read back sum %.17g, want %.17g\n", check, want);
        return 1;
    }
    double mb = (double)t.bytes / 1e6;
    printf("parquet_table_mb %.1f MB\n", mb);
    printf("parquet_write_%s_mbps %.1f MB/s\n", codec, mb / median(tw, runs));
    printf("parquet_read_%s_mbps %.1f MB/s\n", codec, mb / median(tr1, runs));
    printf("parquet_read_%s_%dthreads_mbps %.1f MB/s\n", codec, threads, mb / median(tr, runs));
    fflush(stdout);
    return 0;
}
