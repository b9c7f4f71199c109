/* Values: constructors, accessors, reference counting and equality of dray_value, including error
 * values with their cause chains and extension objects. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* ==== Blobs ==== */

dray_status dray__blob_alloc(uint32_t type, size_t len, size_t payload, dray__blob **out)
{
    if (payload > SIZE_MAX - sizeof(dray__blob) - 1)
        return dray_set_error(DRAY_ENOMEM, "value of %zu bytes is too large", payload);
    dray__blob *b = malloc(sizeof(*b) + payload + 1);
    if (!b)
        return dray_set_error(DRAY_ENOMEM, "out of memory allocating a %zu-byte value", payload);
    atomic_init(&b->refs, 1);
    b->type = type;
    b->len = len;
    ((char *)(b + 1))[payload] = '\0';
    *out = b;
    return DRAY_OK;
}

/* Bytes whose memory lives elsewhere (a shared-memory object): the blob's type carries
 * DRAY__BLOB_EXTERNAL and this record follows the header. */
typedef struct ext_bytes {
    void *data;
    void (*release)(void *ctx);
    void *ctx;
} ext_bytes;

static inline void *blob_data(const dray__blob *b)
{
    if (b->type & DRAY__BLOB_EXTERNAL)
        return ((const ext_bytes *)(b + 1))->data;
    return (void *)(b + 1);
}

dray_status dray__bytes_wrap(void *data, size_t len, void (*release)(void *ctx), void *ctx,
                             dray_value *out)
{
    dray__blob *b = NULL;
    dray_status st = dray__blob_alloc(DRAY_T_BYTES | DRAY__BLOB_EXTERNAL, len, sizeof(ext_bytes), &b);
    if (st)
        return st;
    *(ext_bytes *)(b + 1) = (ext_bytes){data, release, ctx};
    out->type = DRAY_T_BYTES;
    out->aux = 0;
    out->u.blob = b;
    return DRAY_OK;
}

/* Map layout after the header: dray_value values[n]; const char *keys[n]; key bytes. */
static inline dray_value *map_values(const dray__blob *b)
{
    return (dray_value *)blob_data(b);
}
static inline const char **map_keys(const dray__blob *b)
{
    return (const char **)(map_values(b) + b->len);
}

/* Releases b; children that reach zero are released iteratively through a small stack so long error
 * chains and nested lists never recurse deeply. */
void dray__blob_release(dray__blob *b)
{
    dray__blob *stack[64];
    size_t top = 0;
    while (b) {
        if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
            atomic_thread_fence(memory_order_acquire);
            dray_value *children = NULL;
            size_t nchildren = 0;
            if (b->type == DRAY_T_LIST || b->type == DRAY_T_MAP) {
                children = map_values(b);
                nchildren = b->len;
            } else if (b->type == DRAY_T_ERROR) {
                children = &((dray__error *)b)->cause;
                nchildren = 1;
            }
            for (size_t i = 0; i < nchildren; i++) {
                dray_value *v = &children[i];
                if ((v->type == DRAY_T_LIST || v->type == DRAY_T_MAP ||
                     v->type == DRAY_T_ERROR) && top < 64) {
                    stack[top++] = v->u.blob;
                    v->type = DRAY_T_NULL;
                } else {
                    dray_value_release(v);
                }
            }
            if (b->type & DRAY__BLOB_EXTERNAL) {
                ext_bytes *x = (ext_bytes *)(b + 1);
                x->release(x->ctx);
            }
            free(b);
        }
        b = top ? stack[--top] : NULL;
    }
}

/* ==== Constructors ==== */

dray_status dray_bytes_create_uninit(size_t len, dray_value *out, void **data)
{
    if (!out)
        return dray_set_error(DRAY_EINVAL, "dray_bytes_create: out is NULL");
    dray__blob *b;
    dray_status st = dray__blob_alloc(DRAY_T_BYTES, len, len, &b);
    if (st)
        return st;
    out->type = DRAY_T_BYTES;
    out->aux = 0;
    out->u.blob = b;
    if (data)
        *data = blob_data(b);
    return DRAY_OK;
}

dray_status dray_bytes_create(const void *data, size_t len, dray_value *out)
{
    if (!data && len)
        return dray_set_error(DRAY_EINVAL, "dray_bytes_create: data is NULL with len %zu", len);
    void *dst = NULL;
    dray_status st = dray_bytes_create_uninit(len, out, &dst);
    if (st == DRAY_OK && len)
        memcpy(dst, data, len);
    return st;
}

dray_status dray_string_create_n(const char *s, size_t len, dray_value *out)
{
    if (!out || (!s && len))
        return dray_set_error(DRAY_EINVAL, "dray_string_create: NULL argument");
    dray__blob *b;
    dray_status st = dray__blob_alloc(DRAY_T_STRING, len, len, &b);
    if (st)
        return st;
    if (len)
        memcpy(blob_data(b), s, len);
    out->type = DRAY_T_STRING;
    out->aux = 0;
    out->u.blob = b;
    return DRAY_OK;
}

dray_status dray_string_create(const char *s, dray_value *out)
{
    if (!s)
        return dray_set_error(DRAY_EINVAL, "dray_string_create: string is NULL");
    return dray_string_create_n(s, strlen(s), out);
}

static dray_status check_item(const dray_value *v, size_t i)
{
    if (v->type >= DRAY__T_COUNT || v->type == DRAY_T_NODE)
        return dray_set_error(DRAY_ETYPE, "item %zu: type %u cannot be stored in a value", i,
                              v->type);
    if (v->type == DRAY_T_REF && !v->u.ref)
        return dray_set_error(DRAY_EINVAL, "item %zu: NULL ref", i);
    if (v->type == DRAY_T_EXT && !v->u.ext)
        return dray_set_error(DRAY_EINVAL, "item %zu: NULL extension object", i);
    if ((v->type >= DRAY_T_BYTES && v->type <= DRAY_T_MAP) || v->type == DRAY_T_ERROR)
        if (!v->u.blob)
            return dray_set_error(DRAY_EINVAL, "item %zu: NULL %s", i, dray_type_name(v->type));
    return DRAY_OK;
}

dray_status dray_list_create(const dray_value *items, size_t n, dray_value *out)
{
    if (!out || (!items && n))
        return dray_set_error(DRAY_EINVAL, "dray_list_create: NULL argument");
    for (size_t i = 0; i < n; i++) {
        dray_status st = check_item(&items[i], i);
        if (st)
            return st;
    }
    if (n > SIZE_MAX / sizeof(dray_value))
        return dray_set_error(DRAY_ENOMEM, "list of %zu items is too large", n);
    dray__blob *b;
    dray_status st = dray__blob_alloc(DRAY_T_LIST, n, n * sizeof(dray_value), &b);
    if (st)
        return st;
    dray_value *dst = map_values(b);
    for (size_t i = 0; i < n; i++)
        dst[i] = dray_value_retain(&items[i]);
    out->type = DRAY_T_LIST;
    out->aux = 0;
    out->u.blob = b;
    return DRAY_OK;
}

dray_status dray_map_create(const char *const *keys, const dray_value *values, size_t n,
                            dray_value *out)
{
    if (!out || ((!keys || !values) && n))
        return dray_set_error(DRAY_EINVAL, "dray_map_create: NULL argument");
    size_t key_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (!keys[i])
            return dray_set_error(DRAY_EINVAL, "dray_map_create: key %zu is NULL", i);
        dray_status st = check_item(&values[i], i);
        if (st)
            return st;
        for (size_t j = 0; j < i; j++)
            if (strcmp(keys[i], keys[j]) == 0)
                return dray_set_error(DRAY_EINVAL, "dray_map_create: duplicate key '%s'",
                                      keys[i]);
        key_bytes += strlen(keys[i]) + 1;
    }
    if (n > SIZE_MAX / (sizeof(dray_value) + sizeof(char *)))
        return dray_set_error(DRAY_ENOMEM, "map of %zu entries is too large", n);
    dray__blob *b;
    dray_status st = dray__blob_alloc(DRAY_T_MAP, n,
                                      n * (sizeof(dray_value) + sizeof(char *)) + key_bytes, &b);
    if (st)
        return st;
    dray_value *vals = map_values(b);
    const char **ks = map_keys(b);
    char *kdata = (char *)(ks + n);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(keys[i]) + 1;
        memcpy(kdata, keys[i], len);
        ks[i] = kdata;
        kdata += len;
        vals[i] = dray_value_retain(&values[i]);
    }
    out->type = DRAY_T_MAP;
    out->aux = 0;
    out->u.blob = b;
    return DRAY_OK;
}

/* ==== Counting ==== */

dray_value dray_value_retain(const dray_value *v)
{
    if (!v)
        return dray_null();
    switch (v->type) {
    case DRAY_T_BYTES:
    case DRAY_T_STRING:
    case DRAY_T_LIST:
    case DRAY_T_MAP:
    case DRAY_T_ERROR:
        atomic_fetch_add_explicit(&v->u.blob->refs, 1, memory_order_relaxed);
        break;
    case DRAY_T_REF:
        dray_ref_retain(v->u.ref);
        break;
    case DRAY_T_EXT:
        __atomic_fetch_add(&v->u.ext->refs, 1, __ATOMIC_RELAXED);
        break;
    default:
        break;
    }
    return *v;
}

void dray_value_release(dray_value *v)
{
    if (!v)
        return;
    switch (v->type) {
    case DRAY_T_BYTES:
    case DRAY_T_STRING:
    case DRAY_T_LIST:
    case DRAY_T_MAP:
    case DRAY_T_ERROR:
        dray__blob_release(v->u.blob);
        break;
    case DRAY_T_REF:
        dray_ref_release(v->u.ref);
        break;
    case DRAY_T_EXT:
        if (__atomic_fetch_sub(&v->u.ext->refs, 1, __ATOMIC_ACQ_REL) == 1)
            v->u.ext->type->destroy(v->u.ext);
        break;
    default:
        break;
    }
    v->type = DRAY_T_NULL;
    v->u.i = 0;
}

/* ==== Accessors ==== */

const void *dray_bytes_data(const dray_value *v, size_t *len)
{
    if (!v || (v->type != DRAY_T_BYTES && v->type != DRAY_T_STRING)) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = v->u.blob->len;
    return blob_data(v->u.blob);
}

const char *dray_string_cstr(const dray_value *v)
{
    return v && v->type == DRAY_T_STRING ? blob_data(v->u.blob) : NULL;
}

size_t dray_string_len(const dray_value *v)
{
    return v && v->type == DRAY_T_STRING ? v->u.blob->len : 0;
}

size_t dray_list_len(const dray_value *v)
{
    return v && v->type == DRAY_T_LIST ? v->u.blob->len : 0;
}

const dray_value *dray_list_get(const dray_value *v, size_t i)
{
    if (!v || v->type != DRAY_T_LIST || i >= v->u.blob->len)
        return NULL;
    return &map_values(v->u.blob)[i];
}

size_t dray_map_len(const dray_value *v)
{
    return v && v->type == DRAY_T_MAP ? v->u.blob->len : 0;
}

const char *dray_map_key_at(const dray_value *v, size_t i)
{
    if (!v || v->type != DRAY_T_MAP || i >= v->u.blob->len)
        return NULL;
    return map_keys(v->u.blob)[i];
}

const dray_value *dray_map_value_at(const dray_value *v, size_t i)
{
    if (!v || v->type != DRAY_T_MAP || i >= v->u.blob->len)
        return NULL;
    return &map_values(v->u.blob)[i];
}

const dray_value *dray_map_get(const dray_value *v, const char *key)
{
    if (!v || v->type != DRAY_T_MAP || !key)
        return NULL;
    const char **ks = map_keys(v->u.blob);
    for (size_t i = 0; i < v->u.blob->len; i++)
        if (strcmp(ks[i], key) == 0)
            return &map_values(v->u.blob)[i];
    return NULL;
}

const char *dray_type_name(dray_type t)
{
    static const char *const names[] = {"null",  "bool", "int",   "float", "bytes", "string",
                                        "list",  "map",  "ref",   "error", "ext",   "node"};
    return (unsigned)t < DRAY__T_COUNT ? names[t] : "invalid";
}

bool dray_value_equal(const dray_value *a, const dray_value *b)
{
    if (!a || !b || a->type != b->type)
        return false;
    switch (a->type) {
    case DRAY_T_NULL:
        return true;
    case DRAY_T_BOOL:
        return a->u.b == b->u.b;
    case DRAY_T_INT:
        return a->u.i == b->u.i;
    case DRAY_T_FLOAT: {
        double x = a->u.f == 0 ? 0.0 : a->u.f, y = b->u.f == 0 ? 0.0 : b->u.f;
        return memcmp(&x, &y, sizeof x) == 0;
    }
    case DRAY_T_BYTES:
    case DRAY_T_STRING:
        return a->u.blob->len == b->u.blob->len &&
               memcmp(blob_data(a->u.blob), blob_data(b->u.blob), a->u.blob->len) == 0;
    case DRAY_T_LIST:
        if (a->u.blob->len != b->u.blob->len)
            return false;
        for (size_t i = 0; i < a->u.blob->len; i++)
            if (!dray_value_equal(&map_values(a->u.blob)[i], &map_values(b->u.blob)[i]))
                return false;
        return true;
    case DRAY_T_MAP:
        if (a->u.blob->len != b->u.blob->len)
            return false;
        for (size_t i = 0; i < a->u.blob->len; i++) {
            if (strcmp(map_keys(a->u.blob)[i], map_keys(b->u.blob)[i]) != 0 ||
                !dray_value_equal(&map_values(a->u.blob)[i], &map_values(b->u.blob)[i]))
                return false;
        }
        return true;
    case DRAY_T_REF:
        return a->u.ref == b->u.ref;
    case DRAY_T_ERROR: {
        const dray_value *x = a, *y = b;
        while (x->type == DRAY_T_ERROR && y->type == DRAY_T_ERROR) {
            const dray__error *ex = (const dray__error *)x->u.blob;
            const dray__error *ey = (const dray__error *)y->u.blob;
            if (ex->status != ey->status || ex->arg_index != ey->arg_index ||
                strcmp(ex->function, ey->function) || strcmp(ex->message, ey->message))
                return false;
            x = &ex->cause;
            y = &ey->cause;
        }
        return x->type == y->type;
    }
    case DRAY_T_EXT:
        return a->u.ext == b->u.ext;
    case DRAY_T_NODE:
        return a->u.node == b->u.node;
    }
    return false;
}

/* ==== Errors ==== */

dray_status dray_error_create(dray_status st, const char *function, const char *message,
                              int arg_index, const dray_value *cause, dray_value *out)
{
    if (!out)
        return dray_set_error(DRAY_EINVAL, "dray_error_create: out is NULL");
    if (cause && cause->type != DRAY_T_ERROR && cause->type != DRAY_T_NULL)
        return dray_set_error(DRAY_ETYPE, "dray_error_create: cause is a %s, not an error",
                              dray_type_name(cause->type));
    function = function ? function : "";
    message = message ? message : "";
    size_t fl = strlen(function) + 1, ml = strlen(message) + 1;
    dray__blob *b;
    dray_status s = dray__blob_alloc(DRAY_T_ERROR, 0, sizeof(dray__error) - sizeof(dray__blob) +
                                                          fl + ml, &b);
    if (s)
        return s;
    dray__error *e = (dray__error *)b;
    e->status = st == DRAY_OK ? DRAY_ETASK : st;
    e->arg_index = arg_index;
    e->cause = cause ? dray_value_retain(cause) : dray_null();
    char *p = (char *)(e + 1);
    memcpy(p, function, fl);
    e->function = p;
    memcpy(p + fl, message, ml);
    e->message = p + fl;
    out->type = DRAY_T_ERROR;
    out->aux = 0;
    out->u.blob = b;
    return DRAY_OK;
}

static const dray__error *as_error(const dray_value *v)
{
    return v && v->type == DRAY_T_ERROR ? (const dray__error *)v->u.blob : NULL;
}

dray_status dray_error_status(const dray_value *err)
{
    const dray__error *e = as_error(err);
    return e ? e->status : DRAY_EINVAL;
}

const char *dray_error_function(const dray_value *err)
{
    const dray__error *e = as_error(err);
    return e ? e->function : NULL;
}

const char *dray_error_message(const dray_value *err)
{
    const dray__error *e = as_error(err);
    return e ? e->message : NULL;
}

int dray_error_arg_index(const dray_value *err)
{
    const dray__error *e = as_error(err);
    return e ? e->arg_index : -1;
}

const dray_value *dray_error_cause(const dray_value *err)
{
    const dray__error *e = as_error(err);
    return e && e->cause.type == DRAY_T_ERROR ? &e->cause : NULL;
}

size_t dray_error_format(const dray_value *err, char *buf, size_t size)
{
    size_t len = 0, links = 0, total = 0;
    for (const dray_value *v = err; as_error(v); v = dray_error_cause(v))
        total++;
    char tmp[64];
#define EMIT(s)                                                                                    \
    do {                                                                                           \
        const char *s_ = (s);                                                                      \
        size_t l_ = strlen(s_);                                                                    \
        if (len < size) {                                                                          \
            size_t c_ = l_ < size - len ? l_ : size - len;                                         \
            memcpy(buf + len, s_, c_);                                                             \
        }                                                                                          \
        len += l_;                                                                                 \
    } while (0)
    for (const dray_value *v = err; as_error(v); v = dray_error_cause(v), links++) {
        const dray__error *e = as_error(v);
        /* Long chains: show the first 8 links and the root cause. */
        if (links == 8 && total > 10) {
            snprintf(tmp, sizeof tmp, " <- ... %zu more", total - 9);
            EMIT(tmp);
            while (dray_error_cause(v))
                v = dray_error_cause(v);
            e = as_error(v);
        }
        if (links)
            EMIT(" <- ");
        if (e->function[0]) {
            EMIT(e->function);
            EMIT(": ");
        }
        EMIT(e->message[0] ? e->message : dray_status_str(e->status));
        if (!dray_error_cause(v))
            break;
    }
#undef EMIT
    if (size)
        buf[len < size ? len : size - 1] = '\0';
    return len;
}

/* ==== Extension objects ==== */

void dray_ext_obj_init(dray_ext_obj *obj, const dray_ext_type *type)
{
    obj->refs = 1;
    obj->reserved = 0;
    obj->type = type;
}

dray_value dray_value_of_ext(dray_ext_obj *obj)
{
    dray_value v = {DRAY_T_EXT, 0, {.ext = obj}};
    return v;
}
