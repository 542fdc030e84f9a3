/* NumPy .npy files (numpy.lib.format).
 *
 * Layout:
 *     "\x93NUMPY" major minor      6 + 2 bytes; versions 1.0, 2.0, 3.0
 *     header_len                   uint16 LE (1.0) or uint32 LE (2.0, 3.0)
 *     header                       a Python dict literal such as
 *                                  {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 *                                  padded with spaces and ended by '\n'
 *     data                         numel * itemsize bytes, C order, nothing after
 *
 * The reader trusts nothing in the file: every size product is checked, the
 * data length must match the header exactly, and no data buffer is
 * allocated before all of that holds. Versions 2.0 and 3.0 differ only in the
 * header's text encoding (latin-1 vs UTF-8), which does not matter for the
 * ASCII keys and values accepted here. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convnet/io.h"
#include "internal.h"

#define MAGIC "\x93NUMPY"
#define MAGIC_LEN 6
/* NumPy aligns the data to 64 bytes so that it can be memory-mapped. */
#define ALIGN 64
/* NumPy (>= 1.24) leaves room after the dict for the first axis to grow to
 * 21 digits, so that appending can rewrite the header in place; doing the
 * same makes our files byte-identical to np.save's. */
#define GROWTH_DIGITS 21
/* cn_npy_read loads the whole file; anything larger than this is refused
 * rather than allocated (16 GiB, or all of a 32-bit address space). */
#define NPY_MAX_FILE \
    ((uint64_t)SIZE_MAX > (UINT64_C(1) << 34) ? (size_t)(UINT64_C(1) << 34) : SIZE_MAX)

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_LE 1
#else
#define HOST_LE 0
#endif

/* Every failure message is "npy: <path>: <why>" (no path for in-memory
 * buffers). */
static cn_status fail(const char *path, cn_status s, const char *fmt, ...) CN__PRINTF(3, 4);
static cn_status fail(const char *path, cn_status s, const char *fmt, ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return path ? cn__err(s, "npy: %s: %s", path, why) : cn__err(s, "npy: %s", why);
}

/* Prefixes "npy: " (and the path, unless the message names it already) to
 * the message a helper left. It works on a copy because cn__err writes into
 * the buffer cn_last_error() returns. */
static cn_status rewrap(const char *path, cn_status s)
{
    char why[480];
    snprintf(why, sizeof why, "%s", cn_last_error());
    if (path && !strstr(why, path)) return cn__err(s, "npy: %s: %s", path, why);
    return cn__err(s, "npy: %s", why);
}

/* ---- header parsing ------------------------------------------------------ */

typedef enum { DT_F4, DT_F8, DT_I1, DT_U1, DT_I4, DT_I8 } dtype;

typedef struct {
    const char *p, *end;     /* the unread part of the header text */
    const char *path;        /* for messages; NULL for buffers */
} scanner;

typedef struct {
    const char *descr;       /* points into the header; not NUL-terminated */
    size_t descr_len;
    int fortran;
    int ndim;                /* as written; may exceed CN_MAX_DIMS */
    int64_t shape[CN_MAX_DIMS];
} header;

static void skip_space(scanner *sc)
{
    while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n' || *sc->p == '\r'))
        sc->p++;
}

/* Consumes c (after any whitespace) if it is next. */
static int accept(scanner *sc, char c)
{
    skip_space(sc);
    if (sc->p < sc->end && *sc->p == c) {
        sc->p++;
        return 1;
    }
    return 0;
}

/* Describes what the scanner is looking at, for "expected X, found Y". */
static const char *found(const scanner *sc, char *buf, size_t len)
{
    if (sc->p >= sc->end) return "the end of the header";
    unsigned char c = (unsigned char)*sc->p;
    if (c >= 0x20 && c < 0x7f) snprintf(buf, len, "'%c'", c);
    else snprintf(buf, len, "byte 0x%02x", c);
    return buf;
}

static cn_status expected(const scanner *sc, const char *what)
{
    char b[16];
    return fail(sc->path, CN_ERR_FORMAT, "malformed header: expected %s, found %s", what,
                found(sc, b, sizeof b));
}

/* A quoted string without escapes (none of the accepted keys or dtypes
 * needs one). */
static cn_status parse_string(scanner *sc, const char **s, size_t *n)
{
    skip_space(sc);
    if (sc->p >= sc->end || (*sc->p != '\'' && *sc->p != '"'))
        return expected(sc, "a quoted string");
    char q = *sc->p++;
    const char *start = sc->p;
    while (sc->p < sc->end && *sc->p != q) {
        /* Control characters would also end up in the error messages. */
        unsigned char c = (unsigned char)*sc->p;
        if (c == '\\' || c < 0x20 || c == 0x7f)
            return fail(sc->path, CN_ERR_FORMAT,
                        "malformed header: escape or control character inside a string");
        sc->p++;
    }
    if (sc->p >= sc->end)
        return fail(sc->path, CN_ERR_FORMAT, "malformed header: unterminated string");
    *s = start;
    *n = (size_t)(sc->p - start);
    sc->p++;
    return CN_OK;
}

static int word_is(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && memcmp(s, w, n) == 0;
}

/* True or False, as Python spells them. */
static cn_status parse_bool(scanner *sc, int *v)
{
    skip_space(sc);
    size_t left = (size_t)(sc->end - sc->p);
    if (left >= 4 && memcmp(sc->p, "True", 4) == 0) {
        sc->p += 4;
        *v = 1;
    } else if (left >= 5 && memcmp(sc->p, "False", 5) == 0) {
        sc->p += 5;
        *v = 0;
    } else {
        return expected(sc, "True or False for 'fortran_order'");
    }
    return CN_OK;
}

/* A non-negative decimal integer; Python 2 era writers may append 'L'. */
static cn_status parse_dim(scanner *sc, int64_t *v)
{
    skip_space(sc);
    if (sc->p + 1 < sc->end && sc->p[0] == '-' && sc->p[1] >= '0' && sc->p[1] <= '9') {
        const char *q = sc->p + 1;
        while (q < sc->end && *q >= '0' && *q <= '9') q++;
        return fail(sc->path, CN_ERR_FORMAT, "negative dimension %.*s in 'shape'",
                    (int)CN__MIN(q - sc->p, 24), sc->p);
    }
    if (sc->p >= sc->end || *sc->p < '0' || *sc->p > '9') return expected(sc, "a dimension");
    int64_t x = 0;
    while (sc->p < sc->end && *sc->p >= '0' && *sc->p <= '9') {
        int d = *sc->p - '0';
        if (x > (INT64_MAX - d) / 10)
            return fail(sc->path, CN_ERR_OVERFLOW, "a dimension in 'shape' exceeds 2^63-1");
        x = x * 10 + d;
        sc->p++;
    }
    if (sc->p < sc->end && (*sc->p == 'L' || *sc->p == 'l')) sc->p++;
    *v = x;
    return CN_OK;
}

/* A tuple of dimensions: "()", "(3,)", "(2, 3)", "(2, 3,)". "(3)" is the
 * integer 3 in Python, not a tuple, and numpy rejects it too. */
static cn_status parse_shape(scanner *sc, header *h)
{
    if (!accept(sc, '(')) return expected(sc, "'(' opening the 'shape' tuple");
    h->ndim = 0;
    if (accept(sc, ')')) return CN_OK;
    for (;;) {
        int64_t d = 0;
        cn_status s = parse_dim(sc, &d);
        if (s) return s;
        if (h->ndim < CN_MAX_DIMS) h->shape[h->ndim] = d;
        /* Dimensions past CN_MAX_DIMS are only counted, for the message. */
        if (h->ndim < 1000000) h->ndim++;
        int comma = accept(sc, ',');
        if (accept(sc, ')')) {
            if (h->ndim == 1 && !comma)
                return fail(sc->path, CN_ERR_FORMAT,
                            "malformed header: 'shape' is (n), an integer, not the tuple (n,)");
            return CN_OK;
        }
        if (!comma) return expected(sc, "',' or ')' in the 'shape' tuple");
    }
}

/* The dict: exactly the keys descr, fortran_order and shape, in any order,
 * with optional trailing comma; then spaces and a final '\n'. */
static cn_status parse_header(const char *text, size_t len, const char *path, header *h)
{
    scanner sc = {text, text + len, path};
    if (len == 0 || text[len - 1] != '\n')
        return fail(path, CN_ERR_FORMAT, "malformed header: not terminated by a newline");
    sc.end--;

    enum { K_DESCR = 1, K_FORTRAN = 2, K_SHAPE = 4 };
    unsigned seen = 0;
    if (!accept(&sc, '{')) return expected(&sc, "'{' opening the header dict");
    while (!accept(&sc, '}')) {
        const char *key;
        size_t klen;
        cn_status s = parse_string(&sc, &key, &klen);
        if (s) return s;
        unsigned k = word_is(key, klen, "descr")           ? K_DESCR
                     : word_is(key, klen, "fortran_order") ? K_FORTRAN
                     : word_is(key, klen, "shape")         ? K_SHAPE
                                                           : 0;
        if (!k)
            return fail(path, CN_ERR_FORMAT, "malformed header: unexpected key '%.*s'",
                        (int)CN__MIN(klen, 40), key);
        if (seen & k)
            return fail(path, CN_ERR_FORMAT, "malformed header: duplicate key '%.*s'",
                        (int)klen, key);
        seen |= k;
        if (!accept(&sc, ':')) return expected(&sc, "':' after a key");
        if (k == K_DESCR) {
            skip_space(&sc);
            /* A list (records), a dict or a (base, shape) tuple. */
            if (sc.p < sc.end && (*sc.p == '[' || *sc.p == '{' || *sc.p == '('))
                return fail(path, CN_ERR_UNSUPPORTED,
                            "structured and subarray dtypes are not supported; only plain "
                            "numeric arrays are");
            s = parse_string(&sc, &h->descr, &h->descr_len);
        } else if (k == K_FORTRAN) {
            s = parse_bool(&sc, &h->fortran);
        } else {
            s = parse_shape(&sc, h);
        }
        if (s) return s;
        if (!accept(&sc, ',')) {
            if (!accept(&sc, '}')) return expected(&sc, "',' or '}' in the header dict");
            break;
        }
    }
    static const char *const names[] = {"descr", "fortran_order", "shape"};
    for (int i = 0; i < 3; i++)
        if (!(seen & (1u << i)))
            return fail(path, CN_ERR_FORMAT, "malformed header: missing key '%s'", names[i]);
    for (; sc.p < sc.end; sc.p++) {
        if (*sc.p != ' ') {
            char b[16];
            return fail(path, CN_ERR_FORMAT,
                        "malformed header: unexpected %s after the dict (only space padding "
                        "may follow it)",
                        found(&sc, b, sizeof b));
        }
    }
    return CN_OK;
}

/* Maps a descr to a dtype: one of f4 f8 i1 u1 i4 i8 with byte order '<' or
 * '=' (numpy writes '<' itself; '=' is read as little-endian, the only order
 * accepted), or any order for one-byte types, where order means nothing. */
static cn_status resolve_dtype(const header *h, const char *path, dtype *dt, size_t *itemsize)
{
    const char *d = h->descr;
    size_t n = h->descr_len;
    int shown = (int)CN__MIN(n, 40);
    static const struct {
        const char *code;
        dtype dt;
        size_t size;
    } types[] = {
        {"f4", DT_F4, 4}, {"f8", DT_F8, 8}, {"i1", DT_I1, 1},
        {"u1", DT_U1, 1}, {"i4", DT_I4, 4}, {"i8", DT_I8, 8},
    };
    if (n == 3 && (d[0] == '<' || d[0] == '=' || d[0] == '>' || d[0] == '|')) {
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
            if (memcmp(d + 1, types[i].code, 2) != 0) continue;
            if (types[i].size > 1 && d[0] == '>')
                return fail(path, CN_ERR_UNSUPPORTED,
                            "big-endian dtype '%.3s' is not supported (save it as '<%s', e.g. "
                            "with a.astype('<%s'))",
                            d, types[i].code, types[i].code);
            if (types[i].size > 1 && d[0] == '|') break;
            *dt = types[i].dt;
            *itemsize = types[i].size;
            return CN_OK;
        }
    }
    if (n >= 2 && d[1] == 'O')
        return fail(path, CN_ERR_UNSUPPORTED,
                    "object arrays (dtype '%.*s', pickled Python objects) are not supported",
                    shown, d);
    return fail(path, CN_ERR_UNSUPPORTED,
                "dtype '%.*s' is not supported (accepted: '<f4' '<f8' '<i4' '<i8' '|u1' '|i1')",
                shown, d);
}

/* ---- data conversion ----------------------------------------------------- */

static uint32_t load_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t load_le64(const unsigned char *p)
{
    return (uint64_t)load_le32(p) | (uint64_t)load_le32(p + 4) << 32;
}

static void convert(dtype dt, const unsigned char *src, size_t n, float *dst)
{
    switch (dt) {
    case DT_F4:
        if (HOST_LE) {
            memcpy(dst, src, n * 4);
        } else {
            for (size_t i = 0; i < n; i++) {
                uint32_t b = load_le32(src + 4 * i);
                memcpy(&dst[i], &b, 4);
            }
        }
        break;
    case DT_F8:
        for (size_t i = 0; i < n; i++) {
            uint64_t b = load_le64(src + 8 * i);
            double v;
            memcpy(&v, &b, 8);
            dst[i] = (float)v;
        }
        break;
    case DT_I1:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int8_t)src[i];
        break;
    case DT_U1:
        for (size_t i = 0; i < n; i++) dst[i] = (float)src[i];
        break;
    case DT_I4:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int32_t)load_le32(src + 4 * i);
        break;
    case DT_I8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int64_t)load_le64(src + 8 * i);
        break;
    }
}

/* ---- reading ------------------------------------------------------------- */

static cn_status decode(const unsigned char *buf, size_t len, const char *path, cn_tensor **out)
{
    if (len < MAGIC_LEN + 2 || memcmp(buf, MAGIC, MAGIC_LEN) != 0) {
        if (len >= MAGIC_LEN && memcmp(buf, MAGIC, MAGIC_LEN) == 0)
            return fail(path, CN_ERR_FORMAT, "truncated: %zu bytes, no room for a header", len);
        return fail(path, CN_ERR_FORMAT,
                    "not a .npy file: it does not start with the magic \"\\x93NUMPY\"");
    }
    int major = buf[6], minor = buf[7];
    if (major < 1 || major > 3 || minor != 0)
        return fail(path, CN_ERR_UNSUPPORTED,
                    "format version %d.%d is not supported (1.0, 2.0 and 3.0 are)", major,
                    minor);
    size_t pre = major == 1 ? 10 : 12;
    if (len < pre)
        return fail(path, CN_ERR_FORMAT, "truncated: %zu bytes, shorter than the %zu-byte "
                    "preamble of a version %d.0 file", len, pre, major);
    size_t hlen = major == 1 ? (size_t)(buf[8] | buf[9] << 8) : (size_t)load_le32(buf + 8);
    if (hlen > len - pre)
        return fail(path, CN_ERR_FORMAT,
                    "truncated: header length %zu runs past the end of the file (%zu bytes "
                    "after the preamble)", hlen, len - pre);

    header h = {0};
    cn_status s = parse_header((const char *)buf + pre, hlen, path, &h);
    if (s) return s;
    if (h.fortran)
        return fail(path, CN_ERR_UNSUPPORTED,
                    "fortran_order is True; only C order is supported (save "
                    "np.ascontiguousarray(a))");
    dtype dt = DT_F4;
    size_t itemsize = 0;
    if ((s = resolve_dtype(&h, path, &dt, &itemsize))) return s;
    if (h.ndim > CN_MAX_DIMS)
        return fail(path, CN_ERR_UNSUPPORTED,
                    "shape has %d dimensions; convnet tensors have at most %d", h.ndim,
                    CN_MAX_DIMS);

    char shape_s[160];
    cn_shape_str(h.ndim, h.shape, shape_s, sizeof shape_s);
    size_t numel, bytes;
    if (cn_shape_numel(h.ndim, h.shape, &numel) ||
        cn_size_mul(numel, itemsize, &bytes, "data bytes"))
        return fail(path, CN_ERR_OVERFLOW,
                    "shape %s: element count or byte size overflows", shape_s);

    size_t have = len - pre - hlen;
    if (have < bytes)
        return fail(path, CN_ERR_FORMAT,
                    "truncated: header promises %zu bytes of data (shape %s, %zu-byte '%.3s'), "
                    "file has %zu", bytes, shape_s, itemsize, h.descr, have);
    if (have > bytes)
        return fail(path, CN_ERR_FORMAT,
                    "%zu trailing bytes: header promises %zu bytes of data (shape %s), file "
                    "has %zu", have - bytes, bytes, shape_s, have);

    cn_tensor *t;
    if ((s = cn_tensor_new(&t, h.ndim, h.shape))) return rewrap(path, s);
    if (numel) convert(dt, buf + pre + hlen, numel, t->data);
    *out = t;
    return CN_OK;
}

cn_status cn_npy_decode(const void *buf, size_t len, cn_tensor **out)
{
    if (!out) return cn__err(CN_ERR_INVALID_ARG, "npy: out is NULL");
    *out = NULL;
    if (!buf && len) return cn__err(CN_ERR_INVALID_ARG, "npy: buf is NULL");
    return decode(buf, len, NULL, out);
}

cn_status cn_npy_read(const char *path, cn_tensor **out)
{
    if (!out) return cn__err(CN_ERR_INVALID_ARG, "npy: out is NULL");
    *out = NULL;
    if (!path) return cn__err(CN_ERR_INVALID_ARG, "npy: path is NULL");
    void *data;
    size_t len;
    cn_status s = cn_file_read_all(path, NPY_MAX_FILE, &data, &len);
    if (s) return rewrap(path, s);
    s = decode(data, len, path, out);
    free(data);
    return s;
}

/* ---- writing ------------------------------------------------------------- */

static void store_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

cn_status cn_npy_write(const char *path, const cn_tensor *t)
{
    if (!path || !t) return cn__err(CN_ERR_INVALID_ARG, "npy: path or tensor is NULL");
    size_t numel, bytes;
    if (cn_shape_numel(t->ndim, t->shape, &numel) || numel != t->size || (numel && !t->data))
        return cn__err(CN_ERR_INVALID_ARG,
                       "npy: %s: inconsistent tensor (ndim %d, size %zu, data %s)", path, t->ndim,
                       t->size, t->data ? "set" : "NULL");
    if (cn_size_mul(numel, 4, &bytes, "data bytes")) return rewrap(path, CN_ERR_OVERFLOW);

    /* The dict as np.save writes it: sorted keys, repr() of each value. */
    char dict[256];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < t->ndim; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%lld", i ? ", " : "",
                      (long long)t->shape[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", t->ndim == 1 ? "," : "");
    if (t->ndim > 0) {
        char d0[24];
        int digits = snprintf(d0, sizeof d0, "%lld", (long long)t->shape[0]);
        for (int i = digits; i < GROWTH_DIGITS; i++) dict[n++] = ' ';
    }

    /* Pad with 1..64 spaces (never 0, like numpy) plus '\n' so that the data
     * starts on a 64-byte boundary; version 2.0 only if 1.0's uint16 header
     * length cannot hold it (never for <= 5 dimensions, kept for format
     * fidelity). */
    int major = 1;
    size_t pre = 10;
    size_t hlen = (size_t)n + 1;
    hlen += ALIGN - (pre + hlen) % ALIGN;
    if (hlen > 0xffff) {
        major = 2;
        pre = 12;
        hlen = (size_t)n + 1;
        hlen += ALIGN - (pre + hlen) % ALIGN;
    }
    size_t head = pre + hlen;
    if (bytes > SIZE_MAX - head)
        return cn__err(CN_ERR_OVERFLOW, "npy: %s: file size overflows", path);
    unsigned char *buf = malloc(head + bytes);
    if (!buf)
        return cn__err(CN_ERR_NO_MEMORY, "npy: %s: cannot allocate %zu bytes to encode it", path,
                       head + bytes);
    memcpy(buf, MAGIC, MAGIC_LEN);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    if (major == 1) {
        buf[8] = (unsigned char)hlen;
        buf[9] = (unsigned char)(hlen >> 8);
    } else {
        store_le32(buf + 8, (uint32_t)hlen);
    }
    memcpy(buf + pre, dict, (size_t)n);
    memset(buf + pre + n, ' ', hlen - (size_t)n - 1);
    buf[head - 1] = '\n';
    if (HOST_LE) {
        if (bytes) memcpy(buf + head, t->data, bytes);
    } else {
        for (size_t i = 0; i < numel; i++) {
            uint32_t b;
            memcpy(&b, &t->data[i], 4);
            store_le32(buf + head + 4 * i, b);
        }
    }
    cn_status s = cn_file_write_atomic(path, buf, head + bytes);
    free(buf);
    return s ? rewrap(path, s) : CN_OK;
}
