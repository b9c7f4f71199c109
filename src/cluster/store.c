/* The per-node object store: large task results live in shared memory (one memfd per object, mapped
 * once) and every executor reads them through BYTES values over that mapping, without a copy. Objects
 * of other nodes are pulled once (node to node) and cached; above the spill fraction of the memory
 * limit the least recently used unpinned objects move to unlinked files in the cluster directory and
 * are mapped back from there when read. Objects go when their owner (the driver) frees them. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

enum { S_READY, S_PULLING, S_FAILED };

typedef struct sobj {
    struct dray__store *s;
    uint64_t id;
    char holder[80]; /* the node that made it ("" here) */
    const void *owner;
    size_t size;
    int fd;          /* memfd, or the spill file once on disk; -1 for an adopted value */
    dray_value heap; /* an adopted BYTES value (a result made on this node), until spilled */
    void *map;       /* in memory: always; on disk: while pinned */
    bool on_disk, dead;
    bool moving;     /* being written to disk (without the store's lock): readers use memory */
    int state;
    int pins;
    uint64_t stamp; /* last use, for LRU spilling */
    struct sobj *hnext;
} sobj;

struct dray__store {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    _Atomic int refs; /* the creator's and one per pinned value */
    char dir[4096];
    uint8_t secret[32];
    size_t limit;
    /* Thresholds in bytes; 0: disabled (a fraction set to "false"). Managed memory (bytes_mem)
     * above spill_b starts spilling down to target_b; the worker applies spill/pause/terminate to
     * the process's memory too (dray__store_limits_get). */
    size_t target_b, spill_b, pause_b, terminate_b;
    sobj **buckets;
    size_t nbuckets, count;
    uint64_t next_id, clock;
    bool spiller;    /* a thread is spilling (one at a time; the others leave it to that one) */
    bool hysteresis; /* managed spilling goes on down to the target once started */
    /* Test hook: called by the spilling thread, without the lock, before it writes an object. */
    void (*spill_hook)(void *ctx, uint64_t id);
    void *spill_hook_ctx;
    dray__store_stats st;
    /* Destroyed objects whose adopted value is released once the lock is dropped (store_unlock):
     * the value may be a view of another object of this store, whose unpin takes the lock. */
    sobj *dropped;
};

static size_t bucket(const dray__store *s, const char *holder, uint64_t id)
{
    uint64_t h = id * 0x9e3779b97f4a7c15ull;
    for (const char *p = holder; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    return (size_t)(h >> 20) & (s->nbuckets - 1);
}

static sobj *find(dray__store *s, const char *holder, uint64_t id)
{
    for (sobj *o = s->buckets[bucket(s, holder, id)]; o; o = o->hnext)
        if (o->id == id && !strcmp(o->holder, holder) && !o->dead)
            return o;
    return NULL;
}

static dray_status insert(dray__store *s, sobj *o)
{
    if (s->count >= s->nbuckets) {
        size_t nb = s->nbuckets * 2;
        sobj **b = calloc(nb, sizeof(*b));
        if (!b)
            return dray_set_error(DRAY_ENOMEM, "out of memory growing the object table");
        sobj **old = s->buckets;
        size_t on = s->nbuckets;
        s->buckets = b;
        s->nbuckets = nb;
        for (size_t i = 0; i < on; i++)
            for (sobj *p = old[i], *next; p; p = next) {
                next = p->hnext;
                size_t k = bucket(s, p->holder, p->id);
                p->hnext = b[k];
                b[k] = p;
            }
        free(old);
    }
    size_t k = bucket(s, o->holder, o->id);
    o->hnext = s->buckets[k];
    s->buckets[k] = o;
    s->count++;
    return DRAY_OK;
}

static void unlink_obj(dray__store *s, sobj *o)
{
    for (sobj **pp = &s->buckets[bucket(s, o->holder, o->id)]; *pp; pp = &(*pp)->hnext)
        if (*pp == o) {
            *pp = o->hnext;
            s->count--;
            return;
        }
}

static void store_release(dray__store *s)
{
    if (atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    free(s->buckets);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* Frees o's memory and file (unlinked from the table already). Lock held: an adopted value is
 * released by the next store_unlock. */
static void destroy_obj(dray__store *s, sobj *o)
{
    if (o->heap.type == DRAY_T_NULL && o->map)
        munmap(o->map, o->size);
    if (o->fd >= 0)
        close(o->fd);
    if (o->state == S_READY) {
        if (o->on_disk)
            s->st.bytes_disk -= o->size;
        else
            s->st.bytes_mem -= o->size;
        s->st.objects--;
    }
    if (o->heap.type == DRAY_T_NULL) {
        free(o);
        return;
    }
    o->hnext = s->dropped;
    s->dropped = o;
}

/* Drops the lock, then releases the adopted values of objects destroyed meanwhile (releasing one
 * that is a view of another object unpins that one, which takes the lock). */
static void store_unlock(dray__store *s)
{
    sobj *d = s->dropped;
    s->dropped = NULL;
    pthread_mutex_unlock(&s->lock);
    while (d) {
        sobj *next = d->hnext;
        dray_value_release(&d->heap);
        free(d);
        d = next;
    }
}

dray_status dray__store_create(const char *dir, size_t limit, const uint8_t secret[32],
                               dray__store **out)
{
    dray__store *s = calloc(1, sizeof(*s));
    if (!s || !(s->buckets = calloc(256, sizeof(sobj *)))) {
        free(s);
        return dray_set_error(DRAY_ENOMEM, "out of memory creating the object store");
    }
    s->nbuckets = 256;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    atomic_init(&s->refs, 1);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    memcpy(s->secret, secret, 32);
    if (!limit) {
        long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
        limit = pages > 0 && psize > 0 ? (size_t)pages * (size_t)psize : (size_t)1 << 32;
    }
    double f[4];
    static const char *const names[4] = {"DRAY_MEMORY_TARGET", "DRAY_MEMORY_SPILL",
                                         "DRAY_MEMORY_PAUSE", "DRAY_MEMORY_TERMINATE"};
    static const double dflt[4] = {0.6, 0.7, 0.8, 0.95};
    double prev = 0;
    for (int i = 0; i < 4; i++) {
        const char *e = getenv(names[i]);
        char *end = NULL;
        f[i] = !e || !*e                                   ? dflt[i]
               : !strcmp(e, "false") || !strcmp(e, "False") ? 0
                                                            : strtod(e, &end);
        if ((end && (*end || !(f[i] > 0 && f[i] <= 1))) || (f[i] > 0 && f[i] < prev)) {
            dray__store_destroy(s);
            return dray_set_error(DRAY_EINVAL, "%s='%s': need a fraction in (0, 1] or 'false', "
                                  "with target <= spill <= pause <= terminate (enabled ones)",
                                  names[i], e ? e : "(default)");
        }
        if (f[i] > 0)
            prev = f[i];
    }
    s->limit = limit;
    s->target_b = (size_t)(f[0] * (double)limit);
    s->spill_b = (size_t)(f[1] * (double)limit);
    s->pause_b = (size_t)(f[2] * (double)limit);
    s->terminate_b = (size_t)(f[3] * (double)limit);
    /* Spilling starts above spill (else target) and goes down to target (else spill). */
    if (!s->target_b)
        s->target_b = s->spill_b;
    if (!s->spill_b)
        s->spill_b = s->target_b;
    *out = s;
    return DRAY_OK;
}

void dray__store_destroy(dray__store *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->nbuckets; i++)
        for (sobj *o = s->buckets[i], *next; o; o = next) {
            next = o->hnext;
            if (o->pins) {
                o->dead = true; /* freed by its last unpin */
                o->hnext = NULL;
            } else {
                destroy_obj(s, o);
            }
        }
    memset(s->buckets, 0, s->nbuckets * sizeof(sobj *));
    s->count = 0;
    store_unlock(s);
    store_release(s);
}

/* A new unlinked file in the cluster directory for a spilled object. */
static int spill_file(dray__store *s)
{
    int fd = open(s->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        char path[4200];
        snprintf(path, sizeof path, "%s/spill-XXXXXX", s->dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd >= 0)
            unlink(path);
    }
    return fd;
}

static dray_status write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return dray_set_error(DRAY_EIO, "writing a spilled object: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return DRAY_OK;
}

/* Moves o (in memory, unpinned, ready) to disk. Lock held on entry and exit, but dropped while the
 * file is written: o is marked moving and pinned meanwhile, so readers pin it and read the memory
 * copy, a free of it waits for the pin, and everything else in the store goes on. Returns 1 when o
 * went to disk, 0 when it stays in memory (freed, or read meanwhile: its readers hold pointers into
 * the memory copy), -1 on a failure (error set). */
static int spill_one(dray__store *s, sobj *o)
{
    o->moving = true;
    o->pins++;
    const void *src = o->map;
    size_t size = o->size;
    pthread_mutex_unlock(&s->lock);
    if (s->spill_hook)
        s->spill_hook(s->spill_hook_ctx, o->id);
    dray_status st = DRAY_OK;
    int fd = spill_file(s);
    if (fd < 0)
        st = dray_set_error(DRAY_EIO, "cannot create a spill file in %s: %s", s->dir,
                            strerror(errno));
    else
        st = write_all(fd, src, size);
    pthread_mutex_lock(&s->lock);
    o->moving = false;
    if (st || o->dead || o->pins > 1) {
        if (fd >= 0)
            close(fd);
        if (--o->pins == 0 && o->dead)
            destroy_obj(s, o);
        return st ? -1 : 0;
    }
    o->pins--;
    dray_value heap = o->heap;
    o->heap = dray_null();
    if (heap.type == DRAY_T_NULL) {
        munmap(o->map, o->size);
        close(o->fd);
    }
    o->map = NULL;
    o->fd = fd;
    o->on_disk = true;
    s->st.bytes_mem -= o->size;
    s->st.bytes_disk += o->size;
    s->st.spilled++;
    s->st.spilled_bytes += o->size;
    if (heap.type != DRAY_T_NULL) {
        /* Without the lock: the value may be a view of another object (its unpin locks). */
        pthread_mutex_unlock(&s->lock);
        dray_value_release(&heap);
        pthread_mutex_lock(&s->lock);
    }
    return 1;
}

/* The least recently used object that can be spilled, or NULL. Lock held. */
static sobj *lru_victim(dray__store *s)
{
    sobj *victim = NULL;
    for (size_t i = 0; i < s->nbuckets; i++)
        for (sobj *o = s->buckets[i]; o; o = o->hnext)
            if (!o->on_disk && !o->pins && !o->moving && o->state == S_READY &&
                (!victim || o->stamp < victim->stamp))
                victim = o;
    return victim;
}

/* Spills least recently used objects: `budget` bytes of them, or (budget 0) while managed memory
 * with `extra` bytes about to be added is above the spill bytes, and then down to the target. One
 * thread spills at a time: another caller returns at once (that thread goes on as long as needed).
 * Lock held; dropped during each write. Returns the bytes spilled. */
static size_t spill_lru(dray__store *s, size_t extra, size_t budget)
{
    if (s->spiller || !s->spill_b)
        return 0;
    s->spiller = true;
    size_t done = 0;
    for (;;) {
        if (budget) {
            if (done >= budget)
                break;
        } else {
            size_t mem = s->st.bytes_mem + extra;
            if (!(mem > s->spill_b || (mem > s->target_b && s->hysteresis)))
                break;
            s->hysteresis = true;
        }
        sobj *victim = lru_victim(s);
        if (!victim)
            break;
        size_t size = victim->size;
        int r = spill_one(s, victim);
        if (r < 0) {
            dray__log("spilling failed: %s", dray_last_error());
            break;
        }
        done += r ? size : 0;
    }
    s->hysteresis = false;
    s->spiller = false;
    return done;
}

static void maybe_spill(dray__store *s, size_t extra)
{
    spill_lru(s, extra, 0);
}

/* Backing for a new object of `size` bytes: memory, or straight to disk above the pause fraction.
 * Lock held. */
static dray_status new_backing(dray__store *s, sobj *o)
{
    if (o->size <= s->target_b)
        maybe_spill(s, o->size);
    bool disk = s->pause_b && s->st.bytes_mem + o->size > s->pause_b;
    int fd = disk ? spill_file(s) : memfd_create("dray-object", MFD_CLOEXEC);
    if (fd < 0)
        return dray_set_error(DRAY_EIO, "cannot create an object of %zu bytes: %s", o->size,
                              strerror(errno));
    if (ftruncate(fd, (off_t)o->size)) {
        close(fd);
        return dray_set_error(DRAY_ENOMEM, "cannot size an object of %zu bytes: %s", o->size,
                              strerror(errno));
    }
    void *m = mmap(NULL, o->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        close(fd);
        return dray_set_error(DRAY_ENOMEM, "cannot map an object of %zu bytes: %s", o->size,
                              strerror(errno));
    }
    o->fd = fd;
    o->map = m;
    o->on_disk = disk;
    if (disk)
        s->st.direct_to_disk++;
    return DRAY_OK;
}

static void count_ready(dray__store *s, sobj *o)
{
    s->st.objects++;
    if (o->on_disk)
        s->st.bytes_disk += o->size;
    else
        s->st.bytes_mem += o->size;
}

/* Drops a pin (lock held): a disk object is unmapped, a freed one destroyed. */
static void unpin_locked(dray__store *s, sobj *o)
{
    if (--o->pins > 0)
        return;
    if (o->dead) {
        destroy_obj(s, o);
        return;
    }
    if (o->on_disk && o->map) {
        munmap(o->map, o->size);
        o->map = NULL;
    }
}

static void unpin(void *ctx)
{
    sobj *o = ctx;
    dray__store *s = o->s;
    pthread_mutex_lock(&s->lock);
    unpin_locked(s, o);
    store_unlock(s);
    store_release(s);
}

/* A BYTES value over o (pinned while it lives). Lock held, o ready. */
static dray_status pin_value(dray__store *s, sobj *o, dray_value *out)
{
    if (!o->map) {
        void *m = mmap(NULL, o->size, PROT_READ, MAP_SHARED, o->fd, 0);
        if (m == MAP_FAILED)
            return dray_set_error(DRAY_EIO, "cannot map spilled object %llu: %s",
                                  (unsigned long long)o->id, strerror(errno));
        o->map = m;
    }
    if (o->on_disk)
        s->st.read_back++;
    dray_status st = dray__bytes_wrap(o->map, o->size, unpin, o, out);
    if (st)
        return st;
    o->pins++;
    o->stamp = ++s->clock;
    atomic_fetch_add(&s->refs, 1);
    return DRAY_OK;
}

dray_status dray__store_adopt(dray__store *s, const char *self, const void *owner,
                              const dray_value *bytes, uint64_t *id)
{
    size_t len = 0;
    const void *data = dray_bytes_data(bytes, &len);
    sobj *o = calloc(1, sizeof(*o));
    if (!o || !data)
        return dray_set_error(DRAY_ENOMEM, "out of memory");
    o->s = s;
    o->size = len;
    o->owner = owner;
    o->fd = -1;
    snprintf(o->holder, sizeof o->holder, "%s", self);
    pthread_mutex_lock(&s->lock);
    o->id = ++s->next_id;
    o->stamp = ++s->clock;
    o->state = S_READY;
    dray_status st = insert(s, o);
    if (st) {
        store_unlock(s);
        free(o);
        return st;
    }
    o->heap = dray_value_retain(bytes);
    o->map = (void *)data;
    count_ready(s, o);
    s->st.puts++;
    *id = o->id;
    /* An object bigger than the target can never stay in memory: to disk at once. */
    if (s->target_b && o->size > s->target_b && !s->spiller) {
        /* (not when another thread is spilling: that one takes it, the first in LRU order) */
        s->spiller = true;
        if (spill_one(s, o) > 0)
            s->st.direct_to_disk++;
        s->spiller = false;
    }
    maybe_spill(s, 0);
    store_unlock(s);
    return DRAY_OK;
}

dray_status dray__store_get(dray__store *s, const char *holder, uint64_t id, dray_value *out)
{
    pthread_mutex_lock(&s->lock);
    sobj *o = find(s, holder, id);
    dray_status st = !o || o->state != S_READY
                         ? dray_set_error(DRAY_ENOTFOUND, "object %llu of %s is not in this "
                                          "node's store", (unsigned long long)id, holder)
                         : pin_value(s, o, out);
    store_unlock(s);
    return st;
}

/* Reads object `id` of `holder` into dst[0..size) over a new authenticated connection. */
dray_status dray__pull(const uint8_t secret[32], const char *holder, uint64_t id, void *dst,
                       size_t size)
{
    int fd;
    dray_status st = dray__dial_blocking(holder, secret, "peer", 30000, &fd);
    if (st)
        return dray_set_error(st, "pulling object %llu from %s: %s", (unsigned long long)id,
                              holder, dray_last_error());
    dray_value req = dray_int((int64_t)id), rep = dray_null();
    dray__hdr h;
    if ((st = dray__blocking_send(fd, holder, DRAY__MSG_PULL, id, &req)) ||
        (st = dray__blocking_recv(fd, holder, &h, &rep)))
        goto out;
    if (h.type != DRAY__MSG_RESULT || h.rid != id) {
        st = dray_set_error(DRAY_EFORMAT, "pulling object %llu from %s: unexpected reply",
                            (unsigned long long)id, holder);
    } else if (dray_list_get(&rep, 0)->u.i != DRAY_OK) {
        st = dray_set_error(DRAY_ENOTFOUND, "pulling object %llu from %s: %s",
                            (unsigned long long)id, holder,
                            dray_error_message(dray_list_get(&rep, 1)));
    } else if (!(h.flags & DRAY__RF_RAW) || h.data_len != size) {
        st = dray_set_error(DRAY_EFORMAT, "pulling object %llu from %s: %llu bytes, want %zu",
                            (unsigned long long)id, holder, (unsigned long long)h.data_len, size);
    } else {
        st = dray__read_full(fd, dst, size, holder);
    }
out:
    dray_value_release(&rep);
    close(fd);
    return st;
}

dray_status dray__store_fetch(dray__store *s, const void *owner, const char *holder, uint64_t id,
                              size_t size, dray_value *out)
{
    pthread_mutex_lock(&s->lock);
    sobj *o;
    /* Another executor may be pulling it: wait for that one pull. */
    while ((o = find(s, holder, id)) && o->state == S_PULLING)
        pthread_cond_wait(&s->cond, &s->lock);
    if (o && o->state == S_READY) {
        dray_status st = pin_value(s, o, out);
        store_unlock(s);
        return st;
    }
    if (o) { /* a failed pull: try again */
        unlink_obj(s, o);
        destroy_obj(s, o);
    }
    dray_status st = DRAY_OK;
    o = calloc(1, sizeof(*o));
    if (!o) {
        store_unlock(s);
        return dray_set_error(DRAY_ENOMEM, "out of memory");
    }
    o->s = s;
    o->id = id;
    o->size = size;
    o->owner = owner;
    o->fd = -1;
    o->state = S_PULLING;
    o->stamp = ++s->clock;
    snprintf(o->holder, sizeof o->holder, "%s", holder);
    if ((st = insert(s, o))) {
        free(o);
        store_unlock(s);
        return st;
    }
    /* In the table (PULLING) before new_backing, which may spill (dropping the lock): other
     * executors wanting it wait for this pull instead of starting their own. */
    o->pins = 1;
    char msg[600] = "";
    if (!(st = new_backing(s, o))) {
        store_unlock(s);
        st = dray__pull(s->secret, holder, id, o->map, size);
        pthread_mutex_lock(&s->lock);
    }
    if (st)
        snprintf(msg, sizeof msg, "%s", dray_last_error());
    if (st) {
        o->state = S_FAILED;
        o->pins--;
        unlink_obj(s, o);
        destroy_obj(s, o);
    } else {
        o->state = S_READY;
        count_ready(s, o);
        s->st.pulls++;
        s->st.pulled_bytes += size;
        st = pin_value(s, o, out);
        unpin_locked(s, o);
    }
    pthread_cond_broadcast(&s->cond);
    store_unlock(s);
    if (st && msg[0])
        dray_set_error(st, "%s", msg);
    return st;
}

dray_status dray__store_serve(dray__store *s, const char *self, uint64_t id, dray_value *out)
{
    dray_status st = dray__store_get(s, self, id, out);
    if (!st) {
        pthread_mutex_lock(&s->lock);
        s->st.served++;
        size_t n = 0;
        dray_bytes_data(out, &n);
        s->st.served_bytes += n;
        store_unlock(s);
    }
    return st;
}

static void free_obj_locked(dray__store *s, sobj *o)
{
    unlink_obj(s, o);
    s->st.freed++;
    s->st.freed_bytes += o->size;
    if (o->pins) {
        /* Still read by an executor or being sent: its last unpin frees it. */
        o->dead = true;
        if (o->state == S_READY) {
            if (o->on_disk)
                s->st.bytes_disk -= o->size;
            else
                s->st.bytes_mem -= o->size;
            s->st.objects--;
            o->state = S_FAILED; /* counted out already */
        }
        return;
    }
    destroy_obj(s, o);
}

void dray__store_free(dray__store *s, const char *holder, uint64_t id)
{
    pthread_mutex_lock(&s->lock);
    sobj *o = find(s, holder, id);
    if (o && o->state == S_READY)
        free_obj_locked(s, o);
    store_unlock(s);
}

void dray__store_free_owner(dray__store *s, const void *owner)
{
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->nbuckets; i++)
        for (sobj *o = s->buckets[i], *next; o; o = next) {
            next = o->hnext;
            if (o->owner == owner && o->state == S_READY)
                free_obj_locked(s, o);
        }
    store_unlock(s);
}

size_t dray__store_spill(dray__store *s, size_t bytes)
{
    pthread_mutex_lock(&s->lock);
    size_t done = bytes ? spill_lru(s, 0, bytes) : 0;
    store_unlock(s);
    return done;
}

void dray__store_maintain(dray__store *s)
{
    pthread_mutex_lock(&s->lock);
    maybe_spill(s, 0);
    store_unlock(s);
}

void dray__store_set_spill_hook(dray__store *s, void (*hook)(void *ctx, uint64_t id), void *ctx)
{
    pthread_mutex_lock(&s->lock);
    s->spill_hook = hook;
    s->spill_hook_ctx = ctx;
    store_unlock(s);
}

void dray__store_limits_get(dray__store *s, dray__store_limits *out)
{
    out->limit = s->limit;
    out->target = s->target_b;
    out->spill = s->spill_b;
    out->pause = s->pause_b;
    out->terminate = s->terminate_b;
}

void dray__store_stats_get(dray__store *s, dray__store_stats *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->st;
    out->limit = s->limit;
    store_unlock(s);
}
