/* libFuzzer target for the value decoder: any input must decode or fail cleanly; what decodes must
 * re-encode to a buffer that decodes to an equal value. */
#include <stdlib.h>
#include <string.h>

#include "dray/dray.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    dray_value v;
    if (dray_value_decode(data, size, &v) != DRAY_OK)
        return 0;
    void *buf;
    size_t len;
    if (dray_value_encode(&v, &buf, &len) == DRAY_OK) {
        dray_value back;
        if (dray_value_decode(buf, len, &back) != DRAY_OK || !dray_value_equal(&v, &back))
            abort();
        dray_value_release(&back);
        dray_free(buf);
    }
    dray_value_release(&v);
    return 0;
}
