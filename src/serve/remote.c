/* Replicas on cluster nodes (dray_serve_opts.remote_replicas): each replica is an actor of the
 * built-in class "dray_serve_RemoteReplica", which a runtime attached to a cluster places on a node.
 * Everything it receives and returns is a value (strings, lists, ints), never a pointer: the node
 * finds the deployment class in its own registry, builds its own request and sends back
 * [status, content_type, body, call_ns]. The driver side finishes the call when the ref is ready
 * (the timeout sweeper waits on these refs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum { R_CALL, R_HEALTH, R_RECONFIGURE };

typedef struct rstate {
    const dray_serve_class *cls;
    void *state;
} rstate;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Parses an optional JSON string value into *out (NULL for a null value). */
static dray_status parse_cfg(const dray_value *v, cJSON **out)
{
    *out = NULL;
    if (v->type != DRAY_T_STRING)
        return DRAY_OK;
    const char *t = dray_string_cstr(v);
    return dray_serve_parse_json(t, dray_string_len(v), out);
}

static dray_status r_init(dray_ctx *ctx, const dray_value *args, size_t nargs, void **state)
{
    if (nargs != 2 || args[0].type != DRAY_T_STRING)
        return dray_ctx_fail(ctx, DRAY_EINVAL,
                             "dray.serve.RemoteReplica: expects (class name, user_config)");
    const char *name = dray_string_cstr(&args[0]);
    const dray_serve_class *cls = dray_serve_class_find(name);
    if (!cls)
        return dray_ctx_fail(ctx, DRAY_ENOTFOUND,
                             "dray.serve.RemoteReplica: no deployment class '%s' on this node", name);
    cJSON *cfg;
    dray_status st = parse_cfg(&args[1], &cfg);
    if (st != DRAY_OK)
        return dray_ctx_fail(ctx, st, "dray.serve.RemoteReplica: user_config: bad JSON");
    rstate *a = calloc(1, sizeof(*a));
    if (!a) {
        cJSON_Delete(cfg);
        return dray_ctx_fail(ctx, DRAY_ENOMEM, "dray.serve.RemoteReplica: out of memory");
    }
    a->cls = cls;
    /* No serve instance on the node: composition through handles is not available there. */
    st = cls->init(NULL, cfg, &a->state);
    cJSON_Delete(cfg);
    if (st != DRAY_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", dray_last_error());
        free(a);
        return dray_ctx_fail(ctx, st, "%s", msg);
    }
    *state = a;
    return DRAY_OK;
}

static void r_destroy(void *state)
{
    rstate *a = state;
    a->cls->destroy(a->state);
    free(a);
}

/* Appends a list of alternating names and values to c's snapshot. */
static bool kv_from_list(dray__serve_call *c, const dray_value *list)
{
    size_t n = dray_list_len(list);
    for (size_t i = 0; i < n; i++) {
        const char *s = dray_string_cstr(dray_list_get(list, i));
        if (!s || !dray__serve_kv_put(c, s))
            return false;
    }
    return n % 2 == 0;
}

/* call: (method, path, body, headers, query) -> [status, content_type, body, call_ns]. */
static dray_status r_call(dray_ctx *ctx, void *state, const dray_value *args, size_t nargs,
                          dray_value *result)
{
    rstate *a = state;
    if (nargs != 5 || args[0].type != DRAY_T_STRING || args[1].type != DRAY_T_STRING ||
        args[2].type != DRAY_T_STRING || args[3].type != DRAY_T_LIST ||
        args[4].type != DRAY_T_LIST)
        return dray_ctx_fail(ctx, DRAY_EINVAL, "dray.serve.RemoteReplica.call: bad arguments");
    dray__serve_call c;
    memset(&c, 0, sizeof(c));
    c.req.method = dray_string_cstr(&args[0]);
    c.req.path = dray_string_cstr(&args[1]);
    c.req.body = dray_string_cstr(&args[2]);
    c.req.len = dray_string_len(&args[2]);
    c.req.kv_ = &c;
    dray_status st = DRAY_ENOMEM;
    dray_serve_response resp;
    memset(&resp, 0, sizeof(resp));
    char msg[512] = "dray.serve.RemoteReplica: bad headers";
    if (!kv_from_list(&c, &args[3]))
        goto out;
    c.kv_headers = c.kv_len;
    if (!kv_from_list(&c, &args[4]))
        goto out;
    int64_t t0 = mono_ns();
    st = a->cls->call(a->state, &c.req, &resp);
    int64_t ns = mono_ns() - t0;
    if (st != DRAY_OK) {
        snprintf(msg, sizeof(msg), "%s", dray_last_error());
        goto out;
    }
    char *text = resp.json ? cJSON_PrintUnformatted(resp.json) : NULL;
    dray_value items[4] = {dray_int(resp.status), dray_null(), dray_null(), dray_int(ns)};
    st = resp.content_type ? dray_string_create(resp.content_type, &items[1]) : DRAY_OK;
    if (st == DRAY_OK) {
        if (text)
            st = dray_string_create(text, &items[2]);
        else
            st = dray_string_create_n(resp.body ? resp.body : resp.body_static ? resp.body_static
                                                                               : "",
                                      resp.body || resp.body_static ? resp.len : 0, &items[2]);
    }
    if (st == DRAY_OK)
        st = dray_list_create(items, 4, result);
    free(text);
    dray_value_release(&items[1]);
    dray_value_release(&items[2]);
    snprintf(msg, sizeof(msg), "dray.serve.RemoteReplica: out of memory");
out:
    free(c.kv);
    cJSON_Delete(c.req.priv_);
    dray_serve_response_release(&resp);
    return st == DRAY_OK ? DRAY_OK : dray_ctx_fail(ctx, st, "%s", msg);
}

static dray_status r_health(dray_ctx *ctx, void *state, const dray_value *args, size_t nargs,
                            dray_value *result)
{
    (void)args;
    (void)nargs;
    rstate *a = state;
    dray_status st = a->cls->health_check ? a->cls->health_check(a->state) : DRAY_OK;
    *result = dray_null();
    return st == DRAY_OK ? DRAY_OK : dray_ctx_fail(ctx, st, "%s", dray_last_error());
}

static dray_status r_reconfigure(dray_ctx *ctx, void *state, const dray_value *args, size_t nargs,
                                 dray_value *result)
{
    rstate *a = state;
    cJSON *cfg = NULL;
    dray_status st = nargs == 1 ? parse_cfg(&args[0], &cfg) : DRAY_EINVAL;
    if (st == DRAY_OK)
        st = a->cls->reconfigure ? a->cls->reconfigure(a->state, cfg) : DRAY_EINVAL;
    cJSON_Delete(cfg);
    *result = dray_null();
    return st == DRAY_OK ? DRAY_OK : dray_ctx_fail(ctx, st, "%s", dray_last_error());
}

/* Method order = R_CALL, R_HEALTH, R_RECONFIGURE. */
DRAY_ACTOR_CLASS(dray_serve_RemoteReplica, r_init, r_destroy, {"call", r_call},
                 {"health", r_health}, {"reconfigure", r_reconfigure})

/* ==== Driver side ==================================================================================*/
dray_status dray__serve_remote_start(dray_serve_handle *h, dray__serve_replica *r)
{
    dray_value args[2] = {dray_null(), dray_null()};
    dray_status st = dray_string_create(h->class_name, &args[0]);
    if (st == DRAY_OK && h->user_config_text)
        st = dray_string_create(h->user_config_text, &args[1]);
    if (st == DRAY_OK) {
        dray_actor_opts ao;
        memset(&ao, 0, sizeof(ao));
        ao.name = h->name;
        ao.max_concurrency = 1;
        ao.num_cpus = h->opts.num_cpus;
        st = dray_actor_create(r->rt, "dray_serve_RemoteReplica", args, 2, &ao, &r->actor);
    }
    dray_value_release(&args[0]);
    dray_value_release(&args[1]);
    if (st != DRAY_OK)
        return st;
    if ((st = dray_actor_ready(r->rt, r->actor, -1)) != DRAY_OK) {
        dray_actor_release(r->actor);
        r->actor = NULL;
    }
    return st;
}

/* A list of the snapshot's pairs in [from, to). */
static dray_status kv_list(const dray__serve_call *c, size_t from, size_t to, dray_value *out)
{
    size_t n = 0;
    for (size_t i = from; i < to; i += strlen(c->kv + i) + 1)
        n++;
    dray_value *items = n ? calloc(n, sizeof(*items)) : NULL;
    dray_status st = n && !items ? DRAY_ENOMEM : DRAY_OK;
    size_t k = 0;
    for (size_t i = from; st == DRAY_OK && i < to; i += strlen(c->kv + i) + 1)
        st = dray_string_create(c->kv + i, &items[k++]);
    if (st == DRAY_OK)
        st = dray_list_create(items, n, out);
    for (size_t i = 0; i < k; i++)
        dray_value_release(&items[i]);
    free(items);
    return st;
}

dray_status dray__serve_remote_submit(dray__serve_replica *r, dray__serve_call *c, dray_ref **ref)
{
    if (!c->remote) /* HTTP calls set it before they are listed (the sweeper reads it) */
        c->remote = true;
    dray_value args[5] = {dray_null(), dray_null(), dray_null(), dray_null(), dray_null()};
    dray_status st = dray_string_create(c->req.method, &args[0]);
    if (st == DRAY_OK)
        st = dray_string_create(c->req.path, &args[1]);
    if (st == DRAY_OK)
        st = dray_string_create_n(c->req.body ? c->req.body : "", c->req.len, &args[2]);
    if (st == DRAY_OK)
        st = kv_list(c, 0, c->kv_headers, &args[3]);
    if (st == DRAY_OK)
        st = kv_list(c, c->kv_headers, c->kv_len, &args[4]);
    if (st == DRAY_OK)
        st = dray_actor_call_m(r->rt, r->actor, R_CALL, args, 5, ref);
    else
        dray_set_error(st, "deployment '%s': out of memory", r->dep->name);
    for (int i = 0; i < 5; i++)
        dray_value_release(&args[i]);
    return st;
}

bool dray__serve_remote_complete(dray_runtime *rt, dray__serve_call *c, bool want_json)
{
    dray_value v;
    dray_status st = dray_get(rt, c->ref, 0, &v);
    if (st != DRAY_OK) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", dray_last_error());
        return dray__serve_call_finish(c, st, NULL, msg, 0, false);
    }
    dray_serve_response resp;
    memset(&resp, 0, sizeof(resp));
    int64_t ns = 0;
    st = DRAY_EFORMAT;
    if (v.type == DRAY_T_LIST && dray_list_len(&v) == 4) {
        const dray_value *status = dray_list_get(&v, 0), *ctype = dray_list_get(&v, 1);
        const dray_value *body = dray_list_get(&v, 2), *t = dray_list_get(&v, 3);
        if (status->type == DRAY_T_INT && body->type == DRAY_T_STRING && t->type == DRAY_T_INT) {
            resp.status = (int)status->u.i;
            ns = t->u.i;
            const char *ct = dray_string_cstr(ctype);
            bool json = !ct || strcmp(ct, "application/json") == 0;
            if (ct && !want_json) {
                snprintf(c->ctype, sizeof(c->ctype), "%s", ct);
                resp.content_type = c->ctype;
            }
            size_t len = dray_string_len(body);
            if (want_json && json && len > 0) {
                st = dray_serve_parse_json(dray_string_cstr(body), len, &resp.json);
            } else if ((resp.body = malloc(len + 1))) {
                memcpy(resp.body, dray_string_cstr(body), len + 1);
                resp.len = len;
                st = DRAY_OK;
            } else {
                st = DRAY_ENOMEM;
            }
        }
    }
    dray_value_release(&v);
    if (st != DRAY_OK)
        return dray__serve_call_finish(c, st, NULL, "serve: a remote replica's answer is malformed",
                                       0, false);
    return dray__serve_call_finish(c, DRAY_OK, &resp, NULL, ns, false);
}

dray_status dray__serve_remote_send(dray__serve_replica *r, bool health, const char *cfg,
                                    dray_ref **ref)
{
    dray_value arg = dray_null();
    dray_status st = cfg ? dray_string_create(cfg, &arg) : DRAY_OK;
    if (st == DRAY_OK)
        st = dray_actor_call_m(r->rt, r->actor, health ? R_HEALTH : R_RECONFIGURE, &arg,
                               health ? 0 : 1, ref);
    dray_value_release(&arg);
    return st;
}
