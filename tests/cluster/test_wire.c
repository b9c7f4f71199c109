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
    /* An optional seventh item counts the node's spilled nested tasks: an int >= 0. */
    for (int64_t spilled = -1; spilled <= 7; spilled += 8) {
        dray_value p = ping(1, 0), items[7];
        for (size_t i = 0; i < 6; i++)
            items[i] = *dray_list_get(&p, i);
        items[6] = dray_int(spilled);
        ASSERT_OK(dray_list_create(items, 7, &v));
        dray_value_release(&p);
        n = build(buf, DRAY__MSG_PING, 0, &v, NULL, 0);
        if (spilled < 0) {
            ASSERT_STATUS(dray__wire_decode_message(buf, n, &h, &ctl), DRAY_EFORMAT);
        } else {
            ASSERT_OK(dray__wire_decode_message(buf, n, &h, &ctl));
            ASSERT_EQ(dray_list_get(&ctl, 6)->u.i, spilled);
            dray_value_release(&ctl);
        }
        dray_value_release(&v);
    }
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

DRAY_FUNCTION(wt_fail)
{
    return dray_ctx_fail(ctx, DRAY_ETASK, "wt_fail %lld", (long long)args[0].u.i);
}

/* An extension type that writes a fixed payload: renamed to "cluster.ref" in the encoded bytes, it
 * makes a malformed marker. */
static dray_status fake_encode(const dray_ext_obj *o,
                               dray_status (*write)(void *buf, const void *data, size_t len),
                               void *buf)
{
    (void)o;
    dray_value items[2] = {dray_int(DRAY_ETASK), dray_int(3)}, v; /* a failure without an error */
    void *enc;
    size_t len;
    ASSERT_OK(dray_list_create(items, 2, &v));
    ASSERT_OK(dray_value_encode(&v, &enc, &len));
    dray_status st = write(buf, enc, len);
    dray_free(enc);
    dray_value_release(&v);
    return st;
}
static void fake_destroy(dray_ext_obj *o)
{
    free(o);
}
static dray_ext_type fake_marker = {"cluster.reX", fake_destroy, fake_encode, NULL, NULL};

/* Refs inside a list argument travel as "cluster.ref" markers: a SUBMIT holding them decodes, the
 * receiver gets refs with the same outcomes (value, error chain), and a malformed marker is refused
 * by the decoder. */
TEST(ref_markers_round_trip_and_are_checked)
{
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 1;
    cfg.address = "";
    cfg.progress = 0;
    dray_runtime *rt;
    ASSERT_OK(dray_init(&cfg, &rt));
    dray_value five = dray_int(5), one = dray_int(1);
    dray_ref *ok, *bad;
    ASSERT_OK(dray_put(rt, &five, &ok));
    ASSERT_OK(dray_submit(rt, "wt_fail", &one, 1, NULL, &bad));
    dray_value inner = dray_null(), items[3], list, wire;
    items[1] = dray_value_of_ref(bad);
    const char *key = "k";
    ASSERT_OK(dray_map_create(&key, &items[1], 1, &inner)); /* a map inside the list */
    ASSERT_TRUE(dray__nested_refs(&inner));
    items[0] = dray_value_of_ref(ok);
    items[1] = inner;
    items[2] = dray_int(3);
    ASSERT_OK(dray_list_create(items, 3, &list));
    dray_value_release(&inner);
    ASSERT_TRUE(dray__nested_refs(&list));
    ASSERT_OK(dray__nested_to_wire(rt, &list, NULL, NULL, &wire));
    ASSERT_TRUE(!dray__nested_refs(&wire));
    ASSERT_TRUE(dray__nested_markers(&wire));
    /* In a SUBMIT: [fn, [wire], retries, retry_exc]. */
    dray_value sub[4] = {dray_null(), dray_null(), dray_int(0), dray_bool(false)}, msg, ctl;
    ASSERT_OK(dray_string_create("f", &sub[0]));
    ASSERT_OK(dray_list_create(&wire, 1, &sub[1]));
    ASSERT_OK(dray_list_create(sub, 4, &msg));
    uint8_t buf[2048];
    size_t n = build(buf, DRAY__MSG_SUBMIT, 0, &msg, NULL, 0);
    dray__hdr h;
    ASSERT_OK(dray__wire_decode_message(buf, n, &h, &ctl));
    dray_value back;
    ASSERT_OK(dray__nested_from_wire(rt, dray_list_get(dray_list_get(&ctl, 1), 0), NULL, NULL,
                                     &back));
    ASSERT_EQ(dray_list_get(&back, 0)->type, DRAY_T_REF);
    dray_value v;
    ASSERT_OK(dray_get(rt, dray_list_get(&back, 0)->u.ref, 1000, &v));
    ASSERT_EQ(v.u.i, 5);
    ASSERT_EQ(dray_list_get(&back, 1)->type, DRAY_T_MAP);
    const dray_value *r2 = dray_map_get(dray_list_get(&back, 1), "k");
    ASSERT_TRUE(r2 != NULL);
    ASSERT_EQ(r2->type, DRAY_T_REF);
    ASSERT_STATUS(dray_get(rt, r2->u.ref, 1000, NULL), DRAY_ETASK);
    ASSERT_CONTAINS(dray_last_error(), "wt_fail 1");
    ASSERT_EQ(dray_list_get(&back, 2)->u.i, 3);
    dray_value_release(&back);
    dray_value_release(&ctl);
    dray_value_release(&msg);
    dray_value_release(&sub[0]);
    dray_value_release(&sub[1]);
    /* A marker saying "failed" without an error value is refused. */
    dray_ext_obj *fo = malloc(sizeof(*fo));
    dray_ext_obj_init(fo, &fake_marker);
    dray_value fv = dray_value_of_ext(fo);
    ASSERT_OK(dray_list_create(&fv, 1, &sub[1]));
    ASSERT_OK(dray_string_create("f", &sub[0]));
    ASSERT_OK(dray_list_create(sub, 4, &msg));
    n = build(buf, DRAY__MSG_SUBMIT, 0, &msg, NULL, 0);
    uint8_t *name = memmem(buf, n, "cluster.reX", 11);
    ASSERT_TRUE(name != NULL);
    name[10] = 'f';
    ASSERT_NE(dray__wire_decode_message(buf, n, &h, &ctl), DRAY_OK);
    ASSERT_CONTAINS(dray_last_error(), "cluster.ref");
    dray_value_release(&msg);
    dray_value_release(&sub[0]);
    dray_value_release(&sub[1]);
    dray_value_release(&fv);
    dray_value_release(&wire);
    dray_value_release(&list);
    dray_ref_release(ok);
    dray_ref_release(bad);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
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
          T_(nodes_carry_the_paused_flag), T_(ref_markers_round_trip_and_are_checked),
          T_(corruptions_are_rejected_cleanly))
