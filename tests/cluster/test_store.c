/* The object store on its own (no cluster): spilling writes to disk without holding the store's
 * lock (readers of other objects, producers and frees go on meanwhile; a reader of the object being
 * spilled gets its memory copy), and many threads making, reading, freeing and spilling objects at
 * once always read the right bytes and leave the counters at zero (run under ThreadSanitizer). */
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "cluster/internal.h"
#include "test.h"

#define SELF "127.0.0.1:1"

/* n bytes whose content follows from n alone: byte k = (k*7 + n) mod 251. */
static dray_value make_bytes(size_t n)
{
    dray_value v;
    uint8_t *p;
    ASSERT_OK(dray_bytes_create_uninit(n, &v, (void **)&p));
    for (size_t k = 0; k < n; k++)
        p[k] = (uint8_t)((k * 7 + n) % 251);
    return v;
}

/* Whether v holds the bytes make_bytes(n) made, for its own length n. */
static bool bytes_ok(const dray_value *v, size_t want_len)
{
    size_t n = 0;
    const uint8_t *p = dray_bytes_data(v, &n);
    if (!p || (want_len && n != want_len))
        return false;
    for (size_t k = 0; k < n; k++)
        if (p[k] != (uint8_t)((k * 7 + n) % 251))
            return false;
    return true;
}

static dray__store *new_store(char *dir, size_t dsize, size_t limit)
{
    snprintf(dir, dsize, "/tmp/dray-storetest-XXXXXX");
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    uint8_t secret[32] = {1};
    dray__store *s;
    ASSERT_OK(dray__store_create(dir, limit, secret, &s));
    return s;
}

static void drop_store(dray__store *s, const char *dir)
{
    dray__store_destroy(s);
    ASSERT_EQ(rmdir(dir), 0); /* spill files are unlinked: nothing left behind */
}

static uint64_t adopt(dray__store *s, size_t n)
{
    dray_value v = make_bytes(n);
    uint64_t id;
    ASSERT_OK(dray__store_adopt(s, SELF, NULL, &v, &id));
    dray_value_release(&v);
    return id;
}

/* ==== Spilling without the lock ==== */

typedef struct hook_state {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int calls;
    uint64_t first_id;
    bool started, main_done, timed_out;
} hook_state;

/* The first spill waits (at most 10 s) until the main thread has used the store. */
static void hold_first_spill(void *ctx, uint64_t id)
{
    hook_state *h = ctx;
    pthread_mutex_lock(&h->lock);
    if (h->calls++ == 0) {
        h->first_id = id;
        h->started = true;
        pthread_cond_broadcast(&h->cond);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 10;
        while (!h->main_done && !h->timed_out)
            if (pthread_cond_timedwait(&h->cond, &h->lock, &ts))
                h->timed_out = true;
    }
    pthread_mutex_unlock(&h->lock);
}

typedef struct producer {
    dray__store *s;
    size_t n;
    uint64_t id;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    p->id = adopt(p->s, p->n);
    return NULL;
}

/* Limit 10 MB: spilling starts above 7 MB and goes down to 6 MB. A and B (3 MB each) fit; a third
 * object C makes the store spill A (the least recently used) while the main thread, during that
 * write, reads B, reads A (its memory copy), makes D and frees an object: none of that waits for
 * the write. A, read meanwhile, stays in memory (its reader points into it); the next least
 * recently used (C, then B: reading B made it recent) go instead. */
TEST(spill_writes_without_holding_the_lock)
{
    char dir[64];
    enum { MB = 1 << 20 };
    dray__store *s = new_store(dir, sizeof dir, 10000000);
    hook_state h = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    dray__store_set_spill_hook(s, hold_first_spill, &h);
    uint64_t a = adopt(s, 3 * MB), b = adopt(s, 3 * MB + 1), e = adopt(s, 100000);
    dray__store_stats st;
    dray__store_stats_get(s, &st);
    ASSERT_EQ(st.spilled, 0);
    producer p = {s, 3 * MB + 2, 0};
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, produce, &p), 0);
    pthread_mutex_lock(&h.lock);
    while (!h.started)
        pthread_cond_wait(&h.cond, &h.lock);
    pthread_mutex_unlock(&h.lock);
    ASSERT_EQ(h.first_id, a);
    /* The spilling thread is inside its write now. */
    dray_value vb, va;
    ASSERT_OK(dray__store_get(s, SELF, b, &vb));
    ASSERT_TRUE(bytes_ok(&vb, 3 * MB + 1));
    dray_value_release(&vb);
    ASSERT_OK(dray__store_get(s, SELF, a, &va));
    ASSERT_TRUE(bytes_ok(&va, 3 * MB));
    uint64_t d = adopt(s, 200000);
    dray__store_free(s, SELF, e);
    pthread_mutex_lock(&h.lock);
    bool timed_out = h.timed_out;
    h.main_done = true;
    pthread_cond_broadcast(&h.cond);
    pthread_mutex_unlock(&h.lock);
    ASSERT_TRUE(!timed_out); /* with the lock held during the write, the reads above would block */
    pthread_join(t, NULL);
    dray__store_stats_get(s, &st);
    /* A stayed (read during its write); C and then B (least recently used after A) went to disk
     * instead, down to the 6 MB target. */
    ASSERT_EQ(st.spilled, 2);
    ASSERT_EQ(st.spilled_bytes, 6 * MB + 3);
    ASSERT_EQ(st.bytes_disk, 6 * MB + 3);
    ASSERT_EQ(st.bytes_mem, 3 * MB + 200000);
    ASSERT_EQ(st.objects, 4);
    ASSERT_TRUE(bytes_ok(&va, 3 * MB)); /* still the memory copy, intact */
    dray_value_release(&va);
    /* B reads back from disk. */
    ASSERT_OK(dray__store_get(s, SELF, b, &vb));
    ASSERT_TRUE(bytes_ok(&vb, 3 * MB + 1));
    dray_value_release(&vb);
    dray__store_stats_get(s, &st);
    ASSERT_EQ(st.read_back, 1);
    ASSERT_EQ(h.calls, 3); /* A (given up), C, B */
    uint64_t all[4] = {a, b, p.id, d};
    for (int i = 0; i < 4; i++)
        dray__store_free(s, SELF, all[i]);
    dray__store_stats_get(s, &st);
    ASSERT_EQ(st.objects, 0);
    ASSERT_EQ(st.bytes_mem, 0);
    ASSERT_EQ(st.bytes_disk, 0);
    drop_store(s, dir);
}

/* An object freed while it is being written to disk is freed once the write ends (no file kept). */
static void free_during_spill(void *ctx, uint64_t id)
{
    dray__store *s = ctx;
    dray__store_free(s, SELF, id); /* from another thread's point of view: the lock is free */
}

TEST(object_freed_during_its_spill_is_dropped)
{
    char dir[64];
    dray__store *s = new_store(dir, sizeof dir, 1000000);
    dray__store_set_spill_hook(s, free_during_spill, s);
    uint64_t a = adopt(s, 500000);
    uint64_t b = adopt(s, 400000); /* 900 KB > 700 KB: a is spilled, and freed during the write */
    dray__store_stats st;
    dray__store_stats_get(s, &st);
    ASSERT_EQ(st.spilled, 0);
    ASSERT_EQ(st.freed, 1);
    ASSERT_EQ(st.objects, 1);
    ASSERT_EQ(st.bytes_mem, 400000);
    ASSERT_EQ(st.bytes_disk, 0);
    dray_value v;
    ASSERT_STATUS(dray__store_get(s, SELF, a, &v), DRAY_ENOTFOUND);
    dray__store_set_spill_hook(s, NULL, NULL);
    dray__store_free(s, SELF, b);
    drop_store(s, dir);
}

/* ==== Many threads at once ==== */

enum { NTHREADS = 4, ROUNDS = 150, SLOTS = 64 };

typedef struct shared {
    dray__store *s;
    pthread_mutex_t lock;
    uint64_t ids[SLOTS];
    size_t sizes[SLOTS];
    _Atomic int bad, reads;
} shared;

typedef struct worker_arg {
    shared *sh;
    unsigned seed;
} worker_arg;

static unsigned next_rand(unsigned *x)
{
    *x = *x * 1103515245u + 12345u;
    return *x >> 8;
}

static void *churn(void *arg)
{
    worker_arg *wa = arg;
    shared *sh = wa->sh;
    unsigned x = wa->seed;
    for (int r = 0; r < ROUNDS; r++) {
        unsigned op = next_rand(&x) % 10, slot = next_rand(&x) % SLOTS;
        if (op < 4) { /* make an object in a free slot */
            size_t n = 65536 + next_rand(&x) % 400000;
            uint64_t id = adopt(sh->s, n);
            pthread_mutex_lock(&sh->lock);
            bool taken = sh->ids[slot] != 0;
            if (!taken) {
                sh->ids[slot] = id;
                sh->sizes[slot] = n;
            }
            pthread_mutex_unlock(&sh->lock);
            if (taken)
                dray__store_free(sh->s, SELF, id);
        } else if (op < 8) { /* read one (it may be freed meanwhile: then it is not found) */
            pthread_mutex_lock(&sh->lock);
            uint64_t id = sh->ids[slot];
            size_t n = sh->sizes[slot];
            pthread_mutex_unlock(&sh->lock);
            dray_value v;
            if (id && dray__store_get(sh->s, SELF, id, &v) == DRAY_OK) {
                if (!bytes_ok(&v, n))
                    atomic_fetch_add(&sh->bad, 1);
                atomic_fetch_add(&sh->reads, 1);
                dray_value_release(&v);
            }
        } else if (op < 9) { /* free one */
            pthread_mutex_lock(&sh->lock);
            uint64_t id = sh->ids[slot];
            sh->ids[slot] = 0;
            pthread_mutex_unlock(&sh->lock);
            if (id)
                dray__store_free(sh->s, SELF, id);
        } else { /* process memory is high: spill some */
            dray__store_spill(sh->s, 300000);
            dray__store_maintain(sh->s);
        }
    }
    return NULL;
}

/* Four threads make, read, free and spill objects in a store with a 2 MB limit (so most of them go
 * to disk and back): every read sees the right bytes; at the end everything is freed. */
TEST(concurrent_producers_readers_and_spills)
{
    char dir[64];
    shared sh = {.lock = PTHREAD_MUTEX_INITIALIZER};
    sh.s = new_store(dir, sizeof dir, 2000000);
    pthread_t t[NTHREADS];
    worker_arg wa[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        wa[i] = (worker_arg){&sh, 17u * (unsigned)i + 3};
        ASSERT_EQ(pthread_create(&t[i], NULL, churn, &wa[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    ASSERT_EQ(atomic_load(&sh.bad), 0);
    ASSERT_GT(atomic_load(&sh.reads), 50);
    dray__store_stats st;
    dray__store_stats_get(sh.s, &st);
    ASSERT_GT(st.spilled, 10);
    ASSERT_GT(st.read_back, 0);
    /* Whatever is left reads back right, then goes. */
    for (int i = 0; i < SLOTS; i++) {
        if (!sh.ids[i])
            continue;
        dray_value v;
        ASSERT_OK(dray__store_get(sh.s, SELF, sh.ids[i], &v));
        ASSERT_TRUE(bytes_ok(&v, sh.sizes[i]));
        dray_value_release(&v);
        dray__store_free(sh.s, SELF, sh.ids[i]);
    }
    dray__store_stats_get(sh.s, &st);
    ASSERT_EQ(st.objects, 0);
    ASSERT_EQ(st.bytes_mem, 0);
    ASSERT_EQ(st.bytes_disk, 0);
    ASSERT_EQ(st.freed, st.puts);
    drop_store(sh.s, dir);
}

/* ==== Objects adopting views of other objects ==== */

/* A task that returns its input object as it is gives the store a view of that object to adopt as
 * a new one. Freeing the new object (or spilling it) releases the view, whose unpin takes the
 * store's lock: that must happen after the lock is dropped (else the thread deadlocks on itself;
 * alarm() fails the test instead of hanging). With limit 0 both stay in memory; with a 64 KiB
 * limit each object goes to disk at once, the adopted view's release then happening in the
 * spill. */
static void adopt_view_then_free(size_t limit)
{
    char dir[64];
    dray__store *s = new_store(dir, sizeof dir, limit);
    uint64_t a = adopt(s, 100000), b;
    dray_value va;
    ASSERT_OK(dray__store_get(s, SELF, a, &va));
    ASSERT_OK(dray__store_adopt(s, SELF, NULL, &va, &b));
    dray_value_release(&va);
    alarm(20);
    dray_value vb;
    ASSERT_OK(dray__store_get(s, SELF, b, &vb));
    ASSERT_TRUE(bytes_ok(&vb, 100000));
    dray_value_release(&vb);
    dray__store_free(s, SELF, b);
    dray__store_stats st;
    dray__store_stats_get(s, &st);
    ASSERT_EQ(st.objects, 1);
    ASSERT_OK(dray__store_get(s, SELF, a, &va));
    ASSERT_TRUE(bytes_ok(&va, 100000));
    dray_value_release(&va);
    dray__store_free(s, SELF, a);
    alarm(0);
    dray__store_stats_get(s, &st);
    ASSERT_EQ(st.objects, 0);
    ASSERT_EQ(st.bytes_mem, 0);
    ASSERT_EQ(st.bytes_disk, 0);
    if (limit)
        ASSERT_GE(st.spilled, 2);
    drop_store(s, dir);
}

TEST(object_adopting_a_view_of_another_is_freed)
{
    adopt_view_then_free(0);
    adopt_view_then_free(64 << 10);
}

RUN_TESTS(T_(spill_writes_without_holding_the_lock), T_(object_freed_during_its_spill_is_dropped),
          T_(concurrent_producers_readers_and_spills), T_(object_adopting_a_view_of_another_is_freed))
