/* The flat byte format of values (wire and spill format).
 *
 * Layout: "DV" + version byte (1), then one encoded value. A value is a type byte followed by:
 *   null: nothing; bool: one byte 0/1; int: zigzag varint; float: 8 bytes little-endian;
 *   bytes/string: varint length + bytes; list: varint count + values;
 *   map: varint count + (varint key length, key bytes, value) per entry;
 *   error: varint chain length, then per link from the outermost: zigzag status, zigzag arg index,
 *          varint+bytes function, varint+bytes message;
 *   ext: varint+bytes type name, varint payload length, payload (the type's own encoding).
 * Decoding trusts nothing: every length is checked against what is left, nesting is bounded. */
#include <string.h>

#include "internal.h"

#define CODEC_VERSION 1
#define MAX_DEPTH 64

/* ==== Encoding ==== */
typedef struct outbuf {
    unsigned char *p;
    size_t len, cap;
} outbuf;

static dray_status out_write(void *vb, const void *data, size_t n)
{
    outbuf *b = vb;
    if (n > SIZE_MAX / 2 - b->len)
        return dray_set_error(DRAY_ENOMEM, "encoded value too large");
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p)
            return dray_set_error(DRAY_ENOMEM, "out of memory encoding a value");
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    return DRAY_OK;
}

static dray_status out_varint(outbuf *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    do {
        unsigned char byte = v & 0x7f;
        v >>= 7;
        tmp[n++] = byte | (v ? 0x80 : 0);
    } while (v);
    return out_write(b, tmp, n);
}

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static dray_status out_str(outbuf *b, const void *s, size_t n)
{
    dray_status st = out_varint(b, n);
    return st ? st : out_write(b, s, n);
}

static dray_status encode_value(outbuf *b, const dray_value *v, int depth)
{
    dray_status st;
    unsigned char t = (unsigned char)v->type;
    if (depth > MAX_DEPTH)
        return dray_set_error(DRAY_EINVAL, "value nested deeper than %d levels", MAX_DEPTH);
    if (v->type == DRAY_T_REF || v->type == DRAY_T_NODE || v->type >= DRAY__T_COUNT)
        return dray_set_error(DRAY_EUNSUPPORTED, "a %s cannot be encoded without a cluster",
                              dray_type_name(v->type));
    if ((st = out_write(b, &t, 1)))
        return st;
    switch (v->type) {
    case DRAY_T_NULL:
        return DRAY_OK;
    case DRAY_T_BOOL: {
        unsigned char c = v->u.b ? 1 : 0;
        return out_write(b, &c, 1);
    }
    case DRAY_T_INT:
        return out_varint(b, zigzag(v->u.i));
    case DRAY_T_FLOAT: {
        uint64_t bits;
        memcpy(&bits, &v->u.f, 8);
        unsigned char le[8];
        for (int i = 0; i < 8; i++)
            le[i] = (unsigned char)(bits >> (8 * i));
        return out_write(b, le, 8);
    }
    case DRAY_T_BYTES:
    case DRAY_T_STRING: {
        size_t n;
        const void *d = dray_bytes_data(v, &n);
        return out_str(b, d, n);
    }
    case DRAY_T_LIST: {
        size_t n = dray_list_len(v);
        if ((st = out_varint(b, n)))
            return st;
        for (size_t i = 0; i < n; i++)
            if ((st = encode_value(b, dray_list_get(v, i), depth + 1)))
                return st;
        return DRAY_OK;
    }
    case DRAY_T_MAP: {
        size_t n = dray_map_len(v);
        if ((st = out_varint(b, n)))
            return st;
        for (size_t i = 0; i < n; i++) {
            const char *k = dray_map_key_at(v, i);
            if ((st = out_str(b, k, strlen(k))) ||
                (st = encode_value(b, dray_map_value_at(v, i), depth + 1)))
                return st;
        }
        return DRAY_OK;
    }
    case DRAY_T_ERROR: {
        size_t n = 0;
        for (const dray_value *e = v; e; e = dray_error_cause(e))
            n++;
        if ((st = out_varint(b, n)))
            return st;
        for (const dray_value *e = v; e; e = dray_error_cause(e)) {
            const char *f = dray_error_function(e), *m = dray_error_message(e);
            if ((st = out_varint(b, zigzag(dray_error_status(e)))) ||
                (st = out_varint(b, zigzag(dray_error_arg_index(e)))) ||
                (st = out_str(b, f, strlen(f))) || (st = out_str(b, m, strlen(m))))
                return st;
        }
        return DRAY_OK;
    }
    case DRAY_T_EXT: {
        const dray_ext_type *et = v->u.ext->type;
        if (!et->encode)
            return dray_set_error(DRAY_EUNSUPPORTED, "extension type '%s' cannot be encoded",
                                  et->name);
        if ((st = out_str(b, et->name, strlen(et->name))))
            return st;
        outbuf payload = {0};
        if ((st = et->encode(v->u.ext, out_write, &payload)) == DRAY_OK)
            st = out_str(b, payload.p, payload.len);
        free(payload.p);
        return st;
    }
    default:
        return DRAY_EINVAL;
    }
}

dray_status dray_value_encode(const dray_value *v, void **buf, size_t *len)
{
    if (!v || !buf || !len)
        return dray_set_error(DRAY_EINVAL, "dray_value_encode: NULL argument");
    outbuf b = {0};
    const unsigned char magic[3] = {'D', 'V', CODEC_VERSION};
    dray_status st = out_write(&b, magic, 3);
    if (!st)
        st = encode_value(&b, v, 0);
    if (st) {
        free(b.p);
        return st;
    }
    *buf = b.p;
    *len = b.len;
    return DRAY_OK;
}

void dray_free(void *p)
{
    free(p);
}

/* ==== Decoding ==== */
typedef struct inbuf {
    const unsigned char *p;
    size_t len, pos;
} inbuf;

static dray_status bad(const inbuf *in, const char *what)
{
    return dray_set_error(DRAY_EFORMAT, "malformed value at byte %zu of %zu: %s", in->pos,
                          in->len, what);
}

static dray_status in_varint(inbuf *in, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (in->pos >= in->len)
            return bad(in, "truncated varint");
        unsigned char c = in->p[in->pos++];
        if (shift == 63 && (c & 0x7e))
            return bad(in, "varint overflows 64 bits");
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return DRAY_OK;
        }
    }
    return bad(in, "varint longer than 10 bytes");
}

static dray_status in_str(inbuf *in, const unsigned char **s, size_t *n)
{
    uint64_t len;
    dray_status st = in_varint(in, &len);
    if (st)
        return st;
    if (len > in->len - in->pos)
        return bad(in, "length runs past the end");
    *s = in->p + in->pos;
    *n = (size_t)len;
    in->pos += (size_t)len;
    return DRAY_OK;
}

static dray_status decode_value(inbuf *in, dray_value *out, int depth);

static dray_status decode_error(inbuf *in, dray_value *out)
{
    uint64_t n;
    dray_status st = in_varint(in, &n);
    if (st)
        return st;
    /* Each link takes at least 4 bytes: bounds the count before any allocation. */
    if (n == 0 || n > (in->len - in->pos) / 4)
        return bad(in, "bad error chain length");
    typedef struct link {
        int64_t status, arg;
        const unsigned char *f, *m;
        size_t fl, ml;
    } link;
    link *links = malloc((size_t)n * sizeof(link));
    if (!links)
        return dray_set_error(DRAY_ENOMEM, "out of memory decoding an error chain");
    for (uint64_t i = 0; i < n; i++) {
        uint64_t s, a;
        if ((st = in_varint(in, &s)) || (st = in_varint(in, &a)) ||
            (st = in_str(in, &links[i].f, &links[i].fl)) ||
            (st = in_str(in, &links[i].m, &links[i].ml)))
            goto out;
        links[i].status = unzigzag(s);
        links[i].arg = unzigzag(a);
        if (links[i].status >= 0 || links[i].status < -1000 || links[i].arg < -1 ||
            links[i].arg > INT32_MAX) {
            st = bad(in, "bad error status or argument index");
            goto out;
        }
    }
    /* Build from the root cause outwards. */
    dray_value cause = dray_null();
    for (uint64_t i = n; i-- > 0;) {
        char *f = strndup((const char *)links[i].f, links[i].fl);
        char *m = strndup((const char *)links[i].m, links[i].ml);
        dray_value e;
        st = f && m ? dray_error_create((dray_status)links[i].status, f, m, (int)links[i].arg,
                                        &cause, &e)
                    : dray_set_error(DRAY_ENOMEM, "out of memory decoding an error");
        free(f);
        free(m);
        dray_value_release(&cause);
        if (st)
            goto out;
        cause = e;
    }
    *out = cause;
out:
    free(links);
    return st;
}

static dray_status decode_value(inbuf *in, dray_value *out, int depth)
{
    dray_status st;
    if (depth > MAX_DEPTH)
        return bad(in, "nested too deeply");
    if (in->pos >= in->len)
        return bad(in, "truncated: expected a type byte");
    unsigned char t = in->p[in->pos++];
    switch (t) {
    case DRAY_T_NULL:
        *out = dray_null();
        return DRAY_OK;
    case DRAY_T_BOOL:
        if (in->pos >= in->len)
            return bad(in, "truncated bool");
        if (in->p[in->pos] > 1)
            return bad(in, "bool byte is not 0 or 1");
        *out = dray_bool(in->p[in->pos++]);
        return DRAY_OK;
    case DRAY_T_INT: {
        uint64_t v;
        if ((st = in_varint(in, &v)))
            return st;
        *out = dray_int(unzigzag(v));
        return DRAY_OK;
    }
    case DRAY_T_FLOAT: {
        if (in->len - in->pos < 8)
            return bad(in, "truncated float");
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++)
            bits |= (uint64_t)in->p[in->pos + i] << (8 * i);
        in->pos += 8;
        double d;
        memcpy(&d, &bits, 8);
        *out = dray_float(d);
        return DRAY_OK;
    }
    case DRAY_T_BYTES:
    case DRAY_T_STRING: {
        const unsigned char *s;
        size_t n;
        if ((st = in_str(in, &s, &n)))
            return st;
        if (t == DRAY_T_STRING && memchr(s, 0, n))
            return bad(in, "string contains a NUL byte");
        return t == DRAY_T_BYTES ? dray_bytes_create(s, n, out)
                                 : dray_string_create_n((const char *)s, n, out);
    }
    case DRAY_T_LIST:
    case DRAY_T_MAP: {
        uint64_t n;
        if ((st = in_varint(in, &n)))
            return st;
        if (n > in->len - in->pos) /* every entry takes at least one byte */
            return bad(in, "entry count runs past the end");
        size_t done = 0;
        dray_value *items = calloc(n ? (size_t)n : 1, sizeof(dray_value));
        char **keys = t == DRAY_T_MAP ? calloc(n ? (size_t)n : 1, sizeof(char *)) : NULL;
        if (!items || (t == DRAY_T_MAP && !keys)) {
            st = dray_set_error(DRAY_ENOMEM, "out of memory decoding a %zu-entry value",
                                (size_t)n);
            goto list_out;
        }
        for (; done < n; done++) {
            if (keys) {
                const unsigned char *k;
                size_t kl;
                if ((st = in_str(in, &k, &kl)))
                    goto list_out;
                if (memchr(k, 0, kl)) {
                    st = bad(in, "map key contains a NUL byte");
                    goto list_out;
                }
                if (!(keys[done] = strndup((const char *)k, kl))) {
                    st = dray_set_error(DRAY_ENOMEM, "out of memory decoding a map key");
                    goto list_out;
                }
            }
            if ((st = decode_value(in, &items[done], depth + 1))) {
                if (keys) {
                    free(keys[done]);
                    keys[done] = NULL;
                }
                goto list_out;
            }
        }
        st = keys ? dray_map_create((const char *const *)keys, items, done, out)
                  : dray_list_create(items, done, out);
        if (st == DRAY_EINVAL)
            st = bad(in, dray_last_error());
    list_out:
        for (size_t i = 0; i < done; i++) {
            dray_value_release(&items[i]);
            if (keys)
                free(keys[i]);
        }
        free(items);
        free(keys);
        return st;
    }
    case DRAY_T_ERROR:
        return decode_error(in, out);
    case DRAY_T_EXT: {
        const unsigned char *name, *payload;
        size_t nl, pl;
        if ((st = in_str(in, &name, &nl)) || (st = in_str(in, &payload, &pl)))
            return st;
        char tname[128];
        if (nl >= sizeof tname || memchr(name, 0, nl))
            return bad(in, "bad extension type name");
        memcpy(tname, name, nl);
        tname[nl] = '\0';
        const dray_ext_type *et = dray_ext_type_find(tname);
        if (!et || !et->decode)
            return dray_set_error(DRAY_EFORMAT, "unknown extension type '%s' at byte %zu", tname,
                                  in->pos);
        dray_ext_obj *obj;
        if ((st = et->decode(payload, pl, &obj)))
            return st;
        *out = dray_value_of_ext(obj);
        return DRAY_OK;
    }
    default:
        in->pos--;
        return bad(in, "unknown type byte");
    }
}

dray_status dray_value_decode(const void *buf, size_t len, dray_value *out)
{
    if ((!buf && len) || !out)
        return dray_set_error(DRAY_EINVAL, "dray_value_decode: NULL argument");
    inbuf in = {buf, len, 0};
    if (len < 3 || in.p[0] != 'D' || in.p[1] != 'V')
        return bad(&in, "missing 'DV' header");
    if (in.p[2] != CODEC_VERSION)
        return dray_set_error(DRAY_EFORMAT, "value format version %u is not supported (want %u)",
                              in.p[2], CODEC_VERSION);
    in.pos = 3;
    dray_value v;
    dray_status st = decode_value(&in, &v, 0);
    if (st)
        return st;
    if (in.pos != in.len) {
        dray_value_release(&v);
        return bad(&in, "trailing bytes after the value");
    }
    *out = v;
    return DRAY_OK;
}
