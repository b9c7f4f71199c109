/* The expression language: a recursive-descent parser to a typed tree, checked against a schema,
 * then evaluated a whole column at a time by vectorised kernels (literals broadcast as scalars,
 * validity bitmaps combined bytewise, string predicates on a dictionary evaluated once per entry). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

/* ---- tree ---- */
typedef enum node_kind { N_COL, N_LIT, N_BIN, N_NOT, N_NEG, N_CALL } node_kind;
typedef enum op {
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD, OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_AND, OP_OR
} op;
typedef enum fn_id {
    F_LOG, F_EXP, F_SQRT, F_ABS, F_FLOOR, F_CEIL, F_ISNULL, F_NOTNULL, F_STARTS, F_ENDS, F_CONTAINS,
    F_LEN, F_INT64, F_FLOAT64, F_STRING, F_DATE32, F_YEAR, F_MONTH, F_DAY, F__COUNT
} fn_id;
static const struct { const char *name; int nargs; } fns[F__COUNT] = {
    {"log", 1},        {"exp", 1},     {"sqrt", 1},       {"abs", 1},      {"floor", 1},
    {"ceil", 1},       {"is_null", 1}, {"is_not_null", 1}, {"startswith", 2}, {"endswith", 2},
    {"contains", 2},   {"len", 1},     {"int64", 1},      {"float64", 1},  {"string", 1},
    {"date32", 1},     {"year", 1},    {"month", 1},      {"day", 1}};

#define T_NULL DRAY__DT_COUNT /* type of the null literal */

typedef struct node {
    node_kind kind;
    int op;               /* op or fn_id */
    int type;             /* dray_col_type of the result, or T_NULL */
    dray_time_unit unit;
    struct node *a[2];
    char *name;           /* column name / string literal */
    size_t slen;
    int64_t i;
    double f;
    int pos;              /* offset in the source text, for errors */
} node;

struct dray_expr {
    node *root;
    char *text;
};

static void node_free(node *n)
{
    if (!n)
        return;
    node_free(n->a[0]);
    node_free(n->a[1]);
    free(n->name);
    free(n);
}

/* ---- parser ---- */
typedef struct parser {
    const char *s;
    size_t p;
    const dray_table *schema;
    dray_status st;
} parser;

static node *fail(parser *ps, int pos, const char *msg, const char *detail)
{
    if (!ps->st)
        ps->st = dray_set_error(DRAY_EINVAL, "expression \"%s\" at column %d: %s%s%s%s", ps->s,
                                pos + 1, msg, detail ? " '" : "", detail ? detail : "",
                                detail ? "'" : "");
    return NULL;
}

static void skip_ws(parser *ps)
{
    while (ps->s[ps->p] == ' ' || ps->s[ps->p] == '\t' || ps->s[ps->p] == '\n')
        ps->p++;
}

static bool is_ident(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (!first && ((c >= '0' && c <= '9') || c == '.'));
}

/* accept: consumes `tok` (a word must end there) when next. */
static bool accept(parser *ps, const char *tok)
{
    skip_ws(ps);
    size_t l = strlen(tok);
    if (strncmp(ps->s + ps->p, tok, l))
        return false;
    if (is_ident(tok[0], true) && is_ident(ps->s[ps->p + l], false))
        return false;
    ps->p += l;
    return true;
}

static node *new_node(parser *ps, node_kind k, int type)
{
    node *n = calloc(1, sizeof(*n));
    if (!n) {
        if (!ps->st)
            ps->st = dray_set_error(DRAY_ENOMEM, "expression");
        return NULL;
    }
    n->kind = k;
    n->type = type;
    n->pos = (int)ps->p;
    return n;
}

static bool is_str(int t) { return t == DRAY_DT_UTF8 || t == DRAY_DT_DICT; }
static bool is_num(int t) { return dray__dtype_is_numeric((dray_col_type)t) || t == DRAY_DT_BOOL; }
static bool is_time(int t) { return t == DRAY_DT_DATE32 || t == DRAY_DT_TIMESTAMP; }

static node *parse_or(parser *ps);

/* coerce_lit: a string literal compared with a date/timestamp becomes one (parsed now). */
static node *coerce_lit(parser *ps, node *lit, const node *other)
{
    if (lit->kind != N_LIT || !is_str(lit->type) || !is_time(other->type))
        return lit;
    bool ok = other->type == DRAY_DT_DATE32
                  ? dray__parse_date32(lit->name, lit->slen, &(int32_t){0})
                  : dray__parse_timestamp(lit->name, lit->slen, other->unit, &lit->i);
    if (other->type == DRAY_DT_DATE32 && ok) {
        int32_t d;
        dray__parse_date32(lit->name, lit->slen, &d);
        lit->i = d;
    }
    if (!ok)
        return fail(ps, lit->pos, "not a date or timestamp:", lit->name);
    lit->type = other->type;
    lit->unit = other->unit;
    return lit;
}

static node *make_bin(parser *ps, int o, node *l, node *r, int pos)
{
    if (!l || !r)
        goto out_free;
    if (o == OP_EQ || o == OP_NE || o == OP_LT || o == OP_LE || o == OP_GT || o == OP_GE) {
        if (!coerce_lit(ps, l, r) || !coerce_lit(ps, r, l))
            goto out_free;
    }
    node *n = new_node(ps, N_BIN, DRAY_DT_BOOL);
    if (!n)
        goto out_free;
    n->op = o;
    n->a[0] = l;
    n->a[1] = r;
    n->pos = pos;
    int lt = l->type, rt = r->type;
    bool nul = lt == T_NULL || rt == T_NULL;
    if (o == OP_AND || o == OP_OR) {
        if ((lt != DRAY_DT_BOOL && lt != T_NULL) || (rt != DRAY_DT_BOOL && rt != T_NULL))
            goto out_type;
    } else if (o >= OP_EQ) {
        if (!nul && !(is_num(lt) && is_num(rt)) && !(is_str(lt) && is_str(rt)) &&
            !(is_time(lt) && lt == rt))
            goto out_type;
    } else {
        if (!nul && !(is_num(lt) && is_num(rt)))
            goto out_type;
        n->type = (lt == DRAY_DT_FLOAT64 || lt == DRAY_DT_FLOAT32 || rt == DRAY_DT_FLOAT64 ||
                   rt == DRAY_DT_FLOAT32 || o == OP_DIV)
                      ? DRAY_DT_FLOAT64
                      : DRAY_DT_INT64;
    }
    return n;
out_type:
    node_free(n);
    {
        char buf[64];
        snprintf(buf, sizeof(buf), "%s and %s", lt == T_NULL ? "null" : dray_col_type_name(lt),
                 rt == T_NULL ? "null" : dray_col_type_name(rt));
        return fail(ps, pos, "operands of incompatible types", buf);
    }
out_free:
    node_free(l);
    node_free(r);
    return NULL;
}

static node *parse_call(parser *ps, const char *name, int pos)
{
    int f = -1;
    for (int i = 0; i < F__COUNT; i++)
        if (!strcmp(fns[i].name, name))
            f = i;
    if (f < 0)
        return fail(ps, pos, "unknown function", name);
    node *n = new_node(ps, N_CALL, DRAY_DT_FLOAT64);
    if (!n)
        return NULL;
    n->op = f;
    n->pos = pos;
    for (int k = 0; k < fns[f].nargs; k++) {
        if (k && !accept(ps, ","))
            goto out_syntax;
        if (!(n->a[k] = parse_or(ps)))
            goto out_free;
    }
    if (!accept(ps, ")"))
        goto out_syntax;
    int t = n->a[0]->type;
    switch (f) {
    case F_LOG: case F_EXP: case F_SQRT: case F_FLOOR: case F_CEIL:
        if (!is_num(t) && t != T_NULL)
            goto out_type;
        break;
    case F_ABS:
        if (!is_num(t) && t != T_NULL)
            goto out_type;
        n->type = (t == DRAY_DT_FLOAT64 || t == DRAY_DT_FLOAT32) ? DRAY_DT_FLOAT64 : DRAY_DT_INT64;
        break;
    case F_ISNULL: case F_NOTNULL:
        n->type = DRAY_DT_BOOL;
        break;
    case F_STARTS: case F_ENDS: case F_CONTAINS:
        if (!is_str(t) || n->a[1]->kind != N_LIT || !is_str(n->a[1]->type))
            goto out_type;
        n->type = DRAY_DT_BOOL;
        break;
    case F_LEN:
        if (!is_str(t))
            goto out_type;
        n->type = DRAY_DT_INT64;
        break;
    case F_INT64:
        n->type = DRAY_DT_INT64;
        break;
    case F_FLOAT64:
        break;
    case F_STRING:
        n->type = DRAY_DT_UTF8;
        break;
    case F_DATE32:
        if (!is_str(t) && t != DRAY_DT_TIMESTAMP && t != DRAY_DT_DATE32)
            goto out_type;
        n->type = DRAY_DT_DATE32;
        break;
    default: /* year, month, day */
        if (!is_time(t))
            goto out_type;
        n->type = DRAY_DT_INT64;
    }
    return n;
out_type:
    node_free(n);
    return fail(ps, pos, "wrong argument type for", name);
out_syntax:
    node_free(n);
    return fail(ps, (int)ps->p, "expected ',' or ')' in call of", name);
out_free:
    node_free(n);
    return NULL;
}

static node *parse_primary(parser *ps)
{
    skip_ws(ps);
    int pos = (int)ps->p;
    const char *s = ps->s + ps->p;
    if (accept(ps, "(")) {
        node *n = parse_or(ps);
        if (n && !accept(ps, ")")) {
            node_free(n);
            return fail(ps, (int)ps->p, "expected ')'", NULL);
        }
        return n;
    }
    if (*s == '\'' || *s == '"') {
        char q = *s;
        size_t cap = strlen(s) + 1, l = 0;
        char *buf = malloc(cap);
        if (!buf)
            return fail(ps, pos, "out of memory", NULL);
        size_t i = 1;
        for (;; i++) {
            if (!s[i]) {
                free(buf);
                return fail(ps, pos, "unterminated string", NULL);
            }
            if (s[i] == q) {
                if (s[i + 1] != q)
                    break;
                i++;
            }
            buf[l++] = s[i];
        }
        buf[l] = 0;
        ps->p += i + 1;
        node *n = new_node(ps, N_LIT, DRAY_DT_UTF8);
        if (!n) {
            free(buf);
            return NULL;
        }
        n->name = buf;
        n->slen = l;
        n->pos = pos;
        return n;
    }
    if ((*s >= '0' && *s <= '9') || (*s == '.' && s[1] >= '0' && s[1] <= '9')) {
        size_t l = 0;
        bool flt = false;
        while ((s[l] >= '0' && s[l] <= '9') || s[l] == '.' || s[l] == 'e' || s[l] == 'E' ||
               ((s[l] == '-' || s[l] == '+') && l && (s[l - 1] == 'e' || s[l - 1] == 'E'))) {
            flt |= s[l] == '.' || s[l] == 'e' || s[l] == 'E';
            l++;
        }
        node *n = new_node(ps, N_LIT, flt ? DRAY_DT_FLOAT64 : DRAY_DT_INT64);
        if (!n)
            return NULL;
        if (flt ? !dray__parse_f64(s, l, &n->f) : !dray__parse_i64(s, l, &n->i)) {
            node_free(n);
            return fail(ps, pos, "bad number", NULL);
        }
        ps->p += l;
        return n;
    }
    if (accept(ps, "true") || accept(ps, "false")) {
        node *n = new_node(ps, N_LIT, DRAY_DT_BOOL);
        if (n)
            n->i = s[0] == 't';
        return n;
    }
    if (accept(ps, "null"))
        return new_node(ps, N_LIT, T_NULL);
    char name[256];
    size_t l = 0;
    if (*s == '`') {
        const char *e = strchr(s + 1, '`');
        if (!e || (size_t)(e - s - 1) >= sizeof(name))
            return fail(ps, pos, "unterminated `name`", NULL);
        l = (size_t)(e - s - 1);
        memcpy(name, s + 1, l);
        ps->p += l + 2;
    } else if (is_ident(*s, true)) {
        while (is_ident(s[l], false) && l < sizeof(name) - 1)
            l++;
        memcpy(name, s, l);
        ps->p += l;
    } else {
        return fail(ps, pos, *s ? "unexpected character" : "unexpected end", *s ? (char[2]){*s, 0} : NULL);
    }
    name[l] = 0;
    if (*s != '`' && accept(ps, "("))
        return parse_call(ps, name, pos);
    int k = dray_table_find(ps->schema, name);
    if (k < 0)
        return fail(ps, pos, "no column", name);
    node *n = new_node(ps, N_COL, dray_table_column(ps->schema, (size_t)k)->type);
    if (!n)
        return NULL;
    n->pos = pos;
    n->unit = dray_table_column(ps->schema, (size_t)k)->unit;
    if (!(n->name = strdup(name))) {
        node_free(n);
        return fail(ps, pos, "out of memory", NULL);
    }
    return n;
}

static node *parse_unary(parser *ps)
{
    skip_ws(ps);
    int pos = (int)ps->p;
    if (accept(ps, "-")) {
        node *a = parse_unary(ps);
        if (!a)
            return NULL;
        if (!is_num(a->type) && a->type != T_NULL) {
            node_free(a);
            return fail(ps, pos, "'-' of a non-number", NULL);
        }
        node *n = new_node(ps, N_NEG, a->type == DRAY_DT_FLOAT64 || a->type == DRAY_DT_FLOAT32
                                          ? DRAY_DT_FLOAT64 : DRAY_DT_INT64);
        if (!n) {
            node_free(a);
            return NULL;
        }
        n->a[0] = a;
        return n;
    }
    return parse_primary(ps);
}

static node *parse_mul(parser *ps)
{
    node *l = parse_unary(ps);
    for (;;) {
        int pos = (int)ps->p, o;
        if (accept(ps, "*"))
            o = OP_MUL;
        else if (accept(ps, "/"))
            o = OP_DIV;
        else if (accept(ps, "%"))
            o = OP_MOD;
        else
            return l;
        l = make_bin(ps, o, l, parse_unary(ps), pos);
    }
}

static node *parse_add(parser *ps)
{
    node *l = parse_mul(ps);
    for (;;) {
        int pos = (int)ps->p, o;
        if (accept(ps, "+"))
            o = OP_ADD;
        else if (accept(ps, "-"))
            o = OP_SUB;
        else
            return l;
        l = make_bin(ps, o, l, parse_mul(ps), pos);
    }
}

static node *parse_cmp(parser *ps)
{
    node *l = parse_add(ps);
    int pos = (int)ps->p, o;
    if (accept(ps, "=="))
        o = OP_EQ;
    else if (accept(ps, "!=") || accept(ps, "<>"))
        o = OP_NE;
    else if (accept(ps, "<="))
        o = OP_LE;
    else if (accept(ps, ">="))
        o = OP_GE;
    else if (accept(ps, "<"))
        o = OP_LT;
    else if (accept(ps, ">"))
        o = OP_GT;
    else if (accept(ps, "="))
        o = OP_EQ;
    else
        return l;
    return make_bin(ps, o, l, parse_add(ps), pos);
}

static node *parse_not(parser *ps)
{
    skip_ws(ps);
    int pos = (int)ps->p;
    if (accept(ps, "not") || accept(ps, "!")) {
        node *a = parse_not(ps);
        if (!a)
            return NULL;
        if (a->type != DRAY_DT_BOOL && a->type != T_NULL) {
            node_free(a);
            return fail(ps, pos, "'not' of a non-boolean", NULL);
        }
        node *n = new_node(ps, N_NOT, DRAY_DT_BOOL);
        if (!n) {
            node_free(a);
            return NULL;
        }
        n->a[0] = a;
        return n;
    }
    return parse_cmp(ps);
}

static node *parse_and(parser *ps)
{
    node *l = parse_not(ps);
    for (;;) {
        int pos = (int)ps->p;
        if (!accept(ps, "and") && !accept(ps, "&&") && !accept(ps, "&"))
            return l;
        l = make_bin(ps, OP_AND, l, parse_not(ps), pos);
    }
}

static node *parse_or(parser *ps)
{
    node *l = parse_and(ps);
    for (;;) {
        int pos = (int)ps->p;
        if (!accept(ps, "or") && !accept(ps, "||") && !accept(ps, "|"))
            return l;
        l = make_bin(ps, OP_OR, l, parse_and(ps), pos);
    }
}

dray_status dray_expr_compile(const char *text, const dray_table *schema_like, dray_expr **out)
{
    parser ps = {text, 0, schema_like, DRAY_OK};
    node *root = parse_or(&ps);
    skip_ws(&ps);
    if (root && text[ps.p]) {
        node_free(root);
        root = fail(&ps, (int)ps.p, "unexpected text", text + ps.p);
    }
    if (!root)
        return ps.st ? ps.st : dray_set_error(DRAY_EINVAL, "expression \"%s\"", text);
    dray_expr *e = calloc(1, sizeof(*e));
    if (!e || !(e->text = strdup(text))) {
        free(e);
        node_free(root);
        return dray_set_error(DRAY_ENOMEM, "expression");
    }
    e->root = root;
    *out = e;
    return DRAY_OK;
}

dray_col_type dray_expr_type(const dray_expr *e)
{
    return e->root->type == T_NULL ? DRAY_DT_BOOL : (dray_col_type)e->root->type;
}

void dray_expr_destroy(dray_expr *e)
{
    if (!e)
        return;
    node_free(e->root);
    free(e->text);
    free(e);
}

/* ---- evaluation ----
 * A value is a column (owned) or a scalar broadcast to every row. */
typedef struct val {
    int type;
    dray_time_unit unit;
    dray_column *col; /* NULL: scalar */
    bool null;        /* scalar null */
    int64_t i;
    double f;
    const char *s;
    size_t slen;
} val;

typedef struct ectx {
    const dray_table *t;
    int64_t n;
    const char *text;
} ectx;

static dray_status eval(const ectx *x, const node *nd, val *out);

static void val_fini(val *v)
{
    dray_column_release(v->col);
    v->col = NULL;
}

/* combine_valid: a new bitmap that is the AND of the operands' validity, or NULL if all valid;
 * *all_null when a scalar operand is null. */
static dray_status combine_valid(const ectx *x, const val *a, const val *b, uint8_t **out,
                                 bool *all_null)
{
    *out = NULL;
    *all_null = a->null || (b && b->null);
    const uint8_t *va = a->col ? a->col->validity : NULL, *vb = b && b->col ? b->col->validity : NULL;
    if (!va && !vb)
        return DRAY_OK;
    size_t nb = (size_t)dray__bitmap_bytes(x->n);
    uint8_t *v = malloc(nb ? nb : 1);
    if (!v)
        return dray_set_error(DRAY_ENOMEM, "expression");
    for (size_t i = 0; i < nb; i++)
        v[i] = (va ? va[i] : 0xff) & (vb ? vb[i] : 0xff);
    *out = v;
    return DRAY_OK;
}

/* new_result: an output column of type t with the given validity (taken) or all null. */
static dray_status new_result(const ectx *x, int t, dray_time_unit u, uint8_t *valid, bool all_null,
                              dray_column **out)
{
    dray_status st = dray__column_alloc((dray_col_type)t, u, x->n, all_null, 0, out);
    if (st) {
        free(valid);
        return st;
    }
    if (all_null) {
        free(valid);
        memset((*out)->validity, 0, (size_t)dray__bitmap_bytes(x->n));
        memset((*out)->data, 0, t == DRAY_DT_BOOL ? (size_t)dray__bitmap_bytes(x->n)
                                                    : (size_t)x->n * (size_t)dray__dtype_width((dray_col_type)t));
    } else {
        (*out)->validity = valid;
    }
    return DRAY_OK;
}

/* as_f64 / as_i64: the operand as an array (or a scalar with step 0); *tmp is freed by the caller. */
static const double *as_f64(const val *v, int64_t n, double **tmp, int64_t *step, double *scalar)
{
    *tmp = NULL;
    if (!v->col) {
        *scalar = v->type == DRAY_DT_FLOAT64 ? v->f : (double)v->i;
        *step = 0;
        return scalar;
    }
    *step = 1;
    if (v->col->type == DRAY_DT_FLOAT64)
        return v->col->data;
    if (!(*tmp = malloc((size_t)(n ? n : 1) * sizeof(double))))
        return NULL;
    for (int64_t i = 0; i < n; i++)
        (*tmp)[i] = dray_column_is_valid(v->col, i) ? dray_column_get_f64(v->col, i) : 0;
    return *tmp;
}

static const int64_t *as_i64(const val *v, int64_t n, int64_t **tmp, int64_t *step, int64_t *scalar)
{
    *tmp = NULL;
    if (!v->col) {
        *scalar = v->i;
        *step = 0;
        return scalar;
    }
    *step = 1;
    if (v->col->type == DRAY_DT_INT64 || v->col->type == DRAY_DT_TIMESTAMP)
        return v->col->data;
    if (!(*tmp = malloc((size_t)(n ? n : 1) * sizeof(int64_t))))
        return NULL;
    for (int64_t i = 0; i < n; i++)
        (*tmp)[i] = dray_column_get_i64(v->col, i);
    return *tmp;
}

/* pack8: sets result bits from a per-row predicate evaluated in blocks of 8. */
#define PACK_BITS(out, n, pred)                                                                    \
    do {                                                                                           \
        int64_t full_ = (n) / 8;                                                                   \
        for (int64_t b_ = 0; b_ < full_; b_++) {                                                   \
            unsigned byte_ = 0;                                                                    \
            for (int k_ = 0; k_ < 8; k_++) {                                                       \
                int64_t i = b_ * 8 + k_;                                                           \
                byte_ |= (unsigned)(pred) << k_;                                                   \
            }                                                                                      \
            (out)[b_] = (uint8_t)byte_;                                                            \
        }                                                                                          \
        for (int64_t i = full_ * 8; i < (n); i++)                                                  \
            if (pred)                                                                              \
                dray__bit_set((out), i);                                                           \
    } while (0)

static dray_status eval_arith(const ectx *x, const node *nd, val *a, val *b, val *out)
{
    uint8_t *valid;
    bool all_null;
    dray_status st = combine_valid(x, a, b, &valid, &all_null);
    if (st)
        return st;
    dray_column *r;
    if ((st = new_result(x, nd->type, 0, valid, all_null, &r)))
        return st;
    int64_t n = x->n;
    if (!all_null && nd->type == DRAY_DT_FLOAT64) {
        double *ta, *tb, sa, sb;
        int64_t ka, kb;
        const double *pa = as_f64(a, n, &ta, &ka, &sa), *pb = as_f64(b, n, &tb, &kb, &sb);
        double *d = r->data;
        if (!pa || !pb) {
            st = dray_set_error(DRAY_ENOMEM, "expression");
        } else {
            switch (nd->op) {
            case OP_ADD: for (int64_t i = 0; i < n; i++) d[i] = pa[i * ka] + pb[i * kb]; break;
            case OP_SUB: for (int64_t i = 0; i < n; i++) d[i] = pa[i * ka] - pb[i * kb]; break;
            case OP_MUL: for (int64_t i = 0; i < n; i++) d[i] = pa[i * ka] * pb[i * kb]; break;
            case OP_DIV: for (int64_t i = 0; i < n; i++) d[i] = pa[i * ka] / pb[i * kb]; break;
            default: for (int64_t i = 0; i < n; i++) d[i] = fmod(pa[i * ka], pb[i * kb]);
            }
        }
        free(ta);
        free(tb);
    } else if (!all_null) {
        int64_t *ta, *tb, sa, sb, ka, kb;
        const int64_t *pa = as_i64(a, n, &ta, &ka, &sa), *pb = as_i64(b, n, &tb, &kb, &sb);
        int64_t *d = r->data;
        if (!pa || !pb) {
            st = dray_set_error(DRAY_ENOMEM, "expression");
        } else {
            switch (nd->op) {
            case OP_ADD: for (int64_t i = 0; i < n; i++) d[i] = (int64_t)((uint64_t)pa[i * ka] + (uint64_t)pb[i * kb]); break;
            case OP_SUB: for (int64_t i = 0; i < n; i++) d[i] = (int64_t)((uint64_t)pa[i * ka] - (uint64_t)pb[i * kb]); break;
            case OP_MUL: for (int64_t i = 0; i < n; i++) d[i] = (int64_t)((uint64_t)pa[i * ka] * (uint64_t)pb[i * kb]); break;
            default:
                /* integer modulo: a zero divisor gives null (like SQL), never a trap */
                for (int64_t i = 0; i < n && !st; i++) {
                    int64_t p = pa[i * ka], q = pb[i * kb];
                    if (q != 0 && !(q == -1 && p == INT64_MIN)) {
                        d[i] = p % q;
                        continue;
                    }
                    d[i] = 0;
                    if (!r->validity) {
                        size_t nb = (size_t)dray__bitmap_bytes(n);
                        if (!(r->validity = malloc(nb))) {
                            st = dray_set_error(DRAY_ENOMEM, "expression");
                            break;
                        }
                        memset(r->validity, 0xff, nb);
                    }
                    dray__bit_clear(r->validity, i);
                }
            }
        }
        free(ta);
        free(tb);
    }
    if (st) {
        dray_column_release(r);
        return st;
    }
    dray__column_finish_nulls(r);
    out->col = r;
    return DRAY_OK;
}

static int cmp_bytes(const char *a, size_t la, const char *b, size_t lb)
{
    int c = memcmp(a, b, la < lb ? la : lb);
    return c ? c : (la > lb) - (la < lb);
}

static bool cmp_result(int o, int c)
{
    switch (o) {
    case OP_EQ: return c == 0;
    case OP_NE: return c != 0;
    case OP_LT: return c < 0;
    case OP_LE: return c <= 0;
    case OP_GT: return c > 0;
    default: return c >= 0;
    }
}

static dray_status eval_cmp(const ectx *x, const node *nd, val *a, val *b, val *out)
{
    uint8_t *valid;
    bool all_null;
    dray_status st = combine_valid(x, a, b, &valid, &all_null);
    if (st)
        return st;
    dray_column *r;
    if ((st = new_result(x, DRAY_DT_BOOL, 0, valid, all_null, &r)))
        return st;
    int64_t n = x->n;
    uint8_t *bits = r->data;
    int o = nd->op;
    if (all_null) {
        /* nothing to compare */
    } else if (is_str(a->type)) {
        /* strings: a dictionary column against a scalar compares each entry once */
        const val *c = a->col ? a : b, *s = a->col ? b : a;
        bool swap = c == b;
        if (!c->col) {
            bool v = cmp_result(o, swap ? cmp_bytes(s->s, s->slen, c->s, c->slen)
                                        : cmp_bytes(c->s, c->slen, s->s, s->slen));
            memset(bits, v ? 0xff : 0, (size_t)dray__bitmap_bytes(n));
        } else if (!s->col && c->col->type == DRAY_DT_DICT) {
            const dray_column *d = c->col->dict;
            uint8_t *hit = malloc((size_t)(d->length ? d->length : 1));
            if (!hit) {
                dray_column_release(r);
                return dray_set_error(DRAY_ENOMEM, "expression");
            }
            for (int64_t k = 0; k < d->length; k++) {
                size_t l;
                const char *p = dray_column_get_str(d, k, &l);
                int cc = cmp_bytes(p, l, s->s, s->slen);
                hit[k] = cmp_result(o, swap ? -cc : cc);
            }
            const int32_t *idx = c->col->data;
            PACK_BITS(bits, n, hit[idx[i]]);
            free(hit);
        } else if (!s->col) {
            const int32_t *off = c->col->data;
            const char *ch = c->col->chars;
            PACK_BITS(bits, n, cmp_result(o, swap ? -cmp_bytes(ch + off[i], (size_t)(off[i + 1] - off[i]), s->s, s->slen)
                                                  : cmp_bytes(ch + off[i], (size_t)(off[i + 1] - off[i]), s->s, s->slen)));
        } else {
            for (int64_t i = 0; i < n; i++) {
                size_t la = 0, lb = 0;
                const char *pa = dray_column_get_str(a->col, i, &la), *pb = dray_column_get_str(b->col, i, &lb);
                if (pa && pb && cmp_result(o, cmp_bytes(pa, la, pb, lb)))
                    dray__bit_set(bits, i);
            }
        }
    } else if (a->type == DRAY_DT_FLOAT64 || b->type == DRAY_DT_FLOAT64 || a->type == DRAY_DT_FLOAT32 ||
               b->type == DRAY_DT_FLOAT32) {
        double *ta, *tb, sa, sb;
        int64_t ka, kb;
        const double *pa = as_f64(a, n, &ta, &ka, &sa), *pb = as_f64(b, n, &tb, &kb, &sb);
        if (!pa || !pb) {
            st = dray_set_error(DRAY_ENOMEM, "expression");
        } else {
            switch (o) {
            case OP_EQ: PACK_BITS(bits, n, pa[i * ka] == pb[i * kb]); break;
            case OP_NE: PACK_BITS(bits, n, pa[i * ka] != pb[i * kb]); break;
            case OP_LT: PACK_BITS(bits, n, pa[i * ka] < pb[i * kb]); break;
            case OP_LE: PACK_BITS(bits, n, pa[i * ka] <= pb[i * kb]); break;
            case OP_GT: PACK_BITS(bits, n, pa[i * ka] > pb[i * kb]); break;
            default: PACK_BITS(bits, n, pa[i * ka] >= pb[i * kb]);
            }
        }
        free(ta);
        free(tb);
    } else {
        int64_t *ta, *tb, sa, sb, ka, kb;
        const int64_t *pa = as_i64(a, n, &ta, &ka, &sa), *pb = as_i64(b, n, &tb, &kb, &sb);
        if (!pa || !pb) {
            st = dray_set_error(DRAY_ENOMEM, "expression");
        } else {
            switch (o) {
            case OP_EQ: PACK_BITS(bits, n, pa[i * ka] == pb[i * kb]); break;
            case OP_NE: PACK_BITS(bits, n, pa[i * ka] != pb[i * kb]); break;
            case OP_LT: PACK_BITS(bits, n, pa[i * ka] < pb[i * kb]); break;
            case OP_LE: PACK_BITS(bits, n, pa[i * ka] <= pb[i * kb]); break;
            case OP_GT: PACK_BITS(bits, n, pa[i * ka] > pb[i * kb]); break;
            default: PACK_BITS(bits, n, pa[i * ka] >= pb[i * kb]);
            }
        }
        free(ta);
        free(tb);
    }
    if (st) {
        dray_column_release(r);
        return st;
    }
    dray__column_finish_nulls(r);
    out->col = r;
    return DRAY_OK;
}

/* bool_bits: value and validity bytes of a boolean operand at byte k. */
static void bool_bytes(const val *v, int64_t k, uint8_t *val_b, uint8_t *valid_b)
{
    if (!v->col) {
        *val_b = v->i ? 0xff : 0;
        *valid_b = v->null ? 0 : 0xff;
        return;
    }
    *val_b = ((const uint8_t *)v->col->data)[k];
    *valid_b = v->col->validity ? v->col->validity[k] : 0xff;
}

/* eval_logic: three-valued and/or: false and null = false, true or null = true. */
static dray_status eval_logic(const ectx *x, const node *nd, val *a, val *b, val *out)
{
    dray_column *r;
    dray_status st = dray__column_alloc(DRAY_DT_BOOL, 0, x->n, true, 0, &r);
    if (st)
        return st;
    int64_t nb = dray__bitmap_bytes(x->n);
    uint8_t *d = r->data, *v = r->validity;
    for (int64_t k = 0; k < nb; k++) {
        uint8_t av, am, bv, bm;
        bool_bytes(a, k, &av, &am);
        bool_bytes(b, k, &bv, &bm);
        av &= am;
        bv &= bm;
        if (nd->op == OP_AND) {
            uint8_t known_false = (uint8_t)((am & ~av) | (bm & ~bv));
            d[k] = av & bv;
            v[k] = (uint8_t)((am & bm) | known_false);
        } else {
            d[k] = av | bv;
            v[k] = (uint8_t)((am & bm) | av | bv);
        }
    }
    dray__column_finish_nulls(r);
    out->col = r;
    return DRAY_OK;
}

static dray_status eval_not(const ectx *x, val *a, val *out)
{
    dray_column *r;
    dray_status st = dray__column_alloc(DRAY_DT_BOOL, 0, x->n, true, 0, &r);
    if (st)
        return st;
    int64_t nb = dray__bitmap_bytes(x->n);
    for (int64_t k = 0; k < nb; k++) {
        uint8_t av, am;
        bool_bytes(a, k, &av, &am);
        ((uint8_t *)r->data)[k] = (uint8_t)~av & am;
        r->validity[k] = am;
    }
    dray__column_finish_nulls(r);
    out->col = r;
    return DRAY_OK;
}

/* broadcast: a scalar as a column of n rows (for calls on literals). */
static dray_status broadcast(const ectx *x, val *v)
{
    if (v->col)
        return DRAY_OK;
    dray_status st;
    if (v->null || v->type == T_NULL) {
        int t = v->type == T_NULL ? DRAY_DT_FLOAT64 : v->type;
        if (is_str(t))
            t = DRAY_DT_FLOAT64;
        if ((st = new_result(x, t, v->unit, NULL, true, &v->col)))
            return st;
        v->type = t;
        return DRAY_OK;
    }
    if (is_str(v->type)) {
        if (v->slen * (size_t)x->n > INT32_MAX)
            return dray_set_error(DRAY_ERANGE, "expression: string literal too long to broadcast");
        if ((st = dray__column_alloc(DRAY_DT_UTF8, 0, x->n, false, (int64_t)v->slen * x->n, &v->col)))
            return st;
        int32_t *off = v->col->data;
        for (int64_t i = 0; i < x->n; i++) {
            memcpy(v->col->chars + i * (int64_t)v->slen, v->s, v->slen);
            off[i + 1] = (int32_t)((i + 1) * (int64_t)v->slen);
        }
        v->col->chars_len = (int64_t)v->slen * x->n;
        return DRAY_OK;
    }
    if ((st = dray__column_alloc((dray_col_type)v->type, v->unit, x->n, false, 0, &v->col)))
        return st;
    for (int64_t i = 0; i < x->n; i++) {
        if (v->type == DRAY_DT_FLOAT64)
            ((double *)v->col->data)[i] = v->f;
        else if (v->type == DRAY_DT_BOOL) {
            if (v->i)
                dray__bit_set(v->col->data, i);
        } else if (v->type == DRAY_DT_DATE32)
            ((int32_t *)v->col->data)[i] = (int32_t)v->i;
        else
            ((int64_t *)v->col->data)[i] = v->i;
    }
    return DRAY_OK;
}

static dray_status copy_validity(const dray_column *from, dray_column *to)
{
    if (!from->validity)
        return DRAY_OK;
    size_t nb = (size_t)dray__bitmap_bytes(from->length);
    if (!to->validity && !(to->validity = malloc(nb ? nb : 1)))
        return dray_set_error(DRAY_ENOMEM, "expression");
    memcpy(to->validity, from->validity, nb);
    return DRAY_OK;
}

static dray_status eval_string_pred(const ectx *x, const node *nd, const dray_column *c,
                                    const node *pat, dray_column *r)
{
    const char *p = pat->name;
    size_t pl = pat->slen;
    int f = nd->op;
    uint8_t *bits = r->data;
#define STR_PRED(s, l)                                                                             \
    (f == F_STARTS ? (l) >= pl && !memcmp((s), p, pl)                                              \
     : f == F_ENDS ? (l) >= pl && !memcmp((s) + (l) - pl, p, pl)                                   \
                   : (pl == 0 || ((l) >= pl && memmem((s), (l), p, pl) != NULL)))
    if (c->type == DRAY_DT_DICT) {
        const dray_column *d = c->dict;
        uint8_t *hit = malloc((size_t)(d->length ? d->length : 1));
        if (!hit)
            return dray_set_error(DRAY_ENOMEM, "expression");
        for (int64_t k = 0; k < d->length; k++) {
            size_t l = 0;
            const char *s = dray_column_get_str(d, k, &l);
            hit[k] = s && STR_PRED(s, l);
        }
        const int32_t *idx = c->data;
        PACK_BITS(bits, x->n, hit[idx[i]]);
        free(hit);
    } else {
        const int32_t *off = c->data;
        const char *ch = c->chars;
        PACK_BITS(bits, x->n, STR_PRED(ch + off[i], (size_t)(off[i + 1] - off[i])));
    }
#undef STR_PRED
    return copy_validity(c, r);
}

static dray_status eval_call(const ectx *x, const node *nd, val *out)
{
    val a = {0};
    dray_status st = eval(x, nd->a[0], &a);
    if (st)
        return st;
    if ((st = broadcast(x, &a)))
        goto out;
    const dray_column *c = a.col;
    int64_t n = x->n;
    dray_column *r = NULL;
    int f = nd->op;
    if (f == F_STRING) {
        /* formatted through the CSV writer's text form */
        dray__builder b;
        char buf[64];
        if ((st = dray__builder_init(&b, DRAY_DT_UTF8, 0, n, n * 8)))
            goto out;
        for (int64_t i = 0; i < n && !st; i++) {
            size_t l = 0;
            const char *s = buf;
            int k = is_str(c->type) ? 0 : dray__format_value(c, i, buf, sizeof(buf));
            if (is_str(c->type))
                s = dray_column_get_str(c, i, &l);
            else if (k >= 0)
                l = (size_t)k;
            if ((st = dray__builder_grow(&b, 1, (int64_t)l)))
                break;
            if ((is_str(c->type) && !s) || k < 0)
                st = dray__builder_mark_null(&b, b.len);
            else
                memcpy(b.chars + b.chars_len, s, l), b.chars_len += (int64_t)l;
            ((int32_t *)b.data)[++b.len] = (int32_t)b.chars_len;
        }
        if (!st)
            st = dray__builder_finish(&b, &r);
        dray__builder_fini(&b);
        goto done;
    }
    bool with_valid = f != F_ISNULL && f != F_NOTNULL && c->validity;
    if ((st = dray__column_alloc((dray_col_type)nd->type, c->unit, n, false, 0, &r)))
        goto out;
    if (nd->type == DRAY_DT_DATE32 || nd->type == DRAY_DT_INT64 || nd->type == DRAY_DT_FLOAT64)
        memset(r->data, 0, (size_t)n * (size_t)dray__dtype_width((dray_col_type)nd->type));
    if (with_valid && (st = copy_validity(c, r)))
        goto done;
    switch (f) {
    case F_LOG: case F_EXP: case F_SQRT: case F_FLOOR: case F_CEIL: {
        double *tmp, sc;
        int64_t k;
        const double *p = as_f64(&a, n, &tmp, &k, &sc);
        double *d = r->data;
        if (!p) {
            st = dray_set_error(DRAY_ENOMEM, "expression");
            break;
        }
        switch (f) {
        case F_LOG: for (int64_t i = 0; i < n; i++) d[i] = log(p[i]); break;
        case F_EXP: for (int64_t i = 0; i < n; i++) d[i] = exp(p[i]); break;
        case F_SQRT: for (int64_t i = 0; i < n; i++) d[i] = sqrt(p[i]); break;
        case F_FLOOR: for (int64_t i = 0; i < n; i++) d[i] = floor(p[i]); break;
        default: for (int64_t i = 0; i < n; i++) d[i] = ceil(p[i]);
        }
        free(tmp);
        break;
    }
    case F_ABS:
        if (nd->type == DRAY_DT_FLOAT64)
            for (int64_t i = 0; i < n; i++)
                ((double *)r->data)[i] = fabs(dray_column_get_f64(c, i));
        else
            for (int64_t i = 0; i < n; i++) {
                int64_t v = dray_column_get_i64(c, i);
                ((int64_t *)r->data)[i] = v < 0 ? (int64_t)(0 - (uint64_t)v) : v;
            }
        break;
    case F_ISNULL: case F_NOTNULL:
        PACK_BITS((uint8_t *)r->data, n, dray_column_is_valid(c, i) == (f == F_NOTNULL));
        break;
    case F_STARTS: case F_ENDS: case F_CONTAINS:
        st = eval_string_pred(x, nd, c, nd->a[1], r);
        break;
    case F_LEN:
        for (int64_t i = 0; i < n; i++) {
            size_t l = 0;
            dray_column_get_str(c, i, &l);
            ((int64_t *)r->data)[i] = (int64_t)l;
        }
        break;
    case F_INT64: case F_FLOAT64: case F_DATE32:
        for (int64_t i = 0; i < n && !st; i++) {
            if (!dray_column_is_valid(c, i))
                continue;
            if (is_str(c->type)) {
                size_t l;
                const char *s = dray_column_get_str(c, i, &l);
                int32_t dv;
                bool ok = f == F_INT64 ? dray__parse_i64(s, l, &((int64_t *)r->data)[i])
                        : f == F_FLOAT64 ? dray__parse_f64(s, l, &((double *)r->data)[i])
                                       : (dray__parse_date32(s, l, &dv) && (((int32_t *)r->data)[i] = dv, true));
                if (!ok)
                    st = dray_set_error(DRAY_EINVAL, "expression \"%s\": row %lld: '%.*s' is not "
                                        "a %s", x->text, (long long)i, (int)l, s, fns[f].name);
            } else if (f == F_INT64) {
                double v = dray_column_get_f64(c, i);
                ((int64_t *)r->data)[i] = c->type == DRAY_DT_FLOAT64 || c->type == DRAY_DT_FLOAT32
                                              ? (v >= -9.2e18 && v <= 9.2e18 ? (int64_t)v : 0)
                                              : dray_column_get_i64(c, i);
            } else if (f == F_FLOAT64) {
                ((double *)r->data)[i] = dray_column_get_f64(c, i);
            } else {
                static const int64_t per_day[4] = {86400LL, 86400000LL, 86400000000LL,
                                                   86400000000000LL};
                int64_t v = dray_column_get_i64(c, i);
                if (c->type == DRAY_DT_TIMESTAMP)
                    v = v >= 0 ? v / per_day[c->unit] : -((-v + per_day[c->unit] - 1) / per_day[c->unit]);
                ((int32_t *)r->data)[i] = (int32_t)v;
            }
        }
        break;
    default: { /* year, month, day */
        static const int64_t per_day[4] = {86400LL, 86400000LL, 86400000000LL, 86400000000000LL};
        for (int64_t i = 0; i < n; i++) {
            int64_t v = dray_column_get_i64(c, i), y;
            unsigned m, d;
            if (c->type == DRAY_DT_TIMESTAMP)
                v = v >= 0 ? v / per_day[c->unit] : -((-v + per_day[c->unit] - 1) / per_day[c->unit]);
            dray__civil_from_days(v, &y, &m, &d);
            ((int64_t *)r->data)[i] = f == F_YEAR ? y : f == F_MONTH ? m : d;
        }
    }
    }
done:
    if (st) {
        dray_column_release(r);
        goto out;
    }
    dray__column_finish_nulls(r);
    out->col = r;
out:
    val_fini(&a);
    return st;
}

static dray_status eval(const ectx *x, const node *nd, val *out)
{
    memset(out, 0, sizeof(*out));
    out->type = nd->type;
    out->unit = nd->unit;
    dray_status st = DRAY_OK;
    val a = {0}, b = {0};
    switch (nd->kind) {
    case N_LIT:
        out->null = nd->type == T_NULL;
        out->i = nd->i;
        out->f = nd->f;
        out->s = nd->name;
        out->slen = nd->slen;
        return DRAY_OK;
    case N_COL: {
        int k = dray_table_find(x->t, nd->name);
        if (k < 0)
            return dray_set_error(DRAY_EINVAL, "expression \"%s\": no column '%s'", x->text, nd->name);
        dray_column *c = dray_table_column(x->t, (size_t)k);
        if ((int)c->type != nd->type)
            return dray_set_error(DRAY_ETYPE, "expression \"%s\": column '%s' is %s, compiled as %s",
                                  x->text, nd->name, dray_col_type_name(c->type),
                                  dray_col_type_name((dray_col_type)nd->type));
        out->col = dray_column_retain(c);
        return DRAY_OK;
    }
    case N_CALL:
        return eval_call(x, nd, out);
    case N_NEG: {
        val zero = {.type = DRAY_DT_INT64};
        if ((st = eval(x, nd->a[0], &a)))
            return st;
        node sub = *nd;
        sub.op = OP_SUB;
        st = eval_arith(x, &sub, &zero, &a, out);
        val_fini(&a);
        return st;
    }
    case N_NOT:
        if ((st = eval(x, nd->a[0], &a)))
            return st;
        st = eval_not(x, &a, out);
        val_fini(&a);
        return st;
    case N_BIN:
        if ((st = eval(x, nd->a[0], &a)) || (st = eval(x, nd->a[1], &b)))
            break;
        if (nd->op == OP_AND || nd->op == OP_OR)
            st = eval_logic(x, nd, &a, &b, out);
        else if (nd->op >= OP_EQ)
            st = eval_cmp(x, nd, &a, &b, out);
        else
            st = eval_arith(x, nd, &a, &b, out);
        break;
    }
    val_fini(&a);
    val_fini(&b);
    return st;
}

dray_status dray_expr_eval(const dray_expr *e, const dray_table *t, dray_column **out)
{
    ectx x = {t, t->nrows, e->text};
    val v;
    dray_status st = eval(&x, e->root, &v);
    if (st)
        return st;
    if ((st = broadcast(&x, &v))) {
        val_fini(&v);
        return st;
    }
    *out = v.col;
    return DRAY_OK;
}

dray_status dray__expr_eval_mask(const dray_expr *e, const dray_table *t, uint8_t **mask,
                                 int64_t *count)
{
    if (e->root->type != DRAY_DT_BOOL && e->root->type != T_NULL)
        return dray_set_error(DRAY_ETYPE, "filter \"%s\" is %s, not bool", e->text,
                              dray_col_type_name((dray_col_type)e->root->type));
    dray_column *c;
    dray_status st = dray_expr_eval(e, t, &c);
    if (st)
        return st;
    size_t nb = (size_t)dray__bitmap_bytes(t->nrows);
    uint8_t *m = malloc(nb ? nb : 1);
    if (!m) {
        dray_column_release(c);
        return dray_set_error(DRAY_ENOMEM, "filter");
    }
    const uint8_t *d = c->data;
    int64_t k = 0;
    for (size_t i = 0; i < nb; i++) {
        m[i] = c->validity ? d[i] & c->validity[i] : d[i];
        if (i + 1 == nb && t->nrows % 8)
            m[i] &= (uint8_t)((1u << (t->nrows % 8)) - 1);
        k += __builtin_popcount(m[i]);
    }
    dray_column_release(c);
    *mask = m;
    *count = k;
    return DRAY_OK;
}

/* ---- predicate pushdown ---- */

/* cmp_may: can `min..max OP lit` hold for some value in [min, max]? (c < 0: lit below...) */
static bool range_may(int o, int lo_vs_lit, int hi_vs_lit)
{
    /* lo_vs_lit = sign(min - lit), hi_vs_lit = sign(max - lit) */
    switch (o) {
    case OP_EQ: return lo_vs_lit <= 0 && hi_vs_lit >= 0;
    case OP_NE: return !(lo_vs_lit == 0 && hi_vs_lit == 0);
    case OP_LT: return lo_vs_lit < 0;
    case OP_LE: return lo_vs_lit <= 0;
    case OP_GT: return hi_vs_lit > 0;
    default: return hi_vs_lit >= 0;
    }
}

static int flip(int o)
{
    return o == OP_LT ? OP_GT : o == OP_GT ? OP_LT : o == OP_LE ? OP_GE : o == OP_GE ? OP_LE : o;
}

static bool may_match(const node *nd, dray__stats_fn fn, void *ctx)
{
    dray__col_stats s;
    if (nd->kind == N_BIN && nd->op == OP_AND)
        return may_match(nd->a[0], fn, ctx) && may_match(nd->a[1], fn, ctx);
    if (nd->kind == N_BIN && nd->op == OP_OR)
        return may_match(nd->a[0], fn, ctx) || may_match(nd->a[1], fn, ctx);
    if (nd->kind == N_CALL && (nd->op == F_ISNULL || nd->op == F_NOTNULL) && nd->a[0]->kind == N_COL) {
        if (!fn(ctx, nd->a[0]->name, &s) || s.null_count < 0)
            return true;
        return nd->op == F_ISNULL ? s.null_count > 0 : s.null_count < s.rows;
    }
    if (nd->kind != N_BIN || nd->op < OP_EQ)
        return true;
    const node *c = nd->a[0], *l = nd->a[1];
    int o = nd->op;
    if (c->kind != N_COL) {
        c = nd->a[1];
        l = nd->a[0];
        o = flip(o);
    }
    if (c->kind != N_COL || l->kind != N_LIT || l->type == T_NULL)
        return true;
    if (!fn(ctx, c->name, &s))
        return true;
    if (s.null_count >= 0 && s.null_count == s.rows)
        return false; /* every row null: a comparison is never true */
    if (!s.has_min_max)
        return true;
    if (is_str(l->type)) {
        if (!s.is_str)
            return true;
        int a = cmp_bytes(s.min_s, s.min_len, l->name, l->slen), b = cmp_bytes(s.max_s, s.max_len, l->name, l->slen);
        return range_may(o, (a > 0) - (a < 0), (b > 0) - (b < 0));
    }
    if (s.is_str)
        return true;
    double v = l->type == DRAY_DT_FLOAT64 ? l->f : (double)l->i;
    return range_may(o, (s.min_f > v) - (s.min_f < v), (s.max_f > v) - (s.max_f < v));
}

bool dray__expr_may_match(const dray_expr *e, dray__stats_fn fn, void *ctx)
{
    return may_match(e->root, fn, ctx);
}
