/* The data generator behind `dray gen csv`, the demo, the tests and the benchmarks: the seed
 * pipeline's shape of data, formatted by hand so that a gigabyte takes seconds, not minutes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "internal.h"

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* put_u: decimal digits of v at p; returns the end. */
static char *put_u(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

dray_status dray_csv_gen(const char *dir, int64_t rows, int files, uint64_t seed)
{
    if (rows < 0 || files < 1)
        return dray_set_error(DRAY_EINVAL, "gen: %lld rows in %d files", (long long)rows, files);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return dray_set_error(DRAY_EIO, "gen: cannot create '%s': %s", dir, strerror(errno));
    const int64_t base_days = dray__days_from_civil(2024, 1, 1);
    size_t cap = 1 << 20;
    char *buf = malloc(cap + 256);
    if (!buf)
        return dray_set_error(DRAY_ENOMEM, "gen");
    dray_status st = DRAY_OK;
    int64_t id = 0;
    for (int f = 0; f < files && !st; f++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/data-%d.csv", dir, f);
        FILE *fp = fopen(path, "wb");
        if (!fp) {
            st = dray_set_error(DRAY_EIO, "gen: cannot write '%s': %s", path, strerror(errno));
            break;
        }
        uint64_t rng = seed * 1000003u + (uint64_t)f;
        int64_t end = rows * (f + 1) / files;
        size_t len = (size_t)snprintf(buf, cap, "id,amount,category,ts\n");
        for (; id < end; id++) {
            uint64_t r = splitmix(&rng);
            char *p = buf + len;
            p = put_u(p, (uint64_t)id);
            *p++ = ',';
            unsigned kind = (unsigned)(r % 100);
            if (kind != 0) { /* 1% null amounts */
                int64_t cents = (int64_t)((r >> 8) % 100000);
                if (kind < 6)
                    cents = -(int64_t)((r >> 8) % 5000) - 1; /* about 5% negative */
                if (cents < 0) {
                    *p++ = '-';
                    cents = -cents;
                }
                p = put_u(p, (uint64_t)cents / 100);
                *p++ = '.';
                p = put2(p, (unsigned)(cents % 100));
            }
            *p++ = ',';
            memcpy(p, "cat_", 4);
            p = put2(p + 4, (unsigned)((r >> 40) % 20));
            *p++ = ',';
            int64_t secs = id, days = base_days + secs / 86400, rem = secs % 86400, y;
            unsigned m, d;
            dray__civil_from_days(days, &y, &m, &d);
            p = put_u(p, (uint64_t)y);
            *p++ = '-';
            p = put2(p, m);
            *p++ = '-';
            p = put2(p, d);
            *p++ = ' ';
            p = put2(p, (unsigned)(rem / 3600));
            *p++ = ':';
            p = put2(p, (unsigned)(rem / 60 % 60));
            *p++ = ':';
            p = put2(p, (unsigned)(rem % 60));
            *p++ = '\n';
            len = (size_t)(p - buf);
            if (len >= cap) {
                if (fwrite(buf, 1, len, fp) != len)
                    break;
                len = 0;
            }
        }
        if (fwrite(buf, 1, len, fp) != len || fclose(fp) != 0 || id < end)
            st = dray_set_error(DRAY_EIO, "gen: write to '%s' failed: %s", path, strerror(errno));
    }
    free(buf);
    return st;
}
