/* Request targets of the dashboard: "path?key=value&..." split and percent-decoded with strict
 * limits (the fuzzed parser), integer parameters, and the safety check of static paths. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes s[0..len) into out (size cap, NUL-terminated); '+' is a space in query parts. */
static dray_status decode(const char *s, size_t len, char *out, size_t cap, bool query,
                          const char *what)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 1 < len ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return dray_set_error(DRAY_EINVAL, "%s: bad percent escape at byte %zu", what, i);
            c = (unsigned char)(hi * 16 + lo);
            if (c == 0 || c < 0x20 || c == 0x7f)
                return dray_set_error(DRAY_EINVAL, "%s: control character %%%02X at byte %zu",
                                      what, c, i);
            i += 2;
        } else if (c == '+' && query) {
            c = ' ';
        } else if (c < 0x20 || c == 0x7f) {
            return dray_set_error(DRAY_EINVAL, "%s: control character 0x%02x at byte %zu", what, c,
                                  i);
        }
        if (o + 1 >= cap)
            return dray_set_error(DRAY_EINVAL, "%s: longer than %zu bytes", what, cap - 1);
        out[o++] = (char)c;
    }
    out[o] = 0;
    return DRAY_OK;
}

dray_status db_query_parse(const char *target, db_query *q)
{
    if (!target || !q)
        return dray_set_error(DRAY_EINVAL, "request target is NULL");
    memset(q, 0, sizeof(*q));
    const char *qm = strchr(target, '?');
    size_t plen = qm ? (size_t)(qm - target) : strlen(target);
    dray_status st = decode(target, plen, q->path, sizeof q->path, false, "path");
    if (st)
        return st;
    if (q->path[0] != '/')
        return dray_set_error(DRAY_EINVAL, "path '%.40s' does not start with '/'", q->path);
    if (!qm)
        return DRAY_OK;
    const char *p = qm + 1;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len) {
            if (q->n == DB_MAX_PARAMS)
                return dray_set_error(DRAY_EINVAL, "more than %d query parameters",
                                      DB_MAX_PARAMS);
            const char *eq = memchr(p, '=', len);
            size_t klen = eq ? (size_t)(eq - p) : len;
            if (!klen)
                return dray_set_error(DRAY_EINVAL, "query parameter %zu has an empty name",
                                      q->n + 1);
            if ((st = decode(p, klen, q->key[q->n], sizeof q->key[0], true, "parameter name")))
                return st;
            if (eq && (st = decode(eq + 1, len - klen - 1, q->val[q->n], sizeof q->val[0], true,
                                   q->key[q->n])))
                return st;
            for (size_t i = 0; i < q->n; i++)
                if (!strcmp(q->key[i], q->key[q->n]))
                    return dray_set_error(DRAY_EINVAL, "query parameter '%s' given twice",
                                          q->key[i]);
            q->n++;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return DRAY_OK;
}

const char *db_query_get(const db_query *q, const char *key)
{
    for (size_t i = 0; i < q->n; i++)
        if (!strcmp(q->key[i], key))
            return q->val[i];
    return NULL;
}

dray_status db_query_u64(const db_query *q, const char *key, uint64_t dflt, uint64_t max,
                         uint64_t *out)
{
    const char *v = db_query_get(q, key);
    if (!v) {
        *out = dflt;
        return DRAY_OK;
    }
    if (!*v || strlen(v) > 19)
        return dray_set_error(DRAY_EINVAL, "query parameter '%s': '%s' is not an integer", key, v);
    uint64_t x = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            return dray_set_error(DRAY_EINVAL, "query parameter '%s': '%s' is not an integer",
                                  key, v);
        x = x * 10 + (uint64_t)(*p - '0');
    }
    if (x > max)
        return dray_set_error(DRAY_EINVAL, "query parameter '%s': %llu is above the maximum %llu",
                              key, (unsigned long long)x, (unsigned long long)max);
    *out = x;
    return DRAY_OK;
}

bool db_path_safe(const char *path)
{
    if (path[0] != '/' || strstr(path, "..") || strstr(path, "//") || strchr(path, '\\'))
        return false;
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}
