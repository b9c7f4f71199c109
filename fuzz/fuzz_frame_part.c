/* libFuzzer target for the frame partition decoder (the "frame.table" bytes the core codec carries
 * between processes): any input decodes or fails with an error, and what decodes encodes again to
 * the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dray/frame.h"
#include "obuf.h"
#include "../src/frame/frame_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dray_ext_obj *obj;
    if (dray__part_decode(data, size, &obj) != DRAY_OK)
        return 0;
    obuf o = {0};
    if (dray__part_encode(obj, obuf_put, &o) == DRAY_OK) {
        dray_ext_obj *again;
        if (dray__part_decode(o.p, o.len, &again) != DRAY_OK)
            abort(); /* our own bytes must decode */
        dray_value v = dray_value_of_ext(again);
        dray_value_release(&v);
    }
    free(o.p);
    dray_value v = dray_value_of_ext(obj);
    dray_value_release(&v);
    return 0;
}
