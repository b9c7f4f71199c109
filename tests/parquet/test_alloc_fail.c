/* Allocation failures: the test replaces malloc/calloc/realloc/free (glibc allows it) to fail the Nth
 * allocation, for every N a write + read of a small file makes, and checks each call then returns
 * DRAY_OK or DRAY_ENOMEM and that no allocation is left behind (snappy is left out: libsnappy is C++
 * and throws on a failed allocation). Sanitizer builds keep their own
 * allocator, so there this test only says it is skipped. */
#include "pq_test.h"

#ifndef DRAY_SANITIZED
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static long fail_at = -1; /* the allocation number that fails; -1 = none */
static long counted;      /* allocations since arming */
static long live;         /* blocks allocated and not freed, over the whole process */

static bool should_fail(void)
{
    return fail_at >= 0 && ++counted == fail_at;
}

void *malloc(size_t n)
{
    if (should_fail())
        return NULL;
    void *p = __libc_malloc(n);
    live += p != NULL;
    return p;
}

void *calloc(size_t n, size_t m)
{
    if (should_fail())
        return NULL;
    void *p = __libc_calloc(n, m);
    live += p != NULL;
    return p;
}

void *realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    void *q = __libc_realloc(p, n);
    if (!p && q)
        live++;
    return q;
}

void free(void *p)
{
    live -= p != NULL;
    __libc_free(p);
}

/* One write and read of the file; returns the first failure. */
static dray_status cycle(const char *path, struct ArrowSchema *s, struct ArrowArray *b,
                         const dray_parquet_write_opts *o)
{
    dray_parquet_writer *w;
    dray_status st = dray_parquet_writer_open(path, s, o, &w);
    if (st)
        return st;
    if ((st = dray_parquet_writer_write(w, b))) {
        dray_parquet_writer_abort(w);
        return st;
    }
    if ((st = dray_parquet_writer_close(w)))
        return st;
    dray_parquet_file *f;
    if ((st = dray_parquet_open(path, &f)))
        return st;
    for (int g = 0; g < dray_parquet_num_row_groups(f) && !st; g++) {
        struct ArrowSchema rs;
        struct ArrowArray ra;
        if ((st = dray_parquet_read_row_group(f, g, NULL, 0, &rs, &ra)) == DRAY_OK) {
            ra.release(&ra);
            rs.release(&rs);
        }
    }
    if (!st) {
        struct ArrowSchema fs;
        if ((st = dray_parquet_schema(f, &fs)) == DRAY_OK)
            fs.release(&fs);
    }
    dray_parquet_close(f);
    return st;
}

static void every_failure(dray_parquet_codec codec, bool dict)
{
    struct ArrowSchema *s;
    struct ArrowArray *b;
    pqt_make(200, 5, 4, 8, &s, &b);
    char *path = pqt_tmp("allocfail.parquet");
    dray_parquet_write_opts o;
    dray_parquet_write_opts_init(&o);
    o.codec = codec;
    o.dictionary = dict;
    o.row_group_rows = 120;
    o.page_bytes = 512;
    dray_set_error(DRAY_OK, "warm-up"); /* the error slot's own buffer is not ours to count */
    ASSERT_OK(cycle(path, s, b, &o));
    int failures = 0;
    for (long n = 1;; n++) {
        long before = live;
        counted = 0;
        fail_at = n;
        dray_status st = cycle(path, s, b, &o);
        fail_at = -1;
        if (st != DRAY_OK && st != DRAY_ENOMEM)
            TEST_FAIL_("allocation %ld failing gave status %d: %s", n, st, dray_last_error());
        if (live != before)
            TEST_FAIL_("allocation %ld failing leaked %ld blocks (status %d)", n, live - before, st);
        failures += st == DRAY_ENOMEM;
        if (counted < n) /* the cycle made fewer than n allocations: every one has failed once */
            break;
    }
    ASSERT_GT(failures, 20);
    unlink(path);
    free(path);
    pqt_free(s, b);
}

TEST(every_allocation_fails_once)
{
    /* not snappy: its C++ allocations throw std::bad_alloc, which ends the process */
    every_failure(DRAY_PARQUET_NONE, true);
    every_failure(DRAY_PARQUET_ZSTD, false);
    every_failure(DRAY_PARQUET_GZIP, true);
    every_failure(DRAY_PARQUET_LZ4_RAW, true);
}
#else
TEST(every_allocation_fails_once)
{
    fprintf(stderr, "SKIP: allocation-failure injection needs the plain allocator (sanitizer build)\n");
}
#endif

RUN_TESTS(T_(every_allocation_fails_once))
