/* libFuzzer target for the CSV reader: the whole input parsed as one file, then again split into
 * two byte ranges at a point taken from the input, which must give the same rows. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dray/frame.h"
#include "../src/frame/csv.h"

/* stray_quote: a quote inside an unquoted field (read literally, but range splitting assumes quotes
 * only open and close fields, so such inputs are left out of the split comparison). */
static bool stray_quote(const char *d, size_t n)
{
    bool inq = false, start = true;
    for (size_t i = 0; i < n; i++) {
        char c = d[i];
        if (inq) {
            if (c == '"') {
                if (i + 1 < n && d[i + 1] == '"')
                    i++;
                else
                    inq = false;
            }
            start = false;
            continue;
        }
        if (c == '"') {
            if (!start)
                return true;
            inq = true;
            continue;
        }
        start = c == ',' || c == '\n' || (c == '\r' && (i + 1 == n || d[i + 1] == '\n'));
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dray_csv_opts o;
    dray_csv_opts_init(&o);
    o.sample_bytes = 256;
    o.bad_lines = size && (data[0] & 1) ? DRAY_BAD_LINES_SKIP : DRAY_BAD_LINES_ERROR;
    const char *text = (const char *)data;
    dray__csv_plan *p;
    if (dray__csv_plan_create("fuzz.csv", text, size, true, &o, &p) != DRAY_OK)
        return 0;
    dray_table *whole = NULL, *a = NULL, *b = NULL, *cat = NULL;
    int64_t bad_whole = 0, bad_a = 0, bad_b = 0;
    dray_status st = dray__csv_parse_range(p, "fuzz.csv", text, size, 0, size, false, &whole, &bad_whole);
    size_t cut = size > 1 ? (size_t)data[size - 1] * 7919 % size : 0;
    if (st == DRAY_OK && cut > 0 && !stray_quote(text, size)) {
        bool inq = (dray__csv_count_quotes(text, cut - 1, o.quote) & 1) != 0;
        if (dray__csv_parse_range(p, "fuzz.csv", text, size, 0, cut, false, &a, &bad_a) == DRAY_OK &&
            dray__csv_parse_range(p, "fuzz.csv", text, size, cut, size, inq, &b, &bad_b) == DRAY_OK) {
            dray_table *parts[2] = {a, b};
            if (dray_table_concat(parts, 2, &cat) == DRAY_OK && bad_whole == 0 && bad_a + bad_b == 0 &&
                !dray_table_equal(cat, whole))
                abort(); /* a split changed the rows */
        }
    }
    dray_table_release(cat);
    dray_table_release(a);
    dray_table_release(b);
    dray_table_release(whole);
    dray__csv_plan_destroy(p);
    return 0;
}
