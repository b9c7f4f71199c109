/* Bad input gives a clear status and a message naming the input: shapes, axes, chunking, dtypes,
 * and errors raised inside tasks surface from compute. */
#include <unistd.h>

#include "util.h"

TEST(construction_errors)
{
    const int64_t s1[2] = {3, 4}, s2[2] = {2, 4}, bad_chunks[2] = {2, -1}, neg[2] = {3, -4};
    dray_array *a, *b, *c;
    ASSERT_OK(dray_array_zeros(DRAY_FLOAT64, 2, s1, NULL, &a));
    ASSERT_OK(dray_array_ones(DRAY_INT32, 2, s2, NULL, &b));
    ASSERT_STATUS(dray_array_binary(DRAY_ADD, a, b, &c), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "shapes (3, 4) and (2, 4) do not broadcast");
    ASSERT_STATUS(dray_array_zeros(DRAY_FLOAT64, 2, s1, bad_chunks, &c), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "axis 1 has chunk size -1");
    ASSERT_STATUS(dray_array_zeros(DRAY_FLOAT64, 2, neg, NULL, &c), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "axis 1 has a bad length");
    ASSERT_STATUS(dray_array_zeros((dray_dtype)9, 2, s1, NULL, &c), DRAY_ETYPE);
    ASSERT_STATUS(dray_array_unary(DRAY_NOT, a, &c), DRAY_ETYPE);
    ASSERT_CONTAINS(dray_last_error(), "needs a bool array, not float64");
    ASSERT_STATUS(dray_array_reduce(DRAY_SUM, a, (int[]){-3}, 1, NULL, &c), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "axis -3 is out of bounds for an array of dimension 2");
    ASSERT_STATUS(dray_array_reduce(DRAY_SUM, a, (int[]){1, -1}, 2, NULL, &c), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "axis 1 repeated");
    ASSERT_STATUS(dray_array_reduce(DRAY_ARGMAX, a, (int[]){0, 0}, 2, NULL, &c), DRAY_EINVAL);
    dray_reduce_opts o = {false, 0, 1};
    ASSERT_STATUS(dray_array_reduce(DRAY_SUM, a, NULL, 0, &o, &c), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "split_every 1");
    ASSERT_STATUS(dray_array_transpose(a, (int[]){0, 0}, &c), DRAY_EINVAL);
    ASSERT_STATUS(dray_array_arange(DRAY_FLOAT64, 0, 1, 0, 1, &c), DRAY_EINVAL);
    ASSERT_STATUS(dray_array_random_integers(1, 2, s1, NULL, 5, 5, &c), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "high 5 must exceed low 5");
    ASSERT_STATUS(dray_array_rechunk_explicit(a, (const int64_t *[]){(int64_t[]){1, 1},
                                                                    (int64_t[]){4}},
                                              (int64_t[]){2, 1}, &c),
                  DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "axis 0 chunks sum to 2, not 3");
    dray_array_release(a);
    dray_array_release(b);
}

TEST(task_errors)
{
    /* integer ** negative integer fails inside the task; compute returns the failure and the
     * message, and nothing leaks */
    const int64_t n = 6, ch = 2;
    int64_t v[6] = {1, 2, 3, 4, 5, 6}, e[6] = {1, 1, 1, -1, 1, 1};
    dray_array *a, *b, *p, *s;
    ASSERT_OK(dray_array_from_buffer(DRAY_INT64, 1, &n, &ch, v, &a));
    ASSERT_OK(dray_array_from_buffer(DRAY_INT64, 1, &n, &ch, e, &b));
    ASSERT_OK(dray_array_binary(DRAY_POW, a, b, &p));
    ASSERT_OK(dray_array_reduce(DRAY_SUM, p, NULL, 0, NULL, &s));
    dray_ndarray *r = NULL;
    ASSERT_TRUE(dray_array_compute(test_rt(), s, &r) != DRAY_OK);
    ASSERT_TRUE(r == NULL);
    ASSERT_CONTAINS(dray_last_error(), "negative integer powers");
    dray_array *q;
    ASSERT_TRUE(dray_array_persist(test_rt(), p, &q) != DRAY_OK);
    char path[] = "/tmp/dray-err-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    close(fd);
    ASSERT_TRUE(dray_array_write_npy(test_rt(), p, path) != DRAY_OK);
    ASSERT_CONTAINS(dray_last_error(), "negative integer powers");
    unlink(path);
    ASSERT_STATUS(dray_array_write_npy(test_rt(), p, "/nonexistent-dir/x.npy"), DRAY_EIO);
    ASSERT_CONTAINS(dray_last_error(), "/nonexistent-dir/x.npy");
    dray_array_release(s);
    dray_array_release(p);
    dray_array_release(a);
    dray_array_release(b);
}

RUN_TESTS(T_(construction_errors), T_(task_errors))
