/* libFuzzer target for the CSV plan decoder (the "frame.csv_plan" bytes the core codec carries to
 * cluster nodes): any input decodes or fails with an error; what decodes encodes again to the same
 * bytes and parses a small CSV text without crashing (whatever types and dialect it names). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dray/frame.h"
#include "obuf.h"
#include "../src/frame/csv.h"

static const char text[] =
    "a,b,c\n1,2.5,x\n\"q\"\"t\",,2024-01-02 03:04:05\n-7;8|9,true,NA\r\n1,2\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dray__csv_plan *p;
    if (dray__csv_plan_decode(data, size, &p) != DRAY_OK)
        return 0;
    obuf o = {0};
    if (dray__csv_plan_encode(p, obuf_put, &o) == DRAY_OK) {
        dray__csv_plan *again;
        if (dray__csv_plan_decode(o.p, o.len, &again) != DRAY_OK)
            abort(); /* our own bytes must decode */
        if (o.len != size || memcmp(o.p, data, size))
            abort(); /* and be the input again */
        dray__csv_plan_destroy(again);
    }
    free(o.p);
    for (size_t start = 0; start < sizeof(text) - 1; start += 7) {
        dray_table *t = NULL;
        if (dray__csv_parse_range(p, "fuzz.csv", text, sizeof(text) - 1, start, sizeof(text) - 1,
                                  false, &t, NULL) == DRAY_OK)
            dray_table_release(t);
    }
    dray__csv_plan_destroy(p);
    return 0;
}
