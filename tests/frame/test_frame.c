/* Lazy frames on the runtime: parallel CSV ranges against the eager reader, filter/assign/select,
 * head, persist, map_partitions, groupby and value_counts against naive loops, errors from tasks. */
#include <unistd.h>

#include "dray/frame.h"
#include "test.h"

static char dir[64];

static void make_data(void)
{
    strcpy(dir, "/tmp/dray_frame_tXXXXXX");
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    ASSERT_OK(dray_csv_gen(dir, 30000, 3, 11));
}

static void remove_data(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ASSERT_EQ(system(cmd), 0);
}

/* eager: the three files read on this thread, one after another. */
static dray_table *eager(void)
{
    dray_table *t[3], *all;
    for (int i = 0; i < 3; i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/data-%d.csv", dir, i);
        ASSERT_OK(dray_csv_read(path, NULL, &t[i], NULL));
    }
    ASSERT_OK(dray_table_concat(t, 3, &all));
    for (int i = 0; i < 3; i++)
        dray_table_release(t[i]);
    return all;
}

static dray_frame *read_frame(dray_runtime *rt, size_t block)
{
    char pattern[128];
    snprintf(pattern, sizeof(pattern), "%s/data-*.csv", dir);
    dray_csv_opts o;
    dray_csv_opts_init(&o);
    o.block_size = block;
    dray_frame *f;
    ASSERT_OK(dray_frame_read_csv(rt, pattern, &o, &f));
    return f;
}

TEST(read_ranges)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    dray_table *want = eager(), *got;
    dray_frame *f = read_frame(rt, 20000);
    ASSERT_GT(dray_frame_num_partitions(f), 30);
    ASSERT_EQ(dray_table_num_columns(dray_frame_schema(f)), 4);
    ASSERT_OK(dray_frame_compute(f, &got));
    ASSERT_EQ(dray_table_num_rows(got), 30000);
    ASSERT_TRUE(dray_table_equal(got, want));
    int64_t n;
    ASSERT_OK(dray_frame_count(f, &n));
    ASSERT_EQ(n, 30000);
    dray_table_release(got);
    dray_table_release(want);
    dray_frame_destroy(f);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(quoted_ranges)
{
    /* records with embedded newlines and quotes, read in 40-byte ranges */
    char path[128];
    snprintf(path, sizeof(path), "%s/q-0.csv", dir);
    FILE *fp = fopen(path, "w");
    ASSERT_TRUE(fp != NULL);
    fprintf(fp, "k,s\n");
    for (int i = 0; i < 300; i++)
        fprintf(fp, "%d,\"line %d\nnext \"\"q\"\", x\"\n", i, i);
    fclose(fp);
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    dray_csv_opts o;
    dray_csv_opts_init(&o);
    o.block_size = 40;
    char pattern[128];
    snprintf(pattern, sizeof(pattern), "%s/q-*.csv", dir);
    dray_frame *f;
    dray_table *t, *want;
    ASSERT_OK(dray_frame_read_csv(rt, pattern, &o, &f));
    ASSERT_OK(dray_frame_compute(f, &t));
    ASSERT_OK(dray_csv_read(path, NULL, &want, NULL));
    ASSERT_EQ(dray_table_num_rows(t), 300);
    ASSERT_TRUE(dray_table_equal(t, want));
    size_t l;
    const char *s = dray_column_get_str(dray_table_column(t, 1), 299, &l);
    ASSERT_TRUE(l == strlen("line 299\nnext \"q\", x") && !memcmp(s, "line 299\nnext \"q\", x", l));
    dray_table_release(t);
    dray_table_release(want);
    dray_frame_destroy(f);
    unlink(path);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

static dray_status double_ids(const dray_table *in, void *arg, dray_table **out)
{
    return dray_table_assign(in, (const char *)arg, "id * 2", out);
}

TEST(operations)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    dray_table *all = eager();
    dray_frame *f = read_frame(rt, 50000), *g, *h, *m, *p, *s;
    ASSERT_OK(dray_frame_filter(f, "amount > 100 and category != 'cat_03'", &g));
    ASSERT_OK(dray_frame_assign(g, "log_amount", "log(amount)", &h));
    ASSERT_EQ(dray_column_type(dray_table_column(dray_frame_schema(h), 4)), DRAY_DT_FLOAT64);
    dray_table *t;
    ASSERT_OK(dray_frame_compute(h, &t));
    /* naive reference */
    int64_t n = 0;
    dray_column *am = dray_table_column(all, 1), *cat = dray_table_column(all, 2);
    for (int64_t i = 0; i < dray_table_num_rows(all); i++) {
        size_t l;
        const char *c = dray_column_get_str(cat, i, &l);
        if (dray_column_is_valid(am, i) && dray_column_get_f64(am, i) > 100 &&
            !(l == 6 && !memcmp(c, "cat_03", 6))) {
            ASSERT_EQ(dray_column_get_i64(dray_table_column(t, 0), n), dray_column_get_i64(dray_table_column(all, 0), i));
            ASSERT_NEAR(dray_column_get_f64(dray_table_column(t, 4), n), log(dray_column_get_f64(am, i)), 1e-12);
            n++;
        }
    }
    ASSERT_EQ(dray_table_num_rows(t), n);
    /* head computes only what it needs and gives the first rows */
    dray_table *hd;
    ASSERT_OK(dray_frame_head(h, 7, &hd));
    ASSERT_EQ(dray_table_num_rows(hd), 7);
    dray_table *first7;
    ASSERT_OK(dray_table_slice(t, 0, 7, &first7));
    ASSERT_TRUE(dray_table_equal(hd, first7));
    /* persist, then compute from the stored partitions */
    ASSERT_OK(dray_frame_persist(h, &p));
    dray_table *pt;
    ASSERT_OK(dray_frame_compute(p, &pt));
    ASSERT_TRUE(dray_table_equal(pt, t));
    /* map_partitions and select */
    ASSERT_OK(dray_frame_map_partitions(p, double_ids, "id2", NULL, &m));
    const char *cols[2] = {"id2", "id"};
    ASSERT_OK(dray_frame_select(m, cols, 2, &s));
    dray_table *st;
    ASSERT_OK(dray_frame_compute(s, &st));
    ASSERT_STREQ(dray_table_column_name(st, 0), "id2");
    for (int64_t i = 0; i < dray_table_num_rows(st); i += 97)
        ASSERT_EQ(dray_column_get_i64(dray_table_column(st, 0), i),
                  2 * dray_column_get_i64(dray_table_column(st, 1), i));
    /* a bad expression fails when building, naming the column */
    dray_frame *bad;
    ASSERT_STATUS(dray_frame_filter(f, "amount > nothing", &bad), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "nothing");
    dray_table_release(st);
    dray_table_release(pt);
    dray_table_release(first7);
    dray_table_release(hd);
    dray_table_release(t);
    dray_table_release(all);
    dray_frame_destroy(s);
    dray_frame_destroy(m);
    dray_frame_destroy(p);
    dray_frame_destroy(h);
    dray_frame_destroy(g);
    dray_frame_destroy(f);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(groupby)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    dray_table *all = eager();
    dray_frame *f = read_frame(rt, 30000);
    const char *key = "category";
    dray_agg_spec aggs[5] = {{"amount", DRAY_AGG_MEAN, NULL}, {"amount", DRAY_AGG_COUNT, NULL},
                             {"amount", DRAY_AGG_STD, NULL},  {"id", DRAY_AGG_MAX, NULL},
                             {"amount", DRAY_AGG_SUM, "total"}};
    dray_table *g;
    ASSERT_OK(dray_frame_groupby(f, &key, 1, aggs, 5, &g));
    ASSERT_EQ(dray_table_num_rows(g), 20);
    ASSERT_STREQ(dray_table_column_name(g, 1), "amount_mean");
    ASSERT_STREQ(dray_table_column_name(g, 5), "total");
    /* naive two-pass reference per category cat_00..cat_19 (sorted order) */
    double sum[20] = {0}, sq[20] = {0}, mx[20];
    int64_t cnt[20] = {0};
    for (int k = 0; k < 20; k++)
        mx[k] = -1;
    dray_column *am = dray_table_column(all, 1), *cat = dray_table_column(all, 2);
    for (int64_t i = 0; i < dray_table_num_rows(all); i++) {
        size_t l;
        const char *c = dray_column_get_str(cat, i, &l);
        int k = (c[4] - '0') * 10 + (c[5] - '0');
        double id = (double)dray_column_get_i64(dray_table_column(all, 0), i);
        if (id > mx[k])
            mx[k] = id;
        if (!dray_column_is_valid(am, i))
            continue;
        sum[k] += dray_column_get_f64(am, i);
        cnt[k]++;
    }
    for (int64_t i = 0; i < dray_table_num_rows(all); i++) {
        size_t l;
        const char *c = dray_column_get_str(cat, i, &l);
        int k = (c[4] - '0') * 10 + (c[5] - '0');
        if (dray_column_is_valid(am, i)) {
            double d = dray_column_get_f64(am, i) - sum[k] / (double)cnt[k];
            sq[k] += d * d;
        }
    }
    for (int k = 0; k < 20; k++) {
        char want[8];
        snprintf(want, sizeof(want), "cat_%02d", k);
        size_t l;
        const char *c = dray_column_get_str(dray_table_column(g, 0), k, &l);
        ASSERT_TRUE(l == 6 && !memcmp(c, want, 6));
        ASSERT_NEAR(dray_column_get_f64(dray_table_column(g, 1), k), sum[k] / (double)cnt[k], 1e-9);
        ASSERT_EQ(dray_column_get_i64(dray_table_column(g, 2), k), cnt[k]);
        ASSERT_NEAR(dray_column_get_f64(dray_table_column(g, 3), k), sqrt(sq[k] / (double)(cnt[k] - 1)), 1e-6);
        ASSERT_NEAR(dray_column_get_f64(dray_table_column(g, 4), k), mx[k], 0);
        ASSERT_NEAR(dray_column_get_f64(dray_table_column(g, 5), k), sum[k], 1e-6);
    }
    dray_table *vc;
    ASSERT_OK(dray_frame_value_counts(f, "category", &vc));
    ASSERT_EQ(dray_table_num_rows(vc), 20);
    int64_t total = 0, prev = INT64_MAX;
    for (int64_t i = 0; i < 20; i++) {
        int64_t c = dray_column_get_i64(dray_table_column(vc, 1), i);
        ASSERT_LE(c, prev);
        prev = c;
        total += c;
    }
    ASSERT_EQ(total, 30000);
    dray_agg_spec bad = {"category", DRAY_AGG_MEAN, NULL};
    ASSERT_STATUS(dray_frame_groupby(f, &key, 1, &bad, 1, &g), DRAY_ETYPE);
    dray_table_release(vc);
    dray_table_release(g);
    dray_table_release(all);
    dray_frame_destroy(f);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(task_errors)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/e-0.csv", dir);
    FILE *fp = fopen(path, "w");
    ASSERT_TRUE(fp != NULL);
    fprintf(fp, "a,b\n");
    for (int i = 0; i < 2000; i++)
        fprintf(fp, "%d,%d\n", i, i);
    fprintf(fp, "oops,1\n");
    fclose(fp);
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    dray_csv_opts o;
    dray_csv_opts_init(&o);
    o.block_size = 1000;
    o.sample_bytes = 1000;
    char pattern[128];
    snprintf(pattern, sizeof(pattern), "%s/e-*.csv", dir);
    dray_frame *f;
    dray_table *t;
    ASSERT_OK(dray_frame_read_csv(rt, pattern, &o, &f));
    ASSERT_STATUS(dray_frame_compute(f, &t), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "e-0.csv:2002: column 1 ('a'): 'oops' is not int64");
    dray_frame_destroy(f);
    o.bad_lines = DRAY_BAD_LINES_SKIP;
    ASSERT_OK(dray_frame_read_csv(rt, pattern, &o, &f));
    ASSERT_OK(dray_frame_compute(f, &t));
    ASSERT_EQ(dray_table_num_rows(t), 2000);
    ASSERT_EQ(dray_frame_bad_rows(f), 1);
    dray_table_release(t);
    dray_frame_destroy(f);
    snprintf(pattern, sizeof(pattern), "%s/none-*.csv", dir);
    ASSERT_STATUS(dray_frame_read_csv(rt, pattern, &o, &f), DRAY_ENOTFOUND);
    unlink(path);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

/* fr_scale(part, k): the partition with `amount` multiplied by k (a float), by name. */
DRAY_FUNCTION(fr_scale)
{
    const dray_table *in = dray_frame_part_table(&args[0]);
    if (!in || nargs != 2 || args[1].type != DRAY_T_FLOAT)
        return dray_ctx_fail(ctx, DRAY_ETYPE, "fr_scale: (partition, float) expected");
    char expr[64];
    snprintf(expr, sizeof expr, "amount * %.17g", args[1].u.f);
    dray_table *t;
    dray_status st = dray_table_assign(in, "amount", expr, &t);
    return st ? st : dray_frame_part_result(&args[0], t, result);
}

/* map_named: a registered function by name, with a value argument, against a naive loop; its schema
 * found by running it on an empty partition; an unknown name; a function returning no partition. */
TEST(map_named)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    dray_table *all = eager(), *t;
    dray_frame *f = read_frame(rt, 50000), *m;
    dray_value k = dray_float(2.5);
    ASSERT_OK(dray_frame_map_named(f, "fr_scale", &k, NULL, &m));
    ASSERT_EQ(dray_table_num_columns(dray_frame_schema(m)), 4);
    ASSERT_OK(dray_frame_compute(m, &t));
    ASSERT_EQ(dray_table_num_rows(t), dray_table_num_rows(all));
    dray_column *a = dray_table_column(all, 1), *b = dray_table_column(t, 1);
    for (int64_t i = 0; i < dray_table_num_rows(all); i++) {
        ASSERT_EQ(dray_column_is_valid(a, i), dray_column_is_valid(b, i));
        if (dray_column_is_valid(a, i))
            ASSERT_TRUE(dray_column_get_f64(b, i) == dray_column_get_f64(a, i) * 2.5);
    }
    dray_table_release(t);
    dray_frame_destroy(m);
    ASSERT_STATUS(dray_frame_map_named(f, "no_such_fn", &k, NULL, &m), DRAY_ENOTFOUND);
    ASSERT_CONTAINS(dray_last_error(), "no_such_fn");
    dray_value wrong = dray_int(3);
    ASSERT_STATUS(dray_frame_map_named(f, "fr_scale", &wrong, NULL, &m), DRAY_ETYPE);
    ASSERT_CONTAINS(dray_last_error(), "fr_scale");
    dray_table_release(all);
    dray_frame_destroy(f);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

static void all_tests(void)
{
    make_data();
    test_read_ranges();
    test_quoted_ranges();
    test_operations();
    test_groupby();
    test_task_errors();
    test_map_named();
    remove_data();
}
TEST(frame) { all_tests(); }

RUN_TESTS(T_(frame))
