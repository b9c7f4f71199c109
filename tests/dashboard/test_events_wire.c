/* The wire shapes of the dashboard's cluster messages: TRACE (head clock) and EVENTS (clock samples,
 * names, fixed-size event records, submissions) are accepted when well formed and every bad field,
 * size and index is rejected by the decoder. With DRAY_WIRE_SEEDS=DIR it also writes the fuzz seeds
 * (fuzz/corpus/wire/trace, events). */
#include <stdio.h>
#include <stdlib.h>

#include "cluster/internal.h"
#include "dray/dashboard.h"
#include "test.h"

static size_t build(uint8_t *buf, uint8_t type, const dray_value *ctl)
{
    void *enc;
    size_t len;
    ASSERT_OK(dray_value_encode(ctl, &enc, &len));
    dray__hdr h = {type, 0, (uint32_t)len, 0, 0};
    dray__wire_put_header(buf, &h);
    memcpy(buf + DRAY__WIRE_HDR, enc, len);
    dray_free(enc);
    return DRAY__WIRE_HDR + len;
}

static void put(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* One record: start, stop, bytes, count, name index, kind, status, row, tid. */
static void rec(uint8_t *r, int64_t t0, int64_t t1, uint64_t bytes, uint32_t count, int name,
                int kind, int status, int row, int tid)
{
    memset(r, 0, DRAY__EVREC);
    put(r, (uint64_t)t0, 8);
    put(r + 8, (uint64_t)t1, 8);
    put(r + 16, bytes, 8);
    put(r + 24, count, 4);
    put(r + 28, (uint64_t)name, 2);
    r[30] = (uint8_t)kind;
    put(r + 32, (uint64_t)(uint16_t)(int16_t)status, 2);
    put(r + 34, (uint64_t)(uint16_t)(int16_t)row, 2);
    put(r + 36, (uint64_t)tid, 4);
}

/* An EVENTS control payload with names {"f", "g"}, records recs[0..n) and one submission entry
 * [sub_name, sub_n]. */
static dray_value events(const uint8_t *recs, size_t n, int64_t sub_name, int64_t sub_n)
{
    dray_value names[2], items[7] = {dray_int(100), dray_int(150), dray_int(170), dray_int(0)},
                         pair[2] = {dray_int(sub_name), dray_int(sub_n)}, sub, v;
    ASSERT_OK(dray_string_create("f", &names[0]));
    ASSERT_OK(dray_string_create("g", &names[1]));
    ASSERT_OK(dray_list_create(names, 2, &items[4]));
    void *p;
    ASSERT_OK(dray_bytes_create_uninit(n * DRAY__EVREC, &items[5], &p));
    if (n)
        memcpy(p, recs, n * DRAY__EVREC);
    ASSERT_OK(dray_list_create(pair, 2, &sub));
    ASSERT_OK(dray_list_create(&sub, 1, &items[6]));
    ASSERT_OK(dray_list_create(items, 7, &v));
    dray_value_release(&names[0]);
    dray_value_release(&names[1]);
    dray_value_release(&sub);
    for (int i = 4; i < 7; i++)
        dray_value_release(&items[i]);
    return v;
}

static dray_status decode(const dray_value *ctl, uint8_t type, const char *seed)
{
    static uint8_t buf[1 << 19];
    size_t n = build(buf, type, ctl);
    const char *dir = getenv("DRAY_WIRE_SEEDS");
    if (dir && seed) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, seed);
        FILE *f = fopen(path, "wb");
        ASSERT_TRUE(f != NULL);
        ASSERT_EQ(fwrite(buf, 1, n, f), n);
        fclose(f);
    }
    dray__hdr h;
    dray_value out;
    dray_status st = dray__wire_decode_message(buf, n, &h, &out);
    if (!st)
        dray_value_release(&out);
    return st;
}

TEST(trace_shape)
{
    dray_value v = dray_int(123456789);
    ASSERT_OK(decode(&v, DRAY__MSG_TRACE, "trace"));
    v = dray_int(-1);
    ASSERT_STATUS(decode(&v, DRAY__MSG_TRACE, NULL), DRAY_EFORMAT);
    v = dray_null();
    ASSERT_STATUS(decode(&v, DRAY__MSG_TRACE, NULL), DRAY_EFORMAT);
}

TEST(events_shape)
{
    uint8_t r[3 * DRAY__EVREC];
    rec(r, 10, 20, 0, 5, 0, DRAY_EVENT_TASK, 0, 1, 77);
    rec(r + DRAY__EVREC, 20, 30, 0, 1, 1, DRAY_EVENT_ERROR, DRAY_ETASK, -2, 78);
    rec(r + 2 * DRAY__EVREC, 30, 30, 4096, 1, 1, DRAY_EVENT_TRANSFER, 0, -1, 0);
    dray_value v = events(r, 3, 1, 7);
    ASSERT_OK(decode(&v, DRAY__MSG_EVENTS, "events"));
    dray_value_release(&v);
    v = events(r, 0, 0, -2); /* an empty batch; tasks taken back are negative */
    ASSERT_OK(decode(&v, DRAY__MSG_EVENTS, NULL));
    dray_value_release(&v);
    /* Each bad field of a record. */
    struct {
        int64_t t0, t1;
        uint32_t count;
        int name, kind, status, row;
    } bad[] = {
        {-1, 5, 1, 0, 0, 0, 0},               /* negative start */
        {10, 5, 1, 0, 0, 0, 0},               /* stop before start */
        {1, 2, 0, 0, 0, 0, 0},                /* zero tasks */
        {1, 2, 1, 2, 0, 0, 0},                /* name index past the names */
        {1, 2, 1, 0, DRAY__EVENT_KINDS, 0, 0}, /* unknown kind */
        {1, 2, 1, 0, 0, 3, 0},                /* positive status */
        {1, 2, 1, 0, 0, 0, 1000},             /* row out of range */
        {1, 2, 1, 0, 0, 0, -1001},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rec(r, bad[i].t0, bad[i].t1, 0, bad[i].count, bad[i].name, bad[i].kind, bad[i].status,
            bad[i].row, 1);
        v = events(r, 1, 0, 1);
        ASSERT_STATUS(decode(&v, DRAY__MSG_EVENTS, NULL), DRAY_EFORMAT);
        dray_value_release(&v);
    }
    /* The reserved byte, a ragged record section, a submission naming no name. */
    rec(r, 1, 2, 0, 1, 0, 0, 0, 0, 1);
    r[31] = 1;
    v = events(r, 1, 0, 1);
    ASSERT_STATUS(decode(&v, DRAY__MSG_EVENTS, NULL), DRAY_EFORMAT);
    dray_value_release(&v);
    r[31] = 0;
    v = events(r, 1, 2, 1);
    ASSERT_STATUS(decode(&v, DRAY__MSG_EVENTS, NULL), DRAY_EFORMAT);
    dray_value_release(&v);
    dray_value items[7] = {dray_int(1), dray_int(1), dray_int(1), dray_int(0)}, w;
    void *p;
    ASSERT_OK(dray_list_create(NULL, 0, &items[4]));
    ASSERT_OK(dray_bytes_create_uninit(DRAY__EVREC - 1, &items[5], &p));
    memset(p, 0, DRAY__EVREC - 1);
    ASSERT_OK(dray_list_create(NULL, 0, &items[6]));
    ASSERT_OK(dray_list_create(items, 7, &w));
    ASSERT_STATUS(decode(&w, DRAY__MSG_EVENTS, NULL), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "EVENTS");
    dray_value_release(&w);
    for (int i = 4; i < 7; i++)
        dray_value_release(&items[i]);
    /* One batch holds at most DRAY__EVREC_MAX records (each valid here). */
    uint8_t *many = malloc((DRAY__EVREC_MAX + 1) * (size_t)DRAY__EVREC);
    ASSERT_TRUE(many != NULL);
    for (size_t i = 0; i <= DRAY__EVREC_MAX; i++)
        rec(many + i * DRAY__EVREC, 1, 2, 0, 1, 0, 0, 0, 0, 1);
    v = events(many, DRAY__EVREC_MAX, 0, 1);
    ASSERT_OK(decode(&v, DRAY__MSG_EVENTS, NULL));
    dray_value_release(&v);
    v = events(many, DRAY__EVREC_MAX + 1, 0, 1);
    ASSERT_STATUS(decode(&v, DRAY__MSG_EVENTS, NULL), DRAY_EFORMAT);
    dray_value_release(&v);
    free(many);
    /* A list where the batch should be. */
    v = dray_int(5);
    ASSERT_STATUS(decode(&v, DRAY__MSG_EVENTS, NULL), DRAY_EFORMAT);
}

RUN_TESTS(T_(trace_shape), T_(events_shape))
