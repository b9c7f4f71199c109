/* Helpers of the parquet tests: a generated batch of every supported Arrow type (owned, with release
 * callbacks), a canonical text rendering of batches that tests/parquet/oracle.mjs also prints, and
 * running the npm oracles (skipped with a message when npm is unreachable). */
#ifndef DRAY_TESTS_PQ_TEST_H
#define DRAY_TESTS_PQ_TEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dray/parquet.h"
#include "test.h"

/* Helpers a test file may leave unused. */
#define PQT_FN static __attribute__((unused))

/* ==== Growing text ==== */
typedef struct pqt_text {
    char *s;
    size_t len, cap;
} pqt_text;

PQT_FN void pqt_printf(pqt_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
PQT_FN void pqt_printf(pqt_text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (t->s && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        t->s = realloc(t->s, cap);
        ASSERT_TRUE(t->s != NULL);
        t->cap = cap;
    }
}

/* ==== Canonical rendering (same as oracle.mjs) ==== */
PQT_FN bool pqt_valid(const struct ArrowArray *a, int64_t i)
{
    const uint8_t *v = a->buffers[0];
    return a->null_count == 0 || !v || (v[i >> 3] >> (i & 7) & 1);
}

PQT_FN void pqt_render_cell(pqt_text *t, const struct ArrowSchema *s, const struct ArrowArray *a,
                            int64_t row)
{
    int64_t i = a->offset + row;
    if (!pqt_valid(a, i)) {
        pqt_printf(t, "N");
        return;
    }
    const char *f = s->format;
    if (s->dictionary) {
        int64_t k;
        switch (f[0]) {
        case 'c': k = ((const int8_t *)a->buffers[1])[i]; break;
        case 's': k = ((const int16_t *)a->buffers[1])[i]; break;
        case 'i': k = ((const int32_t *)a->buffers[1])[i]; break;
        default: k = ((const int64_t *)a->buffers[1])[i]; break;
        }
        pqt_render_cell(t, s->dictionary, a->dictionary, k);
        return;
    }
    const void *b = a->buffers[1];
    if (strcmp(f, "u") == 0 || strcmp(f, "z") == 0) {
        const int32_t *o = b;
        const uint8_t *d = a->buffers[2];
        pqt_printf(t, "s");
        for (int32_t k = o[i]; k < o[i + 1]; k++)
            pqt_printf(t, "%02x", d[k]);
    } else if (strcmp(f, "b") == 0) {
        pqt_printf(t, "%d", ((const uint8_t *)b)[i >> 3] >> (i & 7) & 1);
    } else if (strcmp(f, "f") == 0) {
        float x = ((const float *)b)[i];
        uint32_t u;
        memcpy(&u, &x, 4);
        if (x != x)
            pqt_printf(t, "nan");
        else
            pqt_printf(t, "f%x", u);
    } else if (strcmp(f, "g") == 0) {
        double x = ((const double *)b)[i];
        uint64_t u;
        memcpy(&u, &x, 8);
        if (x != x)
            pqt_printf(t, "nan");
        else
            pqt_printf(t, "d%llx", (unsigned long long)u);
    } else if (strncmp(f, "ts", 2) == 0) {
        int64_t x = ((const int64_t *)b)[i];
        static const int64_t mul[] = {1000000000, 1000000, 1000, 1};
        const char *u = strchr("smun", f[2]);
        pqt_printf(t, "%lld", (long long)(x * mul[u - "smun"]));
    } else if (strcmp(f, "tdD") == 0 || strcmp(f, "i") == 0) {
        pqt_printf(t, "%d", ((const int32_t *)b)[i]);
    } else if (strcmp(f, "c") == 0) {
        pqt_printf(t, "%d", ((const int8_t *)b)[i]);
    } else if (strcmp(f, "s") == 0) {
        pqt_printf(t, "%d", ((const int16_t *)b)[i]);
    } else if (strcmp(f, "l") == 0) {
        pqt_printf(t, "%lld", (long long)((const int64_t *)b)[i]);
    } else if (strcmp(f, "C") == 0) {
        pqt_printf(t, "%u", ((const uint8_t *)b)[i]);
    } else if (strcmp(f, "S") == 0) {
        pqt_printf(t, "%u", ((const uint16_t *)b)[i]);
    } else if (strcmp(f, "I") == 0) {
        pqt_printf(t, "%u", ((const uint32_t *)b)[i]);
    } else if (strcmp(f, "L") == 0) {
        pqt_printf(t, "%llu", (unsigned long long)((const uint64_t *)b)[i]);
    } else {
        TEST_FAIL_("cannot render format %s", f);
    }
}

/* pqt_render_rows: appends rows [from, from+n) of a "+s" batch (no header). */
PQT_FN void pqt_render_rows(pqt_text *t, const struct ArrowSchema *s, const struct ArrowArray *a,
                            int64_t from, int64_t n)
{
    for (int64_t r = from; r < from + n; r++) {
        for (int64_t c = 0; c < s->n_children; c++) {
            if (c)
                pqt_printf(t, "\t");
            pqt_render_cell(t, s->children[c], a->children[c], a->offset + r);
        }
        pqt_printf(t, "\n");
    }
}

PQT_FN void pqt_render_header(pqt_text *t, const struct ArrowSchema *s)
{
    for (int64_t c = 0; c < s->n_children; c++)
        pqt_printf(t, "%s%s", c ? "\t" : "", s->children[c]->name);
    pqt_printf(t, "\n");
}

/* pqt_render_file: the whole file (all row groups, projected columns) read by our reader. */
PQT_FN char *pqt_render_file(const char *path, const int *cols, size_t ncols)
{
    dray_parquet_file *f;
    ASSERT_OK(dray_parquet_open(path, &f));
    pqt_text t = {0};
    pqt_printf(&t, "%s", "");
    for (int g = 0; g < dray_parquet_num_row_groups(f); g++) {
        struct ArrowSchema s;
        struct ArrowArray a;
        ASSERT_OK(dray_parquet_read_row_group(f, g, cols, ncols, &s, &a));
        ASSERT_EQ(a.length, dray_parquet_row_group_num_rows(f, g));
        if (g == 0)
            pqt_render_header(&t, &s);
        pqt_render_rows(&t, &s, &a, 0, a.length);
        a.release(&a);
        s.release(&s);
    }
    if (dray_parquet_num_row_groups(f) == 0) {
        struct ArrowSchema s;
        ASSERT_OK(dray_parquet_schema(f, &s));
        pqt_render_header(&t, &s);
        s.release(&s);
    }
    dray_parquet_close(f);
    return t.s;
}

/* pqt_same_text: fails the test at the first differing line. */
PQT_FN void pqt_same_text(const char *want, const char *got, const char *what)
{
    int line = 1;
    const char *a = want, *b = got;
    while (*a || *b) {
        const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
        size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
        if (la != lb || memcmp(a, b, la) != 0)
            TEST_FAIL_("%s: line %d differs:\n  want: %.*s\n  got:  %.*s", what, line, (int)la, a,
                       (int)lb, b);
        a += la + (ea ? 1 : 0);
        b += lb + (eb ? 1 : 0);
        line++;
    }
}

/* ==== A generated batch of every type ==== */
typedef struct pqt_batch_priv {
    void *bufs[4];
    const void *ptrs[4];
    struct ArrowArray *kids[32];
    struct ArrowSchema *skids[32];
    char names[32][16];
} pqt_batch_priv;

PQT_FN void pqt_release_array(struct ArrowArray *a)
{
    pqt_batch_priv *p = a->private_data;
    for (int64_t i = 0; i < a->n_children; i++)
        a->children[i]->release(a->children[i]), free(a->children[i]);
    if (a->dictionary)
        a->dictionary->release(a->dictionary), free(a->dictionary);
    for (int i = 0; i < 4; i++)
        free(p->bufs[i]);
    free(p);
    a->release = NULL;
}

PQT_FN void pqt_release_schema(struct ArrowSchema *s)
{
    for (int64_t i = 0; i < s->n_children; i++)
        s->children[i]->release(s->children[i]), free(s->children[i]);
    if (s->dictionary)
        s->dictionary->release(s->dictionary), free(s->dictionary);
    free(s->private_data);
    s->release = NULL;
}

PQT_FN uint64_t pqt_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The test columns: name and Arrow format. "cat" is a utf8 dictionary with int32 indices, "bin" is
 * binary. */
static const char *const pqt_cols[][2] = {
    {"i8", "c"},     {"i16", "s"},    {"i32", "i"},    {"i64", "l"},    {"u8", "C"},
    {"u16", "S"},    {"u32", "I"},    {"u64", "L"},    {"f32", "f"},    {"f64", "g"},
    {"b", "b"},      {"str", "u"},    {"d", "tdD"},    {"ts_s", "tss:"}, {"ts_ms", "tsm:"},
    {"ts_us", "tsu:"}, {"ts_ns", "tsn:"}, {"ts_tz", "tsu:UTC"}, {"cat", "i"}, {"bin", "z"},
};
#define PQT_NCOLS ((int)(sizeof(pqt_cols) / sizeof(pqt_cols[0])))

PQT_FN struct ArrowArray *pqt_new_array(int64_t len, int nbuf)
{
    struct ArrowArray *a = calloc(1, sizeof(*a));
    pqt_batch_priv *p = calloc(1, sizeof(*p));
    ASSERT_TRUE(a && p);
    a->length = len;
    a->n_buffers = nbuf;
    a->buffers = p->ptrs;
    a->children = p->kids;
    a->private_data = p;
    a->release = pqt_release_array;
    return a;
}

PQT_FN void pqt_set_buf(struct ArrowArray *a, int i, void *buf)
{
    pqt_batch_priv *p = a->private_data;
    p->bufs[i] = buf;
    p->ptrs[i] = buf;
}

PQT_FN struct ArrowSchema *pqt_new_schema(const char *fmt, const char *name)
{
    struct ArrowSchema *s = calloc(1, sizeof(*s));
    pqt_batch_priv *p = calloc(1, sizeof(*p));
    ASSERT_TRUE(s && p);
    snprintf(p->names[0], sizeof(p->names[0]), "%s", name);
    snprintf(p->names[1], sizeof(p->names[1]), "%s", fmt);
    s->format = p->names[1];
    s->name = p->names[0];
    s->flags = ARROW_FLAG_NULLABLE;
    s->children = p->skids;
    s->private_data = p;
    s->release = pqt_release_schema;
    return s;
}

/* pqt_make: a batch of `rows` rows of every test column (nulls when null_every > 0: row r of column c is
 * null when (r + c) % null_every == 0), values drawn from seed, string cardinality `card`. */
PQT_FN void pqt_make(int64_t rows, uint64_t seed, int null_every, int card, struct ArrowSchema **schema,
                     struct ArrowArray **batch)
{
    static const char *words[] = {"",     "a",    "alpha", "héllo ✓",
                                  "zeta", "Zulu", "b\tc",  "a longer string value"};
    struct ArrowSchema *s = pqt_new_schema("+s", "");
    struct ArrowArray *b = pqt_new_array(rows, 1);
    uint64_t st = seed * 2654435761u + 1;
    for (int c = 0; c < PQT_NCOLS; c++) {
        const char *fmt = pqt_cols[c][1];
        bool is_str = strcmp(fmt, "u") == 0 || strcmp(fmt, "z") == 0;
        bool is_cat = strcmp(pqt_cols[c][0], "cat") == 0;
        struct ArrowSchema *cs = pqt_new_schema(fmt, pqt_cols[c][0]);
        struct ArrowArray *ca = pqt_new_array(rows, is_str ? 3 : 2);
        uint8_t *valid = calloc((size_t)rows / 8 + 1, 1);
        int64_t nulls = 0;
        for (int64_t r = 0; r < rows; r++) {
            if (null_every > 0 && (r + c) % null_every == 0)
                nulls++;
            else
                valid[r >> 3] |= (uint8_t)(1u << (r & 7));
        }
        ca->null_count = nulls;
        pqt_set_buf(ca, 0, valid);
        if (is_str) {
            int32_t *off = calloc((size_t)rows + 1, 4);
            size_t cap = 64, len = 0;
            char *data = malloc(cap);
            for (int64_t r = 0; r < rows; r++) {
                char tmp[64];
                uint64_t x = pqt_rand(&st);
                int n = (x % 4 == 0) ? snprintf(tmp, sizeof(tmp), "%s", words[x / 4 % 8])
                                     : snprintf(tmp, sizeof(tmp), "v%llu",
                                                (unsigned long long)(x % (uint64_t)card));
                if (valid[r >> 3] >> (r & 7) & 1) {
                    while (len + (size_t)n > cap)
                        data = realloc(data, cap *= 2);
                    memcpy(data + len, tmp, (size_t)n);
                    len += (size_t)n;
                }
                off[r + 1] = (int32_t)len;
            }
            pqt_set_buf(ca, 1, off);
            pqt_set_buf(ca, 2, data);
        } else if (is_cat) {
            int32_t *idx = calloc((size_t)rows + 1, 4);
            for (int64_t r = 0; r < rows; r++)
                idx[r] = (int32_t)(pqt_rand(&st) % 6);
            pqt_set_buf(ca, 1, idx);
            struct ArrowArray *d = pqt_new_array(6, 3);
            static const char dict[] = "redgreenbluecyanmagentayellow";
            int32_t *doff = malloc(7 * 4);
            const int32_t o[] = {0, 3, 8, 12, 16, 23, 29};
            memcpy(doff, o, sizeof(o));
            char *dd = malloc(sizeof(dict));
            memcpy(dd, dict, sizeof(dict));
            pqt_set_buf(d, 1, doff);
            pqt_set_buf(d, 2, dd);
            ca->dictionary = d;
            cs->dictionary = pqt_new_schema("u", "");
        } else {
            int w = strcmp(fmt, "b") == 0 ? 0 : (fmt[0] == 'c' || fmt[0] == 'C') ? 1
                    : (fmt[0] == 's' || fmt[0] == 'S') ? 2
                    : (fmt[0] == 'i' || fmt[0] == 'I' || fmt[0] == 'f' || fmt[1] == 'd') ? 4 : 8;
            uint8_t *vals = calloc((size_t)rows * (size_t)(w ? w : 1) + 8, 1);
            for (int64_t r = 0; r < rows; r++) {
                uint64_t x = pqt_rand(&st);
                if (w == 0) {
                    if (x & 1)
                        vals[r >> 3] |= (uint8_t)(1u << (r & 7));
                } else if (fmt[0] == 'f') {
                    float v = r % 17 == 5 ? NAN : (float)((int64_t)(x % 20001) - 10000) / 16.0f;
                    memcpy(vals + r * 4, &v, 4);
                } else if (fmt[0] == 'g') {
                    double v = r % 19 == 7 ? -0.0 : (double)((int64_t)(x % 2000001) - 1000000) / 3.0;
                    memcpy(vals + r * 8, &v, 8);
                } else if (fmt[0] == 't' && fmt[1] == 's') {
                    int64_t v = (int64_t)(x % 4000000000ull) - 2000000000;
                    if (fmt[2] == 'n')
                        v *= 1000003;
                    memcpy(vals + r * 8, &v, 8);
                } else if (fmt[1] == 'd') {
                    int32_t v = (int32_t)(x % 40000) - 20000;
                    memcpy(vals + r * 4, &v, 4);
                } else {
                    /* extremes now and then, so statistics see the signed/unsigned edges */
                    if (r % 23 == 1)
                        x = ~0ull;
                    else if (r % 23 == 2)
                        x = 1ull << (w * 8 - 1);
                    memcpy(vals + r * w, &x, (size_t)w);
                }
            }
            pqt_set_buf(ca, 1, vals);
        }
        s->children[c] = cs;
        b->children[c] = ca;
        s->n_children = c + 1;
        b->n_children = c + 1;
    }
    *schema = s;
    *batch = b;
}

PQT_FN void pqt_free(struct ArrowSchema *s, struct ArrowArray *b)
{
    b->release(b);
    free(b);
    s->release(s);
    free(s);
}

/* ==== Files and oracles ==== */

/* pqt_tmp: a fresh path under the build folder's tmp dir (caller frees). */
PQT_FN char *pqt_tmp(const char *name)
{
    const char *bd = getenv("DRAY_BUILD_DIR");
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/tmp-parquet", bd ? bd : "build");
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", p);
    ASSERT_EQ(system(cmd), 0);
    size_t n = strlen(p);
    snprintf(p + n, 4096 - n, "/%d-%s", (int)getpid(), name);
    return p;
}

/* pqt_write: writes batch b of schema s to path in one call, with options o (NULL = defaults). */
PQT_FN void pqt_write(const char *path, struct ArrowSchema *s, struct ArrowArray *b,
                      const dray_parquet_write_opts *o)
{
    dray_parquet_writer *w;
    ASSERT_OK(dray_parquet_writer_open(path, s, o, &w));
    ASSERT_OK(dray_parquet_writer_write(w, b));
    ASSERT_OK(dray_parquet_writer_close(w));
}

/* pqt_run: stdout of a shell command (caller frees); fails the test on a non-zero exit. */
PQT_FN char *pqt_run(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    ASSERT_TRUE(p != NULL);
    pqt_text t = {0};
    pqt_printf(&t, "%s", "");
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
        pqt_printf(&t, "%.*s", (int)n, buf);
    int rc = pclose(p);
    if (rc != 0)
        TEST_FAIL_("command failed (%d): %s", rc, cmd);
    return t.s;
}

/* pqt_npm: the oracle folder, installing it on first use; NULL (with a message) when unavailable. */
PQT_FN const char *pqt_npm(void)
{
    static char dir[4096];
    static int state; /* 0 unknown, 1 ok, 2 unavailable */
    if (state == 0) {
        const char *src = getenv("DRAY_SOURCE_DIR");
        const char *bd = getenv("DRAY_BUILD_DIR");
        char cmd[8192];
        snprintf(cmd, sizeof(cmd), "'%s/tests/parquet/setup-oracles.sh' '%s'", src ? src : ".",
                 bd ? bd : "build");
        FILE *p = popen(cmd, "r");
        size_t n = p ? fread(dir, 1, sizeof(dir) - 1, p) : 0;
        int rc = p ? pclose(p) : -1;
        dir[n] = '\0';
        while (n && dir[n - 1] == '\n')
            dir[--n] = '\0';
        state = rc == 0 && n ? 1 : 2;
        if (state == 2)
            fprintf(stderr, "SKIP: npm oracles (DuckDB, hyparquet) unavailable: npm unreachable\n");
    }
    return state == 1 ? dir : NULL;
}

/* pqt_oracle: stdout of `node oracle.mjs ARGS` (caller frees). */
PQT_FN char *pqt_oracle(const char *args)
{
    const char *src = getenv("DRAY_SOURCE_DIR");
    size_t cap = strlen(args) + 16384;
    char *cmd = malloc(cap);
    ASSERT_TRUE(cmd != NULL);
    snprintf(cmd, cap, "DRAY_NPM_DIR='%s' node '%s/tests/parquet/oracle.mjs' %s", pqt_npm(),
             src ? src : ".", args);
    char *out = pqt_run(cmd);
    free(cmd);
    return out;
}

#endif /* DRAY_TESTS_PQ_TEST_H */
