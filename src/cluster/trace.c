/* A worker node's task events for the head's dashboard: once the head sends TRACE, the node's
 * runtime records into its per-thread rings; every loop tick (100 ms) this drains them into bounded
 * EVENTS batches for the head, with the TRACE/EVENTS clock samples the head estimates offsets from. */
#include <stdlib.h>
#include <string.h>

#include "../core/events.h"
#include "internal.h"

#define SUBS 256

struct dray__trace {
    int64_t t1, t2;   /* the last TRACE: head clock, node clock when it came */
    bool fresh;       /* a TRACE came since the last batch: send one even when empty */
    dray__conn *head; /* borrowed for a flush */
    uint64_t dropped; /* tasks lost to full rings, since recording began */
    /* Tasks received (minus taken back) per function since the last batch. */
    const char *sub_name[SUBS];
    int64_t sub_n[SUBS];
    size_t n_sub;
    /* The batch being built. */
    const char *names[DRAY__EVNAMES_MAX];
    size_t n_names;
    uint8_t *recs; /* DRAY__EVREC_MAX records */
    size_t n_recs;
};

static void put(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

dray_status dray__trace_on(dray__trace **tp, dray_runtime *rt, const dray_value *ctl)
{
    dray__trace *t = *tp;
    if (!t) {
        dray_status st = dray_events_enable(rt);
        if (st)
            return st;
        if (!(t = calloc(1, sizeof(*t))) || !(t->recs = malloc(DRAY__EVREC_MAX * DRAY__EVREC))) {
            free(t);
            return dray_set_error(DRAY_ENOMEM, "out of memory starting task events");
        }
        *tp = t;
        dray__log("recording task events for the head's dashboard");
    }
    t->t1 = ctl->u.i;
    t->t2 = dray__now_ns();
    t->fresh = true;
    return DRAY_OK;
}

static size_t name_index(dray__trace *t, const char *name)
{
    for (size_t i = 0; i < t->n_names; i++)
        if (t->names[i] == name || !strcmp(t->names[i], name))
            return i;
    t->names[t->n_names] = name;
    return t->n_names++;
}

/* Sends the batch built so far (and the submissions) to the head. */
static void flush(dray__trace *t)
{
    dray_value items[7] = {dray_int(t->t1), dray_int(t->t2), dray_int(dray__now_ns()),
                           dray_int((int64_t)(t->dropped & INT64_MAX)), dray_null(),
                           dray_null(), dray_null()};
    dray_value *names = calloc(DRAY__EVNAMES_MAX, sizeof(dray_value));
    dray_value *subs = calloc(SUBS, sizeof(dray_value));
    dray_status st = names && subs ? DRAY_OK : dray_set_error(DRAY_ENOMEM, "out of memory");
    size_t ns = 0;
    for (size_t i = 0; !st && i < t->n_sub && t->n_names < DRAY__EVNAMES_MAX; i++, ns++) {
        dray_value p[2] = {dray_int((int64_t)name_index(t, t->sub_name[i])), dray_int(t->sub_n[i])};
        st = dray_list_create(p, 2, &subs[i]);
    }
    size_t nn = 0;
    for (; !st && nn < t->n_names; nn++)
        st = dray_string_create(t->names[nn], &names[nn]);
    void *p = NULL;
    if (!st)
        st = dray_list_create(names, nn, &items[4]);
    if (!st && !(st = dray_bytes_create_uninit(t->n_recs * DRAY__EVREC, &items[5], &p)))
        memcpy(p, t->recs, t->n_recs * DRAY__EVREC);
    if (!st)
        st = dray_list_create(subs, ns, &items[6]);
    dray_value v;
    if (!st && !(st = dray_list_create(items, 7, &v))) {
        st = dray__conn_send_value(t->head, DRAY__MSG_EVENTS, 0, 0, &v, NULL);
        dray_value_release(&v);
    }
    if (st)
        dray__log("cannot send task events to the head: %s", dray_last_error());
    for (size_t i = 0; names && i < nn; i++)
        dray_value_release(&names[i]);
    for (size_t i = 0; subs && i < ns; i++)
        dray_value_release(&subs[i]);
    for (int i = 4; i < 7; i++)
        dray_value_release(&items[i]);
    free(names);
    free(subs);
    t->n_sub = 0;
    t->n_names = 0;
    t->n_recs = 0;
    t->fresh = false;
}

static void on_event(void *ctx, const dray__ev *e)
{
    dray__trace *t = ctx;
    if (t->n_recs == DRAY__EVREC_MAX || t->n_names == DRAY__EVNAMES_MAX)
        flush(t);
    uint8_t *r = t->recs + t->n_recs * DRAY__EVREC;
    memset(r, 0, DRAY__EVREC);
    int64_t t0 = e->start_ns < 0 ? 0 : e->start_ns;
    put(r, (uint64_t)t0, 8);
    put(r + 8, (uint64_t)(e->stop_ns < t0 ? t0 : e->stop_ns), 8);
    put(r + 16, e->bytes & INT64_MAX, 8);
    put(r + 24, e->count ? e->count : 1, 4);
    put(r + 28, name_index(t, e->name && *e->name ? e->name : "?"), 2);
    r[30] = (uint8_t)(e->kind < DRAY__EVENT_KINDS ? e->kind : DRAY_EVENT_TASK);
    int status = e->status > 0 || e->status < DRAY_EFATAL ? DRAY_EFATAL : e->status;
    put(r + 32, (uint64_t)(uint16_t)(int16_t)status, 2);
    int row = e->row < -1000 ? -1000 : e->row > 999 ? 999 : e->row;
    put(r + 34, (uint64_t)(uint16_t)(int16_t)row, 2);
    put(r + 36, (uint64_t)(e->tid < 0 ? 0 : e->tid), 4);
    t->n_recs++;
}

void dray__trace_tick(dray__trace *t, dray_runtime *rt, dray__conn *head)
{
    if (!t || !head)
        return;
    t->head = head;
    uint64_t dropped = 0;
    dray__events_drain(rt, on_event, t, &dropped);
    t->dropped = dropped;
    if (t->n_recs || t->n_sub || t->fresh)
        flush(t);
}

void dray__trace_submitted(dray__trace *t, const char *fn, int64_t n)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_sub; i++)
        if (t->sub_name[i] == fn) {
            t->sub_n[i] += n;
            return;
        }
    if (t->n_sub < SUBS) {
        t->sub_name[t->n_sub] = fn;
        t->sub_n[t->n_sub++] = n;
    }
}

void dray__trace_free(dray__trace *t)
{
    if (t)
        free(t->recs);
    free(t);
}
