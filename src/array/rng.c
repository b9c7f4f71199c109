/* The counter-based random generator: element i of a random array is a pure function of (seed, i),
 * built from keyed 32-bit integer hashes that vectorise (8 lanes with AVX2). See docs/array.md. */
#include <math.h>

#include "internal.h"

/* SplitMix64's finaliser: spreads a 64-bit seed over the key words. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* "lowbias32" (two multiply-xorshift rounds): a full-avalanche bijection on 32 bits. */
static inline uint32_t hash_a(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* One round, for the low 20 mantissa bits (below the 2^-32 resolution of hash_a's word). */
static inline uint32_t hash_b(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x21f0aaadU;
    x ^= x >> 15;
    return x;
}

void dray__rng_key_init(dray__rng_key *k, uint64_t seed, uint32_t stream)
{
    uint64_t a = mix64(seed + 0x9e3779b97f4a7c15ULL * (1 + (uint64_t)stream));
    uint64_t b = mix64(a ^ 0xd1b54a32d192ed03ULL);
    k->k0 = (uint32_t)a;
    k->k1 = (uint32_t)(a >> 32);
    k->k2 = (uint32_t)b;
    k->k3 = (uint32_t)(b >> 32);
}

/* The high word of the counter enters through a per-segment offset, so the inner loops only see
 * 32-bit lanes. */
static inline uint32_t hi_offset(const dray__rng_key *k, uint64_t i)
{
    return hash_a((uint32_t)(i >> 32) ^ k->k2) + k->k3;
}

uint64_t dray__rng_bits(const dray__rng_key *k, uint64_t i)
{
    uint32_t x = (uint32_t)i + hi_offset(k, i);
    uint32_t a = hash_a(x ^ k->k0), b = hash_b(x ^ k->k1);
    return ((uint64_t)a << 32) | b;
}

double dray__rng_uniform(const dray__rng_key *k, uint64_t i)
{
    uint64_t r = dray__rng_bits(k, i);
    return (double)((r >> 12) & ((1ULL << 52) - 1)) * 0x1p-52;
}

/* The vector form of dray__rng_uniform: the same bits through signed 32-bit conversions (which AVX2
 * has), summed exactly: a * 2^-32 + (b >> 12) * 2^-52 has 52 significant bits. */
#define UNIFORM_LANE(x)                                                                            \
    (((double)(int32_t)(hash_a((x) ^ k0) ^ 0x80000000U) * 0x1p-32 + 0.5) +                        \
     (double)(int32_t)(hash_b((x) ^ k1) >> 12) * 0x1p-52)

DRAY__HOT static void fill_seg(uint32_t k0, uint32_t k1, uint32_t x0, double *out, uint32_t n)
{
    for (uint32_t j = 0; j < n; j++) {
        uint32_t x = x0 + (uint32_t)j;
        out[j] = UNIFORM_LANE(x);
    }
}

DRAY__HOT static void add_seg(uint32_t k0, uint32_t k1, uint32_t x0, double *acc, uint32_t n)
{
    for (uint32_t j = 0; j < n; j++) {
        uint32_t x = x0 + (uint32_t)j;
        acc[j] += UNIFORM_LANE(x);
    }
}

/* Splits [first, first+n) where the counter's high word changes (and into 2^31 pieces). */
static void for_segments(const dray__rng_key *k, uint64_t first, double *buf, int64_t n,
                         void (*fn)(uint32_t, uint32_t, uint32_t, double *, uint32_t))
{
    while (n > 0) {
        uint64_t room = (1ULL << 32) - (uint32_t)first;
        int64_t m = (uint64_t)n < room ? n : (int64_t)room;
        m = m > (INT64_C(1) << 31) ? (INT64_C(1) << 31) : m;
        fn(k->k0, k->k1, (uint32_t)first + hi_offset(k, first), buf, (uint32_t)m);
        first += (uint64_t)m;
        buf += m;
        n -= m;
    }
}

void dray__rng_uniform_fill(const dray__rng_key *k, uint64_t first, double *out, int64_t n)
{
    for_segments(k, first, out, n, fill_seg);
}

void dray__rng_uniform_add(const dray__rng_key *k, uint64_t first, double *acc, int64_t n)
{
    for_segments(k, first, acc, n, add_seg);
}

double dray_random_uniform_at(uint64_t seed, uint64_t index)
{
    dray__rng_key k;
    dray__rng_key_init(&k, seed, 0);
    return dray__rng_uniform(&k, index);
}

uint64_t dray_random_bits_at(uint64_t seed, uint64_t index)
{
    dray__rng_key k;
    dray__rng_key_init(&k, seed, 0);
    return dray__rng_bits(&k, index);
}

void dray_random_uniform_fill(uint64_t seed, uint64_t first, double *out, size_t n)
{
    dray__rng_key k;
    dray__rng_key_init(&k, seed, 0);
    dray__rng_uniform_fill(&k, first, out, (int64_t)n);
}

void dray_random_uniform_accumulate(uint64_t seed, uint64_t first, double *acc, size_t n)
{
    dray__rng_key k;
    dray__rng_key_init(&k, seed, 0);
    dray__rng_uniform_add(&k, first, acc, (int64_t)n);
}
