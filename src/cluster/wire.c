/* The wire format: frame headers and the shape of each message type's control payload. Everything
 * read from a socket passes through here before anyone looks at it (see fuzz/fuzz_wire.c). */
#include <string.h>

#include "internal.h"
#include "dray/dashboard.h"

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

void dray__wire_put_header(uint8_t out[DRAY__WIRE_HDR], const dray__hdr *h)
{
    memset(out, 0, DRAY__WIRE_HDR);
    out[0] = 'D';
    out[1] = 'Y';
    out[2] = DRAY__WIRE_VERSION;
    out[3] = h->type;
    out[4] = h->flags;
    put_u32(out + 8, h->ctl_len);
    put_u64(out + 16, h->data_len);
    put_u64(out + 24, h->rid);
}

static const char *type_name(unsigned t)
{
    static const char *names[] = {"?",         "CHALLENGE", "AUTH",   "AUTH_OK",
                                  "REGISTER",  "SUBSCRIBE", "NODES",  "PING",
                                  "SUBMIT",    "RESULT",    "STATUS_REQ", "STATUS",
                                  "ACTOR_CREATE", "ACTOR_CALL", "ACTOR_KILL", "ACTOR_RELEASE",
                                  "PULL",      "OBJ_FREE",  "STEAL",  "TRACE",
                                  "EVENTS",    "LANE",      "LANE_REPLY", "WAKE"};
    return t < DRAY__MSG_COUNT ? names[t] : "?";
}

dray_status dray__wire_parse_header(const uint8_t *buf, size_t len, uint32_t max_ctl,
                                    uint64_t max_data, dray__hdr *out)
{
    if (len < DRAY__WIRE_HDR)
        return dray_set_error(DRAY_EFORMAT, "message header: %zu bytes, need %d", len,
                              DRAY__WIRE_HDR);
    if (buf[0] != 'D' || buf[1] != 'Y')
        return dray_set_error(DRAY_EFORMAT, "message header: bad magic 0x%02x%02x", buf[0], buf[1]);
    if (buf[2] != DRAY__WIRE_VERSION)
        return dray_set_error(DRAY_EFORMAT, "message header: version %u, this build speaks %d",
                              buf[2], DRAY__WIRE_VERSION);
    if (buf[3] == 0 || buf[3] >= DRAY__MSG_COUNT)
        return dray_set_error(DRAY_EFORMAT, "message header: unknown type %u", buf[3]);
    if (buf[5] | buf[6] | buf[7] | buf[12] | buf[13] | buf[14] | buf[15])
        return dray_set_error(DRAY_EFORMAT, "message header: reserved bytes are not zero");
    dray__hdr h = {buf[3], buf[4], get_u32(buf + 8), get_u64(buf + 16), get_u64(buf + 24)};
    if (h.ctl_len > max_ctl)
        return dray_set_error(DRAY_EFORMAT, "%s message: control payload of %u bytes exceeds %u",
                              type_name(h.type), h.ctl_len, max_ctl);
    if (h.data_len > max_data)
        return dray_set_error(DRAY_EFORMAT, "%s message: data section of %llu bytes exceeds %llu",
                              type_name(h.type), (unsigned long long)h.data_len,
                              (unsigned long long)max_data);
    bool data_ok = h.type == DRAY__MSG_RESULT && (h.flags & (DRAY__RF_RAW | DRAY__RF_ENCODED));
    if (h.data_len && !data_ok)
        return dray_set_error(DRAY_EFORMAT, "%s message: unexpected data section of %llu bytes",
                              type_name(h.type), (unsigned long long)h.data_len);
    /* RESULT: at most one of RAW, ENCODED and STORED; MISSING, LOST and STOLEN only alone. */
    unsigned where = h.flags & (DRAY__RF_RAW | DRAY__RF_ENCODED | DRAY__RF_STORED);
    unsigned why = h.flags & (DRAY__RF_MISSING | DRAY__RF_LOST | DRAY__RF_STOLEN);
    if (h.type == DRAY__MSG_RESULT ? (h.flags & ~63u) || (where & (where - 1)) ||
                                         (why && where) || (why & (why - 1))
                                   : h.flags)
        return dray_set_error(DRAY_EFORMAT, "%s message: bad flags 0x%x", type_name(h.type),
                              h.flags);
    *out = h;
    return DRAY_OK;
}

/* ==== Control payload shapes ==== */

static bool is(const dray_value *v, dray_type t)
{
    return v && v->type == t;
}

static bool bytes_of(const dray_value *v, size_t n)
{
    size_t len = 0;
    return is(v, DRAY_T_BYTES) && dray_bytes_data(v, &len) && len == n;
}

/* A list of exactly n items. */
static bool list_of(const dray_value *v, size_t n)
{
    return is(v, DRAY_T_LIST) && dray_list_len(v) == n;
}

static const dray_value *at(const dray_value *v, size_t i)
{
    return dray_list_get(v, i);
}

static bool nonneg_int(const dray_value *v)
{
    return is(v, DRAY_T_INT) && v->u.i >= 0 && v->u.i <= INT32_MAX;
}

/* A non-negative 64-bit quantity (bytes, nanoseconds). */
static bool nonneg_int64(const dray_value *v)
{
    return is(v, DRAY_T_INT) && v->u.i >= 0;
}

/* A node's custom resources: a map of at most 64 names (under 64 bytes) to floats >= 0. */
static bool resources_ok(const dray_value *v)
{
    if (!is(v, DRAY_T_MAP) || dray_map_len(v) > 64)
        return false;
    for (size_t i = 0; i < dray_map_len(v); i++) {
        const dray_value *a = dray_map_value_at(v, i);
        if (strlen(dray_map_key_at(v, i)) >= 64 || !is(a, DRAY_T_FLOAT) || !(a->u.f >= 0))
            return false;
    }
    return true;
}

/* An EVENTS batch: names (strings under 256 bytes), records (DRAY__EVREC bytes each, every field
 * in range, names by index), submitted counts by name index. */
static bool events_ok(const dray_value *v)
{
    if (!list_of(v, 7) || !nonneg_int64(at(v, 0)) || !nonneg_int64(at(v, 1)) ||
        !nonneg_int64(at(v, 2)) || !nonneg_int64(at(v, 3)) || !is(at(v, 4), DRAY_T_LIST) ||
        !is(at(v, 5), DRAY_T_BYTES) || !is(at(v, 6), DRAY_T_LIST))
        return false;
    const dray_value *names = at(v, 4), *subs = at(v, 6);
    size_t nn = dray_list_len(names), len = 0;
    if (nn > DRAY__EVNAMES_MAX || dray_list_len(subs) > DRAY__EVNAMES_MAX)
        return false;
    for (size_t i = 0; i < nn; i++) {
        const char *s = dray_string_cstr(at(names, i));
        if (!is(at(names, i), DRAY_T_STRING) || !s || !*s || strlen(s) >= 256)
            return false;
    }
    const uint8_t *p = dray_bytes_data(at(v, 5), &len);
    if (len % DRAY__EVREC || len / DRAY__EVREC > DRAY__EVREC_MAX || (len && !p))
        return false;
    for (size_t k = 0; k < len; k += DRAY__EVREC) {
        const uint8_t *r = p + k;
        int64_t t0 = (int64_t)get_u64(r), t1 = (int64_t)get_u64(r + 8);
        int16_t status = (int16_t)(r[32] | r[33] << 8), row = (int16_t)(r[34] | r[35] << 8);
        if (t0 < 0 || t1 < t0 || get_u64(r + 16) > INT64_MAX || get_u32(r + 24) == 0 ||
            (size_t)(r[28] | r[29] << 8) >= nn || r[30] >= DRAY__EVENT_KINDS || r[31] ||
            status > 0 || status < DRAY_EFATAL || row < -1000 || row >= 1000 ||
            get_u32(r + 36) > INT32_MAX)
            return false;
    }
    for (size_t i = 0; i < dray_list_len(subs); i++) {
        const dray_value *s = at(subs, i);
        if (!list_of(s, 2) || !is(at(s, 0), DRAY_T_INT) || at(s, 0)->u.i < 0 ||
            (size_t)at(s, 0)->u.i >= nn || !is(at(s, 1), DRAY_T_INT))
            return false;
    }
    return true;
}

static bool check_shape(const dray__hdr *h, const dray_value *v)
{
    switch (h->type) {
    case DRAY__MSG_CHALLENGE:
    case DRAY__MSG_AUTH_OK:
        return bytes_of(v, DRAY__NONCE);
    case DRAY__MSG_AUTH:
        return list_of(v, 3) && bytes_of(at(v, 0), DRAY__NONCE) && bytes_of(at(v, 1), 32) &&
               is(at(v, 2), DRAY_T_STRING);
    case DRAY__MSG_REGISTER:
        return list_of(v, 4) && is(at(v, 0), DRAY_T_STRING) && nonneg_int(at(v, 1)) &&
               nonneg_int(at(v, 2)) && resources_ok(at(v, 3));
    case DRAY__MSG_SUBSCRIBE:
    case DRAY__MSG_STATUS_REQ:
    case DRAY__MSG_WAKE:
        return is(v, DRAY_T_NULL);
    case DRAY__MSG_LANE:
        return is(v, DRAY_T_STRING) && strlen(dray_string_cstr(v)) < 64;
    case DRAY__MSG_LANE_REPLY:
        return list_of(v, 2) && is(at(v, 0), DRAY_T_BOOL) && is(at(v, 1), DRAY_T_STRING);
    case DRAY__MSG_NODES:
        if (!is(v, DRAY_T_LIST))
            return false;
        for (size_t i = 0; i < dray_list_len(v); i++) {
            const dray_value *n = at(v, i);
            if (!list_of(n, 5) || !nonneg_int(at(n, 0)) || !is(at(n, 1), DRAY_T_STRING) ||
                !nonneg_int(at(n, 2)) || !resources_ok(at(n, 3)) || !is(at(n, 4), DRAY_T_BOOL))
                return false;
        }
        return true;
    case DRAY__MSG_PING: {
        /* tasks done, tasks running, object-store counters (dray__store_stats order), resident
         * bytes, process CPU time in ns, paused[, nested tasks spilled to other nodes] */
        if (!(list_of(v, 6) || (list_of(v, 7) && nonneg_int64(at(v, 6)))) ||
            !is(at(v, 5), DRAY_T_BOOL) || !nonneg_int(at(v, 0)) ||
            !nonneg_int(at(v, 1)) || !is(at(v, 2), DRAY_T_LIST) ||
            dray_list_len(at(v, 2)) != DRAY__STORE_NSTATS || !nonneg_int64(at(v, 3)) ||
            !nonneg_int64(at(v, 4)))
            return false;
        for (size_t i = 0; i < DRAY__STORE_NSTATS; i++)
            if (!is(at(at(v, 2), i), DRAY_T_INT) || at(at(v, 2), i)->u.i < 0)
                return false;
        return true;
    }
    case DRAY__MSG_PULL:
        return is(v, DRAY_T_INT) && v->u.i >= 0;
    case DRAY__MSG_STEAL:
        return is(v, DRAY_T_INT) && v->u.i > 0 && v->u.i <= 1 << 20;
    case DRAY__MSG_TRACE:
        return nonneg_int64(v);
    case DRAY__MSG_EVENTS:
        return events_ok(v);
    case DRAY__MSG_OBJ_FREE:
        return list_of(v, 2) && is(at(v, 0), DRAY_T_STRING) && is(at(v, 1), DRAY_T_INT) &&
               at(v, 1)->u.i >= 0;
    case DRAY__MSG_SUBMIT:
        return list_of(v, 4) && is(at(v, 0), DRAY_T_STRING) && is(at(v, 1), DRAY_T_LIST) &&
               dray_list_len(at(v, 1)) <= UINT16_MAX && nonneg_int(at(v, 2)) &&
               is(at(v, 3), DRAY_T_BOOL);
    case DRAY__MSG_RESULT: {
        if (!list_of(v, 2) || !is(at(v, 0), DRAY_T_INT))
            return false;
        int64_t st = at(v, 0)->u.i;
        if (st > 0 || st < DRAY_STATUS_MIN)
            return false;
        /* A failure carries its error value; data sections only carry successes. */
        bool in_data = (h->flags & (DRAY__RF_RAW | DRAY__RF_ENCODED)) != 0;
        if (h->flags & DRAY__RF_STOLEN)
            return st == 0 && is(at(v, 1), DRAY_T_NULL);
        if (h->flags & DRAY__RF_STORED) {
            const dray_value *d = at(v, 1);
            return st == 0 && list_of(d, 3) && is(at(d, 0), DRAY_T_INT) && at(d, 0)->u.i >= 0 &&
                   is(at(d, 1), DRAY_T_INT) && at(d, 1)->u.i >= 0 && is(at(d, 2), DRAY_T_BOOL);
        }
        if (in_data)
            return st == 0 && is(at(v, 1), DRAY_T_NULL);
        return st == 0 || is(at(v, 1), DRAY_T_ERROR);
    }
    case DRAY__MSG_STATUS:
        return is(v, DRAY_T_MAP);
    case DRAY__MSG_ACTOR_CREATE:
        return list_of(v, 6) && is(at(v, 0), DRAY_T_STRING) && is(at(v, 1), DRAY_T_LIST) &&
               dray_list_len(at(v, 1)) <= UINT16_MAX && is(at(v, 2), DRAY_T_INT) &&
               nonneg_int(at(v, 3)) && nonneg_int(at(v, 4)) && nonneg_int(at(v, 5));
    case DRAY__MSG_ACTOR_CALL:
        return list_of(v, 3) && is(at(v, 0), DRAY_T_INT) && nonneg_int(at(v, 1)) &&
               is(at(v, 2), DRAY_T_LIST) && dray_list_len(at(v, 2)) <= UINT16_MAX;
    case DRAY__MSG_ACTOR_KILL:
        return list_of(v, 2) && is(at(v, 0), DRAY_T_INT) && is(at(v, 1), DRAY_T_BOOL);
    case DRAY__MSG_ACTOR_RELEASE:
        return list_of(v, 1) && is(at(v, 0), DRAY_T_INT);
    }
    return false;
}

dray_status dray__wire_decode_ctl(const dray__hdr *h, const void *ctl, dray_value *out)
{
    dray_value v = dray_null();
    dray_status st = dray_value_decode(ctl, h->ctl_len, &v);
    if (st)
        return dray_set_error(st, "%s message: control payload: %s", type_name(h->type),
                              dray_last_error());
    if (!check_shape(h, &v)) {
        dray_value_release(&v);
        return dray_set_error(DRAY_EFORMAT, "%s message: control payload has the wrong shape",
                              type_name(h->type));
    }
    *out = v;
    return DRAY_OK;
}

dray_status dray__wire_decode_message(const uint8_t *buf, size_t len, dray__hdr *h, dray_value *ctl)
{
    dray__hdr hh;
    dray_status st = dray__wire_parse_header(buf, len, DRAY__WIRE_MAX_CTL, DRAY__WIRE_MAX_DATA, &hh);
    if (st)
        return st;
    if (len - DRAY__WIRE_HDR < hh.ctl_len || len - DRAY__WIRE_HDR - hh.ctl_len != hh.data_len)
        return dray_set_error(DRAY_EFORMAT, "%s message: %zu bytes after the header, header says "
                              "%u + %llu", type_name(hh.type), len - DRAY__WIRE_HDR, hh.ctl_len,
                              (unsigned long long)hh.data_len);
    dray_value v;
    if ((st = dray__wire_decode_ctl(&hh, buf + DRAY__WIRE_HDR, &v)))
        return st;
    if (hh.flags & DRAY__RF_ENCODED) {
        dray_value inner;
        st = dray_value_decode(buf + DRAY__WIRE_HDR + hh.ctl_len, hh.data_len, &inner);
        if (st) {
            dray_value_release(&v);
            return st;
        }
        dray_value_release(&inner);
    }
    *h = hh;
    *ctl = v;
    return DRAY_OK;
}

dray_status dray__write_value(const dray_value *v,
                              dray_status (*write)(void *buf, const void *data, size_t len),
                              void *buf)
{
    void *enc;
    size_t len;
    dray_status st = dray_value_encode(v, &enc, &len);
    if (!st) {
        st = write(buf, enc, len);
        dray_free(enc);
    }
    return st;
}
