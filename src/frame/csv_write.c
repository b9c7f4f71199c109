/* The CSV writer: a header line, then rows formatted into one buffer and written in large blocks;
 * fields that hold the delimiter, a quote, a line break, or would read back as null are quoted. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

typedef struct wbuf {
    FILE *f;
    char *b;
    size_t len, cap;
} wbuf;

static bool wflush(wbuf *w)
{
    bool ok = fwrite(w->b, 1, w->len, w->f) == w->len;
    w->len = 0;
    return ok;
}

static bool wput(wbuf *w, const char *s, size_t n)
{
    if (w->len + n > w->cap && !wflush(w))
        return false;
    if (n > w->cap)
        return fwrite(s, 1, n, w->f) == n;
    memcpy(w->b + w->len, s, n);
    w->len += n;
    return true;
}

static bool needs_quotes(const char *s, size_t n)
{
    static const char *const na[] = {"NA", "N/A", "NULL", "null", "NaN", "nan"};
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r')
            return true;
    for (size_t i = 0; i < sizeof(na) / sizeof(na[0]); i++)
        if (strlen(na[i]) == n && !memcmp(na[i], s, n))
            return true;
    return false;
}

static bool put_text(wbuf *w, const char *s, size_t n)
{
    if (!needs_quotes(s, n))
        return wput(w, s, n);
    if (!wput(w, "\"", 1))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' && !wput(w, "\"", 1))
            return false;
        if (!wput(w, s + i, 1))
            return false;
    }
    return wput(w, "\"", 1);
}

dray_status dray_csv_write(const dray_table *t, const char *path, bool append)
{
    wbuf w = {fopen(path, append ? "ab" : "wb"), malloc(1 << 20), 0, 1 << 20};
    dray_status st = DRAY_OK;
    if (!w.f || !w.b) {
        st = dray_set_error(w.f ? DRAY_ENOMEM : DRAY_EIO, "cannot write '%s': %s", path,
                            w.f ? "out of memory" : strerror(errno));
        goto out;
    }
    bool ok = true;
    if (!append) {
        for (size_t c = 0; c < t->ncols && ok; c++)
            ok = (!c || wput(&w, ",", 1)) && put_text(&w, t->names[c], strlen(t->names[c]));
        ok = ok && wput(&w, "\n", 1);
    }
    char buf[128];
    for (int64_t i = 0; i < t->nrows && ok; i++) {
        for (size_t c = 0; c < t->ncols && ok; c++) {
            const dray_column *col = t->cols[c];
            if (c)
                ok = wput(&w, ",", 1);
            if (col->type == DRAY_DT_UTF8 || col->type == DRAY_DT_DICT) {
                size_t l;
                const char *s = dray_column_get_str(col, i, &l);
                if (s)
                    ok = ok && put_text(&w, s, l);
            } else {
                int n = dray__format_value(col, i, buf, sizeof(buf));
                if (n > 0)
                    ok = ok && wput(&w, buf, (size_t)n);
            }
        }
        ok = ok && wput(&w, "\n", 1);
    }
    ok = ok && wflush(&w);
    if (!ok)
        st = dray_set_error(DRAY_EIO, "write to '%s' failed: %s", path, strerror(errno));
out:
    if (w.f && fclose(w.f) != 0 && !st)
        st = dray_set_error(DRAY_EIO, "write to '%s' failed: %s", path, strerror(errno));
    free(w.b);
    return st;
}
