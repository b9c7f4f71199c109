/* Serve config files (libyaml): http_options and applications with their deployments, checked with
 * file:line:column errors, and applied by loading each application's shared library (dlopen). */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "internal.h"

typedef struct cfg_dep {
    dray_serve_deployment_opts o;
} cfg_dep;

typedef struct cfg_app {
    const char *name, *route, *lib, *cls;
    cfg_dep *deps;
    size_t n_deps;
} cfg_app;

struct dray_serve_config {
    char *label;
    const char *host;
    int port, threads, timeout;
    long long max_body;
    bool has_port;
    cfg_app *apps;
    size_t n_apps;
    char **strings; /* every string the options point to */
    size_t n_strings, cap_strings;
};

typedef struct walker {
    dray_serve_config *cfg;
    yaml_document_t *doc;
} walker;

static dray_status at(walker *w, const yaml_node_t *n, const char *fmt, const char *detail)
{
    return dray_set_error(DRAY_EFORMAT, "%s:%zu:%zu: %s%s", w->cfg->label,
                          n->start_mark.line + 1, n->start_mark.column + 1, fmt,
                          detail ? detail : "");
}

static const char *keep(dray_serve_config *cfg, const char *s, size_t len)
{
    if (cfg->n_strings == cfg->cap_strings) {
        size_t cap = cfg->cap_strings ? cfg->cap_strings * 2 : 16;
        char **a = realloc(cfg->strings, cap * sizeof(*a));
        if (!a)
            return NULL;
        cfg->strings = a;
        cfg->cap_strings = cap;
    }
    char *c = strndup(s, len);
    if (c)
        cfg->strings[cfg->n_strings++] = c;
    return c;
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static dray_status get_str(walker *w, const yaml_node_t *n, const char *key, const char **out)
{
    const char *s = scalar(n);
    if (!s)
        return at(w, n, "expected a string for ", key);
    if (!(*out = keep(w->cfg, s, strlen(s))))
        return dray_set_error(DRAY_ENOMEM, "%s: out of memory", w->cfg->label);
    return DRAY_OK;
}

static dray_status get_num(walker *w, const yaml_node_t *n, const char *key, double *out)
{
    const char *s = scalar(n);
    char *end = NULL;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || !*s || *end || errno || !isfinite(v))
        return at(w, n, "expected a finite number for ", key);
    *out = v;
    return DRAY_OK;
}

static dray_status get_int(walker *w, const yaml_node_t *n, const char *key, int *out)
{
    double v;
    dray_status st = get_num(w, n, key, &v);
    if (st != DRAY_OK)
        return st;
    if (!(v >= 0 && v <= INT_MAX) || v != (double)(int)v)
        return at(w, n, "expected a non-negative integer for ", key);
    *out = (int)v;
    return DRAY_OK;
}

static dray_status get_bool(walker *w, const yaml_node_t *n, const char *key, bool *out)
{
    const char *s = scalar(n);
    if (s && (!strcmp(s, "true") || !strcmp(s, "false"))) {
        *out = s[0] == 't';
        return DRAY_OK;
    }
    return at(w, n, "expected true or false for ", key);
}

/* YAML (any node) as JSON: plain scalars become numbers, booleans or null when they read so. */
static cJSON *to_json(walker *w, const yaml_node_t *n, int depth)
{
    if (!n || depth > DRAY__SERVE_JSON_DEPTH)
        return NULL;
    if (n->type == YAML_SCALAR_NODE) {
        const char *s = (const char *)n->data.scalar.value;
        if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
            return cJSON_CreateString(s);
        if (!strcmp(s, "true") || !strcmp(s, "True"))
            return cJSON_CreateTrue();
        if (!strcmp(s, "false") || !strcmp(s, "False"))
            return cJSON_CreateFalse();
        if (!strcmp(s, "null") || !strcmp(s, "~") || !*s)
            return cJSON_CreateNull();
        char *end;
        double v = strtod(s, &end);
        return *end ? cJSON_CreateString(s) : cJSON_CreateNumber(v);
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        cJSON *a = cJSON_CreateArray();
        for (yaml_node_item_t *i = n->data.sequence.items.start;
             a && i < n->data.sequence.items.top; i++) {
            cJSON *v = to_json(w, yaml_document_get_node(w->doc, *i), depth + 1);
            if (!v) {
                cJSON_Delete(a);
                return NULL;
            }
            cJSON_AddItemToArray(a, v);
        }
        return a;
    }
    cJSON *o = cJSON_CreateObject();
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; o && p < n->data.mapping.pairs.top;
         p++) {
        const char *k = scalar(yaml_document_get_node(w->doc, p->key));
        cJSON *v = to_json(w, yaml_document_get_node(w->doc, p->value), depth + 1);
        if (!k || !v) {
            cJSON_Delete(v);
            cJSON_Delete(o);
            return NULL;
        }
        cJSON_AddItemToObject(o, k, v);
    }
    return o;
}

/* Calls fn(w, key, value, arg) for each pair of mapping node n. */
typedef dray_status (*pair_fn)(walker *w, const char *key, yaml_node_t *k, yaml_node_t *v,
                               void *arg);

static dray_status each_pair(walker *w, yaml_node_t *n, const char *what, pair_fn fn, void *arg)
{
    if (!n || n->type != YAML_MAPPING_NODE)
        return at(w, n, "expected a mapping for ", what);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(w->doc, p->value);
        const char *key = scalar(k);
        if (!key)
            return at(w, k, "expected a string key in ", what);
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++)
            if (!strcmp(scalar(yaml_document_get_node(w->doc, q->key)), key))
                return at(w, k, "duplicate key ", key);
        dray_status st = fn(w, key, k, v, arg);
        if (st != DRAY_OK)
            return st;
    }
    return DRAY_OK;
}

static dray_status unknown(walker *w, yaml_node_t *k, const char *key)
{
    return at(w, k, "unknown key ", key);
}

static dray_status autoscaling_pair(walker *w, const char *key, yaml_node_t *k, yaml_node_t *v,
                                    void *arg)
{
    dray_serve_deployment_opts *o = arg;
    if (!strcmp(key, "min_replicas"))
        return get_int(w, v, key, &o->min_replicas);
    if (!strcmp(key, "max_replicas"))
        return get_int(w, v, key, &o->max_replicas);
    if (!strcmp(key, "target_ongoing_requests"))
        return get_num(w, v, key, &o->target_ongoing_requests);
    if (!strcmp(key, "upscale_delay_s"))
        return get_num(w, v, key, &o->upscale_delay_s);
    if (!strcmp(key, "downscale_delay_s"))
        return get_num(w, v, key, &o->downscale_delay_s);
    return unknown(w, k, key);
}

static dray_status actor_opts_pair(walker *w, const char *key, yaml_node_t *k, yaml_node_t *v,
                                   void *arg)
{
    dray_serve_deployment_opts *o = arg;
    if (!strcmp(key, "num_cpus"))
        return get_num(w, v, key, &o->num_cpus);
    return unknown(w, k, key);
}

static dray_status dep_pair(walker *w, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    dray_serve_deployment_opts *o = arg;
    if (!strcmp(key, "name"))
        return get_str(w, v, key, &o->name);
    if (!strcmp(key, "class_name"))
        return get_str(w, v, key, &o->class_name);
    if (!strcmp(key, "version"))
        return get_str(w, v, key, &o->version);
    if (!strcmp(key, "num_replicas"))
        return get_int(w, v, key, &o->num_replicas);
    if (!strcmp(key, "max_ongoing_requests"))
        return get_int(w, v, key, &o->max_ongoing_requests);
    if (!strcmp(key, "max_batch_size"))
        return get_int(w, v, key, &o->max_batch_size);
    if (!strcmp(key, "batch_wait_timeout_s"))
        return get_num(w, v, key, &o->batch_wait_timeout_s);
    if (!strcmp(key, "health_check_period_s"))
        return get_num(w, v, key, &o->health_check_period_s);
    if (!strcmp(key, "health_check_timeout_s"))
        return get_num(w, v, key, &o->health_check_timeout_s);
    if (!strcmp(key, "request_timeout_s"))
        return get_num(w, v, key, &o->request_timeout_s);
    if (!strcmp(key, "actor_calls"))
        return get_bool(w, v, key, &o->actor_calls);
    if (!strcmp(key, "autoscaling_config"))
        return each_pair(w, v, key, autoscaling_pair, o);
    if (!strcmp(key, "ray_actor_options"))
        return each_pair(w, v, key, actor_opts_pair, o);
    if (!strcmp(key, "user_config")) {
        cJSON *j = to_json(w, v, 0);
        char *text = j ? cJSON_PrintUnformatted(j) : NULL;
        cJSON_Delete(j);
        if (!text)
            return at(w, v, "user_config: too deep or out of memory", NULL);
        o->user_config = keep(w->cfg, text, strlen(text));
        free(text);
        return o->user_config ? DRAY_OK : dray_set_error(DRAY_ENOMEM, "out of memory");
    }
    return unknown(w, k, key);
}

static dray_status app_pair(walker *w, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    cfg_app *a = arg;
    if (!strcmp(key, "name"))
        return get_str(w, v, key, &a->name);
    if (!strcmp(key, "route_prefix"))
        return get_str(w, v, key, &a->route);
    if (!strcmp(key, "import_path")) {
        const char *s;
        dray_status st = get_str(w, v, key, &s);
        if (st != DRAY_OK)
            return st;
        const char *colon = strrchr(s, ':');
        if (colon == s || (colon && !colon[1]))
            return at(w, v, "import_path: expected 'library.so:ClassName' or 'ClassName', got ",
                      s);
        a->lib = colon ? keep(w->cfg, s, (size_t)(colon - s)) : NULL;
        a->cls = colon ? colon + 1 : s;
        return colon && !a->lib ? dray_set_error(DRAY_ENOMEM, "out of memory") : DRAY_OK;
    }
    if (!strcmp(key, "deployments")) {
        if (v->type != YAML_SEQUENCE_NODE)
            return at(w, v, "expected a list for deployments", NULL);
        size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        a->deps = calloc(n ? n : 1, sizeof(*a->deps));
        if (!a->deps)
            return dray_set_error(DRAY_ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            dray_serve_deployment_opts *o = &a->deps[i].o;
            dray_serve_deployment_opts_init(o);
            a->n_deps++;
            dray_status st = each_pair(w, yaml_document_get_node(w->doc,
                                                                 v->data.sequence.items.start[i]),
                                       "a deployment", dep_pair, o);
            if (st != DRAY_OK)
                return st;
        }
        return DRAY_OK;
    }
    return unknown(w, k, key);
}

static dray_status http_pair(walker *w, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    dray_serve_config *c = arg;
    if (!strcmp(key, "host"))
        return get_str(w, v, key, &c->host);
    if (!strcmp(key, "port")) {
        c->has_port = true;
        dray_status st = get_int(w, v, key, &c->port);
        return st == DRAY_OK && c->port > 65535 ? at(w, v, "port out of range", NULL) : st;
    }
    if (!strcmp(key, "threads"))
        return get_int(w, v, key, &c->threads);
    if (!strcmp(key, "request_timeout_s"))
        return get_int(w, v, key, &c->timeout);
    if (!strcmp(key, "max_body_bytes")) {
        double d;
        dray_status st = get_num(w, v, key, &d);
        if (st != DRAY_OK)
            return st;
        if (!(d >= 1 && d <= 1e15))
            return at(w, v, "max_body_bytes must be between 1 and 1e15", NULL);
        c->max_body = (long long)d;
        return DRAY_OK;
    }
    return unknown(w, k, key);
}

/* Fills the app's defaults once it is parsed: one deployment when none is listed, names, classes. */
static dray_status finish_app(walker *w, yaml_node_t *n, cfg_app *a)
{
    if (!a->cls)
        return at(w, n, "application without import_path", NULL);
    if (a->n_deps == 0) {
        /* "deployments: []" already allocated one (empty) slot; reuse it. */
        if (!a->deps && !(a->deps = calloc(1, sizeof(*a->deps))))
            return dray_set_error(DRAY_ENOMEM, "out of memory");
        dray_serve_deployment_opts_init(&a->deps[0].o);
        a->n_deps = 1;
    }
    for (size_t i = 0; i < a->n_deps; i++) {
        dray_serve_deployment_opts *o = &a->deps[i].o;
        if (!o->name)
            o->name = a->n_deps == 1 ? a->cls : NULL;
        if (!o->name)
            return at(w, n, "a deployment needs a name when an application has several", NULL);
        if (!o->class_name)
            o->class_name = o->name;
        if (!strcmp(o->class_name, a->cls))
            o->route_prefix = a->route ? a->route : "/";
    }
    return DRAY_OK;
}

static dray_status root_pair(walker *w, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    dray_serve_config *c = arg;
    if (!strcmp(key, "http_options"))
        return each_pair(w, v, key, http_pair, c);
    if (!strcmp(key, "applications")) {
        if (v->type != YAML_SEQUENCE_NODE)
            return at(w, v, "expected a list for applications", NULL);
        size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        c->apps = calloc(n ? n : 1, sizeof(*c->apps));
        if (!c->apps)
            return dray_set_error(DRAY_ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            yaml_node_t *an = yaml_document_get_node(w->doc, v->data.sequence.items.start[i]);
            c->n_apps++;
            dray_status st = each_pair(w, an, "an application", app_pair, &c->apps[i]);
            if (st == DRAY_OK)
                st = finish_app(w, an, &c->apps[i]);
            if (st != DRAY_OK)
                return st;
        }
        return DRAY_OK;
    }
    return unknown(w, k, key);
}

dray_status dray_serve_config_parse(const char *text, size_t len, const char *name,
                                    dray_serve_config **out)
{
    dray_status st = DRAY_ENOMEM;
    dray_serve_config *c = calloc(1, sizeof(*c));
    if (!c || !(c->label = strdup(name ? name : "(config)"))) {
        free(c);
        return dray_set_error(st, "serve config: out of memory");
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        st = dray_set_error(DRAY_ENOMEM, "serve config: out of memory");
        goto out_cfg;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        st = dray_set_error(DRAY_EFORMAT, "%s:%zu:%zu: %s", c->label,
                            parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                            parser.problem ? parser.problem : "malformed YAML");
        goto out_parser;
    }
    walker w = {c, &doc};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        st = dray_set_error(DRAY_EFORMAT, "%s: empty config", c->label);
    } else {
        st = each_pair(&w, root, "the config", root_pair, c);
        if (st == DRAY_OK && c->n_apps == 0)
            st = dray_set_error(DRAY_EFORMAT, "%s: no applications", c->label);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (st != DRAY_OK) {
        dray_serve_config_destroy(c);
        return st;
    }
    *out = c;
    return DRAY_OK;
out_parser:
    yaml_parser_delete(&parser);
out_cfg:
    dray_serve_config_destroy(c);
    return st;
}

dray_status dray_serve_config_load(const char *path, dray_serve_config **out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return dray_set_error(DRAY_EIO, "serve config: %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            char *b = cap <= (16u << 20) ? realloc(buf, cap) : NULL;
            if (!b) {
                free(buf);
                fclose(f);
                return dray_set_error(DRAY_EFORMAT, "serve config: %s: too large", path);
            }
            buf = b;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    dray_status st = dray_serve_config_parse(buf, n, path, out);
    free(buf);
    return st;
}

void dray_serve_config_destroy(dray_serve_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_apps; i++)
        free(cfg->apps[i].deps);
    free(cfg->apps);
    for (size_t i = 0; i < cfg->n_strings; i++)
        free(cfg->strings[i]);
    free(cfg->strings);
    free(cfg->label);
    free(cfg);
}

void dray_serve_config_http(const dray_serve_config *cfg, dray_serve_opts *opts)
{
    if (cfg->host)
        opts->host = cfg->host;
    if (cfg->has_port)
        opts->port = cfg->port;
    if (cfg->threads > 0)
        opts->threads = cfg->threads;
    if (cfg->timeout > 0)
        opts->request_timeout_s = cfg->timeout;
    if (cfg->max_body > 0)
        opts->max_body_bytes = (size_t)cfg->max_body;
}

/* Finds class `name`: exported by the application's library as a dray_serve_class object named so
 * (registered here), or registered by a constructor / built in. */
static const dray_serve_class *resolve_class(void *lib, const char *name)
{
    if (lib) {
        dray_serve_class *c = dlsym(lib, name);
        if (c && c->name) {
            dray_serve_class_register(c);
            return dray_serve_class_find(c->name);
        }
    }
    return dray_serve_class_find(name);
}

dray_status dray_serve_config_apply(const dray_serve_config *cfg, dray_serve *s)
{
    for (size_t i = 0; i < cfg->n_apps; i++) {
        const cfg_app *a = &cfg->apps[i];
        const char *app = a->name ? a->name : a->cls;
        void *lib = NULL;
        if (a->lib && !(lib = dlopen(a->lib, RTLD_NOW | RTLD_GLOBAL)))
            return dray_set_error(DRAY_ENOTFOUND, "application '%s': cannot load %s: %s", app,
                                  a->lib, dlerror());
        /* Handle-only deployments first, so the ingress's init finds their handles. */
        for (int pass = 0; pass < 2; pass++) {
            for (size_t j = 0; j < a->n_deps; j++) {
                dray_serve_deployment_opts o = a->deps[j].o;
                if ((o.route_prefix != NULL) != (pass == 1))
                    continue;
                const dray_serve_class *c = resolve_class(lib, o.class_name);
                if (!c)
                    return dray_set_error(DRAY_ENOTFOUND,
                                          "application '%s', deployment '%s': no class '%s'%s%s",
                                          app, o.name, o.class_name, a->lib ? " in " : "",
                                          a->lib ? a->lib : "");
                o.class_name = c->name;
                dray_status st = dray_serve_run(s, &o, NULL);
                if (st != DRAY_OK) {
                    char msg[512];
                    snprintf(msg, sizeof(msg), "%s", dray_last_error());
                    return dray_set_error(st, "application '%s': %s", app, msg);
                }
            }
        }
    }
    return DRAY_OK;
}
