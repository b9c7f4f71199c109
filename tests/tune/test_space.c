/* Search spaces: grid x num_samples counts and order, seeded reproducible sampling, distribution
 * checks with fixed seeds (bounds, quantisation, log-uniformity, normal moments), conditional and
 * nested parameters, config encoding, and bad spaces giving clear errors. */
#include "test.h"
#include "dray/tune.h"

static dray_tune_space *space(void)
{
    dray_tune_space *sp;
    ASSERT_OK(dray_tune_space_create(&sp));
    return sp;
}

TEST(grid_times_samples)
{
    dray_tune_space *sp = space();
    dray_tune_val lr[] = {dray_tune_f(0.1), dray_tune_f(0.01), dray_tune_f(0.001)};
    dray_tune_val opt[] = {dray_tune_s("sgd"), dray_tune_s("adam")};
    ASSERT_OK(dray_tune_space_grid(sp, "lr", lr, 3));
    ASSERT_OK(dray_tune_space_grid(sp, "optimizer/name", opt, 2));
    ASSERT_OK(dray_tune_space_uniform(sp, "dropout", 0.0, 0.5));
    ASSERT_EQ(dray_tune_space_grid_size(sp), 6);
    dray_tune_searcher *s;
    ASSERT_OK(dray_tune_searcher_create_basic(sp, 4, 123, &s));
    ASSERT_EQ(dray_tune_searcher_total(s), 24);
    int count = 0;
    dray_tune_config *c;
    double prev_drop = -1;
    while (dray_tune_searcher_suggest(s, count, &c) == DRAY_OK) {
        /* Ray's order: grids by path ("lr" < "optimizer/name"), the first varying fastest; the grid
         * repeats num_samples times */
        int k = count % 6;
        ASSERT_NEAR(dray_tune_config_num(c, "lr", -1), lr[k % 3].u.f, 0);
        ASSERT_STREQ(dray_tune_config_str(c, "optimizer/name", ""), opt[k / 3].u.s);
        double d = dray_tune_config_num(c, "dropout", -1);
        ASSERT_TRUE(d >= 0 && d < 0.5);
        ASSERT_TRUE(d != prev_drop); /* random domains are resampled per variant */
        prev_drop = d;
        ASSERT_EQ(dray_tune_config_len(c), 3);
        ASSERT_STREQ(dray_tune_config_path_at(c, 1), "optimizer/name"); /* declaration order */
        dray_tune_config_destroy(c);
        count++;
    }
    ASSERT_EQ(count, 24);
    ASSERT_STATUS(dray_tune_searcher_suggest(s, count, &c), DRAY_ENOTFOUND);
    dray_tune_searcher_destroy(s);
    /* endless */
    ASSERT_OK(dray_tune_searcher_create_basic(sp, -1, 1, &s));
    ASSERT_EQ(dray_tune_searcher_total(s), -1);
    for (int i = 0; i < 100; i++) {
        ASSERT_OK(dray_tune_searcher_suggest(s, i, &c));
        dray_tune_config_destroy(c);
    }
    dray_tune_searcher_destroy(s);
    ASSERT_STATUS(dray_tune_searcher_create_basic(sp, 0, 1, &s), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "num_samples");
    dray_tune_space_destroy(sp);
}

/* Ray sorts grid parameters by path (tuples of keys): the first in that order varies fastest,
 * whatever the declaration order; configs keep the declaration order */
TEST(grid_order_by_path)
{
    dray_tune_space *sp = space();
    dray_tune_val two[] = {dray_tune_i(0), dray_tune_i(1)};
    ASSERT_OK(dray_tune_space_grid(sp, "b", two, 2));
    ASSERT_OK(dray_tune_space_grid(sp, "a-x", two, 2));
    ASSERT_OK(dray_tune_space_grid(sp, "a/y", two, 2));
    /* path order: ("a", "y") < ("a-x",) < ("b",) */
    const char *fastest_first[] = {"a/y", "a-x", "b"};
    dray_tune_rng rng;
    dray_tune_rng_seed(&rng, 1);
    for (size_t g = 0; g < 8; g++) {
        dray_tune_config *c;
        ASSERT_OK(dray_tune_space_sample(sp, g, &rng, &c));
        for (size_t k = 0; k < 3; k++)
            ASSERT_EQ(dray_tune_config_int(c, fastest_first[k], -1), (int64_t)((g >> k) & 1));
        ASSERT_STREQ(dray_tune_config_path_at(c, 0), "b");
        dray_tune_config_destroy(c);
    }
    dray_tune_space_destroy(sp);
}

TEST(seeded_reproducible)
{
    dray_tune_space *sp = space();
    ASSERT_OK(dray_tune_space_loguniform(sp, "lr", 1e-4, 1e-1));
    ASSERT_OK(dray_tune_space_randint(sp, "depth", 1, 9));
    dray_tune_searcher *a, *b, *c;
    ASSERT_OK(dray_tune_searcher_create_basic(sp, 20, 5, &a));
    ASSERT_OK(dray_tune_searcher_create_basic(sp, 20, 5, &b));
    ASSERT_OK(dray_tune_searcher_create_basic(sp, 20, 6, &c));
    int differ = 0;
    for (int i = 0; i < 20; i++) {
        dray_tune_config *x, *y, *z;
        ASSERT_OK(dray_tune_searcher_suggest(a, i, &x));
        ASSERT_OK(dray_tune_searcher_suggest(b, i, &y));
        ASSERT_OK(dray_tune_searcher_suggest(c, i, &z));
        ASSERT_TRUE(dray_tune_config_equal(x, y));
        differ += !dray_tune_config_equal(x, z);
        dray_tune_config_destroy(x);
        dray_tune_config_destroy(y);
        dray_tune_config_destroy(z);
    }
    ASSERT_GE(differ, 19);
    dray_tune_searcher_destroy(a);
    dray_tune_searcher_destroy(b);
    dray_tune_searcher_destroy(c);
    dray_tune_space_destroy(sp);
}

#define N 20000

TEST(distributions)
{
    dray_tune_space *sp = space();
    dray_tune_val ch[] = {dray_tune_i(1), dray_tune_i(2), dray_tune_i(3), dray_tune_i(4)};
    ASSERT_OK(dray_tune_space_uniform(sp, "u", -2, 6));
    ASSERT_OK(dray_tune_space_quniform(sp, "qu", 0, 10, 2.5));
    ASSERT_OK(dray_tune_space_loguniform(sp, "lu", 1e-4, 1.0));
    ASSERT_OK(dray_tune_space_randint(sp, "ri", 3, 7));
    ASSERT_OK(dray_tune_space_qrandint(sp, "qri", 0, 20, 5));
    ASSERT_OK(dray_tune_space_randn(sp, "rn", 10, 2));
    ASSERT_OK(dray_tune_space_choice(sp, "ch", ch, 4));
    dray_tune_rng rng;
    dray_tune_rng_seed(&rng, 2024);
    double su = 0, slog = 0, srn = 0, srn2 = 0;
    int ri_count[4] = {0}, ch_count[4] = {0}, qu_count[5] = {0}, qri_count[5] = {0}, decade[4] = {0};
    for (int i = 0; i < N; i++) {
        dray_tune_config *c;
        ASSERT_OK(dray_tune_space_sample(sp, 0, &rng, &c));
        double u = dray_tune_config_num(c, "u", NAN);
        ASSERT_TRUE(u >= -2 && u < 6);
        su += u;
        double qu = dray_tune_config_num(c, "qu", NAN);
        ASSERT_NEAR(qu / 2.5, nearbyint(qu / 2.5), 1e-12);
        ASSERT_TRUE(qu >= 0 && qu <= 10);
        qu_count[(int)nearbyint(qu / 2.5)]++;
        double lu = dray_tune_config_num(c, "lu", NAN);
        ASSERT_TRUE(lu >= 1e-4 && lu < 1.0);
        slog += log10(lu);
        int dec = (int)floor(-log10(lu));
        decade[dec < 0 ? 0 : dec > 3 ? 3 : dec]++;
        const dray_tune_val *ri = dray_tune_config_get(c, "ri");
        ASSERT_EQ(ri->kind, DRAY_TUNE_INT);
        ASSERT_TRUE(ri->u.i >= 3 && ri->u.i < 7);
        ri_count[ri->u.i - 3]++;
        int64_t q = dray_tune_config_int(c, "qri", -1);
        ASSERT_EQ(q % 5, 0);
        ASSERT_TRUE(q >= 0 && q <= 20);
        qri_count[q / 5]++;
        double rn = dray_tune_config_num(c, "rn", NAN);
        srn += rn;
        srn2 += rn * rn;
        ch_count[dray_tune_config_int(c, "ch", 0) - 1]++;
        dray_tune_config_destroy(c);
    }
    ASSERT_NEAR(su / N, 2.0, 0.1);             /* mean of U(-2, 6); sd of mean 0.016 */
    ASSERT_NEAR(slog / N, -2.0, 0.05);         /* log10 uniform on [-4, 0]: mean -2 */
    for (int d = 0; d < 4; d++)                /* each decade gets a quarter */
        ASSERT_NEAR(decade[d], N / 4.0, 400);
    for (int k = 0; k < 4; k++) {
        ASSERT_NEAR(ri_count[k], N / 4.0, 400);
        ASSERT_NEAR(ch_count[k], N / 4.0, 400);
    }
    /* quniform(0, 10, 2.5): 0 and 10 get half a bin (1/8), the middle ones 1/4 */
    ASSERT_NEAR(qu_count[0], N / 8.0, 300);
    ASSERT_NEAR(qu_count[4], N / 8.0, 300);
    ASSERT_NEAR(qu_count[2], N / 4.0, 400);
    /* qrandint(0, 20, 5): integers 0..20 rounded half-to-even to multiples of 5:
     * 0 <- {0,1,2}, 5 <- {3..7}, 10 <- {8..12}, 15 <- {13..17}, 20 <- {18,19,20} (2.5 -> 2 -> 0) */
    ASSERT_NEAR(qri_count[0], N * 3.0 / 21, 300);
    ASSERT_NEAR(qri_count[1], N * 5.0 / 21, 300);
    ASSERT_NEAR(qri_count[4], N * 3.0 / 21, 300);
    double mean = srn / N, var = srn2 / N - mean * mean;
    ASSERT_NEAR(mean, 10, 0.1);
    ASSERT_NEAR(sqrt(var), 2, 0.1);
    dray_tune_space_destroy(sp);
}

/* conditional: batch size depends on the model chosen before it */
static dray_status batch_for(const dray_tune_config *partial, dray_tune_rng *rng, void *user,
                             dray_tune_val *out)
{
    (void)user;
    const char *m = dray_tune_config_str(partial, "model/kind", NULL);
    if (!m)
        return dray_set_error(DRAY_EINVAL, "model/kind is missing");
    int64_t base = strcmp(m, "big") == 0 ? 16 : 128;
    *out = dray_tune_i(base * (1 + (int64_t)(dray_tune_rng_next(rng) % 2)));
    return DRAY_OK;
}

static dray_status fails(const dray_tune_config *partial, dray_tune_rng *rng, void *user,
                         dray_tune_val *out)
{
    (void)partial, (void)rng, (void)user, (void)out;
    return dray_set_error(DRAY_ERANGE, "no value today");
}

TEST(conditional_and_nested)
{
    dray_tune_space *sp = space();
    dray_tune_val kinds[] = {dray_tune_s("big"), dray_tune_s("small")};
    ASSERT_OK(dray_tune_space_sample_from(sp, "train/batch", batch_for, NULL));
    ASSERT_OK(dray_tune_space_grid(sp, "model/kind", kinds, 2));
    ASSERT_OK(dray_tune_space_const(sp, "model/layers", dray_tune_i(3)));
    dray_tune_rng rng;
    dray_tune_rng_seed(&rng, 1);
    for (size_t g = 0; g < 10; g++) {
        dray_tune_config *c;
        ASSERT_OK(dray_tune_space_sample(sp, g, &rng, &c));
        int64_t b = dray_tune_config_int(c, "train/batch", 0);
        if (g % 2 == 0)
            ASSERT_TRUE(b == 16 || b == 32);
        else
            ASSERT_TRUE(b == 128 || b == 256);
        ASSERT_EQ(dray_tune_config_int(c, "model/layers", 0), 3);
        char buf[256];
        dray_tune_config_format(c, buf, sizeof(buf));
        ASSERT_CONTAINS(buf, "model/kind=");
        /* encode/decode round trip, and corrupt bytes are rejected */
        void *bytes;
        size_t len;
        dray_tune_config *back;
        extern dray_status dray__tune_config_encode(const dray_tune_config *, void **, size_t *);
        extern dray_status dray__tune_config_decode(const void *, size_t, dray_tune_config **);
        ASSERT_OK(dray__tune_config_encode(c, &bytes, &len));
        ASSERT_OK(dray__tune_config_decode(bytes, len, &back));
        ASSERT_TRUE(dray_tune_config_equal(c, back));
        dray_tune_config_destroy(back);
        for (size_t cut = 0; cut < len; cut++)
            ASSERT_STATUS(dray__tune_config_decode(bytes, cut, &back), DRAY_EFORMAT);
        free(bytes);
        dray_tune_config_destroy(c);
    }
    ASSERT_OK(dray_tune_space_sample_from(sp, "bad", fails, NULL));
    dray_tune_config *c;
    ASSERT_STATUS(dray_tune_space_sample(sp, 0, &rng, &c), DRAY_ERANGE);
    ASSERT_CONTAINS(dray_last_error(), "sample_from 'bad' failed: no value today");
    dray_tune_space_destroy(sp);
}

TEST(bad_spaces)
{
    dray_tune_space *sp = space();
    dray_tune_val one = dray_tune_i(1);
    ASSERT_STATUS(dray_tune_space_grid(sp, "g", NULL, 0), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "grid_search for 'g' is empty");
    ASSERT_STATUS(dray_tune_space_choice(sp, "c", &one, 0), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "choice for 'c' is empty");
    ASSERT_STATUS(dray_tune_space_uniform(sp, "u", 2, 1), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "'u': lower bound 2 > upper bound 1");
    ASSERT_STATUS(dray_tune_space_loguniform(sp, "lu", 0, 1), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "loguniform 'lu'");
    ASSERT_STATUS(dray_tune_space_quniform(sp, "q", 0.5, 10, 2), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "not multiples of q");
    ASSERT_STATUS(dray_tune_space_randint(sp, "r", 5, 5), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "randint 'r'");
    ASSERT_STATUS(dray_tune_space_qrandint(sp, "qr", 1, 10, 5), DRAY_EINVAL);
    ASSERT_STATUS(dray_tune_space_randn(sp, "n", 0, -1), DRAY_EINVAL);
    ASSERT_STATUS(dray_tune_space_uniform(sp, "nan", NAN, 1), DRAY_EINVAL);
    ASSERT_STATUS(dray_tune_space_sample_from(sp, "f", NULL, NULL), DRAY_EINVAL);
    ASSERT_OK(dray_tune_space_uniform(sp, "a/b", 0, 1));
    ASSERT_STATUS(dray_tune_space_uniform(sp, "a/b", 0, 1), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "'a/b' is already in the space");
    ASSERT_STATUS(dray_tune_space_const(sp, "a", one), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "clashes with nested");
    ASSERT_STATUS(dray_tune_space_const(sp, "x//y", one), DRAY_EINVAL);
    ASSERT_STATUS(dray_tune_space_const(sp, "", one), DRAY_EINVAL);
    dray_tune_val badkind = {99, {.i = 0}};
    ASSERT_STATUS(dray_tune_space_choice(sp, "k", &badkind, 1), DRAY_EINVAL);
    ASSERT_EQ(dray_tune_space_grid_size(sp), 1);
    dray_tune_space_destroy(sp);
}

RUN_TESTS(T_(grid_times_samples), T_(grid_order_by_path), T_(seeded_reproducible), T_(distributions),
          T_(conditional_and_nested), T_(bad_spaces))
