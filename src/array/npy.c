/* .npy files: the header parser (untrusted input, fuzzed), the writer, whole-file reads and the
 * lazy memory-mapped chunk reader task. Format: NumPy's NEP 1 (versions 1.0, 2.0, 3.0). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static const char *const descrs[] = {"|b1", "<i4", "<i8", "<f4", "<f8"};

/* ==== Header parsing ==== */
typedef struct hp {
    const char *s, *end;
} hp;

static void skip_ws(hp *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static bool eat(hp *p, char c)
{
    skip_ws(p);
    if (p->s < p->end && *p->s == c) {
        p->s++;
        return true;
    }
    return false;
}

/* A quoted string into buf (max size-1 chars). */
static bool parse_str(hp *p, char *buf, size_t size)
{
    skip_ws(p);
    if (p->s >= p->end || (*p->s != '\'' && *p->s != '"'))
        return false;
    char q = *p->s++;
    size_t n = 0;
    while (p->s < p->end && *p->s != q) {
        if (n + 1 >= size)
            return false;
        buf[n++] = *p->s++;
    }
    if (p->s >= p->end)
        return false;
    p->s++;
    buf[n] = 0;
    return true;
}

static bool parse_word(hp *p, const char *w)
{
    skip_ws(p);
    size_t n = strlen(w);
    if ((size_t)(p->end - p->s) >= n && !memcmp(p->s, w, n)) {
        p->s += n;
        return true;
    }
    return false;
}

static bool parse_shape(hp *p, int *ndim, int64_t *shape)
{
    if (!eat(p, '('))
        return false;
    *ndim = 0;
    for (;;) {
        if (eat(p, ')'))
            return true;
        skip_ws(p);
        int64_t v = 0;
        int digits = 0;
        while (p->s < p->end && *p->s >= '0' && *p->s <= '9') {
            if (v > (INT64_C(1) << 50))
                return false;
            v = v * 10 + (*p->s++ - '0');
            digits++;
        }
        if (!digits || *ndim >= DRAY_ARRAY_MAX_DIMS)
            return false;
        shape[(*ndim)++] = v;
        if (!eat(p, ','))
            return eat(p, ')');
    }
}

static dray_status hdr_error(const char *what, size_t at)
{
    return dray_set_error(DRAY_EFORMAT, "npy header: %s (at byte %zu)", what, at);
}

dray_status dray_npy_parse_header(const void *buf, size_t len, dray_dtype *dtype, int *ndim,
                                  int64_t *shape, bool *fortran, size_t *data_offset)
{
    const uint8_t *b = buf;
    if (len < 10 || memcmp(b, "\x93NUMPY", 6))
        return hdr_error("not an .npy file (bad magic)", 0);
    size_t hlen, start;
    if (b[6] == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        start = 10;
    } else if (b[6] == 2 || b[6] == 3) {
        if (len < 12)
            return hdr_error("truncated", len);
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        start = 12;
    } else {
        return dray_set_error(DRAY_EFORMAT, "npy header: unsupported version %u.%u", b[6], b[7]);
    }
    if (hlen > len - start)
        return hdr_error("header longer than the file", len);
    hp p = {(const char *)b + start, (const char *)b + start + hlen};
    char key[32], val[32];
    int have = 0, nd = 0;
    int64_t sh[DRAY_ARRAY_MAX_DIMS];
    dray_dtype dt = DRAY_FLOAT64;
    bool fo = false;
    if (!eat(&p, '{'))
        return hdr_error("expected '{'", (size_t)(p.s - (const char *)b));
    while (!eat(&p, '}')) {
        size_t at = (size_t)(p.s - (const char *)b);
        if (!parse_str(&p, key, sizeof(key)) || !eat(&p, ':'))
            return hdr_error("expected a quoted key and ':'", at);
        if (!strcmp(key, "descr") && !(have & 1)) {
            if (!parse_str(&p, val, sizeof(val)))
                return hdr_error("descr is not a string", at);
            int k = 0;
            for (; k < DRAY__DTYPE_COUNT; k++)
                if (!strcmp(val, descrs[k]) || (k == DRAY_BOOL && !strcmp(val, "<b1")))
                    break;
            if (k == DRAY__DTYPE_COUNT)
                return dray_set_error(DRAY_EUNSUPPORTED, "npy header: dtype '%s' not supported "
                                      "(want <f8 <f4 <i8 <i4 |b1)", val);
            dt = (dray_dtype)k;
            have |= 1;
        } else if (!strcmp(key, "fortran_order") && !(have & 2)) {
            if (parse_word(&p, "True"))
                fo = true;
            else if (parse_word(&p, "False"))
                fo = false;
            else
                return hdr_error("fortran_order is not True/False", at);
            have |= 2;
        } else if (!strcmp(key, "shape") && !(have & 4)) {
            if (!parse_shape(&p, &nd, sh))
                return hdr_error("shape is not a tuple of at most 8 sizes", at);
            have |= 4;
        } else {
            return dray_set_error(DRAY_EFORMAT, "npy header: unexpected or repeated key '%s'", key);
        }
        if (!eat(&p, ',')) {
            if (!eat(&p, '}'))
                return hdr_error("expected ',' or '}'", (size_t)(p.s - (const char *)b));
            break;
        }
    }
    if (have != 7)
        return dray_set_error(DRAY_EFORMAT, "npy header: missing %s",
                              !(have & 1) ? "descr" : !(have & 2) ? "fortran_order" : "shape");
    int64_t total = 1;
    for (int d = 0; d < nd; d++) {
        if (sh[d] && total > (INT64_C(1) << 50) / sh[d])
            return hdr_error("shape too large", 0);
        total *= sh[d];
    }
    *dtype = dt;
    *ndim = nd;
    memcpy(shape, sh, sizeof(int64_t) * (size_t)nd);
    *fortran = fo;
    *data_offset = start + hlen;
    return DRAY_OK;
}

/* ==== Writing ==== */

dray_status dray__npy_header(dray_dtype dtype, int ndim, const int64_t *shape, char *buf,
                             size_t size, size_t *len)
{
    char dict[512];
    int n = snprintf(dict, sizeof(dict), "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     descrs[dtype]);
    for (int d = 0; d < ndim; d++)
        n += snprintf(dict + n, sizeof(dict) - (size_t)n, "%lld,%s", (long long)shape[d],
                      d + 1 < ndim ? " " : "");
    n += snprintf(dict + n, sizeof(dict) - (size_t)n, "), }");
    size_t total = (10 + (size_t)n + 1 + 63) & ~(size_t)63;
    if (total > size)
        return dray_set_error(DRAY_EINVAL, "npy header too long");
    size_t hlen = total - 10;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)(hlen & 0xff);
    buf[9] = (char)(hlen >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', hlen - (size_t)n - 1);
    buf[total - 1] = '\n';
    *len = total;
    return DRAY_OK;
}

dray_status dray__write_all(int fd, const void *data, size_t len, const char *path)
{
    const char *p = data;
    while (len) {
        ssize_t w = write(fd, p, len > (1u << 30) ? (1u << 30) : len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return dray_set_error(DRAY_EIO, "%s: write failed: %s", path, strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    return DRAY_OK;
}

dray_status dray_ndarray_write_npy(const dray_ndarray *a, const char *path)
{
    char hdr[1024];
    size_t hl;
    dray_status st = dray__npy_header(a->dtype, a->ndim, a->shape, hdr, sizeof(hdr), &hl);
    if (st != DRAY_OK)
        return st;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return dray_set_error(DRAY_EIO, "%s: cannot create: %s", path, strerror(errno));
    st = dray__write_all(fd, hdr, hl, path);
    if (st == DRAY_OK)
        st = dray__write_all(fd, a->data, (size_t)a->size * dray_dtype_size(a->dtype), path);
    if (close(fd) != 0 && st == DRAY_OK)
        st = dray_set_error(DRAY_EIO, "%s: close failed: %s", path, strerror(errno));
    return st;
}

/* ==== Reading ==== */

typedef struct npy_map {
    void *base;
    size_t len;
    dray_dtype dtype;
    int ndim;
    int64_t shape[DRAY_ARRAY_MAX_DIMS];
    bool fortran;
    size_t offset;
} npy_map;

static dray_status npy_open(const char *path, npy_map *m)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dray_set_error(errno == ENOENT ? DRAY_ENOTFOUND : DRAY_EIO, "%s: cannot open: %s",
                              path, strerror(errno));
    struct stat sb;
    dray_status st = DRAY_OK;
    memset(m, 0, sizeof(*m));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = dray_set_error(DRAY_EIO, "%s: not a regular file", path);
        goto out_close;
    }
    m->len = (size_t)sb.st_size;
    if (m->len < 10) {
        st = dray_set_error(DRAY_EFORMAT, "%s: %zu bytes, too short for .npy", path, m->len);
        goto out_close;
    }
    m->base = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m->base == MAP_FAILED) {
        m->base = NULL;
        st = dray_set_error(DRAY_EIO, "%s: mmap failed: %s", path, strerror(errno));
        goto out_close;
    }
    st = dray_npy_parse_header(m->base, m->len, &m->dtype, &m->ndim, m->shape, &m->fortran,
                               &m->offset);
    if (st != DRAY_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", dray_last_error());
        dray_set_error(st, "%s: %s", path, msg);
        goto out_unmap;
    }
    int64_t n = 1;
    for (int d = 0; d < m->ndim; d++)
        n *= m->shape[d];
    size_t want = m->offset + (size_t)n * dray_dtype_size(m->dtype);
    if (m->len != want) {
        st = dray_set_error(DRAY_EFORMAT, "%s: %zu bytes, header says %zu", path, m->len, want);
        goto out_unmap;
    }
    close(fd);
    return DRAY_OK;
out_unmap:
    munmap(m->base, m->len);
out_close:
    close(fd);
    return st;
}

/* Copies region [off, off+shape) of the mapped array into the C-order chunk `out`. */
static dray_status npy_copy(const npy_map *m, const int64_t *off, dray_ndarray *out)
{
    int nd = m->ndim;
    size_t es = dray_dtype_size(m->dtype);
    int64_t str[DRAY_ARRAY_MAX_DIMS], s = 1, pos[DRAY_ARRAY_MAX_DIMS] = {0};
    const uint8_t *src = (const uint8_t *)m->base + m->offset;
    if (out->size == 0)
        return DRAY_OK;
    for (int k = 0; k < nd; k++) {
        int d = m->fortran ? k : nd - 1 - k;
        str[d] = s;
        s *= m->shape[d];
    }
    int64_t row = nd ? out->shape[nd - 1] : 1;
    bool contig = nd == 0 || str[nd - 1] == 1;
    uint8_t *dst = out->data;
    for (;;) {
        int64_t si = 0;
        for (int d = 0; d < nd; d++)
            si += (off[d] + pos[d]) * str[d];
        if (contig) {
            memcpy(dst, src + (size_t)si * es, (size_t)row * es);
        } else {
            for (int64_t j = 0; j < row; j++)
                memcpy(dst + (size_t)j * es, src + (size_t)(si + j * str[nd - 1]) * es, es);
        }
        dst += (size_t)row * es;
        if (nd < 2 || !dray__next_index(pos, out->shape, nd - 1))
            break;
    }
    if (m->dtype == DRAY_BOOL)
        for (int64_t i = 0; i < out->size; i++)
            ((uint8_t *)out->data)[i] = ((uint8_t *)out->data)[i] != 0;
    return DRAY_OK;
}

dray_status dray_ndarray_read_npy(const char *path, dray_ndarray **out)
{
    npy_map m;
    dray_ndarray *a;
    int64_t off[DRAY_ARRAY_MAX_DIMS] = {0};
    dray_status st = npy_open(path, &m);
    if (st != DRAY_OK)
        return st;
    if ((st = dray__nd_create_uninit(m.dtype, m.ndim, m.shape, &a)) == DRAY_OK) {
        npy_copy(&m, off, a);
        *out = a;
    }
    munmap(m.base, m.len);
    return st;
}

typedef struct npy_meta {
    int64_t dtype, ndim, fortran, offset;
    int64_t gshape[DRAY_ARRAY_MAX_DIMS], off[DRAY_ARRAY_MAX_DIMS], shape[DRAY_ARRAY_MAX_DIMS];
} npy_meta;

dray_status dray_array_read_npy(const char *path, const int64_t *chunks, dray_array **out)
{
    npy_map m;
    dray_status st = npy_open(path, &m);
    if (st != DRAY_OK)
        return st;
    munmap(m.base, m.len);
    dray_array *a;
    if ((st = dray__array_new(DRAY__K_NPY, m.dtype, m.ndim, m.shape, chunks, &a)) != DRAY_OK)
        return st;
    a->p.npy.path = strdup(path);
    a->p.npy.offset = m.offset;
    a->p.npy.fortran = m.fortran;
    if (!a->p.npy.path) {
        dray_array_release(a);
        return dray_set_error(DRAY_ENOMEM, "npy path");
    }
    *out = a;
    return DRAY_OK;
}

/* The file is re-opened and its header re-checked by every task: it may have changed. */
DRAY_FUNCTION(array_npy_read)
{
    const char *path = nargs == 2 ? dray_string_cstr(&args[0]) : NULL;
    size_t len;
    const void *mb = path ? dray__arg_bytes(args, nargs, 1, &len, "array_npy_read") : NULL;
    npy_meta meta;
    npy_map m;
    dray_ndarray *c;
    if (!mb || len != sizeof(meta))
        return dray_set_error(DRAY_EINVAL, "array_npy_read: want (path, meta)");
    memcpy(&meta, mb, sizeof(meta));
    dray_status st = npy_open(path, &m);
    if (st != DRAY_OK)
        return st;
    bool same = meta.ndim == m.ndim && meta.dtype == m.dtype && meta.fortran == m.fortran &&
                (size_t)meta.offset == m.offset;
    for (int d = 0; same && d < m.ndim; d++)
        same = meta.gshape[d] == m.shape[d] && meta.off[d] >= 0 && meta.shape[d] >= 0 &&
               meta.off[d] + meta.shape[d] <= m.shape[d];
    if (!same) {
        st = dray_set_error(DRAY_EFORMAT, "%s: changed since the array was made", path);
        goto out_unmap;
    }
    if ((st = dray__nd_create_uninit(m.dtype, m.ndim, meta.shape, &c)) != DRAY_OK)
        goto out_unmap;
    npy_copy(&m, meta.off, c);
    *result = dray_value_of_ext(&c->hdr);
out_unmap:
    munmap(m.base, m.len);
    return st;
}

dray_status dray__npy_chunk_args(const dray_array *a, const int64_t *off, const int64_t *shape,
                                 dray_value *args)
{
    npy_meta meta;
    memset(&meta, 0, sizeof(meta));
    meta.dtype = a->dtype;
    meta.ndim = a->ndim;
    meta.fortran = a->p.npy.fortran;
    meta.offset = (int64_t)a->p.npy.offset;
    memcpy(meta.gshape, a->shape, sizeof(int64_t) * (size_t)a->ndim);
    memcpy(meta.off, off, sizeof(int64_t) * (size_t)a->ndim);
    memcpy(meta.shape, shape, sizeof(int64_t) * (size_t)a->ndim);
    dray_status st = dray_string_create(a->p.npy.path, &args[0]);
    if (st == DRAY_OK && (st = dray_bytes_create(&meta, sizeof(meta), &args[1])) != DRAY_OK)
        dray_value_release(&args[0]);
    return st;
}
