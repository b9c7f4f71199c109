/* serve's HTTP/1.x request parser: the request head (request line, header fields, framing:
 * Content-Length, chunked refused, keep-alive rules of 1.0 and 1.1) and the request target decoded
 * into a path and query arguments. Pure functions on a byte buffer (fuzzed by fuzz_serve_http.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* RFC 9110 token characters. */
static bool is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* Whether the comma-separated list value[0..len) holds `tok` (case-insensitive). */
static bool list_has(const char *value, size_t len, const char *tok)
{
    size_t tl = strlen(tok), i = 0;
    while (i < len) {
        while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
            i++;
        size_t j = i;
        while (j < len && value[j] != ',')
            j++;
        size_t e = j;
        while (e > i && (value[e - 1] == ' ' || value[e - 1] == '\t'))
            e--;
        if (e - i == tl && strncasecmp(value + i, tok, tl) == 0)
            return true;
        i = j;
    }
    return false;
}

static int fail(dray__serve_http_head *h, int status, const char *msg)
{
    snprintf(h->error, sizeof(h->error), "%s", msg);
    return status;
}

/* The next line in buf[pos..len): sets *end (before CR LF / LF) and returns the position after
 * it, or 0 when no line end is there yet. */
static size_t next_line(const char *buf, size_t len, size_t pos, size_t *end)
{
    const char *nl = memchr(buf + pos, '\n', len - pos);
    if (!nl)
        return 0;
    size_t e = (size_t)(nl - buf);
    *end = e > pos && buf[e - 1] == '\r' ? e - 1 : e;
    return e + 1;
}

int dray__serve_http_parse(const char *buf, size_t len, size_t max_head, dray__serve_http_head *h)
{
    memset(h, 0, sizeof(*h));
    size_t pos = 0, end = 0, nxt;
    /* Empty lines before a request are ignored (RFC 9112 2.2). */
    while (pos < len && (buf[pos] == '\r' || buf[pos] == '\n')) {
        if (pos >= 8)
            return fail(h, 400, "empty lines before the request line");
        pos++;
    }
    size_t limit = len < max_head ? len : max_head;
    nxt = next_line(buf, limit, pos, &end);
    if (!nxt) {
        if (len >= max_head)
            return fail(h, 431, "request head exceeds the limit");
        /* Reject garbage early instead of waiting for a line end. */
        for (size_t i = pos; i < len && buf[i] != ' '; i++)
            if (!is_tchar((unsigned char)buf[i]))
                return fail(h, 400, "malformed request line");
        return 0;
    }
    /* method SP target SP HTTP/1.x */
    size_t i = pos;
    while (i < end && is_tchar((unsigned char)buf[i]))
        i++;
    if (i == pos || i >= end || buf[i] != ' ' || i - pos >= sizeof(((dray__serve_call *)0)->method))
        return fail(h, 400, "malformed request line (method)");
    h->method = (uint32_t)pos;
    h->method_len = (uint32_t)(i - pos);
    size_t t = ++i;
    while (i < end && buf[i] != ' ') {
        unsigned char ch = (unsigned char)buf[i];
        if (ch <= 0x20 || ch == 0x7f)
            return fail(h, 400, "malformed request line (target)");
        i++;
    }
    if (i == t || i >= end || buf[t] != '/')
        return fail(h, 400, "malformed request line (target must start with '/')");
    h->target = (uint32_t)t;
    h->target_len = (uint32_t)(i - t);
    i++;
    if (end - i != 8 || memcmp(buf + i, "HTTP/1.", 7) != 0) {
        if (end - i >= 5 && memcmp(buf + i, "HTTP/", 5) == 0)
            return fail(h, 505, "HTTP version not supported (1.0 and 1.1 are)");
        return fail(h, 400, "malformed request line (version)");
    }
    if (buf[i + 7] == '1')
        h->minor = 1;
    else if (buf[i + 7] == '0')
        h->minor = 0;
    else
        return fail(h, 505, "HTTP version not supported (1.0 and 1.1 are)");
    bool conn_close = false, conn_keep = false, has_te = false;
    pos = nxt;
    for (;;) {
        nxt = next_line(buf, limit, pos, &end);
        if (!nxt) {
            if (len >= max_head)
                return fail(h, 431, "request head exceeds the limit");
            return 0;
        }
        if (end == pos)
            break; /* the empty line ending the head */
        if (buf[pos] == ' ' || buf[pos] == '\t')
            return fail(h, 400, "obsolete header line folding");
        size_t c = pos;
        while (c < end && is_tchar((unsigned char)buf[c]))
            c++;
        if (c == pos || c >= end || buf[c] != ':')
            return fail(h, 400, "malformed header field");
        size_t v = c + 1, ve = end;
        while (v < ve && (buf[v] == ' ' || buf[v] == '\t'))
            v++;
        while (ve > v && (buf[ve - 1] == ' ' || buf[ve - 1] == '\t'))
            ve--;
        for (size_t k = v; k < ve; k++) {
            unsigned char ch = (unsigned char)buf[k];
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return fail(h, 400, "control character in a header value");
        }
        if (h->n_fields == DRAY__SERVE_HTTP_MAX_FIELDS)
            return fail(h, 431, "too many header fields");
        dray__serve_http_field *f = &h->fields[h->n_fields++];
        f->name = (uint32_t)pos;
        f->name_len = (uint32_t)(c - pos);
        f->value = (uint32_t)v;
        f->value_len = (uint32_t)(ve - v);
        const char *name = buf + pos, *val = buf + v;
        size_t nl = c - pos, vl = ve - v;
        if (nl == 14 && strncasecmp(name, "content-length", 14) == 0) {
            if (vl == 0)
                return fail(h, 400, "empty Content-Length");
            uint64_t n = 0;
            for (size_t k = 0; k < vl; k++) {
                if (val[k] < '0' || val[k] > '9')
                    return fail(h, 400, "malformed Content-Length");
                if (n > (UINT64_MAX - 9) / 10)
                    return fail(h, 400, "Content-Length out of range");
                n = n * 10 + (uint64_t)(val[k] - '0');
            }
            if (h->has_length && n != h->content_length)
                return fail(h, 400, "conflicting Content-Length fields");
            h->has_length = true;
            h->content_length = n;
        } else if (nl == 17 && strncasecmp(name, "transfer-encoding", 17) == 0) {
            has_te = true;
        } else if (nl == 10 && strncasecmp(name, "connection", 10) == 0) {
            conn_close |= list_has(val, vl, "close");
            conn_keep |= list_has(val, vl, "keep-alive");
        } else if (nl == 6 && strncasecmp(name, "expect", 6) == 0) {
            if (vl == 12 && strncasecmp(val, "100-continue", 12) == 0)
                h->expect_continue = h->minor == 1;
            else
                return fail(h, 417, "unsupported Expect");
        }
        pos = nxt;
    }
    h->head_len = nxt;
    if (has_te) {
        if (h->has_length)
            return fail(h, 400, "both Transfer-Encoding and Content-Length");
        h->chunked = true; /* refused by the caller (411/501): bodies need a Content-Length */
    }
    h->keep_alive = h->minor == 1 ? !conn_close : (conn_keep && !conn_close);
    return 1;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes in[0..n) into out (n + 1 bytes), '+' as space when `plus`. Invalid escapes stay
 * as they are; false when a NUL byte would result. */
static bool url_decode(const char *in, size_t n, bool plus, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        int hi, lo;
        if (ch == '%' && i + 2 < n && (hi = hexval(in[i + 1])) >= 0 && (lo = hexval(in[i + 2])) >= 0) {
            ch = (char)(hi * 16 + lo);
            i += 2;
        } else if (ch == '+' && plus) {
            ch = ' ';
        }
        if (ch == '\0')
            return false;
        out[o++] = ch;
    }
    out[o] = '\0';
    return true;
}

int dray__serve_http_target(const char *buf, const dray__serve_http_head *h, dray__serve_call *c,
                            char **path, char *err, size_t errlen)
{
    const char *t = buf + h->target;
    size_t n = h->target_len;
    const char *q = memchr(t, '?', n);
    size_t pn = q ? (size_t)(q - t) : n;
    char *p = malloc(pn + 1);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return 500;
    }
    if (!url_decode(t, pn, false, p)) {
        free(p);
        snprintf(err, errlen, "request path decodes to a NUL byte");
        return 400;
    }
    /* Headers first (the snapshot's layout), then query arguments. */
    c->kv_len = c->kv_headers = 0;
    char small[256];
    for (size_t i = 0; i < h->n_fields; i++) {
        const dray__serve_http_field *f = &h->fields[i];
        size_t need = (size_t)f->name_len + f->value_len + 2;
        char *tmp = need <= sizeof(small) ? small : malloc(need);
        if (!tmp)
            goto oom;
        memcpy(tmp, buf + f->name, f->name_len);
        tmp[f->name_len] = '\0';
        memcpy(tmp + f->name_len + 1, buf + f->value, f->value_len);
        tmp[f->name_len + 1 + f->value_len] = '\0';
        bool ok = dray__serve_kv_put(c, tmp) && dray__serve_kv_put(c, tmp + f->name_len + 1);
        if (tmp != small)
            free(tmp);
        if (!ok)
            goto oom;
    }
    c->kv_headers = c->kv_len;
    if (q) {
        const char *a = q + 1, *e = t + n;
        while (a < e) {
            const char *amp = memchr(a, '&', (size_t)(e - a));
            const char *pe = amp ? amp : e;
            if (pe > a) {
                const char *eq = memchr(a, '=', (size_t)(pe - a));
                size_t kl = eq ? (size_t)(eq - a) : (size_t)(pe - a);
                size_t vl = eq ? (size_t)(pe - eq - 1) : 0;
                char *tmp = malloc(kl + vl + 2);
                if (!tmp)
                    goto oom;
                bool ok = url_decode(a, kl, true, tmp) &&
                          url_decode(eq ? eq + 1 : pe, vl, true, tmp + kl + 1);
                if (ok && (!dray__serve_kv_put(c, tmp) ||
                           !dray__serve_kv_put(c, tmp + strlen(tmp) + 1))) {
                    free(tmp);
                    goto oom;
                }
                free(tmp); /* an argument decoding to NUL bytes is dropped */
            }
            a = pe + 1;
        }
    }
    *path = p;
    return 0;
oom:
    free(p);
    snprintf(err, errlen, "out of memory");
    return 500;
}
