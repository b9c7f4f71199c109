/* Multi-partition operations against naive references: concat, repartition, sample sort (one and
 * two keys, descending, nulls), hash join (broadcast and shuffled, inner and left), drop_duplicates
 * and describe. */
#include <dirent.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "dray/dashboard.h"
#include "dray/frame.h"
#include "test.h"

/* part: rows [from, from+n) of a synthetic table: k (int64, 1 in 9 null), g (utf8 of 7 values),
 * v (float64). */
static dray_table *part(int64_t from, int64_t n)
{
    int64_t *k = malloc((size_t)n * sizeof(*k));
    double *v = malloc((size_t)n * sizeof(*v));
    uint8_t *valid = malloc((size_t)n);
    const char **g = malloc((size_t)n * sizeof(*g));
    static const char *const names[7] = {"a", "bb", "c", "dd", "e", "ff", "g"};
    for (int64_t i = 0; i < n; i++) {
        int64_t r = from + i;
        k[i] = (r * 7919) % 503;
        valid[i] = r % 9 != 4;
        v[i] = (double)((r * 104729) % 1000) / 8.0;
        g[i] = names[(r * 31) % 7];
    }
    dray_column *c[3];
    ASSERT_OK(dray_column_from_values(DRAY_DT_INT64, 0, k, valid, n, &c[0]));
    ASSERT_OK(dray_column_from_strings(g, n, false, &c[1]));
    ASSERT_OK(dray_column_from_values(DRAY_DT_FLOAT64, 0, v, NULL, n, &c[2]));
    const char *cn[3] = {"k", "g", "v"};
    dray_table *t;
    ASSERT_OK(dray_table_create(cn, c, 3, &t));
    for (int i = 0; i < 3; i++)
        dray_column_release(c[i]);
    free(k);
    free(v);
    free(valid);
    free(g);
    return t;
}

static dray_frame *frame_of(dray_runtime *rt, int nparts, int64_t rows, dray_table **all)
{
    dray_table **p = calloc((size_t)nparts, sizeof(*p));
    for (int i = 0; i < nparts; i++)
        p[i] = part(rows * i / nparts, rows * (i + 1) / nparts - rows * i / nparts);
    dray_frame *f;
    ASSERT_OK(dray_frame_from_tables(rt, p, (size_t)nparts, &f));
    if (all)
        ASSERT_OK(dray_table_concat(p, (size_t)nparts, all));
    for (int i = 0; i < nparts; i++)
        dray_table_release(p[i]);
    free(p);
    return f;
}

TEST(concat_repartition)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    dray_table *all, *t;
    dray_frame *f = frame_of(rt, 5, 3000, &all), *r;
    for (size_t n = 1; n <= 12; n += 1) {
        ASSERT_OK(dray_frame_repartition(f, n, &r));
        ASSERT_EQ(dray_frame_num_partitions(r), n);
        ASSERT_OK(dray_frame_compute(r, &t));
        ASSERT_TRUE(dray_table_equal(t, all));
        dray_table_release(t);
        dray_frame_destroy(r);
    }
    /* concat with a frame from another graph */
    dray_frame *g = frame_of(rt, 2, 100, NULL), *c, *frames[2] = {f, g};
    ASSERT_OK(dray_frame_concat(frames, 2, &c));
    ASSERT_EQ(dray_frame_num_partitions(c), 7);
    int64_t n;
    ASSERT_OK(dray_frame_count(c, &n));
    ASSERT_EQ(n, 3100);
    dray_frame_destroy(c);
    dray_frame_destroy(g);
    dray_frame_destroy(f);
    dray_table_release(all);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(sort)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    dray_table *all, *t;
    dray_frame *f = frame_of(rt, 6, 5000, &all), *s;
    const char *by[2] = {"g", "k"};
    bool desc[2] = {false, true};
    ASSERT_OK(dray_frame_sort(f, by, desc, 2, &s));
    ASSERT_OK(dray_frame_compute(s, &t));
    ASSERT_EQ(dray_table_num_rows(t), 5000);
    dray_column *g = dray_table_column(t, 1), *k = dray_table_column(t, 0);
    for (int64_t i = 1; i < 5000; i++) {
        size_t la, lb;
        const char *a = dray_column_get_str(g, i - 1, &la), *b = dray_column_get_str(g, i, &lb);
        int c = memcmp(a, b, la < lb ? la : lb);
        c = c ? c : (la > lb) - (la < lb);
        ASSERT_LE(c, 0);
        if (c == 0) {
            /* k descending, nulls last */
            bool va = dray_column_is_valid(k, i - 1), vb = dray_column_is_valid(k, i);
            ASSERT_TRUE(va || !vb);
            if (va && vb)
                ASSERT_GE(dray_column_get_i64(k, i - 1), dray_column_get_i64(k, i));
        }
    }
    /* the same multiset of rows: sum of v and of k */
    double sv = 0, sv2 = 0;
    int64_t sk = 0, sk2 = 0;
    for (int64_t i = 0; i < 5000; i++) {
        sv += dray_column_get_f64(dray_table_column(all, 2), i);
        sv2 += dray_column_get_f64(dray_table_column(t, 2), i);
        sk += dray_column_get_i64(dray_table_column(all, 0), i);
        sk2 += dray_column_get_i64(dray_table_column(t, 0), i);
    }
    ASSERT_NEAR(sv, sv2, 1e-6);
    ASSERT_EQ(sk, sk2);
    dray_table_release(t);
    dray_frame_destroy(s);
    /* one numeric key (the radix path): k descending with nulls last, then v ascending */
    for (int c = 0; c < 2; c++) {
        const char *one = c ? "v" : "k";
        bool d = c == 0;
        ASSERT_OK(dray_frame_sort(f, &one, &d, 1, &s));
        ASSERT_OK(dray_frame_compute(s, &t));
        ASSERT_EQ(dray_table_num_rows(t), 5000);
        dray_column *x = dray_table_column(t, c ? 2 : 0);
        int64_t nulls = 0;
        for (int64_t i = 1; i < 5000; i++) {
            bool va = dray_column_is_valid(x, i - 1), vb = dray_column_is_valid(x, i);
            ASSERT_TRUE(va || !vb);
            nulls += !vb;
            if (va && vb) {
                double a = dray_column_get_f64(x, i - 1), b = dray_column_get_f64(x, i);
                if (d)
                    ASSERT_TRUE(a >= b);
                else
                    ASSERT_TRUE(a <= b);
            }
        }
        ASSERT_EQ(nulls, c ? 0 : dray_column_null_count(dray_table_column(all, 0)));
        dray_table_release(t);
        dray_frame_destroy(s);
    }
    dray_frame_destroy(f);
    dray_table_release(all);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

/* naive_join_count: matches of l.k = r.k (nulls never match); left adds unmatched rows. */
static int64_t naive_join_count(const dray_table *l, const dray_table *r, bool left, double *sum_rv)
{
    int64_t n = 0;
    *sum_rv = 0;
    dray_column *lk = dray_table_column(l, 0), *rk = dray_table_column(r, 0);
    for (int64_t i = 0; i < dray_table_num_rows(l); i++) {
        int64_t m = 0;
        for (int64_t j = 0; dray_column_is_valid(lk, i) && j < dray_table_num_rows(r); j++)
            if (dray_column_is_valid(rk, j) && dray_column_get_i64(lk, i) == dray_column_get_i64(rk, j)) {
                m++;
                *sum_rv += dray_column_get_f64(dray_table_column(r, 2), j);
            }
        n += m ? m : left;
    }
    return n;
}

TEST(join)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    dray_table *la, *ra;
    dray_frame *l = frame_of(rt, 4, 2000, &la);
    for (int rp = 1; rp <= 3; rp += 2) { /* broadcast, then shuffled */
        dray_frame *r = frame_of(rt, rp, 300, &ra);
        for (int how = 0; how < 2; how++) {
            const char *on = "k";
            dray_frame *j;
            dray_table *t;
            ASSERT_OK(dray_frame_join(l, r, &on, &on, 1, (dray_join_how)how, &j));
            ASSERT_OK(dray_frame_compute(j, &t));
            ASSERT_EQ(dray_table_num_columns(t), 5);
            ASSERT_STREQ(dray_table_column_name(t, 3), "g_right");
            ASSERT_STREQ(dray_table_column_name(t, 4), "v_right");
            double want_sum, got = 0;
            int64_t want = naive_join_count(la, ra, how == 1, &want_sum), nulls = 0;
            ASSERT_EQ(dray_table_num_rows(t), want);
            for (int64_t i = 0; i < dray_table_num_rows(t); i++) {
                if (dray_column_is_valid(dray_table_column(t, 4), i))
                    got += dray_column_get_f64(dray_table_column(t, 4), i);
                else
                    nulls++;
            }
            ASSERT_NEAR(got, want_sum, 1e-6);
            if (how == 0)
                ASSERT_EQ(nulls, 0);
            else
                ASSERT_GT(nulls, 0);
            dray_table_release(t);
            dray_frame_destroy(j);
        }
        dray_table_release(ra);
        dray_frame_destroy(r);
    }
    const char *bad = "g", *on = "k";
    dray_frame *j;
    ASSERT_STATUS(dray_frame_join(l, l, &on, &bad, 1, DRAY_JOIN_INNER, &j), DRAY_ETYPE);
    dray_table_release(la);
    dray_frame_destroy(l);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(dedup_describe)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    dray_table *all, *t, *d;
    dray_frame *f = frame_of(rt, 4, 4000, &all), *u;
    const char *sub[2] = {"k", "g"};
    ASSERT_OK(dray_frame_drop_duplicates(f, sub, 2, &u));
    ASSERT_OK(dray_frame_compute(u, &t));
    /* naive: distinct (k, g) pairs, null k as its own value */
    int64_t distinct = 0;
    dray_column *k = dray_table_column(all, 0), *g = dray_table_column(all, 1);
    for (int64_t i = 0; i < 4000; i++) {
        bool seen = false;
        for (int64_t j = 0; j < i && !seen; j++) {
            size_t la, lb;
            const char *a = dray_column_get_str(g, i, &la), *b = dray_column_get_str(g, j, &lb);
            bool ke = dray_column_is_valid(k, i) == dray_column_is_valid(k, j) &&
                      (!dray_column_is_valid(k, i) || dray_column_get_i64(k, i) == dray_column_get_i64(k, j));
            seen = ke && la == lb && !memcmp(a, b, la);
        }
        distinct += !seen;
    }
    ASSERT_EQ(dray_table_num_rows(t), distinct);
    ASSERT_OK(dray_frame_describe(f, &d));
    ASSERT_EQ(dray_table_num_rows(d), 5);
    ASSERT_STREQ(dray_table_column_name(d, 1), "k");
    double s = 0, ss = 0, mn = 1e300, mx = -1e300;
    int64_t n = 0;
    for (int64_t i = 0; i < 4000; i++) {
        if (!dray_column_is_valid(k, i))
            continue;
        double x = (double)dray_column_get_i64(k, i);
        s += x;
        n++;
        mn = x < mn ? x : mn;
        mx = x > mx ? x : mx;
    }
    for (int64_t i = 0; i < 4000; i++)
        if (dray_column_is_valid(k, i))
            ss += ((double)dray_column_get_i64(k, i) - s / (double)n) * ((double)dray_column_get_i64(k, i) - s / (double)n);
    dray_column *dk = dray_table_column(d, 1);
    ASSERT_NEAR(dray_column_get_f64(dk, 0), (double)n, 0);
    ASSERT_NEAR(dray_column_get_f64(dk, 1), s / (double)n, 1e-9);
    ASSERT_NEAR(dray_column_get_f64(dk, 2), sqrt(ss / (double)(n - 1)), 1e-6);
    ASSERT_NEAR(dray_column_get_f64(dk, 3), mn, 0);
    ASSERT_NEAR(dray_column_get_f64(dk, 4), mx, 0);
    dray_table_release(d);
    dray_table_release(t);
    dray_table_release(all);
    dray_frame_destroy(u);
    dray_frame_destroy(f);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

/* Shuffles that spill their buckets to files give the same tables, and leave no file behind. */
TEST(spill)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    dray_dashboard *d; /* records spill events, checked at the end */
    ASSERT_OK(dray_dashboard_start(rt, NULL, &d));
    char dir[] = "/tmp/dray_spill_XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    dray_frame *plain = frame_of(rt, 4, 3000, NULL), *sp = frame_of(rt, 4, 3000, NULL);
    ASSERT_OK(dray_frame_spill_to(sp, dir));
    const char *by = "v", *on = "k";
    dray_frame *a[3], *b[3];
    ASSERT_OK(dray_frame_sort(plain, &by, NULL, 1, &a[0]));
    ASSERT_OK(dray_frame_sort(sp, &by, NULL, 1, &b[0]));
    ASSERT_OK(dray_frame_join(plain, plain, &on, &on, 1, DRAY_JOIN_LEFT, &a[1]));
    ASSERT_OK(dray_frame_join(sp, sp, &on, &on, 1, DRAY_JOIN_LEFT, &b[1]));
    ASSERT_OK(dray_frame_drop_duplicates(plain, &on, 1, &a[2]));
    ASSERT_OK(dray_frame_drop_duplicates(sp, &on, 1, &b[2]));
    for (int i = 0; i < 3; i++) {
        dray_table *x, *y;
        ASSERT_OK(dray_frame_compute(a[i], &x));
        ASSERT_OK(dray_frame_compute(b[i], &y));
        ASSERT_GT(dray_table_num_rows(x), 0);
        if (!dray_table_equal(x, y))
            TEST_FAIL_("shuffle %d differs when spilled", i);
        dray_table_release(x);
        dray_table_release(y);
        dray_frame_destroy(a[i]);
        dray_frame_destroy(b[i]);
    }
    ASSERT_EQ(rmdir(dir), 0); /* empty: every spilled bucket was read and deleted */
    /* The dashboard's task stream shows each bucket written once ("spill") and read once
     * ("unspill"), with its file's bytes. The collector drains every 100 ms: wait for it (bounded). */
    int spills = 0, unspills = 0;
    double spill_bytes = 0, unspill_bytes = 0;
    for (int tries = 0; tries < 300 && !(spills && spills == unspills); tries++) {
        usleep(10000);
        int status;
        char *body;
        const char *type;
        ASSERT_OK(dray_dashboard_api(d, "/api/v0/stream?since=0", &status, &body, &type));
        ASSERT_EQ(status, 200);
        cJSON *j = cJSON_Parse(body);
        dray_free(body);
        spills = unspills = 0;
        spill_bytes = unspill_bytes = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "events"))
        {
            const char *kind = cJSON_GetStringValue(cJSON_GetObjectItem(e, "kind"));
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(e, "name"));
            double bytes = cJSON_GetNumberValue(cJSON_GetObjectItem(e, "bytes"));
            if (!name || strcmp(name, "frame.spill"))
                continue;
            if (!strcmp(kind, "spill")) {
                spills++;
                spill_bytes += bytes;
            } else if (!strcmp(kind, "unspill")) {
                unspills++;
                unspill_bytes += bytes;
            }
        }
        cJSON_Delete(j);
    }
    ASSERT_GT(spills, 3); /* at least a bucket per shuffle and join side */
    ASSERT_EQ(unspills, spills);
    ASSERT_GT(spill_bytes, 0);
    ASSERT_NEAR(unspill_bytes, spill_bytes, 0);
    dray_dashboard_stop(d);
    dray_frame_destroy(plain);
    dray_frame_destroy(sp);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

/* nunique by key against a naive count of distinct non-null values per group. */
TEST(nunique)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    dray_table *all, *g;
    dray_frame *f = frame_of(rt, 3, 3000, &all);
    const char *key = "g";
    dray_agg_spec aggs[2] = {{"k", DRAY_AGG_NUNIQUE, NULL}, {"v", DRAY_AGG_MEAN, NULL}};
    ASSERT_OK(dray_frame_groupby(f, &key, 1, aggs, 2, &g));
    ASSERT_EQ(dray_table_num_rows(g), 7);
    ASSERT_STREQ(dray_table_column_name(g, 1), "k_nunique");
    dray_column *G = dray_table_column(all, 1), *K = dray_table_column(all, 0);
    for (int64_t r = 0; r < 7; r++) {
        size_t gl;
        const char *gs = dray_column_get_str(dray_table_column(g, 0), r, &gl);
        int64_t distinct = 0;
        for (int64_t i = 0; i < 3000; i++) {
            size_t l;
            const char *s = dray_column_get_str(G, i, &l);
            if (l != gl || memcmp(s, gs, l) || !dray_column_is_valid(K, i))
                continue;
            bool seen = false;
            for (int64_t j = 0; j < i && !seen; j++) {
                const char *t = dray_column_get_str(G, j, &l);
                seen = l == gl && !memcmp(t, gs, l) && dray_column_is_valid(K, j) &&
                       dray_column_get_i64(K, j) == dray_column_get_i64(K, i);
            }
            distinct += !seen;
        }
        ASSERT_EQ(dray_column_get_i64(dray_table_column(g, 1), r), distinct);
    }
    dray_table_release(g);
    dray_table_release(all);
    dray_frame_destroy(f);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

/* Counts the entries of dir whose name starts with prefix. */
static int count_entries(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d)
        closedir(d);
    return n;
}

/* With a memory limit on the runtime, shuffles spill on their own into a temporary directory under
 * TMPDIR, which is gone once the frames are. */
TEST(spill_follows_memory_limit)
{
    char tmp[] = "/tmp/dray_tmpdir_XXXXXX";
    ASSERT_TRUE(mkdtemp(tmp) != NULL);
    const char *old = getenv("TMPDIR");
    char *saved = old ? strdup(old) : NULL;
    setenv("TMPDIR", tmp, 1);
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.memory_limit = 256u << 20;
    dray_runtime *rt, *plain_rt;
    ASSERT_OK(dray_init(&cfg, &rt));
    ASSERT_OK(dray_init(NULL, &plain_rt));
    dray_frame *sp = frame_of(rt, 4, 3000, NULL), *plain = frame_of(plain_rt, 4, 3000, NULL);
    ASSERT_EQ(count_entries(tmp, "dray-spill-"), 1);
    const char *by = "v";
    dray_frame *a, *b;
    ASSERT_OK(dray_frame_sort(plain, &by, NULL, 1, &a));
    ASSERT_OK(dray_frame_sort(sp, &by, NULL, 1, &b));
    dray_table *x, *y;
    ASSERT_OK(dray_frame_compute(a, &x));
    ASSERT_OK(dray_frame_compute(b, &y));
    ASSERT_TRUE(dray_table_equal(x, y));
    dray_table_release(x);
    dray_table_release(y);
    dray_frame_destroy(a);
    dray_frame_destroy(b);
    dray_frame_destroy(sp);
    dray_frame_destroy(plain);
    ASSERT_EQ(count_entries(tmp, "dray-spill-"), 0);
    ASSERT_EQ(rmdir(tmp), 0);
    if (saved) {
        setenv("TMPDIR", saved, 1);
        free(saved);
    } else {
        unsetenv("TMPDIR");
    }
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    ASSERT_OK(dray_shutdown(plain_rt, DRAY_SHUTDOWN_DRAIN));
}

RUN_TESTS(T_(nunique), T_(concat_repartition), T_(sort), T_(join), T_(dedup_describe), T_(spill),
          T_(spill_follows_memory_limit))
