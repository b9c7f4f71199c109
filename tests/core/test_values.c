/* Values and their codec: constructors, accessors, equality, error chains, encode/decode round trips,
 * and rejection of truncated and corrupt buffers. */
#include "dray/dray.h"
#include "test.h"

static dray_value sample(void)
{
    dray_value s, b, inner[3], list, err, cause;
    ASSERT_OK(dray_string_create("héllo", &s));
    ASSERT_OK(dray_bytes_create("\0\1\2\3", 4, &b));
    inner[0] = dray_int(-123456789012345);
    inner[1] = dray_float(-0.125);
    inner[2] = dray_bool(true);
    ASSERT_OK(dray_list_create(inner, 3, &list));
    ASSERT_OK(dray_error_create(DRAY_EIO, "load", "disk on fire", -1, NULL, &cause));
    ASSERT_OK(dray_error_create(DRAY_EDEP, "train", "input 2 failed", 2, &cause, &err));
    const char *keys[6] = {"s", "b", "list", "null", "err", "big"};
    dray_value vals[6] = {s, b, list, dray_null(), err, dray_int(INT64_MIN)};
    dray_value map;
    ASSERT_OK(dray_map_create(keys, vals, 6, &map));
    dray_value_release(&s);
    dray_value_release(&b);
    dray_value_release(&list);
    dray_value_release(&err);
    dray_value_release(&cause);
    return map;
}

TEST(constructors_and_accessors)
{
    dray_value m = sample();
    ASSERT_EQ(dray_map_len(&m), 6);
    ASSERT_STREQ(dray_string_cstr(dray_map_get(&m, "s")), "héllo");
    ASSERT_EQ(dray_string_len(dray_map_get(&m, "s")), 6);
    size_t n;
    const unsigned char *d = dray_bytes_data(dray_map_get(&m, "b"), &n);
    ASSERT_EQ(n, 4);
    ASSERT_EQ(d[3], 3);
    const dray_value *l = dray_map_get(&m, "list");
    ASSERT_EQ(dray_list_len(l), 3);
    ASSERT_EQ(dray_list_get(l, 0)->u.i, -123456789012345);
    ASSERT_TRUE(dray_list_get(l, 3) == NULL);
    ASSERT_TRUE(dray_map_get(&m, "missing") == NULL);
    ASSERT_TRUE(dray_string_cstr(l) == NULL);
    const dray_value *e = dray_map_get(&m, "err");
    ASSERT_EQ(dray_error_status(e), DRAY_EDEP);
    char buf[256];
    dray_error_format(e, buf, sizeof buf);
    ASSERT_STREQ(buf, "train: input 2 failed <- load: disk on fire");
    char small[8];
    size_t full = dray_error_format(e, small, sizeof small);
    ASSERT_EQ(full, strlen(buf));
    ASSERT_EQ(strlen(small), 7);
    dray_value_release(&m);
}

TEST(bad_constructor_input)
{
    dray_value v;
    ASSERT_STATUS(dray_string_create(NULL, &v), DRAY_EINVAL);
    ASSERT_STATUS(dray_bytes_create(NULL, 3, &v), DRAY_EINVAL);
    const char *keys[2] = {"a", "a"};
    dray_value vals[2] = {dray_int(1), dray_int(2)};
    ASSERT_STATUS(dray_map_create(keys, vals, 2, &v), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "duplicate key 'a'");
    dray_value node = dray_value_of_node((dray_node){0});
    ASSERT_STATUS(dray_list_create(&node, 1, &v), DRAY_ETYPE);
    dray_value notanerr = dray_int(1);
    ASSERT_STATUS(dray_error_create(DRAY_EIO, "f", "m", -1, &notanerr, &v), DRAY_ETYPE);
}

TEST(codec_round_trip)
{
    dray_value m = sample();
    void *buf;
    size_t len;
    ASSERT_OK(dray_value_encode(&m, &buf, &len));
    dray_value back;
    ASSERT_OK(dray_value_decode(buf, len, &back));
    ASSERT_TRUE(dray_value_equal(&m, &back));
    /* An independent check of the format: header, then a map tag with 6 entries. */
    const unsigned char *p = buf;
    ASSERT_EQ(p[0], 'D');
    ASSERT_EQ(p[1], 'V');
    ASSERT_EQ(p[2], 1);
    ASSERT_EQ(p[3], DRAY_T_MAP);
    ASSERT_EQ(p[4], 6);
    dray_value_release(&back);
    /* Every truncation is rejected cleanly. */
    for (size_t cut = 0; cut < len; cut++) {
        dray_value v;
        ASSERT_STATUS(dray_value_decode(buf, cut, &v), DRAY_EFORMAT);
    }
    /* Trailing garbage too. */
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0;
    ASSERT_STATUS(dray_value_decode(longer, len + 1, &back), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "trailing");
    /* Every single-byte corruption either decodes to something or fails cleanly (no crash). */
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(longer, buf, len);
            longer[i] ^= (unsigned char)(1 << bit);
            dray_value v;
            if (dray_value_decode(longer, len, &v) == DRAY_OK)
                dray_value_release(&v);
        }
    }
    free(longer);
    dray_free(buf);
    dray_value_release(&m);
}

TEST(codec_scalars_known_bytes)
{
    /* int -1 is zigzag 1; 300 is zigzag 600 = 0xd8 0x04. */
    dray_value v = dray_int(300);
    void *buf;
    size_t len;
    ASSERT_OK(dray_value_encode(&v, &buf, &len));
    const unsigned char want[] = {'D', 'V', 1, DRAY_T_INT, 0xd8, 0x04};
    ASSERT_EQ(len, sizeof want);
    ASSERT_TRUE(memcmp(buf, want, len) == 0);
    dray_free(buf);
    v = dray_float(1.0);
    ASSERT_OK(dray_value_encode(&v, &buf, &len));
    const unsigned char fwant[] = {'D', 'V', 1, DRAY_T_FLOAT, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f};
    ASSERT_EQ(len, sizeof fwant);
    ASSERT_TRUE(memcmp(buf, fwant, len) == 0);
    dray_free(buf);
}

TEST(codec_rejects)
{
    const unsigned char bad_magic[] = {'X', 'V', 1, 0};
    const unsigned char bad_version[] = {'D', 'V', 9, 0};
    const unsigned char bad_type[] = {'D', 'V', 1, 99};
    const unsigned char huge_list[] = {'D', 'V', 1, DRAY_T_LIST, 0xff, 0xff, 0xff, 0xff, 0x0f};
    const unsigned char bad_bool[] = {'D', 'V', 1, DRAY_T_BOOL, 7};
    const unsigned char long_varint[] = {'D', 'V', 1, DRAY_T_INT, 0xff, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    dray_value v;
    ASSERT_STATUS(dray_value_decode(bad_magic, sizeof bad_magic, &v), DRAY_EFORMAT);
    ASSERT_STATUS(dray_value_decode(bad_version, sizeof bad_version, &v), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "version 9");
    ASSERT_STATUS(dray_value_decode(bad_type, sizeof bad_type, &v), DRAY_EFORMAT);
    ASSERT_STATUS(dray_value_decode(huge_list, sizeof huge_list, &v), DRAY_EFORMAT);
    ASSERT_STATUS(dray_value_decode(bad_bool, sizeof bad_bool, &v), DRAY_EFORMAT);
    ASSERT_STATUS(dray_value_decode(long_varint, sizeof long_varint, &v), DRAY_EFORMAT);
    /* Nesting deeper than the limit. */
    unsigned char deep[3 + 2 * 200 + 1];
    deep[0] = 'D', deep[1] = 'V', deep[2] = 1;
    for (int i = 0; i < 200; i++)
        deep[3 + 2 * i] = DRAY_T_LIST, deep[4 + 2 * i] = 1;
    deep[sizeof deep - 1] = DRAY_T_NULL;
    ASSERT_STATUS(dray_value_decode(deep, sizeof deep, &v), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "nested");
    /* Refs cannot be encoded without a cluster. */
    ASSERT_STATUS(dray_value_decode(NULL, 0, &v), DRAY_EFORMAT);
}

typedef struct point {
    dray_ext_obj hdr;
    double x, y;
} point;

static int points_destroyed;
static void point_destroy(dray_ext_obj *o)
{
    points_destroyed++;
    free(o);
}
static dray_status point_encode(const dray_ext_obj *o,
                                dray_status (*write)(void *, const void *, size_t), void *buf)
{
    const point *p = (const point *)o;
    return write(buf, &p->x, 2 * sizeof(double));
}
static dray_ext_type point_type;
static dray_status point_decode(const void *data, size_t len, dray_ext_obj **out)
{
    if (len != 2 * sizeof(double))
        return dray_set_error(DRAY_EFORMAT, "point: %zu bytes, want 16", len);
    point *p = malloc(sizeof *p);
    dray_ext_obj_init(&p->hdr, &point_type);
    memcpy(&p->x, data, 16);
    *out = &p->hdr;
    return DRAY_OK;
}
static dray_ext_type point_type = {"test.point", point_destroy, point_encode, point_decode, NULL};
DRAY_EXT_TYPE(point_type)

TEST(extension_values)
{
    point *p = malloc(sizeof *p);
    dray_ext_obj_init(&p->hdr, &point_type);
    p->x = 1.5;
    p->y = -2;
    dray_value v = dray_value_of_ext(&p->hdr);
    dray_value copy = dray_value_retain(&v);
    void *buf;
    size_t len;
    ASSERT_OK(dray_value_encode(&v, &buf, &len));
    dray_value back;
    ASSERT_OK(dray_value_decode(buf, len, &back));
    ASSERT_EQ(back.type, DRAY_T_EXT);
    ASSERT_NEAR(((point *)back.u.ext)->y, -2, 0);
    dray_value_release(&back);
    ASSERT_EQ(points_destroyed, 1);
    dray_value_release(&v);
    ASSERT_EQ(points_destroyed, 1);
    dray_value_release(&copy);
    ASSERT_EQ(points_destroyed, 2);
    ((unsigned char *)buf)[5] = 'X'; /* type name now unknown */
    ASSERT_STATUS(dray_value_decode(buf, len, &back), DRAY_EFORMAT);
    dray_free(buf);
}

TEST(status_strings)
{
    /* A message built from the current message keeps it. */
    dray_set_error(DRAY_EIO, "disk on fire");
    dray_set_error(DRAY_ETASK, "load: %s", dray_last_error());
    ASSERT_STREQ(dray_last_error(), "load: disk on fire");
    ASSERT_STREQ(dray_status_str(DRAY_ENOMEM), "out of memory");
    ASSERT_STREQ(dray_status_name(DRAY_ETIMEDOUT), "DRAY_ETIMEDOUT");
    ASSERT_STREQ(dray_status_str((dray_status)-999), "unknown status");
}

RUN_TESTS(T_(constructors_and_accessors), T_(bad_constructor_input), T_(codec_round_trip),
          T_(codec_scalars_known_bytes), T_(codec_rejects), T_(extension_values),
          T_(status_strings))
