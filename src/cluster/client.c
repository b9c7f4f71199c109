/* The driver side: dray_init with an address attaches the runtime to a cluster. Each task becomes a
 * pending cell whose function is sent to the least loaded worker node; the node's result completes
 * the cell, so dray_get/dray_wait/dependencies work unchanged. A node that dies (connection lost, or
 * the head reports it dead) has its tasks resent elsewhere up to the retry limit (default 3); with no
 * node left a task fails after a timeout instead of hanging. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dray/dashboard.h"
#include "internal.h"

#define MAX_NODES 1024
/* The proxy task's arguments before the user's: fn, retries, retry_exc, node retries, num_cpus
 * (float), custom resources (a map name -> float, or null). */
#define HEADER_ARGS 6

/* A remote actor: where it lives and how to rebuild it elsewhere. */
typedef struct ractor {
    uint64_t id;
    const dray_actor_class *cls;
    int node;         /* -1 once dead */
    void *create_msg; /* the encoded ACTOR_CREATE payload, resent on a restart */
    size_t create_len;
    int max_restarts, max_task_retries;
    _Atomic int restarts;
    bool released;
    struct dray__cluster *cl;
    struct ractor *next;
} ractor;

typedef struct pend {
    uint64_t rid;
    dray_ref *cell;   /* NULL for a restart's constructor (nobody waits for it) */
    ractor *actor;    /* actor calls and constructors */
    uint8_t type;     /* the message type sent */
    int call_retries;
    const dray_function *fn;
    void *msg; /* the encoded SUBMIT control payload, kept for resending */
    size_t len;
    int node;  /* -1 while waiting for a node */
    int retries_left;
    int *excl; /* nodes that lack the function */
    int n_excl;
    int64_t since_ns;
    dray_value *objs; /* object handles among the arguments, kept alive until the result */
    size_t n_objs;
    double cpus;      /* CPUs it needs (0: 1) */
    dray_value res;   /* custom resources it needs: a map name -> float, or null */
    dray_status refused; /* why place() found no node: DRAY_ENOTFOUND or DRAY_ERESOURCE */
    dray_value args;  /* the user's arguments when they include objects (to re-encode after a
                       * rebuild moved one), else null */
    int task_retries; /* the SUBMIT's retry fields, for re-encoding */
    bool retry_exc;
    int lost_tries;   /* times a node could not fetch one of its input objects */
    bool stolen;      /* taken back from a busy node: placed by load alone */
    struct robj *rebuild_of; /* a lineage rebuild: its result replaces this object's bytes */
    struct pend *hnext;
    struct pend *prev, *next; /* the node's list, or the waiting list */
} pend;

typedef struct rnode {
    int id;
    char addr[80];
    int cpus;
    dray__conn *conn; /* retained while alive */
    bool alive;
    int64_t inflight;
    double cpu_inflight; /* CPUs the tasks sent to it need */
    int64_t last_steal_ns;
    dray_value res;      /* its custom resources: a map name -> float */
    bool paused;         /* above its memory pause fraction: new tasks go elsewhere if they can */
    pend *list;
} rnode;

struct dray__cluster {
    dray_runtime *rt;
    dray__loop *loop;
    char address[300];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    rnode nodes[MAX_NODES];
    int n_nodes;
    bool got_nodes, closing;
    pend **buckets;
    size_t nbuckets, count;
    uint64_t next_rid;
    pend *waiting;
    int64_t no_node_timeout_ns;
    int default_retries;
    ractor *actors;
    uint64_t next_actor_id;
    unsigned rr; /* where the next placement starts looking (ties go round-robin) */
    int last_node; /* the node the last task went to (-1: none yet) */
    uint8_t secret[32];
    struct objowner *own;
    /* placement counters (dray_cluster_client_stats) */
    _Atomic uint64_t placed_local, placed_load, placed_spill, stored_results, objects_freed,
        driver_pulls, driver_pulled_bytes, objects_rebuilt, steal_requests, tasks_stolen;
    double locality_slack; /* tasks per CPU the node holding the inputs may be ahead by */
    /* The waiting caller reading its node's connection (dray__cluster_wait) */
    int64_t poll_ns;           /* how long a caller reads before the normal wait (0: never, -1:
                                * lane_poll_ns on a lane, never on a socket) */
    bool lanes;                /* offer nodes same-host lanes */
    int64_t lane_poll_ns;      /* poll_ns for a node connection with a lane */
    int64_t lane_spin_min_ns, lane_spin_max_ns; /* the spin window's bounds on a lane */
    int64_t spin_max_ns;       /* the longest spin on the socket (0: never spin) */
    bool spin_load_gate;       /* spin only while the machine has a core to spare */
    _Atomic int64_t wait_avg_ns; /* moving average of the waits that read their result */
    _Atomic int spin_fails;    /* spins in a row that ended before the result came */
    _Atomic int spin_skip;     /* waits left that do not spin (back-off after failed spins) */
    _Atomic int spinners;      /* callers spinning now */
    dray__spin_gate gate;      /* spinning leaves a core to the rest (sampled by on_tick) */
    _Atomic uint64_t polled_waits, polled_hits, spin_hits, polled_lost;
    /* Local-first mode (the client of a worker node's own runtime, spill.c): a task runs on this
     * node unless it is saturated; then it spills to the least loaded other node. `self` (this
     * node's address) is left out of the node list; a spilled task that no other node can take
     * any more comes back here (run_here). */
    bool local_first;
    char self[80];
    double spill_queue; /* tasks queued per executor before spilling */
    dray__spill_store store; /* this node's store: large arguments go by handle */
    struct robj *stashed;    /* those handles, alive (linked by snext; weak) */
    _Atomic uint64_t tasks_spilled, spill_returned;
};

/* The last task this thread sent (a rid and its cell): the one a dray_get that follows is likely
 * to wait for. dray__cluster_wait checks it against the table, so a stale entry is harmless. */
static _Thread_local struct {
    struct dray__cluster *cl;
    dray_ref *cell;
    uint64_t rid;
} last_sent;

/* While a submitting thread holds the client's lock: where send_to leaves the connection of an
 * idle node it queued a task on, for that thread to write after unlocking (push_end). */
static _Thread_local dray__conn **push_slot;

static void push_begin(dray__conn **slot)
{
    *slot = NULL;
    push_slot = slot;
}

static void push_end(dray__conn **slot)
{
    push_slot = NULL;
    if (*slot) {
        dray__conn_push(*slot);
        dray__conn_release(*slot);
        *slot = NULL;
    }
}

/* ==== Object handles ====
 * A task's large result stays in the store of the node that made it; the driver's cell holds this
 * handle instead (an extension value "cluster.obj" that travels in task arguments, so the node that
 * runs a consumer pulls the bytes straight from the holder). dray_get on the driver fetches the
 * bytes once (dray__cluster_resolve). When the driver drops its last count the holder and every node
 * that was sent a task reading it are told to free it. */
typedef struct objowner {
    _Atomic int refs;
    pthread_mutex_t lock;
    struct dray__cluster *cl; /* NULL once detached */
} objowner;

typedef struct robj {
    dray_ext_obj hdr;
    char holder[80];
    uint64_t id, size;
    bool encoded;
    pthread_mutex_t meta;    /* guards holder, id and node (a rebuild moves the object) */
    objowner *own;           /* driver side; NULL on nodes */
    int node;                /* driver side: the holder's node index */
    /* driver side, under the client's lock: how to make it again (lineage) */
    struct lineage *lin;
    bool lost, rebuilding;
    struct pend *waiters;    /* tasks waiting for the rebuild (linked by next) */
    dray_status rebuild_st;  /* the last rebuild's failure */
    char rebuild_err[240];
    _Atomic uint64_t copies; /* driver side: bit i: node i was sent a task reading it */
    pthread_mutex_t lock;    /* guards local */
    dray_value local;        /* driver side: the fetched value; here: the argument's bytes */
    bool here;               /* a large argument in this node's own store (local-first mode) */
    struct robj *snext;      /* the client's list of those (under its lock) */
} robj;

/* The task that made an object, kept so a lost object can be made again (Ray's lineage). Its
 * inputs are kept alive with it. */
typedef struct lineage {
    const dray_function *fn;
    void *msg; /* the encoded SUBMIT */
    size_t len;
    dray_value args; /* null, or the arguments when they include objects */
    dray_value *objs;
    size_t n_objs;
    double cpus;
    dray_value res;
    int task_retries;
    bool retry_exc;
} lineage;

static void lineage_free(lineage *l)
{
    if (!l)
        return;
    dray_free(l->msg);
    dray_value_release(&l->args);
    for (size_t i = 0; i < l->n_objs; i++)
        dray_value_release(&l->objs[i]);
    free(l->objs);
    dray_value_release(&l->res);
    free(l);
}

static void owner_release(objowner *o)
{
    if (o && atomic_fetch_sub(&o->refs, 1) == 1) {
        pthread_mutex_destroy(&o->lock);
        free(o);
    }
}

static void send_free(struct dray__cluster *cl, int node, const robj *r)
{
    rnode *n = &cl->nodes[node];
    if (!n->alive)
        return;
    dray_value items[2] = {dray_null(), dray_int((int64_t)r->id)}, v;
    if (dray_string_create(r->holder, &items[0]))
        return;
    if (dray_list_create(items, 2, &v) == DRAY_OK) {
        dray__conn_send_value(n->conn, DRAY__MSG_OBJ_FREE, 0, 0, &v, NULL);
        dray_value_release(&v);
    }
    dray_value_release(&items[0]);
}

static void robj_destroy(dray_ext_obj *o)
{
    robj *r = (robj *)o;
    if (r->own) {
        pthread_mutex_lock(&r->own->lock);
        struct dray__cluster *cl = r->own->cl;
        if (cl) {
            pthread_mutex_lock(&cl->lock);
            uint64_t copies = atomic_load(&r->copies);
            if (r->node >= 0 && r->node < cl->n_nodes)
                send_free(cl, r->node, r);
            for (int i = 0; i < 64 && i < cl->n_nodes; i++)
                if ((copies >> i & 1) && i != r->node)
                    send_free(cl, i, r);
            for (robj **pp = &cl->stashed; r->here && *pp; pp = &(*pp)->snext)
                if (*pp == r) {
                    *pp = r->snext;
                    break;
                }
            if (r->here)
                cl->store.unstash(cl->store.ctx, r->id);
            pthread_mutex_unlock(&cl->lock);
            atomic_fetch_add(&cl->objects_freed, 1);
        }
        pthread_mutex_unlock(&r->own->lock);
        owner_release(r->own);
    }
    dray_value_release(&r->local);
    lineage_free(r->lin);
    pthread_mutex_destroy(&r->lock);
    pthread_mutex_destroy(&r->meta);
    free(r);
}

static dray_status robj_encode(const dray_ext_obj *o,
                               dray_status (*write)(void *buf, const void *data, size_t len),
                               void *buf)
{
    robj *r = (robj *)(uintptr_t)o;
    pthread_mutex_lock(&r->meta);
    dray_value items[4] = {dray_null(), dray_int((int64_t)r->id), dray_int((int64_t)r->size),
                           dray_bool(r->encoded)}, v;
    dray_status st = dray_string_create(r->holder, &items[0]);
    pthread_mutex_unlock(&r->meta);
    if (!st)
        st = dray_list_create(items, 4, &v);
    dray_value_release(&items[0]);
    if (st)
        return st;
    st = dray__write_value(&v, write, buf);
    dray_value_release(&v);
    return st;
}

static dray_ext_type robj_type;

static robj *robj_new(const char *holder, uint64_t id, uint64_t size, bool encoded)
{
    robj *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    dray_ext_obj_init(&r->hdr, &robj_type);
    snprintf(r->holder, sizeof r->holder, "%s", holder);
    r->id = id;
    r->size = size;
    r->encoded = encoded;
    r->node = -1;
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->meta, NULL);
    r->local = dray_null();
    return r;
}

/* Untrusted bytes (from the wire): [string holder, int id, int size, bool encoded]. */
static dray_status robj_decode(const void *data, size_t len, dray_ext_obj **out)
{
    dray_value v;
    dray_status st = dray_value_decode(data, len, &v);
    if (st)
        return st;
    const dray_value *h = dray_list_get(&v, 0), *id = dray_list_get(&v, 1),
                     *sz = dray_list_get(&v, 2), *enc = dray_list_get(&v, 3);
    bool ok = v.type == DRAY_T_LIST && dray_list_len(&v) == 4 && h && h->type == DRAY_T_STRING &&
              strlen(dray_string_cstr(h)) < 80 && id->type == DRAY_T_INT && id->u.i >= 0 &&
              sz->type == DRAY_T_INT && sz->u.i >= 0 && enc->type == DRAY_T_BOOL;
    robj *r = ok ? robj_new(dray_string_cstr(h), (uint64_t)id->u.i, (uint64_t)sz->u.i, enc->u.b)
                 : NULL;
    dray_value_release(&v);
    if (!ok)
        return dray_set_error(DRAY_EFORMAT, "cluster.obj: expected [holder, id, size, encoded]");
    if (!r)
        return dray_set_error(DRAY_ENOMEM, "out of memory");
    *out = &r->hdr;
    return DRAY_OK;
}

static dray_ext_type robj_type = {"cluster.obj", robj_destroy, robj_encode, robj_decode, NULL};
DRAY_EXT_TYPE(robj_type)

bool dray__cluster_obj_info(const dray_value *v, const char **holder, uint64_t *id, uint64_t *size,
                            bool *encoded)
{
    if (v->type != DRAY_T_EXT || v->u.ext->type != &robj_type)
        return false;
    const robj *r = (const robj *)v->u.ext;
    *holder = r->holder;
    *id = r->id;
    *size = r->size;
    *encoded = r->encoded;
    return true;
}

/* ==== Pending table ==== */

static dray_status table_grow(struct dray__cluster *cl)
{
    size_t nb = cl->nbuckets ? cl->nbuckets * 2 : 1024;
    pend **b = calloc(nb, sizeof(*b));
    if (!b)
        return dray_set_error(DRAY_ENOMEM, "out of memory growing the task table");
    for (size_t i = 0; i < cl->nbuckets; i++)
        for (pend *p = cl->buckets[i], *next; p; p = next) {
            next = p->hnext;
            p->hnext = b[p->rid & (nb - 1)];
            b[p->rid & (nb - 1)] = p;
        }
    free(cl->buckets);
    cl->buckets = b;
    cl->nbuckets = nb;
    return DRAY_OK;
}

static pend *table_find(struct dray__cluster *cl, uint64_t rid)
{
    if (!cl->nbuckets)
        return NULL;
    for (pend *p = cl->buckets[rid & (cl->nbuckets - 1)]; p; p = p->hnext)
        if (p->rid == rid)
            return p;
    return NULL;
}

static pend *table_take(struct dray__cluster *cl, uint64_t rid)
{
    if (!cl->nbuckets)
        return NULL;
    for (pend **pp = &cl->buckets[rid & (cl->nbuckets - 1)]; *pp; pp = &(*pp)->hnext)
        if ((*pp)->rid == rid) {
            pend *p = *pp;
            *pp = p->hnext;
            cl->count--;
            return p;
        }
    return NULL;
}

static void list_push(pend **head, pend *p)
{
    p->prev = NULL;
    p->next = *head;
    if (*head)
        (*head)->prev = p;
    *head = p;
}

static void list_remove(pend **head, pend *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        *head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->prev = p->next = NULL;
}

static void pend_free(pend *p)
{
    for (size_t i = 0; i < p->n_objs; i++)
        dray_value_release(&p->objs[i]);
    free(p->objs);
    dray_value_release(&p->res);
    dray_value_release(&p->args);
    if (p->rebuild_of) {
        dray_value r = dray_value_of_ext(&p->rebuild_of->hdr);
        dray_value_release(&r);
    }
    dray_free(p->msg);
    free(p->excl);
    free(p);
}

/* Detaches p from its node or the waiting list. Lock held. */
#define NODE_WAITING (-1)     /* on the waiting list (no node yet) */
#define NODE_REBUILD (-2)     /* on an input object's list of tasks waiting for its rebuild */

static void unplace(struct dray__cluster *cl, pend *p)
{
    if (p->node == NODE_REBUILD)
        return;
    if (p->node >= 0) {
        list_remove(&cl->nodes[p->node].list, p);
        cl->nodes[p->node].inflight--;
        cl->nodes[p->node].cpu_inflight -= p->cpus > 0 ? p->cpus : 1;
    } else {
        list_remove(&cl->waiting, p);
    }
}

/* ==== Completing ==== */

static void rebuild_failed(struct dray__cluster *cl, robj *r, dray_status st, const char *msg);

/* Fails p's cell with st and a message (lock not held); frees p. */
static void fail_pend(struct dray__cluster *cl, pend *p, dray_status st, const char *msg)
{
    if (p->rebuild_of)
        rebuild_failed(cl, p->rebuild_of, st, msg);
    if (p->cell) {
        dray_value err = dray_null();
        dray_error_create(st, p->actor ? p->actor->cls->name : p->fn->name, msg, -1, NULL, &err);
        dray__complete(cl->rt, p->cell, st, err, NULL);
    }
    pend_free(p);
}

/* Puts p on node i's list and sends it. Lock held. */
static void send_to(struct dray__cluster *cl, pend *p, int i)
{
    rnode *n = &cl->nodes[i];
    p->node = i;
    cl->last_node = i;
    /* Node i may cache copies of the objects it reads: they are freed there too. */
    for (size_t k = 0; k < p->n_objs && i < 64; k++) {
        robj *r = (robj *)p->objs[k].u.ext;
        if (r->node != i)
            atomic_fetch_or(&r->copies, 1ull << i);
    }
    bool idle = n->inflight == 0;
    n->inflight++;
    n->cpu_inflight += p->cpus > 0 ? p->cpus : 1;
    list_push(&n->list, p);
    if (p->cell) {
        last_sent.cl = cl;
        last_sent.cell = p->cell;
        last_sent.rid = p->rid;
    }
    /* A closed connection is not an error here: its on_close resends what is on the node. To an
     * idle node a submitting thread writes the task itself once it has dropped the lock (latency:
     * the reply cannot race it for the lock); otherwise it joins the loop's batch. */
    bool hold = idle && push_slot && !*push_slot;
    dray_status st;
    if (p->type == DRAY__MSG_SUBMIT) /* tasks are independent: the same-host lane may carry them */
        st = dray__conn_send_any_order(n->conn, p->type, 0, p->rid, p->msg, p->len, NULL, hold);
    else if (hold)
        st = dray__conn_send_held(n->conn, p->type, 0, p->rid, p->msg, p->len, NULL);
    else
        st = dray__conn_send(n->conn, p->type, 0, p->rid, p->msg, p->len, NULL);
    if (hold && st == DRAY_OK)
        *push_slot = dray__conn_retain(n->conn);
}

/* Load added to a paused node: it gets work only when every node that could take it is paused. */
#define PAUSED_LOAD 1e9

/* The least loaded live node, or -1; ties go round-robin. Lock held. */
static int least_loaded(struct dray__cluster *cl)
{
    int best = -1;
    double best_load = 0;
    unsigned start = cl->n_nodes ? cl->rr++ % (unsigned)cl->n_nodes : 0;
    for (int k = 0; k < cl->n_nodes; k++) {
        int i = (int)((start + (unsigned)k) % (unsigned)cl->n_nodes);
        rnode *n = &cl->nodes[i];
        double load = (double)(n->inflight + 1) / (n->cpus > 0 ? n->cpus : 1) +
                      (n->paused ? PAUSED_LOAD : 0);
        if (n->alive && (best < 0 || load < best_load)) {
            best = i;
            best_load = load;
        }
    }
    return best;
}

/* Enters p in the table under a new request id. Lock held. */
/* Links p into the table under its rid. Lock held. */
static void table_link(struct dray__cluster *cl, pend *p)
{
    p->hnext = cl->buckets[p->rid & (cl->nbuckets - 1)];
    cl->buckets[p->rid & (cl->nbuckets - 1)] = p;
    cl->count++;
}

static dray_status table_add(struct dray__cluster *cl, pend *p)
{
    if (cl->count >= cl->nbuckets && table_grow(cl))
        return DRAY_ENOMEM;
    p->rid = ++cl->next_rid;
    table_link(cl, p);
    return DRAY_OK;
}


static bool feasible(const rnode *n, const pend *p);
static bool excluded(const pend *p, int i);

/* The live node that can run p and holds the most bytes of its object inputs (made there or
 * cached), or -1. */
static int preferred_node(struct dray__cluster *cl, const pend *p)
{
    if (!p->n_objs || cl->n_nodes <= 0)
        return -1;
    uint64_t bytes[64] = {0};
    for (size_t k = 0; k < p->n_objs; k++) {
        const robj *r = (const robj *)p->objs[k].u.ext;
        uint64_t m = atomic_load(&r->copies);
        if (r->node >= 0 && r->node < 64)
            m |= 1ull << r->node;
        for (int i = 0; i < 64 && i < cl->n_nodes; i++)
            if (m >> i & 1)
                bytes[i] += r->size;
    }
    int best = -1;
    for (int i = 0; i < 64 && i < cl->n_nodes; i++)
        if (cl->nodes[i].alive && !cl->nodes[i].paused && bytes[i] && feasible(&cl->nodes[i], p) &&
            !excluded(p, i) &&
            (best < 0 || bytes[i] > bytes[best]))
            best = i;
    return best;
}

static bool excluded(const pend *p, int i)
{
    for (int k = 0; k < p->n_excl; k++)
        if (p->excl[k] == i)
            return true;
    return false;
}

/* CPUs in use per CPU on n once p is added. */
static double node_load(const rnode *n, const pend *p)
{
    return (n->cpu_inflight + (p->cpus > 0 ? p->cpus : 1)) / (n->cpus > 0 ? n->cpus : 1);
}

/* Whether node n offers `want` of custom resource `name` ("CPU" counts as CPUs). */
static bool node_offers(const rnode *n, const char *name, double want)
{
    const dray_value *have = dray_map_get(&n->res, name);
    double got = !strcmp(name, "CPU") ? n->cpus : have ? have->u.f : 0;
    return want <= got;
}

/* Whether node n offers what p needs (its CPUs and custom resources). */
static bool feasible(const rnode *n, const pend *p)
{
    if (p->cpus > (n->cpus > 0 ? n->cpus : 1))
        return false;
    for (size_t k = 0; k < dray_map_len(&p->res); k++)
        if (!node_offers(n, dray_map_key_at(&p->res, k), dray_map_value_at(&p->res, k)->u.f))
            return false;
    return true;
}

/* Sends p to a live node that has not refused it: the one holding most of its input bytes unless
 * it is more than locality_slack tasks per CPU busier than the least loaded one, which gets it
 * otherwise. With no live node p is parked. Lock held. Returns false when no live node can run it
 * (every one lacks the function). */
static bool start_rebuild(struct dray__cluster *cl, robj *r);

/* Whether object r is gone (its node died or could not serve it) and must be made again. */
static bool needs_rebuild(struct dray__cluster *cl, const robj *r)
{
    if (r->here) /* this node's own: lost only when another node could not fetch it */
        return r->lost;
    return r->lost || r->rebuilding || r->node < 0 || r->node >= cl->n_nodes ||
           !cl->nodes[r->node].alive;
}

static bool run_here(struct dray__cluster *cl, pend *p);

static bool place(struct dray__cluster *cl, pend *p)
{
    /* An input object that was lost: wait for it to be made again from its lineage. */
    for (size_t k = 0; k < p->n_objs; k++) {
        robj *r = (robj *)p->objs[k].u.ext;
        if (!needs_rebuild(cl, r))
            continue;
        if (!r->rebuilding && (!r->lin || !start_rebuild(cl, r))) {
            p->refused = DRAY_ENET;
            return false;
        }
        p->node = NODE_REBUILD;
        p->next = r->waiters;
        r->waiters = p;
        return true;
    }
    int best = -1, alive = 0, offered = 0;
    double best_load = 0;
    /* Ties go round-robin, except that a node left idle by the last task keeps the next: one task
     * at a time stays on one warm node (its loop is still reading its lane) instead of waking
     * every node in turn. */
    int last = cl->last_node;
    unsigned start = last >= 0 && last < cl->n_nodes && cl->nodes[last].inflight == 0
                         ? (unsigned)last
                         : cl->n_nodes ? cl->rr++ % (unsigned)cl->n_nodes : 0;
    for (int k = 0; k < cl->n_nodes; k++) {
        int i = (int)((start + (unsigned)k) % (unsigned)cl->n_nodes);
        rnode *n = &cl->nodes[i];
        if (!n->alive)
            continue;
        alive++;
        if (!feasible(n, p))
            continue;
        offered++;
        if (excluded(p, i))
            continue;
        double load = node_load(n, p) + (n->paused ? PAUSED_LOAD : 0);
        if (best < 0 || load < best_load) {
            best = i;
            best_load = load;
        }
    }
    if (best < 0) {
        p->refused = offered ? DRAY_ENOTFOUND : DRAY_ERESOURCE;
        if (cl->local_first) /* a spilled task no other node can take: back to this node */
            return run_here(cl, p);
        if (alive > 0)
            return false;
        p->node = -1;
        p->since_ns = dray__now_ns();
        list_push(&cl->waiting, p);
        return true;
    }
    int pref = p->stolen ? -1 : preferred_node(cl, p);
    if (pref >= 0 && node_load(&cl->nodes[pref], p) <= best_load + cl->locality_slack)
        best = pref;
    /* local: where most input bytes are; spill: inputs elsewhere (busy or unable to run it) */
    atomic_fetch_add_explicit(!p->n_objs     ? &cl->placed_load
                              : best == pref ? &cl->placed_local
                                             : &cl->placed_spill,
                              1, memory_order_relaxed);
    send_to(cl, p, best);
    return true;
}

static dray_status encode_submit(const dray_function *fn, const dray_value *args, size_t nargs,
                                 int retries, bool retry_exc, void **msg, size_t *len)
{
    dray_value items[4] = {dray_null(), dray_null(), dray_int(retries), dray_bool(retry_exc)}, v;
    dray_status st = dray_string_create(fn->name, &items[0]);
    if (!st)
        st = dray_list_create(args, nargs, &items[1]);
    if (!st)
        st = dray_list_create(items, 4, &v);
    dray_value_release(&items[0]);
    dray_value_release(&items[1]);
    if (st)
        return st;
    st = dray_value_encode(&v, msg, len);
    dray_value_release(&v);
    if (st) {
        /* Name the argument that cannot travel. */
        size_t bad = 0;
        for (; bad < nargs; bad++) {
            void *b;
            size_t l;
            if (dray_value_encode(&args[bad], &b, &l))
                break;
            dray_free(b);
        }
        const dray_value *a = bad < nargs ? &args[bad] : NULL;
        return dray_set_error(st, "task '%s': argument %zu (%s%s%s) cannot be sent to a node "
                              "(only values the codec encodes can travel)", fn->name, bad,
                              a ? dray_type_name((dray_type)a->type) : "?",
                              a && a->type == DRAY_T_EXT ? " " : "",
                              a && a->type == DRAY_T_EXT ? a->u.ext->type->name : "");
    }
    return DRAY_OK;
}

/* Why place() refused p. */
static const char *refusal(struct dray__cluster *cl, const pend *p)
{
    return cl->closing                   ? "the cluster client is shutting down"
           : p->refused == DRAY_ERESOURCE ? "no live node offers the CPUs and resources it needs"
           : p->refused == DRAY_ENET      ? "an input object was lost and cannot be made again"
                                          : "no live node has this function registered";
}

/* Encodes p's SUBMIT again from its arguments (an input object moved). Lock held. */
static void reencode(pend *p)
{
    if (p->args.type != DRAY_T_LIST)
        return;
    void *msg;
    size_t len;
    size_t n = dray_list_len(&p->args);
    if (encode_submit(p->fn, n ? dray_list_get(&p->args, 0) : NULL, n, p->task_retries,
                      p->retry_exc, &msg, &len) == DRAY_OK) {
        dray_free(p->msg);
        p->msg = msg;
        p->len = len;
    }
}

/* Starts making lost object r again: its lineage task goes out like a new task (waiting in turn
 * for its own lost inputs). Lock held. False when it cannot even be placed. */
static bool start_rebuild(struct dray__cluster *cl, robj *r)
{
    lineage *l = r->lin;
    pend *q = calloc(1, sizeof(*q));
    if (!q || !(q->msg = malloc(l->len)) ||
        (l->n_objs && !(q->objs = calloc(l->n_objs, sizeof(dray_value))))) {
        if (q)
            free(q->msg);
        free(q);
        return false;
    }
    memcpy(q->msg, l->msg, l->len);
    q->len = l->len;
    q->fn = l->fn;
    q->type = DRAY__MSG_SUBMIT;
    q->retries_left = cl->default_retries;
    q->cpus = l->cpus;
    q->res = dray_value_retain(&l->res);
    q->args = dray_value_retain(&l->args);
    q->task_retries = l->task_retries;
    q->retry_exc = l->retry_exc;
    for (size_t i = 0; i < l->n_objs; i++)
        q->objs[i] = dray_value_retain(&l->objs[i]);
    q->n_objs = l->n_objs;
    dray_value self = dray_value_of_ext(&r->hdr);
    dray_value_retain(&self); /* q's count, dropped by pend_free */
    q->rebuild_of = r;
    reencode(q); /* its inputs may have moved since */
    dray__log("object %llu of %s was lost: running '%s' again to make it",
              (unsigned long long)r->id, r->holder, l->fn->name);
    r->rebuilding = true;
    if (table_add(cl, q) == DRAY_OK) {
        if (place(cl, q))
            return true;
        table_take(cl, q->rid);
    }
    r->rebuilding = false;
    q->rebuild_of = NULL;
    /* Not the last counts: the caller's task holds r, and r's lineage holds q's inputs. */
    __atomic_fetch_sub(&r->hdr.refs, 1, __ATOMIC_ACQ_REL);
    pend_free(q);
    return false;
}

/* The rebuild of r failed: the tasks waiting for it fail too. Lock not held. */
static void rebuild_failed(struct dray__cluster *cl, robj *r, dray_status st, const char *msg)
{
    pthread_mutex_lock(&cl->lock);
    r->rebuilding = false;
    r->rebuild_st = st ? st : DRAY_ENET;
    snprintf(r->rebuild_err, sizeof r->rebuild_err, "%s", msg);
    /* While detaching, the waiting tasks are failed with everything else. */
    pend *w = cl->closing ? NULL : r->waiters;
    r->waiters = NULL;
    for (pend *x = w; x; x = x->next)
        table_take(cl, x->rid);
    pthread_cond_broadcast(&cl->cond);
    pthread_mutex_unlock(&cl->lock);
    char m[400];
    snprintf(m, sizeof m, "input object was lost and making it again failed: %s", msg);
    while (w) {
        pend *next = w->next;
        fail_pend(cl, w, DRAY_EDEP, m);
        w = next;
    }
}

/* Releases the cell's arguments (they must be gone before the result can arrive). */
static void drop_cell_args(dray_ref *c)
{
    dray_value *a = dray__cell_args(c);
    for (size_t i = 0; i < c->nargs; i++)
        dray_value_release(&a[i]);
    c->nargs = 0;
}

/* A ref's value inside a list or map argument: an object handle is kept by the task (alive until
 * its result, and counted for placement by locality). */
static void keep_nested_obj(void *ctx, const dray_value *inner)
{
    pend *p = ctx;
    if (inner->type != DRAY_T_EXT || inner->u.ext->type != &robj_type ||
        !((robj *)inner->u.ext)->own)
        return;
    dray_value *o = realloc(p->objs, (p->n_objs + 1) * sizeof(dray_value));
    if (!o)
        return; /* the marker in the message keeps it alive until it is sent */
    p->objs = o;
    p->objs[p->n_objs++] = dray_value_retain(inner);
}

/* Local-first mode: a BYTES argument this large goes to other nodes as a handle to this node's
 * store (they pull it once and cache it) instead of inside every SUBMIT. */
#define SPILL_BY_HANDLE (64u << 10)

static bool is_big_bytes(const dray_value *v)
{
    size_t len = 0;
    return v->type == DRAY_T_BYTES && dray_bytes_data(v, &len) && len >= SPILL_BY_HANDLE;
}

/* The handle (owned) of large BYTES argument v in this node's store: the one already made for the
 * same bytes while it lives, else a new object (adopted, not copied). */
static dray_status stash_arg(struct dray__cluster *cl, const dray_value *v, dray_value *out)
{
    size_t len = 0;
    const void *data = dray_bytes_data(v, &len);
    pthread_mutex_lock(&cl->lock);
    for (robj *r = cl->stashed; r; r = r->snext) {
        if (r->id == 0 || r->size != len || dray_bytes_data(&r->local, NULL) != data)
            continue;
        /* Take a count unless its last one is going (robj_destroy unlinks it under this lock). */
        uint32_t refs = __atomic_load_n(&r->hdr.refs, __ATOMIC_ACQUIRE);
        while (refs && !__atomic_compare_exchange_n(&r->hdr.refs, &refs, refs + 1, false,
                                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        }
        if (refs) {
            pthread_mutex_unlock(&cl->lock);
            *out = dray_value_of_ext(&r->hdr);
            return DRAY_OK;
        }
    }
    pthread_mutex_unlock(&cl->lock);
    uint64_t id;
    robj *r = robj_new(cl->self, 0, len, false);
    if (!r)
        return dray_set_error(DRAY_ENOMEM, "out of memory for an object handle");
    dray_status st = cl->store.stash(cl->store.ctx, v, &id);
    if (st) {
        free(r);
        return st;
    }
    r->id = id;
    r->here = true;
    r->local = dray_value_retain(v);
    r->own = cl->own;
    atomic_fetch_add(&cl->own->refs, 1);
    pthread_mutex_lock(&cl->lock);
    r->snext = cl->stashed;
    cl->stashed = r;
    pthread_mutex_unlock(&cl->lock);
    *out = dray_value_of_ext(&r->hdr);
    return DRAY_OK;
}

/* Sends task cell c whose resolved arguments are hargs[0..n) (header arguments first). */
static dray_status dispatch(struct dray__cluster *cl, dray_ref *c, const dray_value *hargs,
                            size_t n)
{
    const dray_function *fn = (const dray_function *)(uintptr_t)hargs[0].u.i;
    pend *p = calloc(1, sizeof(*p));
    if (!p)
        return dray_set_error(DRAY_ENOMEM, "out of memory submitting '%s'", fn->name);
    /* Refs inside list and map arguments travel as markers of their outcomes (nested.c). */
    dray_value *conv = NULL;
    dray_status st = DRAY_OK;
    for (size_t i = HEADER_ARGS; i < n && !st; i++) {
        bool big = cl->store.stash && is_big_bytes(&hargs[i]);
        if (!big && !dray__nested_refs(&hargs[i]))
            continue;
        if (!conv) {
            if (!(conv = malloc(n * sizeof(dray_value)))) {
                st = dray_set_error(DRAY_ENOMEM, "out of memory submitting '%s'", fn->name);
                break;
            }
            for (size_t k = 0; k < n; k++)
                conv[k] = dray_value_retain(&hargs[k]);
        }
        dray_value m;
        if (big ? !(st = stash_arg(cl, &hargs[i], &m))
                : !(st = dray__nested_to_wire(cl->rt, &hargs[i], keep_nested_obj, p, &m))) {
            dray_value_release(&conv[i]);
            conv[i] = m;
        }
    }
    if (conv)
        hargs = conv;
    if (!st)
        st = encode_submit(fn, hargs + HEADER_ARGS, n - HEADER_ARGS, (int)hargs[1].u.i,
                           hargs[2].u.b, &p->msg, &p->len);
    if (st) {
        for (size_t i = 0; conv && i < n; i++)
            dray_value_release(&conv[i]);
        free(conv);
        for (size_t i = 0; i < p->n_objs; i++)
            dray_value_release(&p->objs[i]);
        free(p->objs);
        free(p);
        return st;
    }
    p->cell = c;
    p->fn = fn;
    p->type = DRAY__MSG_SUBMIT;
    p->retries_left = (int)hargs[3].u.i;
    p->cpus = hargs[4].u.f;
    p->res = dray_value_retain(&hargs[5]);
    p->task_retries = (int)hargs[1].u.i;
    p->retry_exc = hargs[2].u.b;
    for (size_t i = HEADER_ARGS; i < n; i++)
        if (hargs[i].type == DRAY_T_EXT && hargs[i].u.ext->type == &robj_type &&
            ((robj *)hargs[i].u.ext)->own) {
            dray_value *o = realloc(p->objs, (p->n_objs + 1) * sizeof(dray_value));
            if (!o)
                break; /* placement without it; the cell's argument keeps it alive meanwhile */
            p->objs = o;
            p->objs[p->n_objs++] = dray_value_retain(&hargs[i]);
        }
    if (p->n_objs && dray_list_create(hargs + HEADER_ARGS, n - HEADER_ARGS, &p->args))
        p->args = dray_null(); /* out of memory: no re-encoding, a lost input fails it */
    for (size_t i = 0; conv && i < n; i++)
        dray_value_release(&conv[i]);
    free(conv);
    drop_cell_args(c);
    pthread_mutex_lock(&cl->lock);
    if (table_add(cl, p)) {
        pthread_mutex_unlock(&cl->lock);
        fail_pend(cl, p, DRAY_ENOMEM, "out of memory in the task table");
        return DRAY_OK;
    }
    dray__conn *push;
    push_begin(&push);
    bool ok = cl->closing ? false : place(cl, p);
    if (!ok)
        table_take(cl, p->rid);
    pthread_mutex_unlock(&cl->lock);
    push_end(&push);
    if (!ok)
        fail_pend(cl, p, cl->closing ? DRAY_ESHUTDOWN : p->refused, refusal(cl, p));
    return DRAY_OK;
}

/* ==== Local-first mode: a worker node's nested tasks (spill.c) ==== */

/* Whether a task submitted on this node goes to another node: only a function registered by name
 * (another node can run only those), only while this node has at least spill_queue tasks waiting
 * per executor, and only to a live, unpaused node that offers its CPUs and resources and would then
 * have no more of this client's tasks per CPU than this node has waiting per executor. */
static bool spill_out(struct dray__cluster *cl, const dray_function *fn,
                      const dray_task_opts *opts)
{
    double queued = dray__spill_queued(cl->rt);
    if (queued < cl->spill_queue || dray__fn_lookup(cl->rt, fn->name) != fn)
        return false;
    double need = opts && opts->num_cpus > 0 ? opts->num_cpus : 1;
    bool out = false;
    pthread_mutex_lock(&cl->lock);
    for (int i = 0; i < cl->n_nodes && !out; i++) {
        const rnode *n = &cl->nodes[i];
        double cpus = n->cpus > 0 ? n->cpus : 1;
        if (!n->alive || n->paused || need > cpus)
            continue;
        bool ok = true;
        for (size_t k = 0; opts && k < opts->n_resources && ok; k++)
            ok = node_offers(n, opts->resources[k].name, opts->resources[k].amount);
        out = ok && (n->cpu_inflight + need) / cpus <= queued;
    }
    pthread_mutex_unlock(&cl->lock);
    return out;
}

/* A spilled task brought back: the local task running it, and the pend whose cell it completes. */
typedef struct here {
    dray__callback cb;
    dray_runtime *rt;
    pend *p;
    dray_ref *local;
} here;

static void here_done(dray__callback *cb, dray_ref *c)
{
    here *h = (here *)cb;
    dray_value v = dray_value_retain(&c->u.result);
    dray__complete(h->rt, h->p->cell, (dray_status)c->status, v, NULL);
    pend_free(h->p);
    dray_ref_release(h->local);
    free(h);
}

/* Local-first mode: spilled task p, which no other node can take any more (they died, or lack its
 * function), runs on this node after all. Its SUBMIT is decoded back into arguments (refs inside
 * lists become refs of this runtime again) and the local task's outcome completes p's cell. Lock
 * held; on true p has left the table (the local task owns it). */
static bool run_here(struct dray__cluster *cl, pend *p)
{
    dray_value msg = dray_null(), *vals = NULL;
    here *h = calloc(1, sizeof(*h));
    /* With handles among them the arguments were kept (p->args); else they are in the message. */
    dray_status st = !h ? DRAY_ENOMEM
                     : p->args.type == DRAY_T_LIST ? DRAY_OK
                                                   : dray_value_decode(p->msg, p->len, &msg);
    const dray_value *a = st ? NULL : p->args.type == DRAY_T_LIST ? &p->args
                                                                 : dray_list_get(&msg, 1);
    size_t n = a ? dray_list_len(a) : 0, made = 0;
    if (!st && n && !(vals = calloc(n, sizeof(*vals))))
        st = DRAY_ENOMEM;
    for (; !st && made < n; made++) {
        const dray_value *x = dray_list_get(a, made);
        if (x->type == DRAY_T_LIST && dray__nested_markers(x))
            st = dray__nested_from_wire(cl->rt, x, NULL, NULL, &vals[made]);
        else if (x->type == DRAY_T_EXT && x->u.ext->type == &robj_type &&
                 ((robj *)x->u.ext)->here)
            vals[made] = dray_value_retain(&((robj *)x->u.ext)->local); /* our own bytes */
        else
            vals[made] = dray_value_retain(x);
    }
    dray_task_opts o = {0};
    o.max_retries = p->task_retries;
    o.retry_exceptions = p->retry_exc;
    if (!st)
        st = dray__submit_here(cl->rt, p->fn, vals, n, &o, &h->local);
    for (size_t i = 0; i < made; i++)
        dray_value_release(&vals[i]);
    free(vals);
    dray_value_release(&msg);
    if (st) {
        dray__log("cannot run spilled task '%s' on this node: %s", p->fn->name, dray_last_error());
        free(h);
        return false;
    }
    table_take(cl, p->rid);
    atomic_fetch_add_explicit(&cl->spill_returned, 1, memory_order_relaxed);
    h->cb.fn = here_done;
    h->rt = cl->rt;
    h->p = p;
    if (!dray__ref_on_complete(h->local, &h->cb))
        here_done(&h->cb, h->local);
    return true;
}

/* The local stand-in for a remote task: runs once its ref arguments are ready, sends the task and
 * leaves its cell pending (DRAY__DEFERRED) until the result arrives. */
static dray_status remote_task(dray_ctx *ctx, const dray_value *args, size_t nargs,
                               dray_value *result)
{
    struct dray__cluster *cl = ctx->rt->cluster;
    dray_status st = dispatch(cl, ctx->cell, args, nargs);
    if (st && cl->local_first) {
        /* A nested task that cannot travel (an argument the codec cannot encode) runs here. */
        const dray_function *fn = (const dray_function *)(uintptr_t)args[0].u.i;
        atomic_fetch_add_explicit(&cl->spill_returned, 1, memory_order_relaxed);
        return fn->fn(ctx, args + HEADER_ARGS, nargs - HEADER_ARGS, result);
    }
    return st ? st : DRAY__DEFERRED;
}

static dray_function remote_fn = {"dray.cluster.remote", remote_task, NULL};

dray_status dray__cluster_submit(dray_runtime *rt, const dray_function *fn, const dray_value *args,
                                 size_t nargs, const dray_task_opts *opts, dray_ref **out)
{
    struct dray__cluster *cl = rt->cluster;
    if (nargs && !args)
        return dray_set_error(DRAY_EINVAL, "dray_submit '%s': args is NULL", fn->name);
    if (opts && (opts->max_retries < 0 || opts->num_cpus < 0))
        return dray_set_error(DRAY_EINVAL, "dray_submit '%s': negative option", fn->name);
    if (cl->local_first) {
        if (!spill_out(cl, fn, opts))
            return dray__submit_here(rt, fn, args, nargs, opts, out);
        atomic_fetch_add_explicit(&cl->tasks_spilled, 1, memory_order_relaxed);
    }
    size_t n = nargs + HEADER_ARGS;
    dray_value stack[12], *all = n <= 12 ? stack : malloc(n * sizeof(dray_value));
    if (!all)
        return dray_set_error(DRAY_ENOMEM, "out of memory submitting '%s'", fn->name);
    int retries = opts ? opts->max_retries : 0;
    all[0] = dray_int((int64_t)(uintptr_t)fn);
    all[1] = dray_int(retries);
    all[2] = dray_bool(opts && (opts->retry_exceptions || opts->max_retries > 0));
    all[3] = dray_int(retries > 0 ? retries : cl->default_retries);
    all[4] = dray_float(opts ? opts->num_cpus : 0);
    all[5] = dray_null();
    if (opts && opts->n_resources) {
        const char *names[64];
        dray_value amounts[64];
        if (opts->n_resources > 64 || !opts->resources) {
            if (all != stack)
                free(all);
            return dray_set_error(DRAY_EINVAL, "dray_submit '%s': %zu resources (at most 64)",
                                  fn->name, opts->n_resources);
        }
        for (size_t i = 0; i < opts->n_resources; i++) {
            names[i] = opts->resources[i].name;
            amounts[i] = dray_float(opts->resources[i].amount);
        }
        dray_status rs = dray_map_create(names, amounts, opts->n_resources, &all[5]);
        if (rs) {
            if (all != stack)
                free(all);
            return rs;
        }
    }
    bool ready = true;
    for (size_t i = 0; i < nargs; i++) {
        all[HEADER_ARGS + i] = args[i];
        if (args[i].type == DRAY_T_REF && args[i].u.ref)
            ready &= dray_ref_ready(args[i].u.ref) && args[i].u.ref->status == DRAY_OK &&
                     !dray__nested_pending(&args[i].u.ref->u.result);
        else if (dray__nested_pending(&args[i]))
            ready = false; /* a pool thread waits for refs inside lists before sending */
    }
    dray_task_opts local = {0};
    local.name = opts ? opts->name : NULL;
    dray_ref *c;
    dray_status st = dray__make_task(rt, &remote_fn, all, n, local.name ? &local : NULL,
                                     DRAY__CELL_TASK, &c);
    if (!st && ready) {
        /* Every input is here: send now, without a trip through the local pool. */
        for (size_t i = 0; i < nargs; i++)
            if (all[HEADER_ARGS + i].type == DRAY_T_REF)
                all[HEADER_ARGS + i] = all[HEADER_ARGS + i].u.ref->u.result;
        dray_ref_retain(c); /* dispatch may drop the cell's arguments, which include refs */
        st = dispatch(cl, c, all, n);
        if (st && cl->local_first) {
            /* It cannot travel: its stand-in runs it on this node (remote_task). */
            dray__submit_cell(rt, c);
            st = DRAY_OK;
        } else if (st) {
            /* Nothing was sent: the cell completes failed and the caller gets the error. */
            dray_value err = dray_null();
            char msg[600];
            snprintf(msg, sizeof msg, "%s", dray_last_error());
            drop_cell_args(c);
            dray_error_create(st, fn->name, msg, -1, NULL, &err);
            dray__complete(rt, c, st, err, NULL);
            dray_ref_release(c);
            dray_ref_release(c);
            dray_value_release(&all[5]);
            if (all != stack)
                free(all);
            return dray_set_error(st, "%s", msg);
        }
        dray_ref_release(c);
    } else if (!st) {
        dray__submit_cell(rt, c);
    }
    dray_value_release(&all[5]);
    if (all != stack)
        free(all);
    if (!st)
        *out = c;
    return st;
}


/* ==== Actors ==== */

static int cmp_rid(const void *a, const void *b)
{
    uint64_t x = (*(pend *const *)a)->rid, y = (*(pend *const *)b)->rid;
    return x < y ? -1 : x > y;
}

/* Node `lost` died with the pends in *list. Restarts its actors elsewhere (while max_restarts
 * allows: the constructor is sent again first, then the calls that may be retried, in their
 * original order). Takes the actor pends out of *list; returns those that fail (linked by next,
 * out of the table). Lock held. */
static pend *restart_actors(struct dray__cluster *cl, int lost, pend **list)
{
    pend *fails = NULL;
    size_t n = 0;
    for (pend *p = *list; p; p = p->next)
        n += p->actor != NULL;
    pend **acts = n ? malloc(n * sizeof(*acts)) : NULL;
    if (n && !acts)
        return NULL; /* out of memory: the calls stay pending until shutdown */
    n = 0;
    for (pend **pp = list; *pp;) {
        pend *p = *pp;
        if (p->actor) {
            *pp = p->next;
            acts[n++] = p;
        } else {
            pp = &p->next;
        }
    }
    if (n)
        qsort(acts, n, sizeof(*acts), cmp_rid);
    for (ractor *a = cl->actors; a; a = a->next) {
        if (a->node != lost || a->released)
            continue;
        int to = atomic_load(&a->restarts) < a->max_restarts ? least_loaded(cl) : -1;
        a->node = to;
        if (to < 0)
            continue;
        atomic_fetch_add(&a->restarts, 1);
        dray__log("restarting actor %s %llx on node %d", a->cls->name, (unsigned long long)a->id,
                  cl->nodes[to].id);
        /* A constructor still pending goes again with its ref; else a fresh one nobody waits on. */
        pend *init = NULL;
        for (size_t i = 0; i < n && !init; i++)
            if (acts[i] && acts[i]->actor == a && acts[i]->type == DRAY__MSG_ACTOR_CREATE) {
                init = acts[i];
                acts[i] = NULL;
            }
        if (!init && (init = calloc(1, sizeof(*init))) &&
            (!(init->msg = malloc(a->create_len)) || table_add(cl, init))) {
            free(init->msg);
            free(init);
            init = NULL;
        }
        if (!init)
            continue;
        if (!init->cell) {
            memcpy(init->msg, a->create_msg, a->create_len);
            init->len = a->create_len;
            init->actor = a;
            init->type = DRAY__MSG_ACTOR_CREATE;
        }
        send_to(cl, init, to);
    }
    for (size_t i = 0; i < n; i++) {
        pend *p = acts[i];
        if (!p)
            continue;
        if (p->actor->node >= 0 && p->type == DRAY__MSG_ACTOR_CALL && p->call_retries > 0) {
            p->call_retries--;
            send_to(cl, p, p->actor->node);
            continue;
        }
        table_take(cl, p->rid);
        p->next = fails;
        fails = p;
    }
    free(acts);
    return fails;
}

/* Replaces refs in args by their values (waiting for them). A failed ref is DRAY_EDEP. */
static dray_status resolve_args(dray_runtime *rt, const dray_value *args, size_t nargs,
                                dray_value *out)
{
    for (size_t i = 0; i < nargs; i++) {
        out[i] = args[i];
        if (args[i].type != DRAY_T_REF)
            continue;
        dray_status st = dray_get(rt, args[i].u.ref, -1, NULL);
        if (st)
            return dray_set_error(DRAY_EDEP, "input %zu failed: %s", i, dray_last_error());
        out[i] = args[i].u.ref->u.result;
    }
    return DRAY_OK;
}

/* Refs inside the list and map arguments of an actor call (list *args, owned) become markers of
 * their outcomes (nested.c), waiting for them here. The object handles among the arguments, at any
 * depth, go to keep->objs: the request keeps them alive and marks the copies its node caches. */
static dray_status nested_args(dray_runtime *rt, dray_value *args, pend *keep)
{
    dray_value conv;
    for (size_t i = 0; i < dray_list_len(args); i++)
        keep_nested_obj(keep, dray_list_get(args, i));
    if (!dray__nested_refs(args))
        return DRAY_OK;
    dray_status st = dray__nested_to_wire(rt, args, keep_nested_obj, keep, &conv);
    if (st)
        return st;
    dray_value_release(args);
    *args = conv;
    return DRAY_OK;
}

/* A pending cell completed by the cluster client (constructors and calls of remote actors). */
static dray_status never_runs(dray_ctx *ctx, const dray_value *a, size_t n, dray_value *r)
{
    (void)ctx, (void)a, (void)n, (void)r;
    return dray_set_error(DRAY_EINVAL, "a remote actor's cell ran locally");
}
static dray_function actor_cell_fn = {"dray.cluster.actor", never_runs, NULL};

/* Encodes a payload `items[0..n)` as a list. */
static dray_status encode_list(const dray_value *items, size_t n, void **msg, size_t *len)
{
    dray_value v;
    dray_status st = dray_list_create(items, n, &v);
    if (st)
        return st;
    st = dray_value_encode(&v, msg, len);
    dray_value_release(&v);
    return st;
}

/* Drops the object handles collected in keep. */
static void keep_release(pend *keep)
{
    for (size_t i = 0; i < keep->n_objs; i++)
        dray_value_release(&keep->objs[i]);
    free(keep->objs);
}

/* Registers and sends a request for actor a (constructor or call) completing cell c; takes the
 * object handles in keep. */
static dray_status send_actor_request(struct dray__cluster *cl, ractor *a, uint8_t type,
                                      void *msg, size_t len, dray_ref *c, int retries, pend *keep)
{
    pend *p = calloc(1, sizeof(*p));
    if (!p) {
        dray_free(msg);
        keep_release(keep);
        return dray_set_error(DRAY_ENOMEM, "out of memory calling actor %s", a->cls->name);
    }
    p->objs = keep->objs;
    p->n_objs = keep->n_objs;
    p->cell = c;
    p->actor = a;
    p->type = type;
    p->msg = msg;
    p->len = len;
    p->call_retries = retries;
    pthread_mutex_lock(&cl->lock);
    int node = type == DRAY__MSG_ACTOR_CREATE ? least_loaded(cl) : a->node;
    if (type == DRAY__MSG_ACTOR_CREATE)
        a->node = node;
    dray_status st = node < 0 ? DRAY_EACTOR : table_add(cl, p);
    dray__conn *push;
    push_begin(&push);
    if (!st)
        send_to(cl, p, node);
    pthread_mutex_unlock(&cl->lock);
    push_end(&push);
    if (st)
        fail_pend(cl, p, st, node < 0 ? (type == DRAY__MSG_ACTOR_CREATE
                                             ? "no live worker node to place the actor on"
                                             : "the actor is dead: its node was lost")
                                      : "out of memory");
    return DRAY_OK;
}

dray_status dray__cluster_actor_create(dray_runtime *rt, const dray_actor_class *cls,
                                       const dray_value *args, size_t nargs,
                                       const dray_actor_opts *opts, void **remote,
                                       dray_ref **init_ref)
{
    struct dray__cluster *cl = rt->cluster;
    if (cl->local_first)
        return DRAY__HERE; /* a node's own actors live on it */
    dray_value *vals = nargs ? malloc(nargs * sizeof(dray_value)) : NULL;
    ractor *a = calloc(1, sizeof(*a));
    dray_value items[6] = {dray_null(), dray_null(), dray_null(),
                           dray_int(opts && opts->max_concurrency ? opts->max_concurrency : 1),
                           dray_int(0), dray_int(opts ? opts->max_task_retries : 0)};
    dray_status st = (nargs && !vals) || !a ? dray_set_error(DRAY_ENOMEM, "out of memory") : 0;
    if (!st)
        st = resolve_args(rt, args, nargs, vals);
    if (!st)
        st = dray_string_create(cls->name, &items[0]);
    if (!st)
        st = dray_list_create(vals, nargs, &items[1]);
    pend keep = {0};
    if (!st)
        st = nested_args(rt, &items[1], &keep);
    if (!st) {
        pthread_mutex_lock(&cl->lock);
        a->id = cl->next_actor_id++;
        pthread_mutex_unlock(&cl->lock);
        items[2] = dray_int((int64_t)a->id);
        st = encode_list(items, 6, &a->create_msg, &a->create_len);
    }
    dray_value_release(&items[0]);
    dray_value_release(&items[1]);
    free(vals);
    dray_ref *c = NULL;
    void *msg = NULL;
    if (!st && !(msg = malloc(a->create_len)))
        st = dray_set_error(DRAY_ENOMEM, "out of memory");
    if (!st)
        st = dray__make_task(rt, &actor_cell_fn, NULL, 0, NULL, DRAY__CELL_TASK, &c);
    if (st) {
        free(msg);
        if (a)
            dray_free(a->create_msg);
        free(a);
        keep_release(&keep);
        return st;
    }
    memcpy(msg, a->create_msg, a->create_len);
    a->cls = cls;
    a->cl = cl;
    a->max_restarts = opts ? opts->max_restarts : 0;
    a->max_task_retries = opts ? opts->max_task_retries : 0;
    pthread_mutex_lock(&cl->lock);
    a->next = cl->actors;
    cl->actors = a;
    pthread_mutex_unlock(&cl->lock);
    send_actor_request(cl, a, DRAY__MSG_ACTOR_CREATE, msg, a->create_len, c, 0, &keep);
    *remote = a;
    *init_ref = c;
    return DRAY_OK;
}

dray_status dray__cluster_actor_call(dray_runtime *rt, void *remote, int method,
                                     const dray_value *args, size_t nargs, dray_ref **out)
{
    struct dray__cluster *cl = rt->cluster;
    ractor *a = remote;
    dray_value stack[8], *vals = nargs <= 8 ? stack : malloc(nargs * sizeof(dray_value));
    if (!vals)
        return dray_set_error(DRAY_ENOMEM, "out of memory calling actor %s", a->cls->name);
    dray_value items[3] = {dray_int((int64_t)a->id), dray_int(method), dray_null()};
    void *msg = NULL;
    size_t len = 0;
    dray_status st = resolve_args(rt, args, nargs, vals);
    if (!st)
        st = dray_list_create(vals, nargs, &items[2]);
    pend keep = {0};
    if (!st)
        st = nested_args(rt, &items[2], &keep);
    if (!st)
        st = encode_list(items, 3, &msg, &len);
    dray_value_release(&items[2]);
    if (vals != stack)
        free(vals);
    dray_ref *c;
    if (st || (st = dray__make_task(rt, &actor_cell_fn, NULL, 0, NULL, DRAY__CELL_TASK, &c))) {
        dray_free(msg);
        keep_release(&keep);
        return st;
    }
    send_actor_request(cl, a, DRAY__MSG_ACTOR_CALL, msg, len, c, a->max_task_retries, &keep);
    *out = c;
    return DRAY_OK;
}

/* Sends a one-way actor message. */
static void actor_notify(struct dray__cluster *cl, ractor *a, uint8_t type, const dray_value *items,
                         size_t n)
{
    void *msg;
    size_t len;
    if (encode_list(items, n, &msg, &len))
        return;
    pthread_mutex_lock(&cl->lock);
    if (a->node >= 0 && cl->nodes[a->node].alive)
        dray__conn_send(cl->nodes[a->node].conn, type, 0, 0, msg, len, NULL);
    pthread_mutex_unlock(&cl->lock);
    dray_free(msg);
}

dray_status dray__cluster_actor_kill(dray_runtime *rt, void *remote, bool no_restart)
{
    ractor *a = remote;
    dray_value items[2] = {dray_int((int64_t)a->id), dray_bool(no_restart)};
    actor_notify(rt->cluster, a, DRAY__MSG_ACTOR_KILL, items, 2);
    return DRAY_OK;
}

int dray__cluster_actor_restarts(const void *remote)
{
    return atomic_load(&((ractor *)remote)->restarts);
}

void dray__cluster_actor_release(void *remote)
{
    ractor *a = remote;
    dray_value id = dray_int((int64_t)a->id);
    /* The record stays until detach: calls still in flight point at it. */
    actor_notify(a->cl, a, DRAY__MSG_ACTOR_RELEASE, &id, 1);
    pthread_mutex_lock(&a->cl->lock);
    a->released = true;
    pthread_mutex_unlock(&a->cl->lock);
}

/* ==== Loop callbacks ==== */

/* Work stealing: when a node has a free CPU and another has a queue well beyond its CPUs, asks
 * the busy one for half the difference back (at most once per 2 ms per node). Lock held. */
static void maybe_steal(struct dray__cluster *cl)
{
    int idle = -1, busy = -1;
    for (int i = 0; i < cl->n_nodes; i++) {
        rnode *n = &cl->nodes[i];
        int cpus = n->cpus > 0 ? n->cpus : 1;
        if (!n->alive)
            continue;
        if (!n->paused && n->cpu_inflight < cpus &&
            (idle < 0 || n->inflight < cl->nodes[idle].inflight))
            idle = i;
        /* A paused node gives back everything it has not started. */
        if ((n->inflight > 2 * cpus + 2 || (n->paused && n->inflight > 0)) &&
            (busy < 0 || n->inflight > cl->nodes[busy].inflight))
            busy = i;
    }
    if (idle < 0 || busy < 0)
        return;
    rnode *b = &cl->nodes[busy];
    int64_t now = dray__now_ns();
    if (now - b->last_steal_ns < 2000000)
        return;
    b->last_steal_ns = now;
    int64_t k = b->paused ? b->inflight : (b->inflight - cl->nodes[idle].inflight) / 2;
    dray_value v = dray_int(k < 1 ? 1 : k > 4096 ? 4096 : k);
    if (dray__conn_send_value(b->conn, DRAY__MSG_STEAL, 0, 0, &v, NULL) == DRAY_OK)
        atomic_fetch_add_explicit(&cl->steal_requests, 1, memory_order_relaxed);
}

/* Puts p, just taken out of the table (rid kept), back and places it again; false, with p out of
 * the table again, when no node can take it. Lock held. */
static bool place_again(struct dray__cluster *cl, pend *p)
{
    table_link(cl, p);
    if (place(cl, p))
        return true;
    table_take(cl, p->rid);
    return false;
}

static void on_result(struct dray__cluster *cl, const dray__hdr *h, const dray_value *ctl,
                      const dray_value *data)
{
    pthread_mutex_lock(&cl->lock);
    pend *p = table_take(cl, h->rid);
    if (!p) {
        pthread_mutex_unlock(&cl->lock);
        return; /* a late answer for a task already resent and finished */
    }
    unplace(cl, p);
    if (h->flags & DRAY__RF_MISSING) {
        int *x = realloc(p->excl, (size_t)(p->n_excl + 1) * sizeof(int));
        bool ok = false;
        if (x) {
            p->excl = x;
            p->excl[p->n_excl++] = p->node;
            ok = place_again(cl, p);
        }
        pthread_mutex_unlock(&cl->lock);
        if (!ok)
            fail_pend(cl, p, DRAY_ENOTFOUND, dray_error_message(dray_list_get(ctl, 1)));
        return;
    }
    if (h->flags & DRAY__RF_STOLEN) {
        /* Taken back from a busy node: to the least loaded one now. */
        p->stolen = true;
        atomic_fetch_add_explicit(&cl->tasks_stolen, 1, memory_order_relaxed);
        bool ok = place_again(cl, p);
        pthread_mutex_unlock(&cl->lock);
        if (!ok)
            fail_pend(cl, p, p->refused, refusal(cl, p));
        return;
    }
    maybe_steal(cl);
    if ((h->flags & DRAY__RF_LOST) && p->args.type == DRAY_T_LIST && p->lost_tries < 3) {
        /* The node could not fetch input `arg`: that object is lost; make it again and resend. */
        const dray_value *err = dray_list_get(ctl, 1);
        int arg = dray_error_arg_index(err);
        const dray_value *in = arg >= 0 ? dray_list_get(&p->args, (size_t)arg) : NULL;
        if (in && in->type == DRAY_T_EXT && in->u.ext->type == &robj_type) {
            robj *r = (robj *)in->u.ext;
            dray__log("node %d could not fetch input %d of '%s': %s", cl->nodes[p->node].id, arg,
                      p->fn->name, dray_error_message(err));
            r->lost = true;
            p->lost_tries++;
            bool ok = place_again(cl, p);
            pthread_mutex_unlock(&cl->lock);
            if (!ok)
                fail_pend(cl, p, p->refused, refusal(cl, p));
            return;
        }
    }
    char holder[80];
    int node = p->node;
    snprintf(holder, sizeof holder, "%s", node >= 0 ? cl->nodes[node].addr : "");
    dray_status st = (dray_status)dray_list_get(ctl, 0)->u.i;
    robj *rb = p->rebuild_of;
    if (rb && (h->flags & DRAY__RF_STORED)) {
        /* A rebuilt object: point the handle at its new home, then send what waited for it. */
        const dray_value *d = dray_list_get(ctl, 1);
        pthread_mutex_lock(&rb->meta);
        char old[80];
        uint64_t old_id = rb->id, copies = atomic_exchange(&rb->copies, 0);
        snprintf(old, sizeof old, "%s", rb->holder);
        snprintf(rb->holder, sizeof rb->holder, "%s", holder);
        rb->id = (uint64_t)dray_list_get(d, 0)->u.i;
        rb->node = node;
        pthread_mutex_unlock(&rb->meta);
        /* Copies other nodes cached of the lost object go. */
        robj gone = {.id = old_id};
        snprintf(gone.holder, sizeof gone.holder, "%s", old);
        for (int i = 0; i < 64 && i < cl->n_nodes; i++)
            if (copies >> i & 1)
                send_free(cl, i, &gone);
        rb->lost = rb->rebuilding = false;
        atomic_fetch_add_explicit(&cl->objects_rebuilt, 1, memory_order_relaxed);
        pend *w = rb->waiters, *failed = NULL;
        rb->waiters = NULL;
        while (w) {
            pend *next = w->next;
            reencode(w);
            if (!place(cl, w)) {
                table_take(cl, w->rid);
                w->next = failed;
                failed = w;
            }
            w = next;
        }
        pthread_cond_broadcast(&cl->cond);
        pthread_mutex_unlock(&cl->lock);
        while (failed) {
            pend *next = failed->next;
            fail_pend(cl, failed, failed->refused, refusal(cl, failed));
            failed = next;
        }
        pend_free(p);
        return;
    }
    pthread_mutex_unlock(&cl->lock);
    if (rb) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s", st ? dray_error_message(dray_list_get(ctl, 1))
                                           : "running it again gave a small result, not an object");
        p->rebuild_of = NULL;
        rebuild_failed(cl, rb, st ? st : DRAY_ETASK, msg);
        dray_value self = dray_value_of_ext(&rb->hdr);
        dray_value_release(&self);
        pend_free(p);
        return;
    }
    dray_value v;
    if (h->flags & DRAY__RF_STORED) {
        const dray_value *d = dray_list_get(ctl, 1);
        robj *r = robj_new(holder, (uint64_t)dray_list_get(d, 0)->u.i,
                           (uint64_t)dray_list_get(d, 1)->u.i, dray_list_get(d, 2)->u.b);
        lineage *l = r ? calloc(1, sizeof(*l)) : NULL;
        if (!r || !l) {
            free(r);
            fail_pend(cl, p, DRAY_ENOMEM, "out of memory for an object handle");
            return;
        }
        r->node = node;
        r->own = cl->own;
        atomic_fetch_add(&cl->own->refs, 1);
        /* The task's description becomes the object's lineage (moved, not copied). */
        *l = (lineage){p->fn, p->msg, p->len, p->args, p->objs, p->n_objs, p->cpus, p->res,
                       p->task_retries, p->retry_exc};
        p->msg = NULL;
        p->args = dray_null();
        p->objs = NULL;
        p->n_objs = 0;
        p->res = dray_null();
        r->lin = l;
        v = dray_value_of_ext(&r->hdr);
        atomic_fetch_add_explicit(&cl->stored_results, 1, memory_order_relaxed);
    } else {
        v = (h->flags & (DRAY__RF_RAW | DRAY__RF_ENCODED)) ? dray_value_retain(data)
                                                          : dray_value_retain(dray_list_get(ctl, 1));
        dray_value refs;
        if (st == DRAY_OK && dray__nested_markers(&v)) {
            /* Refs a task or an actor call returned inside a list or map: refs of this runtime
             * again. */
            if ((st = dray__nested_from_wire(cl->rt, &v, NULL, NULL, &refs))) {
                dray_value_release(&v);
                dray_error_create(st, p->fn ? p->fn->name : "result", dray_last_error(), -1,
                                  NULL, &v);
            } else {
                dray_value_release(&v);
                v = refs;
            }
        }
    }
    if (p->cell)
        dray__complete(cl->rt, p->cell, st, v, NULL);
    else
        dray_value_release(&v);
    pend_free(p);
}

dray_status dray__cluster_resolve(dray_runtime *rt, dray_value *v)
{
    if (v->type != DRAY_T_EXT || v->u.ext->type != &robj_type)
        return DRAY_OK;
    struct dray__cluster *cl = rt->cluster;
    robj *r = (robj *)v->u.ext;
    dray_status st = DRAY_OK;
    dray_value got = dray_null();
    pthread_mutex_lock(&r->lock);
    for (int attempt = 0; r->local.type == DRAY_T_NULL; attempt++) {
        char holder[80];
        pthread_mutex_lock(&r->meta);
        snprintf(holder, sizeof holder, "%s", r->holder);
        uint64_t id = r->id;
        pthread_mutex_unlock(&r->meta);
        void *dst;
        dray_value raw;
        if ((st = dray_bytes_create_uninit(r->size, &raw, &dst)))
            break;
        int64_t t0 = dray_events_now_ns();
        st = dray__pull(cl->secret, holder, id, dst, r->size);
        if (!st) /* the driver's task stream (dashboard) shows the transfer */
            dray_events_record(rt, DRAY_EVENT_TRANSFER, "cluster.pull", t0, dray_events_now_ns(),
                               r->size);
        if (!st && r->encoded) {
            st = dray_value_decode(dst, r->size, &r->local);
            dray_value_release(&raw);
            dray_value refs;
            if (!st && dray__nested_markers(&r->local)) {
                st = dray__nested_from_wire(rt, &r->local, NULL, NULL, &refs);
                dray_value_release(&r->local); /* refs returned inside a list or map */
                r->local = st ? dray_null() : refs;
            }
        } else if (!st) {
            r->local = raw;
        } else {
            dray_value_release(&raw);
        }
        if (!st) {
            atomic_fetch_add(&cl->driver_pulls, 1);
            atomic_fetch_add(&cl->driver_pulled_bytes, r->size);
            break;
        }
        if (attempt == 3 || !r->lin || st == DRAY_EFORMAT)
            break;
        /* Its node is gone or lost it: make it again from its lineage and wait. */
        char why[400];
        snprintf(why, sizeof why, "%s", dray_last_error());
        pthread_mutex_lock(&cl->lock);
        if (r->id == id && !r->rebuilding) {
            r->lost = true;
            if (!start_rebuild(cl, r)) {
                pthread_mutex_unlock(&cl->lock);
                dray_set_error(st, "%s; making it again failed: no node can run it", why);
                break;
            }
        }
        while (r->rebuilding)
            pthread_cond_wait(&cl->cond, &cl->lock);
        dray_status rst = r->id == id ? r->rebuild_st : DRAY_OK;
        pthread_mutex_unlock(&cl->lock);
        if (rst) {
            st = dray_set_error(rst, "%s; making it again failed: %s", why, r->rebuild_err);
            break;
        }
    }
    if (!st)
        got = dray_value_retain(&r->local);
    pthread_mutex_unlock(&r->lock);
    dray_value_release(v);
    if (st)
        return dray_set_error(st, "fetching the result from its node: %s", dray_last_error());
    *v = got;
    return DRAY_OK;
}

/* ==== The waiting caller reads its own result ====
 * A thread that waits for the task it just sent borrows the connection of the node running it
 * and reads the reply itself (dray__conn_pump): the result no longer goes through the driver's
 * loop thread, one thread wake-up less per round trip. It first spins on the socket for a window
 * learned from recent waits (about twice their average), when that window is short, when recent
 * spins paid, and when the machine has a core to spare (on_tick samples the run queue), then sleeps
 * in ppoll; after poll_ns it gives the connection back and waits the normal way. */

/* How long to spin for this wait (0: do not). On a lane the window is at least lane_spin_min_ns:
 * long enough for a node whose loop went to sleep to be woken and answer, so that one cold round
 * trip, spun through, warms both sides again (a shorter window failed it, the back-off then made
 * the next waits sleep, the node's loop slept too, and the round trips stayed cold). */
static int64_t spin_window(struct dray__cluster *cl, bool lane)
{
    if (cl->spin_max_ns <= 0 || (cl->spin_load_gate && !dray__spin_gate_ok(&cl->gate, lane)))
        return 0;
    int skip = atomic_load_explicit(&cl->spin_skip, memory_order_relaxed);
    if (skip > 0) {
        atomic_store_explicit(&cl->spin_skip, skip - 1, memory_order_relaxed);
        return 0;
    }
    int64_t avg = atomic_load_explicit(&cl->wait_avg_ns, memory_order_relaxed);
    int64_t cap = lane ? cl->lane_spin_max_ns : cl->spin_max_ns, floor = lane ? cl->lane_spin_min_ns : 0;
    if (avg <= 0) /* nothing learned yet: a short probe */
        return cap / 2 > floor ? cap / 2 : floor;
    /* Spun waits are shorter than slept ones, so the average of slept waits overstates: probe up
     * to the cap; failed spins back off (note_wait). */
    int64_t w = 2 * avg + 5000;
    if (w < floor)
        w = floor;
    return w < cap ? w : cap;
}

static void note_wait(struct dray__cluster *cl, int64_t took, int64_t spun, bool done)
{
    if (done) {
        int64_t avg = atomic_load_explicit(&cl->wait_avg_ns, memory_order_relaxed);
        atomic_store_explicit(&cl->wait_avg_ns, avg <= 0 ? took : avg + (took - avg) / 8,
                              memory_order_relaxed);
        atomic_fetch_add_explicit(&cl->polled_hits, 1, memory_order_relaxed);
    }
    if (!spun)
        return;
    if (done && took <= spun) {
        atomic_store_explicit(&cl->spin_fails, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&cl->spin_hits, 1, memory_order_relaxed);
    } else {
        /* A spin that did not pay: skip spinning for the next 2, 4, ... 64 waits. */
        int f = atomic_load_explicit(&cl->spin_fails, memory_order_relaxed) + 1;
        atomic_store_explicit(&cl->spin_fails, f, memory_order_relaxed);
        atomic_store_explicit(&cl->spin_skip, 1 << (f < 6 ? f : 6), memory_order_relaxed);
    }
}

bool dray__cluster_wait(dray_runtime *rt, dray_ref *const *cells, size_t n, int64_t deadline)
{
    struct dray__cluster *cl = rt->cluster;
    dray_ref *cell = n ? cells[0] : NULL;
    if (!cl || !cell || cl->poll_ns == 0 || (cl->poll_ns < 0 && !cl->lanes) || last_sent.cl != cl ||
        last_sent.cell != cell || dray__loop_on_thread(cl->loop))
        return false;
    dray__conn *c = NULL;
    pthread_mutex_lock(&cl->lock);
    pend *p = table_find(cl, last_sent.rid);
    if (p && p->cell == cell && p->node >= 0 && cl->nodes[p->node].alive)
        c = dray__conn_retain(cl->nodes[p->node].conn);
    pthread_mutex_unlock(&cl->lock);
    if (!c)
        return false;
    /* Through a lane the result costs no system call to read: worth reading by default. */
    bool lane = dray__conn_has_lane(c);
    int64_t poll = cl->poll_ns >= 0 ? cl->poll_ns : lane ? cl->lane_poll_ns : 0;
    int64_t t0 = dray__now_ns(), end = t0 + poll;
    if (deadline >= 0 && deadline < end)
        end = deadline;
    if (poll <= 0 || end <= t0) {
        dray__conn_release(c);
        return false;
    }
    /* On a lane, borrowing pays only for spinning: a caller that would sleep at once leaves the
     * lane to the loop (woken by the node's doorbell), as on a socket. */
    int64_t spin = spin_window(cl, lane);
    if (cl->poll_ns < 0 && spin == 0) {
        dray__conn_release(c);
        return false;
    }
    if (!dray__conn_borrow(c)) { /* another thread reads it: that one delivers our result too */
        dray__conn_release(c);
        return false;
    }
    atomic_fetch_add_explicit(&cl->polled_waits, 1, memory_order_relaxed);
    if (spin > end - t0)
        spin = end - t0;
    if (spin)
        atomic_fetch_add(&cl->spinners, 1);
    bool done;
    int got = 1;
    while (!(done = dray_ref_ready(cell)) && (got = dray__conn_pump(c, t0 + spin, end)) > 0) {
    }
    if (got < 0) /* the connection ended while this thread read it */
        atomic_fetch_add_explicit(&cl->polled_lost, 1, memory_order_relaxed);
    int64_t took = dray__now_ns() - t0;
    if (spin)
        atomic_fetch_sub(&cl->spinners, 1);
    dray__conn_unborrow(c);
    dray__conn_release(c);
    note_wait(cl, took, spin, done || dray_ref_ready(cell));
    return true;
}


/* Connects to the nodes in a NODES list that are new; closes those the head no longer lists. */
static void on_nodes(struct dray__cluster *cl, const dray_value *list)
{
    size_t n = dray_list_len(list);
    for (size_t i = 0; i < n; i++) {
        const dray_value *e = dray_list_get(list, i);
        int id = (int)dray_list_get(e, 0)->u.i;
        const char *addr = dray_string_cstr(dray_list_get(e, 1));
        if (id >= MAX_NODES || strlen(addr) >= sizeof cl->nodes[0].addr ||
            (cl->local_first && !strcmp(addr, cl->self)))
            continue;
        bool paused = dray_list_get(e, 4)->u.b;
        pthread_mutex_lock(&cl->lock);
        bool known = id < cl->n_nodes && cl->nodes[id].addr[0];
        if (known && cl->nodes[id].paused != paused) {
            cl->nodes[id].paused = paused;
            if (paused)
                maybe_steal(cl); /* its queued tasks can go to a node that is not paused */
        }
        pthread_mutex_unlock(&cl->lock);
        if (known)
            continue;
        dray__conn *c;
        if (dray__loop_dial_lane(cl->loop, addr, cl->local_first ? "node" : "driver", 5000,
                                 cl->lanes, &c)) {
            dray__log("cannot reach node %d at %s: %s", id, addr, dray_last_error());
            continue;
        }
        pthread_mutex_lock(&cl->lock);
        rnode *nd = &cl->nodes[id];
        nd->id = id;
        snprintf(nd->addr, sizeof nd->addr, "%s", addr);
        nd->cpus = (int)dray_list_get(e, 2)->u.i;
        nd->res = dray_value_retain(dray_list_get(e, 3));
        nd->conn = dray__conn_retain(c);
        nd->alive = true;
        nd->paused = paused;
        dray__conn_set_user(c, nd);
        if (id >= cl->n_nodes)
            cl->n_nodes = id + 1;
        /* Tasks that waited for a node go out now. */
        pend *w = cl->waiting;
        cl->waiting = NULL;
        while (w) {
            pend *next = w->next;
            place(cl, w);
            w = next;
        }
        pthread_mutex_unlock(&cl->lock);
    }
    /* Nodes the head declared dead (a hung process keeps its socket open). */
    pthread_mutex_lock(&cl->lock);
    dray__conn *gone[64];
    int ngone = 0;
    for (int k = 0; k < cl->n_nodes && ngone < 64; k++) {
        if (!cl->nodes[k].alive)
            continue;
        bool listed = false;
        for (size_t i = 0; i < n; i++)
            listed |= dray_list_get(dray_list_get(list, i), 0)->u.i == k;
        if (!listed)
            gone[ngone++] = dray__conn_retain(cl->nodes[k].conn);
    }
    cl->got_nodes = true;
    pthread_cond_broadcast(&cl->cond);
    pthread_mutex_unlock(&cl->lock);
    for (int i = 0; i < ngone; i++) {
        dray__conn_close(gone[i], "the head reports the node dead");
        dray__conn_release(gone[i]);
    }
}

static void on_message(dray__loop *l, dray__conn *c, const dray__hdr *h, const dray_value *ctl,
                       const dray_value *data)
{
    struct dray__cluster *cl = dray__loop_user(l);
    if (h->type == DRAY__MSG_RESULT && dray__conn_user(c))
        on_result(cl, h, ctl, data);
    else if (h->type == DRAY__MSG_NODES && !dray__conn_user(c))
        on_nodes(cl, ctl);
    else
        dray__conn_close(c, "unexpected message type for a driver");
}

/* A node's connection closed: its tasks go to other nodes while retries last. */
static void on_close(dray__loop *l, dray__conn *c)
{
    struct dray__cluster *cl = dray__loop_user(l);
    rnode *nd = dray__conn_user(c);
    if (!nd) {
        if (!cl->closing)
            dray__log("lost the connection to the head %s", cl->address);
        return;
    }
    pthread_mutex_lock(&cl->lock);
    if (!nd->alive || cl->closing) {
        pthread_mutex_unlock(&cl->lock);
        return;
    }
    dray__log("node %d (%s) lost: resending its %lld tasks", nd->id, nd->addr,
              (long long)nd->inflight);
    nd->alive = false;
    pend *list = nd->list, *failed = NULL;
    nd->list = NULL;
    nd->inflight = 0;
    nd->cpu_inflight = 0;
    uint64_t retried = 0;
    pend *calls = restart_actors(cl, (int)(nd - cl->nodes), &list);
    while (list) {
        pend *p = list, *next = p->next;
        list = next;
        if (p->retries_left > 0) {
            p->retries_left--;
            retried++;
            if (place(cl, p))
                continue;
        }
        table_take(cl, p->rid);
        p->next = failed;
        failed = p;
    }
    pthread_mutex_unlock(&cl->lock);
    dray__conn_release(c); /* the node's count */
    if (retried)
        dray__count(&dray__thread_counters(cl->rt)->retried, retried);
    char msg[200];
    snprintf(msg, sizeof msg, "node %d (%s) was lost while running it and no retry is left",
             nd->id, nd->addr);
    while (failed) {
        pend *next = failed->next;
        fail_pend(cl, failed, DRAY_ENET, msg);
        failed = next;
    }
    snprintf(msg, sizeof msg, "the actor's node %d (%s) was lost while running this call",
             nd->id, nd->addr);
    while (calls) {
        pend *next = calls->next;
        fail_pend(cl, calls, DRAY_EACTOR, msg);
        calls = next;
    }
}

static void on_tick(dray__loop *l)
{
    struct dray__cluster *cl = dray__loop_user(l);
    int64_t now = dray__now_ns();
    pend *expired = NULL;
    if (cl->spin_max_ns > 0 && cl->spin_load_gate)
        dray__spin_gate_sample(&cl->gate, 1 + atomic_load(&cl->spinners));
    pthread_mutex_lock(&cl->lock);
    for (pend *p = cl->waiting, *next; p; p = next) {
        next = p->next;
        if (now - p->since_ns < cl->no_node_timeout_ns)
            continue;
        list_remove(&cl->waiting, p);
        table_take(cl, p->rid);
        p->next = expired;
        expired = p;
    }
    pthread_mutex_unlock(&cl->lock);
    char msg[200];
    snprintf(msg, sizeof msg, "no worker node was available for %lld ms",
             (long long)(cl->no_node_timeout_ns / 1000000));
    while (expired) {
        pend *next = expired->next;
        fail_pend(cl, expired, DRAY_ERESOURCE, msg);
        expired = next;
    }
}

/* ==== Attach and detach ==== */

static int64_t env_int(const char *name, int64_t dflt)
{
    const char *v = getenv(name);
    return v && *v ? atoll(v) : dflt;
}

/* Creates the client of rt, subscribed to the head at `address` (as a driver, or as node `self` in
 * local-first mode), and starts its loop: rt->cluster is set on DRAY_OK. */
static dray_status attach_client(dray_runtime *rt, const char *address, const char *self,
                                 double spill_queue, const dray__spill_store *store)
{
    uint8_t secret[32];
    dray_status st = dray__secret_load(address, secret);
    if (st)
        return st;
    struct dray__cluster *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return dray_set_error(DRAY_ENOMEM, "out of memory attaching to %s", address);
    cl->rt = rt;
    cl->last_node = -1;
    memcpy(cl->secret, secret, 32);
    if (!(cl->own = calloc(1, sizeof(*cl->own)))) {
        free(cl);
        return dray_set_error(DRAY_ENOMEM, "out of memory attaching to %s", address);
    }
    atomic_init(&cl->own->refs, 1);
    pthread_mutex_init(&cl->own->lock, NULL);
    cl->own->cl = cl;
    snprintf(cl->address, sizeof cl->address, "%s", address);
    cl->local_first = self != NULL;
    snprintf(cl->self, sizeof cl->self, "%s", self ? self : "");
    cl->spill_queue = spill_queue;
    if (store)
        cl->store = *store;
    pthread_mutex_init(&cl->lock, NULL);
    pthread_cond_init(&cl->cond, NULL);
    cl->no_node_timeout_ns = env_int("DRAY_NO_NODE_TIMEOUT_MS", 30000) * 1000000;
    cl->default_retries = (int)env_int("DRAY_MAX_RETRIES", 3);
    const char *slack = getenv("DRAY_LOCALITY_SLACK");
    cl->locality_slack = slack && atof(slack) >= 0 ? atof(slack) : 2.0;
    /* Unset (-1): off for sockets (on a quiet machine borrowing the connection made the round trip
     * slower: docs/cluster.md, *Latency path*), lane_poll_ns for lanes. Set: for both. */
    cl->poll_ns = getenv("DRAY_CLUSTER_POLL_US") ? env_int("DRAY_CLUSTER_POLL_US", 0) * 1000 : -1;
    cl->spin_max_ns = env_int("DRAY_CLUSTER_SPIN_US", 100) * 1000;
    cl->spin_load_gate = env_int("DRAY_CLUSTER_SPIN_LOAD_GATE", 1) != 0;
    /* Same-host lanes to the nodes (lane.c): on unless DRAY_LANE=0. A caller waiting on a result
     * that comes through one reads the lane itself for up to lane_poll_ns. */
    cl->lanes = env_int("DRAY_LANE", 1) != 0 && !self; /* a node's spill client: sockets only */
    cl->lane_poll_ns = env_int("DRAY_LANE_POLL_US", 2000) * 1000;
    cl->lane_spin_min_ns = env_int("DRAY_LANE_WAIT_SPIN_MIN_US", 250) * 1000;
    cl->lane_spin_max_ns = env_int("DRAY_LANE_WAIT_SPIN_MAX_US", 500) * 1000;
    dray__spin_gate_init(&cl->gate);
    dray__loop_ops ops = {on_message, NULL, on_close, on_tick};
    if ((st = dray__loop_create(&ops, cl, secret, NULL, 0, &cl->loop)))
        goto out_free;
    dray__conn *head;
    dray_value nul = dray_null();
    if ((st = dray__loop_dial(cl->loop, address, self ? "node" : "driver", 10000, &head)) ||
        (st = dray__conn_send_value(head, DRAY__MSG_SUBSCRIBE, 0, 0, &nul, NULL)))
        goto out_loop;
    rt->cluster = cl;
    if ((st = dray__loop_start(cl->loop))) {
        rt->cluster = NULL;
        goto out_loop;
    }
    return DRAY_OK;
out_loop:
    dray__loop_destroy(cl->loop);
out_free:
    pthread_cond_destroy(&cl->cond);
    pthread_mutex_destroy(&cl->lock);
    owner_release(cl->own);
    free(cl);
    return st;
}

dray_status dray__cluster_attach_local_first(dray_runtime *rt, const char *address,
                                             const char *self, double spill_queue,
                                             const dray__spill_store *store)
{
    return attach_client(rt, address, self, spill_queue, store);
}

bool dray__cluster_local_first(const dray_runtime *rt)
{
    return rt->cluster && rt->cluster->local_first;
}

uint64_t dray__cluster_tasks_spilled(dray_runtime *rt)
{
    return rt->cluster ? atomic_load(&rt->cluster->tasks_spilled) : 0;
}

dray_status dray__cluster_attach(dray_runtime *rt, const char *address)
{
    dray_status st = attach_client(rt, address, NULL, 0, NULL);
    if (st)
        return st;
    struct dray__cluster *cl = rt->cluster;
    /* Wait for the first node list (and DRAY_MIN_NODES nodes, for benchmarks and tests). */
    int64_t min_nodes = env_int("DRAY_MIN_NODES", 0);
    int64_t deadline = dray__now_ns() + env_int("DRAY_CONNECT_TIMEOUT_MS", 10000) * 1000000;
    pthread_mutex_lock(&cl->lock);
    for (;;) {
        int alive = 0;
        for (int i = 0; i < cl->n_nodes; i++)
            alive += cl->nodes[i].alive;
        if (cl->got_nodes && alive >= min_nodes)
            break;
        if (dray__now_ns() > deadline) {
            pthread_mutex_unlock(&cl->lock);
            st = dray_set_error(DRAY_ETIMEDOUT, "cluster %s: %d of %lld nodes after the timeout",
                                address, alive, (long long)min_nodes);
            dray__cluster_detach(rt);
            return st;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&cl->cond, &cl->lock, &ts);
    }
    pthread_mutex_unlock(&cl->lock);
    return DRAY_OK;
}

void dray__cluster_detach(dray_runtime *rt)
{
    struct dray__cluster *cl = rt->cluster;
    if (!cl)
        return;
    /* Handles that outlive the client free nothing: the nodes free a driver's objects when its
     * connection goes. */
    pthread_mutex_lock(&cl->own->lock);
    cl->own->cl = NULL;
    pthread_mutex_unlock(&cl->own->lock);
    owner_release(cl->own);
    dray__loop_stop(cl->loop);
    pthread_mutex_lock(&cl->lock);
    cl->closing = true;
    pend *all = NULL;
    for (size_t i = 0; i < cl->nbuckets; i++)
        for (pend *p = cl->buckets[i], *next; p; p = next) {
            next = p->hnext;
            p->next = all;
            all = p;
        }
    free(cl->buckets);
    cl->buckets = NULL;
    cl->nbuckets = cl->count = 0;
    pthread_mutex_unlock(&cl->lock);
    while (all) {
        pend *next = all->next;
        fail_pend(cl, all, DRAY_ESHUTDOWN, "the runtime shut down before the result arrived");
        all = next;
    }
    dray__loop_destroy(cl->loop);
    for (int i = 0; i < cl->n_nodes; i++) {
        if (cl->nodes[i].alive)
            dray__conn_release(cl->nodes[i].conn);
        dray_value_release(&cl->nodes[i].res);
    }
    while (cl->actors) {
        ractor *a = cl->actors;
        cl->actors = a->next;
        dray_free(a->create_msg);
        free(a);
    }
    rt->cluster = NULL;
    pthread_cond_destroy(&cl->cond);
    pthread_mutex_destroy(&cl->lock);
    free(cl);
}

dray_status dray_cluster_client_stats(dray_runtime *rt, dray_value *out)
{
    if (!rt || !out)
        return dray_set_error(DRAY_EINVAL, "dray_cluster_client_stats: NULL argument");
    struct dray__cluster *cl = rt->cluster;
    if (!cl)
        return dray_set_error(DRAY_EINVAL, "dray_cluster_client_stats: the runtime is not attached "
                              "to a cluster");
    static const char *keys[] = {"placed_local",   "placed_load",    "placed_spill",
                                 "stored_results", "objects_freed",  "driver_pulls",
                                 "driver_pulled_bytes", "objects_rebuilt", "steal_requests",
                                 "tasks_stolen", "polled_waits", "polled_hits", "spin_hits",
                                 "polled_lost", "lanes", "lane_sent", "lane_received",
                                 "tasks_spilled", "spill_returned"};
    /* Same-host lanes of the nodes connected now. */
    int64_t lanes = 0, lane_sent = 0, lane_received = 0;
    pthread_mutex_lock(&cl->lock);
    for (int i = 0; i < cl->n_nodes; i++) {
        if (!cl->nodes[i].alive || !dray__conn_has_lane(cl->nodes[i].conn))
            continue;
        uint64_t s, r;
        dray__conn_lane_counts(cl->nodes[i].conn, &s, &r);
        lanes++;
        lane_sent += (int64_t)s;
        lane_received += (int64_t)r;
    }
    pthread_mutex_unlock(&cl->lock);
    dray_value v[19] = {
        dray_int((int64_t)atomic_load(&cl->placed_local)),
        dray_int((int64_t)atomic_load(&cl->placed_load)),
        dray_int((int64_t)atomic_load(&cl->placed_spill)),
        dray_int((int64_t)atomic_load(&cl->stored_results)),
        dray_int((int64_t)atomic_load(&cl->objects_freed)),
        dray_int((int64_t)atomic_load(&cl->driver_pulls)),
        dray_int((int64_t)atomic_load(&cl->driver_pulled_bytes)),
        dray_int((int64_t)atomic_load(&cl->objects_rebuilt)),
        dray_int((int64_t)atomic_load(&cl->steal_requests)),
        dray_int((int64_t)atomic_load(&cl->tasks_stolen)),
        dray_int((int64_t)atomic_load(&cl->polled_waits)),
        dray_int((int64_t)atomic_load(&cl->polled_hits)),
        dray_int((int64_t)atomic_load(&cl->spin_hits)),
        dray_int((int64_t)atomic_load(&cl->polled_lost)),
        dray_int(lanes), dray_int(lane_sent), dray_int(lane_received),
        dray_int((int64_t)atomic_load(&cl->tasks_spilled)),
        dray_int((int64_t)atomic_load(&cl->spill_returned))};
    return dray_map_create(keys, v, 19, out);
}
