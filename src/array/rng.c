/* The counter-based random generator: ARS-5 (Salmon et al., "Parallel random numbers: as easy as
 * 1, 2, 3", SC'11; Random123's ars with 5 rounds), five AES rounds over a 128-bit counter with a key
 * schedule of additions. Element i of a random array is half (i & 1) of block i >> 1, a pure
 * function of (seed, i). Fills, fused adds and fused column sums; three paths give identical bits:
 * VAES (two blocks per instruction, four chains), AES-NI, and a portable software AES round. */
#include <string.h>

#include "internal.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define DRAY__X86 1
#endif

/* SplitMix64's finaliser: spreads a 64-bit seed over the key words. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* ARS's key schedule (a Weyl sequence, as in Random123's ars.h): each round key adds these to the
 * low and high 64-bit halves of the previous one (the golden ratio and sqrt(3) - 1). */
#define ARS_W_LO 0x9E3779B97F4A7C15ULL
#define ARS_W_HI 0xBB67AE8584CAA73BULL

/* Which path this CPU takes, found once at load time (cpuid traps to the hypervisor in VMs and
 * costs tens of microseconds there); like the registries, written only by a constructor. */
static int cpu_impl;

static int detect_impl(void)
{
#ifdef DRAY__X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_AES))
        return 0;
    bool osxsave = c & bit_OSXSAVE, avx = c & bit_AVX;
    if (osxsave && avx && __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_AVX2) &&
        (c & (1u << 9) /* VAES */)) {
        unsigned lo, hi;
        __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        if ((lo & 6) == 6)
            return 2;
    }
    return 1;
#else
    return 0;
#endif
}

__attribute__((constructor)) static void dray__rng_detect(void)
{
    cpu_impl = detect_impl();
}

int dray__rng_best_impl(void)
{
    return cpu_impl;
}

void dray__rng_key_init(dray__rng_key *k, uint64_t seed, uint32_t stream)
{
    uint64_t lo = mix64(seed + ARS_W_LO * (1 + (uint64_t)stream));
    uint64_t hi = mix64(lo ^ 0xd1b54a32d192ed03ULL);
    memset(k, 0, sizeof(*k));
    for (int r = 0; r < 6; r++) {
        k->rk[r][0] = lo;
        k->rk[r][1] = hi;
        lo += ARS_W_LO;
        hi += ARS_W_HI;
    }
    k->impl = cpu_impl;
}

/* ==== Portable AES round (FIPS-197), bytes in the order AESENC sees them ==== */
static const uint8_t sbox[256] = {
    0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76,
    0xca, 0x82, 0xc9, 0x7d, 0xfa, 0x59, 0x47, 0xf0, 0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4, 0x72, 0xc0,
    0xb7, 0xfd, 0x93, 0x26, 0x36, 0x3f, 0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71, 0xd8, 0x31, 0x15,
    0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07, 0x12, 0x80, 0xe2, 0xeb, 0x27, 0xb2, 0x75,
    0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0, 0x52, 0x3b, 0xd6, 0xb3, 0x29, 0xe3, 0x2f, 0x84,
    0x53, 0xd1, 0x00, 0xed, 0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb, 0xbe, 0x39, 0x4a, 0x4c, 0x58, 0xcf,
    0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45, 0xf9, 0x02, 0x7f, 0x50, 0x3c, 0x9f, 0xa8,
    0x51, 0xa3, 0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5, 0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2,
    0xcd, 0x0c, 0x13, 0xec, 0x5f, 0x97, 0x44, 0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73,
    0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a, 0x90, 0x88, 0x46, 0xee, 0xb8, 0x14, 0xde, 0x5e, 0x0b, 0xdb,
    0xe0, 0x32, 0x3a, 0x0a, 0x49, 0x06, 0x24, 0x5c, 0xc2, 0xd3, 0xac, 0x62, 0x91, 0x95, 0xe4, 0x79,
    0xe7, 0xc8, 0x37, 0x6d, 0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a, 0xae, 0x08,
    0xba, 0x78, 0x25, 0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f, 0x4b, 0xbd, 0x8b, 0x8a,
    0x70, 0x3e, 0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e, 0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e,
    0xe1, 0xf8, 0x98, 0x11, 0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf,
    0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42, 0x68, 0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb, 0x16,
};

static inline uint8_t xtime(uint8_t x) { return (uint8_t)((x << 1) ^ ((x >> 7) * 0x1b)); }

/* One AESENC (mix = true) or AESENCLAST round on state s with round key rk. */
void dray__aes_round(uint8_t s[16], const uint8_t rk[16], bool mix)
{
    uint8_t t[16];
    for (int c = 0; c < 4; c++)
        for (int r = 0; r < 4; r++)
            t[r + 4 * c] = sbox[s[r + 4 * ((c + r) & 3)]];
    for (int c = 0; c < 4 && mix; c++) {
        uint8_t *col = t + 4 * c, a0 = col[0], a1 = col[1], a2 = col[2], a3 = col[3];
        uint8_t all = a0 ^ a1 ^ a2 ^ a3;
        col[0] = a0 ^ all ^ xtime(a0 ^ a1);
        col[1] = a1 ^ all ^ xtime(a1 ^ a2);
        col[2] = a2 ^ all ^ xtime(a2 ^ a3);
        col[3] = a3 ^ all ^ xtime(a3 ^ a0);
    }
    for (int i = 0; i < 16; i++)
        s[i] = t[i] ^ rk[i];
}

/* ARS-R on a raw 128-bit key (low, high 64-bit words), the portable way: the counter XOR the
 * key, R - 1 AESENC rounds and one AESENCLAST, round key r being key + r * (ARS_W_LO, ARS_W_HI).
 * Byte images are little-endian (x86 and the usual ARM ABIs). */
void dray__ars_soft(const uint64_t ctr[2], const uint64_t key[2], int rounds, uint64_t out[2])
{
    uint8_t s[16], rk[16];
    uint64_t v[2] = {ctr[0] ^ key[0], ctr[1] ^ key[1]}, kk[2] = {key[0], key[1]};
    memcpy(s, v, 16);
    for (int r = 1; r <= rounds; r++) {
        kk[0] += ARS_W_LO;
        kk[1] += ARS_W_HI;
        memcpy(rk, kk, 16);
        dray__aes_round(s, rk, r < rounds);
    }
    memcpy(out, s, 16);
}

static void soft_block(const dray__rng_key *k, uint64_t block, uint64_t out[2])
{
    const uint64_t ctr[2] = {block, 0};
    dray__ars_soft(ctr, k->rk[0], 5, out);
}

static inline double to_unit(uint64_t bits) { return (double)(bits >> 12) * 0x1p-52; }

static inline void put(double *o, uint64_t bits, bool add)
{
    *o = add ? *o + to_unit(bits) : to_unit(bits);
}

/* Column sums add up the 52-bit integers behind the doubles (u = m * 2^-52, m = bits >> 12)
 * exactly, in batches of this many rows (4096 * (2^52 - 1) < 2^64), and round once per batch. */
#define COLSUM_BATCH 4096

#ifdef DRAY__X86
__attribute__((target("aes,sse2"))) static void ni_block(const dray__rng_key *k, uint64_t block,
                                                          uint64_t out[2])
{
    __m128i v = _mm_xor_si128(_mm_set_epi64x(0, (long long)block),
                              _mm_loadu_si128((const __m128i *)k->rk[0]));
    for (int r = 1; r < 5; r++)
        v = _mm_aesenc_si128(v, _mm_loadu_si128((const __m128i *)k->rk[r]));
    v = _mm_aesenclast_si128(v, _mm_loadu_si128((const __m128i *)k->rk[5]));
    _mm_storeu_si128((__m128i *)out, v);
}

/* The round keys broadcast to both 128-bit lanes of a YMM register. */
#define VAES_KEYS(k)                                                                               \
    const __m256i k0 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(k)->rk[0])); \
    const __m256i k1 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(k)->rk[1])); \
    const __m256i k2 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(k)->rk[2])); \
    const __m256i k3 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(k)->rk[3])); \
    const __m256i k4 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(k)->rk[4])); \
    const __m256i k5 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(k)->rk[5]))

/* Five rounds on four independent chains, interleaved so that the AES units always have work
 * (one chain alone waits on the instruction latency); written out rather than as an array, which
 * GCC spills to the stack. */
#define VAES_ROUND(f, key) \
    (v0 = f(v0, key), v1 = f(v1, key), v2 = f(v2, key), v3 = f(v3, key))
#define VAES_ARS5()                                                                                \
    (VAES_ROUND(_mm256_aesenc_epi128, k1), VAES_ROUND(_mm256_aesenc_epi128, k2),                   \
     VAES_ROUND(_mm256_aesenc_epi128, k3), VAES_ROUND(_mm256_aesenc_epi128, k4),                   \
     VAES_ROUND(_mm256_aesenclast_epi128, k5))
/* u exactly: the top 52 bits as the mantissa of a double in [1, 2), minus 1. */
#define VAES_UNIT(v)                                                                               \
    _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(                                             \
                      _mm256_srli_epi64(v, 12), _mm256_set1_epi64x(0x3ff0000000000000LL))),       \
                  _mm256_set1_pd(1.0))

/* Blocks b0 .. b0+nb (nb a multiple of 8) into 2*nb doubles: out = u, or out += u. */
__attribute__((target("avx2,aes,vaes"))) static void vaes_blocks(const dray__rng_key *k,
                                                                  uint64_t b0, double *out,
                                                                  int64_t nb, bool add)
{
    VAES_KEYS(k);
    __m256i ctr = _mm256_set_epi64x(0, (long long)(b0 + 1), 0, (long long)b0);
    const __m256i two = _mm256_set_epi64x(0, 2, 0, 2);
    for (int64_t b = 0; b < nb; b += 8, out += 16) {
        __m256i v0 = _mm256_xor_si256(ctr, k0);
        ctr = _mm256_add_epi64(ctr, two);
        __m256i v1 = _mm256_xor_si256(ctr, k0);
        ctr = _mm256_add_epi64(ctr, two);
        __m256i v2 = _mm256_xor_si256(ctr, k0);
        ctr = _mm256_add_epi64(ctr, two);
        __m256i v3 = _mm256_xor_si256(ctr, k0);
        ctr = _mm256_add_epi64(ctr, two);
        VAES_ARS5();
        __m256d d0 = VAES_UNIT(v0), d1 = VAES_UNIT(v1), d2 = VAES_UNIT(v2), d3 = VAES_UNIT(v3);
        if (add) {
            d0 = _mm256_add_pd(_mm256_loadu_pd(out), d0);
            d1 = _mm256_add_pd(_mm256_loadu_pd(out + 4), d1);
            d2 = _mm256_add_pd(_mm256_loadu_pd(out + 8), d2);
            d3 = _mm256_add_pd(_mm256_loadu_pd(out + 12), d3);
        }
        _mm256_storeu_pd(out, d0);
        _mm256_storeu_pd(out + 4, d1);
        _mm256_storeu_pd(out + 8, d2);
        _mm256_storeu_pd(out + 12, d3);
    }
}

/* Adds the exact integer column sums (4 lanes of s) to acc[0..4), rounding once. */
__attribute__((target("avx2"))) static inline void colsum_out(double *acc, __m256i s)
{
    uint64_t t[4];
    _mm256_storeu_si256((__m256i *)t, s);
    for (int i = 0; i < 4; i++)
        acc[i] += (double)t[i] * 0x1p-52;
}

/* Column sums of up to COLSUM_BATCH rows, 16 columns at a time: the 52-bit integers of each
 * column added exactly in 64-bit lanes kept in registers across the rows. first and stride are
 * even, so every row's 4 numbers from an even j are 2 whole blocks; ncols is a multiple of 4. One
 * counter with the chains' offsets as constants keeps everything in the 16 YMM registers. */
__attribute__((target("avx2,aes,vaes"))) static void vaes_colsum(const dray__rng_key *k,
                                                                  uint64_t first, uint64_t stride,
                                                                  int64_t nrows, int64_t ncols,
                                                                  double *acc)
{
    VAES_KEYS(k);
    const __m256i step = _mm256_set_epi64x(0, (long long)(stride / 2), 0, (long long)(stride / 2));
    int64_t j = 0;
    for (; j + 16 <= ncols; j += 16) {
        long long b = (long long)((first + (uint64_t)j) / 2);
        __m256i c = _mm256_set_epi64x(0, b + 1, 0, b);
        __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
        for (int64_t r = 0; r < nrows; r++) {
            __m256i v0 = _mm256_xor_si256(c, k0);
            __m256i v1 = _mm256_xor_si256(_mm256_add_epi64(c, _mm256_set_epi64x(0, 2, 0, 2)), k0);
            __m256i v2 = _mm256_xor_si256(_mm256_add_epi64(c, _mm256_set_epi64x(0, 4, 0, 4)), k0);
            __m256i v3 = _mm256_xor_si256(_mm256_add_epi64(c, _mm256_set_epi64x(0, 6, 0, 6)), k0);
            c = _mm256_add_epi64(c, step);
            VAES_ARS5();
            s0 = _mm256_add_epi64(s0, _mm256_srli_epi64(v0, 12));
            s1 = _mm256_add_epi64(s1, _mm256_srli_epi64(v1, 12));
            s2 = _mm256_add_epi64(s2, _mm256_srli_epi64(v2, 12));
            s3 = _mm256_add_epi64(s3, _mm256_srli_epi64(v3, 12));
        }
        colsum_out(acc + j, s0);
        colsum_out(acc + j + 4, s1);
        colsum_out(acc + j + 8, s2);
        colsum_out(acc + j + 12, s3);
    }
    /* the last columns, 4 at a time: one chain per row, the rows overlap in the out-of-order core */
    for (; j < ncols; j += 4) {
        long long b = (long long)((first + (uint64_t)j) / 2);
        __m256i c = _mm256_set_epi64x(0, b + 1, 0, b), s0 = _mm256_setzero_si256();
        for (int64_t r = 0; r < nrows; r++) {
            __m256i v0 = _mm256_xor_si256(c, k0);
            c = _mm256_add_epi64(c, step);
            v0 = _mm256_aesenc_epi128(v0, k1);
            v0 = _mm256_aesenc_epi128(v0, k2);
            v0 = _mm256_aesenc_epi128(v0, k3);
            v0 = _mm256_aesenc_epi128(v0, k4);
            v0 = _mm256_aesenclast_epi128(v0, k5);
            s0 = _mm256_add_epi64(s0, _mm256_srli_epi64(v0, 12));
        }
        colsum_out(acc + j, s0);
    }
}
#endif

static void block_bits(const dray__rng_key *k, uint64_t block, uint64_t out[2])
{
#ifdef DRAY__X86
    if (k->impl >= 1) {
        ni_block(k, block, out);
        return;
    }
#endif
    soft_block(k, block, out);
}

uint64_t dray__rng_bits(const dray__rng_key *k, uint64_t i)
{
    uint64_t out[2];
    block_bits(k, i >> 1, out);
    return out[i & 1];
}

double dray__rng_uniform(const dray__rng_key *k, uint64_t i)
{
    return to_unit(dray__rng_bits(k, i));
}

/* Elements first .. first+n into out: out = u, or out += u. */
static void uniform_run(const dray__rng_key *k, uint64_t first, double *out, int64_t n, bool add)
{
    uint64_t bits[2];
    if (n > 0 && (first & 1)) { /* odd start: the second half of a block */
        put(out, dray__rng_bits(k, first), add);
        out++, first++, n--;
    }
    int64_t nb = n / 2, b = 0;
#ifdef DRAY__X86
    if (k->impl == 2 && nb >= 8) {
        b = nb & ~(int64_t)7;
        vaes_blocks(k, first >> 1, out, b, add);
    }
#endif
    for (; b < nb; b++) {
        block_bits(k, (first >> 1) + (uint64_t)b, bits);
        put(out + 2 * b, bits[0], add);
        put(out + 2 * b + 1, bits[1], add);
    }
    if (n & 1)
        put(out + n - 1, dray__rng_bits(k, first + (uint64_t)n - 1), add);
}

void dray__rng_uniform_fill(const dray__rng_key *k, uint64_t first, double *out, int64_t n)
{
    uniform_run(k, first, out, n, false);
}

void dray__rng_uniform_add(const dray__rng_key *k, uint64_t first, double *acc, int64_t n)
{
    uniform_run(k, first, acc, n, true);
}

/* Column sums one block at a time (portable or AES-NI), in slices of 256 columns (a stack
 * buffer): the same exact integer sums as vaes_colsum, so every path gives the same bits. */
static void colsum_blocks(const dray__rng_key *k, uint64_t first, uint64_t stride, int64_t nrows,
                          int64_t ncols, double *acc)
{
    uint64_t s[256], bits[2];
    for (int64_t j0 = 0; j0 < ncols; j0 += 256) {
        int64_t len = ncols - j0 < 256 ? ncols - j0 : 256;
        memset(s, 0, sizeof(uint64_t) * (size_t)len);
        for (int64_t r = 0; r < nrows; r++) {
            uint64_t e = first + (uint64_t)r * stride + (uint64_t)j0;
            for (int64_t j = 0; j < len; j++, e++) {
                if (j == 0 || !(e & 1))
                    block_bits(k, e >> 1, bits);
                s[j] += bits[e & 1] >> 12;
            }
        }
        for (int64_t j = 0; j < len; j++)
            acc[j0 + j] += (double)s[j] * 0x1p-52;
    }
}

/* At most COLSUM_BATCH rows with an even stride. */
static void colsum_batch(const dray__rng_key *k, uint64_t first, uint64_t stride, int64_t nrows,
                         int64_t ncols, double *acc)
{
#ifdef DRAY__X86
    if (k->impl == 2) {
        /* from the first column whose index is even in every row, 4 at a time; the rest (at
         * most 4 columns) one block at a time */
        int64_t js = (int64_t)(first & 1), m = ncols > js ? (ncols - js) / 4 * 4 : 0;
        if (m > 0) {
            colsum_blocks(k, first, stride, nrows, js, acc);
            vaes_colsum(k, first + (uint64_t)js, stride, nrows, m, acc + js);
            colsum_blocks(k, first + (uint64_t)(js + m), stride, nrows, ncols - js - m,
                          acc + js + m);
            return;
        }
    }
#endif
    colsum_blocks(k, first, stride, nrows, ncols, acc);
}

void dray__rng_uniform_colsum(const dray__rng_key *k, uint64_t first, uint64_t stride,
                              int64_t nrows, int64_t ncols, double *acc)
{
    if (ncols <= 0)
        return;
    if (stride & 1) { /* rows alternate parity: the even rows, then the odd ones (even strides) */
        dray__rng_uniform_colsum(k, first, 2 * stride, (nrows + 1) / 2, ncols, acc);
        dray__rng_uniform_colsum(k, first + stride, 2 * stride, nrows / 2, ncols, acc);
        return;
    }
    for (int64_t r = 0; r < nrows; r += COLSUM_BATCH)
        colsum_batch(k, first + (uint64_t)r * stride, stride,
                     nrows - r < COLSUM_BATCH ? nrows - r : COLSUM_BATCH, ncols, acc);
}

void dray__rng_soft_block(const dray__rng_key *k, uint64_t block, uint64_t out[2])
{
    soft_block(k, block, out);
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

void dray_random_uniform_colsum(uint64_t seed, uint64_t first, uint64_t stride, size_t nrows,
                                size_t ncols, double *acc)
{
    dray__rng_key k;
    dray__rng_key_init(&k, seed, 0);
    dray__rng_uniform_colsum(&k, first, stride, (int64_t)nrows, (int64_t)ncols, acc);
}
