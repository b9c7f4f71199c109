/* The CSV reader and writer: inference, quoting, CRLF, nulls, unicode, huge fields, ranges split at
 * every byte, errors naming file/line/column, skipping bad lines, schema and usecols, the writer's
 * round trip, and pandas (Debian's, via /usr/bin/python3) as an independent oracle. */
#include <unistd.h>

#include "dray/frame.h"
#include "frame/csv.h"
#include "test.h"

static dray_table *read_str(const char *text, const dray_csv_opts *o)
{
    dray_table *t = NULL;
    ASSERT_OK(dray_csv_read_buffer("mem.csv", text, strlen(text), o, &t, NULL));
    return t;
}

static void assert_str(const dray_table *t, int col, int64_t row, const char *want)
{
    size_t l = 0;
    const char *s = dray_column_get_str(dray_table_column(t, (size_t)col), row, &l);
    if (!want) {
        ASSERT_TRUE(s == NULL);
        return;
    }
    ASSERT_TRUE(s != NULL);
    if (l != strlen(want) || memcmp(s, want, l))
        TEST_FAIL_("row %lld: '%.*s' vs '%s'", (long long)row, (int)l, s, want);
}

TEST(inference)
{
    dray_table *t = read_str("i,f,b,d,ts,s,e\n"
                             "1,1.5,true,2024-02-29,2024-01-01 10:00:00,x,\n"
                             "-7,,false,1970-01-01,2024-01-01T10:00:00.5,NA,\n"
                             "NA,2e3,True,,,\"y\",\n", NULL);
    ASSERT_EQ(dray_table_num_rows(t), 3);
    static const dray_col_type want[7] = {DRAY_DT_INT64, DRAY_DT_FLOAT64, DRAY_DT_BOOL, DRAY_DT_DATE32,
                                       DRAY_DT_TIMESTAMP, DRAY_DT_UTF8, DRAY_DT_FLOAT64};
    for (int c = 0; c < 7; c++)
        ASSERT_EQ(dray_column_type(dray_table_column(t, (size_t)c)), want[c]);
    ASSERT_EQ(dray_column_get_i64(dray_table_column(t, 0), 1), -7);
    ASSERT_TRUE(!dray_column_is_valid(dray_table_column(t, 0), 2));
    ASSERT_NEAR(dray_column_get_f64(dray_table_column(t, 1), 2), 2000, 0);
    ASSERT_TRUE(!dray_column_is_valid(dray_table_column(t, 1), 1));
    ASSERT_EQ(dray_column_get_i64(dray_table_column(t, 2), 2), 1);
    /* 2024-02-29 is day 19782 after 1970-01-01 (hand-computed: 54 years, 13 leap days, 59 days) */
    ASSERT_EQ(dray_column_get_i64(dray_table_column(t, 3), 0), 54 * 365 + 13 + 59);
    ASSERT_EQ(dray_column_get_i64(dray_table_column(t, 3), 1), 0);
    ASSERT_EQ(dray_column_get_i64(dray_table_column(t, 4), 0), 1704103200LL * 1000000);
    ASSERT_EQ(dray_column_get_i64(dray_table_column(t, 4), 1), 1704103200LL * 1000000 + 500000);
    assert_str(t, 5, 0, "x");
    assert_str(t, 5, 1, NULL);
    assert_str(t, 5, 2, "y");
    ASSERT_EQ(dray_column_null_count(dray_table_column(t, 6)), 3);
    dray_table_release(t);
}

static const char tricky[] =
    "id,s,n\r\n"
    "1,\"a,b\",10\r\n"
    "2,\"say \"\"hi\"\"\",20\r\n"
    "3,\"multi\nline\r\nfield\",30\r\n"
    "\r\n"
    "4,,40\r\n"
    "5,\"\",50\r\n"
    "6,héllo wörld ✓,60\r\n"
    "7,\"\"\"\",70";

TEST(quoting)
{
    dray_table *t = read_str(tricky, NULL);
    ASSERT_EQ(dray_table_num_rows(t), 7);
    assert_str(t, 1, 0, "a,b");
    assert_str(t, 1, 1, "say \"hi\"");
    assert_str(t, 1, 2, "multi\nline\r\nfield");
    assert_str(t, 1, 3, NULL);
    assert_str(t, 1, 4, "");
    assert_str(t, 1, 5, "héllo wörld ✓");
    assert_str(t, 1, 6, "\"");
    ASSERT_EQ(dray_column_get_i64(dray_table_column(t, 2), 6), 70);
    ASSERT_EQ(dray_column_get_i64(dray_table_column(t, 0), 3), 4);
    dray_table_release(t);
}

TEST(huge_field)
{
    size_t n = 3 << 20;
    char *text = malloc(n + 64);
    strcpy(text, "a,b\n1,\"");
    size_t p = strlen(text);
    for (size_t i = 0; i < n; i++)
        text[p++] = (char)('a' + i % 26);
    strcpy(text + p, "\"\n2,x");
    dray_table *t = read_str(text, NULL);
    ASSERT_EQ(dray_table_num_rows(t), 2);
    size_t l;
    const char *s = dray_column_get_str(dray_table_column(t, 1), 0, &l);
    ASSERT_EQ(l, n);
    ASSERT_EQ(s[n - 1], 'a' + (n - 1) % 26);
    assert_str(t, 1, 1, "x");
    dray_table_release(t);
    free(text);
}

/* Every split of `text` into three ranges (with quote parity from the prefix) gives the same rows
 * as one range. */
TEST(ranges_every_split)
{
    dray_csv_opts o;
    dray_csv_opts_init(&o);
    size_t len = strlen(tricky);
    dray__csv_plan *p;
    ASSERT_OK(dray__csv_plan_create("t.csv", tricky, len, true, &o, &p));
    dray_table *whole;
    ASSERT_OK(dray__csv_parse_range(p, "t.csv", tricky, len, 0, len, false, &whole, NULL));
    for (size_t a = 1; a < len; a++) {
        for (size_t b = a; b <= len; b += 7) {
            size_t cuts[4] = {0, a, b, len};
            dray_table *parts[3];
            for (int k = 0; k < 3; k++) {
                size_t s = cuts[k];
                bool inq = s > 0 && (dray__csv_count_quotes(tricky, s - 1, '"') & 1);
                ASSERT_OK(dray__csv_parse_range(p, "t.csv", tricky, len, s, cuts[k + 1], inq,
                                                &parts[k], NULL));
            }
            dray_table *cat;
            ASSERT_OK(dray_table_concat(parts, 3, &cat));
            if (!dray_table_equal(cat, whole))
                TEST_FAIL_("split at %zu, %zu: %lld rows", a, b, (long long)dray_table_num_rows(cat));
            dray_table_release(cat);
            for (int k = 0; k < 3; k++)
                dray_table_release(parts[k]);
        }
    }
    dray_table_release(whole);
    dray__csv_plan_destroy(p);
}

TEST(errors)
{
    dray_table *t;
    dray_csv_opts o;
    dray_csv_opts_init(&o);
    const char *ragged = "a,b\n1,2\n3\n4,5\n";
    ASSERT_STATUS(dray_csv_read_buffer("r.csv", ragged, strlen(ragged), &o, &t, NULL), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "r.csv:3: expected 2 fields, found 1");
    const char *more = "a,b\n1,2\n3,4,5\n";
    ASSERT_STATUS(dray_csv_read_buffer("m.csv", more, strlen(more), &o, &t, NULL), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "m.csv:3: expected 2 fields");
    const char *unterminated = "a,b\n1,\"abc\n2,3\n";
    ASSERT_STATUS(dray_csv_read_buffer("u.csv", unterminated, strlen(unterminated), &o, &t, NULL),
                  DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "u.csv:2: column 2: unterminated quoted field");
    const char *badval = "a,b\n1,2.5\n2,3.5\nx7,4\n";
    o.sample_bytes = 10; /* infer from the first row only */
    ASSERT_STATUS(dray_csv_read_buffer("v.csv", badval, strlen(badval), &o, &t, NULL), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "v.csv:4: column 1 ('a'): 'x7' is not int64");
    /* skipping: the bad rows go, the good ones stay */
    o.bad_lines = DRAY_BAD_LINES_SKIP;
    int64_t bad = -1;
    ASSERT_OK(dray_csv_read_buffer("v.csv", badval, strlen(badval), &o, &t, &bad));
    ASSERT_EQ(bad, 1);
    ASSERT_EQ(dray_table_num_rows(t), 2);
    ASSERT_NEAR(dray_column_get_f64(dray_table_column(t, 1), 1), 3.5, 0);
    dray_table_release(t);
    o.sample_bytes = 0;
    ASSERT_OK(dray_csv_read_buffer("r.csv", ragged, strlen(ragged), &o, &t, &bad));
    ASSERT_EQ(bad, 1);
    ASSERT_EQ(dray_table_num_rows(t), 2);
    ASSERT_EQ(dray_column_get_i64(dray_table_column(t, 1), 1), 5);
    dray_table_release(t);
    ASSERT_STATUS(dray_csv_read("/nonexistent/x.csv", &o, &t, NULL), DRAY_EIO);
    ASSERT_CONTAINS(dray_last_error(), "/nonexistent/x.csv");
    ASSERT_STATUS(dray_csv_read_buffer("e.csv", "", 0, &o, &t, NULL), DRAY_EFORMAT);
}

TEST(schema_usecols)
{
    dray_csv_opts o;
    dray_csv_opts_init(&o);
    dray_field schema[3] = {{"a", DRAY_DT_INT32, 0}, {"c", DRAY_DT_DICT, 0},
                            {"d", DRAY_DT_TIMESTAMP, DRAY_TU_SECOND}};
    const char *use[3] = {"d", "c", "a"};
    o.schema = schema;
    o.n_schema = 3;
    o.usecols = use;
    o.n_usecols = 3;
    dray_table *t = read_str("a,b,c,d\n1,x,red,2024-01-01\n2,y,blue,2024-01-02 00:00:01\n"
                             "3,z,red,\n", &o);
    ASSERT_EQ(dray_table_num_columns(t), 3);
    ASSERT_STREQ(dray_table_column_name(t, 0), "a");
    ASSERT_STREQ(dray_table_column_name(t, 2), "d");
    ASSERT_EQ(dray_column_type(dray_table_column(t, 0)), DRAY_DT_INT32);
    ASSERT_EQ(dray_column_type(dray_table_column(t, 1)), DRAY_DT_DICT);
    assert_str(t, 1, 2, "red");
    assert_str(t, 1, 1, "blue");
    ASSERT_EQ(dray_column_get_i64(dray_table_column(t, 2), 1), 1704153601LL);
    ASSERT_TRUE(!dray_column_is_valid(dray_table_column(t, 2), 2));
    dray_table_release(t);
    dray_field bad[1] = {{"a", DRAY_DT_INT8, 0}};
    o.schema = bad;
    o.n_schema = 1;
    o.usecols = NULL;
    dray_table *u;
    const char *big = "a\n100\n300\n";
    ASSERT_STATUS(dray_csv_read_buffer("big.csv", big, strlen(big), &o, &u, NULL), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "big.csv:3: column 1 ('a'): '300' is not int8");
    const char *nouse[1] = {"zz"};
    o.schema = NULL;
    o.n_schema = 0;
    o.usecols = nouse;
    o.n_usecols = 1;
    ASSERT_STATUS(dray_csv_read_buffer("big.csv", big, strlen(big), &o, &u, NULL), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "'zz'");
    o.usecols = NULL;
    o.header = false;
    t = read_str("5,6\n7,8", &o);
    ASSERT_STREQ(dray_table_column_name(t, 1), "c1");
    ASSERT_EQ(dray_table_num_rows(t), 2);
    ASSERT_EQ(dray_column_get_i64(dray_table_column(t, 1), 1), 8);
    dray_table_release(t);
}

TEST(writer_round_trip)
{
    dray_table *t = read_str(tricky, NULL), *back;
    char path[] = "/tmp/dray_csv_wXXXXXX";
    int fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    close(fd);
    ASSERT_OK(dray_csv_write(t, path, false));
    ASSERT_OK(dray_csv_read(path, NULL, &back, NULL));
    ASSERT_TRUE(dray_table_equal(t, back));
    dray_table_release(back);
    dray_table_release(t);
    t = read_str("f,d,ts,b\n0.1,2020-02-02,2020-01-01 00:00:00.25,true\n1e-300,,,false\n", NULL);
    ASSERT_OK(dray_csv_write(t, path, false));
    ASSERT_OK(dray_csv_read(path, NULL, &back, NULL));
    ASSERT_TRUE(dray_table_equal(t, back));
    dray_table_release(back);
    dray_table_release(t);
    unlink(path);
}

/* pandas reads the same generated files; row count, sums, null count, a category count and the
 * last timestamp must agree. */
TEST(pandas_oracle)
{
    if (access("/usr/bin/python3", X_OK) != 0) {
        fprintf(stderr, "no /usr/bin/python3: skipped\n");
        return;
    }
    char dir[] = "/tmp/dray_csv_pXXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    ASSERT_OK(dray_csv_gen(dir, 20000, 2, 7));
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 -c \"import pandas as pd,glob\n"
             "d=pd.concat([pd.read_csv(f,parse_dates=['ts']) for f in sorted(glob.glob('%s/*.csv'))])\n"
             "print(len(d), d.amount.isna().sum(), repr(d.amount.sum()), d.id.sum(),"
             " (d.category=='cat_07').sum(), d.ts.max().value//1000)\"", dir);
    FILE *p = popen(cmd, "r");
    ASSERT_TRUE(p != NULL);
    long long rows, nulls, idsum, cat7, tsmax;
    double sum;
    ASSERT_EQ(fscanf(p, "%lld %lld %lf %lld %lld %lld", &rows, &nulls, &sum, &idsum, &cat7, &tsmax), 6);
    ASSERT_EQ(pclose(p), 0);
    int64_t r2 = 0, n2 = 0, id2 = 0, c2 = 0, ts2 = INT64_MIN;
    double s2 = 0;
    for (int f = 0; f < 2; f++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/data-%d.csv", dir, f);
        dray_table *t;
        ASSERT_OK(dray_csv_read(path, NULL, &t, NULL));
        dray_column *id = dray_table_column(t, 0), *am = dray_table_column(t, 1),
                    *cat = dray_table_column(t, 2), *ts = dray_table_column(t, 3);
        ASSERT_EQ(dray_column_type(ts), DRAY_DT_TIMESTAMP);
        for (int64_t i = 0; i < dray_table_num_rows(t); i++) {
            r2++;
            id2 += dray_column_get_i64(id, i);
            if (dray_column_is_valid(am, i))
                s2 += dray_column_get_f64(am, i);
            else
                n2++;
            size_t l;
            const char *s = dray_column_get_str(cat, i, &l);
            c2 += l == 6 && !memcmp(s, "cat_07", 6);
            if (dray_column_get_i64(ts, i) > ts2)
                ts2 = dray_column_get_i64(ts, i);
        }
        dray_table_release(t);
        unlink(path);
    }
    rmdir(dir);
    ASSERT_EQ(r2, rows);
    ASSERT_EQ(n2, nulls);
    ASSERT_GT(nulls, 0);
    ASSERT_NEAR(s2, sum, 1e-6 * fabs(sum));
    ASSERT_EQ(id2, idsum);
    ASSERT_EQ(c2, cat7);
    ASSERT_EQ(ts2, tsmax);
}

/* pandas reads the tricky file too: the string column must match byte for byte (pandas reads a
 * quoted empty string as NaN, we as ""; that row is left out of the comparison). */
TEST(pandas_strings)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        return;
    char path[] = "/tmp/dray_csv_sXXXXXX";
    int fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(write(fd, tricky, strlen(tricky)), (ssize_t)strlen(tricky));
    close(fd);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 -c \"import pandas as pd\n"
             "d=pd.read_csv('%s')\n"
             "print(' '.join('-' if v!=v else v.encode().hex() for v in d.s))\"", path);
    FILE *p = popen(cmd, "r");
    char line[4096];
    ASSERT_TRUE(p && fgets(line, sizeof(line), p));
    pclose(p);
    unlink(path);
    dray_table *t = read_str(tricky, NULL);
    char mine[4096] = "";
    for (int64_t i = 0; i < dray_table_num_rows(t); i++) {
        size_t l;
        const char *s = dray_column_get_str(dray_table_column(t, 1), i, &l);
        if (i)
            strcat(mine, " ");
        if (!s || l == 0)
            strcat(mine, "-");
        for (size_t k = 0; s && k < l; k++)
            sprintf(mine + strlen(mine), "%02x", (unsigned char)s[k]);
    }
    strcat(mine, "\n");
    ASSERT_STREQ(mine, line);
    dray_table_release(t);
}

/* Numbers of every shape the scanner's fast paths see (1..20 integer digits, 0..20 decimals, signs,
 * leading zeros, exponents), in the middle of records and at the very end of the data: every
 * float64 must be bit-identical to strtod's and every int64 equal to strtoll's on the same text. */
TEST(numbers_exact)
{
    enum { N = 6000 };
    char *text = malloc((size_t)N * 96 + 64), (*num)[48] = malloc((size_t)N * 48),
         (*ints)[24] = malloc((size_t)N * 24);
    ASSERT_TRUE(text && num && ints);
    uint64_t s = 88172645463325252ull;
    size_t at = (size_t)sprintf(text, "x,i,tail\n");
    for (int r = 0; r < N; r++) {
        char *b = num[r];
        int k = 0;
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        if (s & 1)
            b[k++] = '-';
        int id = 1 + (int)((s >> 8) % (r % 3 ? 9 : 20)), fd = (int)((s >> 16) % (r % 5 ? 4 : 21));
        for (int i = 0; i < id; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            b[k++] = (char)('0' + (i == 0 && (s & 3) ? (s >> 5) % 9 + 1 : (s >> 5) % 10));
        }
        if (fd || (s >> 40) % 7 == 0)
            b[k++] = '.';
        for (int i = 0; i < fd; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            b[k++] = (char)('0' + (s >> 5) % 10);
        }
        if ((s >> 50) % 23 == 0)
            k += sprintf(b + k, "e%d", (int)((s >> 30) % 41) - 20);
        b[k] = 0;
        int ik = sprintf(ints[r], "%s%llu", (s >> 3) & 1 ? "-" : "",
                         (unsigned long long)((s >> 9) % (r % 2 ? 1000ull : 999999999999999999ull)));
        (void)ik;
        /* the last record has no trailing field or newline, so its numbers end the data */
        at += (size_t)sprintf(text + at, r == N - 1 ? "%s,%s,z" : "%s,%s,tail\n", num[r], ints[r]);
    }
    dray_csv_opts o;
    dray_csv_opts_init(&o);
    dray_field sch[2] = {{"x", DRAY_DT_FLOAT64, 0}, {"i", DRAY_DT_INT64, 0}};
    o.schema = sch;
    o.n_schema = 2;
    dray_table *t = read_str(text, &o);
    ASSERT_EQ(dray_table_num_rows(t), N);
    const double *x = dray_column_data(dray_table_column(t, 0));
    const int64_t *iv = dray_column_data(dray_table_column(t, 1));
    for (int r = 0; r < N; r++) {
        double want = strtod(num[r], NULL);
        if (memcmp(&want, &x[r], sizeof want))
            TEST_FAIL_("row %d: '%s' read as %.17g, strtod gives %.17g", r, num[r], x[r], want);
        ASSERT_EQ(iv[r], strtoll(ints[r], NULL, 10));
    }
    dray_table_release(t);
    free(text);
    free(num);
    free(ints);
}

typedef struct tbuf {
    uint8_t *p;
    size_t len;
} tbuf;

static dray_status tbuf_put(void *b, const void *data, size_t len)
{
    tbuf *o = b;
    uint8_t *p = realloc(o->p, o->len + len + 1);
    if (!p)
        return DRAY_ENOMEM;
    memcpy(p + o->len, data, len);
    o->p = p;
    o->len += len;
    return DRAY_OK;
}

/* A plan travels to cluster nodes as bytes: decoded, it parses every range exactly as the original
 * (usecols, an explicit schema, custom nulls, ';' and skip mode); every truncation and a field fed
 * out of order are DRAY_EFORMAT. */
TEST(plan_codec)
{
    const char *text = "a;b;c;d\n1;x;2024-01-02;4.5\n2;NIL;2024-01-03;\n3;'q;r';2024-01-04;1e3\nbad\n";
    dray_csv_opts o;
    dray_csv_opts_init(&o);
    o.delimiter = ';';
    o.quote = '\'';
    o.bad_lines = DRAY_BAD_LINES_SKIP;
    const char *use[3] = {"d", "b", "c"}, *na[2] = {"NIL", ""};
    dray_field sch[1] = {{"c", DRAY_DT_TIMESTAMP, DRAY_TU_SECOND}};
    o.usecols = use;
    o.n_usecols = 3;
    o.na_values = na;
    o.n_na_values = 2;
    o.schema = sch;
    o.n_schema = 1;
    dray__csv_plan *p, *q;
    size_t len = strlen(text);
    ASSERT_OK(dray__csv_plan_create("p.csv", text, len, true, &o, &p));
    tbuf b = {0};
    ASSERT_OK(dray__csv_plan_encode(p, tbuf_put, &b));
    ASSERT_OK(dray__csv_plan_decode(b.p, b.len, &q));
    for (size_t s = 0; s < len; s += 5) {
        dray_table *x, *y;
        int64_t bx = -1, by = -2;
        ASSERT_OK(dray__csv_parse_range(p, "p.csv", text, len, s, len, false, &x, &bx));
        ASSERT_OK(dray__csv_parse_range(q, "p.csv", text, len, s, len, false, &y, &by));
        ASSERT_TRUE(dray_table_equal(x, y));
        ASSERT_EQ(bx, by);
        if (s == 0) {
            ASSERT_EQ(dray_table_num_rows(x), 3);
            ASSERT_EQ(bx, 1);
            ASSERT_STREQ(dray_table_column_name(x, 0), "b");
            ASSERT_EQ(dray_column_type(dray_table_column(x, 1)), DRAY_DT_TIMESTAMP);
            ASSERT_TRUE(!dray_column_is_valid(dray_table_column(x, 0), 1));
            assert_str(x, 0, 2, "q;r");
        }
        dray_table_release(x);
        dray_table_release(y);
    }
    dray__csv_plan_destroy(q);
    for (size_t cut = 0; cut < b.len; cut++) {
        ASSERT_STATUS(dray__csv_plan_decode(b.p, cut, &q), DRAY_EFORMAT);
        ASSERT_CONTAINS(dray_last_error(), "CSV plan bytes");
    }
    /* field "b" (the second) claims column 1 before any column 0: out of order */
    size_t at = 4 + 4 + 16 + 8 + 1 + 8 + 8 + 1;
    ASSERT_EQ(b.p[at], 0);
    b.p[at] = 1;
    ASSERT_STATUS(dray__csv_plan_decode(b.p, b.len, &q), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "out of order");
    free(b.p);
    dray__csv_plan_destroy(p);
}

RUN_TESTS(T_(inference), T_(quoting), T_(huge_field), T_(ranges_every_split), T_(errors),
          T_(schema_usecols), T_(writer_round_trip), T_(pandas_oracle), T_(pandas_strings),
          T_(numbers_exact), T_(plan_codec))
