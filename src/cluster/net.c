/* The transport: an epoll event loop (one thread) with non-blocking TCP connections, length-prefixed
 * messages checked by wire.c, the HMAC challenge-response that every peer passes before anything
 * else is read, and batched output: senders on any thread append to a connection's buffer and wake
 * the loop once per batch; large object bytes are queued by reference and written from their own
 * memory. A connection to a node on the same machine also has a lane (lane.c): tasks and their
 * results go through shared memory, and the socket carries the rest. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define BIG_DATA (1u << 20)     /* data sections at least this large are read straight into a value */
#define COPY_LIMIT (64u << 10)  /* data sections smaller than this are copied into the out buffer */
#define READ_CHUNK (256u << 10)
#define AUTH_TIMEOUT_NS (5 * 1000000000LL)
#define TICK_NS (100 * 1000000LL)
/* A sender writes to the socket itself when the connection has been quiet this long (latency);
 * messages closer together are queued and flushed by the loop in batches (throughput). */
#define DIRECT_GAP_NS 50000
#define MAX_LANES 64
/* A spinning thread yields its core this often: a thread it woke may have been queued on the same
 * core (the scheduler favours the waker's), and would otherwise wait for the spin to end. */
#define SPIN_YIELD_NS 20000
/* How a message is sent (conn_send). */
enum { SEND_HOLD = 1,      /* only queued: dray__conn_push writes it */
       SEND_ANY_ORDER = 2, /* may overtake or be overtaken: the lane takes it when there is one */
       SEND_NOW = 4 };     /* written at once when nothing is queued (a lane's WAKE) */

typedef struct out_ext {
    size_t mark;      /* write after the out buffer reaches this offset */
    dray_value data;  /* BYTES, retained */
    size_t off;
} out_ext;

struct dray__conn {
    _Atomic int refs;
    dray__loop *loop;
    int fd;
    bool authed, server_side;
    _Atomic bool closed;
    bool borrowed;   /* a waiting thread reads it (dray__conn_borrow); under lock */
    uint32_t reg;    /* the events the loop's epoll has for it (0: not registered); under lock */
    int64_t created_ns;
    uint8_t nonce[DRAY__NONCE];
    char role[16];
    char peer[64];
    void *user;
    struct dray__conn *next;
    struct dray__conn *next_dead; /* on the loop's dead list (closed during a batch) */

    pthread_mutex_t lock; /* output */
    uint8_t *obuf;
    size_t olen, opos, ocap;
    out_ext *ext;
    size_t ext_head, ext_n, ext_cap;
    bool pollout;
    int64_t last_send_ns;

    /* Input: owned by whoever holds in_lock (the loop, or a thread that borrowed it). */
    pthread_mutex_t in_lock;
    uint64_t delivered; /* messages delivered so far */
    uint8_t *ibuf;
    size_t ilen, ipos, icap;
    bool have_hdr;
    dray__hdr cur;
    bool more_input;   /* while a message is delivered: more input is already buffered */
    uint8_t *big_ctl;  /* large-data mode: the control payload, then data read into big */
    dray_value big;
    uint8_t *big_ptr;
    uint64_t big_got;

    /* Same-host lane (NULL: none). Set before the connection is shared (dialer) or while the loop
     * reads its LANE message (acceptor), under lock; never changed after. Its writers hold lock,
     * its reader holds in_lock. */
    dray__lane *lane;
    uint8_t *lbuf; /* a record copied out of the ring (reader side) */
    size_t lcap;
    _Atomic uint64_t lane_sent, lane_received;
};

struct dray__loop {
    dray__loop_ops ops;
    void *user;
    uint8_t secret[32];
    int epfd, evfd, lfd, sigfd, port;
    pthread_t thread;
    bool threaded;
    _Atomic int stop;
    _Atomic int flush_pending;
    pthread_mutex_t lock; /* the conns list, in_batch and dead */
    dray__conn *conns;
    /* While the loop waits for or handles a batch of events, a closed connection's list reference
     * goes on `dead` and is dropped after the batch: an event for it may already be in the batch. */
    bool in_batch;
    dray__conn *dead;
    int64_t next_tick;
    int64_t spin_ns; /* busy-poll this long after the last event before sleeping (0: never) */
    /* Lanes this loop reads (retained; under lock), whether it accepts them, and how long it keeps
     * reading them without sleeping after the last record (the round-trip latency path). */
    dray__conn *lanes[MAX_LANES];
    int nlanes;
    bool accept_lanes;
    int64_t lane_spin_ns, last_lane_ns;
    dray__spin_gate gate; /* lanes are read without sleeping only while this allows */
    bool gate_off;        /* DRAY_CLUSTER_SPIN_LOAD_GATE=0: always (for measurements) */
    bool (*may_spin)(dray__loop *l);
    /* Whether the peer was reading its lane when this side last wrote to one: only then does a
     * next request come within microseconds, worth reading the lanes for without sleeping. */
    _Atomic bool lane_peer_awake;
    uint8_t wake_ctl[16]; /* the encoded null payload of WAKE */
    size_t wake_len;
};

static _Thread_local dray__loop *current_loop;

void dray__log(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%02d:%02d:%02d.%03ld dray[%d] %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, (int)getpid(), msg);
    fflush(stderr);
}

/* ==== Spin gate ==== */

void dray__spin_gate_init(dray__spin_gate *g)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    g->ncpu = ncpu > 0 ? (int)ncpu : 1;
    atomic_init(&g->load_milli, 0);
}

void dray__spin_gate_sample(dray__spin_gate *g, int self)
{
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f)
        return;
    double a1, a5, a15;
    int running = 0, total = 0;
    int got = fscanf(f, "%lf %lf %lf %d/%d", &a1, &a5, &a15, &running, &total);
    fclose(f);
    if (got != 5)
        return;
    int others = running - self;
    if (others < 0)
        others = 0;
    int avg = atomic_load_explicit(&g->load_milli, memory_order_relaxed);
    avg += (others * 1000 - avg) / 4;
    atomic_store_explicit(&g->load_milli, avg, memory_order_relaxed);
}

bool dray__spin_gate_ok(dray__spin_gate *g, bool yielding)
{
    /* A core to spare on average, with half a thread of slack: one sample of a passing thread (a
     * heartbeat, a tick) does not close the gate; a steady one does within ~300 ms. A spinner that
     * yields its core every SPIN_YIELD_NS costs the others little: it may go on until they would
     * fill every core (ncpu + 0.5). */
    int avg = atomic_load_explicit(&g->load_milli, memory_order_relaxed);
    return avg <= g->ncpu * 1000 + (yielding ? 500 : -500);
}

/* ==== Connections ==== */

dray__conn *dray__conn_retain(dray__conn *c)
{
    atomic_fetch_add(&c->refs, 1);
    return c;
}

static void drop_output(dray__conn *c)
{
    for (size_t i = c->ext_head; i < c->ext_n; i++)
        dray_value_release(&c->ext[i].data);
    c->ext_head = c->ext_n = 0;
    c->olen = c->opos = 0;
}

void dray__conn_release(dray__conn *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    drop_output(c);
    free(c->ext);
    free(c->obuf);
    free(c->ibuf);
    free(c->big_ctl);
    dray_value_release(&c->big);
    dray__lane_free(c->lane);
    free(c->lbuf);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->in_lock);
    /* Closed here, not in dray__conn_close: a thread that borrowed the connection may still be
     * polling the descriptor (close would not wake it, and the number could be reused). */
    close(c->fd);
    free(c);
}

const char *dray__conn_role(const dray__conn *c) { return c->role; }
bool dray__conn_more_input(const dray__conn *c) { return c->more_input; }
const char *dray__conn_peer(const dray__conn *c) { return c->peer; }
void dray__conn_set_user(dray__conn *c, void *user) { c->user = user; }
void *dray__conn_user(const dray__conn *c) { return c->user; }

static dray_status grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return DRAY_OK;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    uint8_t *p = realloc(*buf, n);
    if (!p)
        return dray_set_error(DRAY_ENOMEM, "out of memory growing a connection buffer to %zu", n);
    *buf = p;
    *cap = n;
    return DRAY_OK;
}

/* Brings the loop's epoll registration of c in line with its state: EPOLLIN unless borrowed,
 * EPOLLOUT while output waits for room, nothing once closed. Caller holds c->lock. */
static void update_events(dray__conn *c)
{
    uint32_t want = atomic_load(&c->closed) ? 0 : (c->borrowed ? 0 : EPOLLIN) |
                                                  (c->pollout ? EPOLLOUT : 0);
    if (want == c->reg)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = c};
    int op = !want ? EPOLL_CTL_DEL : !c->reg ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(c->loop->epfd, op, c->fd, &ev) == 0 || op == EPOLL_CTL_DEL)
        c->reg = want;
}

static void set_pollout(dray__conn *c, bool on)
{
    if (c->pollout == on)
        return;
    c->pollout = on;
    update_events(c);
}

/* Writes what is queued; false on a fatal error. Caller holds c->lock. */
static bool flush_locked(dray__conn *c)
{
    for (;;) {
        size_t end = c->ext_head < c->ext_n ? c->ext[c->ext_head].mark : c->olen;
        const void *p;
        size_t n;
        out_ext *x = NULL;
        if (c->opos < end) {
            p = c->obuf + c->opos;
            n = end - c->opos;
        } else if (c->ext_head < c->ext_n) {
            x = &c->ext[c->ext_head];
            size_t len = 0;
            const uint8_t *d = dray_bytes_data(&x->data, &len);
            p = d + x->off;
            n = len - x->off;
        } else {
            break;
        }
        ssize_t w = n ? send(c->fd, p, n, MSG_NOSIGNAL) : 0;
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_pollout(c, true);
                return true;
            }
            return false;
        }
        if (!x) {
            c->opos += (size_t)w;
        } else {
            x->off += (size_t)w;
            if ((size_t)w == n) {
                dray_value_release(&x->data);
                c->ext_head++;
            }
        }
    }
    c->olen = c->opos = 0;
    c->ext_head = c->ext_n = 0;
    set_pollout(c, false);
    return true;
}

/* Queues a message; off the loop thread it is written at once when nothing else is queued and the
 * connection has been quiet for DIRECT_GAP_NS. `hold`: only queued (dray__conn_push follows). */
static dray_status conn_send(dray__conn *c, uint8_t type, uint8_t flags, uint64_t rid,
                             const void *ctl, size_t ctl_len, const dray_value *data, unsigned how);

/* Sends m through c's lane when it has one, m fits and the peer's reader is awake: true when done
 * (or the connection is closed: false with *st set). To a sleeping reader the message goes on the
 * socket instead: it wakes the reader itself, where the lane would need a WAKE after it. The
 * doorbell is rung only when the reader fell asleep while this was written. */
static bool lane_send(dray__conn *c, const dray__hdr *h, const void *ctl, const uint8_t *d,
                      unsigned how, dray_status *st)
{
    if (DRAY__WIRE_HDR + h->ctl_len + h->data_len > dray__lane_max_frame())
        return false;
    uint8_t hb[DRAY__WIRE_HDR];
    dray__wire_put_header(hb, h);
    const void *parts[3] = {hb, ctl, d};
    size_t lens[3] = {DRAY__WIRE_HDR, h->ctl_len, h->data_len};
    pthread_mutex_lock(&c->lock);
    if (atomic_load(&c->closed)) {
        pthread_mutex_unlock(&c->lock);
        *st = dray_set_error(DRAY_ENET, "connection to %s is closed", c->peer);
        return false;
    }
    bool awake = c->lane && !dray__lane_peer_asleep(c->lane);
    bool sent = awake && dray__lane_write(c->lane, parts, lens, 3);
    if (c->lane) /* a peer that reads its lane without sleeping is in a tight loop of requests */
        atomic_store_explicit(&c->loop->lane_peer_awake, awake, memory_order_relaxed);
    bool wake = sent && dray__lane_wake_needed(c->lane);
    pthread_mutex_unlock(&c->lock);
    if (!sent)
        return false;
    atomic_fetch_add_explicit(&c->lane_sent, 1, memory_order_relaxed);
    /* The doorbell: written by a sender that waits for the answer (hold: the latency path) at
     * once, else batched like any message on a busy connection. */
    if (wake)
        conn_send(c, DRAY__MSG_WAKE, 0, 0, c->loop->wake_ctl, c->loop->wake_len, NULL,
                  (how & SEND_HOLD) ? SEND_HOLD | SEND_NOW : 0);
    *st = DRAY_OK;
    return true;
}

static dray_status conn_send(dray__conn *c, uint8_t type, uint8_t flags, uint64_t rid,
                             const void *ctl, size_t ctl_len, const dray_value *data, unsigned how)
{
    size_t dlen = 0;
    const uint8_t *d = data ? dray_bytes_data(data, &dlen) : NULL;
    if (ctl_len > DRAY__WIRE_MAX_CTL)
        return dray_set_error(DRAY_ERANGE, "message control payload of %zu bytes exceeds %u",
                              ctl_len, DRAY__WIRE_MAX_CTL);
    dray__hdr h = {type, flags, (uint32_t)ctl_len, dlen, rid};
    dray_status lst = DRAY_OK;
    if ((how & SEND_ANY_ORDER) && c->lane && (lane_send(c, &h, ctl, d, how, &lst) || lst))
        return lst;
    pthread_mutex_lock(&c->lock);
    if (atomic_load(&c->closed)) {
        pthread_mutex_unlock(&c->lock);
        return dray_set_error(DRAY_ENET, "connection to %s is closed", c->peer);
    }
    bool copy = dlen < COPY_LIMIT;
    size_t need = c->olen + DRAY__WIRE_HDR + ctl_len + (copy ? dlen : 0);
    dray_status st = grow(&c->obuf, &c->ocap, need);
    if (!st && !copy && c->ext_n == c->ext_cap) {
        if (c->ext_head > 0) {
            memmove(c->ext, c->ext + c->ext_head, (c->ext_n - c->ext_head) * sizeof(out_ext));
            c->ext_n -= c->ext_head;
            c->ext_head = 0;
        } else {
            size_t cap = c->ext_cap ? 2 * c->ext_cap : 8;
            out_ext *x = realloc(c->ext, cap * sizeof(out_ext));
            if (!x)
                st = dray_set_error(DRAY_ENOMEM, "out of memory queueing object bytes");
            else {
                c->ext = x;
                c->ext_cap = cap;
            }
        }
    }
    if (st) {
        pthread_mutex_unlock(&c->lock);
        return st;
    }
    dray__wire_put_header(c->obuf + c->olen, &h);
    c->olen += DRAY__WIRE_HDR;
    if (ctl_len)
        memcpy(c->obuf + c->olen, ctl, ctl_len);
    c->olen += ctl_len;
    if (dlen && copy) {
        memcpy(c->obuf + c->olen, d, dlen);
        c->olen += dlen;
    } else if (dlen) {
        c->ext[c->ext_n++] = (out_ext){c->olen, dray_value_retain(data), 0};
    }
    dray__loop *l = c->loop;
    int64_t now = dray__now_ns();
    bool direct = current_loop != l && !c->pollout && c->olen == DRAY__WIRE_HDR + ctl_len +
                  (copy ? dlen : 0) && (now - c->last_send_ns > DIRECT_GAP_NS || (how & SEND_NOW));
    c->last_send_ns = now;
    if (how & SEND_HOLD) {
        pthread_mutex_unlock(&c->lock);
        return DRAY_OK;
    }
    /* A failed direct write is left to the loop, which closes the connection. */
    bool sent = direct && flush_locked(c) && c->olen == 0;
    pthread_mutex_unlock(&c->lock);
    if (!sent && current_loop != l && !atomic_exchange(&l->flush_pending, 1)) {
        uint64_t one = 1;
        ssize_t r = write(l->evfd, &one, sizeof one);
        (void)r;
    }
    return DRAY_OK;
}

dray_status dray__conn_send(dray__conn *c, uint8_t type, uint8_t flags, uint64_t rid,
                            const void *ctl, size_t ctl_len, const dray_value *data)
{
    return conn_send(c, type, flags, rid, ctl, ctl_len, data, 0);
}

dray_status dray__conn_send_held(dray__conn *c, uint8_t type, uint8_t flags, uint64_t rid,
                                 const void *ctl, size_t ctl_len, const dray_value *data)
{
    return conn_send(c, type, flags, rid, ctl, ctl_len, data, SEND_HOLD);
}

dray_status dray__conn_send_any_order(dray__conn *c, uint8_t type, uint8_t flags, uint64_t rid,
                                      const void *ctl, size_t ctl_len, const dray_value *data,
                                      bool hold)
{
    return conn_send(c, type, flags, rid, ctl, ctl_len, data,
                     SEND_ANY_ORDER | (hold ? SEND_HOLD : 0));
}

bool dray__conn_has_lane(const dray__conn *c) { return c->lane != NULL; }

void dray__conn_lane_counts(const dray__conn *c, uint64_t *sent, uint64_t *received)
{
    *sent = atomic_load_explicit(&c->lane_sent, memory_order_relaxed);
    *received = atomic_load_explicit(&c->lane_received, memory_order_relaxed);
}

void dray__conn_push(dray__conn *c)
{
    dray__loop *l = c->loop;
    if (current_loop == l)
        return; /* the loop flushes after its batch */
    pthread_mutex_lock(&c->lock);
    bool sent = atomic_load(&c->closed) || c->olen == 0 ||
                (!c->pollout && flush_locked(c) && c->olen == 0);
    pthread_mutex_unlock(&c->lock);
    if (!sent && !atomic_exchange(&l->flush_pending, 1)) {
        uint64_t one = 1;
        ssize_t r = write(l->evfd, &one, sizeof one);
        (void)r;
    }
}

static dray_status send_value(dray__conn *c, uint8_t type, uint8_t flags, uint64_t rid,
                              const dray_value *ctl, const dray_value *data, unsigned how)
{
    void *buf;
    size_t len;
    dray_status st = dray_value_encode(ctl, &buf, &len);
    if (st)
        return st;
    st = conn_send(c, type, flags, rid, buf, len, data, how);
    dray_free(buf);
    return st;
}

dray_status dray__conn_send_value(dray__conn *c, uint8_t type, uint8_t flags, uint64_t rid,
                                  const dray_value *ctl, const dray_value *data)
{
    return send_value(c, type, flags, rid, ctl, data, 0);
}

dray_status dray__conn_send_value_any_order(dray__conn *c, uint8_t type, uint8_t flags,
                                            uint64_t rid, const dray_value *ctl,
                                            const dray_value *data)
{
    return send_value(c, type, flags, rid, ctl, data, SEND_ANY_ORDER);
}

void dray__conn_close(dray__conn *c, const char *why)
{
    dray__loop *l = c->loop;
    /* Under the output lock: a sender on another thread never writes to a closed descriptor. */
    pthread_mutex_lock(&c->lock);
    bool was = atomic_exchange(&c->closed, true);
    if (!was) {
        update_events(c); /* closed: off the epoll set */
        shutdown(c->fd, SHUT_RDWR); /* the peer sees the end; a borrowing poller wakes */
        drop_output(c);
    }
    pthread_mutex_unlock(&c->lock);
    if (was)
        return;
    if (why)
        dray__log("closing connection %s (%s): %s", c->peer, c->role[0] ? c->role : "unauthenticated",
                  why);
    if (c->authed && l->ops.on_close)
        l->ops.on_close(l, c);
    pthread_mutex_lock(&l->lock);
    for (dray__conn **p = &l->conns; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    bool in_lanes = false;
    for (int i = 0; i < l->nlanes; i++)
        if (l->lanes[i] == c) {
            l->lanes[i] = l->lanes[--l->nlanes];
            in_lanes = true;
            break;
        }
    bool defer = l->in_batch;
    if (defer) {
        c->next_dead = l->dead;
        l->dead = c;
    }
    pthread_mutex_unlock(&l->lock);
    if (in_lanes)
        dray__conn_release(c);
    if (!defer)
        dray__conn_release(c);
}

/* Marks the start (true) or end (false) of a batch of events; at the end, drops the references of
 * connections closed meanwhile (see in_batch). */
static void batch_mark(dray__loop *l, bool start)
{
    pthread_mutex_lock(&l->lock);
    l->in_batch = start;
    dray__conn *dead = start ? NULL : l->dead;
    if (!start)
        l->dead = NULL;
    pthread_mutex_unlock(&l->lock);
    while (dead) {
        dray__conn *next = dead->next_dead;
        dray__conn_release(dead);
        dead = next;
    }
}

/* ==== Handshake ==== */

static const char AUTH_TAG[] = "dray-auth-1", OK_TAG[] = "dray-ok-1";

static void auth_mac(const uint8_t *secret, const uint8_t *snonce, const uint8_t *cnonce,
                     const char *role, uint8_t out[32])
{
    const void *parts[] = {AUTH_TAG, snonce, cnonce, role};
    size_t lens[] = {sizeof AUTH_TAG, DRAY__NONCE, DRAY__NONCE, strlen(role)};
    dray__hmac_sha256(secret, 32, parts, lens, 4, out);
}

static void ok_mac(const uint8_t *secret, const uint8_t *snonce, const uint8_t *cnonce,
                   uint8_t out[32])
{
    const void *parts[] = {OK_TAG, cnonce, snonce};
    size_t lens[] = {sizeof OK_TAG, DRAY__NONCE, DRAY__NONCE};
    dray__hmac_sha256(secret, 32, parts, lens, 3, out);
}

/* Server side: checks an AUTH message; sends AUTH_OK. */
static bool server_auth(dray__conn *c, const dray_value *ctl)
{
    dray__loop *l = c->loop;
    size_t n;
    const uint8_t *cnonce = dray_bytes_data(dray_list_get(ctl, 0), &n);
    const uint8_t *mac = dray_bytes_data(dray_list_get(ctl, 1), &n);
    const char *role = dray_string_cstr(dray_list_get(ctl, 2));
    if (strlen(role) >= sizeof c->role) {
        dray__conn_close(c, "refused: role name too long");
        return false;
    }
    uint8_t want[32];
    auth_mac(l->secret, c->nonce, cnonce, role, want);
    if (!dray__ct_equal(want, mac, 32)) {
        dray__log("refused peer %s (role '%s'): it does not know the cluster secret", c->peer,
                  role);
        dray__conn_close(c, NULL);
        return false;
    }
    uint8_t proof[32];
    ok_mac(l->secret, c->nonce, cnonce, proof);
    dray_value v;
    if (dray_bytes_create(proof, 32, &v))
        return false;
    snprintf(c->role, sizeof c->role, "%s", role);
    c->authed = true;
    dray__conn_send_value(c, DRAY__MSG_AUTH_OK, 0, 0, &v, NULL);
    dray_value_release(&v);
    if (l->ops.on_open)
        l->ops.on_open(l, c);
    return true;
}

/* ==== Lanes ==== */

/* Acceptor side: a peer asks to use the lane `name` (a LANE message). Answers LANE_REPLY. */
static void lane_accept(dray__conn *c, const dray_value *name)
{
    dray__loop *l = c->loop;
    dray__lane *lane = NULL;
    dray_status st;
    if (!l->accept_lanes)
        st = dray_set_error(DRAY_EUNSUPPORTED, "this process takes no lanes");
    else if (c->lane || !c->server_side)
        st = dray_set_error(DRAY_EINVAL, "a lane is offered once, by the side that dialed");
    else
        st = dray__lane_open(dray_string_cstr(name), &lane);
    if (!st) {
        pthread_mutex_lock(&l->lock);
        if (l->nlanes < MAX_LANES) {
            pthread_mutex_lock(&c->lock); /* senders on other threads read c->lane under it */
            c->lane = lane;
            pthread_mutex_unlock(&c->lock);
            l->lanes[l->nlanes++] = dray__conn_retain(c);
        } else {
            st = dray_set_error(DRAY_ERANGE, "already %d lanes", MAX_LANES);
        }
        pthread_mutex_unlock(&l->lock);
    }
    if (st)
        dray__lane_free(lane);
    dray_value items[2] = {dray_bool(!st), dray_null()}, reply;
    if (dray_string_create(st ? dray_last_error() : "", &items[1]) == DRAY_OK &&
        dray_list_create(items, 2, &reply) == DRAY_OK) {
        dray__conn_send_value(c, DRAY__MSG_LANE_REPLY, 0, 0, &reply, NULL);
        dray_value_release(&reply);
    }
    dray_value_release(&items[1]);
}

static void deliver(dray__conn *c, const dray__hdr *h, const uint8_t *ctl, dray_value *data);
static dray_status data_value(const dray__hdr *h, const uint8_t *p, dray_value *out);

dray_status dray__lane_record(const uint8_t *rec, size_t len, dray__hdr *h, dray_value *data)
{
    dray_status st = dray__wire_parse_header(rec, len, (uint32_t)len, len, h);
    if (st)
        return st;
    if (DRAY__WIRE_HDR + (uint64_t)h->ctl_len + h->data_len != len)
        return dray_set_error(DRAY_EFORMAT, "lane record of %zu bytes holds a message of %llu",
                              len, (unsigned long long)(DRAY__WIRE_HDR + (uint64_t)h->ctl_len +
                                                        h->data_len));
    return data_value(h, rec + DRAY__WIRE_HDR + h->ctl_len, data);
}

/* Delivers up to max records waiting in c's lane (the caller holds c->in_lock): how many, or -1
 * once the connection closed. Each record is copied out of the ring first, so a peer writing into
 * it meanwhile cannot change what is checked. */
static int lane_drain(dray__conn *c, int max)
{
    int n = 0;
    while (n < max && !atomic_load(&c->closed)) {
        const uint8_t *rec;
        long len = dray__lane_peek(c->lane, &rec);
        if (len == 0)
            break;
        if (len < 0 || grow(&c->lbuf, &c->lcap, (size_t)len)) {
            dray__conn_close(c, len < 0 ? "lane: corrupt ring" : "out of memory reading a lane");
            return -1;
        }
        memcpy(c->lbuf, rec, (size_t)len);
        dray__lane_consume(c->lane);
        dray__hdr h;
        dray_value data;
        if (dray__lane_record(c->lbuf, (size_t)len, &h, &data)) {
            dray__conn_close(c, dray_last_error());
            return -1;
        }
        atomic_fetch_add_explicit(&c->lane_received, 1, memory_order_relaxed);
        c->more_input = dray__lane_pending(c->lane);
        deliver(c, &h, c->lbuf + DRAY__WIRE_HDR, &data);
        dray_value_release(&data);
        n++;
    }
    c->more_input = false;
    return atomic_load(&c->closed) ? -1 : n;
}

/* Closes c after delivering what its lane still holds (the peer may have written results just
 * before it went away). Caller holds c->in_lock. */
static void close_drained(dray__conn *c, const char *why)
{
    if (c->lane && !atomic_load(&c->closed) && lane_drain(c, INT32_MAX) < 0)
        return;
    dray__conn_close(c, why);
}

/* The loop's lanes, retained (the caller releases them with lanes_release). */
static int lanes_snapshot(dray__loop *l, dray__conn **out)
{
    pthread_mutex_lock(&l->lock);
    int n = l->nlanes;
    for (int i = 0; i < n; i++)
        out[i] = dray__conn_retain(l->lanes[i]);
    pthread_mutex_unlock(&l->lock);
    return n;
}

static void lanes_release(dray__conn **lanes, int n)
{
    for (int i = 0; i < n; i++)
        dray__conn_release(lanes[i]);
}

/* Before the loop blocks: marks its lanes asleep (a writer then rings the doorbell); false when a
 * record is already waiting. Lanes a waiting thread reads are skipped (it marks them itself). */
static bool lanes_sleep(dray__conn **lanes, int n)
{
    bool ok = true;
    for (int i = 0; i < n; i++) {
        dray__conn *c = lanes[i];
        if (pthread_mutex_trylock(&c->in_lock))
            continue;
        if (!atomic_load(&c->closed) && !dray__lane_sleep(c->lane))
            ok = false;
        pthread_mutex_unlock(&c->in_lock);
    }
    return ok;
}

/* Reads what the lanes hold: true when a record was delivered. */
static bool lanes_drain(dray__conn **lanes, int n)
{
    bool got = false;
    for (int i = 0; i < n; i++) {
        dray__conn *c = lanes[i];
        if (pthread_mutex_trylock(&c->in_lock))
            continue;
        dray__lane_awake(c->lane);
        if (!atomic_load(&c->closed))
            got |= lane_drain(c, 256) > 0;
        pthread_mutex_unlock(&c->in_lock);
    }
    return got;
}

static bool lanes_pending(dray__conn **lanes, int n)
{
    for (int i = 0; i < n; i++)
        if (dray__lane_pending(lanes[i]->lane))
            return true;
    return false;
}

void dray__loop_accept_lanes(dray__loop *l, int64_t spin_ns, bool (*may_spin)(dray__loop *l))
{
    l->may_spin = may_spin;
    l->accept_lanes = true;
    l->lane_spin_ns = spin_ns;
    dray__spin_gate_init(&l->gate);
    const char *gate = getenv("DRAY_CLUSTER_SPIN_LOAD_GATE");
    l->gate_off = gate && !strcmp(gate, "0");
}

/* ==== Reading ==== */

static void deliver(dray__conn *c, const dray__hdr *h, const uint8_t *ctl, dray_value *data)
{
    dray_value v;
    c->delivered++;
    if (dray__wire_decode_ctl(h, ctl, &v)) {
        dray__conn_close(c, dray_last_error());
        return;
    }
    if (!c->authed) {
        if (h->type != DRAY__MSG_AUTH || !c->server_side)
            dray__conn_close(c, "refused: first message is not AUTH");
        else
            server_auth(c, &v);
        dray_value_release(&v);
        return;
    }
    if (h->type == DRAY__MSG_AUTH || h->type == DRAY__MSG_CHALLENGE || h->type == DRAY__MSG_AUTH_OK) {
        dray__conn_close(c, "handshake message after the handshake");
    } else if (h->type == DRAY__MSG_LANE) {
        lane_accept(c, &v);
    } else if (h->type == DRAY__MSG_WAKE || h->type == DRAY__MSG_LANE_REPLY) {
        /* WAKE only wakes the reader, which then drains the lane; a stray reply is ignored */
    } else if (c->loop->ops.on_message) {
        c->loop->ops.on_message(c->loop, c, h, &v, data);
    }
    dray_value_release(&v);
}

/* Builds the data value of a message held in memory. */
static dray_status data_value(const dray__hdr *h, const uint8_t *p, dray_value *out)
{
    if (!h->data_len) {
        *out = dray_null();
        return DRAY_OK;
    }
    if (h->flags & DRAY__RF_ENCODED)
        return dray_value_decode(p, h->data_len, out);
    return dray_bytes_create(p, h->data_len, out);
}

/* Parses complete messages out of the input buffer. False once the connection closed. */
static bool process_input(dray__conn *c)
{
    while (!atomic_load(&c->closed)) {
        size_t avail = c->ilen - c->ipos;
        const uint8_t *p = c->ibuf + c->ipos;
        if (!c->have_hdr) {
            if (avail < DRAY__WIRE_HDR)
                break;
            uint32_t max_ctl = c->authed ? DRAY__WIRE_MAX_CTL : DRAY__WIRE_MAX_CTL_PREAUTH;
            uint64_t max_data = c->authed ? DRAY__WIRE_MAX_DATA : 0;
            if (dray__wire_parse_header(p, avail, max_ctl, max_data, &c->cur)) {
                dray__conn_close(c, dray_last_error());
                return false;
            }
            c->have_hdr = true;
        }
        size_t head = DRAY__WIRE_HDR + c->cur.ctl_len;
        if (c->cur.data_len >= BIG_DATA) {
            if (avail < head) {
                if (grow(&c->ibuf, &c->icap, c->ipos + head))
                    goto oom;
                break;
            }
            /* Large object bytes: keep the control payload, read the rest into its value. */
            c->big_ctl = malloc(c->cur.ctl_len ? c->cur.ctl_len : 1);
            void *dst;
            if (!c->big_ctl || dray_bytes_create_uninit(c->cur.data_len, &c->big, &dst))
                goto oom;
            memcpy(c->big_ctl, p + DRAY__WIRE_HDR, c->cur.ctl_len);
            c->big_ptr = dst;
            size_t take = avail - head < c->cur.data_len ? avail - head : c->cur.data_len;
            memcpy(c->big_ptr, p + head, take);
            c->big_got = take;
            c->ipos += head + take;
            c->have_hdr = false;
            return true;
        }
        size_t need = head + c->cur.data_len;
        if (avail < need) {
            if (grow(&c->ibuf, &c->icap, c->ipos + need))
                goto oom;
            break;
        }
        dray_value data;
        if (data_value(&c->cur, p + head, &data)) {
            dray__conn_close(c, dray_last_error());
            return false;
        }
        c->ipos += need;
        c->have_hdr = false;
        c->more_input = c->ipos < c->ilen;
        dray__hdr h = c->cur;
        deliver(c, &h, p + DRAY__WIRE_HDR, &data);
        dray_value_release(&data);
    }
    return !atomic_load(&c->closed);
oom:
    dray__conn_close(c, "out of memory reading a message");
    return false;
}

static void finish_big(dray__conn *c)
{
    dray__hdr h = c->cur;
    dray_value data = c->big;
    c->big = dray_null();
    uint8_t *ctl = c->big_ctl;
    c->big_ctl = NULL;
    c->big_ptr = NULL;
    if (h.flags & DRAY__RF_ENCODED) {
        size_t len;
        const void *d = dray_bytes_data(&data, &len);
        dray_value v;
        dray_status st = dray_value_decode(d, len, &v);
        dray_value_release(&data);
        if (st) {
            free(ctl);
            dray__conn_close(c, dray_last_error());
            return;
        }
        data = v;
    }
    deliver(c, &h, ctl, &data);
    dray_value_release(&data);
    free(ctl);
}

/* One read from the socket and the handling of what it completes. Returns 1 after reading (or an
 * interrupted call), 0 when nothing was there, -1 once the connection closed. The caller holds
 * c->in_lock. */
static int read_once(dray__conn *c)
{
    ssize_t r;
    if (c->big_ptr) {
        r = recv(c->fd, c->big_ptr + c->big_got, c->cur.data_len - c->big_got, MSG_DONTWAIT);
    } else {
        if (c->ipos == c->ilen)
            c->ipos = c->ilen = 0;
        else if (c->ipos > 0 && c->icap - c->ilen < READ_CHUNK / 4) {
            memmove(c->ibuf, c->ibuf + c->ipos, c->ilen - c->ipos);
            c->ilen -= c->ipos;
            c->ipos = 0;
        }
        if (grow(&c->ibuf, &c->icap, c->ilen + READ_CHUNK)) {
            dray__conn_close(c, "out of memory reading");
            return -1;
        }
        r = recv(c->fd, c->ibuf + c->ilen, c->icap - c->ilen, MSG_DONTWAIT);
    }
    if (r == 0) {
        close_drained(c, "peer closed the connection");
        return -1;
    }
    if (r < 0) {
        if (errno == EINTR)
            return 1;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        close_drained(c, strerror(errno));
        return -1;
    }
    if (c->big_ptr) {
        c->big_got += (size_t)r;
        if (c->big_got == c->cur.data_len)
            finish_big(c);
        return atomic_load(&c->closed) ? -1 : 1;
    }
    c->ilen += (size_t)r;
    return process_input(c) ? 1 : -1;
}

static void on_readable(dray__conn *c)
{
    /* Borrowed by a waiting thread: it reads; the connection is back on the epoll set after. */
    if (pthread_mutex_trylock(&c->in_lock))
        return;
    for (int rounds = 0; rounds < 16 && !atomic_load(&c->closed); rounds++)
        if (read_once(c) <= 0)
            break;
    pthread_mutex_unlock(&c->in_lock);
}

bool dray__conn_borrow(dray__conn *c)
{
    if (atomic_load(&c->closed) || pthread_mutex_trylock(&c->in_lock))
        return false;
    pthread_mutex_lock(&c->lock);
    bool ok = !atomic_load(&c->closed) && c->authed;
    if (ok) {
        c->borrowed = true;
        update_events(c);
    }
    pthread_mutex_unlock(&c->lock);
    if (ok && c->lane) /* read from now on: the peer may write to the lane again */
        dray__lane_awake(c->lane);
    if (!ok)
        pthread_mutex_unlock(&c->in_lock);
    return ok;
}

void dray__conn_unborrow(dray__conn *c)
{
    pthread_mutex_lock(&c->lock);
    c->borrowed = false;
    update_events(c); /* level-triggered: input that came meanwhile is reported to the loop */
    pthread_mutex_unlock(&c->lock);
    /* The lane goes back to the loop, which may be asleep: from now on writers wake it, and
     * records that came meanwhile are reported to it. */
    bool poke = c->lane && !atomic_load(&c->closed) && !dray__lane_sleep(c->lane);
    pthread_mutex_unlock(&c->in_lock);
    if (poke) {
        uint64_t one = 1;
        ssize_t r = write(c->loop->evfd, &one, sizeof one);
        (void)r;
    }
}

int dray__conn_pump(dray__conn *c, int64_t spin_until_ns, int64_t deadline_ns)
{
    uint64_t before = c->delivered;
    int64_t yielded = dray__now_ns();
    for (unsigned k = 0;; k++) {
        if (atomic_load(&c->closed))
            return -1;
        if (c->lane && lane_drain(c, 64) < 0)
            return -1;
        if (c->delivered != before)
            return 1;
        int64_t now = dray__now_ns();
        bool spin = now < spin_until_ns;
        /* With a lane the socket only carries the rest: while spinning it is read now and then */
        if (!c->lane || !spin || k % 64 == 0) {
            int r = read_once(c);
            if (r < 0)
                return -1;
            if (c->delivered != before)
                return 1;
            if (r > 0)
                continue;
        }
        if (spin) {
            if (now - yielded > SPIN_YIELD_NS) {
                sched_yield();
                yielded = now;
            } else {
                __builtin_ia32_pause();
            }
            continue;
        }
        if (now >= deadline_ns)
            return 0;
        if (c->lane && !dray__lane_sleep(c->lane))
            continue;
        struct pollfd pfd = {c->fd, POLLIN, 0};
        struct timespec ts = {(deadline_ns - now) / 1000000000, (deadline_ns - now) % 1000000000};
        int woke = ppoll(&pfd, 1, &ts, NULL);
        if (c->lane)
            dray__lane_awake(c->lane);
        if (woke == 0)
            return 0;
    }
}

/* ==== The loop ==== */

static dray__conn *conn_new(dray__loop *l, int fd, bool server_side, const char *peer)
{
    dray__conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    atomic_init(&c->refs, 1);
    c->loop = l;
    c->fd = fd;
    c->server_side = server_side;
    c->created_ns = dray__now_ns();
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->in_lock, NULL);
    return c;
}

static void peer_name(const struct sockaddr_in *a, char *out, size_t n)
{
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    snprintf(out, n, "%s:%d", ip, ntohs(a->sin_port));
}

static void conn_attach(dray__loop *l, dray__conn *c)
{
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    pthread_mutex_lock(&l->lock);
    c->next = l->conns;
    l->conns = c;
    pthread_mutex_unlock(&l->lock);
    pthread_mutex_lock(&c->lock);
    update_events(c);
    pthread_mutex_unlock(&c->lock);
}

static void on_accept(dray__loop *l)
{
    for (;;) {
        struct sockaddr_in a;
        socklen_t al = sizeof a;
        int fd = accept4(l->lfd, (struct sockaddr *)&a, &al, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        char peer[64];
        peer_name(&a, peer, sizeof peer);
        dray__conn *c = conn_new(l, fd, true, peer);
        dray_value v;
        if (!c || dray__random_bytes(c->nonce, DRAY__NONCE) ||
            dray_bytes_create(c->nonce, DRAY__NONCE, &v)) {
            if (c)
                dray__conn_release(c); /* closes fd */
            else
                close(fd);
            continue;
        }
        conn_attach(l, c);
        dray__conn_send_value(c, DRAY__MSG_CHALLENGE, 0, 0, &v, NULL);
        dray_value_release(&v);
    }
}

static void flush_all(dray__loop *l)
{
    pthread_mutex_lock(&l->lock);
    size_t n = 0;
    for (dray__conn *c = l->conns; c; c = c->next)
        n++;
    dray__conn **list = n ? malloc(n * sizeof(*list)) : NULL;
    n = 0;
    if (list)
        for (dray__conn *c = l->conns; c; c = c->next)
            list[n++] = dray__conn_retain(c);
    pthread_mutex_unlock(&l->lock);
    for (size_t i = 0; i < n; i++) {
        dray__conn *c = list[i];
        pthread_mutex_lock(&c->lock);
        bool ok = atomic_load(&c->closed) || c->pollout || flush_locked(c);
        pthread_mutex_unlock(&c->lock);
        if (!ok)
            dray__conn_close(c, strerror(errno));
        dray__conn_release(c);
    }
    free(list);
}

static void tick(dray__loop *l)
{
    int64_t now = dray__now_ns();
    /* Peers that never authenticate are dropped. */
    pthread_mutex_lock(&l->lock);
    dray__conn *stale = NULL;
    for (dray__conn *c = l->conns; c; c = c->next)
        if (!c->authed && now - c->created_ns > AUTH_TIMEOUT_NS) {
            stale = dray__conn_retain(c);
            break;
        }
    pthread_mutex_unlock(&l->lock);
    if (stale) {
        dray__conn_close(stale, "refused: no authentication within 5 s");
        dray__conn_release(stale);
    }
    if (l->lane_spin_ns)
        dray__spin_gate_sample(&l->gate, 1);
    if (l->ops.on_tick)
        l->ops.on_tick(l);
}

void dray__loop_run(dray__loop *l, bool handle_signals)
{
    current_loop = l;
    if (handle_signals) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        l->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->sigfd};
        epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->sigfd, &ev);
    }
    l->next_tick = dray__now_ns() + TICK_NS;
    struct epoll_event evs[64];
    int64_t spin_until = 0;
    dray__conn *lanes[MAX_LANES];
    while (!atomic_load(&l->stop)) {
        int64_t now = dray__now_ns(), wait_ms = (l->next_tick - now) / 1000000;
        /* Busy-poll a little after activity: a reply that comes within spin_ns is read without
         * the thread going to sleep and being woken (the round-trip latency path). */
        bool spinning = now < spin_until;
        /* Lanes are watched without sleeping for lane_spin_ns after their last record: the next
         * task of a driver waiting on the last one's result comes without a doorbell. */
        int nl = lanes_snapshot(l, lanes);
        bool lane_hot = nl && now - l->last_lane_ns < l->lane_spin_ns &&
                        atomic_load_explicit(&l->lane_peer_awake, memory_order_relaxed) &&
                        (l->gate_off || dray__spin_gate_ok(&l->gate, true)) &&
                        (!l->may_spin || l->may_spin(l));
        int timeout = spinning || lane_hot || wait_ms < 0 ? 0 : (int)wait_ms + 1;
        if (timeout && nl && !lanes_sleep(lanes, nl))
            timeout = 0;
        batch_mark(l, true);
        int n = epoll_wait(l->epfd, evs, 64, timeout);
        if (n > 0 && l->spin_ns)
            spin_until = dray__now_ns() + l->spin_ns;
        if (n == 0 && spinning && !nl && !atomic_load(&l->flush_pending)) {
            __builtin_ia32_pause();
            continue;
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &l->lfd) {
                on_accept(l);
            } else if (p == &l->evfd) {
                uint64_t v;
                ssize_t r = read(l->evfd, &v, sizeof v);
                (void)r;
            } else if (p == &l->sigfd) {
                struct signalfd_siginfo si;
                ssize_t r = read(l->sigfd, &si, sizeof si);
                (void)r;
                dray__log("signal %u: stopping", si.ssi_signo);
                atomic_store(&l->stop, 1);
            } else {
                dray__conn *c = dray__conn_retain(p);
                /* A task that came on the socket of a lane's connection (its reader was asleep)
                 * warms the lane too: the next one is looked for in the ring. */
                if (c->lane)
                    l->last_lane_ns = dray__now_ns();
                if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !atomic_load(&c->closed))
                    on_readable(c);
                if ((evs[i].events & EPOLLOUT) && !atomic_load(&c->closed)) {
                    /* flush_locked drops EPOLLOUT once everything is written (resetting
                     * pollout first would leave it registered: a busy loop) */
                    pthread_mutex_lock(&c->lock);
                    bool ok = flush_locked(c);
                    pthread_mutex_unlock(&c->lock);
                    if (!ok)
                        dray__conn_close(c, strerror(errno));
                }
                dray__conn_release(c);
            }
        }
        batch_mark(l, false);
        if (nl && lanes_drain(lanes, nl)) {
            l->last_lane_ns = dray__now_ns();
        } else if (n == 0 && lane_hot) {
            /* nothing yet: watch the rings a little (no system call), then look at the sockets */
            int64_t until = dray__now_ns() + SPIN_YIELD_NS;
            while (!lanes_pending(lanes, nl) && !atomic_load(&l->flush_pending) &&
                   dray__now_ns() < until)
                __builtin_ia32_pause();
            if (!lanes_pending(lanes, nl))
                sched_yield();
        }
        lanes_release(lanes, nl);
        atomic_store(&l->flush_pending, 0);
        flush_all(l);
        if (dray__now_ns() >= l->next_tick) {
            tick(l);
            l->next_tick = dray__now_ns() + TICK_NS;
        }
    }
    batch_mark(l, false);
    flush_all(l);
}

static void *loop_thread(void *arg)
{
    dray__loop_run(arg, false);
    return NULL;
}

dray_status dray__loop_create(const dray__loop_ops *ops, void *user, const uint8_t *secret,
                              const char *bind_host, int port, dray__loop **out)
{
    dray__loop *l = calloc(1, sizeof(*l));
    if (!l)
        return dray_set_error(DRAY_ENOMEM, "out of memory creating an event loop");
    dray_status st = DRAY_EIO;
    l->ops = *ops;
    l->user = user;
    memcpy(l->secret, secret, 32);
    l->lfd = l->sigfd = -1;
    const char *spin = getenv("DRAY_BUSY_POLL_US");
    l->spin_ns = (spin ? atoll(spin) : 0) * 1000;
    if (l->spin_ns < 0 || l->spin_ns > 10000000)
        l->spin_ns = 0;
    void *wake;
    dray_value nul = dray_null();
    if (dray_value_encode(&nul, &wake, &l->wake_len) == DRAY_OK) {
        if (l->wake_len <= sizeof l->wake_ctl)
            memcpy(l->wake_ctl, wake, l->wake_len);
        dray_free(wake);
    }
    pthread_mutex_init(&l->lock, NULL);
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->epfd < 0 || l->evfd < 0) {
        st = dray_set_error(DRAY_EIO, "epoll/eventfd: %s", strerror(errno));
        goto out_close;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->evfd};
    epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev);
    if (bind_host) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        if (inet_pton(AF_INET, bind_host, &a.sin_addr) != 1) {
            st = dray_set_error(DRAY_EINVAL, "bind address '%s' is not an IPv4 address", bind_host);
            goto out_close;
        }
        l->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int one = 1;
        setsockopt(l->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (l->lfd < 0 || bind(l->lfd, (struct sockaddr *)&a, sizeof a) || listen(l->lfd, 128)) {
            st = dray_set_error(DRAY_ENET, "cannot listen on %s:%d: %s", bind_host, port,
                                strerror(errno));
            goto out_close;
        }
        socklen_t al = sizeof a;
        getsockname(l->lfd, (struct sockaddr *)&a, &al);
        l->port = ntohs(a.sin_port);
        ev.data.ptr = &l->lfd;
        epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->lfd, &ev);
    }
    *out = l;
    return DRAY_OK;
out_close:
    if (l->lfd >= 0)
        close(l->lfd);
    if (l->evfd >= 0)
        close(l->evfd);
    if (l->epfd >= 0)
        close(l->epfd);
    pthread_mutex_destroy(&l->lock);
    free(l);
    return st;
}

dray_status dray__loop_start(dray__loop *l)
{
    int err = pthread_create(&l->thread, NULL, loop_thread, l);
    if (err)
        return dray_set_error(DRAY_ENOMEM, "cannot start the event loop thread: %s", strerror(err));
    l->threaded = true;
    return DRAY_OK;
}

void dray__loop_stop(dray__loop *l)
{
    atomic_store(&l->stop, 1);
    uint64_t one = 1;
    ssize_t r = write(l->evfd, &one, sizeof one);
    (void)r;
    if (l->threaded && !pthread_equal(pthread_self(), l->thread)) {
        pthread_join(l->thread, NULL);
        l->threaded = false;
    }
}

void dray__loop_destroy(dray__loop *l)
{
    if (!l)
        return;
    dray__loop_stop(l);
    current_loop = l; /* closing runs callbacks as if on the loop */
    for (;;) {
        pthread_mutex_lock(&l->lock);
        dray__conn *c = l->conns ? dray__conn_retain(l->conns) : NULL;
        pthread_mutex_unlock(&l->lock);
        if (!c)
            break;
        dray__conn_close(c, NULL);
        dray__conn_release(c);
    }
    current_loop = NULL;
    if (l->lfd >= 0)
        close(l->lfd);
    if (l->sigfd >= 0)
        close(l->sigfd);
    close(l->evfd);
    close(l->epfd);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

void *dray__loop_user(dray__loop *l) { return l->user; }
int dray__loop_port(dray__loop *l) { return l->port; }
bool dray__loop_on_thread(dray__loop *l) { return current_loop == l; }

/* ==== Blocking client side ==== */

dray_status dray__read_full(int fd, void *buf, size_t n, const char *addr)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t r = recv(fd, p, n, 0);
        if (r == 0)
            return dray_set_error(DRAY_ENET, "%s closed the connection (wrong cluster secret?)",
                                  addr);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return dray_set_error(errno == EAGAIN ? DRAY_ETIMEDOUT : DRAY_ENET, "reading from %s: %s",
                                  addr, errno == EAGAIN ? "timed out" : strerror(errno));
        }
        p += r;
        n -= (size_t)r;
    }
    return DRAY_OK;
}

/* Reads one message (no data section allowed) on a blocking socket. */
static dray_status read_message_d(int fd, const char *addr, uint32_t max_ctl, uint64_t max_data,
                                  dray__hdr *h, dray_value *out)
{
    uint8_t hdr[DRAY__WIRE_HDR];
    dray_status st = dray__read_full(fd, hdr, sizeof hdr, addr);
    if (st || (st = dray__wire_parse_header(hdr, sizeof hdr, max_ctl, max_data, h)))
        return st;
    uint8_t *ctl = malloc(h->ctl_len ? h->ctl_len : 1);
    if (!ctl)
        return dray_set_error(DRAY_ENOMEM, "out of memory reading from %s", addr);
    if (!(st = dray__read_full(fd, ctl, h->ctl_len, addr)))
        st = dray__wire_decode_ctl(h, ctl, out);
    free(ctl);
    return st;
}

static dray_status read_message(int fd, const char *addr, uint32_t max_ctl, dray__hdr *h,
                                dray_value *out)
{
    return read_message_d(fd, addr, max_ctl, 0, h, out);
}

dray_status dray__blocking_recv(int fd, const char *addr, dray__hdr *h, dray_value *ctl)
{
    return read_message_d(fd, addr, DRAY__WIRE_MAX_CTL, DRAY__WIRE_MAX_DATA, h, ctl);
}

static dray_status write_message_rid(int fd, uint8_t type, uint64_t rid, const dray_value *ctl,
                                     const char *addr);

static dray_status write_message(int fd, uint8_t type, const dray_value *ctl, const char *addr)
{
    return write_message_rid(fd, type, 0, ctl, addr);
}

dray_status dray__blocking_send(int fd, const char *addr, uint8_t type, uint64_t rid,
                                const dray_value *ctl)
{
    return write_message_rid(fd, type, rid, ctl, addr);
}

static dray_status write_message_rid(int fd, uint8_t type, uint64_t rid, const dray_value *ctl,
                                     const char *addr)
{
    void *buf;
    size_t len;
    dray_status st = dray_value_encode(ctl, &buf, &len);
    if (st)
        return st;
    uint8_t *msg = malloc(DRAY__WIRE_HDR + len);
    if (!msg) {
        dray_free(buf);
        return dray_set_error(DRAY_ENOMEM, "out of memory");
    }
    dray__hdr h = {type, 0, (uint32_t)len, 0, rid};
    dray__wire_put_header(msg, &h);
    memcpy(msg + DRAY__WIRE_HDR, buf, len);
    dray_free(buf);
    size_t n = DRAY__WIRE_HDR + len, off = 0;
    while (off < n) {
        ssize_t w = send(fd, msg + off, n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            free(msg);
            return dray_set_error(DRAY_ENET, "writing to %s: %s", addr, strerror(errno));
        }
        off += (size_t)w;
    }
    free(msg);
    return DRAY_OK;
}

/* Connects with a deadline and runs the client handshake; returns the blocking fd. */
static dray_status connect_auth(const char *address, const uint8_t *secret, const char *role,
                                int timeout_ms, int *out)
{
    char host[256];
    int port;
    dray_status st = dray__parse_address(address, host, sizeof host, &port);
    if (st)
        return st;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, NULL, &hints, &ai) || !ai)
        return dray_set_error(DRAY_ENET, "cannot resolve host '%s' of address '%s'", host, address);
    struct sockaddr_in a = *(struct sockaddr_in *)ai->ai_addr;
    freeaddrinfo(ai);
    a.sin_port = htons((uint16_t)port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return dray_set_error(DRAY_ENET, "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&a, sizeof a) && errno != EINPROGRESS) {
        st = dray_set_error(DRAY_ENET, "cannot connect to %s: %s", address, strerror(errno));
        goto out_close;
    }
    struct pollfd pfd = {fd, POLLOUT, 0};
    int err = 0;
    socklen_t el = sizeof err;
    if (poll(&pfd, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
        st = dray_set_error(DRAY_ENET, "cannot connect to %s: %s", address,
                            err ? strerror(err) : "timed out");
        goto out_close;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    dray__hdr h;
    dray_value chal = dray_null(), auth = dray_null(), ok = dray_null();
    if ((st = read_message(fd, address, DRAY__WIRE_MAX_CTL_PREAUTH, &h, &chal)))
        goto out_close;
    if (h.type != DRAY__MSG_CHALLENGE) {
        st = dray_set_error(DRAY_EFORMAT, "%s: expected a CHALLENGE message", address);
        goto out_release;
    }
    size_t n;
    const uint8_t *snonce = dray_bytes_data(&chal, &n);
    uint8_t cnonce[DRAY__NONCE], mac[32];
    if ((st = dray__random_bytes(cnonce, sizeof cnonce)))
        goto out_release;
    auth_mac(secret, snonce, cnonce, role, mac);
    dray_value items[3] = {dray_null(), dray_null(), dray_null()};
    if (!(st = dray_bytes_create(cnonce, sizeof cnonce, &items[0])) &&
        !(st = dray_bytes_create(mac, sizeof mac, &items[1])) &&
        !(st = dray_string_create(role, &items[2])))
        st = dray_list_create(items, 3, &auth);
    for (int i = 0; i < 3; i++)
        dray_value_release(&items[i]);
    if (st || (st = write_message(fd, DRAY__MSG_AUTH, &auth, address)))
        goto out_release;
    if ((st = read_message(fd, address, DRAY__WIRE_MAX_CTL_PREAUTH, &h, &ok)))
        goto out_release;
    uint8_t want[32];
    ok_mac(secret, snonce, cnonce, want);
    if (h.type != DRAY__MSG_AUTH_OK || !dray__ct_equal(dray_bytes_data(&ok, &n), want, 32)) {
        st = dray_set_error(DRAY_ENET, "%s failed to prove it knows the cluster secret", address);
        goto out_release;
    }
    dray_value_release(&chal);
    dray_value_release(&auth);
    dray_value_release(&ok);
    *out = fd;
    return DRAY_OK;
out_release:
    dray_value_release(&chal);
    dray_value_release(&auth);
    dray_value_release(&ok);
out_close:
    close(fd);
    return st;
}

dray_status dray__dial_blocking(const char *address, const uint8_t *secret, const char *role,
                                int timeout_ms, int *fd)
{
    dray_status st = connect_auth(address, secret, role, timeout_ms, fd);
    if (!st) {
        int one = 1;
        setsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return st;
}

/* Dialer side of a lane, on the blocking socket right after the handshake: makes a segment and asks
 * the peer to map it. *out stays NULL when the peer declines (another machine, another user, a head);
 * an error only when the connection itself failed. */
static dray_status lane_offer(int fd, const char *address, dray__lane **out)
{
    *out = NULL;
    dray__lane *lane;
    if (dray__lane_create(&lane)) {
        dray__log("no lane to %s: %s", address, dray_last_error());
        return DRAY_OK;
    }
    dray_value name = dray_null(), reply = dray_null();
    dray__hdr h;
    dray_status st = dray_string_create(dray__lane_name(lane), &name);
    if (!st)
        st = write_message(fd, DRAY__MSG_LANE, &name, address);
    if (!st)
        st = read_message(fd, address, DRAY__WIRE_MAX_CTL_PREAUTH, &h, &reply);
    dray__lane_unlink(lane);
    if (!st && h.type != DRAY__MSG_LANE_REPLY)
        st = dray_set_error(DRAY_EFORMAT, "%s: expected a LANE_REPLY message", address);
    if (!st && dray_list_get(&reply, 0)->u.b) {
        *out = lane;
        lane = NULL;
    }
    dray__lane_free(lane);
    dray_value_release(&name);
    dray_value_release(&reply);
    return st;
}

dray_status dray__loop_dial(dray__loop *l, const char *address, const char *role, int timeout_ms,
                            dray__conn **out)
{
    return dray__loop_dial_lane(l, address, role, timeout_ms, false, out);
}

dray_status dray__loop_dial_lane(dray__loop *l, const char *address, const char *role,
                                 int timeout_ms, bool lane, dray__conn **out)
{
    int fd;
    dray_status st = connect_auth(address, l->secret, role, timeout_ms, &fd);
    if (st)
        return st;
    dray__lane *ln = NULL;
    if (lane && (st = lane_offer(fd, address, &ln))) {
        close(fd);
        return st;
    }
    struct timeval tv = {0, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    dray__conn *c = conn_new(l, fd, false, address);
    if (!c) {
        close(fd);
        dray__lane_free(ln);
        return dray_set_error(DRAY_ENOMEM, "out of memory");
    }
    c->authed = true;
    snprintf(c->role, sizeof c->role, "%s", role);
    if (ln) {
        pthread_mutex_lock(&l->lock);
        if (l->nlanes < MAX_LANES) {
            c->lane = ln;
            l->lanes[l->nlanes++] = dray__conn_retain(c);
        }
        pthread_mutex_unlock(&l->lock);
        if (!c->lane)
            dray__lane_free(ln);
    }
    conn_attach(l, c);
    *out = c;
    return DRAY_OK;
}

dray_status dray__request(const char *address, const uint8_t *secret, uint8_t type,
                          const dray_value *ctl, int timeout_ms, dray_value *reply)
{
    int fd;
    dray_status st = connect_auth(address, secret, "client", timeout_ms, &fd);
    if (st)
        return st;
    dray__hdr h;
    if (!(st = write_message(fd, type, ctl, address)))
        st = read_message(fd, address, DRAY__WIRE_MAX_CTL, &h, reply);
    close(fd);
    return st;
}
