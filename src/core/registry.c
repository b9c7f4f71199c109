/* Process-wide registries of task functions, actor classes and extension types, filled at load time by
 * the DRAY_FUNCTION / DRAY_ACTOR_CLASS / DRAY_EXT_TYPE constructors (the one kind of global state dray
 * keeps: written before main or by dlopen, read-only afterwards), and each runtime's hash index of
 * function names. */
#include <string.h>

#include "internal.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static dray_function *functions;
static dray_actor_class *classes;
static dray_ext_type *ext_types;

void dray_function_register(dray_function *def)
{
    if (!def || !def->name || !def->fn)
        return;
    pthread_mutex_lock(&registry_lock);
    for (dray_function *f = functions; f; f = f->next)
        if (f == def || strcmp(f->name, def->name) == 0)
            goto out;
    def->next = functions;
    functions = def;
out:
    pthread_mutex_unlock(&registry_lock);
}

const dray_function *dray_function_find(const char *name)
{
    if (!name) {
        dray_set_error(DRAY_EINVAL, "function name is NULL");
        return NULL;
    }
    pthread_mutex_lock(&registry_lock);
    dray_function *f = functions;
    while (f && strcmp(f->name, name) != 0)
        f = f->next;
    pthread_mutex_unlock(&registry_lock);
    if (!f)
        dray_set_error(DRAY_ENOTFOUND, "no task function is registered as '%s'", name);
    return f;
}

void dray_actor_class_register(dray_actor_class *cls)
{
    if (!cls || !cls->name)
        return;
    pthread_mutex_lock(&registry_lock);
    for (dray_actor_class *c = classes; c; c = c->next)
        if (c == cls || strcmp(c->name, cls->name) == 0)
            goto out;
    cls->next = classes;
    classes = cls;
out:
    pthread_mutex_unlock(&registry_lock);
}

const dray_actor_class *dray_actor_class_find(const char *name)
{
    if (!name) {
        dray_set_error(DRAY_EINVAL, "actor class name is NULL");
        return NULL;
    }
    pthread_mutex_lock(&registry_lock);
    dray_actor_class *c = classes;
    while (c && strcmp(c->name, name) != 0)
        c = c->next;
    pthread_mutex_unlock(&registry_lock);
    if (!c)
        dray_set_error(DRAY_ENOTFOUND, "no actor class is registered as '%s'", name);
    return c;
}

void dray_ext_type_register(dray_ext_type *type)
{
    if (!type || !type->name || !type->destroy)
        return;
    pthread_mutex_lock(&registry_lock);
    for (dray_ext_type *t = ext_types; t; t = t->next)
        if (t == type || strcmp(t->name, type->name) == 0)
            goto out;
    type->next = ext_types;
    ext_types = type;
out:
    pthread_mutex_unlock(&registry_lock);
}

const dray_ext_type *dray_ext_type_find(const char *name)
{
    if (!name)
        return NULL;
    pthread_mutex_lock(&registry_lock);
    dray_ext_type *t = ext_types;
    while (t && strcmp(t->name, name) != 0)
        t = t->next;
    pthread_mutex_unlock(&registry_lock);
    return t;
}

/* ==== Per-runtime index of function names (open addressing, power-of-two size) ==== */
struct dray__fn_table {
    size_t mask;
    const dray_function *slot[];
};

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

dray_status dray__fn_table_build(dray_runtime *rt)
{
    pthread_mutex_lock(&registry_lock);
    size_t n = 0;
    for (dray_function *f = functions; f; f = f->next)
        n++;
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    struct dray__fn_table *t = calloc(1, sizeof(*t) + cap * sizeof(t->slot[0]));
    if (!t) {
        pthread_mutex_unlock(&registry_lock);
        return dray_set_error(DRAY_ENOMEM, "out of memory building the function table");
    }
    t->mask = cap - 1;
    for (dray_function *f = functions; f; f = f->next) {
        size_t i = hash_name(f->name) & t->mask;
        while (t->slot[i])
            i = (i + 1) & t->mask;
        t->slot[i] = f;
    }
    pthread_mutex_unlock(&registry_lock);
    rt->fns = t;
    return DRAY_OK;
}

void dray__fn_table_free(dray_runtime *rt)
{
    free(rt->fns);
    rt->fns = NULL;
}

const dray_function *dray__fn_lookup(dray_runtime *rt, const char *name)
{
    struct dray__fn_table *t = rt->fns;
    for (size_t i = hash_name(name) & t->mask; t->slot[i]; i = (i + 1) & t->mask)
        if (strcmp(t->slot[i]->name, name) == 0)
            return t->slot[i];
    /* Registered after the runtime started (dlopen): the registry has it. */
    return dray_function_find(name);
}
