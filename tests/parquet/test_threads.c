/* Several threads decode row groups of one open file at once (a dray_parquet_file is immutable after
 * open), and several writers run in parallel; each result equals the single-threaded one. Listed in
 * concurrency.txt for ThreadSanitizer. */
#include <pthread.h>

#include "pq_test.h"

typedef struct job {
    const dray_parquet_file *f;
    int first, step;
    char *text[64];
} job;

static void *worker(void *p)
{
    job *j = p;
    for (int g = j->first; g < dray_parquet_num_row_groups(j->f); g += j->step) {
        struct ArrowSchema s;
        struct ArrowArray a;
        ASSERT_OK(dray_parquet_read_row_group(j->f, g, NULL, 0, &s, &a));
        pqt_text t = {0};
        pqt_render_rows(&t, &s, &a, 0, a.length);
        j->text[g] = t.s;
        dray_parquet_stats st;
        ASSERT_OK(dray_parquet_column_stats(j->f, g, 3, &st));
        a.release(&a);
        s.release(&s);
    }
    return NULL;
}

TEST(parallel_row_groups)
{
    struct ArrowSchema *s;
    struct ArrowArray *b;
    pqt_make(4000, 21, 6, 30, &s, &b);
    char *path = pqt_tmp("threads.parquet");
    dray_parquet_write_opts o;
    dray_parquet_write_opts_init(&o);
    o.row_group_rows = 250;
    pqt_write(path, s, b, &o);
    dray_parquet_file *f;
    ASSERT_OK(dray_parquet_open(path, &f));
    ASSERT_EQ(dray_parquet_num_row_groups(f), 16);
    enum { NT = 4 };
    pthread_t th[NT];
    job jobs[NT];
    for (int i = 0; i < NT; i++) {
        memset(&jobs[i], 0, sizeof(jobs[i]));
        jobs[i].f = f;
        jobs[i].first = i;
        jobs[i].step = NT;
        ASSERT_EQ(pthread_create(&th[i], NULL, worker, &jobs[i]), 0);
    }
    for (int i = 0; i < NT; i++)
        ASSERT_EQ(pthread_join(th[i], NULL), 0);
    for (int g = 0; g < 16; g++) {
        pqt_text want = {0};
        pqt_render_rows(&want, s, b, g * 250, 250);
        pqt_same_text(want.s, jobs[g % NT].text[g], "row group decoded in a thread");
        free(want.s);
        free(jobs[g % NT].text[g]);
    }
    dray_parquet_close(f);
    unlink(path);
    free(path);
    pqt_free(s, b);
}

typedef struct wjob {
    struct ArrowSchema *s;
    struct ArrowArray *b;
    char *path;
    dray_parquet_codec codec;
} wjob;

static void *write_worker(void *p)
{
    wjob *j = p;
    dray_parquet_write_opts o;
    dray_parquet_write_opts_init(&o);
    o.codec = j->codec;
    o.row_group_rows = 300;
    pqt_write(j->path, j->s, j->b, &o);
    return NULL;
}

/* Writers on different files in parallel threads (the frame writes one file per partition). */
TEST(parallel_writers)
{
    enum { NT = 4 };
    wjob jobs[NT];
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) {
        char name[32];
        snprintf(name, sizeof(name), "w%d.parquet", i);
        pqt_make(1000 + i * 100, (uint64_t)i + 1, 5, 20, &jobs[i].s, &jobs[i].b);
        jobs[i].path = pqt_tmp(name);
        jobs[i].codec = (dray_parquet_codec)(i % 5);
        ASSERT_EQ(pthread_create(&th[i], NULL, write_worker, &jobs[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        ASSERT_EQ(pthread_join(th[i], NULL), 0);
        pqt_text want = {0};
        pqt_render_header(&want, jobs[i].s);
        pqt_render_rows(&want, jobs[i].s, jobs[i].b, 0, jobs[i].b->length);
        char *got = pqt_render_file(jobs[i].path, NULL, 0);
        pqt_same_text(want.s, got, "file written in a thread");
        free(want.s);
        free(got);
        unlink(jobs[i].path);
        free(jobs[i].path);
        pqt_free(jobs[i].s, jobs[i].b);
    }
}

RUN_TESTS(T_(parallel_row_groups), T_(parallel_writers))
