/* Tiny test harness shared by every test program: ASSERT_* macros that print both sides and abort
 * the test (they survive NDEBUG), and a TEST runner that prints "N passed, N failed". */
#ifndef DRAY_TEST_H
#define DRAY_TEST_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_FAIL_(...)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        abort();                                                                                   \
    } while (0)

#define ASSERT_TRUE(c)                                                                             \
    do {                                                                                           \
        if (!(c))                                                                                  \
            TEST_FAIL_("assertion failed: %s", #c);                                                \
    } while (0)

#define ASSERT_INT_OP_(a, op, b)                                                                   \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (!(a_ op b_))                                                                           \
            TEST_FAIL_("%s %s %s: %lld vs %lld", #a, #op, #b, a_, b_);                             \
    } while (0)
#define ASSERT_EQ(a, b) ASSERT_INT_OP_(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_INT_OP_(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_INT_OP_(a, <, b)
#define ASSERT_LE(a, b) ASSERT_INT_OP_(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_INT_OP_(a, >, b)
#define ASSERT_GE(a, b) ASSERT_INT_OP_(a, >=, b)

/* ASSERT_OK: a dray_status call must return DRAY_OK; prints the code and dray_last_error(). */
#define ASSERT_OK(call)                                                                            \
    do {                                                                                           \
        int st_ = (int)(call);                                                                     \
        if (st_ != 0)                                                                              \
            TEST_FAIL_("%s returned %d (%s): %s", #call, st_,                                      \
                       dray_status_str((dray_status)st_), dray_last_error());                      \
    } while (0)

#define ASSERT_STATUS(call, want)                                                                  \
    do {                                                                                           \
        int st_ = (int)(call), w_ = (int)(want);                                                   \
        if (st_ != w_)                                                                             \
            TEST_FAIL_("%s returned %d (%s), want %d (%s): %s", #call, st_,                        \
                       dray_status_str((dray_status)st_), w_, dray_status_str((dray_status)w_),    \
                       dray_last_error());                                                         \
    } while (0)

#define ASSERT_STREQ(a, b)                                                                         \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                     \
            TEST_FAIL_("%s == %s: \"%s\" vs \"%s\"", #a, #b, a_ ? a_ : "(null)",                   \
                       b_ ? b_ : "(null)");                                                        \
    } while (0)

#define ASSERT_CONTAINS(hay, needle)                                                               \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (!h_ || !strstr(h_, n_))                                                                \
            TEST_FAIL_("%s does not contain \"%s\": \"%s\"", #hay, n_, h_ ? h_ : "(null)");        \
    } while (0)

/* ASSERT_NEAR: |a-b| <= tol. */
#define ASSERT_NEAR(a, b, tol)                                                                     \
    do {                                                                                           \
        double a_ = (double)(a), b_ = (double)(b), t_ = (double)(tol);                             \
        if (!(fabs(a_ - b_) <= t_))                                                                \
            TEST_FAIL_("%s ~= %s: %.17g vs %.17g (tol %g)", #a, #b, a_, b_, t_);                   \
    } while (0)

/* Test functions: TEST(name) { ... } then RUN_TESTS(name1, name2, ...) in main. */
#define TEST(name) static void test_##name(void)
typedef struct test_case_ {
    const char *name;
    void (*fn)(void);
} test_case_;
#define T_(name) {#name, test_##name}
/* run_tests_: runs the cases named on the command line (all when none); each prints its name. */
static inline int run_tests_(const test_case_ *cases, size_t n, int argc, char **argv)
{
    size_t ran = 0;
    for (size_t i = 0; i < n; i++) {
        int want = argc <= 1;
        for (int a = 1; a < argc; a++)
            want |= strcmp(argv[a], cases[i].name) == 0;
        if (!want)
            continue;
        fprintf(stderr, "-- %s\n", cases[i].name);
        cases[i].fn();
        ran++;
    }
    printf("%zu passed, 0 failed\n", ran);
    return 0;
}
#define RUN_TESTS(...)                                                                             \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        static const test_case_ cases_[] = {__VA_ARGS__};                                          \
        return run_tests_(cases_, sizeof(cases_) / sizeof(cases_[0]), argc, argv);                \
    }

#endif /* DRAY_TEST_H */
