/* libFuzzer target for the reader side of a same-host lane: whatever a peer process leaves in the
 * ring (its head and tail counters, record lengths, wrap markers, the messages inside) is either
 * read as checked wire messages, as lane_drain in net.c does, or refused; never a crash or a read
 * outside the ring. Input: 8 bytes of head, 8 of tail (little-endian), then the ring's first bytes. */
#include <stdlib.h>
#include <string.h>

#include "../src/cluster/internal.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static void *mem;
    static dray__lane *lane;
    if (!mem && (!(mem = malloc(dray__lane_segment_size())) ||
                 dray__lane_attach(mem, true, false, &lane)))
        abort();
    if (size < 16)
        return 0;
    uint64_t head, tail;
    memcpy(&head, data, 8);
    memcpy(&tail, data + 8, 8);
    dray__lane_set_rx(lane, head, tail, data + 16, size - 16);
    uint8_t *copy = malloc(dray__lane_max_frame() + 1);
    for (int n = 0; n < 64; n++) {
        const uint8_t *rec;
        long len = dray__lane_peek(lane, &rec);
        if (len <= 0)
            break;
        if ((size_t)len > dray__lane_max_frame())
            abort();
        memcpy(copy, rec, (size_t)len);
        dray__lane_consume(lane);
        dray__hdr h;
        dray_value d, ctl;
        if (dray__lane_record(copy, (size_t)len, &h, &d) == DRAY_OK) {
            if (dray__wire_decode_ctl(&h, copy + DRAY__WIRE_HDR, &ctl) == DRAY_OK)
                dray_value_release(&ctl);
            dray_value_release(&d);
        }
    }
    free(copy);
    return 0;
}
