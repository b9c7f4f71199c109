/* Refs nested in lists and maps on a cluster: a ref cannot travel, so before a container goes over
 * the wire each ref in it (at any depth) becomes a "cluster.ref" marker holding the ref's outcome
 * (its value, an object handle, or its error), and the receiving side turns each marker back into a
 * ref of its own runtime. The one place that walks containers for this. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_NEST 64 /* the value codec's limit: deeper values cannot travel anyway */

typedef struct marker {
    dray_ext_obj hdr;
    dray_status status; /* DRAY_OK, or the failure the ref holds */
    dray_value value;   /* the value, or the error value */
} marker;

static void marker_destroy(dray_ext_obj *o)
{
    marker *m = (marker *)o;
    dray_value_release(&m->value);
    free(m);
}

static dray_status marker_encode(const dray_ext_obj *o,
                                 dray_status (*write)(void *buf, const void *data, size_t len),
                                 void *buf)
{
    const marker *m = (const marker *)o;
    dray_value items[2] = {dray_int(m->status), m->value}, v;
    dray_status st = dray_list_create(items, 2, &v);
    if (st)
        return st;
    st = dray__write_value(&v, write, buf);
    dray_value_release(&v);
    return st;
}

static dray_ext_type marker_type;

static dray_status marker_new(dray_status status, const dray_value *value, dray_value *out)
{
    marker *m = calloc(1, sizeof(*m));
    if (!m)
        return dray_set_error(DRAY_ENOMEM, "out of memory");
    dray_ext_obj_init(&m->hdr, &marker_type);
    m->status = status;
    m->value = dray_value_retain(value);
    *out = dray_value_of_ext(&m->hdr);
    return DRAY_OK;
}

/* Untrusted bytes: [int status (0 or a dray error code), value (an error value when status is
 * not 0)]. */
static dray_status marker_decode(const void *data, size_t len, dray_ext_obj **out)
{
    dray_value v;
    dray_status st = dray_value_decode(data, len, &v);
    if (st)
        return st;
    const dray_value *s = dray_list_get(&v, 0), *val = dray_list_get(&v, 1);
    bool ok = v.type == DRAY_T_LIST && dray_list_len(&v) == 2 && s->type == DRAY_T_INT &&
              s->u.i <= 0 && s->u.i >= DRAY_EFATAL && (s->u.i == 0 || val->type == DRAY_T_ERROR);
    dray_value m = dray_null();
    if (ok)
        st = marker_new((dray_status)s->u.i, val, &m);
    dray_value_release(&v);
    if (!ok)
        return dray_set_error(DRAY_EFORMAT, "cluster.ref: expected [status, value] (an error "
                              "value with a failure status)");
    if (st)
        return st;
    *out = m.u.ext;
    return DRAY_OK;
}

static dray_ext_type marker_type = {"cluster.ref", marker_destroy, marker_encode, marker_decode,
                                    NULL};
DRAY_EXT_TYPE(marker_type)

static bool is_marker(const dray_value *v)
{
    return v->type == DRAY_T_EXT && v->u.ext->type == &marker_type;
}

static bool is_container(const dray_value *v)
{
    return v->type == DRAY_T_LIST || v->type == DRAY_T_MAP;
}

/* The number of items of list or map v, and item i (a map's values, in order). */
static size_t n_items(const dray_value *v)
{
    return v->type == DRAY_T_LIST ? dray_list_len(v) : dray_map_len(v);
}

static const dray_value *item_at(const dray_value *v, size_t i)
{
    return v->type == DRAY_T_LIST ? dray_list_get(v, i) : dray_map_value_at(v, i);
}

/* Whether container v holds (at any depth, through lists and maps) an item for which pred is
 * true. */
static bool holds(const dray_value *v, bool (*pred)(const dray_value *), int depth)
{
    if (!is_container(v) || depth > MAX_NEST)
        return false;
    for (size_t i = 0; i < n_items(v); i++) {
        const dray_value *x = item_at(v, i);
        if (pred(x) || holds(x, pred, depth + 1))
            return true;
    }
    return false;
}

static bool is_ref(const dray_value *v)
{
    return v->type == DRAY_T_REF && v->u.ref;
}

static bool is_pending_ref(const dray_value *v)
{
    return is_ref(v) && !dray_ref_ready(v->u.ref);
}

bool dray__nested_refs(const dray_value *v)
{
    return holds(v, is_ref, 0);
}

bool dray__nested_pending(const dray_value *v)
{
    return holds(v, is_pending_ref, 0);
}

bool dray__nested_markers(const dray_value *v)
{
    return holds(v, is_marker, 0);
}

/* A copy of container v (list or map, keys kept) with every item mapped by fn (which returns owned
 * values). */
static dray_status map_items(const dray_value *v, int depth,
                             dray_status (*fn)(void *ctx, const dray_value *x, int depth,
                                               dray_value *out),
                             void *ctx, dray_value *out)
{
    size_t n = n_items(v);
    bool map = v->type == DRAY_T_MAP;
    dray_value stack[16], *items = n <= 16 ? stack : malloc(n * sizeof(dray_value));
    const char *kstack[16], **keys = !map || n <= 16 ? kstack : malloc(n * sizeof(char *));
    if (!items || !keys) {
        if (items != stack)
            free(items);
        if (keys != kstack)
            free(keys);
        return dray_set_error(DRAY_ENOMEM, "out of memory copying a %s of %zu items",
                              map ? "map" : "list", n);
    }
    dray_status st = DRAY_OK;
    size_t done = 0;
    for (; done < n && !st; done++) {
        if (map)
            keys[done] = dray_map_key_at(v, done);
        st = fn(ctx, item_at(v, done), depth, &items[done]);
    }
    if (st)
        done--;
    if (!st)
        st = map ? dray_map_create(keys, items, n, out) : dray_list_create(items, n, out);
    for (size_t i = 0; i < done; i++)
        dray_value_release(&items[i]);
    if (items != stack)
        free(items);
    if (keys != kstack)
        free(keys);
    return st;
}

typedef struct to_ctx {
    dray_runtime *rt;
    void (*seen)(void *ctx, const dray_value *inner);
    void *seen_ctx;
} to_ctx;

static dray_status to_item(void *ctx, const dray_value *x, int depth, dray_value *out)
{
    to_ctx *t = ctx;
    if (depth > MAX_NEST)
        return dray_set_error(DRAY_EINVAL, "lists and maps nested deeper than %d levels",
                              MAX_NEST);
    if (holds(x, is_ref, depth + 1))
        return map_items(x, depth + 1, to_item, ctx, out);
    if (!is_ref(x)) {
        *out = dray_value_retain(x);
        return DRAY_OK;
    }
    dray_ref *r = x->u.ref;
    dray_status st = dray_wait(t->rt, &r, 1, 1, -1, NULL, NULL);
    if (st)
        return dray_set_error(st, "waiting for a ref inside a list or map: %s", dray_last_error());
    dray_value inner = dray_null();
    const dray_value *res = &r->u.result;
    if (r->status == DRAY_OK && holds(res, is_ref, depth + 1))
        st = map_items(res, depth + 1, to_item, ctx, &inner);
    else
        inner = dray_value_retain(res);
    if (st)
        return st;
    if (r->status == DRAY_OK && t->seen)
        t->seen(t->seen_ctx, &inner);
    st = marker_new((dray_status)r->status, &inner, out);
    dray_value_release(&inner);
    return st;
}

dray_status dray__nested_to_wire(dray_runtime *rt, const dray_value *v,
                                 void (*seen)(void *ctx, const dray_value *inner), void *ctx,
                                 dray_value *out)
{
    to_ctx t = {rt, seen, ctx};
    return to_item(&t, v, 0, out);
}

typedef struct from_ctx {
    dray_runtime *rt;
    dray_status (*resolve)(void *ctx, const dray_value *in, dray_value *out);
    void *ctx;
} from_ctx;

static dray_status from_item(void *ctx, const dray_value *x, int depth, dray_value *out)
{
    from_ctx *f = ctx;
    if (depth > MAX_NEST)
        return dray_set_error(DRAY_EINVAL, "lists and maps nested deeper than %d levels",
                              MAX_NEST);
    if (holds(x, is_marker, depth + 1))
        return map_items(x, depth + 1, from_item, ctx, out);
    if (!is_marker(x)) {
        *out = dray_value_retain(x);
        return DRAY_OK;
    }
    const marker *m = (const marker *)x->u.ext;
    dray_value val = dray_null();
    dray_status st = DRAY_OK;
    if (m->status == DRAY_OK && holds(&m->value, is_marker, depth + 1))
        st = map_items(&m->value, depth + 1, from_item, ctx, &val);
    else if (m->status == DRAY_OK && f->resolve)
        st = f->resolve(f->ctx, &m->value, &val);
    else
        val = dray_value_retain(&m->value);
    if (st)
        return st;
    dray_ref *r;
    st = dray_put(f->rt, &val, &r);
    dray_value_release(&val);
    if (st)
        return st;
    if (m->status != DRAY_OK)
        r->status = m->status; /* a failed ref: dray_get reports its error chain */
    *out = dray_value_of_ref(r);
    return DRAY_OK;
}

dray_status dray__nested_from_wire(dray_runtime *rt, const dray_value *v,
                                   dray_status (*resolve)(void *ctx, const dray_value *in,
                                                          dray_value *out),
                                   void *ctx, dray_value *out)
{
    from_ctx f = {rt, resolve, ctx};
    return from_item(&f, v, 0, out);
}
