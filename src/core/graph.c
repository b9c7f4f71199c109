/* Lazy graphs (Dask delayed): nodes with keys, built without running anything; at compute time the
 * graph is culled to what the outputs need, linear chains are fused into single tasks, and the rest
 * is submitted to the eager runtime in topological order (node ids are topological because a node's
 * arguments must exist before it). Our refs to intermediates are dropped as soon as their consumers are
 * submitted, so each intermediate result is freed right after its last consumer ran. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

typedef struct gnode {
    char *key;
    const dray_function *fn;
    dray_value *args;
    uint32_t nargs;
    uint32_t nnode_args; /* how many arguments are nodes */
} gnode;

/* Node arguments and keys come from an arena of blocks freed with the graph: one malloc per block,
 * not per node. */
typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} arena_block;

struct dray_graph {
    dray_runtime *rt;
    arena_block *arena;
    gnode *nodes;
    size_t n, cap;
    uint32_t *keys; /* open-addressing index of keyed nodes: node id + 1, 0 empty */
    size_t keys_cap, nkeys;
    dray_graph_stats last;
};

/* ==== Building ==== */

static void *arena_alloc(dray_graph *g, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    arena_block *b = g->arena;
    if (!b || b->cap - b->used < size) {
        size_t cap = size > 65536 ? size : 65536;
        b = malloc(sizeof(*b) + cap);
        if (!b)
            return NULL;
        b->next = g->arena;
        b->used = 0;
        b->cap = cap;
        g->arena = b;
    }
    void *p = b->data + b->used;
    b->used += size;
    return p;
}

dray_status dray_graph_create(dray_runtime *rt, dray_graph **out)
{
    if (!rt || !out)
        return dray_set_error(DRAY_EINVAL, "dray_graph_create: runtime or out is NULL");
    dray_graph *g = calloc(1, sizeof(*g));
    if (!g)
        return dray_set_error(DRAY_ENOMEM, "out of memory creating a graph");
    g->rt = rt;
    *out = g;
    return DRAY_OK;
}

void dray_graph_destroy(dray_graph *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n; i++) {
        gnode *nd = &g->nodes[i];
        for (uint32_t a = 0; a < nd->nargs; a++)
            dray_value_release(&nd->args[a]);
    }
    while (g->arena) {
        arena_block *next = g->arena->next;
        free(g->arena);
        g->arena = next;
    }
    free(g->nodes);
    free(g->keys);
    free(g);
}

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static long key_find(const dray_graph *g, const char *key)
{
    if (!g->keys_cap)
        return -1;
    size_t mask = g->keys_cap - 1;
    for (size_t i = hash_key(key) & mask; g->keys[i]; i = (i + 1) & mask)
        if (strcmp(g->nodes[g->keys[i] - 1].key, key) == 0)
            return (long)g->keys[i] - 1;
    return -1;
}

static dray_status key_insert(dray_graph *g, uint32_t id)
{
    if (2 * (g->nkeys + 1) > g->keys_cap) {
        size_t cap = g->keys_cap ? 2 * g->keys_cap : 64;
        uint32_t *keys = calloc(cap, sizeof(uint32_t));
        if (!keys)
            return dray_set_error(DRAY_ENOMEM, "out of memory indexing graph keys");
        for (size_t i = 0; i < g->keys_cap; i++)
            if (g->keys[i]) {
                size_t j = hash_key(g->nodes[g->keys[i] - 1].key) & (cap - 1);
                while (keys[j])
                    j = (j + 1) & (cap - 1);
                keys[j] = g->keys[i];
            }
        free(g->keys);
        g->keys = keys;
        g->keys_cap = cap;
    }
    size_t mask = g->keys_cap - 1;
    size_t i = hash_key(g->nodes[id].key) & mask;
    while (g->keys[i])
        i = (i + 1) & mask;
    g->keys[i] = id + 1;
    g->nkeys++;
    return DRAY_OK;
}

dray_status dray_graph_add(dray_graph *g, const char *key, const dray_function *fn,
                           const dray_value *args, size_t nargs, dray_node *out)
{
    if (!g || !fn || !fn->fn || (!args && nargs))
        return dray_set_error(DRAY_EINVAL, "dray_graph_add: graph, function or args is NULL");
    if (nargs > UINT16_MAX)
        return dray_set_error(DRAY_EINVAL, "dray_graph_add: %zu arguments, at most %u", nargs,
                              (unsigned)UINT16_MAX);
    if (g->n >= UINT32_MAX - 1)
        return dray_set_error(DRAY_ERANGE, "dray_graph_add: the graph is full");
    if (key && key_find(g, key) >= 0)
        return dray_set_error(DRAY_EINVAL, "dray_graph_add: duplicate key '%s'", key);
    uint32_t nnodes = 0;
    for (size_t i = 0; i < nargs; i++) {
        const dray_value *v = &args[i];
        if (v->type == DRAY_T_NODE) {
            if (v->u.node >= g->n)
                return dray_set_error(DRAY_EINVAL,
                                      "dray_graph_add '%s': argument %zu names node %llu, which "
                                      "does not exist",
                                      key ? key : fn->name, i, (unsigned long long)v->u.node);
            nnodes++;
        } else if (v->type >= DRAY__T_COUNT || (v->type == DRAY_T_REF && !v->u.ref)) {
            return dray_set_error(DRAY_EINVAL, "dray_graph_add '%s': argument %zu is invalid",
                                  key ? key : fn->name, i);
        }
    }
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 256;
        gnode *nodes = realloc(g->nodes, cap * sizeof(gnode));
        if (!nodes)
            return dray_set_error(DRAY_ENOMEM, "out of memory growing the graph");
        g->nodes = nodes;
        g->cap = cap;
    }
    gnode *nd = &g->nodes[g->n];
    memset(nd, 0, sizeof(*nd));
    if (nargs && !(nd->args = arena_alloc(g, nargs * sizeof(dray_value))))
        return dray_set_error(DRAY_ENOMEM, "out of memory copying node arguments");
    if (key) {
        size_t kl = strlen(key) + 1;
        if (!(nd->key = arena_alloc(g, kl)))
            return dray_set_error(DRAY_ENOMEM, "out of memory copying a key");
        memcpy(nd->key, key, kl);
    }
    nd->fn = fn;
    nd->nargs = (uint32_t)nargs;
    nd->nnode_args = nnodes;
    for (size_t i = 0; i < nargs; i++)
        nd->args[i] = args[i].type == DRAY_T_NODE ? args[i] : dray_value_retain(&args[i]);
    uint32_t id = (uint32_t)g->n;
    if (key && key_insert(g, id)) {
        for (size_t i = 0; i < nargs; i++)
            dray_value_release(&nd->args[i]);
        return DRAY_ENOMEM; /* the arena space is reclaimed with the graph */
    }
    g->n++;
    if (out)
        out->id = id;
    return DRAY_OK;
}

dray_status dray_graph_add_named(dray_graph *g, const char *key, const char *fn_name,
                                 const dray_value *args, size_t nargs, dray_node *out)
{
    if (!g || !fn_name)
        return dray_set_error(DRAY_EINVAL, "dray_graph_add: graph or function name is NULL");
    const dray_function *fn = dray__fn_lookup(g->rt, fn_name);
    if (!fn)
        return dray_set_error(DRAY_ENOTFOUND, "dray_graph_add: no task function '%s'", fn_name);
    return dray_graph_add(g, key, fn, args, nargs, out);
}

dray_status dray_graph_find(const dray_graph *g, const char *key, dray_node *out)
{
    if (!g || !key || !out)
        return dray_set_error(DRAY_EINVAL, "dray_graph_find: NULL argument");
    long id = key_find(g, key);
    if (id < 0)
        return dray_set_error(DRAY_ENOTFOUND, "no node with key '%s' in the graph", key);
    out->id = (uint32_t)id;
    return DRAY_OK;
}

size_t dray_graph_size(const dray_graph *g)
{
    return g ? g->n : 0;
}

void dray_graph_last_stats(const dray_graph *g, dray_graph_stats *out)
{
    if (g && out)
        *out = g->last;
}

/* ==== Fused chains ====
 * A chain runs member functions in order; each member's arguments are external arguments of the
 * chain task or the previous member's result. It travels as an extension object in argument 0. */
typedef struct chain_member {
    const dray_function *fn;
    uint32_t nargs;
    int32_t *src; /* per argument: -1 the previous result, else index into the task's arguments */
} chain_member;

typedef struct chain {
    dray_ext_obj hdr;
    size_t n;
    chain_member m[];
} chain;

static void chain_destroy(dray_ext_obj *obj)
{
    chain *ch = (chain *)obj;
    for (size_t i = 0; i < ch->n; i++)
        free(ch->m[i].src);
    free(ch);
}

static dray_ext_type chain_type = {"core.fused_chain", chain_destroy, NULL, NULL, NULL};
DRAY_EXT_TYPE(chain_type)

DRAY_FUNCTION(dray_fused_chain)
{
    const chain *ch = (const chain *)args[0].u.ext;
    dray_value prev = dray_null(), tmp_stack[8];
    dray_status st = DRAY_OK;
    for (size_t k = 0; k < ch->n; k++) {
        const chain_member *m = &ch->m[k];
        dray_value *tmp = m->nargs <= 8 ? tmp_stack : malloc(m->nargs * sizeof(dray_value));
        if (!tmp) {
            st = dray_ctx_fail(ctx, DRAY_ENOMEM, "out of memory in a fused task");
            break;
        }
        for (uint32_t a = 0; a < m->nargs; a++)
            tmp[a] = m->src[a] < 0 ? prev : args[m->src[a]];
        dray_value out = dray_null();
        dray__clear_error();
        st = m->fn->fn(ctx, tmp, m->nargs, &out);
        if (tmp != tmp_stack)
            free(tmp);
        dray_value_release(&prev);
        prev = out;
        if (st) {
            /* The member's error, wrapped once per later member: the same chain as unfused. */
            dray_value err = dray_null();
            if (prev.type == DRAY_T_ERROR)
                err = dray_value_retain(&prev);
            else if (dray_error_create(st, m->fn->name,
                                       dray_last_error()[0] ? dray_last_error()
                                                            : dray_status_str(st),
                                       -1, NULL, &err) != DRAY_OK)
                return st;
            for (size_t later = k + 1; later < ch->n; later++) {
                int arg = 0;
                while (ch->m[later].src[arg] >= 0)
                    arg++;
                char msg[64];
                snprintf(msg, sizeof msg, "input %d failed", arg);
                dray_value wrapped;
                if (dray_error_create(DRAY_EDEP, ch->m[later].fn->name, msg, arg, &err,
                                      &wrapped) != DRAY_OK)
                    break;
                dray_value_release(&err);
                err = wrapped;
            }
            dray_value_release(&prev);
            *result = err;
            return dray_error_status(&err);
        }
    }
    *result = prev;
    return st;
}

/* ==== Submitting ==== */

typedef struct plan {
    uint8_t *needed;      /* culled away when 0 */
    uint8_t *is_output;
    uint32_t *consumers;  /* needed consumers (argument occurrences) */
    int32_t *fused_into;  /* -1, or the node whose task runs this one */
    dray_ref **refs;      /* each submitted node's ref (held until its consumers are submitted) */
} plan;

static void plan_free(plan *p)
{
    free(p->needed);
    free(p->is_output);
    free(p->consumers);
    free(p->fused_into);
    free(p->refs);
}

/* Single predecessor node of nd if nd's only node argument is one node, else -1. */
static long single_pred(const gnode *nd)
{
    if (nd->nnode_args != 1)
        return -1;
    for (uint32_t a = 0; a < nd->nargs; a++)
        if (nd->args[a].type == DRAY_T_NODE)
            return (long)nd->args[a].u.node;
    return -1;
}

/* Builds and submits the task for node `tail` (with its fused predecessors). */
static dray_status submit_node(dray_graph *g, plan *p, uint32_t tail, dray_ref **out)
{
    /* Chain length: follow fused predecessors back to the head. */
    size_t len = 1;
    for (long cur = tail;;) {
        long pr = single_pred(&g->nodes[cur]);
        if (pr < 0 || p->fused_into[pr] != cur)
            break;
        len++;
        cur = pr;
    }
    dray_status st = DRAY_OK;
    if (len == 1) {
        gnode *nd = &g->nodes[tail];
        dray_value stack[8], *args = nd->nargs <= 8 ? stack : malloc(nd->nargs * sizeof(dray_value));
        if (!args)
            return dray_set_error(DRAY_ENOMEM, "out of memory submitting a graph");
        for (uint32_t a = 0; a < nd->nargs; a++)
            args[a] = nd->args[a].type == DRAY_T_NODE
                          ? dray_value_of_ref(p->refs[nd->args[a].u.node])
                          : nd->args[a];
        dray_ref *c;
        if (g->rt->cluster) {
            st = dray__cluster_submit(g->rt, nd->fn, args, nd->nargs, NULL, &c);
        } else if (!(st = dray__make_task(g->rt, nd->fn, args, nd->nargs, NULL, DRAY__CELL_TASK,
                                          &c))) {
            dray__submit_cell(g->rt, c);
        }
        if (args != stack)
            free(args);
        if (st)
            return st;
        *out = c;
        return DRAY_OK;
    }
    uint32_t *ids = malloc(len * sizeof(uint32_t));
    chain *ch = calloc(1, sizeof(chain) + len * sizeof(chain_member));
    size_t next_arg = 1, total_args = 1;
    dray_value *args = NULL;
    if (ch) {
        dray_ext_obj_init(&ch->hdr, &chain_type);
        ch->n = len;
    }
    if (!ids || !ch) {
        st = dray_set_error(DRAY_ENOMEM, "out of memory fusing a chain");
        goto out;
    }
    {
        long cur = tail;
        for (size_t k = len; k-- > 0; cur = single_pred(&g->nodes[cur]))
            ids[k] = (uint32_t)cur;
    }
    for (size_t k = 0; k < len; k++)
        total_args += g->nodes[ids[k]].nargs;
    if (!(args = malloc(total_args * sizeof(dray_value)))) {
        st = dray_set_error(DRAY_ENOMEM, "out of memory fusing a chain");
        goto out;
    }
    for (size_t k = 0; k < len; k++) {
        gnode *nd = &g->nodes[ids[k]];
        chain_member *m = &ch->m[k];
        m->fn = nd->fn;
        m->nargs = nd->nargs;
        if (nd->nargs && !(m->src = malloc(nd->nargs * sizeof(int32_t)))) {
            st = dray_set_error(DRAY_ENOMEM, "out of memory fusing a chain");
            goto out;
        }
        for (uint32_t a = 0; a < nd->nargs; a++) {
            const dray_value *v = &nd->args[a];
            if (k > 0 && v->type == DRAY_T_NODE && v->u.node == ids[k - 1]) {
                m->src[a] = -1;
                continue;
            }
            m->src[a] = (int32_t)next_arg;
            args[next_arg++] = v->type == DRAY_T_NODE ? dray_value_of_ref(p->refs[v->u.node]) : *v;
        }
    }
    args[0] = dray_value_of_ext(&ch->hdr);
    dray_ref *c;
    st = dray__make_task(g->rt, &dray__fn_def_dray_fused_chain, args, next_arg, NULL, DRAY__CELL_TASK, &c);
    if (st == DRAY_OK) {
        dray__submit_cell(g->rt, c);
        *out = c;
    }
out:
    free(args);
    free(ids);
    if (ch) {
        dray_value v = dray_value_of_ext(&ch->hdr);
        dray_value_release(&v); /* the task holds its own count */
    }
    return st;
}

dray_status dray_graph_submit(dray_graph *g, const dray_node *outputs, size_t n, dray_ref **refs)
{
    if (!g || (!outputs && n) || (!refs && n))
        return dray_set_error(DRAY_EINVAL, "dray_graph_submit: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (outputs[i].id >= g->n)
            return dray_set_error(DRAY_EINVAL, "dray_graph_submit: output %zu names node %u, "
                                               "which does not exist", i, outputs[i].id);
    plan p = {0};
    dray_status st = DRAY_ENOMEM;
    size_t N = g->n;
    p.needed = calloc(N ? N : 1, 1);
    p.is_output = calloc(N ? N : 1, 1);
    p.consumers = calloc(N ? N : 1, sizeof(uint32_t));
    p.fused_into = malloc((N ? N : 1) * sizeof(int32_t));
    p.refs = calloc(N ? N : 1, sizeof(dray_ref *));
    if (!p.needed || !p.is_output || !p.consumers || !p.fused_into || !p.refs) {
        dray_set_error(DRAY_ENOMEM, "out of memory planning a %zu-node graph", N);
        goto out;
    }
    /* Cull: ids are topological, so one backward sweep marks everything the outputs need. */
    for (size_t i = 0; i < n; i++)
        p.needed[outputs[i].id] = p.is_output[outputs[i].id] = 1;
    for (size_t i = N; i-- > 0;) {
        if (!p.needed[i])
            continue;
        gnode *nd = &g->nodes[i];
        for (uint32_t a = 0; a < nd->nargs; a++)
            if (nd->args[a].type == DRAY_T_NODE) {
                p.needed[nd->args[a].u.node] = 1;
                p.consumers[nd->args[a].u.node]++;
            }
    }
    /* Fuse: a node whose only node argument is a non-output node consumed only by it. */
    size_t culled = 0, fused = 0, tasks = 0;
    for (size_t i = 0; i < N; i++) {
        p.fused_into[i] = -1;
        culled += !p.needed[i];
    }
    /* On a cluster every node is its own task (fused chains are not sent over the wire), except on
     * a worker node's own runtime: its chains run there (local first). */
    bool fuse = !g->rt->cluster || (dray__cluster_local_first && dray__cluster_local_first(g->rt));
    for (size_t i = 0; i < N; i++) {
        if (!p.needed[i])
            continue;
        long pred = single_pred(&g->nodes[i]);
        if (pred >= 0 && p.consumers[pred] == 1 && !p.is_output[pred] && fuse) {
            p.fused_into[pred] = (int32_t)i;
            fused++;
        }
    }
    /* Submit in id order; drop our ref to a node once all its consumers hold theirs. */
    struct dray__evgraph *evg = NULL; /* the dashboard's progress of this graph, when recording */
    if (atomic_load_explicit(&g->rt->events, memory_order_relaxed))
        evg = dray__ev_graph_begin(g->rt, N - culled - fused);
    for (size_t i = 0; i < N; i++) {
        if (!p.needed[i] || p.fused_into[i] >= 0)
            continue;
        if ((st = submit_node(g, &p, (uint32_t)i, &p.refs[i]))) {
            dray__ev_graph_end(evg);
            goto out_release;
        }
        dray__ev_graph_task(evg, p.refs[i]);
        tasks++;
        for (long cur = (long)i; cur >= 0;) {
            gnode *m = &g->nodes[cur];
            for (uint32_t a = 0; a < m->nargs; a++) {
                if (m->args[a].type != DRAY_T_NODE)
                    continue;
                uint32_t d = (uint32_t)m->args[a].u.node;
                if (p.fused_into[d] >= 0)
                    continue; /* inside the chain */
                if (--p.consumers[d] == 0 && !p.is_output[d]) {
                    dray_ref_release(p.refs[d]);
                    p.refs[d] = NULL;
                }
            }
            long pr = single_pred(m);
            cur = pr >= 0 && p.fused_into[pr] == cur ? pr : -1;
        }
    }
    dray__ev_graph_end(evg);
    for (size_t i = 0; i < n; i++)
        refs[i] = dray_ref_retain(p.refs[outputs[i].id]);
    g->last.nodes = N;
    g->last.culled = culled;
    g->last.fused = fused;
    g->last.tasks = tasks;
    st = DRAY_OK;
out_release:
    for (size_t i = 0; i < N; i++)
        if (p.refs[i])
            dray_ref_release(p.refs[i]);
out:
    plan_free(&p);
    return st;
}

dray_status dray_graph_compute(dray_graph *g, const dray_node *outputs, size_t n,
                               dray_value *results)
{
    if (!g || (!outputs && n) || (!results && n))
        return dray_set_error(DRAY_EINVAL, "dray_graph_compute: NULL argument");
    dray_ref *stack[16], **refs = n <= 16 ? stack : malloc(n * sizeof(dray_ref *));
    if (!refs)
        return dray_set_error(DRAY_ENOMEM, "out of memory");
    dray_stats before; /* the progress bar counts the graph's tasks from before they start */
    if (g->rt->progress)
        dray_runtime_stats(g->rt, &before);
    dray_status st = dray_graph_submit(g, outputs, n, refs);
    if (st)
        goto out;
    if (g->rt->progress)
        dray__progress_wait(g->rt, refs, n, "compute", &before);
    else
        dray__wait_all(g->rt, refs, n);
    size_t got = 0;
    for (; got < n; got++)
        if ((st = dray_get(g->rt, refs[got], -1, NULL)) ||
            (st = dray_get(g->rt, refs[got], -1, &results[got])))
            break;
    if (st)
        for (size_t i = 0; i < got; i++)
            dray_value_release(&results[i]);
    for (size_t i = 0; i < n; i++)
        dray_ref_release(refs[i]);
out:
    if (refs != stack)
        free(refs);
    return st;
}
