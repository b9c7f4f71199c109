/* libFuzzer target for tune's config and result decoders (trial actor arguments and experiment state
 * files): any input must decode or fail cleanly; what decodes must re-encode to the same bytes. */
#include <stdlib.h>
#include <string.h>

#include "dray/dray.h"

/* internal decoders of src/tune (linked from libdray) */
dray_status dray__tune_config_encode(const dray_tune_config *cfg, void **buf, size_t *len);
dray_status dray__tune_config_decode(const void *buf, size_t len, dray_tune_config **out);
dray_status dray__tune_result_encode(const dray_tune_result *r, void **buf, size_t *len);
dray_status dray__tune_result_decode(const void *buf, size_t len, dray_tune_result **out);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    void *buf;
    size_t len;
    dray_tune_config *c;
    if (dray__tune_config_decode(data, size, &c) == DRAY_OK) {
        /* a repeated path keeps its last value, so only a duplicate-free input round-trips */
        if (dray__tune_config_encode(c, &buf, &len) == DRAY_OK) {
            dray_tune_config *back;
            if (dray__tune_config_decode(buf, len, &back) != DRAY_OK || !dray_tune_config_equal(c, back))
                abort();
            dray_tune_config_destroy(back);
            free(buf);
        }
        dray_tune_config_destroy(c);
    }
    dray_tune_result *r;
    if (dray__tune_result_decode(data, size, &r) == DRAY_OK) {
        if (dray__tune_result_encode(r, &buf, &len) == DRAY_OK) {
            dray_tune_result *back;
            if (dray__tune_result_decode(buf, len, &back) != DRAY_OK ||
                dray_tune_result_len(back) != dray_tune_result_len(r))
                abort();
            dray_tune_result_destroy(back);
            free(buf);
        }
        dray_tune_result_destroy(r);
    }
    return 0;
}
