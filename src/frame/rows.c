/* Row-wise helpers over key columns shared by groupby, join, sort and drop_duplicates: hashing,
 * equality and ordering of rows (within one table or across two), and a stable merge sort. */
#include <stdlib.h>

#include "internal.h"

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

static uint64_t str_hash(const char *s, size_t l)
{
    uint64_t x = 0xcbf29ce484222325ull;
    for (size_t j = 0; j < l; j++)
        x = (x ^ (uint8_t)s[j]) * 0x100000001b3ull;
    return x;
}

uint64_t dray__row_hash(dray_column *const *keys, size_t nk, int64_t i, bool by_value)
{
    uint64_t h = 0x12345;
    for (size_t k = 0; k < nk; k++) {
        const dray_column *c = keys[k];
        if (!dray_column_is_valid(c, i)) {
            h = mix(h, 0xdeadbeef);
        } else if (c->type == DRAY_DT_UTF8 || (by_value && c->type == DRAY_DT_DICT)) {
            size_t l;
            const char *s = dray_column_get_str(c, i, &l);
            h = mix(h, str_hash(s, l));
        } else if (c->type == DRAY_DT_FLOAT64 || c->type == DRAY_DT_FLOAT32) {
            double d = dray_column_get_f64(c, i) + 0.0;
            if (by_value && d == (double)(int64_t)d && d >= -9e18 && d <= 9e18) {
                h = mix(h, (uint64_t)(int64_t)d); /* 3.0 joins 3 */
            } else {
                uint64_t b;
                memcpy(&b, &d, 8);
                h = mix(h, b);
            }
        } else {
            h = mix(h, (uint64_t)dray_column_get_i64(c, i)); /* dict (same table): its index */
        }
    }
    return h ^ (h >> 31);
}

static int cmp_one(const dray_column *a, int64_t i, const dray_column *b, int64_t j)
{
    bool vi = dray_column_is_valid(a, i), vj = dray_column_is_valid(b, j);
    if (vi != vj)
        return vi ? -1 : 1; /* nulls last */
    if (!vi)
        return 0;
    bool sa = a->type == DRAY_DT_UTF8 || a->type == DRAY_DT_DICT;
    if (sa) {
        size_t la, lb;
        const char *x = dray_column_get_str(a, i, &la), *y = dray_column_get_str(b, j, &lb);
        if (!y)
            return -1;
        int r = memcmp(x, y, la < lb ? la : lb);
        return r ? r : (la > lb) - (la < lb);
    }
    if (a->type == DRAY_DT_FLOAT64 || a->type == DRAY_DT_FLOAT32 || b->type == DRAY_DT_FLOAT64 ||
        b->type == DRAY_DT_FLOAT32) {
        double x = dray_column_get_f64(a, i), y = dray_column_get_f64(b, j);
        return (x > y) - (x < y);
    }
    if (a->type == DRAY_DT_UINT64) {
        uint64_t x = ((const uint64_t *)a->data)[i], y = (uint64_t)dray_column_get_i64(b, j);
        return (x > y) - (x < y);
    }
    int64_t x = dray_column_get_i64(a, i), y = dray_column_get_i64(b, j);
    return (x > y) - (x < y);
}

int dray__rows_cmp(dray_column *const *a, int64_t i, dray_column *const *b, int64_t j, size_t nk,
                   const bool *desc)
{
    for (size_t k = 0; k < nk; k++) {
        int r = cmp_one(a[k], i, b[k], j);
        if (r) {
            /* descending flips values, but nulls stay last */
            bool nulls = !dray_column_is_valid(a[k], i) || !dray_column_is_valid(b[k], j);
            return desc && desc[k] && !nulls ? -r : r;
        }
    }
    return 0;
}

bool dray__rows_equal(dray_column *const *a, int64_t i, dray_column *const *b, int64_t j, size_t nk)
{
    for (size_t k = 0; k < nk; k++) {
        bool vi = dray_column_is_valid(a[k], i), vj = dray_column_is_valid(b[k], j);
        if (vi != vj)
            return false;
        if (vi && a[k] == b[k] && a[k]->type == DRAY_DT_DICT) {
            if (((const int32_t *)a[k]->data)[i] != ((const int32_t *)a[k]->data)[j])
                return false;
        } else if (vi && cmp_one(a[k], i, b[k], j) != 0) {
            return false;
        }
    }
    return true;
}

static void msort(dray_column *const *keys, size_t nk, const bool *desc, int64_t *idx, int64_t *tmp,
                  int64_t n)
{
    if (n < 2)
        return;
    if (n <= 16) { /* insertion sort: stable */
        for (int64_t i = 1; i < n; i++) {
            int64_t v = idx[i], j = i;
            while (j > 0 && dray__rows_cmp(keys, v, keys, idx[j - 1], nk, desc) < 0) {
                idx[j] = idx[j - 1];
                j--;
            }
            idx[j] = v;
        }
        return;
    }
    int64_t h = n / 2;
    msort(keys, nk, desc, idx, tmp, h);
    msort(keys, nk, desc, idx + h, tmp, n - h);
    if (dray__rows_cmp(keys, idx[h], keys, idx[h - 1], nk, desc) >= 0)
        return; /* already in order */
    int64_t a = 0, b = h, k = 0;
    while (a < h && b < n)
        tmp[k++] = dray__rows_cmp(keys, idx[b], keys, idx[a], nk, desc) < 0 ? idx[b++] : idx[a++];
    while (a < h)
        tmp[k++] = idx[a++];
    while (b < n)
        tmp[k++] = idx[b++];
    memcpy(idx, tmp, (size_t)n * sizeof(*idx));
}

/* sortable: the key of row i as an unsigned integer that orders like the value. */
static inline uint64_t sortable(const dray_column *c, int64_t i)
{
    if (c->type == DRAY_DT_FLOAT64) {
        double d = ((const double *)c->data)[i] + 0.0; /* -0.0 sorts as 0.0 */
        uint64_t b;
        memcpy(&b, &d, 8);
        return b >> 63 ? ~b : b | (1ull << 63);
    }
    return (uint64_t)dray_column_get_i64(c, i) ^ (1ull << 63);
}

/* radix_sort: stable LSD radix sort of idx by one fixed-width numeric key, nulls last. */
static dray_status radix_sort(const dray_column *c, bool desc, int64_t *idx, int64_t n)
{
    uint64_t *k = malloc((size_t)(n + 1) * 2 * sizeof(*k));
    int64_t *tmp = malloc((size_t)(n + 1) * sizeof(*tmp)), *nulls = NULL, nv = 0, nn = 0;
    int64_t *count = malloc(65537 * sizeof(*count));
    if (!k || !tmp || !count) {
        free(k);
        free(tmp);
        free(count);
        return dray_set_error(DRAY_ENOMEM, "sort of %lld rows", (long long)n);
    }
    uint64_t *k2 = k + n + 1;
    nulls = tmp; /* nulls are parked at the end of tmp, in order */
    for (int64_t i = 0; i < n; i++) {
        int64_t r = idx[i];
        if (!dray_column_is_valid(c, r)) {
            nulls[n - 1 - nn++] = r;
            continue;
        }
        uint64_t v = sortable(c, r);
        k[nv] = desc ? ~v : v;
        idx[nv++] = r;
    }
    for (int64_t i = 0; i < nn; i++) /* restore the nulls' order after the valid rows */
        k2[i] = (uint64_t)nulls[n - 1 - i];
    for (int shift = 0; shift < 64; shift += 16) {
        memset(count, 0, 65537 * sizeof(*count));
        bool same = true;
        for (int64_t i = 0; i < nv; i++) {
            count[((k[i] >> shift) & 0xffff) + 1]++;
            same &= ((k[i] ^ k[0]) >> shift & 0xffff) == 0;
        }
        if (same)
            continue; /* every key has the same 16 bits here */
        for (int b = 0; b < 65536; b++)
            count[b + 1] += count[b];
        for (int64_t i = 0; i < nv; i++) {
            int64_t d = count[(k[i] >> shift) & 0xffff]++;
            tmp[d] = idx[i];
            k2[d + nn] = k[i]; /* k2's head holds the nulls until the end */
        }
        memcpy(idx, tmp, (size_t)nv * sizeof(*idx));
        memcpy(k, k2 + nn, (size_t)nv * sizeof(*k));
    }
    for (int64_t i = 0; i < nn; i++)
        idx[nv + i] = (int64_t)k2[i];
    free(k);
    free(tmp);
    free(count);
    return DRAY_OK;
}

dray_status dray__sort_rows(dray_column *const *keys, size_t nk, const bool *desc, int64_t *idx,
                            int64_t n)
{
    dray_col_type t = nk == 1 ? keys[0]->type : DRAY_DT_UTF8;
    if (nk == 1 && (t == DRAY_DT_FLOAT64 || t == DRAY_DT_INT64 || t == DRAY_DT_INT32 ||
                    t == DRAY_DT_DATE32 || t == DRAY_DT_TIMESTAMP))
        return radix_sort(keys[0], desc && desc[0], idx, n);
    int64_t *tmp = malloc((size_t)(n ? n : 1) * sizeof(*tmp));
    if (!tmp)
        return dray_set_error(DRAY_ENOMEM, "sort of %lld rows", (long long)n);
    msort(keys, nk, desc, idx, tmp, n);
    free(tmp);
    return DRAY_OK;
}
