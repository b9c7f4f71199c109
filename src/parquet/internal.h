/* Internals shared by the Parquet writer and reader: byte buffers, the Thrift compact protocol, the
 * RLE/bit-packed hybrid, page compression, and the parsed file metadata. */
#ifndef DRAY_PARQUET_INTERNAL_H
#define DRAY_PARQUET_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dray/parquet.h"

/* ---- Parquet enums (parquet.thrift) ---- */
enum { PQ_BOOLEAN = 0, PQ_INT32, PQ_INT64, PQ_INT96, PQ_FLOAT, PQ_DOUBLE, PQ_BYTE_ARRAY, PQ_FLBA };
enum { PQ_ENC_PLAIN = 0, PQ_ENC_PLAIN_DICT = 2, PQ_ENC_RLE = 3, PQ_ENC_BIT_PACKED = 4,
       PQ_ENC_DELTA_BINARY_PACKED = 5, PQ_ENC_DELTA_LENGTH_BYTE_ARRAY = 6,
       PQ_ENC_DELTA_BYTE_ARRAY = 7, PQ_ENC_RLE_DICT = 8, PQ_ENC_BYTE_STREAM_SPLIT = 9 };
enum { PQ_CODEC_NONE = 0, PQ_CODEC_SNAPPY = 1, PQ_CODEC_GZIP = 2, PQ_CODEC_ZSTD = 6,
       PQ_CODEC_LZ4_RAW = 7 };
enum { PQ_PAGE_DATA = 0, PQ_PAGE_INDEX = 1, PQ_PAGE_DICT = 2, PQ_PAGE_DATA_V2 = 3 };
enum { PQ_CT_NONE = -1, PQ_CT_UTF8 = 0, PQ_CT_DATE = 6, PQ_CT_TS_MILLIS = 9, PQ_CT_TS_MICROS = 10,
       PQ_CT_UINT_8 = 11, PQ_CT_UINT_16, PQ_CT_UINT_32, PQ_CT_UINT_64, PQ_CT_INT_8, PQ_CT_INT_16,
       PQ_CT_INT_32, PQ_CT_INT_64 };
/* Logical type union members we understand. */
enum { PQ_LT_NONE = 0, PQ_LT_STRING = 1, PQ_LT_ENUM = 4, PQ_LT_DATE = 6, PQ_LT_TIME = 7,
       PQ_LT_TIMESTAMP = 8, PQ_LT_INTEGER = 10, PQ_LT_UNKNOWN = 11, PQ_LT_JSON = 12,
       PQ_LT_OTHER = 99 };
enum { PQ_UNIT_MILLIS = 1, PQ_UNIT_MICROS = 2, PQ_UNIT_NANOS = 3 };

/* ---- Growable byte buffer with a sticky out-of-memory flag (check `oom` once at the end) ---- */
typedef struct pq_buf {
    uint8_t *data;
    size_t len, cap;
    bool oom;
} pq_buf;

bool dray__pq_buf_grow(pq_buf *b, size_t extra);
static inline bool pq_buf_reserve(pq_buf *b, size_t extra)
{
    return b->cap - b->len >= extra || dray__pq_buf_grow(b, extra);
}
static inline void pq_buf_put(pq_buf *b, const void *p, size_t n)
{
    if (!pq_buf_reserve(b, n))
        return;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}
static inline void pq_buf_byte(pq_buf *b, uint8_t v)
{
    if (!pq_buf_reserve(b, 1))
        return;
    b->data[b->len++] = v;
}
static inline void pq_buf_u32le(pq_buf *b, uint32_t v)
{
    uint8_t t[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    pq_buf_put(b, t, 4);
}
void dray__pq_buf_varint(pq_buf *b, uint64_t v);
void dray__pq_buf_free(pq_buf *b);

/* pq_uleb: reads an unsigned LEB128 varint at *p (before end) into *v; false when it ends early or
 * runs past 64 bits. */
static inline bool pq_uleb(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return false;
        uint8_t c = *(*p)++;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

static inline uint32_t pq_load_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- Thrift compact protocol ---- */
enum { TC_STOP = 0, TC_TRUE = 1, TC_FALSE = 2, TC_BYTE = 3, TC_I16 = 4, TC_I32 = 5, TC_I64 = 6,
       TC_DOUBLE = 7, TC_BINARY = 8, TC_LIST = 9, TC_SET = 10, TC_MAP = 11, TC_STRUCT = 12 };

/* Writer: `last` is the previous field id of the struct being written (0 at its start). */
void dray__tc_field(pq_buf *b, int16_t *last, int16_t id, uint8_t type);
void dray__tc_i64(pq_buf *b, int64_t v); /* zigzag varint: i16, i32 and i64 */
void dray__tc_binary(pq_buf *b, const void *p, size_t n);
void dray__tc_list(pq_buf *b, uint8_t elem_type, uint32_t n);
static inline void tc_stop(pq_buf *b) { pq_buf_byte(b, TC_STOP); }
/* field helpers */
void dray__tc_fi32(pq_buf *b, int16_t *last, int16_t id, int64_t v);
void dray__tc_fi64(pq_buf *b, int16_t *last, int16_t id, int64_t v);
void dray__tc_fbool(pq_buf *b, int16_t *last, int16_t id, bool v);
void dray__tc_fbin(pq_buf *b, int16_t *last, int16_t id, const void *p, size_t n);

/* Reader over [p, end): on any fault `err` is set (with a static reason) and reads return zeros. */
typedef struct pq_tr {
    const uint8_t *p, *end;
    const char *err;
} pq_tr;
/* Next field of the current struct: false at its STOP or on error. */
bool dray__tr_field(pq_tr *r, int16_t *last, int16_t *id, uint8_t *type);
/* Reads an integer field of any integer wire type (byte, i16, i32, i64). */
int64_t dray__tr_int(pq_tr *r, uint8_t type);
bool dray__tr_bool(pq_tr *r, uint8_t type);
void dray__tr_binary(pq_tr *r, const uint8_t **p, size_t *n);
/* A list header: element type and count (count checked against the bytes left). */
uint32_t dray__tr_list(pq_tr *r, uint8_t type, uint8_t *elem_type);
void dray__tr_skip(pq_tr *r, uint8_t type, int depth);

/* ---- Parsed metadata ---- */
typedef struct pq_stats {
    const uint8_t *min, *max; /* min_value/max_value (or legacy min/max, flagged) */
    size_t min_len, max_len;
    bool has_min, has_max, legacy;
    bool has_null_count;
    int64_t null_count;
} pq_stats;

typedef struct pq_chunk {
    int type, codec;
    int64_t num_values, total_compressed, total_uncompressed;
    int64_t data_page_offset, dict_page_offset; /* dict -1 when absent */
    pq_stats stats;
    bool has_meta;
} pq_chunk;

typedef struct pq_rowgroup {
    pq_chunk *chunks;
    int nchunks;
    int64_t num_rows;
} pq_rowgroup;

typedef struct pq_selem {
    const uint8_t *name;
    size_t name_len;
    int type, type_length, repetition, num_children, converted;
    bool has_type;
    int logical, unit, int_bits; /* logical: PQ_LT_*; unit: PQ_UNIT_* */
    bool utc, int_signed;
} pq_selem;

typedef struct pq_meta {
    pq_selem *schema;
    int nschema;
    int64_t num_rows;
    pq_rowgroup *rgs;
    int nrgs;
    const uint8_t *arrow_formats; /* our "dray:arrow_formats" key value, when present */
    size_t arrow_formats_len;
    bool has_column_orders;
} pq_meta;

/* dray__pq_meta_parse: parses FileMetaData from [p, p+n). On failure returns a static reason. */
const char *dray__pq_meta_parse(const uint8_t *p, size_t n, pq_meta *m);
void dray__pq_meta_free(pq_meta *m);

typedef struct pq_page_header {
    int type;
    int32_t uncompressed_size, compressed_size;
    int32_t num_values, num_nulls, num_rows;
    int encoding, def_encoding;
    int32_t def_len, rep_len; /* v2 */
    bool is_compressed;       /* v2 */
    bool has_data, has_dict, has_v2;
} pq_page_header;

/* dray__pq_page_header_parse: parses a PageHeader at r; returns NULL or a static reason. */
const char *dray__pq_page_header_parse(pq_tr *r, pq_page_header *h);

/* ---- RLE / bit-packed hybrid ---- */
/* Encodes n values of bit width w (0..32) into b (no length prefix). */
void dray__rle_encode(pq_buf *b, const uint32_t *v, size_t n, int w);
/* Encodes n definition levels (1 = present) from validity bitmap bits [off, off+n); NULL = all. */
void dray__rle_encode_bitmap(pq_buf *b, const uint8_t *bits, int64_t off, size_t n);
/* Decodes n values of width w into out; returns NULL or a static reason. */
const char *dray__rle_decode(const uint8_t *p, size_t len, int w, uint32_t *out, size_t n);
/* Decodes n width-1 levels into bitmap bits [off, off+n) of out (bits set to 1 where the level is 1);
 * *ones gets the number of 1s. */
const char *dray__rle_decode_bitmap(const uint8_t *p, size_t len, uint8_t *out, int64_t off,
                                    size_t n, size_t *ones);

/* ---- DELTA_BINARY_PACKED ---- */
/* Decodes the first n values of the delta stream at [p, p+len) into out; *used gets the stream's full
 * size in bytes (all its values are walked). Returns NULL or a static reason. */
const char *dray__delta_decode(const uint8_t *p, size_t len, uint64_t *out, size_t n, size_t *used);

/* The static reason parsers and codecs give when an allocation failed (compared by address). */
extern const char dray__pq_oom[];

/* ---- Compression ---- */
typedef struct pq_compressor pq_compressor;
dray_status dray__pq_compressor_create(int codec, int level, pq_compressor **out);
void dray__pq_compressor_destroy(pq_compressor *c);
/* Compresses [src, src+n) into out (replacing its contents). */
dray_status dray__pq_compress(pq_compressor *c, const void *src, size_t n, pq_buf *out);
/* Decompresses exactly `want` bytes into dst; returns NULL or a static reason. *zstd caches a zstd
 * context between calls (start with NULL, free with dray__pq_decompress_fini). */
const char *dray__pq_decompress(int codec, const uint8_t *src, size_t n, uint8_t *dst, size_t want,
                                void **zstd);
void dray__pq_decompress_fini(void *zstd);

/* ---- Arrow column types we speak ---- */
enum { AK_I8, AK_I16, AK_I32, AK_I64, AK_U8, AK_U16, AK_U32, AK_U64, AK_F32, AK_F64, AK_BOOL,
       AK_UTF8, AK_DATE32, AK_TS };
enum { PQ_UNIT_SECONDS = 0 }; /* with PQ_UNIT_MILLIS.. for Arrow timestamps */
typedef struct pq_atype {
    int kind;  /* AK_* */
    int unit;  /* AK_TS: PQ_UNIT_* */
    int width; /* bytes per value; 0 for bool and utf8 */
    const char *tz; /* AK_TS: text after the colon (may be ""), borrowed from the format */
} pq_atype;
/* dray__pq_parse_format: the Arrow format `fmt` as a pq_atype; false when unsupported. */
bool dray__pq_parse_format(const char *fmt, pq_atype *t);

#endif /* DRAY_PARQUET_INTERNAL_H */
