/* libFuzzer target for the .npy header parser and the array.chunk wire decoder: any input must give
 * a status (never a crash or leak), and an accepted header must describe a consistent layout. */
#include <stdint.h>
#include <stdlib.h>

#include "dray/array.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dray_dtype dt;
    int nd;
    int64_t shape[DRAY_ARRAY_MAX_DIMS];
    bool fortran;
    size_t off;
    if (dray_npy_parse_header(data, size, &dt, &nd, shape, &fortran, &off) == DRAY_OK) {
        if (off > size || nd < 0 || nd > DRAY_ARRAY_MAX_DIMS || (unsigned)dt >= DRAY__DTYPE_COUNT)
            abort();
        for (int d = 0; d < nd; d++)
            if (shape[d] < 0)
                abort();
    }
    /* the same bytes as an encoded "array.chunk" value */
    const dray_ext_type *t = dray_ext_type_find("array.chunk");
    dray_ext_obj *obj;
    if (t && t->decode(data, size, &obj) == DRAY_OK)
        t->destroy(obj);
    return 0;
}
