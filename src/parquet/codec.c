/* Page compression for Parquet through Debian's libraries: snappy (raw blocks), gzip (zlib, gzip
 * framing), zstd (frames) and LZ4_RAW (lz4 blocks). A compressor keeps its library context for the
 * life of a writer. */
#include <lz4.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "internal.h"

const char dray__pq_oom[] = "out of memory";

struct pq_compressor {
    int codec, level;
    ZSTD_CCtx *zstd;
    z_stream z;
    bool z_init;
};

dray_status dray__pq_compressor_create(int codec, int level, pq_compressor **out)
{
    pq_compressor *c = calloc(1, sizeof(*c));
    if (!c)
        return DRAY_ENOMEM;
    c->codec = codec;
    c->level = level;
    if (codec == PQ_CODEC_ZSTD) {
        c->zstd = ZSTD_createCCtx();
        if (!c->zstd)
            goto out_nomem;
        ZSTD_CCtx_setParameter(c->zstd, ZSTD_c_compressionLevel, level ? level : 3);
    } else if (codec == PQ_CODEC_GZIP) {
        int lv = level ? level : 6;
        if (lv < 1 || lv > 9) {
            free(c);
            return dray_set_error(DRAY_EINVAL, "parquet: gzip level %d is not in 1..9", level);
        }
        if (deflateInit2(&c->z, lv, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            goto out_nomem;
        c->z_init = true;
    }
    *out = c;
    return DRAY_OK;
out_nomem:
    free(c);
    return dray_set_error(DRAY_ENOMEM, "parquet: cannot create a compressor");
}

void dray__pq_compressor_destroy(pq_compressor *c)
{
    if (!c)
        return;
    if (c->zstd)
        ZSTD_freeCCtx(c->zstd);
    if (c->z_init)
        deflateEnd(&c->z);
    free(c);
}

dray_status dray__pq_compress(pq_compressor *c, const void *src, size_t n, pq_buf *out)
{
    out->len = 0;
    switch (c->codec) {
    case PQ_CODEC_SNAPPY: {
        size_t cap = snappy_max_compressed_length(n);
        if (!pq_buf_reserve(out, cap))
            return DRAY_ENOMEM;
        size_t len = cap;
        if (snappy_compress(src, n, (char *)out->data, &len) != SNAPPY_OK)
            return dray_set_error(DRAY_EIO, "parquet: snappy compression failed");
        out->len = len;
        return DRAY_OK;
    }
    case PQ_CODEC_ZSTD: {
        size_t cap = ZSTD_compressBound(n);
        if (!pq_buf_reserve(out, cap))
            return DRAY_ENOMEM;
        size_t len = ZSTD_compress2(c->zstd, out->data, cap, src, n);
        if (ZSTD_isError(len))
            return dray_set_error(ZSTD_getErrorCode(len) == ZSTD_error_memory_allocation
                                      ? DRAY_ENOMEM
                                      : DRAY_EIO,
                                  "parquet: zstd compression failed: %s", ZSTD_getErrorName(len));
        out->len = len;
        return DRAY_OK;
    }
    case PQ_CODEC_LZ4_RAW: {
        if (n > LZ4_MAX_INPUT_SIZE)
            return dray_set_error(DRAY_ERANGE, "parquet: page too large for lz4");
        size_t cap = (size_t)LZ4_compressBound((int)n);
        if (!pq_buf_reserve(out, cap))
            return DRAY_ENOMEM;
        int len = LZ4_compress_default(src, (char *)out->data, (int)n, (int)cap);
        if (len <= 0 && n > 0)
            return dray_set_error(DRAY_EIO, "parquet: lz4 compression failed");
        out->len = (size_t)len;
        return DRAY_OK;
    }
    case PQ_CODEC_GZIP: {
        size_t cap = deflateBound(&c->z, (uLong)n) + 32;
        if (!pq_buf_reserve(out, cap))
            return DRAY_ENOMEM;
        deflateReset(&c->z);
        c->z.next_in = (Bytef *)src;
        c->z.avail_in = (uInt)n;
        c->z.next_out = out->data;
        c->z.avail_out = (uInt)cap;
        if (deflate(&c->z, Z_FINISH) != Z_STREAM_END)
            return dray_set_error(DRAY_EIO, "parquet: gzip compression failed");
        out->len = cap - c->z.avail_out;
        return DRAY_OK;
    }
    default:
        return dray_set_error(DRAY_EINVAL, "parquet: unknown codec %d", c->codec);
    }
}

static const char *gunzip(const uint8_t *src, size_t n, uint8_t *dst, size_t want)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 15 + 32) != Z_OK) /* gzip or zlib framing, detected */
        return dray__pq_oom;
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    z.next_out = dst;
    z.avail_out = (uInt)want;
    const char *err = NULL;
    for (;;) {
        int rc = inflate(&z, Z_FINISH);
        if (rc == Z_STREAM_END) {
            /* concatenated gzip members are allowed */
            if (z.avail_in > 0 && z.avail_out > 0 && inflateReset(&z) == Z_OK)
                continue;
            break;
        }
        err = "gzip data is corrupt";
        break;
    }
    if (!err && z.avail_out != 0)
        err = "gzip data is shorter than the page size";
    inflateEnd(&z);
    return err;
}

void dray__pq_decompress_fini(void *zstd) { ZSTD_freeDCtx(zstd); }

const char *dray__pq_decompress(int codec, const uint8_t *src, size_t n, uint8_t *dst, size_t want,
                                void **zstd)
{
    switch (codec) {
    case PQ_CODEC_NONE:
        if (n != want)
            return "uncompressed page size differs from its stored size";
        memcpy(dst, src, n);
        return NULL;
    case PQ_CODEC_SNAPPY: {
        size_t len;
        if (snappy_uncompressed_length((const char *)src, n, &len) != SNAPPY_OK || len != want)
            return "snappy data does not match the page size";
        if (snappy_uncompress((const char *)src, n, (char *)dst, &len) != SNAPPY_OK || len != want)
            return "snappy data is corrupt";
        return NULL;
    }
    case PQ_CODEC_GZIP:
        if (n > UINT32_MAX || want > UINT32_MAX)
            return "gzip page too large";
        return gunzip(src, n, dst, want);
    case PQ_CODEC_LZ4_RAW: {
        if (n > INT32_MAX || want > INT32_MAX)
            return "lz4 page too large";
        int got = LZ4_decompress_safe((const char *)src, (char *)dst, (int)n, (int)want);
        if (got < 0 || (size_t)got != want)
            return "lz4 data is corrupt or does not match the page size";
        return NULL;
    }
    case PQ_CODEC_ZSTD: {
        size_t got = 0;
        if (!*zstd && !(*zstd = ZSTD_createDCtx()))
            return dray__pq_oom;
        while (n > 0) { /* a page may hold several frames */
            size_t fsz = ZSTD_findFrameCompressedSize(src, n);
            if (ZSTD_isError(fsz))
                return "zstd data is corrupt";
            size_t r = ZSTD_decompressDCtx(*zstd, dst + got, want - got, src, fsz);
            if (ZSTD_isError(r) && ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation)
                return dray__pq_oom;
            if (ZSTD_isError(r))
                return "zstd data is corrupt or larger than the page size";
            got += r;
            src += fsz;
            n -= fsz;
        }
        if (got != want)
            return "zstd data is shorter than the page size";
        return NULL;
    }
    default:
        return "unsupported compression codec (only none, snappy, gzip, zstd, lz4_raw)";
    }
}
