/* libFuzzer target: serve's HTTP/1.x request parser (src/serve/parse.c). Every input must be
 * refused with an HTTP status and a message, reported incomplete, or parsed into a head whose
 * offsets lie inside the input; a parsed head's target must decode into a path starting with '/'
 * and a well-formed header/query snapshot, and every shorter prefix of a parsed head must read as
 * incomplete (the parser never accepts a head before its empty line). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/serve/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so that reads past the input are caught. */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    static dray__serve_http_head h;
    const size_t max_head = 4096;
    int rc = dray__serve_http_parse(buf, size, max_head, &h);
    if (rc != 0 && rc != 1 && (rc < 400 || rc > 599 || !h.error[0]))
        abort();
    if (rc == 1) {
        if (h.head_len == 0 || h.head_len > size || h.head_len > max_head ||
            h.n_fields > DRAY__SERVE_HTTP_MAX_FIELDS || h.method_len == 0 || h.target_len == 0 ||
            (size_t)h.target + h.target_len > h.head_len || buf[h.target] != '/' ||
            (h.minor != 0 && h.minor != 1) || (h.chunked && h.has_length))
            abort();
        for (size_t i = 0; i < h.n_fields; i++) {
            const dray__serve_http_field *f = &h.fields[i];
            if ((size_t)f->name + f->name_len > h.head_len ||
                (size_t)f->value + f->value_len > h.head_len || f->name_len == 0)
                abort();
        }
        dray__serve_call *c = dray__serve_call_new();
        if (!c)
            abort();
        char *path = NULL, err[128];
        int code = dray__serve_http_target(buf, &h, c, &path, err, sizeof(err));
        if (code == 0) {
            if (path[0] != '/')
                abort();
            /* The snapshot: NUL-separated pairs, headers first. */
            size_t pairs = 0;
            for (size_t i = 0; i < c->kv_len;) {
                const char *k = c->kv + i;
                const char *v = k + strlen(k) + 1;
                i = (size_t)(v - c->kv) + strlen(v) + 1;
                if (i > c->kv_len)
                    abort();
                if (i <= c->kv_headers)
                    pairs++;
            }
            if (pairs != h.n_fields)
                abort();
            free(path);
        } else if (code != 400 && code != 500) {
            abort();
        }
        dray__serve_call_unref(c);
        dray__serve_http_head h2;
        if (dray__serve_http_parse(buf, h.head_len - 1, max_head, &h2) == 1)
            abort();
    }
    free(buf);
    return 0;
}
