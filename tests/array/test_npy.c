/* .npy I/O checked with NumPy (/usr/bin/python3) as the independent reader and writer, plus the
 * header parser's error paths. */
#include <stdio.h>
#include <unistd.h>

#include "util.h"

static char dir[64];

static const char *tmp(const char *name)
{
    static char buf[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
    return buf[k];
}

static void python(const char *code)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "cd %s && /usr/bin/python3 -c \"import numpy as np\n%s\"", dir, code);
    ASSERT_EQ(system(cmd), 0);
}

static void setup(void)
{
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "/tmp/dray-npy-XXXXXX");
        ASSERT_TRUE(mkdtemp(dir) != NULL);
    }
}

/* dray writes (streaming chunk rows), NumPy reads it and writes back 2*x+1, dray reads that. */
TEST(write_then_numpy)
{
    setup();
    const int64_t s[3] = {11, 6, 5}, c[3] = {4, 5, 2};
    dray_array *u;
    ASSERT_OK(dray_array_random_uniform(3, 3, s, c, 0, 1, &u));
    ASSERT_OK(dray_array_write_npy(test_rt(), u, tmp("a.npy")));
    python("a = np.load('a.npy')\n"
           "assert a.dtype == np.float64 and a.shape == (11, 6, 5), (a.dtype, a.shape)\n"
           "assert a.flags['C_CONTIGUOUS'] and (a >= 0).all() and (a < 1).all()\n"
           "np.save('b.npy', 2 * a + 1)");
    dray_ndarray *b;
    ASSERT_OK(dray_ndarray_read_npy(tmp("b.npy"), &b));
    ASSERT_EQ(dray_ndarray_size(b), 330);
    for (int64_t i = 0; i < 330; i++)
        ASSERT_TRUE(dray_ndarray_get(b, i) == 2 * dray_random_uniform_at(3, (uint64_t)i) + 1);
    dray_ndarray_release(b);
    dray_array_release(u);
    /* int32 and bool through ndarray writes */
    int32_t iv[6] = {1, -2, 3, -4, 5, 2147483647};
    dray_ndarray *n;
    ASSERT_OK(dray_ndarray_create(DRAY_INT32, 2, (int64_t[]){2, 3}, &n));
    memcpy(dray_ndarray_data(n), iv, sizeof(iv));
    ASSERT_OK(dray_ndarray_write_npy(n, tmp("i.npy")));
    dray_ndarray_release(n);
    python("a = np.load('i.npy')\n"
           "assert a.dtype == np.int32 and a.tolist() == [[1, -2, 3], [-4, 5, 2147483647]], a");
}

/* NumPy writes C and Fortran order, several dtypes, 0-d and empty arrays; dray reads them lazily. */
TEST(numpy_then_read)
{
    setup();
    python("np.save('f8.npy', np.arange(7 * 9 * 4, dtype=np.float64).reshape(7, 9, 4) / 8)\n"
           "np.save('fo.npy', np.asfortranarray(np.arange(6 * 10, dtype=np.int64).reshape(6, 10) - 20))\n"
           "np.save('f4.npy', (np.arange(13, dtype=np.float32) / 3))\n"
           "np.save('b1.npy', np.arange(10) % 3 == 0)\n"
           "np.save('z.npy', np.zeros((0, 4)))\n"
           "np.save('s.npy', np.float64(2.5))");
    dray_array *a;
    ASSERT_OK(dray_array_read_npy(tmp("f8.npy"), (int64_t[]){3, 4, 3}, &a));
    dray_ndarray *x = compute(a);
    for (int64_t i = 0; i < 252; i++)
        ASSERT_TRUE(dray_ndarray_get(x, i) == i / 8.0);
    dray_ndarray_release(x);
    dray_array_release(a);
    ASSERT_OK(dray_array_read_npy(tmp("fo.npy"), (int64_t[]){4, 3}, &a));
    ASSERT_EQ(dray_array_dtype(a), DRAY_INT64);
    x = compute(a);
    for (int64_t i = 0; i < 60; i++)
        ASSERT_EQ(((const int64_t *)dray_ndarray_cdata(x))[i], i - 20);
    dray_ndarray_release(x);
    dray_array_release(a);
    ASSERT_OK(dray_array_read_npy(tmp("f4.npy"), (int64_t[]){5}, &a));
    x = compute(a);
    for (int64_t i = 0; i < 13; i++)
        ASSERT_TRUE(((const float *)dray_ndarray_cdata(x))[i] == (float)i / 3.0f);
    dray_ndarray_release(x);
    dray_array_release(a);
    ASSERT_OK(dray_array_read_npy(tmp("b1.npy"), (int64_t[]){4}, &a));
    dray_array *cnt;
    ASSERT_OK(dray_array_reduce(DRAY_SUM, a, NULL, 0, NULL, &cnt));
    x = compute(cnt);
    ASSERT_EQ(((const int64_t *)dray_ndarray_cdata(x))[0], 4);
    dray_ndarray_release(x);
    dray_array_release(cnt);
    dray_array_release(a);
    ASSERT_OK(dray_array_read_npy(tmp("z.npy"), NULL, &a));
    x = compute(a);
    ASSERT_EQ(dray_ndarray_size(x), 0);
    dray_ndarray_release(x);
    dray_array_release(a);
    ASSERT_OK(dray_ndarray_read_npy(tmp("s.npy"), &x));
    ASSERT_EQ(dray_ndarray_ndim(x), 0);
    ASSERT_TRUE(dray_ndarray_get(x, 0) == 2.5);
    dray_ndarray_release(x);
}

/* The `dray npy` command reads a NumPy file lazily and prints NumPy's statistics. */
TEST(cli)
{
    setup();
    const char *bd = getenv("DRAY_BUILD_DIR");
    if (!bd)
        return; /* run outside ctest */
    python("np.save('c.npy', np.arange(12.0).reshape(3, 4))");
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s/bin/dray npy %s 2 > %s", bd, tmp("c.npy"), tmp("c.txt"));
    ASSERT_EQ(system(cmd), 0);
    python("out = open('c.txt').read()\n"
           "a = np.load('c.npy')\n"
           "vals = dict(l.split()[:2] for l in out.splitlines())\n"
           "assert vals['shape'] == '(3,' and vals['dtype'] == 'float64', out\n"
           "for k, f in [('sum', a.sum), ('mean', a.mean), ('std', a.std), ('min', a.min), ('max', a.max)]:\n"
           "    assert abs(float(vals[k]) - f()) < 1e-12, (k, vals[k], f())");
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ASSERT_TRUE(f != NULL);
    ASSERT_EQ(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void expect_bad(const char *name, const char *hdr, size_t data_bytes, dray_status want,
                       const char *msg)
{
    char buf[256];
    size_t hl = strlen(hdr);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)hl;
    buf[9] = 0;
    memcpy(buf + 10, hdr, hl);
    memset(buf + 10 + hl, 0, data_bytes);
    write_file(tmp(name), buf, 10 + hl + data_bytes);
    dray_array *a;
    ASSERT_STATUS(dray_array_read_npy(tmp(name), NULL, &a), want);
    ASSERT_CONTAINS(dray_last_error(), name);
    ASSERT_CONTAINS(dray_last_error(), msg);
}

TEST(malformed)
{
    setup();
    expect_bad("big.npy", "{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }\n", 16,
               DRAY_EUNSUPPORTED, "'>f8' not supported");
    expect_bad("nokey.npy", "{'descr': '<f8', 'shape': (2,), }\n", 16, DRAY_EFORMAT,
               "missing fortran_order");
    expect_bad("size.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }\n", 16,
               DRAY_EFORMAT, "header says");
    expect_bad("shape.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (2,x), }\n", 16,
               DRAY_EFORMAT, "shape is not a tuple");
    expect_bad("dup.npy", "{'descr': '<f8', 'descr': '<f8', }\n", 16, DRAY_EFORMAT,
               "repeated key 'descr'");
    static const char zip[] = "PK\x03\x04 not numpy at all";
    write_file(tmp("magic.npy"), zip, sizeof(zip) - 1);
    dray_array *a;
    ASSERT_STATUS(dray_array_read_npy(tmp("magic.npy"), NULL, &a), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "bad magic");
    ASSERT_STATUS(dray_array_read_npy(tmp("missing.npy"), NULL, &a), DRAY_ENOTFOUND);
    ASSERT_CONTAINS(dray_last_error(), "missing.npy");
    /* a file that changes under a lazy array fails its task with a message, not a crash */
    python("np.save('ch.npy', np.ones(10))");
    ASSERT_OK(dray_array_read_npy(tmp("ch.npy"), (int64_t[]){5}, &a));
    python("np.save('ch.npy', np.ones(12))");
    dray_ndarray *x;
    ASSERT_TRUE(dray_array_compute(test_rt(), a, &x) != DRAY_OK);
    ASSERT_CONTAINS(dray_last_error(), "changed since the array was made");
    dray_array_release(a);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ASSERT_EQ(system(cmd), 0);
}

RUN_TESTS(T_(write_then_numpy), T_(numpy_then_read), T_(cli), T_(malformed))
