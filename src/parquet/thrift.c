/* The Thrift compact protocol (written by hand from the Thrift spec) and the parsing of Parquet's
 * FileMetaData and PageHeader structs. Parsing is defensive: every length is checked against the bytes
 * left, nesting is bounded, and a fault yields a static reason instead of a crash. */
#include <stdlib.h>

#include "internal.h"

/* ==== Byte buffers ==== */

bool dray__pq_buf_grow(pq_buf *b, size_t extra)
{
    if (b->oom)
        return false;
    size_t need = b->len + extra;
    if (need < b->len) {
        b->oom = true;
        return false;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap * 2 > cap ? cap * 2 : need;
    uint8_t *d = realloc(b->data, cap);
    if (!d) {
        b->oom = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

void dray__pq_buf_varint(pq_buf *b, uint64_t v)
{
    uint8_t t[10];
    int n = 0;
    while (v >= 0x80) {
        t[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    t[n++] = (uint8_t)v;
    pq_buf_put(b, t, (size_t)n);
}

void dray__pq_buf_free(pq_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* ==== Compact protocol: writing ==== */

void dray__tc_field(pq_buf *b, int16_t *last, int16_t id, uint8_t type)
{
    int delta = id - *last;
    if (delta > 0 && delta <= 15) {
        pq_buf_byte(b, (uint8_t)(delta << 4 | type));
    } else {
        pq_buf_byte(b, type);
        dray__tc_i64(b, id);
    }
    *last = id;
}

void dray__tc_i64(pq_buf *b, int64_t v)
{
    dray__pq_buf_varint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void dray__tc_binary(pq_buf *b, const void *p, size_t n)
{
    dray__pq_buf_varint(b, n);
    pq_buf_put(b, p, n);
}

void dray__tc_list(pq_buf *b, uint8_t elem_type, uint32_t n)
{
    if (n < 15) {
        pq_buf_byte(b, (uint8_t)(n << 4 | elem_type));
    } else {
        pq_buf_byte(b, (uint8_t)(0xf0 | elem_type));
        dray__pq_buf_varint(b, n);
    }
}

void dray__tc_fi32(pq_buf *b, int16_t *last, int16_t id, int64_t v)
{
    dray__tc_field(b, last, id, TC_I32);
    dray__tc_i64(b, v);
}

void dray__tc_fi64(pq_buf *b, int16_t *last, int16_t id, int64_t v)
{
    dray__tc_field(b, last, id, TC_I64);
    dray__tc_i64(b, v);
}

void dray__tc_fbool(pq_buf *b, int16_t *last, int16_t id, bool v)
{
    dray__tc_field(b, last, id, v ? TC_TRUE : TC_FALSE);
}

void dray__tc_fbin(pq_buf *b, int16_t *last, int16_t id, const void *p, size_t n)
{
    dray__tc_field(b, last, id, TC_BINARY);
    dray__tc_binary(b, p, n);
}

/* ==== Compact protocol: reading ==== */

static void tr_fail(pq_tr *r, const char *why)
{
    if (!r->err)
        r->err = why;
    r->p = r->end;
}

static uint64_t tr_varint(pq_tr *r)
{
    uint64_t v;
    if (!pq_uleb(&r->p, r->end, &v)) {
        tr_fail(r, "metadata ends inside a number or has an overlong one");
        return 0;
    }
    return v;
}

static int64_t tr_zigzag(pq_tr *r)
{
    uint64_t u = tr_varint(r);
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

bool dray__tr_field(pq_tr *r, int16_t *last, int16_t *id, uint8_t *type)
{
    if (r->err)
        return false;
    if (r->p >= r->end) {
        tr_fail(r, "metadata ends inside a struct");
        return false;
    }
    uint8_t c = *r->p++;
    if (c == TC_STOP)
        return false;
    *type = c & 0x0f;
    if (c >> 4) {
        *id = (int16_t)(*last + (c >> 4));
    } else {
        int64_t v = tr_zigzag(r);
        if (v < INT16_MIN || v > INT16_MAX) {
            tr_fail(r, "metadata has a bad field id");
            return false;
        }
        *id = (int16_t)v;
    }
    if (*type > TC_STRUCT) {
        tr_fail(r, "metadata has an unknown field type");
        return false;
    }
    *last = *id;
    return !r->err;
}

int64_t dray__tr_int(pq_tr *r, uint8_t type)
{
    switch (type) {
    case TC_BYTE:
        if (r->p >= r->end) {
            tr_fail(r, "metadata ends inside a byte");
            return 0;
        }
        return (int8_t)*r->p++;
    case TC_I16:
    case TC_I32:
    case TC_I64:
        return tr_zigzag(r);
    default:
        tr_fail(r, "metadata field is not an integer");
        return 0;
    }
}

bool dray__tr_bool(pq_tr *r, uint8_t type)
{
    if (type == TC_TRUE)
        return true;
    if (type != TC_FALSE)
        tr_fail(r, "metadata field is not a bool");
    return false;
}

void dray__tr_binary(pq_tr *r, const uint8_t **p, size_t *n)
{
    uint64_t len = tr_varint(r);
    if (r->err || len > (uint64_t)(r->end - r->p)) {
        tr_fail(r, "metadata string runs past its end");
        *p = r->p;
        *n = 0;
        return;
    }
    *p = r->p;
    *n = (size_t)len;
    r->p += len;
}

uint32_t dray__tr_list(pq_tr *r, uint8_t type, uint8_t *elem_type)
{
    if (type != TC_LIST && type != TC_SET) {
        tr_fail(r, "metadata field is not a list");
        return 0;
    }
    if (r->p >= r->end) {
        tr_fail(r, "metadata ends inside a list");
        return 0;
    }
    uint8_t c = *r->p++;
    uint64_t n = c >> 4;
    *elem_type = c & 0x0f;
    if (n == 15)
        n = tr_varint(r);
    /* every element takes at least one byte, except bools packed in the header of true/false lists */
    if (n > (uint64_t)(r->end - r->p) || n > INT32_MAX) {
        tr_fail(r, "metadata list is longer than the bytes left");
        return 0;
    }
    return (uint32_t)n;
}

void dray__tr_skip(pq_tr *r, uint8_t type, int depth)
{
    if (depth > 32) {
        tr_fail(r, "metadata nests too deeply");
        return;
    }
    switch (type) {
    case TC_TRUE:
    case TC_FALSE:
        return;
    case TC_BYTE:
        if (r->p < r->end)
            r->p++;
        else
            tr_fail(r, "metadata ends inside a byte");
        return;
    case TC_I16:
    case TC_I32:
    case TC_I64:
        tr_varint(r);
        return;
    case TC_DOUBLE:
        if (r->end - r->p < 8)
            tr_fail(r, "metadata ends inside a double");
        else
            r->p += 8;
        return;
    case TC_BINARY: {
        const uint8_t *p;
        size_t n;
        dray__tr_binary(r, &p, &n);
        return;
    }
    case TC_LIST:
    case TC_SET: {
        uint8_t et;
        uint32_t n = dray__tr_list(r, type, &et);
        for (uint32_t i = 0; i < n && !r->err; i++) {
            if (et == TC_TRUE || et == TC_FALSE)
                dray__tr_skip(r, TC_BYTE, depth + 1);
            else
                dray__tr_skip(r, et, depth + 1);
        }
        return;
    }
    case TC_MAP: {
        uint64_t n = tr_varint(r);
        if (n == 0)
            return;
        if (r->p >= r->end || n > (uint64_t)(r->end - r->p)) {
            tr_fail(r, "metadata map is longer than the bytes left");
            return;
        }
        uint8_t kv = *r->p++;
        for (uint64_t i = 0; i < n && !r->err; i++) {
            dray__tr_skip(r, kv >> 4, depth + 1);
            dray__tr_skip(r, kv & 0x0f, depth + 1);
        }
        return;
    }
    case TC_STRUCT: {
        int16_t last = 0, id;
        uint8_t t;
        while (dray__tr_field(r, &last, &id, &t))
            dray__tr_skip(r, t, depth + 1);
        return;
    }
    default:
        tr_fail(r, "metadata has an unknown field type");
    }
}

/* ==== FileMetaData ==== */

static void parse_stats(pq_tr *r, pq_stats *s)
{
    int16_t last = 0, id;
    uint8_t t;
    const uint8_t *lmin = NULL, *lmax = NULL;
    size_t lmin_len = 0, lmax_len = 0;
    while (dray__tr_field(r, &last, &id, &t)) {
        if (id == 1 && t == TC_BINARY)
            dray__tr_binary(r, &lmax, &lmax_len);
        else if (id == 2 && t == TC_BINARY)
            dray__tr_binary(r, &lmin, &lmin_len);
        else if (id == 3) {
            s->null_count = dray__tr_int(r, t);
            s->has_null_count = true;
        } else if (id == 5 && t == TC_BINARY) {
            dray__tr_binary(r, &s->max, &s->max_len);
            s->has_max = true;
        } else if (id == 6 && t == TC_BINARY) {
            dray__tr_binary(r, &s->min, &s->min_len);
            s->has_min = true;
        } else
            dray__tr_skip(r, t, 1);
    }
    if (!s->has_min && !s->has_max && lmin && lmax) {
        s->min = lmin, s->min_len = lmin_len, s->max = lmax, s->max_len = lmax_len;
        s->has_min = s->has_max = s->legacy = true;
    }
}

static void parse_column_meta(pq_tr *r, pq_chunk *c)
{
    int16_t last = 0, id;
    uint8_t t;
    c->has_meta = true;
    while (dray__tr_field(r, &last, &id, &t)) {
        switch (id) {
        case 1: c->type = (int)dray__tr_int(r, t); break;
        case 4: c->codec = (int)dray__tr_int(r, t); break;
        case 5: c->num_values = dray__tr_int(r, t); break;
        case 6: c->total_uncompressed = dray__tr_int(r, t); break;
        case 7: c->total_compressed = dray__tr_int(r, t); break;
        case 9: c->data_page_offset = dray__tr_int(r, t); break;
        case 11: c->dict_page_offset = dray__tr_int(r, t); break;
        case 12:
            if (t == TC_STRUCT)
                parse_stats(r, &c->stats);
            else
                dray__tr_skip(r, t, 1);
            break;
        default: dray__tr_skip(r, t, 1);
        }
    }
}

static void parse_chunk(pq_tr *r, pq_chunk *c)
{
    int16_t last = 0, id;
    uint8_t t;
    c->dict_page_offset = -1;
    while (dray__tr_field(r, &last, &id, &t)) {
        if (id == 1 && t == TC_BINARY) {
            tr_fail(r, "column data in another file (file_path) is not supported");
        } else if (id == 3 && t == TC_STRUCT) {
            parse_column_meta(r, c);
        } else if ((id == 8 || id == 9)) {
            tr_fail(r, "encrypted columns are not supported");
        } else {
            dray__tr_skip(r, t, 1);
        }
    }
}

static void parse_rowgroup(pq_tr *r, pq_rowgroup *g)
{
    int16_t last = 0, id;
    uint8_t t, et;
    while (dray__tr_field(r, &last, &id, &t)) {
        if (id == 1 && t == TC_LIST && !g->chunks) {
            uint32_t n = dray__tr_list(r, t, &et);
            if (r->err)
                return;
            if (et != TC_STRUCT) {
                tr_fail(r, "row group columns are not structs");
                return;
            }
            g->chunks = calloc(n ? n : 1, sizeof(*g->chunks));
            if (!g->chunks) {
                tr_fail(r, dray__pq_oom);
                return;
            }
            g->nchunks = (int)n;
            for (uint32_t i = 0; i < n && !r->err; i++)
                parse_chunk(r, &g->chunks[i]);
        } else if (id == 3) {
            g->num_rows = dray__tr_int(r, t);
        } else {
            dray__tr_skip(r, t, 1);
        }
    }
}

static void parse_time_unit(pq_tr *r, pq_selem *e)
{
    int16_t last = 0, id;
    uint8_t t;
    while (dray__tr_field(r, &last, &id, &t)) {
        if (t == TC_STRUCT && id >= 1 && id <= 3)
            e->unit = id;
        dray__tr_skip(r, t, 2);
    }
}

static void parse_logical(pq_tr *r, pq_selem *e)
{
    int16_t last = 0, id;
    uint8_t t;
    while (dray__tr_field(r, &last, &id, &t)) {
        if (t != TC_STRUCT) {
            dray__tr_skip(r, t, 1);
            continue;
        }
        int16_t l2 = 0, id2;
        uint8_t t2;
        switch (id) {
        case PQ_LT_STRING:
        case PQ_LT_ENUM:
        case PQ_LT_DATE:
        case PQ_LT_UNKNOWN:
        case PQ_LT_JSON:
            e->logical = id;
            dray__tr_skip(r, t, 1);
            break;
        case PQ_LT_TIME:
        case PQ_LT_TIMESTAMP:
            e->logical = id;
            while (dray__tr_field(r, &l2, &id2, &t2)) {
                if (id2 == 1)
                    e->utc = dray__tr_bool(r, t2);
                else if (id2 == 2 && t2 == TC_STRUCT)
                    parse_time_unit(r, e);
                else
                    dray__tr_skip(r, t2, 2);
            }
            break;
        case PQ_LT_INTEGER:
            e->logical = id;
            while (dray__tr_field(r, &l2, &id2, &t2)) {
                if (id2 == 1)
                    e->int_bits = (int)dray__tr_int(r, t2);
                else if (id2 == 2)
                    e->int_signed = dray__tr_bool(r, t2);
                else
                    dray__tr_skip(r, t2, 2);
            }
            break;
        default:
            e->logical = PQ_LT_OTHER;
            dray__tr_skip(r, t, 1);
        }
    }
}

static void parse_selem(pq_tr *r, pq_selem *e)
{
    int16_t last = 0, id;
    uint8_t t;
    e->converted = PQ_CT_NONE;
    e->repetition = -1;
    while (dray__tr_field(r, &last, &id, &t)) {
        switch (id) {
        case 1: e->type = (int)dray__tr_int(r, t); e->has_type = true; break;
        case 2: e->type_length = (int)dray__tr_int(r, t); break;
        case 3: e->repetition = (int)dray__tr_int(r, t); break;
        case 4:
            if (t == TC_BINARY)
                dray__tr_binary(r, &e->name, &e->name_len);
            else
                dray__tr_skip(r, t, 1);
            break;
        case 5: e->num_children = (int)dray__tr_int(r, t); break;
        case 6: e->converted = (int)dray__tr_int(r, t); break;
        case 10:
            if (t == TC_STRUCT)
                parse_logical(r, e);
            else
                dray__tr_skip(r, t, 1);
            break;
        default: dray__tr_skip(r, t, 1);
        }
    }
}

static void parse_kv(pq_tr *r, pq_meta *m)
{
    int16_t last = 0, id;
    uint8_t t;
    const uint8_t *k = NULL, *v = NULL;
    size_t kn = 0, vn = 0;
    while (dray__tr_field(r, &last, &id, &t)) {
        if (id == 1 && t == TC_BINARY)
            dray__tr_binary(r, &k, &kn);
        else if (id == 2 && t == TC_BINARY)
            dray__tr_binary(r, &v, &vn);
        else
            dray__tr_skip(r, t, 1);
    }
    static const char key[] = "dray:arrow_formats";
    if (k && v && kn == sizeof(key) - 1 && memcmp(k, key, kn) == 0) {
        m->arrow_formats = v;
        m->arrow_formats_len = vn;
    }
}

const char *dray__pq_meta_parse(const uint8_t *p, size_t n, pq_meta *m)
{
    pq_tr r = {p, p + n, NULL};
    int16_t last = 0, id;
    uint8_t t, et;
    bool seen_schema = false, seen_rows = false, seen_rgs = false;
    memset(m, 0, sizeof(*m));
    while (dray__tr_field(&r, &last, &id, &t)) {
        if (id == 2 && t == TC_LIST && !seen_schema) {
            uint32_t cnt = dray__tr_list(&r, t, &et);
            if (r.err)
                break;
            if (et != TC_STRUCT || cnt == 0) {
                tr_fail(&r, "schema list is empty or not structs");
                break;
            }
            m->schema = calloc(cnt, sizeof(*m->schema));
            if (!m->schema) {
                tr_fail(&r, dray__pq_oom);
                break;
            }
            m->nschema = (int)cnt;
            for (uint32_t i = 0; i < cnt && !r.err; i++)
                parse_selem(&r, &m->schema[i]);
            seen_schema = true;
        } else if (id == 3) {
            m->num_rows = dray__tr_int(&r, t);
            seen_rows = true;
        } else if (id == 4 && t == TC_LIST && !seen_rgs) {
            uint32_t cnt = dray__tr_list(&r, t, &et);
            if (r.err)
                break;
            if (et != TC_STRUCT && cnt) {
                tr_fail(&r, "row groups are not structs");
                break;
            }
            m->rgs = calloc(cnt ? cnt : 1, sizeof(*m->rgs));
            if (!m->rgs) {
                tr_fail(&r, dray__pq_oom);
                break;
            }
            m->nrgs = (int)cnt;
            for (uint32_t i = 0; i < cnt && !r.err; i++)
                parse_rowgroup(&r, &m->rgs[i]);
            seen_rgs = true;
        } else if (id == 5 && t == TC_LIST) {
            uint32_t cnt = dray__tr_list(&r, t, &et);
            for (uint32_t i = 0; i < cnt && !r.err; i++) {
                if (et == TC_STRUCT)
                    parse_kv(&r, m);
                else
                    dray__tr_skip(&r, et, 1);
            }
        } else if (id == 7 && t == TC_LIST) {
            m->has_column_orders = true;
            dray__tr_skip(&r, t, 0);
        } else {
            dray__tr_skip(&r, t, 0);
        }
    }
    if (!r.err && (!seen_schema || !seen_rows || !seen_rgs))
        r.err = "footer lacks the schema, row count or row groups";
    if (r.err)
        dray__pq_meta_free(m);
    return r.err;
}

void dray__pq_meta_free(pq_meta *m)
{
    for (int i = 0; i < m->nrgs; i++)
        free(m->rgs[i].chunks);
    free(m->rgs);
    free(m->schema);
    memset(m, 0, sizeof(*m));
}

/* ==== PageHeader ==== */

static void parse_data_header(pq_tr *r, pq_page_header *h)
{
    int16_t last = 0, id;
    uint8_t t;
    h->has_data = true;
    while (dray__tr_field(r, &last, &id, &t)) {
        switch (id) {
        case 1: h->num_values = (int32_t)dray__tr_int(r, t); break;
        case 2: h->encoding = (int)dray__tr_int(r, t); break;
        case 3: h->def_encoding = (int)dray__tr_int(r, t); break;
        default: dray__tr_skip(r, t, 2);
        }
    }
}

static void parse_dict_header(pq_tr *r, pq_page_header *h)
{
    int16_t last = 0, id;
    uint8_t t;
    h->has_dict = true;
    while (dray__tr_field(r, &last, &id, &t)) {
        if (id == 1)
            h->num_values = (int32_t)dray__tr_int(r, t);
        else if (id == 2)
            h->encoding = (int)dray__tr_int(r, t);
        else
            dray__tr_skip(r, t, 2);
    }
}

static void parse_v2_header(pq_tr *r, pq_page_header *h)
{
    int16_t last = 0, id;
    uint8_t t;
    h->has_v2 = true;
    h->is_compressed = true;
    while (dray__tr_field(r, &last, &id, &t)) {
        switch (id) {
        case 1: h->num_values = (int32_t)dray__tr_int(r, t); break;
        case 2: h->num_nulls = (int32_t)dray__tr_int(r, t); break;
        case 3: h->num_rows = (int32_t)dray__tr_int(r, t); break;
        case 4: h->encoding = (int)dray__tr_int(r, t); break;
        case 5: h->def_len = (int32_t)dray__tr_int(r, t); break;
        case 6: h->rep_len = (int32_t)dray__tr_int(r, t); break;
        case 7: h->is_compressed = dray__tr_bool(r, t); break;
        default: dray__tr_skip(r, t, 2);
        }
    }
}

const char *dray__pq_page_header_parse(pq_tr *r, pq_page_header *h)
{
    int16_t last = 0, id;
    uint8_t t;
    memset(h, 0, sizeof(*h));
    h->type = -1;
    while (dray__tr_field(r, &last, &id, &t)) {
        switch (id) {
        case 1: h->type = (int)dray__tr_int(r, t); break;
        case 2: h->uncompressed_size = (int32_t)dray__tr_int(r, t); break;
        case 3: h->compressed_size = (int32_t)dray__tr_int(r, t); break;
        case 5:
            if (t == TC_STRUCT)
                parse_data_header(r, h);
            else
                dray__tr_skip(r, t, 1);
            break;
        case 7:
            if (t == TC_STRUCT)
                parse_dict_header(r, h);
            else
                dray__tr_skip(r, t, 1);
            break;
        case 8:
            if (t == TC_STRUCT)
                parse_v2_header(r, h);
            else
                dray__tr_skip(r, t, 1);
            break;
        default: dray__tr_skip(r, t, 1);
        }
    }
    if (r->err)
        return r->err;
    if (h->uncompressed_size < 0 || h->compressed_size < 0 || h->num_values < 0 ||
        h->num_nulls < 0 || h->def_len < 0 || h->rep_len < 0)
        return "page header has a negative size or count";
    return NULL;
}
