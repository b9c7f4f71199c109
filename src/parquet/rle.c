/* The RLE / bit-packed hybrid encoding of Parquet (Encodings.md): definition levels and dictionary
 * indices. Runs of 8+ equal values become RLE runs, the rest bit-packed groups of 8, LSB first. */
#include <stdlib.h>

#include "internal.h"

static void put_bitpacked(pq_buf *b, const uint32_t *v, size_t n, int w)
{
    size_t groups = (n + 7) / 8;
    dray__pq_buf_varint(b, (uint64_t)groups << 1 | 1);
    size_t bytes = groups * (size_t)w;
    if (!pq_buf_reserve(b, bytes + 8))
        return;
    uint8_t *o = b->data + b->len;
    memset(o, 0, bytes + 8);
    uint64_t acc = 0;
    int nb = 0;
    size_t k = 0;
    for (size_t i = 0; i < groups * 8; i++) {
        uint64_t x = i < n ? v[i] : 0;
        acc |= x << nb;
        nb += w;
        while (nb >= 8) {
            o[k++] = (uint8_t)acc;
            acc >>= 8;
            nb -= 8;
        }
    }
    b->len += bytes;
}

static void put_rle(pq_buf *b, uint32_t v, size_t count, int w)
{
    dray__pq_buf_varint(b, (uint64_t)count << 1);
    for (int i = 0; i < (w + 7) / 8; i++)
        pq_buf_byte(b, (uint8_t)(v >> (8 * i)));
}

void dray__rle_encode(pq_buf *b, const uint32_t *v, size_t n, int w)
{
    if (w == 0) {
        if (n)
            put_rle(b, 0, n, 0);
        return;
    }
    size_t i = 0, start = 0; /* [start, i) waits to be bit-packed */
    while (i < n) {
        size_t r = 1;
        while (i + r < n && v[i + r] == v[i])
            r++;
        if (r < 8) {
            i += r;
            continue;
        }
        size_t pend = (i - start) % 8;
        if (pend) { /* fill the pending group from the run, then look again */
            i += 8 - pend;
            continue;
        }
        if (i > start)
            put_bitpacked(b, v + start, i - start, w);
        put_rle(b, v[i], r, w);
        i += r;
        start = i;
    }
    if (n > start)
        put_bitpacked(b, v + start, n - start, w);
}

void dray__rle_encode_bitmap(pq_buf *b, const uint8_t *bits, int64_t off, size_t n)
{
    if (n == 0)
        return;
    if (!bits) {
        put_rle(b, 1, n, 1);
        return;
    }
    size_t groups = (n + 7) / 8;
    dray__pq_buf_varint(b, (uint64_t)groups << 1 | 1);
    if (!pq_buf_reserve(b, groups))
        return;
    uint8_t *o = b->data + b->len;
    const uint8_t *src = bits + off / 8;
    int sh = (int)(off % 8);
    if (sh == 0) {
        memcpy(o, src, (n + 7) / 8);
    } else {
        size_t nbytes = (n + 7) / 8;
        size_t avail = (n + (size_t)sh + 7) / 8; /* source bytes that hold our bits */
        for (size_t k = 0; k < nbytes; k++) {
            unsigned lo = src[k] >> sh;
            unsigned hi = k + 1 < avail ? (unsigned)src[k + 1] << (8 - sh) : 0;
            o[k] = (uint8_t)(lo | hi);
        }
    }
    if (n % 8) /* levels past n must be 0 */
        o[n / 8] &= (uint8_t)((1u << (n % 8)) - 1);
    b->len += groups;
}

const char *dray__rle_decode(const uint8_t *p, size_t len, int w, uint32_t *out, size_t n)
{
    const uint8_t *end = p + len;
    size_t k = 0;
    if (w < 0 || w > 32)
        return "bit width above 32";
    uint64_t mask = w == 32 ? 0xffffffffu : ((uint64_t)1 << w) - 1;
    int vbytes = (w + 7) / 8;
    while (k < n) {
        uint64_t h;
        if (!pq_uleb(&p, end, &h))
            return "RLE/bit-packed data ends early";
        if (h & 1) {
            uint64_t groups = h >> 1;
            if (groups == 0 || groups > (uint64_t)(end - p) * 8 + 1)
                return "bit-packed run longer than its data";
            size_t count = (size_t)groups * 8;
            size_t bytes = (size_t)groups * (size_t)w;
            size_t have = (size_t)(end - p);
            size_t take = count < n - k ? count : n - k;
            /* a final run may be cut short by the page's end: decode what is there */
            if (bytes > have && (take * (size_t)w + 7) / 8 > have)
                return "bit-packed run longer than its data";
            size_t bit = 0;
            for (size_t i = 0; i < take; i++, bit += (size_t)w) {
                size_t byte = bit >> 3;
                uint64_t x = 0;
                if (byte + 8 <= have) {
                    memcpy(&x, p + byte, 8);
                } else {
                    for (size_t j = 0; byte + j < have && j < 8; j++)
                        x |= (uint64_t)p[byte + j] << (8 * j);
                }
                out[k + i] = (uint32_t)((x >> (bit & 7)) & mask);
            }
            k += take;
            p += bytes > have ? have : bytes;
        } else {
            uint64_t count = h >> 1;
            if ((size_t)(end - p) < (size_t)vbytes)
                return "RLE run value missing";
            uint32_t v = 0;
            for (int i = 0; i < vbytes; i++)
                v |= (uint32_t)p[i] << (8 * i);
            p += vbytes;
            if (v > mask)
                return "RLE run value wider than the bit width";
            size_t take = count < n - k ? (size_t)count : n - k;
            if (count == 0)
                return "empty RLE run";
            for (size_t i = 0; i < take; i++)
                out[k + i] = v;
            k += take;
        }
    }
    return NULL;
}

static inline void put_bit(uint8_t *out, int64_t b, bool v)
{
    if (v)
        out[b >> 3] |= (uint8_t)(1u << (b & 7));
    else
        out[b >> 3] &= (uint8_t)~(1u << (b & 7));
}

static void set_bits(uint8_t *out, int64_t from, size_t n, bool v)
{
    size_t i = 0;
    for (; i < n && ((from + (int64_t)i) & 7); i++)
        put_bit(out, from + (int64_t)i, v);
    size_t whole = (n - i) / 8;
    memset(out + ((from + (int64_t)i) >> 3), v ? 0xff : 0, whole);
    for (i += whole * 8; i < n; i++)
        put_bit(out, from + (int64_t)i, v);
}

const char *dray__rle_decode_bitmap(const uint8_t *p, size_t len, uint8_t *out, int64_t off,
                                    size_t n, size_t *ones)
{
    const uint8_t *end = p + len;
    size_t k = 0, cnt = 0;
    while (k < n) {
        uint64_t h;
        if (!pq_uleb(&p, end, &h))
            return "definition levels end early";
        if (h & 1) {
            uint64_t groups = h >> 1;
            size_t have = (size_t)(end - p);
            if (groups == 0 || groups > have + 1)
                return "bit-packed definition levels longer than their data";
            size_t take = (size_t)groups * 8 < n - k ? (size_t)groups * 8 : n - k;
            if ((take + 7) / 8 > have)
                return "bit-packed definition levels longer than their data";
            size_t i = 0;
            if (((off + (int64_t)k) & 7) == 0) { /* aligned: the levels are the bitmap's bytes */
                size_t whole = take / 8;
                uint8_t *dst = out + ((off + (int64_t)k) >> 3);
                memcpy(dst, p, whole);
                for (size_t b = 0; b < whole; b++)
                    cnt += (size_t)__builtin_popcount(dst[b]);
                i = whole * 8;
            }
            for (; i < take; i++) {
                bool v = p[i >> 3] >> (i & 7) & 1;
                put_bit(out, off + (int64_t)(k + i), v);
                cnt += v;
            }
            k += take;
            p += groups < have ? (size_t)groups : have;
        } else {
            uint64_t count = h >> 1;
            if (p >= end)
                return "RLE definition level missing";
            uint8_t v = *p++;
            if (v > 1)
                return "definition level above the column's maximum";
            if (count == 0)
                return "empty RLE run";
            size_t take = count < n - k ? (size_t)count : n - k;
            set_bits(out, off + (int64_t)k, take, v);
            if (v)
                cnt += take;
            k += take;
        }
    }
    *ones = cnt;
    return NULL;
}
