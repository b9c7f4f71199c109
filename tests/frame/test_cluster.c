/* Frames on a real cluster on 127.0.0.1 (a head from `dray start --head`, two worker processes
 * started from this executable): the seed's ETL example (build/bin/etl, unchanged, as a driver
 * through DRAY_ADDRESS), a pipeline with several CSV ranges per file, a map_named step and a
 * groupby, and the shuffles (sort, join, drop_duplicates) give the same results as on the embedded
 * runtime, and the tasks ran on the workers. */
#include <math.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dray/cluster.h"
#include "dray/frame.h"
#include "test.h"
#include "cluster_fixture.h"

/* fr_tag_pid(part, name): the partition with an int64 column `name` holding this process's pid. */
DRAY_FUNCTION(fr_tag_pid)
{
    const dray_table *in = dray_frame_part_table(&args[0]);
    if (!in || nargs < 2 || args[1].type != DRAY_T_STRING)
        return dray_ctx_fail(ctx, DRAY_ETYPE, "fr_tag_pid: (partition, name) expected");
    int64_t n = dray_table_num_rows(in), *v = malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    if (!v)
        return DRAY_ENOMEM;
    for (int64_t i = 0; i < n; i++)
        v[i] = getpid();
    dray_column *c;
    dray_table *t = NULL;
    dray_status st = dray_column_from_values(DRAY_DT_INT64, 0, v, NULL, n, &c);
    free(v);
    if (st)
        return st;
    size_t nc = dray_table_num_columns(in);
    const char *names[64];
    dray_column *cols[64];
    if (nc >= 64) {
        dray_column_release(c);
        return dray_ctx_fail(ctx, DRAY_EINVAL, "fr_tag_pid: too many columns");
    }
    for (size_t i = 0; i < nc; i++) {
        names[i] = dray_table_column_name(in, i);
        cols[i] = dray_table_column(in, i);
    }
    names[nc] = dray_string_cstr(&args[1]);
    cols[nc] = c;
    st = dray_table_create(names, cols, nc + 1, &t);
    dray_column_release(c);
    return st ? st : dray_frame_part_result(&args[0], t, result);
}

static dray_status add_one(const dray_table *in, void *arg, dray_table **out)
{
    (void)arg;
    return dray_table_slice(in, 0, dray_table_num_rows(in), out);
}

/* ==== Fixture (as tests/cluster/test_cluster.c) ==== */

static dray_runtime *local_runtime(void)
{
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 2;
    cfg.progress = 0;
    dray_runtime *rt = NULL;
    ASSERT_OK(dray_init(&cfg, &rt));
    return rt;
}

/* assert_same: equal names, types and cells (floats bit for bit), except column `skip`. */
static void assert_same(const dray_table *a, const dray_table *b, const char *skip)
{
    ASSERT_EQ(dray_table_num_rows(a), dray_table_num_rows(b));
    ASSERT_EQ(dray_table_num_columns(a), dray_table_num_columns(b));
    for (size_t c = 0; c < dray_table_num_columns(a); c++) {
        ASSERT_STREQ(dray_table_column_name(a, c), dray_table_column_name(b, c));
        if (skip && !strcmp(dray_table_column_name(a, c), skip))
            continue;
        dray_column *x = dray_table_column(a, c), *y = dray_table_column(b, c);
        ASSERT_EQ(dray_column_type(x), dray_column_type(y));
        dray_col_type t = dray_column_type(x);
        for (int64_t i = 0; i < dray_table_num_rows(a); i++) {
            ASSERT_EQ(dray_column_is_valid(x, i), dray_column_is_valid(y, i));
            if (!dray_column_is_valid(x, i))
                continue;
            if (t == DRAY_DT_FLOAT64 || t == DRAY_DT_FLOAT32) {
                double u = dray_column_get_f64(x, i), v = dray_column_get_f64(y, i);
                if (memcmp(&u, &v, sizeof u))
                    TEST_FAIL_("column %zu row %lld: %.17g vs %.17g", c, (long long)i, u, v);
            } else if (t == DRAY_DT_UTF8 || t == DRAY_DT_DICT) {
                size_t lu, lv;
                const char *u = dray_column_get_str(x, i, &lu), *v = dray_column_get_str(y, i, &lv);
                ASSERT_TRUE(lu == lv && !memcmp(u, v, lu));
            } else {
                ASSERT_EQ(dray_column_get_i64(x, i), dray_column_get_i64(y, i));
            }
        }
    }
}

static dray_table *read_back(dray_runtime *rt, const char *dir)
{
    char pat[300];
    snprintf(pat, sizeof pat, "%s/part-*.parquet", dir);
    dray_frame *f;
    dray_table *t;
    ASSERT_OK(dray_frame_read_parquet(rt, pat, NULL, &f));
    ASSERT_OK(dray_frame_compute(f, &t));
    dray_frame_destroy(f);
    return t;
}

/* ==== Tests ==== */

/* As a worker (DRAY_WORKER_ADDRESS set) dray_init serves and never returns. */
TEST(worker_main)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

/* build/bin/etl, unchanged, on the cluster (DRAY_ADDRESS) and on the embedded runtime. */
TEST(etl_example_on_cluster)
{
    char data[] = "/tmp/dray_fretl_XXXXXX", cmd[9000];
    ASSERT_TRUE(mkdtemp(data) != NULL);
    ASSERT_OK(dray_csv_gen(data, 30000, 3, 11));
    test_cluster f;
    test_cluster_start(&f, 2);
    const char *build = getenv("DRAY_BUILD_DIR") ? getenv("DRAY_BUILD_DIR") : "build";
    snprintf(cmd, sizeof cmd, "%s/bin/etl '%s/data-*.csv' %s/local > %s/local.log 2>&1", build, data,
             data, data);
    ASSERT_EQ(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "DRAY_ADDRESS=%s %s/bin/etl '%s/data-*.csv' %s/cluster > %s/cluster.log "
             "2>&1", f.addr, build, data, data, data);
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(cmd, sizeof cmd, "cat %s/cluster.log >&2", data);
        ASSERT_EQ(system(cmd), 0);
    }
    ASSERT_EQ(rc, 0);
    test_cluster_stop(&f);
    dray_runtime *rt = local_runtime();
    char dir[300];
    snprintf(dir, sizeof dir, "%s/local", data);
    dray_table *a = read_back(rt, dir);
    snprintf(dir, sizeof dir, "%s/cluster", data);
    dray_table *b = read_back(rt, dir);
    ASSERT_GT(dray_table_num_rows(a), 1000);
    ASSERT_TRUE(dray_table_find(a, "log_amount") >= 0);
    assert_same(a, b, NULL);
    dray_table_release(a);
    dray_table_release(b);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    snprintf(cmd, sizeof cmd, "rm -rf %s", data);
    ASSERT_EQ(system(cmd), 0);
}

/* run_shuffles: a sample sort by (category, id), a shuffled join of the rows with their ids of
 * every seventh row, drop_duplicates on category: each computed. */
static void run_shuffles(dray_runtime *rt, const char *pattern, dray_table **out)
{
    dray_csv_opts o;
    dray_csv_opts_init(&o);
    o.block_size = 64 << 10;
    dray_frame *f, *s, *sev, *j, *dd;
    ASSERT_OK(dray_frame_read_csv(rt, pattern, &o, &f));
    const char *by[2] = {"category", "id"}, *on = "id", *cat = "category";
    bool desc[2] = {false, true};
    ASSERT_OK(dray_frame_sort(f, by, desc, 2, &s));
    ASSERT_OK(dray_frame_filter(f, "id % 7 == 0", &sev));
    ASSERT_OK(dray_frame_join(f, sev, &on, &on, 1, DRAY_JOIN_INNER, &j));
    ASSERT_OK(dray_frame_drop_duplicates(f, &cat, 1, &dd));
    ASSERT_OK(dray_frame_compute(s, &out[0]));
    ASSERT_OK(dray_frame_compute(j, &out[1]));
    ASSERT_OK(dray_frame_compute(dd, &out[2]));
    dray_frame *all[5] = {dd, j, sev, s, f};
    for (int i = 0; i < 5; i++)
        dray_frame_destroy(all[i]);
}

/* run_pipeline: read_csv (ranges of 64 KiB, so plans and quote counts travel) -> filter -> assign
 * -> map_named(fr_tag_pid) -> compute, persist and head, plus a groupby of the same frame. */
static void run_pipeline(dray_runtime *rt, const char *pattern, dray_table **out, dray_table **gb)
{
    dray_csv_opts o;
    dray_csv_opts_init(&o);
    o.block_size = 64 << 10;
    dray_frame *f, *g, *h, *m;
    ASSERT_OK(dray_frame_read_csv(rt, pattern, &o, &f));
    ASSERT_GT(dray_frame_num_partitions(f), 6);
    ASSERT_OK(dray_frame_filter(f, "amount > 100 and category != 'cat_03'", &g));
    ASSERT_OK(dray_frame_assign(g, "log_amount", "log(amount)", &h));
    dray_value name;
    ASSERT_OK(dray_string_create("pid", &name));
    ASSERT_OK(dray_frame_map_named(h, "fr_tag_pid", &name, NULL, &m));
    dray_value_release(&name);
    ASSERT_OK(dray_frame_compute(m, out));
    /* persist keeps the partitions (refs the driver owns), head takes the first rows */
    dray_frame *per;
    dray_table *pt, *hd, *first;
    ASSERT_OK(dray_frame_persist(h, &per));
    ASSERT_OK(dray_frame_compute(per, &pt));
    ASSERT_OK(dray_frame_head(per, 9, &hd));
    ASSERT_OK(dray_table_slice(pt, 0, 9, &first));
    ASSERT_TRUE(dray_table_equal(hd, first));
    ASSERT_EQ(dray_table_num_rows(pt), dray_table_num_rows(*out));
    dray_table_release(first);
    dray_table_release(hd);
    dray_table_release(pt);
    dray_frame_destroy(per);
    const char *key = "category";
    dray_agg_spec aggs[2] = {{"amount", DRAY_AGG_MEAN, NULL}, {"id", DRAY_AGG_COUNT, NULL}};
    ASSERT_OK(dray_frame_groupby(h, &key, 1, aggs, 2, gb));
    dray_frame_destroy(m);
    dray_frame_destroy(h);
    dray_frame_destroy(g);
    dray_frame_destroy(f);
}

TEST(pipeline_on_cluster)
{
    char data[] = "/tmp/dray_frpipe_XXXXXX", pattern[100];
    ASSERT_TRUE(mkdtemp(data) != NULL);
    ASSERT_OK(dray_csv_gen(data, 40000, 2, 12));
    snprintf(pattern, sizeof pattern, "%s/data-*.csv", data);
    dray_runtime *rt = local_runtime();
    dray_table *want, *want_gb;
    run_pipeline(rt, pattern, &want, &want_gb);
    dray_table *want_sh[3], *got_sh[3];
    run_shuffles(rt, pattern, want_sh);
    ASSERT_GT(dray_table_num_rows(want_sh[1]), 1000);
    ASSERT_EQ(dray_table_num_rows(want_sh[2]), 20);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));

    test_cluster f;
    test_cluster_start(&f, 2);
    rt = test_cluster_driver(&f);
    dray_table *got, *got_gb;
    run_pipeline(rt, pattern, &got, &got_gb);
    assert_same(want, got, "pid");
    assert_same(want_gb, got_gb, NULL);
    run_shuffles(rt, pattern, got_sh);
    for (int i = 0; i < 3; i++) {
        assert_same(want_sh[i], got_sh[i], NULL);
        dray_table_release(want_sh[i]);
        dray_table_release(got_sh[i]);
    }
    /* every partition ran in a worker process, and both workers got some */
    int pc = dray_table_find(got, "pid");
    ASSERT_TRUE(pc >= 0);
    bool seen[2] = {false, false};
    for (int64_t i = 0; i < dray_table_num_rows(got); i++) {
        int64_t pid = dray_column_get_i64(dray_table_column(got, (size_t)pc), i);
        ASSERT_TRUE(pid == f.workers[0] || pid == f.workers[1]);
        seen[pid == f.workers[1]] = true;
    }
    ASSERT_TRUE(seen[0] && seen[1]);
    /* map_partitions passes C pointers: on a cluster it fails clearly instead of crashing */
    dray_frame *c, *d;
    dray_table *t = NULL;
    ASSERT_OK(dray_frame_read_csv(rt, pattern, NULL, &c));
    ASSERT_OK(dray_frame_map_partitions(c, add_one, NULL, NULL, &d));
    ASSERT_STATUS(dray_frame_compute(d, &t), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "map_named");
    dray_frame_destroy(d);
    dray_frame_destroy(c);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
    dray_table_release(want);
    dray_table_release(got);
    dray_table_release(want_gb);
    dray_table_release(got_gb);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", data);
    ASSERT_EQ(system(cmd), 0);
}

RUN_TESTS(T_(worker_main), T_(etl_example_on_cluster), T_(pipeline_on_cluster))
