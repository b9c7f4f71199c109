/* SHA-256 and HMAC-SHA256 against FIPS 180-4 / RFC 4231 known answers and Python's hashlib/hmac. */
#include <stdio.h>
#include <stdlib.h>

#include "cluster/internal.h"
#include "test.h"

static void hex_of(const uint8_t *d, char *out)
{
    dray__hex_encode(d, 32, out);
}

static void sha_hex(const void *data, size_t n, char *out)
{
    dray__sha256 s;
    uint8_t d[32];
    dray__sha256_init(&s);
    dray__sha256_update(&s, data, n);
    dray__sha256_final(&s, d);
    hex_of(d, out);
}

TEST(sha256_known_answers)
{
    char h[65];
    sha_hex("", 0, h);
    ASSERT_STREQ(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha_hex("abc", 3, h);
    ASSERT_STREQ(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha_hex(m, strlen(m), h);
    ASSERT_STREQ(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* One million 'a' fed in odd-sized pieces (exercises the block buffer). */
    dray__sha256 s;
    dray__sha256_init(&s);
    char a[997];
    memset(a, 'a', sizeof a);
    size_t left = 1000000;
    while (left) {
        size_t n = left < sizeof a ? left : sizeof a;
        dray__sha256_update(&s, a, n);
        left -= n;
    }
    uint8_t d[32];
    dray__sha256_final(&s, d);
    hex_of(d, h);
    ASSERT_STREQ(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void hmac_hex(const void *key, size_t kl, const void *msg, size_t ml, char *out)
{
    const void *parts[] = {msg};
    size_t lens[] = {ml};
    uint8_t d[32];
    dray__hmac_sha256(key, kl, parts, lens, 1, d);
    hex_of(d, out);
}

TEST(hmac_rfc4231)
{
    char h[65];
    uint8_t k1[20];
    memset(k1, 0x0b, sizeof k1);
    hmac_hex(k1, sizeof k1, "Hi There", 8, h);
    ASSERT_STREQ(h, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    hmac_hex("Jefe", 4, "what do ya want for nothing?", 28, h);
    ASSERT_STREQ(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* Test case 6: a 131-byte key (hashed first). */
    uint8_t k6[131];
    memset(k6, 0xaa, sizeof k6);
    const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    hmac_hex(k6, sizeof k6, m6, strlen(m6), h);
    ASSERT_STREQ(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

/* Random keys and messages of many lengths against Python's hmac module. */
TEST(hmac_python_oracle)
{
    FILE *p = popen("/usr/bin/python3 -c \""
                    "import hmac,hashlib,random\n"
                    "r=random.Random(7)\n"
                    "for i in range(200):\n"
                    "  k=bytes(r.randrange(256) for _ in range(r.randrange(0,150)))\n"
                    "  m=bytes(r.randrange(256) for _ in range(r.randrange(0,300)))\n"
                    "  print(k.hex() or '-', m.hex() or '-', hmac.new(k,m,hashlib.sha256).hexdigest())\n"
                    "\"",
                    "r");
    ASSERT_TRUE(p != NULL);
    char kh[400], mh[700], want[65];
    int n = 0;
    while (fscanf(p, "%399s %699s %64s", kh, mh, want) == 3) {
        uint8_t k[200], m[350];
        size_t kl = kh[0] == '-' ? 0 : strlen(kh) / 2, ml = mh[0] == '-' ? 0 : strlen(mh) / 2;
        if (kl)
            ASSERT_OK(dray__hex_decode(kh, k, kl));
        if (ml)
            ASSERT_OK(dray__hex_decode(mh, m, ml));
        char got[65];
        hmac_hex(k, kl, m, ml, got);
        ASSERT_STREQ(got, want);
        n++;
    }
    ASSERT_EQ(pclose(p), 0);
    ASSERT_EQ(n, 200);
}

TEST(hex_rejects_bad_digits)
{
    uint8_t out[2];
    ASSERT_STATUS(dray__hex_decode("zz00", out, 2), DRAY_EFORMAT);
    ASSERT_STATUS(dray__hex_decode("00112", out, 2), DRAY_EFORMAT);
    ASSERT_OK(dray__hex_decode("a0ff", out, 2));
    ASSERT_EQ(out[0], 0xa0);
    ASSERT_EQ(out[1], 0xff);
}

RUN_TESTS(T_(sha256_known_answers), T_(hmac_rfc4231), T_(hmac_python_oracle),
          T_(hex_rejects_bad_digits))
