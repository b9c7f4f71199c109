/* Text <-> value conversions for the CSV reader/writer and expressions: exact fast paths for
 * integers, decimals (Clinger's fast path, strtod beyond it), booleans, dates and timestamps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "internal.h"

bool dray__parse_i64(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (n && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == n || n - i > 19)
        return false;
    uint64_t v = 0;
    for (; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9)
            return false;
        v = v * 10 + d;
    }
    /* 19 digits may exceed int64 */
    if (v > (uint64_t)INT64_MAX + neg)
        return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static bool slow_f64(const char *s, size_t n, double *out)
{
    char buf[128];
    char *heap = NULL, *p = buf;
    if (n >= sizeof(buf)) {
        if (!(heap = malloc(n + 1)))
            return false;
        p = heap;
    }
    memcpy(p, s, n);
    p[n] = 0;
    char *end;
    double v = strtod(p, &end);
    bool ok = n > 0 && end == p + n;
    /* strtod accepts hex floats and leading spaces; CSV numbers are decimal */
    for (size_t i = 0; ok && i < n; i++)
        if (p[i] == 'x' || p[i] == 'X' || p[i] == ' ' || p[i] == '\t')
            ok = false;
    free(heap);
    if (ok)
        *out = v;
    return ok;
}

bool dray__parse_f64(const char *s, size_t n, double *out)
{
    size_t i = 0;
    bool neg = false;
    if (n && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    uint64_t mant = 0;
    int digits = 0, exp10 = 0;
    size_t start = i;
    for (; i < n && (unsigned)(s[i] - '0') <= 9; i++) {
        if (digits < 19) {
            mant = mant * 10 + (unsigned)(s[i] - '0');
            if (mant)
                digits++;
        } else {
            exp10++;
        }
    }
    bool any = i > start;
    if (i < n && s[i] == '.') {
        i++;
        size_t fs = i;
        for (; i < n && (unsigned)(s[i] - '0') <= 9; i++) {
            if (digits < 19) {
                mant = mant * 10 + (unsigned)(s[i] - '0');
                if (mant)
                    digits++;
                exp10--;
            }
        }
        any |= i > fs;
    }
    if (!any)
        return slow_f64(s, n, out); /* inf, nan, ... */
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            eneg = s[i++] == '-';
        size_t es = i;
        int e = 0;
        for (; i < n && (unsigned)(s[i] - '0') <= 9; i++)
            if (e < 100000)
                e = e * 10 + (s[i] - '0');
        if (i == es)
            return false;
        exp10 += eneg ? -e : e;
    }
    if (i != n)
        return false;
    if (digits >= 19 || mant > (1ull << 53) || exp10 < -22 || exp10 > 22)
        return slow_f64(s, n, out);
    double v = (double)mant;
    v = exp10 < 0 ? v / pow10_exact[-exp10] : v * pow10_exact[exp10];
    *out = neg ? -v : v;
    return true;
}

bool dray__parse_bool(const char *s, size_t n, bool *out)
{
    if (n == 4 && !strncasecmp(s, "true", 4)) {
        *out = true;
        return true;
    }
    if (n == 5 && !strncasecmp(s, "false", 5)) {
        *out = false;
        return true;
    }
    return false;
}

/* Howard Hinnant's days_from_civil algorithm (public domain description). */
int64_t dray__days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void dray__civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

static bool digits_n(const char *s, int n, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool valid_ymd(unsigned y, unsigned m, unsigned d)
{
    static const unsigned char mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return !(m == 2 && d == 29 && !leap);
}

/* parse_ymd: "YYYY-MM-DD" at s (10 bytes). */
static bool parse_ymd(const char *s, size_t n, int64_t *days)
{
    unsigned y, m, d;
    if (n < 10 || s[4] != '-' || s[7] != '-' || !digits_n(s, 4, &y) || !digits_n(s + 5, 2, &m) ||
        !digits_n(s + 8, 2, &d) || !valid_ymd(y, m, d))
        return false;
    *days = dray__days_from_civil(y, m, d);
    return true;
}

bool dray__parse_date32(const char *s, size_t n, int32_t *out)
{
    int64_t days;
    if (n != 10 || !parse_ymd(s, n, &days))
        return false;
    *out = (int32_t)days;
    return true;
}

bool dray__parse_timestamp(const char *s, size_t n, dray_time_unit unit, int64_t *out)
{
    static const int64_t per_sec[4] = {1, 1000, 1000000, 1000000000};
    int64_t days;
    unsigned hh = 0, mm = 0, ss = 0;
    if (!parse_ymd(s, n, &days))
        return false;
    size_t i = 10;
    int64_t frac_ns = 0;
    if (n > 10) {
        if ((s[10] != ' ' && s[10] != 'T') || n < 16 || !digits_n(s + 11, 2, &hh) || s[13] != ':' ||
            !digits_n(s + 14, 2, &mm) || hh > 23 || mm > 59)
            return false;
        i = 16;
        if (i < n && s[i] == ':') {
            if (n < 19 || !digits_n(s + 17, 2, &ss) || ss > 60)
                return false;
            i = 19;
            if (i < n && s[i] == '.') {
                i++;
                int nd = 0;
                int64_t scale = 100000000;
                for (; i < n && (unsigned)(s[i] - '0') <= 9; i++, nd++) {
                    frac_ns += (s[i] - '0') * scale;
                    scale /= 10;
                }
                if (nd == 0)
                    return false;
            }
        }
        if (i < n && s[i] == 'Z')
            i++;
        if (i != n)
            return false;
    }
    int64_t secs = days * 86400 + hh * 3600 + mm * 60 + ss;
    *out = secs * per_sec[unit] + frac_ns / (1000000000 / per_sec[unit]);
    return true;
}

/* format_f64: the shortest of %.15g / %.16g / %.17g that reads back exactly. */
static int format_f64(double v, char *buf, size_t size)
{
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v || isnan(v))
            break;
    }
    return n;
}

int dray__format_value(const dray_column *c, int64_t i, char *buf, size_t size)
{
    static const int64_t per_sec[4] = {1, 1000, 1000000, 1000000000};
    if (!dray_column_is_valid(c, i))
        return -1;
    switch (c->type) {
    case DRAY_DT_BOOL:
        return snprintf(buf, size, "%s", dray__bit(c->data, i) ? "true" : "false");
    case DRAY_DT_FLOAT32: case DRAY_DT_FLOAT64:
        return format_f64(dray_column_get_f64(c, i), buf, size);
    case DRAY_DT_UINT64:
        return snprintf(buf, size, "%llu", (unsigned long long)((const uint64_t *)c->data)[i]);
    case DRAY_DT_UTF8: case DRAY_DT_DICT: {
        size_t l;
        const char *s = dray_column_get_str(c, i, &l);
        if (l >= size)
            l = size - 1;
        memcpy(buf, s, l);
        buf[l] = 0;
        return (int)l;
    }
    case DRAY_DT_DATE32: {
        int64_t y;
        unsigned m, d;
        dray__civil_from_days(((const int32_t *)c->data)[i], &y, &m, &d);
        return snprintf(buf, size, "%04lld-%02u-%02u", (long long)y, m, d);
    }
    case DRAY_DT_TIMESTAMP: {
        int64_t v = ((const int64_t *)c->data)[i], ps = per_sec[c->unit];
        int64_t secs = v / ps, frac = v % ps;
        if (frac < 0) {
            frac += ps;
            secs--;
        }
        int64_t days = secs / 86400, rem = secs % 86400;
        if (rem < 0) {
            rem += 86400;
            days--;
        }
        int64_t y;
        unsigned m, d;
        dray__civil_from_days(days, &y, &m, &d);
        int n = snprintf(buf, size, "%04lld-%02u-%02u %02d:%02d:%02d", (long long)y, m, d,
                         (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
        if (frac && n > 0 && (size_t)n < size) {
            static const int width[4] = {0, 3, 6, 9};
            n += snprintf(buf + n, size - (size_t)n, ".%0*lld", width[c->unit], (long long)frac);
        }
        return n;
    }
    default:
        return snprintf(buf, size, "%lld", (long long)dray_column_get_i64(c, i));
    }
}
