/* safetensors files: a writer that matches the reference implementation's
 * bytes and a reader that trusts nothing in the file.
 *
 * The reader loads the whole file, validates the header's JSON syntax in one
 * pass (json.c), interprets it in a second, and then checks the layout of
 * the data buffer as a whole. Names and metadata strings are decoded in
 * place inside the loaded header, so the file's one buffer owns them. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convnet/io.h"
#include "convnet/safetensors.h"
#include "internal.h"
#include "json.h"

/* The reference reader's limit; a larger length is an attack or garbage. */
#define MAX_HEADER 100000000u
/* The whole file is loaded; anything larger than this is refused rather than
 * allocated (16 GiB, or all of a 32-bit address space), as for .npy files. */
#define MAX_FILE ((uint64_t)SIZE_MAX > (UINT64_C(1) << 34) ? (size_t)(UINT64_C(1) << 34) : SIZE_MAX)
#define META_KEY "__metadata__"
/* Names in messages are cut so that the path and the reason still fit. */
#define NAME_FMT "'%.100s'"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_LE 1
#else
#define HOST_LE 0
#endif

static const char *const dtype_names[] = {"F32", "F64", "I64", "I32", "U8"};
static const size_t dtype_sizes[] = {4, 8, 8, 4, 1};
/* Position in the reference's Dtype enum, which it sorts by (descending) so
 * that wider elements come first and every tensor stays aligned. */
static const int dtype_rank[] = {11, 12, 13, 9, 1};
_Static_assert(sizeof dtype_names / sizeof dtype_names[0] == CN_ST_DTYPE_COUNT, "names");
_Static_assert(sizeof dtype_sizes / sizeof dtype_sizes[0] == CN_ST_DTYPE_COUNT, "sizes");
_Static_assert(sizeof dtype_rank / sizeof dtype_rank[0] == CN_ST_DTYPE_COUNT, "ranks");

const char *cn_st_dtype_name(cn_st_dtype t)
{
    return (unsigned)t < CN_ST_DTYPE_COUNT ? dtype_names[t] : NULL;
}

size_t cn_st_dtype_size(cn_st_dtype t)
{
    return (unsigned)t < CN_ST_DTYPE_COUNT ? dtype_sizes[t] : 0;
}

/* safetensors stores little-endian; big-endian hosts swap each element. */
static void swap_elements(unsigned char *p, size_t nbytes, size_t size)
{
    if (HOST_LE || size == 1) return;
    for (size_t i = 0; i + size <= nbytes; i += size)
        for (size_t a = 0, b = size - 1; a < b; a++, b--) {
            unsigned char t = p[i + a];
            p[i + a] = p[i + b];
            p[i + b] = t;
        }
}

typedef struct kv {
    char *key, *value;
} kv;

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const kv *)a)->key, ((const kv *)b)->key);
}

/* Room for item n in an array of *cap items of `size` bytes, doubling from
 * 16: the (possibly moved) array, or NULL with the old one intact. */
static void *grow(void *items, size_t n, size_t *cap, size_t size)
{
    if (n < *cap) return items;
    size_t c = *cap ? *cap * 2 : 16;
    if (c < *cap || c > SIZE_MAX / size) return NULL;
    void *p = realloc(items, c * size);
    if (p) *cap = c;
    return p;
}

/* ==== writing ============================================================= */

typedef struct w_tensor {
    char *name;
    cn_st_dtype dtype;
    int ndim;
    int64_t shape[CN_MAX_DIMS];
    size_t nbytes;
    const void *data; /* borrowed */
} w_tensor;

struct cn_st_writer {
    w_tensor *t;
    size_t n, cap;
    kv *m;
    size_t nm, mcap;
};

cn_status cn_st_writer_new(cn_st_writer **out)
{
    if (!out) return cn__err(CN_ERR_INVALID_ARG, "safetensors: out is NULL");
    *out = calloc(1, sizeof **out);
    return *out ? CN_OK : cn__err(CN_ERR_NO_MEMORY, "safetensors: out of memory");
}

void cn_st_writer_free(cn_st_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->t[i].name);
    for (size_t i = 0; i < w->nm; i++) {
        free(w->m[i].key);
        free(w->m[i].value);
    }
    free(w->t);
    free(w->m);
    free(w);
}

cn_status cn_st_writer_add_raw(cn_st_writer *w, const char *name, cn_st_dtype dtype, int ndim,
                               const int64_t *shape, const void *data)
{
    if (!w || !name) return cn__err(CN_ERR_INVALID_ARG, "safetensors: writer or name is NULL");
    if ((unsigned)dtype >= CN_ST_DTYPE_COUNT)
        return cn__err(CN_ERR_INVALID_ARG, "safetensors: tensor " NAME_FMT ": invalid dtype %d",
                       name, (int)dtype);
    size_t len = strlen(name);
    if (len == 0) return cn__err(CN_ERR_INVALID_ARG, "safetensors: empty tensor name");
    if (!cn__utf8_valid(name, len))
        return cn__err(CN_ERR_INVALID_ARG,
                       "safetensors: tensor name " NAME_FMT " is not valid UTF-8", name);
    if (strcmp(name, META_KEY) == 0)
        return cn__err(CN_ERR_INVALID_ARG,
                       "safetensors: '" META_KEY "' is reserved for metadata, not a tensor name");
    /* Linear, but checkpoints hold hundreds of tensors, not millions, and a
     * duplicate is best reported where it is added. */
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return cn__err(CN_ERR_INVALID_ARG, "safetensors: tensor " NAME_FMT " added twice",
                           name);
    if (ndim < 0 || ndim > CN_MAX_DIMS || (ndim > 0 && !shape))
        return cn__err(CN_ERR_INVALID_ARG,
                       "safetensors: tensor " NAME_FMT ": ndim=%d outside 0..%d or shape NULL",
                       name, ndim, CN_MAX_DIMS);
    size_t numel;
    cn_status s = cn_shape_numel(ndim, shape, &numel);
    if (s) {
        char why[300];
        snprintf(why, sizeof why, "%s", cn_last_error());
        return cn__err(s, "safetensors: tensor " NAME_FMT ": %s", name, why);
    }
    if (numel && !data)
        return cn__err(CN_ERR_INVALID_ARG, "safetensors: tensor " NAME_FMT ": data is NULL", name);
    w_tensor *grown = grow(w->t, w->n, &w->cap, sizeof *grown);
    if (!grown) return cn__err(CN_ERR_NO_MEMORY, "safetensors: out of memory");
    w->t = grown;
    w_tensor *t = &w->t[w->n];
    t->name = malloc(len + 1);
    if (!t->name) return cn__err(CN_ERR_NO_MEMORY, "safetensors: out of memory");
    memcpy(t->name, name, len + 1);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < CN_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 1;
    t->nbytes = numel * dtype_sizes[dtype]; /* numel <= SIZE_MAX / 8 */
    t->data = data;
    w->n++;
    return CN_OK;
}

cn_status cn_st_writer_add(cn_st_writer *w, const char *name, int ndim, const int64_t *shape,
                           const float *data)
{
    return cn_st_writer_add_raw(w, name, CN_ST_F32, ndim, shape, data);
}

cn_status cn_st_writer_add_u8(cn_st_writer *w, const char *name, int ndim, const int64_t *shape,
                              const uint8_t *data)
{
    return cn_st_writer_add_raw(w, name, CN_ST_U8, ndim, shape, data);
}

cn_status cn_st_writer_add_i64(cn_st_writer *w, const char *name, int ndim, const int64_t *shape,
                               const int64_t *data)
{
    return cn_st_writer_add_raw(w, name, CN_ST_I64, ndim, shape, data);
}

cn_status cn_st_writer_meta(cn_st_writer *w, const char *key, const char *value)
{
    if (!w || !key || !value)
        return cn__err(CN_ERR_INVALID_ARG, "safetensors: writer, key or value is NULL");
    if (!cn__utf8_valid(key, strlen(key)) || !cn__utf8_valid(value, strlen(value)))
        return cn__err(CN_ERR_INVALID_ARG, "safetensors: metadata " NAME_FMT " is not valid UTF-8",
                       key);
    char *v = strdup(value);
    if (!v) return cn__err(CN_ERR_NO_MEMORY, "safetensors: out of memory");
    for (size_t i = 0; i < w->nm; i++)
        if (strcmp(w->m[i].key, key) == 0) {
            free(w->m[i].value);
            w->m[i].value = v;
            return CN_OK;
        }
    char *k = strdup(key);
    kv *grown = k ? grow(w->m, w->nm, &w->mcap, sizeof *grown) : NULL;
    if (!grown) {
        free(k);
        free(v);
        return cn__err(CN_ERR_NO_MEMORY, "safetensors: out of memory");
    }
    w->m = grown;
    w->m[w->nm].key = k;
    w->m[w->nm].value = v;
    w->nm++;
    return CN_OK;
}

/* The reference's order: descending dtype rank, then bytewise by name. */
static int w_order(const void *a, const void *b)
{
    const w_tensor *x = *(const w_tensor *const *)a, *y = *(const w_tensor *const *)b;
    if (dtype_rank[x->dtype] != dtype_rank[y->dtype])
        return dtype_rank[x->dtype] > dtype_rank[y->dtype] ? -1 : 1;
    return strcmp(x->name, y->name);
}

static size_t put_str(char *out, size_t at, const char *s)
{
    size_t n = strlen(s);
    if (out) memcpy(out + at, s, n);
    return at + n;
}

static size_t put_u64(char *out, size_t at, uint64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    return put_str(out, at, b);
}

/* The header JSON the way serde_json writes it (no spaces), into out at
 * offset 0, or only its length with out == NULL. */
static size_t emit_header(char *out, w_tensor *const *order, size_t n, const kv *meta, size_t nm)
{
    size_t at = put_str(out, 0, "{");
    if (nm) {
        at = put_str(out, at, "\"" META_KEY "\":{");
        for (size_t i = 0; i < nm; i++) {
            if (i) at = put_str(out, at, ",");
            at += cn__json_quote(out ? out + at : NULL, meta[i].key, strlen(meta[i].key));
            at = put_str(out, at, ":");
            at += cn__json_quote(out ? out + at : NULL, meta[i].value, strlen(meta[i].value));
        }
        at = put_str(out, at, "}");
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        const w_tensor *t = order[i];
        if (i || nm) at = put_str(out, at, ",");
        at += cn__json_quote(out ? out + at : NULL, t->name, strlen(t->name));
        at = put_str(out, at, ":{\"dtype\":\"");
        at = put_str(out, at, dtype_names[t->dtype]);
        at = put_str(out, at, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) at = put_str(out, at, ",");
            at = put_u64(out, at, (uint64_t)t->shape[d]);
        }
        at = put_str(out, at, "],\"data_offsets\":[");
        at = put_u64(out, at, offset);
        at = put_str(out, at, ",");
        offset += t->nbytes;
        at = put_u64(out, at, offset);
        at = put_str(out, at, "]}");
    }
    return put_str(out, at, "}");
}

cn_status cn_st_writer_write(cn_st_writer *w, const char *path)
{
    if (!w || !path) return cn__err(CN_ERR_INVALID_ARG, "safetensors: writer or path is NULL");
    size_t data_len = 0;
    for (size_t i = 0; i < w->n; i++)
        if (__builtin_add_overflow(data_len, w->t[i].nbytes, &data_len))
            return cn__err(CN_ERR_OVERFLOW, "safetensors: %s: tensors total more than %zu bytes",
                           path, SIZE_MAX);
    w_tensor **order = calloc(w->n ? w->n : 1, sizeof *order);
    if (!order) return cn__err(CN_ERR_NO_MEMORY, "safetensors: %s: out of memory", path);
    for (size_t i = 0; i < w->n; i++) order[i] = &w->t[i];
    if (w->n) qsort(order, w->n, sizeof *order, w_order);
    if (w->nm) qsort(w->m, w->nm, sizeof *w->m, kv_cmp);

    size_t json_len = emit_header(NULL, order, w->n, w->m, w->nm);
    /* Spaces up to a multiple of 8 put the data, which starts at 8 + N, on
     * an 8-byte boundary, as the reference does. */
    size_t hlen = json_len + (8 - json_len % 8) % 8, total;
    if (__builtin_add_overflow(hlen + 8, data_len, &total)) {
        free(order);
        return cn__err(CN_ERR_OVERFLOW, "safetensors: %s: file would exceed %zu bytes", path,
                       SIZE_MAX);
    }
    unsigned char *buf = malloc(total);
    if (!buf) {
        free(order);
        return cn__err(CN_ERR_NO_MEMORY, "safetensors: %s: cannot allocate %zu bytes", path, total);
    }
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    emit_header((char *)buf + 8, order, w->n, w->m, w->nm);
    memset(buf + 8 + json_len, ' ', hlen - json_len);
    unsigned char *p = buf + 8 + hlen;
    for (size_t i = 0; i < w->n; i++) {
        if (order[i]->nbytes) memcpy(p, order[i]->data, order[i]->nbytes);
        swap_elements(p, order[i]->nbytes, dtype_sizes[order[i]->dtype]);
        p += order[i]->nbytes;
    }
    free(order);
    cn_status s = cn_file_write_atomic(path, buf, total);
    free(buf);
    if (s) {
        char why[480];
        snprintf(why, sizeof why, "%s", cn_last_error());
        return cn__err(s, "safetensors: %s", why);
    }
    return CN_OK;
}

/* ==== reading ============================================================= */

typedef struct r_tensor {
    char *name; /* inside the file's header */
    cn_st_dtype dtype;
    int ndim;
    int64_t shape[CN_MAX_DIMS];
    size_t numel, nbytes;
    uint64_t begin, end;
} r_tensor;

struct cn_st_file {
    unsigned char *buf;  /* the whole file */
    unsigned char *data; /* the byte buffer after the header */
    size_t data_len;
    r_tensor *t; /* sorted by name */
    size_t n, cap;
    kv *m; /* sorted by key */
    size_t nm, mcap;
    char *path; /* for messages */
};

static cn_status fail(const char *path, cn_status s, const char *fmt, ...) CN__PRINTF(3, 4);
static cn_status fail(const char *path, cn_status s, const char *fmt, ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return cn__err(s, "safetensors: %s: %s", path, why);
}

static int dtype_parse(const char *s, size_t len, cn_st_dtype *out)
{
    for (int i = 0; i < CN_ST_DTYPE_COUNT; i++)
        if (strlen(dtype_names[i]) == len && memcmp(dtype_names[i], s, len) == 0) {
            *out = (cn_st_dtype)i;
            return 0;
        }
    return -1;
}

/* A JSON array of at most `max` integers, each >= 0, into v[0..*n). */
static cn_status read_ints(cn_st_file *f, cn__json *j, const char *name, const char *key,
                           int64_t *v, int max, int *n)
{
    const char *path = f->path;
    if (cn__json_peek(j) != CN__JSON_ARRAY)
        return fail(path, CN_ERR_FORMAT, "tensor " NAME_FMT " %s is %s, not an array", name, key,
                    cn__json_kind_name(cn__json_peek(j)));
    cn__json_enter(j);
    *n = 0;
    while (cn__json_more(j)) {
        int64_t x;
        if (cn__json_peek(j) != CN__JSON_NUMBER)
            return fail(path, CN_ERR_FORMAT, "tensor " NAME_FMT " %s holds %s, not an integer",
                        name, key, cn__json_kind_name(cn__json_peek(j)));
        if (cn__json_int(j, &x))
            return fail(path, CN_ERR_FORMAT, "tensor " NAME_FMT " %s: header %s", name, key,
                        j->err);
        if (x < 0)
            return fail(path, CN_ERR_FORMAT, "tensor " NAME_FMT " %s entry %d is negative (%lld)",
                        name, key, *n, (long long)x);
        if (*n == max) {
            if (max == CN_MAX_DIMS)
                return fail(path, CN_ERR_UNSUPPORTED,
                            "tensor " NAME_FMT " has more than %d dimensions, which convnet "
                            "does not handle",
                            name, CN_MAX_DIMS);
            return fail(path, CN_ERR_FORMAT, "tensor " NAME_FMT " %s has more than %d entries",
                        name, key, max);
        }
        v[(*n)++] = x;
    }
    return CN_OK;
}

/* One "name": {"dtype": ..., "shape": [...], "data_offsets": [b, e]} entry;
 * the cursor is at the value. */
static cn_status read_tensor(cn_st_file *f, cn__json *j, char *name)
{
    const char *path = f->path;
    if (cn__json_peek(j) != CN__JSON_OBJECT)
        return fail(path, CN_ERR_FORMAT, "tensor " NAME_FMT " is described by %s, not an object",
                    name, cn__json_kind_name(cn__json_peek(j)));
    r_tensor *grown = grow(f->t, f->n, &f->cap, sizeof *grown);
    if (!grown) return fail(path, CN_ERR_NO_MEMORY, "out of memory");
    f->t = grown;
    r_tensor *t = &f->t[f->n];
    memset(t, 0, sizeof *t);
    t->name = name;
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    int64_t offs[2];
    cn__json_enter(j);
    while (cn__json_more(j)) {
        char *key;
        size_t klen;
        cn__json_key(j, &key, &klen);
        int *have = strcmp(key, "dtype") == 0          ? &have_dtype
                    : strcmp(key, "shape") == 0        ? &have_shape
                    : strcmp(key, "data_offsets") == 0 ? &have_offsets
                                                       : NULL;
        /* Exactly these keys: anything else may change the meaning of the
         * bytes (a newer format), so it is not silently skipped. */
        if (!have || strlen(key) != klen)
            return fail(path, CN_ERR_FORMAT, "tensor " NAME_FMT " has unknown key " NAME_FMT, name,
                        key);
        if (*have)
            return fail(path, CN_ERR_FORMAT, "tensor " NAME_FMT " has key '%s' twice", name, key);
        *have = 1;
        if (have == &have_dtype) {
            char *s;
            size_t n;
            if (cn__json_peek(j) != CN__JSON_STRING)
                return fail(path, CN_ERR_FORMAT, "tensor " NAME_FMT " dtype is %s, not a string",
                            name, cn__json_kind_name(cn__json_peek(j)));
            cn__json_string(j, &s, &n);
            if (dtype_parse(s, n, &t->dtype))
                return fail(path, CN_ERR_UNSUPPORTED,
                            "tensor " NAME_FMT " has dtype '%.20s', which convnet does not read "
                            "(F32, F64, I64, I32, U8)",
                            name, s);
        } else if (have == &have_shape) {
            cn_status s = read_ints(f, j, name, "shape", t->shape, CN_MAX_DIMS, &t->ndim);
            if (s) return s;
        } else {
            int n;
            cn_status s = read_ints(f, j, name, "data_offsets", offs, 2, &n);
            if (s) return s;
            if (n != 2)
                return fail(path, CN_ERR_FORMAT,
                            "tensor " NAME_FMT " data_offsets has %d entries, not 2", name, n);
        }
    }
    if (!have_dtype || !have_shape || !have_offsets)
        return fail(path, CN_ERR_FORMAT, "tensor " NAME_FMT " lacks '%s'", name,
                    !have_dtype   ? "dtype"
                    : !have_shape ? "shape"
                                  : "data_offsets");
    for (int i = t->ndim; i < CN_MAX_DIMS; i++) t->shape[i] = 1;
    char shp[160];
    cn_shape_str(t->ndim, t->shape, shp, sizeof shp);
    if (cn_shape_numel(t->ndim, t->shape, &t->numel))
        return fail(path, CN_ERR_FORMAT, "tensor " NAME_FMT " shape %s: element count overflows",
                    name, shp);
    t->nbytes = t->numel * dtype_sizes[t->dtype]; /* numel <= SIZE_MAX / 8 */
    t->begin = (uint64_t)offs[0];
    t->end = (uint64_t)offs[1];
    if (t->begin > t->end)
        return fail(path, CN_ERR_FORMAT,
                    "tensor " NAME_FMT " data_offsets [%llu,%llu] are out of order (begin > end)",
                    name, (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end > f->data_len)
        return fail(path, CN_ERR_FORMAT,
                    "tensor " NAME_FMT " data_offsets [%llu,%llu] end past the %zu bytes of "
                    "data (truncated file?)",
                    name, (unsigned long long)t->begin, (unsigned long long)t->end, f->data_len);
    if (t->end - t->begin != t->nbytes)
        return fail(path, CN_ERR_FORMAT,
                    "tensor " NAME_FMT " data_offsets [%llu,%llu] hold %llu bytes, dtype %s x "
                    "shape %s needs %zu",
                    name, (unsigned long long)t->begin, (unsigned long long)t->end,
                    (unsigned long long)(t->end - t->begin), dtype_names[t->dtype], shp, t->nbytes);
    f->n++;
    return CN_OK;
}

/* "__metadata__": an object of strings. */
static cn_status read_meta(cn_st_file *f, cn__json *j)
{
    const char *path = f->path;
    if (cn__json_peek(j) != CN__JSON_OBJECT)
        return fail(path, CN_ERR_FORMAT, "'" META_KEY "' is %s, not an object",
                    cn__json_kind_name(cn__json_peek(j)));
    cn__json_enter(j);
    while (cn__json_more(j)) {
        char *key, *value;
        size_t klen, vlen;
        cn__json_key(j, &key, &klen);
        if (strlen(key) != klen)
            return fail(path, CN_ERR_FORMAT, "metadata key " NAME_FMT " contains \\u0000", key);
        if (cn__json_peek(j) != CN__JSON_STRING)
            return fail(path, CN_ERR_FORMAT, "metadata " NAME_FMT " is %s, not a string", key,
                        cn__json_kind_name(cn__json_peek(j)));
        cn__json_string(j, &value, &vlen);
        if (strlen(value) != vlen)
            return fail(path, CN_ERR_FORMAT, "metadata " NAME_FMT " contains \\u0000", key);
        kv *grown = grow(f->m, f->nm, &f->mcap, sizeof *grown);
        if (!grown) return fail(path, CN_ERR_NO_MEMORY, "out of memory");
        f->m = grown;
        f->m[f->nm].key = key;
        f->m[f->nm].value = value;
        f->nm++;
    }
    return CN_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const r_tensor *)a)->name, ((const r_tensor *)b)->name);
}

static int by_offsets(const void *a, const void *b)
{
    const r_tensor *x = *(const r_tensor *const *)a, *y = *(const r_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* The byte buffer must be tiled exactly: sorted by offsets, each tensor
 * starts where the previous one ended and the last ends at the buffer's
 * end, so no byte is unaccounted for or shared. */
static cn_status check_layout(cn_st_file *f)
{
    r_tensor **o = calloc(f->n ? f->n : 1, sizeof *o);
    if (!o) return fail(f->path, CN_ERR_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < f->n; i++) o[i] = &f->t[i];
    if (f->n) qsort(o, f->n, sizeof *o, by_offsets);
    uint64_t at = 0;
    cn_status s = CN_OK;
    for (size_t i = 0; i < f->n && !s; i++) {
        const r_tensor *t = o[i];
        if (t->begin > at)
            s = fail(f->path, CN_ERR_FORMAT,
                     "data bytes [%llu,%llu) belong to no tensor (a hole before tensor " NAME_FMT
                     " at [%llu,%llu])",
                     (unsigned long long)at, (unsigned long long)t->begin, t->name,
                     (unsigned long long)t->begin, (unsigned long long)t->end);
        else if (t->begin < at)
            s = fail(f->path, CN_ERR_FORMAT,
                     "tensor " NAME_FMT " data_offsets [%llu,%llu] overlap tensor " NAME_FMT
                     " at [%llu,%llu]",
                     t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                     o[i - 1]->name, (unsigned long long)o[i - 1]->begin,
                     (unsigned long long)o[i - 1]->end);
        at = t->end;
    }
    if (!s && at != f->data_len)
        s = fail(f->path, CN_ERR_FORMAT,
                 "the data is %zu bytes but the tensors end at byte %llu (%llu bytes unaccounted "
                 "for)",
                 f->data_len, (unsigned long long)at, (unsigned long long)(f->data_len - at));
    free(o);
    return s;
}

static cn_status parse(cn_st_file *f, size_t len)
{
    const char *path = f->path;
    if (len < 8)
        return fail(path, CN_ERR_FORMAT,
                    "file is %zu bytes, too short for the 8-byte header length (truncated?)", len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | f->buf[i];
    if (hlen > MAX_HEADER)
        return fail(path, CN_ERR_FORMAT, "header length %llu exceeds the limit of %u bytes",
                    (unsigned long long)hlen, MAX_HEADER);
    if (hlen > len - 8)
        return fail(path, CN_ERR_FORMAT,
                    "header length %llu runs past the end of the file (%zu bytes follow the "
                    "length; truncated?)",
                    (unsigned long long)hlen, len - 8);
    f->data = f->buf + 8 + hlen;
    f->data_len = len - 8 - (size_t)hlen;

    cn__json j;
    cn__json_init(&j, (char *)f->buf + 8, (size_t)hlen);
    if (cn__json_validate(&j))
        return fail(path, CN_ERR_FORMAT, "header is not valid JSON: %s", j.err);
    if (cn__json_peek(&j) != CN__JSON_OBJECT)
        return fail(path, CN_ERR_FORMAT, "header is %s, not a JSON object",
                    cn__json_kind_name(cn__json_peek(&j)));
    int have_meta = 0;
    cn__json_enter(&j);
    while (cn__json_more(&j)) {
        char *key;
        size_t klen;
        cn__json_key(&j, &key, &klen);
        cn_status s;
        if (strcmp(key, META_KEY) == 0 && klen == strlen(META_KEY)) {
            if (have_meta++) return fail(path, CN_ERR_FORMAT, "'" META_KEY "' appears twice");
            s = read_meta(f, &j);
        } else if (klen == 0) {
            return fail(path, CN_ERR_FORMAT, "a tensor has an empty name");
        } else if (strlen(key) != klen) {
            return fail(path, CN_ERR_FORMAT, "tensor name " NAME_FMT "... contains \\u0000", key);
        } else {
            s = read_tensor(f, &j, key);
        }
        if (s) return s;
    }

    /* Duplicates first: two entries for one name usually also look like an
     * overlap, and the duplicate is the real mistake. */
    if (f->n) qsort(f->t, f->n, sizeof *f->t, by_name);
    for (size_t i = 1; i < f->n; i++)
        if (strcmp(f->t[i - 1].name, f->t[i].name) == 0)
            return fail(path, CN_ERR_FORMAT, "tensor " NAME_FMT " appears twice", f->t[i].name);
    if (f->nm) qsort(f->m, f->nm, sizeof *f->m, kv_cmp);
    for (size_t i = 1; i < f->nm; i++)
        if (strcmp(f->m[i - 1].key, f->m[i].key) == 0)
            return fail(path, CN_ERR_FORMAT, "metadata " NAME_FMT " appears twice", f->m[i].key);
    cn_status s = check_layout(f);
    if (s) return s;
    for (size_t i = 0; i < f->n; i++)
        swap_elements(f->data + f->t[i].begin, f->t[i].nbytes, dtype_sizes[f->t[i].dtype]);
    return CN_OK;
}

cn_status cn_st_open(const char *path, cn_st_file **out)
{
    if (!out) return cn__err(CN_ERR_INVALID_ARG, "safetensors: out is NULL");
    *out = NULL;
    if (!path) return cn__err(CN_ERR_INVALID_ARG, "safetensors: path is NULL");
    cn_st_file *f = calloc(1, sizeof *f);
    if (f) f->path = strdup(path);
    if (!f || !f->path) {
        free(f);
        return cn__err(CN_ERR_NO_MEMORY, "safetensors: %s: out of memory", path);
    }
    void *buf;
    size_t len;
    cn_status s = cn_file_read_all(path, MAX_FILE, &buf, &len);
    if (s) {
        /* The file layer's message names the path already. */
        char why[480];
        snprintf(why, sizeof why, "%s", cn_last_error());
        cn_st_close(f);
        return cn__err(s, "safetensors: %s", why);
    }
    f->buf = buf;
    s = parse(f, len);
    if (s) {
        cn_st_close(f);
        return s;
    }
    *out = f;
    return CN_OK;
}

void cn_st_close(cn_st_file *f)
{
    if (!f) return;
    free(f->buf);
    free(f->t);
    free(f->m);
    free(f->path);
    free(f);
}

size_t cn_st_count(const cn_st_file *f) { return f ? f->n : 0; }

const char *cn_st_name(const cn_st_file *f, size_t i)
{
    return f && i < f->n ? f->t[i].name : NULL;
}

static const r_tensor *find(const cn_st_file *f, const char *name)
{
    if (!f || !name || !f->n) return NULL;
    r_tensor key = {.name = (char *)name};
    return bsearch(&key, f->t, f->n, sizeof *f->t, by_name);
}

/* The tensor called name, or NULL after recording why not. */
static const r_tensor *lookup(const cn_st_file *f, const char *name)
{
    if (!f || !name) {
        cn__err(CN_ERR_INVALID_ARG, "safetensors: file or name is NULL");
        return NULL;
    }
    const r_tensor *t = find(f, name);
    if (!t) fail(f->path, CN_ERR_INVALID_ARG, "no tensor named " NAME_FMT, name);
    return t;
}

cn_status cn_st_get(const cn_st_file *f, const char *name, cn_st_info *info)
{
    const r_tensor *t = lookup(f, name);
    if (!t) return CN_ERR_INVALID_ARG;
    if (!info) return cn__err(CN_ERR_INVALID_ARG, "safetensors: info is NULL");
    info->name = t->name;
    info->dtype = t->dtype;
    info->ndim = t->ndim;
    memcpy(info->shape, t->shape, sizeof info->shape);
    info->numel = t->numel;
    info->nbytes = t->nbytes;
    info->data = t->nbytes ? f->data + t->begin : NULL;
    return CN_OK;
}

static cn_status check_count(const cn_st_file *f, const r_tensor *t, size_t n, const void *dst)
{
    if (n != t->numel) {
        char shp[160];
        return fail(f->path, CN_ERR_INVALID_ARG,
                    "tensor " NAME_FMT " has %zu elements (shape %s), the caller expects %zu",
                    t->name, t->numel, cn_shape_str(t->ndim, t->shape, shp, sizeof shp), n);
    }
    if (n && !dst) return cn__err(CN_ERR_INVALID_ARG, "safetensors: dst is NULL");
    return CN_OK;
}

cn_status cn_st_read_f32(const cn_st_file *f, const char *name, float *dst, size_t n)
{
    const r_tensor *t = lookup(f, name);
    if (!t) return CN_ERR_INVALID_ARG;
    cn_status s;
    if (t->dtype != CN_ST_F32 && t->dtype != CN_ST_F64)
        return fail(f->path, CN_ERR_INVALID_ARG,
                    "tensor " NAME_FMT " is %s; only F32 and F64 tensors read as floats", t->name,
                    dtype_names[t->dtype]);
    if ((s = check_count(f, t, n, dst))) return s;
    const unsigned char *p = f->data + t->begin;
    /* memcpy, element by element for F64, because a foreign file need not
     * align its tensors. */
    if (t->dtype == CN_ST_F32) {
        if (n) memcpy(dst, p, n * sizeof(float));
    } else {
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            dst[i] = (float)d;
        }
    }
    return CN_OK;
}

cn_status cn_st_read_i64(const cn_st_file *f, const char *name, int64_t *dst, size_t n)
{
    const r_tensor *t = lookup(f, name);
    if (!t) return CN_ERR_INVALID_ARG;
    cn_status s;
    if (t->dtype != CN_ST_I64 && t->dtype != CN_ST_I32 && t->dtype != CN_ST_U8)
        return fail(f->path, CN_ERR_INVALID_ARG,
                    "tensor " NAME_FMT " is %s; only I64, I32 and U8 tensors read as integers",
                    t->name, dtype_names[t->dtype]);
    if ((s = check_count(f, t, n, dst))) return s;
    const unsigned char *p = f->data + t->begin;
    for (size_t i = 0; i < n; i++) {
        if (t->dtype == CN_ST_I64) {
            memcpy(&dst[i], p + 8 * i, 8);
        } else if (t->dtype == CN_ST_I32) {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            dst[i] = v;
        } else {
            dst[i] = p[i];
        }
    }
    return CN_OK;
}

const char *cn_st_meta(const cn_st_file *f, const char *key)
{
    if (!f || !key || !f->nm) return NULL;
    kv k = {(char *)key, NULL};
    const kv *hit = bsearch(&k, f->m, f->nm, sizeof *f->m, kv_cmp);
    return hit ? hit->value : NULL;
}

size_t cn_st_meta_count(const cn_st_file *f) { return f ? f->nm : 0; }

const char *cn_st_meta_key(const cn_st_file *f, size_t i)
{
    return f && i < f->nm ? f->m[i].key : NULL;
}
