/* The wire format: headers round-trip, and bad headers, shapes, sizes and truncations are rejected
 * with a message naming the problem. */
#include "cluster/internal.h"
#include "test.h"

static size_t build(uint8_t *buf, uint8_t type, uint8_t flags, const dray_value *ctl,
                    const void *data, size_t dlen)
{
    void *enc;
    size_t len;
    ASSERT_OK(dray_value_encode(ctl, &enc, &len));
    dray__hdr h = {type, flags, (uint32_t)len, dlen, 77};
    dray__wire_put_header(buf, &h);
    memcpy(buf + DRAY__WIRE_HDR, enc, len);
    if (dlen)
        memcpy(buf + DRAY__WIRE_HDR + len, data, dlen);
    dray_free(enc);
    return DRAY__WIRE_HDR + len + dlen;
}

/* A PING: tasks done, running, the object-store counters, RSS and CPU time (all `a` but running),
 * not paused. */
static dray_value ping(int64_t a, int64_t b)
{
    dray_value stats[DRAY__STORE_NSTATS];
    for (int i = 0; i < DRAY__STORE_NSTATS; i++)
        stats[i] = dray_int(a);
    dray_value items[6] = {dray_int(a),  dray_int(b), dray_null(),
                           dray_int(a),  dray_int(a), dray_bool(false)}, v;
    ASSERT_OK(dray_list_create(stats, DRAY__STORE_NSTATS, &items[2]));
    ASSERT_OK(dray_list_create(items, 6, &v));
    dray_value_release(&items[2]);
    return v;
}

/* The object-store messages: PULL, OBJ_FREE and a RESULT that names a stored object. */
TEST(object_messages)
{
    uint8_t buf[1024];
    dray__hdr h;
    dray_value ctl, v = dray_int(42);
    size_t n = build(buf, DRAY__MSG_PULL, 0, &v, NULL, 0);
    ASSERT_OK(dray__wire_decode_message(buf, n, &h, &ctl));
    ASSERT_EQ(ctl.u.i, 42);
    v = dray_int(-1);
    n = build(buf, DRAY__MSG_PULL, 0, &v, NULL, 0);
    ASSERT_STATUS(dray__wire_decode_message(buf, n, &h, &ctl), DRAY_EFORMAT);
    /* A PULL carries no data section. */
    v = dray_int(1);
    n = build(buf, DRAY__MSG_PULL, 0, &v, "x", 1);
    ASSERT_STATUS(dray__wire_decode_message(buf, n, &h, &ctl), DRAY_EFORMAT);
    dray_value items[3] = {dray_null(), dray_int(7), dray_null()};
    ASSERT_OK(dray_string_create("127.0.0.1:5", &items[0]));
    ASSERT_OK(dray_list_create(items, 2, &v));
    n = build(buf, DRAY__MSG_OBJ_FREE, 0, &v, NULL, 0);
    ASSERT_OK(dray__wire_decode_message(buf, n, &h, &ctl));
    dray_value_release(&ctl);
    dray_value_release(&v);
    dray_value_release(&items[0]);
    items[0] = dray_int(7);
    ASSERT_OK(dray_list_create(items, 2, &v)); /* the holder must be a string */
    n = build(buf, DRAY__MSG_OBJ_FREE, 0, &v, NULL, 0);
    ASSERT_STATUS(dray__wire_decode_message(buf, n, &h, &ctl), DRAY_EFORMAT);
    dray_value_release(&v);
    /* RESULT STORED: [0, [id, size, encoded]], no data, not with RAW. */
    dray_value d[3] = {dray_int(3), dray_int(1 << 20), dray_bool(false)}, r[2];
    r[0] = dray_int(0);
    ASSERT_OK(dray_list_create(d, 3, &r[1]));
    ASSERT_OK(dray_list_create(r, 2, &v));
    n = build(buf, DRAY__MSG_RESULT, DRAY__RF_STORED, &v, NULL, 0);
    ASSERT_OK(dray__wire_decode_message(buf, n, &h, &ctl));
    dray_value_release(&ctl);
    n = build(buf, DRAY__MSG_RESULT, DRAY__RF_STORED | DRAY__RF_RAW, &v, "ab", 2);
    ASSERT_STATUS(dray__wire_decode_message(buf, n, &h, &ctl), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "bad flags");
    n = build(buf, DRAY__MSG_RESULT, DRAY__RF_STORED, &v, "ab", 2);
    ASSERT_STATUS(dray__wire_decode_message(buf, n, &h, &ctl), DRAY_EFORMAT);
    dray_value_release(&v);
    dray_value_release(&r[1]);
    d[1] = dray_int(-5); /* negative size */
    ASSERT_OK(dray_list_create(d, 3, &r[1]));
    ASSERT_OK(dray_list_create(r, 2, &v));
    n = build(buf, DRAY__MSG_RESULT, DRAY__RF_STORED, &v, NULL, 0);
    ASSERT_STATUS(dray__wire_decode_message(buf, n, &h, &ctl), DRAY_EFORMAT);
    dray_value_release(&v);
    dray_value_release(&r[1]);
    /* STEAL asks for 1..2^20 tasks; a RESULT with RF_STOLEN is [0, null] and carries no other flag. */
    v = dray_int(5);
    n = build(buf, DRAY__MSG_STEAL, 0, &v, NULL, 0);
    ASSERT_OK(dray__wire_decode_message(buf, n, &h, &ctl));
    v = dray_int(0);
    n = build(buf, DRAY__MSG_STEAL, 0, &v, NULL, 0);
    ASSERT_STATUS(dray__wire_decode_message(buf, n, &h, &ctl), DRAY_EFORMAT);
    r[0] = dray_int(0);
    r[1] = dray_null();
    ASSERT_OK(dray_list_create(r, 2, &v));
    n = build(buf, DRAY__MSG_RESULT, DRAY__RF_STOLEN, &v, NULL, 0);
    ASSERT_OK(dray__wire_decode_message(buf, n, &h, &ctl));
    dray_value_release(&ctl);
    n = build(buf, DRAY__MSG_RESULT, DRAY__RF_STOLEN | DRAY__RF_LOST, &v, NULL, 0);
    ASSERT_STATUS(dray__wire_decode_message(buf, n, &h, &ctl), DRAY_EFORMAT);
    n = build(buf, DRAY__MSG_RESULT, 64, &v, NULL, 0);
    ASSERT_STATUS(dray__wire_decode_message(buf, n, &h, &ctl), DRAY_EFORMAT);
    dray_value_release(&v);
    /* An object handle inside SUBMIT arguments decodes through its extension type; a malformed one
     * (wrong field types) is refused. */
    const dray_ext_type *t = dray_ext_type_find("cluster.obj");
    ASSERT_TRUE(t != NULL);
    dray_ext_obj *o;
    dray_value bad[2] = {dray_int(1), dray_int(2)}, bl;
    ASSERT_OK(dray_list_create(bad, 2, &bl));
    void *enc;
    size_t len;
    ASSERT_OK(dray_value_encode(&bl, &enc, &len));
    ASSERT_STATUS(t->decode(enc, len, &o), DRAY_EFORMAT);
    dray_free(enc);
    dray_value_release(&bl);
}

TEST(header_roundtrip)
{
    uint8_t buf[DRAY__WIRE_HDR];
    dray__hdr h = {DRAY__MSG_RESULT, DRAY__RF_RAW, 123, 1ull << 33, 0x1122334455667788ull}, g;
    dray__wire_put_header(buf, &h);
    ASSERT_EQ(buf[0], 'D');
    ASSERT_EQ(buf[8], 123);
    ASSERT_OK(dray__wire_parse_header(buf, sizeof buf, DRAY__WIRE_MAX_CTL, DRAY__WIRE_MAX_DATA, &g));
    ASSERT_EQ(g.type, DRAY__MSG_RESULT);
    ASSERT_EQ(g.flags, DRAY__RF_RAW);
    ASSERT_EQ(g.ctl_len, 123);
    ASSERT_TRUE(g.data_len == 1ull << 33);
    ASSERT_TRUE(g.rid == 0x1122334455667788ull);
}

TEST(header_rejects)
{
    uint8_t buf[DRAY__WIRE_HDR];
    dray__hdr h = {DRAY__MSG_PING, 0, 10, 0, 1}, g;
    dray__wire_put_header(buf, &h);
    ASSERT_STATUS(dray__wire_parse_header(buf, 31, 100, 0, &g), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "31 bytes");
    buf[0] = 'X';
    ASSERT_STATUS(dray__wire_parse_header(buf, 32, 100, 0, &g), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "magic");
    buf[0] = 'D';
    buf[3] = 200;
    ASSERT_STATUS(dray__wire_parse_header(buf, 32, 100, 0, &g), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "unknown type 200");
    buf[3] = DRAY__MSG_PING;
    buf[6] = 1;
    ASSERT_STATUS(dray__wire_parse_header(buf, 32, 100, 0, &g), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "reserved");
    buf[6] = 0;
    ASSERT_STATUS(dray__wire_parse_header(buf, 32, 5, 0, &g), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "10 bytes exceeds 5");
    /* Data sections only on RESULT with a data flag. */
    h.data_len = 4;
    dray__wire_put_header(buf, &h);
    ASSERT_STATUS(dray__wire_parse_header(buf, 32, 100, 100, &g), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "unexpected data section");
    h = (dray__hdr){DRAY__MSG_RESULT, DRAY__RF_RAW | DRAY__RF_ENCODED, 10, 4, 1};
    dray__wire_put_header(buf, &h);
    ASSERT_STATUS(dray__wire_parse_header(buf, 32, 100, 100, &g), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "bad flags");
    h.flags = DRAY__RF_RAW;
    h.data_len = 1000;
    dray__wire_put_header(buf, &h);
    ASSERT_STATUS(dray__wire_parse_header(buf, 32, 100, 999, &g), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "1000 bytes exceeds 999");
}

TEST(message_shapes)
{
    uint8_t buf[4096];
    dray__hdr h;
    dray_value v = ping(3, 4), ctl;
    size_t n = build(buf, DRAY__MSG_PING, 0, &v, NULL, 0);
    ASSERT_OK(dray__wire_decode_message(buf, n, &h, &ctl));
    ASSERT_EQ(dray_list_get(&ctl, 1)->u.i, 4);
    dray_value_release(&ctl);
    /* Truncated and padded. */
    ASSERT_STATUS(dray__wire_decode_message(buf, n - 1, &h, &ctl), DRAY_EFORMAT);
    ASSERT_STATUS(dray__wire_decode_message(buf, n + 1, &h, &ctl), DRAY_EFORMAT);
    /* A PING payload where a SUBMIT is expected has the wrong shape. */
    n = build(buf, DRAY__MSG_SUBMIT, 0, &v, NULL, 0);
    ASSERT_STATUS(dray__wire_decode_message(buf, n, &h, &ctl), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "SUBMIT message: control payload has the wrong shape");
    dray_value_release(&v);
    /* RSS and CPU time are 64-bit: a node with 16 GiB resident after an hour of CPU is fine. */
    v = ping(3, 4);
    dray_value big[6] = {dray_int(3), dray_int(4), dray_value_retain(dray_list_get(&v, 2)),
                         dray_int((int64_t)16 << 30), dray_int(3600LL * 1000000000),
                         dray_bool(true)};
    dray_value_release(&v);
    ASSERT_OK(dray_list_create(big, 6, &v));
    dray_value_release(&big[2]);
    n = build(buf, DRAY__MSG_PING, 0, &v, NULL, 0);
    ASSERT_OK(dray__wire_decode_message(buf, n, &h, &ctl));
    ASSERT_EQ(dray_list_get(&ctl, 4)->u.i, 3600LL * 1000000000);
    ASSERT_TRUE(dray_list_get(&ctl, 5)->u.b); /* paused */
    dray_value_release(&ctl);
    /* The paused flag is a bool, and a PING without it (an older node) is refused. */
    dray_value_release(&big[5]);
    big[5] = dray_int(1);
    dray_value bad;
    big[2] = dray_list_get(&v, 2)[0];
    ASSERT_OK(dray_list_create(big, 6, &bad));
    n = build(buf, DRAY__MSG_PING, 0, &bad, NULL, 0);
    ASSERT_STATUS(dray__wire_decode_message(buf, n, &h, &ctl), DRAY_EFORMAT);
    dray_value_release(&bad);
    ASSERT_OK(dray_list_create(big, 5, &bad));
    n = build(buf, DRAY__MSG_PING, 0, &bad, NULL, 0);
    ASSERT_STATUS(dray__wire_decode_message(buf, n, &h, &ctl), DRAY_EFORMAT);
    dray_value_release(&bad);
    dray_value_release(&v);
    /* Negative counters are refused. */
    v = ping(-1, 0);
    n = build(buf, DRAY__MSG_PING, 0, &v, NULL, 0);
    ASSERT_STATUS(dray__wire_decode_message(buf, n, &h, &ctl), DRAY_EFORMAT);
    dray_value_release(&v);
    /* A RESULT with an encoded data section: the section must decode. */
    dray_value items[2] = {dray_int(0), dray_null()};
    ASSERT_OK(dray_list_create(items, 2, &v));
    n = build(buf, DRAY__MSG_RESULT, DRAY__RF_ENCODED, &v, "garbage", 7);
    ASSERT_STATUS(dray__wire_decode_message(buf, n, &h, &ctl), DRAY_EFORMAT);
    n = build(buf, DRAY__MSG_RESULT, DRAY__RF_RAW, &v, "rawbytes", 8);
    ASSERT_OK(dray__wire_decode_message(buf, n, &h, &ctl));
    ASSERT_EQ(h.data_len, 8);
    dray_value_release(&ctl);
    dray_value_release(&v);
    /* A failed RESULT must carry an error value. */
    items[0] = dray_int(DRAY_ETASK);
    ASSERT_OK(dray_list_create(items, 2, &v));
    n = build(buf, DRAY__MSG_RESULT, 0, &v, NULL, 0);
    ASSERT_STATUS(dray__wire_decode_message(buf, n, &h, &ctl), DRAY_EFORMAT);
    dray_value_release(&v);
}

/* NODES entries: [id, address, cpus, resources, paused]. */
TEST(nodes_carry_the_paused_flag)
{
    uint8_t buf[1024];
    dray__hdr h;
    dray_value f[5] = {dray_int(0), dray_null(), dray_int(2), dray_null(), dray_bool(true)}, e, v,
               ctl;
    ASSERT_OK(dray_string_create("127.0.0.1:9", &f[1]));
    ASSERT_OK(dray_map_create(NULL, NULL, 0, &f[3]));
    for (int k = 0; k < 3; k++) {
        /* k = 0: well formed; 1: paused is not a bool; 2: no paused field */
        f[4] = k == 1 ? dray_int(1) : dray_bool(true);
        ASSERT_OK(dray_list_create(f, k == 2 ? 4 : 5, &e));
        ASSERT_OK(dray_list_create(&e, 1, &v));
        size_t n = build(buf, DRAY__MSG_NODES, 0, &v, NULL, 0);
        if (k == 0) {
            ASSERT_OK(dray__wire_decode_message(buf, n, &h, &ctl));
            ASSERT_TRUE(dray_list_get(dray_list_get(&ctl, 0), 4)->u.b);
            dray_value_release(&ctl);
        } else {
            ASSERT_STATUS(dray__wire_decode_message(buf, n, &h, &ctl), DRAY_EFORMAT);
        }
        dray_value_release(&v);
        dray_value_release(&e);
    }
    dray_value_release(&f[1]);
    dray_value_release(&f[3]);
}

/* Random corruptions of a valid message never crash and either decode or fail with EFORMAT. */
TEST(corruptions_are_rejected_cleanly)
{
    uint8_t buf[512], tmp[512];
    dray_value items[4] = {dray_null(), dray_null(), dray_int(0), dray_bool(false)}, v;
    ASSERT_OK(dray_string_create("f", &items[0]));
    dray_value args[2] = {dray_int(1), dray_float(2.5)};
    ASSERT_OK(dray_list_create(args, 2, &items[1]));
    ASSERT_OK(dray_list_create(items, 4, &v));
    size_t n = build(buf, DRAY__MSG_SUBMIT, 0, &v, NULL, 0);
    uint64_t x = 12345;
    int ok = 0, bad = 0;
    for (int i = 0; i < 20000; i++) {
        memcpy(tmp, buf, n);
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        tmp[(x >> 33) % n] ^= (uint8_t)(1u << ((x >> 20) & 7));
        size_t len = (x >> 40) % 5 == 0 ? (x >> 45) % n : n;
        dray__hdr h;
        dray_value ctl;
        dray_status st = dray__wire_decode_message(tmp, len, &h, &ctl);
        if (st == DRAY_OK) {
            ok++;
            dray_value_release(&ctl);
        } else {
            ASSERT_TRUE(st == DRAY_EFORMAT || st == DRAY_ERANGE || st == DRAY_ETYPE);
            bad++;
        }
    }
    ASSERT_GT(bad, 1000);
    dray_value_release(&v);
    dray_value_release(&items[0]);
    dray_value_release(&items[1]);
}

RUN_TESTS(T_(header_roundtrip), T_(header_rejects), T_(message_shapes), T_(object_messages),
          T_(nodes_carry_the_paused_flag),
          T_(corruptions_are_rejected_cleanly))
