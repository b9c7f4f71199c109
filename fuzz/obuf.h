/* A growable byte buffer for fuzz targets that re-encode what they decoded: obuf_put is the
 * writer callback the frame codecs take. The caller frees p. */
#ifndef DRAY_FUZZ_OBUF_H
#define DRAY_FUZZ_OBUF_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dray/core.h"

typedef struct obuf {
    uint8_t *p;
    size_t len, cap;
} obuf;

static inline dray_status obuf_put(void *b, const void *data, size_t len)
{
    obuf *o = b;
    if (o->len + len > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 256;
        while (cap < o->len + len)
            cap *= 2;
        uint8_t *p = realloc(o->p, cap);
        if (!p)
            return DRAY_ENOMEM;
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, data, len);
    o->len += len;
    return DRAY_OK;
}

#endif /* DRAY_FUZZ_OBUF_H */
