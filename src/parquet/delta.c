/* Decoding of DELTA_BINARY_PACKED (Encodings.md), the integer encoding under the delta string encodings
 * that format v2 writers (DuckDB's PARQUET_VERSION v2 among them) use. Arithmetic wraps in 64 bits. */
#include "internal.h"

static inline uint64_t unzig(uint64_t u) { return (u >> 1) ^ (0 - (u & 1)); }

/* Reads value j of width w (1..64) bit-packed at p (have bytes); missing bytes read as zero. */
static inline uint64_t unpack(const uint8_t *p, size_t have, size_t j, int w)
{
    size_t bit = j * (size_t)w, byte = bit >> 3;
    int sh = (int)(bit & 7);
    uint64_t lo = 0;
    uint8_t extra = 0;
    if (byte + 9 <= have) {
        memcpy(&lo, p + byte, 8);
        extra = p[byte + 8];
    } else {
        for (size_t i = 0; i < 9 && byte + i < have; i++) {
            if (i < 8)
                lo |= (uint64_t)p[byte + i] << (8 * i);
            else
                extra = p[byte + i];
        }
    }
    uint64_t v = lo >> sh;
    if (sh && w > 64 - sh)
        v |= (uint64_t)extra << (64 - sh);
    return w == 64 ? v : v & (((uint64_t)1 << w) - 1);
}

const char *dray__delta_decode(const uint8_t *p, size_t len, uint64_t *out, size_t n, size_t *used)
{
    const uint8_t *start = p, *end = p + len;
    uint64_t block, nmini, total, first;
    if (!pq_uleb(&p, end, &block) || !pq_uleb(&p, end, &nmini) || !pq_uleb(&p, end, &total) ||
        !pq_uleb(&p, end, &first))
        return "delta header ends early";
    if (block == 0 || block % 128 || nmini == 0 || nmini > block || (block / nmini) % 32 ||
        block > (1u << 20))
        return "delta block sizes are invalid";
    if (total < n)
        return "delta data holds fewer values than the page";
    size_t per_mini = (size_t)(block / nmini);
    uint64_t cur = unzig(first);
    size_t k = 0;
    if (total > 0 && n > 0)
        out[k++] = cur;
    size_t left = total > 0 ? (size_t)(total - 1) : 0; /* values still encoded, read all of them */
    while (left > 0) {
        uint64_t md;
        if (!pq_uleb(&p, end, &md))
            return "delta block header ends early";
        uint64_t min_delta = unzig(md);
        if ((uint64_t)(end - p) < nmini)
            return "delta bit widths missing";
        const uint8_t *widths = p;
        p += nmini;
        for (uint64_t m = 0; m < nmini && left > 0; m++) {
            int w = widths[m];
            if (w > 64)
                return "delta bit width above 64";
            size_t bytes = per_mini * (size_t)w / 8;
            size_t have = (size_t)(end - p);
            size_t take = left < per_mini ? left : per_mini;
            if ((take * (size_t)w + 7) / 8 > have)
                return "delta miniblock runs past the page";
            for (size_t j = 0; j < take; j++) {
                uint64_t d = w ? unpack(p, have, j, w) : 0;
                cur += min_delta + d;
                if (k < n)
                    out[k++] = cur;
            }
            left -= take;
            p += bytes <= have ? bytes : have;
        }
    }
    *used = (size_t)(p - start);
    return NULL;
}
