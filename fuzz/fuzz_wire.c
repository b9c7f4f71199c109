/* libFuzzer target for the wire decoder: any bytes must parse as a message (header, control payload
 * of the right shape for its type, data section) or fail with DRAY_EFORMAT-class errors; never crash.
 * The header is also checked with the tighter limits applied before a peer authenticates. Control
 * payloads include object handles (extension "cluster.obj", decoded by the cluster module) and the
 * object-store and stealing messages (PULL, OBJ_FREE, STEAL, RESULT with STORED/LOST/STOLEN), the
 * paused flag of PING and NODES, and refs inside list arguments ("cluster.ref" markers); the corpus
 * has a seed of each. */
#include <stdlib.h>

#include "../src/cluster/internal.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    dray__hdr h;
    dray_value ctl;
    if (dray__wire_decode_message(data, size, &h, &ctl) == DRAY_OK) {
        if (h.ctl_len + (size_t)h.data_len + DRAY__WIRE_HDR != size)
            abort();
        dray_value_release(&ctl);
    }
    (void)dray__wire_parse_header(data, size, DRAY__WIRE_MAX_CTL_PREAUTH, 0, &h);
    return 0;
}
