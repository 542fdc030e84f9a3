/* IDX arrays, raw or gzipped.
 *
 * Both paths validate the header and compute the exact data size before
 * allocating. A gzip stream is inflated into exactly the buffers the header
 * asks for, then probed for one more byte: the work and memory are bounded
 * by the header, never by what the stream would expand to, and the header
 * by what the stream could expand to. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "convnet/data.h"
#include "convnet/io.h"
#include "internal.h"

/* Raw files are read whole: 16 GiB is far past any IDX dataset. */
#define IDX_MAX_FILE                                                                               \
    ((uint64_t)SIZE_MAX > (UINT64_C(1) << 34) ? (size_t)(UINT64_C(1) << 34) : SIZE_MAX)
#define IDX_HEAD_MAX (4 + 4 * CN_IDX_MAX_DIMS)

static size_t type_size(int type)
{
    switch (type) {
    case CN_IDX_U8:
    case CN_IDX_I8:
        return 1;
    case CN_IDX_I16:
        return 2;
    case CN_IDX_I32:
    case CN_IDX_F32:
        return 4;
    case CN_IDX_F64:
        return 8;
    default:
        return 0;
    }
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Checks the 4 magic bytes; on success *ndim is the dimension count. */
static cn_status check_magic(const unsigned char *m, const char *name, int *ndim)
{
    if (m[0] != 0 || m[1] != 0)
        return cn__err(CN_ERR_FORMAT,
                       "idx: %s: bad magic %02x %02x %02x %02x (expected 00 00 <type> <ndim>)",
                       name, m[0], m[1], m[2], m[3]);
    if (!type_size(m[2]))
        return cn__err(CN_ERR_FORMAT,
                       "idx: %s: unknown element type 0x%02x (expected 0x08, 0x09, 0x0b-0x0e)",
                       name, m[2]);
    if (m[3] < 1 || m[3] > CN_IDX_MAX_DIMS)
        return cn__err(CN_ERR_FORMAT, "idx: %s: ndim=%d outside 1..%d", name, m[3],
                       CN_IDX_MAX_DIMS);
    *ndim = m[3];
    return CN_OK;
}

/* Fills a's type, ndim, dims and count from a whole header (magic checked)
 * and returns the data size in bytes. */
static cn_status parse_dims(const unsigned char *h, const char *name, cn_idx *a, size_t *bytes)
{
    a->type = (cn_idx_type)h[2];
    a->ndim = h[3];
    for (int i = 0; i < CN_IDX_MAX_DIMS; i++)
        a->dims[i] = i < a->ndim ? (int64_t)be32(h + 4 + 4 * (size_t)i) : 1;
    char shape[96];
    cn_shape_str(a->ndim, a->dims, shape, sizeof shape);
    /* Sizes that cannot exist are a property of the file, hence FORMAT. */
    if (cn_shape_numel(a->ndim, a->dims, &a->count) != CN_OK ||
        cn_size_mul(a->count, type_size(a->type), bytes, "idx") != CN_OK)
        return cn__err(CN_ERR_FORMAT, "idx: %s: dimensions %s overflow the byte count", name,
                       shape);
    return CN_OK;
}

/* Big-endian elements to host order, in place, whatever the host's order. */
static void to_host_order(cn_idx *a)
{
    size_t es = type_size(a->type);
    if (es == 1) return;
    unsigned char *p = a->data;
    for (size_t i = 0; i < a->count; i++, p += es) {
        uint64_t v = 0;
        for (size_t k = 0; k < es; k++) v = v << 8 | p[k];
        if (es == 2) {
            uint16_t t = (uint16_t)v;
            memcpy(p, &t, 2);
        } else if (es == 4) {
            uint32_t t = (uint32_t)v;
            memcpy(p, &t, 4);
        } else {
            memcpy(p, &v, 8);
        }
    }
}

static cn_status alloc_data(cn_idx *a, size_t bytes, const char *name)
{
    if (bytes == 0) return CN_OK;
    a->data = cn_alloc(bytes);
    if (!a->data)
        return cn__err(CN_ERR_NO_MEMORY, "idx: %s: cannot allocate %zu bytes", name, bytes);
    return CN_OK;
}

static cn_status decode_raw(const unsigned char *p, size_t len, const char *name, cn_idx *a)
{
    int ndim;
    if (len < 4)
        return cn__err(CN_ERR_FORMAT, "idx: %s: %zu bytes, too short for the 4-byte magic", name,
                       len);
    cn_status s = check_magic(p, name, &ndim);
    if (s) return s;
    size_t head = 4 + 4 * (size_t)ndim, bytes;
    if (len < head)
        return cn__err(CN_ERR_FORMAT, "idx: %s: %zu bytes, too short for a %d-d header (%zu)", name,
                       len, ndim, head);
    if ((s = parse_dims(p, name, a, &bytes))) return s;
    if (len - head != bytes)
        return cn__err(CN_ERR_FORMAT, "idx: %s: header promises %zu data bytes, file has %zu (%s)",
                       name, bytes, len - head, len - head < bytes ? "truncated" : "trailing data");
    if ((s = alloc_data(a, bytes, name))) return s;
    if (bytes) memcpy(a->data, p + head, bytes);
    return CN_OK;
}

/* ---- gzip ---------------------------------------------------------------- */

typedef struct gz {
    z_stream z;
    const unsigned char *in; /* input not yet handed to zlib */
    size_t in_left;
    int ended;     /* the last member ended with nothing after it */
    int truncated; /* the input ran out inside a member */
    const char *name;
} gz;

/* Deflate's best compression ratio. */
#define GZ_MAX_RATIO 1032
/* zlib counts in uInt; feed it at most this much at a time. */
#define GZ_CHUNK ((size_t)1 << 30)

static void gz_feed(gz *g)
{
    if (g->z.avail_in == 0 && g->in_left) {
        size_t n = CN__MIN(g->in_left, GZ_CHUNK);
        g->z.next_in = (Bytef *)(uintptr_t)g->in;
        g->z.avail_in = (uInt)n;
        g->in += n;
        g->in_left -= n;
    }
}

/* Inflates up to n bytes into dst; *got is how many arrived. Fewer than n
 * means the stream ended (g->ended) or was cut off (g->truncated); the
 * caller words the message. Concatenated gzip members (gzip writes them
 * for appended files) read as one stream. */
static cn_status gz_read(gz *g, unsigned char *dst, size_t n, size_t *got)
{
    size_t done = 0;
    while (done < n && !g->ended && !g->truncated) {
        gz_feed(g);
        size_t want = CN__MIN(n - done, GZ_CHUNK);
        g->z.next_out = dst + done;
        g->z.avail_out = (uInt)want;
        int r = inflate(&g->z, Z_NO_FLUSH);
        done += want - g->z.avail_out;
        if (r == Z_STREAM_END) {
            gz_feed(g);
            if (g->z.avail_in == 0) {
                g->ended = 1;
            } else if (g->z.avail_in >= 2 && g->z.next_in[0] == 0x1f && g->z.next_in[1] == 0x8b) {
                inflateReset(&g->z);
            } else {
                *got = done;
                return cn__err(CN_ERR_FORMAT, "idx: %s: %zu bytes of garbage after the gzip stream",
                               g->name, (size_t)g->z.avail_in + g->in_left);
            }
        } else if (r == Z_BUF_ERROR && g->z.avail_in == 0 && g->in_left == 0) {
            g->truncated = 1;
        } else if (r != Z_OK && r != Z_BUF_ERROR) {
            *got = done;
            return cn__err(CN_ERR_FORMAT, "idx: %s: corrupt gzip stream: %s", g->name,
                           g->z.msg ? g->z.msg : zError(r));
        }
    }
    *got = done;
    return CN_OK;
}

static cn_status decode_gz(const unsigned char *p, size_t len, const char *name, cn_idx *a)
{
    gz g;
    memset(&g, 0, sizeof g);
    g.in = p;
    g.in_left = len;
    g.name = name;
    if (inflateInit2(&g.z, 16 + MAX_WBITS) != Z_OK)
        return cn__err(CN_ERR_NO_MEMORY, "idx: %s: cannot initialise zlib", name);

    unsigned char head[IDX_HEAD_MAX];
    size_t got, bytes = 0;
    int ndim = 0;
    cn_status s = gz_read(&g, head, 4, &got);
    if (!s && got < 4)
        s = cn__err(CN_ERR_FORMAT,
                    "idx: %s: gzip stream holds %zu bytes, too short for the magic%s", name, got,
                    g.truncated ? " (truncated)" : "");
    if (!s) s = check_magic(head, name, &ndim);
    if (!s) {
        s = gz_read(&g, head + 4, 4 * (size_t)ndim, &got);
        if (!s && got < 4 * (size_t)ndim)
            s = cn__err(CN_ERR_FORMAT,
                        "idx: %s: gzip stream ends inside the %d-d header (truncated)", name, ndim);
    }
    if (!s) s = parse_dims(head, name, a, &bytes);
    /* Deflate cannot expand a byte to more than 1032 (258-byte matches in
     * two bits each), so a bigger promise is a lie, refused before it sizes
     * an allocation: a 20-byte file once asked for 2^60 bytes here
     * (fuzz/regressions/idx/). */
    if (!s && len <= SIZE_MAX / GZ_MAX_RATIO && bytes > len * GZ_MAX_RATIO)
        s = cn__err(CN_ERR_FORMAT,
                    "idx: %s: header promises %zu data bytes, more than a %zu-byte gzip stream "
                    "can hold (truncated or corrupt)",
                    name, bytes, len);
    if (!s) s = alloc_data(a, bytes, name);
    if (!s) {
        s = gz_read(&g, a->data, bytes, &got);
        if (!s && got < bytes)
            s = cn__err(CN_ERR_FORMAT,
                        "idx: %s: header promises %zu data bytes, gzip stream ends after %zu "
                        "(truncated)",
                        name, bytes, got);
    }
    if (!s) {
        /* One byte past the promise is enough to know the stream lies; the
         * same read checks the member's CRC and length trailer. */
        unsigned char extra;
        s = gz_read(&g, &extra, 1, &got);
        if (!s && got)
            s = cn__err(CN_ERR_FORMAT,
                        "idx: %s: header promises %zu data bytes, gzip stream holds more "
                        "(trailing data)",
                        name, bytes);
        else if (!s && !g.ended)
            s = cn__err(CN_ERR_FORMAT, "idx: %s: gzip stream ends before its trailer (truncated)",
                        name);
    }
    inflateEnd(&g.z);
    return s;
}

/* ---- public -------------------------------------------------------------- */

static cn_status decode_named(const void *buf, size_t len, const char *name, cn_idx **out)
{
    if (!out) return cn__err(CN_ERR_INVALID_ARG, "idx: out is NULL");
    *out = NULL;
    if (!buf && len) return cn__err(CN_ERR_INVALID_ARG, "idx: buf is NULL");
    cn_idx *a = calloc(1, sizeof *a);
    if (!a) return cn__err(CN_ERR_NO_MEMORY, "idx: out of memory");
    const unsigned char *p = buf;
    cn_status s = len >= 2 && p[0] == 0x1f && p[1] == 0x8b ? decode_gz(p, len, name, a)
                                                           : decode_raw(p, len, name, a);
    if (s) {
        cn_idx_free(a);
        return s;
    }
    to_host_order(a);
    *out = a;
    return CN_OK;
}

cn_status cn_idx_decode(const void *buf, size_t len, cn_idx **out)
{
    return decode_named(buf, len, "<memory>", out);
}

cn_status cn_idx_read(const char *path, cn_idx **out)
{
    if (!out) return cn__err(CN_ERR_INVALID_ARG, "idx: out is NULL");
    *out = NULL;
    if (!path) return cn__err(CN_ERR_INVALID_ARG, "idx: path is NULL");
    void *data;
    size_t len;
    cn_status s = cn_file_read_all(path, IDX_MAX_FILE, &data, &len);
    if (s) return s;
    s = decode_named(data, len, path, out);
    free(data);
    return s;
}

void cn_idx_free(cn_idx *a)
{
    if (!a) return;
    cn_free(a->data);
    free(a);
}

double cn_idx_get(const cn_idx *a, size_t i)
{
    switch (a->type) {
    case CN_IDX_U8:
        return ((const uint8_t *)a->data)[i];
    case CN_IDX_I8:
        return ((const int8_t *)a->data)[i];
    case CN_IDX_I16:
        return ((const int16_t *)a->data)[i];
    case CN_IDX_I32:
        return ((const int32_t *)a->data)[i];
    case CN_IDX_F32:
        return ((const float *)a->data)[i];
    case CN_IDX_F64:
        return ((const double *)a->data)[i];
    }
    return 0;
}

void cn_idx_to_float(const cn_idx *a, float *dst)
{
    if (a->type == CN_IDX_U8) {
        /* The common case (pixels, labels) without the per-element switch. */
        const uint8_t *u = a->data;
        for (size_t i = 0; i < a->count; i++) dst[i] = u[i];
        return;
    }
    for (size_t i = 0; i < a->count; i++) dst[i] = (float)cn_idx_get(a, i);
}
