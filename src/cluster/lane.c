/* Same-host lanes: a driver and a worker node on one machine exchange tasks and results through a
 * pair of single-producer, single-consumer byte rings in one shared-memory segment, with no system
 * call per message (what MPI libraries do between ranks on one node). The TCP connection stays: it
 * carries everything else, and one small WAKE message when the reader may be asleep. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define LANE_MAGIC 0x454e414c59415244ull /* "DRAYLANE" */
#define LANE_VERSION 1
#define RING_SIZE (256u << 10)   /* bytes per direction, a power of two */
#define WRAP 0xffffffffu         /* record length meaning "continue at the ring's start" */
#define REC_HDR 8                /* u32 length, u32 zero */

struct lane_ring {
    _Alignas(64) _Atomic uint64_t head; /* bytes the writer has published (only it stores) */
    _Alignas(64) _Atomic uint64_t tail; /* bytes the reader has consumed (only it stores) */
    _Alignas(64) _Atomic uint32_t sleeping; /* the reader may block: a writer rings the doorbell */
    _Alignas(64) uint8_t data[RING_SIZE];
};

typedef struct lane_seg {
    uint64_t magic;
    uint32_t version, ring_size;
    struct lane_ring ring[2]; /* [0]: dialer to acceptor, [1]: acceptor to dialer */
} lane_seg;

struct dray__lane {
    lane_seg *seg;
    struct lane_ring *tx, *rx;
    uint32_t peeked; /* bytes of the record dray__lane_peek returned (0: none) */
    bool mapped;     /* seg is our mapping (else the caller's memory: dray__lane_attach) */
    char name[64];
};

size_t dray__lane_max_frame(void) { return RING_SIZE / 4; }
const char *dray__lane_name(const dray__lane *l) { return l->name; }

static size_t round8(size_t n) { return (n + 7) & ~(size_t)7; }

static dray__lane *lane_new(lane_seg *seg, bool dialer, const char *name)
{
    dray__lane *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->seg = seg;
    l->mapped = true;
    l->tx = &seg->ring[dialer ? 0 : 1];
    l->rx = &seg->ring[dialer ? 1 : 0];
    snprintf(l->name, sizeof l->name, "%s", name);
    return l;
}

dray_status dray__lane_create(dray__lane **out)
{
    uint8_t rnd[16];
    char hex[33], name[64];
    dray_status st = dray__random_bytes(rnd, sizeof rnd);
    if (st)
        return st;
    dray__hex_encode(rnd, sizeof rnd, hex);
    snprintf(name, sizeof name, "/dray-lane-%s", hex);
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return dray_set_error(DRAY_EIO, "shared memory %s: %s", name, strerror(errno));
    void *p = MAP_FAILED;
    if (ftruncate(fd, sizeof(lane_seg)) == 0)
        p = mmap(NULL, sizeof(lane_seg), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int err = errno;
    close(fd);
    if (p == MAP_FAILED) {
        shm_unlink(name);
        return dray_set_error(DRAY_EIO, "shared memory %s: %s", name, strerror(err));
    }
    lane_seg *seg = p;
    seg->magic = LANE_MAGIC;
    seg->version = LANE_VERSION;
    seg->ring_size = RING_SIZE;
    dray__lane *l = lane_new(seg, true, name);
    if (!l) {
        munmap(p, sizeof(lane_seg));
        shm_unlink(name);
        return dray_set_error(DRAY_ENOMEM, "out of memory");
    }
    *out = l;
    return DRAY_OK;
}

/* A name dray__lane_create could have made. */
static bool name_ok(const char *name)
{
    static const char prefix[] = "/dray-lane-";
    if (strncmp(name, prefix, sizeof prefix - 1) || strlen(name) != sizeof prefix - 1 + 32)
        return false;
    for (const char *p = name + sizeof prefix - 1; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

dray_status dray__lane_open(const char *name, dray__lane **out)
{
    if (!name_ok(name))
        return dray_set_error(DRAY_EINVAL, "lane name '%.80s' is not one dray makes", name);
    int fd = shm_open(name, O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0);
    if (fd < 0)
        return dray_set_error(errno == ENOENT ? DRAY_ENOTFOUND : DRAY_EIO,
                              "shared memory %s: %s (the peer is on another machine?)", name,
                              strerror(errno));
    struct stat sb;
    dray_status st = DRAY_OK;
    if (fstat(fd, &sb))
        st = dray_set_error(DRAY_EIO, "shared memory %s: %s", name, strerror(errno));
    else if (!S_ISREG(sb.st_mode) || sb.st_uid != geteuid() || (sb.st_mode & 077) ||
             (size_t)sb.st_size != sizeof(lane_seg))
        st = dray_set_error(DRAY_EPERM, "shared memory %s: not a private lane of this user "
                            "(owner %u, mode %o, %lld bytes)", name, (unsigned)sb.st_uid,
                            (unsigned)(sb.st_mode & 0777), (long long)sb.st_size);
    void *p = st ? MAP_FAILED
                 : mmap(NULL, sizeof(lane_seg), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (!st && p == MAP_FAILED)
        st = dray_set_error(DRAY_EIO, "shared memory %s: %s", name, strerror(errno));
    close(fd);
    shm_unlink(name); /* both sides have it mapped (or it is refused): nothing is left behind */
    if (st)
        return st;
    lane_seg *seg = p;
    if (seg->magic != LANE_MAGIC || seg->version != LANE_VERSION || seg->ring_size != RING_SIZE) {
        munmap(p, sizeof(lane_seg));
        return dray_set_error(DRAY_EFORMAT, "shared memory %s: not a dray lane of this version",
                              name);
    }
    dray__lane *l = lane_new(seg, false, name);
    if (!l) {
        munmap(p, sizeof(lane_seg));
        return dray_set_error(DRAY_ENOMEM, "out of memory");
    }
    *out = l;
    return DRAY_OK;
}

void dray__lane_unlink(dray__lane *l)
{
    if (l)
        shm_unlink(l->name);
}

void dray__lane_free(dray__lane *l)
{
    if (!l)
        return;
    if (l->mapped)
        munmap(l->seg, sizeof(lane_seg));
    free(l);
}

size_t dray__lane_segment_size(void) { return sizeof(lane_seg); }

dray_status dray__lane_attach(void *mem, bool init, bool dialer, dray__lane **out)
{
    lane_seg *seg = mem;
    if (init) {
        memset(seg, 0, sizeof *seg);
        seg->magic = LANE_MAGIC;
        seg->version = LANE_VERSION;
        seg->ring_size = RING_SIZE;
    }
    dray__lane *l = lane_new(seg, dialer, "(memory)");
    if (!l)
        return dray_set_error(DRAY_ENOMEM, "out of memory");
    l->mapped = false;
    *out = l;
    return DRAY_OK;
}

void dray__lane_set_rx(dray__lane *l, uint64_t head, uint64_t tail, const void *data, size_t len)
{
    struct lane_ring *r = l->rx;
    memcpy(r->data, data, len < RING_SIZE ? len : RING_SIZE);
    atomic_store(&r->tail, tail);
    atomic_store(&r->head, head);
}

bool dray__lane_write(dray__lane *l, const void *const *parts, const size_t *lens, int nparts)
{
    struct lane_ring *r = l->tx;
    size_t len = 0;
    for (int i = 0; i < nparts; i++)
        len += lens[i];
    if (len > dray__lane_max_frame())
        return false;
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    size_t need = REC_HDR + round8(len), pos = head & (RING_SIZE - 1), to_end = RING_SIZE - pos;
    size_t skip = need > to_end ? to_end : 0;
    if (head - tail > RING_SIZE || head + skip + need - tail > RING_SIZE)
        return false; /* full (or a reader that misbehaves): the caller uses TCP */
    if (skip) {
        uint32_t w = WRAP;
        memcpy(r->data + pos, &w, 4);
        pos = 0;
    }
    uint32_t hdr[2] = {(uint32_t)len, 0};
    memcpy(r->data + pos, hdr, REC_HDR);
    uint8_t *p = r->data + pos + REC_HDR;
    for (int i = 0; i < nparts; i++) {
        if (lens[i])
            memcpy(p, parts[i], lens[i]);
        p += lens[i];
    }
    atomic_store_explicit(&r->head, head + skip + need, memory_order_release);
    return true;
}

bool dray__lane_wake_needed(dray__lane *l)
{
    /* Pairs with dray__lane_sleep: either the reader sees the record, or this sees its flag. */
    atomic_thread_fence(memory_order_seq_cst);
    return atomic_load_explicit(&l->tx->sleeping, memory_order_relaxed) &&
           atomic_exchange(&l->tx->sleeping, 0);
}

bool dray__lane_pending(const dray__lane *l)
{
    return atomic_load_explicit(&l->rx->head, memory_order_acquire) !=
           atomic_load_explicit(&l->rx->tail, memory_order_relaxed);
}

long dray__lane_peek(dray__lane *l, const uint8_t **rec)
{
    struct lane_ring *r = l->rx;
    for (;;) {
        uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
        if (head == tail)
            return 0;
        size_t avail = head - tail, pos = tail & (RING_SIZE - 1);
        if (avail > RING_SIZE || pos % 8)
            return -1;
        uint32_t len;
        memcpy(&len, r->data + pos, 4);
        if (len == WRAP) {
            if (RING_SIZE - pos > avail)
                return -1;
            atomic_store_explicit(&r->tail, tail + (RING_SIZE - pos), memory_order_release);
            continue;
        }
        if (len > dray__lane_max_frame() || REC_HDR + round8(len) > avail ||
            pos + REC_HDR + len > RING_SIZE)
            return -1;
        *rec = r->data + pos + REC_HDR;
        l->peeked = (uint32_t)(REC_HDR + round8(len));
        return len;
    }
}

void dray__lane_consume(dray__lane *l)
{
    uint64_t tail = atomic_load_explicit(&l->rx->tail, memory_order_relaxed);
    atomic_store_explicit(&l->rx->tail, tail + l->peeked, memory_order_release);
    l->peeked = 0;
}

bool dray__lane_sleep(dray__lane *l)
{
    atomic_store_explicit(&l->rx->sleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (!dray__lane_pending(l))
        return true;
    atomic_store_explicit(&l->rx->sleeping, 0, memory_order_relaxed);
    return false;
}

void dray__lane_awake(dray__lane *l)
{
    if (atomic_load_explicit(&l->rx->sleeping, memory_order_relaxed))
        atomic_store_explicit(&l->rx->sleeping, 0, memory_order_relaxed);
}
