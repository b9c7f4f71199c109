/* The expression language: every operator and function against a naive per-row C reference on a
 * table with nulls, three-valued logic, string predicates on utf8 and dict columns, date literals,
 * and syntax/type errors naming the position. */
#include "dray/frame.h"
#include "test.h"

#define N 1000

static dray_table *make(void)
{
    static int64_t a[N];
    static double x[N];
    static uint8_t va[N], vx[N], fl[N];
    static int32_t d[N];
    static const char *s[N];
    static char buf[N][16];
    for (int i = 0; i < N; i++) {
        a[i] = (i * 7919) % 201 - 100;
        x[i] = (double)((i * 104729) % 1000) / 7.0 - 50;
        va[i] = i % 11 != 0;
        vx[i] = i % 13 != 0;
        fl[i] = i % 3 == 0;
        d[i] = 19000 + i % 400;
        snprintf(buf[i], sizeof(buf[i]), "%s%d", i % 4 == 0 ? "ab" : i % 4 == 1 ? "xab" : "q", i % 10);
        s[i] = i % 17 == 0 ? NULL : buf[i];
    }
    dray_column *c[6];
    ASSERT_OK(dray_column_from_values(DRAY_DT_INT64, 0, a, va, N, &c[0]));
    ASSERT_OK(dray_column_from_values(DRAY_DT_FLOAT64, 0, x, vx, N, &c[1]));
    ASSERT_OK(dray_column_from_values(DRAY_DT_BOOL, 0, fl, NULL, N, &c[2]));
    ASSERT_OK(dray_column_from_strings(s, N, false, &c[3]));
    ASSERT_OK(dray_column_from_strings(s, N, true, &c[4]));
    ASSERT_OK(dray_column_from_values(DRAY_DT_DATE32, 0, d, NULL, N, &c[5]));
    const char *names[6] = {"a", "x", "flag", "s", "cat", "day"};
    dray_table *t;
    ASSERT_OK(dray_table_create(names, c, 6, &t));
    for (int i = 0; i < 6; i++)
        dray_column_release(c[i]);
    return t;
}

static dray_column *eval(const dray_table *t, const char *text, dray_col_type want)
{
    dray_expr *e;
    ASSERT_OK(dray_expr_compile(text, t, &e));
    ASSERT_EQ(dray_expr_type(e), want);
    dray_column *c;
    ASSERT_OK(dray_expr_eval(e, t, &c));
    ASSERT_EQ(dray_column_length(c), dray_table_num_rows(t));
    dray_expr_destroy(e);
    return c;
}

/* Three-valued booleans: 1 true, 0 false, -1 null. */
static int tv(const dray_column *c, int64_t i)
{
    return dray_column_is_valid(c, i) ? (int)dray_column_get_i64(c, i) : -1;
}

TEST(arithmetic)
{
    dray_table *t = make();
    dray_column *A = dray_table_column(t, 0), *X = dray_table_column(t, 1);
    dray_column *c1 = eval(t, "a * 3 + x / 2 - 1", DRAY_DT_FLOAT64);
    dray_column *c2 = eval(t, "a % 7 - -a", DRAY_DT_INT64);
    dray_column *c3 = eval(t, "log(abs(x) + 1) + sqrt(abs(a)) + exp(0) + floor(x) - ceil(x)", DRAY_DT_FLOAT64);
    dray_column *c4 = eval(t, "a / 4", DRAY_DT_FLOAT64);
    for (int i = 0; i < N; i++) {
        bool va = dray_column_is_valid(A, i), vx = dray_column_is_valid(X, i);
        double a = (double)dray_column_get_i64(A, i), x = dray_column_get_f64(X, i);
        ASSERT_EQ(dray_column_is_valid(c1, i), va && vx);
        if (va && vx)
            ASSERT_NEAR(dray_column_get_f64(c1, i), a * 3 + x / 2 - 1, 1e-12);
        ASSERT_EQ(dray_column_is_valid(c2, i), va);
        if (va)
            ASSERT_EQ(dray_column_get_i64(c2, i), (int64_t)a % 7 + (int64_t)a);
        if (va && vx)
            ASSERT_NEAR(dray_column_get_f64(c3, i),
                        log(fabs(x) + 1) + sqrt(fabs(a)) + 1 + floor(x) - ceil(x), 1e-12);
        if (va)
            ASSERT_NEAR(dray_column_get_f64(c4, i), a / 4, 0);
    }
    /* modulo by zero is null, not a crash */
    dray_column *c5 = eval(t, "a % 0", DRAY_DT_INT64);
    ASSERT_EQ(dray_column_null_count(c5), N);
    dray_column_release(c1);
    dray_column_release(c2);
    dray_column_release(c3);
    dray_column_release(c4);
    dray_column_release(c5);
    dray_table_release(t);
}

TEST(logic)
{
    dray_table *t = make();
    dray_column *A = dray_table_column(t, 0), *X = dray_table_column(t, 1), *F = dray_table_column(t, 2);
    dray_column *c = eval(t, "(a > 10 and x <= 3.5) or not flag", DRAY_DT_BOOL);
    dray_column *d = eval(t, "a >= 0 and x != x + 1 or a == -5", DRAY_DT_BOOL);
    for (int i = 0; i < N; i++) {
        int p = dray_column_is_valid(A, i) ? dray_column_get_i64(A, i) > 10 : -1;
        int q = dray_column_is_valid(X, i) ? dray_column_get_f64(X, i) <= 3.5 : -1;
        int r = !dray_column_get_i64(F, i);
        int pq = (p == 0 || q == 0) ? 0 : (p == 1 && q == 1) ? 1 : -1;
        int want = (pq == 1 || r == 1) ? 1 : (pq == 0 && r == 0) ? 0 : -1;
        ASSERT_EQ(tv(c, i), want);
        int g = dray_column_is_valid(A, i) ? dray_column_get_i64(A, i) >= 0 : -1;
        int h = dray_column_is_valid(X, i) ? 1 : -1;
        int gh = (g == 0 || h == 0) ? 0 : (g == 1 && h == 1) ? 1 : -1;
        int k = dray_column_is_valid(A, i) ? dray_column_get_i64(A, i) == -5 : -1;
        int w2 = (gh == 1 || k == 1) ? 1 : (gh == 0 && k == 0) ? 0 : -1;
        ASSERT_EQ(tv(d, i), w2);
    }
    /* filter keeps exactly the true rows */
    dray_table *f;
    ASSERT_OK(dray_table_filter(t, "(a > 10 and x <= 3.5) or not flag", &f));
    int64_t n = 0;
    for (int i = 0; i < N; i++)
        n += tv(c, i) == 1;
    ASSERT_EQ(dray_table_num_rows(f), n);
    dray_table_release(f);
    dray_column_release(c);
    dray_column_release(d);
    dray_table_release(t);
}

TEST(strings_dates)
{
    dray_table *t = make();
    const char *cols[2] = {"s", "cat"};
    for (int k = 0; k < 2; k++) {
        char text[256];
        snprintf(text, sizeof(text), "startswith(%s, 'ab') or endswith(%s, '7') or %s == 'q2' or "
                 "contains(%s, 'b3')", cols[k], cols[k], cols[k], cols[k]);
        dray_column *c = eval(t, text, DRAY_DT_BOOL);
        snprintf(text, sizeof(text), "len(%s)", cols[k]);
        dray_column *l = eval(t, text, DRAY_DT_INT64);
        snprintf(text, sizeof(text), "%s > 'q' and is_not_null(%s)", cols[k], cols[k]);
        dray_column *g = eval(t, text, DRAY_DT_BOOL);
        dray_column *S = dray_table_column(t, (size_t)(3 + k));
        for (int i = 0; i < N; i++) {
            size_t n;
            const char *s = dray_column_get_str(S, i, &n);
            if (!s) {
                ASSERT_EQ(tv(c, i), -1);
                ASSERT_EQ(tv(g, i), 0); /* null and false is false */
                continue;
            }
            char z[32];
            memcpy(z, s, n);
            z[n] = 0;
            bool want = !strncmp(z, "ab", 2) || z[n - 1] == '7' || !strcmp(z, "q2") || strstr(z, "b3");
            ASSERT_EQ(tv(c, i), want);
            ASSERT_EQ(dray_column_get_i64(l, i), (int64_t)n);
            ASSERT_EQ(tv(g, i), strcmp(z, "q") > 0);
        }
        dray_column_release(c);
        dray_column_release(l);
        dray_column_release(g);
    }
    /* a date column against a date literal; year/month/day (19000 is 2022-01-08) */
    dray_column *c = eval(t, "day >= '2022-06-01' and year(day) == 2022", DRAY_DT_BOOL);
    dray_column *m = eval(t, "month(day) * 100 + day(day)", DRAY_DT_INT64);
    ASSERT_EQ(dray_column_get_i64(m, 0), 108);
    for (int i = 0; i < N; i++) {
        int64_t dd = 19000 + i % 400;
        ASSERT_EQ(tv(c, i), dd >= 19144 && dd <= 19357);
    }
    dray_column *s = eval(t, "string(a)", DRAY_DT_UTF8);
    size_t n;
    const char *p = dray_column_get_str(s, 1, &n);
    char want[32];
    snprintf(want, sizeof(want), "%lld", (long long)dray_column_get_i64(dray_table_column(t, 0), 1));
    ASSERT_TRUE(n == strlen(want) && !memcmp(p, want, n));
    dray_column *back = eval(t, "int64(string(a)) - a", DRAY_DT_INT64);
    for (int i = 0; i < N; i++)
        if (dray_column_is_valid(back, i))
            ASSERT_EQ(dray_column_get_i64(back, i), 0);
    dray_column_release(back);
    dray_column_release(s);
    dray_column_release(c);
    dray_column_release(m);
    dray_table_release(t);
}

TEST(errors)
{
    dray_table *t = make();
    dray_expr *e;
    ASSERT_STATUS(dray_expr_compile("a > ", t, &e), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "column 5");
    ASSERT_STATUS(dray_expr_compile("nope + 1", t, &e), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "no column 'nope'");
    ASSERT_STATUS(dray_expr_compile("s + 1", t, &e), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "utf8 and int64");
    ASSERT_STATUS(dray_expr_compile("frob(a)", t, &e), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "unknown function 'frob'");
    ASSERT_STATUS(dray_expr_compile("'abc", t, &e), DRAY_EINVAL);
    ASSERT_STATUS(dray_expr_compile("a > 1 )", t, &e), DRAY_EINVAL);
    ASSERT_STATUS(dray_expr_compile("day > 'not a date'", t, &e), DRAY_EINVAL);
    ASSERT_STATUS(dray_expr_compile("not a", t, &e), DRAY_EINVAL);
    dray_table *f;
    ASSERT_STATUS(dray_table_filter(t, "a + 1", &f), DRAY_ETYPE);
    ASSERT_OK(dray_expr_compile("`a` + 1", t, &e));
    dray_expr_destroy(e);
    dray_table_release(t);
}

RUN_TESTS(T_(arithmetic), T_(logic), T_(strings_dates), T_(errors))
