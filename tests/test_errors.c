/* Every public op against every class of invalid argument, as one table per
 * op family: each row names the function, its shape arguments and the
 * other arguments that differ from a valid call, and says what must come
 * back: the exact status, and words the message must contain (the
 * argument's name and the offending value). A row that fails prints
 * itself, so the table is also the reproduction.
 *
 * Shapes are written "[N,H,W,C]"; a number may be a power and a sum,
 * "2^30+1". The size classes use three shapes in every op and loader:
 *   [46341,46341]             2,147,488,281 elements: past INT32_MAX, and
 *                             x4 bytes it wraps 32 bits to 18,532
 *   [2^32,2^32]               2^64: wraps 64 bits to 0
 *   [2147418113,1718039348,5] 2^64 + 4: wraps 64 bits to 4, so a reader
 *                             that multiplied without checking would take
 *                             a 4-byte buffer for it
 * and each must be refused before anything is allocated: the run is
 * limited to 4 GiB of address space (1 GiB per allocation under ASan),
 * which turns an allocation sized from a wrapped or huge count into a
 * failure here, and each call must return within a second. */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <zlib.h>

#include "testlib.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(UNDER_ASAN)
#define UNDER_ASAN 1
#endif

#ifdef UNDER_ASAN
/* ASan reserves terabytes of shadow memory, so no RLIMIT_AS there: a
 * single allocation over 1 GiB is reported (and fails the test) instead. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "max_allocation_size_mb=1024"; }
#endif

#define INVALID CN_ERR_INVALID_ARG
#define OVERFLOW CN_ERR_OVERFLOW
#define FORMAT CN_ERR_FORMAT
#define UNSUPPORTED CN_ERR_UNSUPPORTED
#define OK CN_OK

typedef struct row {
    const char *op;      /* the public function without its cn_ prefix */
    const char *shapes;  /* its shape arguments in order; "-" for an absent one */
    const char *set;     /* other arguments that differ from a valid call: "stride_h=0" */
    cn_status want;
    const char *says[3]; /* the message contains each of these */
} row;

/* ---- reading a row ------------------------------------------------------ */

#define MAX_SHAPES 10
#define MAX_RANK 8

typedef struct shapes {
    int n;                          /* how many */
    int ndim[MAX_SHAPES];           /* -1: absent ("-") */
    int64_t dim[MAX_SHAPES][MAX_RANK];
} shapes;

/* "2^30+1", "-1", "46341": a sum of terms, each a number or a power. */
static int64_t eval(const char *s, const char **end)
{
    int64_t v = 0;
    int sign = 1;
    for (;;) {
        if (*s == '-') sign = -1, s++;
        else if (*s == '+') sign = 1, s++;
        char *e;
        int64_t t = strtoll(s, &e, 10);
        s = e;
        if (*s == '^') {
            int64_t p = strtoll(s + 1, &e, 10), b = t;
            s = e;
            for (t = 1; p > 0; p--) t *= b;
        }
        v += sign * t;
        if ((*s != '+' && *s != '-') || !(s[1] >= '0' && s[1] <= '9')) break;
    }
    if (end) *end = s;
    return v;
}

static shapes parse_shapes(const char *s)
{
    shapes r = {0};
    while (s && *s) {
        while (*s == ' ') s++;
        if (!*s) break;
        int k = r.n++;
        r.ndim[k] = -1;
        if (*s == '-') {
            s++;
            continue;
        }
        s++; /* '[' */
        r.ndim[k] = 0;
        while (*s && *s != ']') {
            if (*s == ',') s++;
            r.dim[k][r.ndim[k]++] = eval(s, &s);
        }
        if (*s) s++;
    }
    return r;
}

/* The text after "key=" in set (whole words only), or NULL. */
static const char *find(const char *set, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = set; p && (p = strstr(p, key)); p++)
        if ((p == set || p[-1] == ' ') && p[n] == '=') return p + n + 1;
    return NULL;
}

static int64_t arg(const char *set, const char *key, int64_t dflt)
{
    const char *v = find(set, key);
    return v ? eval(v, NULL) : dflt;
}

static double farg(const char *set, const char *key, double dflt)
{
    const char *v = find(set, key);
    return v ? strtod(v, NULL) : dflt;
}

/* A word value ("reflect", "<f4"); dflt if the key is absent. */
static const char *sarg(const char *set, const char *key, const char *dflt)
{
    static char buf[4][64];
    static int at;
    const char *v = find(set, key);
    if (!v) return dflt;
    char *b = buf[at++ % 4];
    size_t n = strcspn(v, " ");
    snprintf(b, sizeof buf[0], "%.*s", (int)n, v);
    return b;
}

/* ---- the arguments the calls share --------------------------------------- */

/* Buffers big enough for every row meant to succeed; rows meant to fail
 * pass them too, so an op that accepted a huge shape would run off their
 * end (ASan reports it). */
#define SCRATCH 65536
static float buf_a[SCRATCH], buf_b[SCRATCH];
static int32_t labels[SCRATCH];

static cn_conv2d_params conv_params(const char *set)
{
    cn_conv2d_params p = cn_conv2d_params_default();
    p.stride_h = (int)arg(set, "stride_h", p.stride_h);
    p.stride_w = (int)arg(set, "stride_w", p.stride_w);
    p.dil_h = (int)arg(set, "dil_h", p.dil_h);
    p.dil_w = (int)arg(set, "dil_w", p.dil_w);
    p.pad_top = (int)arg(set, "pad_top", 0);
    p.pad_bottom = (int)arg(set, "pad_bottom", 0);
    p.pad_left = (int)arg(set, "pad_left", 0);
    p.pad_right = (int)arg(set, "pad_right", 0);
    p.pad_same = (int)arg(set, "pad_same", 0);
    p.groups = (int)arg(set, "groups", p.groups);
    const char *m = sarg(set, "pad_mode", NULL);
    if (m && cn_pad_mode_parse(m, &p.pad_mode) != CN_OK) p.pad_mode = (cn_pad_mode)atoi(m);
    return p;
}

static cn_conv_transpose2d_params transpose_params(const char *set)
{
    cn_conv_transpose2d_params p = {conv_params(set), 0, 0};
    p.out_pad_h = (int)arg(set, "out_pad_h", 0);
    p.out_pad_w = (int)arg(set, "out_pad_w", 0);
    return p;
}

static cn_pool2d_params pool_params(const char *set)
{
    cn_pool2d_params p = cn_pool2d_params_default(2, 2);
    p.kernel_h = (int)arg(set, "kernel_h", p.kernel_h);
    p.kernel_w = (int)arg(set, "kernel_w", p.kernel_w);
    p.stride_h = (int)arg(set, "stride_h", p.kernel_h);
    p.stride_w = (int)arg(set, "stride_w", p.kernel_w);
    p.pad_h = (int)arg(set, "pad_h", 0);
    p.pad_w = (int)arg(set, "pad_w", 0);
    p.dil_h = (int)arg(set, "dil_h", 1);
    p.dil_w = (int)arg(set, "dil_w", 1);
    p.ceil_mode = (int)arg(set, "ceil_mode", 0);
    p.count_include_pad = (int)arg(set, "count_include_pad", 1);
    return p;
}

static cn_pad_mode pad_mode(const char *set)
{
    const char *m = sarg(set, "mode", "zeros");
    cn_pad_mode r;
    if (cn_pad_mode_parse(m, &r) != CN_OK) r = (cn_pad_mode)atoi(m);
    return r;
}

/* A tensor struct as a caller could fill it: the row's shape, size the
 * product (wrapped as an unchecked multiply would wrap it) unless "size="
 * says otherwise, data in buf_a. */
static cn_tensor fake_tensor(const shapes *sh, int k, const char *set)
{
    cn_tensor t = {0};
    t.ndim = sh->ndim[k];
    uint64_t n = 1;
    for (int i = 0; i < CN_MAX_DIMS; i++) {
        t.shape[i] = i < t.ndim ? sh->dim[k][i] : 1;
        if (i < t.ndim) n *= (uint64_t)sh->dim[k][i];
    }
    t.size = (size_t)arg(set, "size", (int64_t)n);
    t.data = buf_a;
    return t;
}

/* ---- building files ------------------------------------------------------- */

static unsigned char file_buf[1 << 17];

/* An .npy image: header dict from descr and shape, then `data` zero bytes. */
static size_t make_npy(const char *descr, const char *shape, size_t data)
{
    char dict[400];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     descr, shape);
    size_t hlen = (size_t)n + 1;
    hlen += 64 - (10 + hlen) % 64;
    memcpy(file_buf, "\x93NUMPY\x01\x00", 8);
    file_buf[8] = (unsigned char)hlen, file_buf[9] = (unsigned char)(hlen >> 8);
    memset(file_buf + 10, ' ', hlen);
    memcpy(file_buf + 10, dict, (size_t)n);
    file_buf[10 + hlen - 1] = '\n';
    memset(file_buf + 10 + hlen, 0, data);
    return 10 + hlen + data;
}

/* An IDX image: magic, big-endian dims, `data` zero bytes; gzipped if gz. */
static size_t make_idx(int type, const shapes *sh, size_t data, int gz)
{
    static unsigned char raw[sizeof file_buf];
    int nd = sh->ndim[0];
    raw[0] = raw[1] = 0, raw[2] = (unsigned char)type, raw[3] = (unsigned char)nd;
    for (int i = 0; i < nd; i++)
        for (int b = 0; b < 4; b++)
            raw[4 + 4 * i + b] = (unsigned char)((uint64_t)sh->dim[0][i] >> (24 - 8 * b));
    size_t len = 4 + 4 * (size_t)nd;
    memset(raw + len, 0, data);
    len += data;
    if (!gz) {
        memcpy(file_buf, raw, len);
        return len;
    }
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY); /* 31: a gzip wrapper */
    z.next_in = raw, z.avail_in = (uInt)len;
    z.next_out = file_buf, z.avail_out = sizeof file_buf;
    deflate(&z, Z_FINISH);
    size_t out = z.total_out;
    deflateEnd(&z);
    return out;
}

/* A safetensors image holding one tensor "t". */
static size_t make_st(const char *dtype, const char *shape, const char *offsets, size_t data)
{
    char json[400];
    int n = snprintf(json, sizeof json, "{\"t\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":%s}}",
                     dtype, shape, offsets);
    uint64_t hl = (uint64_t)n;
    for (int b = 0; b < 8; b++) file_buf[b] = (unsigned char)(hl >> 8 * b);
    memcpy(file_buf + 8, json, (size_t)n);
    memset(file_buf + 8 + n, 0, data);
    return 8 + (size_t)n + data;
}

/* The header of an image that claims w x h pixels: a PNG's IHDR, or a
 * 24-bit BMP's BITMAPINFOHEADER (stb reads the size from these alone). */
static size_t make_image(const char *format, int64_t w, int64_t h)
{
    unsigned char *p = file_buf;
    memset(p, 0, 64);
    if (!strcmp(format, "png")) {
        memcpy(p, "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16);
        for (int b = 0; b < 4; b++) {
            p[16 + b] = (unsigned char)((uint64_t)w >> (24 - 8 * b));
            p[20 + b] = (unsigned char)((uint64_t)h >> (24 - 8 * b));
        }
        p[24] = 8, p[25] = 0; /* 8-bit gray */
        return 16 + 13 + 4;
    }
    p[0] = 'B', p[1] = 'M', p[10] = 54, p[14] = 40;
    for (int b = 0; b < 4; b++) {
        p[18 + b] = (unsigned char)((uint64_t)w >> 8 * b);
        p[22 + b] = (unsigned char)((uint64_t)h >> 8 * b);
    }
    p[26] = 1, p[28] = 24;
    return 64;
}

static int write_file(const char *path, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(file_buf, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* ---- calling ---------------------------------------------------------- */

/* The status of a graph builder's result: its graph's if it gave NULL. */
static cn_status built(cn_graph *g, const cn_var *y)
{
    return y ? CN_OK : cn_graph_status(g);
}

/* A graph variable of the given shape (NULL for an absent one), zeros;
 * one too large for the scratch buffers wraps buf_a, which only a row that
 * never reads it may use. */
static cn_var *var(cn_graph *g, const shapes *sh, int k, int requires_grad)
{
    if (k >= sh->n || sh->ndim[k] < 0) return NULL;
    size_t n;
    if (cn_shape_numel(sh->ndim[k], sh->dim[k], &n) == CN_OK && n > SCRATCH)
        return cn_var_wrap(g, sh->ndim[k], sh->dim[k], buf_a, NULL, requires_grad);
    cn_var *v = cn_var_new(g, sh->ndim[k], sh->dim[k], requires_grad);
    if (v) memset(v->data, 0, v->size * sizeof(float));
    return v;
}

static cn_status call_graph(const row *r, const shapes *sh, cn_ctx *ctx)
{
    const char *op = r->op, *set = r->set;
    cn_graph *g;
    cn_status s = cn_graph_new(&g, arg(set, "ctx", 1) ? ctx : NULL);
    if (s) return s;
    int rg = (int)arg(set, "requires_grad", 1);
    cn_var *in[MAX_SHAPES] = {0};
    if (strcmp(op, "var_new") && strcmp(op, "var_wrap"))
        for (int k = 0; k < sh->n; k++) in[k] = var(g, sh, k, rg);
    if (!strcmp(op, "var_new")) {
        int nd = (int)arg(set, "ndim", sh->ndim[0]);
        s = built(g, cn_var_new(g, nd, sh->dim[0], 1));
    } else if (!strcmp(op, "var_wrap")) {
        int nd = (int)arg(set, "ndim", sh->ndim[0]);
        s = built(g, cn_var_wrap(g, nd, sh->dim[0], buf_a, NULL, 1));
    } else if (!strcmp(op, "conv2d")) {
        cn_conv2d_params p = conv_params(set);
        s = built(g, cn_conv2d(g, in[0], in[1], in[2], &p));
    } else if (!strcmp(op, "conv1d")) {
        cn_conv2d_params p = conv_params(set);
        s = built(g, cn_conv1d(g, in[0], in[1], in[2], &p));
    } else if (!strcmp(op, "conv_transpose2d")) {
        cn_conv_transpose2d_params p = transpose_params(set);
        s = built(g, cn_conv_transpose2d(g, in[0], in[1], in[2], &p));
    } else if (!strcmp(op, "max_pool2d") || !strcmp(op, "avg_pool2d")) {
        cn_pool2d_params p = pool_params(set);
        s = built(g, op[0] == 'm' ? cn_max_pool2d(g, in[0], &p) : cn_avg_pool2d(g, in[0], &p));
    } else if (!strcmp(op, "global_avg_pool2d")) {
        s = built(g, cn_global_avg_pool2d(g, in[0]));
    } else if (!strcmp(op, "linear")) {
        s = built(g, cn_linear(g, in[0], in[1], in[2]));
    } else if (!strcmp(op, "add")) {
        s = built(g, cn_add(g, in[0], in[1]));
    } else if (!strcmp(op, "add_relu")) {
        s = built(g, cn_add_relu(g, in[0], in[1]));
    } else if (!strcmp(op, "mul")) {
        s = built(g, cn_mul(g, in[0], in[1]));
    } else if (!strcmp(op, "relu")) {
        s = built(g, cn_relu(g, in[0]));
    } else if (!strcmp(op, "leaky_relu")) {
        s = built(g, cn_leaky_relu(g, in[0], (float)farg(set, "slope", 0.01)));
    } else if (!strcmp(op, "tanh")) {
        s = built(g, cn_tanh(g, in[0]));
    } else if (!strcmp(op, "sigmoid")) {
        s = built(g, cn_sigmoid(g, in[0]));
    } else if (!strcmp(op, "reshape")) {
        shapes to = parse_shapes(sarg(set, "to", "[]"));
        s = built(g, cn_reshape(g, in[0], (int)arg(set, "ndim", to.ndim[0]), to.dim[0]));
    } else if (!strcmp(op, "flatten")) {
        s = built(g, cn_flatten(g, in[0]));
    } else if (!strcmp(op, "concat")) {
        s = built(g, cn_concat(g, in, (int)arg(set, "n", sh->n), (int)arg(set, "axis", 0)));
    } else if (!strncmp(op, "batch_norm2d", 12)) {
        cn_bn_params p = {(float)farg(set, "eps", 1e-5), (float)farg(set, "momentum", 0.1)};
        int running = (int)arg(set, "running", 1), training = (int)arg(set, "training", 1);
        float *rm = running ? buf_a : NULL, *rv = running ? buf_b : NULL;
        if (!strcmp(op, "batch_norm2d_relu"))
            s = built(g, cn_batch_norm2d_relu(g, in[0], in[1], in[2], rm, rv, &p, training));
        else if (!strcmp(op, "batch_norm2d_add_relu"))
            s = built(g, cn_batch_norm2d_add_relu(g, in[0], in[1], in[2], rm, rv, &p, training, in[3]));
        else
            s = built(g, cn_batch_norm2d(g, in[0], in[1], in[2], rm, rv, &p, training));
    } else if (!strcmp(op, "dropout")) {
        s = built(g, cn_dropout(g, in[0], (float)farg(set, "p", 0.5), (int)arg(set, "training", 1)));
    } else if (!strcmp(op, "log_softmax")) {
        s = built(g, cn_log_softmax(g, in[0]));
    } else if (!strcmp(op, "softmax_cross_entropy")) {
        memset(labels, 0, sizeof labels);
        labels[0] = (int32_t)arg(set, "label", 0);
        s = built(g, cn_softmax_cross_entropy(g, in[0], arg(set, "labels", 1) ? labels : NULL));
    } else if (!strcmp(op, "sum")) {
        s = built(g, cn_sum(g, in[0]));
    } else if (!strcmp(op, "mean")) {
        s = built(g, cn_mean(g, in[0]));
    } else if (!strcmp(op, "backward")) {
        s = cn_graph_status(g);
        if (!s) s = cn_backward(g, arg(set, "loss", 1) ? in[0] : NULL);
    } else {
        s = (cn_status)-1;
    }
    cn_graph_free(g);
    return s;
}

/* A model on input [H,W,C] with the layers "conv:OUT:K:STRIDE:PAD,
 * flatten, linear:OUT, ..." appended; the model's status. */
static cn_status call_model(const shapes *sh, const char *layers)
{
    cn_model *m;
    cn_status s = cn_model_new(&m, "m", sh->dim[0][0], sh->dim[0][1], sh->dim[0][2]);
    if (s) return s;
    for (const char *p = layers; p && *p;) {
        int64_t a[4] = {0, 0, 0, 0};
        const char *q = p + strcspn(p, ":,");
        for (int i = 0; i < 4 && *q == ':'; i++) a[i] = eval(q + 1, &q);
        if (!strncmp(p, "conv", 4)) cn_model_conv2d(m, a[0], a[1], (int)a[2], (int)a[3]);
        else if (!strncmp(p, "linear", 6)) cn_model_linear(m, a[0]);
        else if (!strncmp(p, "flatten", 7)) cn_model_flatten(m);
        else if (!strncmp(p, "maxpool", 7)) cn_model_maxpool2d(m, (int)a[0]);
        else if (!strncmp(p, "dropout", 7)) cn_model_dropout(m, (float)strtod(p + 8, NULL));
        else if (!strncmp(p, "residual", 8)) cn_model_residual(m, a[0], (int)a[1]);
        else if (!strncmp(p, "bn", 2)) cn_model_batchnorm2d(m);
        q += strcspn(q, ",");
        p = *q ? q + 1 : q;
    }
    s = m->status;
    cn_model_free(m);
    return s;
}

/* Runs the row's call; (cn_status)-1 for an op this file does not know. */
static cn_status call(const row *r, cn_ctx *ctx)
{
    const char *op = r->op, *set = r->set;
    shapes sh = parse_shapes(r->shapes);
    const int64_t *a = sh.dim[0], *b = sh.dim[1];
    cn_conv2d_desc cd;
    cn_pool2d_desc pd;
    /* ---- set-ups -------------------------------------------------------- */
    if (!strcmp(op, "conv2d_setup")) {
        cn_conv2d_params p = conv_params(set);
        return cn_conv2d_setup(&cd, &p, a, b);
    }
    if (!strcmp(op, "conv1d_setup")) {
        cn_conv2d_params p = conv_params(set);
        return cn_conv1d_setup(&cd, &p, a, b);
    }
    if (!strcmp(op, "conv_transpose2d_setup")) {
        cn_conv_transpose2d_params p = transpose_params(set);
        return cn_conv_transpose2d_setup(&cd, &p, a, b);
    }
    if (!strcmp(op, "max_pool2d_setup") || !strcmp(op, "avg_pool2d_setup")) {
        cn_pool2d_params p = pool_params(set);
        cn_pool_type t = (cn_pool_type)arg(set, "type", op[0] == 'm' ? CN_POOL_MAX : CN_POOL_AVG);
        return cn_pool2d_setup(&pd, &p, t, a);
    }
    /* ---- ops on raw buffers -------------------------------------------- */
    if (!strcmp(op, "global_avg_pool2d_fwd"))
        return cn_global_avg_pool2d_fwd(ctx, a[0], a[1], a[2], a[3], buf_a, buf_b);
    if (!strcmp(op, "global_avg_pool2d_bwd"))
        return cn_global_avg_pool2d_bwd(ctx, a[0], a[1], a[2], a[3], buf_a, buf_b);
    if (!strcmp(op, "pad2d_fwd") || !strcmp(op, "pad2d_bwd")) {
        cn_status (*f)(cn_ctx *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                       int64_t, cn_pad_mode, const float *, float *) =
            !strcmp(op, "pad2d_fwd") ? cn_pad2d_fwd : cn_pad2d_bwd;
        return f(ctx, a[0], a[1], a[2], a[3], arg(set, "pt", 0), arg(set, "pb", 0),
                 arg(set, "pl", 0), arg(set, "pr", 0), pad_mode(set), buf_a, buf_b);
    }
    if (!strcmp(op, "dilate2d_fwd"))
        return cn_dilate2d_fwd(a[0], a[1], a[2], a[3], arg(set, "dh", 1), arg(set, "dw", 1), buf_a,
                               buf_b);
    if (!strcmp(op, "dilate2d_bwd"))
        return cn_dilate2d_bwd(a[0], a[1], a[2], a[3], arg(set, "dh", 1), arg(set, "dw", 1), buf_a,
                               buf_b);
    if (!strcmp(op, "flip"))
        return cn_flip((int)arg(set, "ndim", sh.ndim[0]), a, (unsigned)arg(set, "axes", 1), buf_a,
                       buf_b);
    if (!strncmp(op, "batchnorm_fwd", 13)) {
        cn_bn_params p = {(float)farg(set, "eps", 1e-5), (float)farg(set, "momentum", 0.1)};
        float *run = arg(set, "running", 1) ? buf_a : NULL;
        const int training = (int)arg(set, "training", 1);
        if (!strcmp(op, "batchnorm_fwd_relu"))
            return cn_batchnorm_fwd_relu(ctx, &p, training, a[0], a[1], buf_a, NULL, NULL, run, run,
                                         NULL, NULL, buf_b);
        if (!strcmp(op, "batchnorm_fwd_add_relu")) /* the residual is y itself: they may alias */
            return cn_batchnorm_fwd_add_relu(ctx, &p, training, a[0], a[1], buf_a, NULL, NULL, run,
                                             run, NULL, NULL, arg(set, "res", 1) ? buf_b : NULL,
                                             buf_b);
        return cn_batchnorm_fwd(ctx, &p, training, a[0], a[1], buf_a, NULL, NULL, run, run, NULL,
                                NULL, buf_b);
    }
    if (!strcmp(op, "xent_fwd")) {
        memset(labels, 0, sizeof labels);
        labels[0] = (int32_t)arg(set, "label", 0);
        float loss;
        return cn_xent_fwd(a[0], a[1], buf_a, labels, buf_b, &loss);
    }
    if (!strcmp(op, "pad_mode_parse")) {
        cn_pad_mode m;
        return cn_pad_mode_parse(sarg(set, "name", "zeros"), &m);
    }
    /* ---- tensors -------------------------------------------------------- */
    if (!strcmp(op, "tensor_new")) {
        cn_tensor *t = NULL;
        cn_status s = cn_tensor_new(&t, (int)arg(set, "ndim", sh.ndim[0]), a);
        cn_tensor_free(t);
        return s;
    }
    if (!strcmp(op, "size_mul")) {
        size_t n;
        return cn_size_mul((size_t)arg(set, "a", 1), (size_t)arg(set, "b", 1), &n, "bytes");
    }
    /* ---- filters and images ----------------------------------------------- */
    if (!strcmp(op, "filter_kernel") || !strcmp(op, "image_filter")) {
        cn_tensor k = {0}, img = {0}, *out = NULL;
        int is_filter = !strcmp(op, "image_filter");
        if (!is_filter && sh.n > 0) k = fake_tensor(&sh, 0, "");
        if (is_filter) img = fake_tensor(&sh, 0, set);
        cn_filter_spec f = {(cn_filter_kind)arg(set, "kind", CN_FILTER_BOX),
                            (float)farg(set, "param", 3), !is_filter && sh.n ? &k : NULL};
        cn_status s = is_filter ? cn_image_filter(ctx, &f, &img, &out) : cn_filter_kernel(&f, &out);
        cn_tensor_free(out);
        return s;
    }
    if (!strcmp(op, "image_decode")) {
        size_t len = make_image(sarg(set, "format", "png"), arg(set, "w", 1), arg(set, "h", 1));
        cn_tensor *t = NULL;
        cn_status s = cn_image_decode(file_buf, len, 0, &t);
        cn_tensor_free(t);
        return s;
    }
    if (!strcmp(op, "image_write_png")) {
        cn_tensor t = fake_tensor(&sh, 0, set);
        return cn_image_write_png(tl_scratch("errors.png"), &t);
    }
    /* ---- loaders ---------------------------------------------------------- */
    if (!strcmp(op, "npy_decode") || !strcmp(op, "npy_read")) {
        size_t len = make_npy(sarg(set, "descr", "<f4"), sarg(set, "shape", "()"),
                              (size_t)arg(set, "data", 0));
        cn_tensor *t = NULL;
        cn_status s;
        if (op[4] == 'd') s = cn_npy_decode(file_buf, len, &t);
        else s = write_file(tl_scratch("errors.npy"), len) ? cn_npy_read(tl_scratch("errors.npy"), &t)
                                                          : CN_ERR_IO;
        cn_tensor_free(t);
        return s;
    }
    if (!strcmp(op, "idx_decode") || !strcmp(op, "idx_read")) {
        size_t len = make_idx((int)arg(set, "type", CN_IDX_U8), &sh, (size_t)arg(set, "data", 0),
                              (int)arg(set, "gz", 0));
        if (arg(set, "ndim", -1) >= 0) file_buf[3] = (unsigned char)arg(set, "ndim", 0);
        cn_idx *x = NULL;
        cn_status s;
        if (op[4] == 'd') s = cn_idx_decode(file_buf, len, &x);
        else s = write_file(tl_scratch("errors.idx"), len) ? cn_idx_read(tl_scratch("errors.idx"), &x)
                                                          : CN_ERR_IO;
        cn_idx_free(x);
        return s;
    }
    if (!strcmp(op, "st_open")) {
        size_t len = make_st(sarg(set, "dtype", "F32"), sarg(set, "shape", "[]"),
                             sarg(set, "offsets", "[0,0]"), (size_t)arg(set, "data", 0));
        cn_st_file *f = NULL;
        cn_status s = write_file(tl_scratch("errors.safetensors"), len)
                          ? cn_st_open(tl_scratch("errors.safetensors"), &f)
                          : CN_ERR_IO;
        cn_st_close(f);
        return s;
    }
    if (!strcmp(op, "st_writer_add")) {
        cn_st_writer *w;
        cn_status s = cn_st_writer_new(&w);
        if (!s) s = cn_st_writer_add(w, "t", (int)arg(set, "ndim", sh.ndim[0]), a, buf_a);
        cn_st_writer_free(w);
        return s;
    }
    if (!strcmp(op, "dataset_from_arrays")) {
        cn_dataset *ds = NULL;
        memset(labels, 0, sizeof labels);
        labels[0] = (int32_t)arg(set, "label", 0);
        cn_status s = cn_dataset_from_arrays(buf_a, labels, a[0], a[1], a[2], a[3],
                                             (int)arg(set, "classes", 10), &ds);
        cn_dataset_free(ds);
        return s;
    }
    if (!strcmp(op, "model")) return call_model(&sh, sarg(set, "layers", ""));
    return call_graph(r, &sh, ctx);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs every row; each that does not get its status and message, or takes
 * more than a second, is reported with the row itself. */
static void run_rows(const row *rows, size_t n)
{
    cn_ctx ctx;
    cn_ctx_init(&ctx);
    for (size_t i = 0; i < n; i++) {
        const row *r = &rows[i];
        char where[400];
        snprintf(where, sizeof where, "%s(%s%s%s)", r->op, r->shapes, r->set[0] ? "; " : "",
                 r->set);
        double t0 = now();
        cn_status got = call(r, &ctx);
        double secs = now() - t0;
        const char *msg = cn_last_error();
        if (got == (cn_status)-1) {
            tl_fail(__FILE__, __LINE__, "%s: unknown op in the table", where);
            continue;
        }
        if (got != r->want) {
            tl_fail(__FILE__, __LINE__, "%s: status '%s', want '%s' (message: %s)", where,
                    cn_status_str(got), cn_status_str(r->want), got ? msg : "-");
            continue;
        }
        for (int k = 0; k < 3 && r->want && r->says[k]; k++)
            if (!strstr(msg, r->says[k]))
                tl_fail(__FILE__, __LINE__, "%s: message lacks \"%s\": %s", where, r->says[k], msg);
        if (secs > 1.0) tl_fail(__FILE__, __LINE__, "%s: took %.2f s", where, secs);
    }
}

#define RUN_TABLE(t) run_rows(t, sizeof t / sizeof t[0])

/* ---- the tables --------------------------------------------------------- */

/* conv2d: x [N,H,W,C_in], w [KH,KW,C_in/G,C_out]. Its three passes run on
 * the descriptor setup fills and check nothing themselves, so setup's
 * checks are theirs (and the sizes it accepts are the ones every pass and
 * cn_conv2d_workspace_size / cn_im2col_size compute with). */
static void conv2d_setup_rejects_every_invalid_class(void)
{
    static const row rows[] = {
        /* a valid call, for reference */
        {"conv2d_setup", "[2,5,5,4] [3,3,4,8]", "", OK, {0}},
        /* zero or negative dims; an empty batch */
        {"conv2d_setup", "[0,5,5,4] [3,3,4,8]", "", INVALID, {"conv2d", "N=0"}},
        {"conv2d_setup", "[-1,5,5,4] [3,3,4,8]", "", INVALID, {"N=-1"}},
        {"conv2d_setup", "[2,0,5,4] [3,3,4,8]", "", INVALID, {"H=0"}},
        {"conv2d_setup", "[2,5,-3,4] [3,3,4,8]", "", INVALID, {"W=-3"}},
        {"conv2d_setup", "[2,5,5,0] [3,3,4,8]", "", INVALID, {"C_in=0"}},
        {"conv2d_setup", "[2,5,5,4] [0,3,4,8]", "", INVALID, {"KH=0"}},
        {"conv2d_setup", "[2,5,5,4] [3,-1,4,8]", "", INVALID, {"KW=-1"}},
        {"conv2d_setup", "[2,5,5,4] [3,3,4,0]", "", INVALID, {"C_out=0"}},
        /* stride 0, dilation 0, groups 0 */
        {"conv2d_setup", "[2,5,5,4] [3,3,4,8]", "stride_h=0", INVALID, {"stride_h=0"}},
        {"conv2d_setup", "[2,5,5,4] [3,3,4,8]", "stride_w=-2", INVALID, {"stride_w=-2"}},
        {"conv2d_setup", "[2,5,5,4] [3,3,4,8]", "stride_h=0 pad_same=1", INVALID, {"stride_h=0"}},
        {"conv2d_setup", "[2,5,5,4] [3,3,4,8]", "dil_h=0", INVALID, {"dilation_h=0"}},
        {"conv2d_setup", "[2,5,5,4] [3,3,4,8]", "dil_w=0", INVALID, {"dilation_w=0"}},
        {"conv2d_setup", "[2,5,5,4] [3,3,4,8]", "groups=0", INVALID, {"groups=0"}},
        /* channels not divisible by groups */
        {"conv2d_setup", "[2,5,5,6] [3,3,1,8]", "groups=4", INVALID, {"C_in=6", "groups=4"}},
        {"conv2d_setup", "[2,5,5,4] [3,3,1,6]", "groups=4", INVALID, {"C_out=6", "groups=4"}},
        /* mismatched shapes: the weight's input channels */
        {"conv2d_setup", "[2,5,5,4] [3,3,3,8]", "", INVALID, {"weight", "3 input channels", "C_in=4"}},
        {"conv2d_setup", "[2,5,5,4] [3,3,4,8]", "groups=2", INVALID, {"weight", "4 input channels", "groups=2"}},
        /* kernel larger than the padded input (dilation included) */
        {"conv2d_setup", "[1,2,2,1] [3,3,1,1]", "", INVALID, {"kernel (3x3)", "padded input (2x2)"}},
        {"conv2d_setup", "[1,5,5,1] [3,3,1,1]", "dil_h=3", INVALID, {"kernel (7x3)", "padded input (5x5)"}},
        {"conv2d_setup", "[1,2,2,1] [3,3,1,1]", "pad_top=1", INVALID, {"kernel (3x3)", "padded input (3x2)"}},
        {"conv2d_setup", "[1,2,2,1] [3,3,1,1]", "pad_top=1 pad_left=1", OK, {0}},
        {"conv2d_setup", "[1,1,1,1] [3,3,1,1]", "pad_top=1 pad_bottom=1 pad_left=1 pad_right=1", OK, {0}},
        /* padding */
        {"conv2d_setup", "[2,5,5,4] [3,3,4,8]", "pad_top=-1", INVALID, {"pad_top=-1"}},
        {"conv2d_setup", "[2,5,5,4] [3,3,4,8]", "pad_right=-4", INVALID, {"pad_right=-4"}},
        {"conv2d_setup", "[2,5,5,4] [3,3,4,8]", "pad_mode=9", INVALID, {"padding mode", "9"}},
        {"conv2d_setup", "[1,3,3,1] [1,1,1,1]", "pad_top=3 pad_mode=reflect", INVALID, {"reflect padding 3", "H=3"}},
        {"conv2d_setup", "[1,3,3,1] [1,1,1,1]", "pad_left=4 pad_mode=circular", INVALID, {"circular padding 4", "W=3"}},
        {"conv2d_setup", "[1,3,3,1] [1,1,1,1]", "pad_bottom=4 pad_mode=symmetric", INVALID, {"symmetric padding 4", "H=3"}},
        /* sizes: past 32 bits is fine; wrapping 64 bits is not */
        {"conv2d_setup", "[1,46341,46341,1] [1,1,1,1]", "", OK, {0}},
        {"conv2d_setup", "[1,46341,46341,1] [3,3,1,2]", "stride_h=2 stride_w=2 pad_top=1 pad_left=1", OK, {0}},
        {"conv2d_setup", "[2^32,2^32,1,1] [1,1,1,1]", "", OVERFLOW, {"N=4294967296"}},
        {"conv2d_setup", "[1,1,1,1] [1,1,1,2^32]", "", OVERFLOW, {"C_out=4294967296"}},
        {"conv2d_setup", "[1,2147418113,1718039348,5] [1,1,5,1]", "", OVERFLOW, {"[1,2147418113,1718039348,5]"}},
        {"conv2d_setup", "[1,1,1,5] [1,1,5,2147418113]", "", OK, {0}},
        {"conv2d_setup", "[2147418113,1,1,5] [1,1,5,1718039348]", "", OVERFLOW, {"2147418113", "1718039348"}},
        {"conv2d_setup", "[1,1,1,1] [1,1,1,1]", "pad_top=2147483647 pad_bottom=2147483647", OK, {0}},
        /* a size only the workspace has: the stride-dilated output
         * gradient of the backward pass, (2^30+1)^2 x 2^30 floats */
        {"conv2d_setup", "[1,2^30+1,2^30+1,1] [1,1,1,2^30]", "stride_h=2^30 stride_w=2^30", OVERFLOW, {"conv2d", "overflow"}},
        /* and one only cn_im2col_size has: every image's patches,
         * 2^30 x 257^2 x 256^2 x 1024 floats */
        {"conv2d_setup", "[2^30,512,512,1024] [256,256,1024,1]", "", OVERFLOW, {"conv2d", "overflow"}},
    };
    RUN_TABLE(rows);
}

/* conv1d: x [N,L,C_in], w [K,C_in/G,C_out]; it runs on conv2d's passes. */
static void conv1d_setup_rejects_every_invalid_class(void)
{
    static const row rows[] = {
        {"conv1d_setup", "[2,7,4] [3,4,8]", "", OK, {0}},
        {"conv1d_setup", "[0,7,4] [3,4,8]", "", INVALID, {"conv1d", "N=0"}},
        {"conv1d_setup", "[2,0,4] [3,4,8]", "", INVALID, {"conv1d", "L=0"}},
        {"conv1d_setup", "[2,-7,4] [3,4,8]", "", INVALID, {"L=-7"}},
        {"conv1d_setup", "[2,7,0] [3,4,8]", "", INVALID, {"C_in=0"}},
        {"conv1d_setup", "[2,7,4] [0,4,8]", "", INVALID, {"K=0"}},
        {"conv1d_setup", "[2,7,4] [3,4,-8]", "", INVALID, {"C_out=-8"}},
        {"conv1d_setup", "[2,7,4] [3,4,8]", "stride_w=0", INVALID, {"stride_w=0"}},
        {"conv1d_setup", "[2,7,4] [3,4,8]", "dil_w=0", INVALID, {"dilation_w=0"}},
        {"conv1d_setup", "[2,7,4] [3,4,8]", "stride_h=2", INVALID, {"stride_h=2"}},
        {"conv1d_setup", "[2,7,4] [3,4,8]", "dil_h=0", INVALID, {"dil_h=0"}},
        {"conv1d_setup", "[2,7,4] [3,4,8]", "pad_top=1", INVALID, {"pad_top=1"}},
        {"conv1d_setup", "[2,7,4] [3,4,8]", "groups=0", INVALID, {"groups=0"}},
        {"conv1d_setup", "[2,7,6] [3,1,8]", "groups=4", INVALID, {"C_in=6", "groups=4"}},
        {"conv1d_setup", "[2,7,4] [3,3,8]", "", INVALID, {"weight", "3 input channels", "C_in=4"}},
        {"conv1d_setup", "[1,2,1] [5,1,1]", "", INVALID, {"kernel (1x5)", "padded input (1x2)"}},
        {"conv1d_setup", "[1,2,1] [5,1,1]", "pad_left=2 pad_right=1", OK, {0}},
        {"conv1d_setup", "[2,7,4] [3,4,8]", "pad_left=-1", INVALID, {"pad_left=-1"}},
        {"conv1d_setup", "[46341,46341,1] [1,1,1]", "", OK, {0}},
        {"conv1d_setup", "[2^32,2^32,1] [1,1,1]", "", OVERFLOW, {"N=4294967296"}},
        {"conv1d_setup", "[2147418113,1718039348,5] [1,5,1]", "", OVERFLOW, {"[2147418113,1,1718039348,5]"}},
    };
    RUN_TABLE(rows);
}

/* conv_transpose2d: x [N,H,W,C_in], w [KH,KW,C_out/G,C_in]. */
static void conv_transpose2d_setup_rejects_every_invalid_class(void)
{
    static const row rows[] = {
        {"conv_transpose2d_setup", "[2,4,4,6] [3,3,4,6]", "", OK, {0}},
        {"conv_transpose2d_setup", "[0,4,4,6] [3,3,4,6]", "", INVALID, {"conv_transpose2d", "N=0"}},
        {"conv_transpose2d_setup", "[2,-4,4,6] [3,3,4,6]", "", INVALID, {"H=-4"}},
        {"conv_transpose2d_setup", "[2,4,0,6] [3,3,4,6]", "", INVALID, {"W=0"}},
        {"conv_transpose2d_setup", "[2,4,4,0] [3,3,4,0]", "", INVALID, {"C_in=0"}},
        {"conv_transpose2d_setup", "[2,4,4,6] [0,3,4,6]", "", INVALID, {"KH=0"}},
        {"conv_transpose2d_setup", "[2,4,4,6] [3,0,4,6]", "", INVALID, {"KW=0"}},
        {"conv_transpose2d_setup", "[2,4,4,6] [3,3,0,6]", "", INVALID, {"C_out/groups=0"}},
        {"conv_transpose2d_setup", "[2,4,4,6] [3,3,4,6]", "stride_h=0", INVALID, {"stride_h=0"}},
        {"conv_transpose2d_setup", "[2,4,4,6] [3,3,4,6]", "stride_w=0", INVALID, {"stride_w=0"}},
        {"conv_transpose2d_setup", "[2,4,4,6] [3,3,4,6]", "dil_h=0", INVALID, {"dilation_h=0"}},
        {"conv_transpose2d_setup", "[2,4,4,6] [3,3,4,6]", "dil_w=-1", INVALID, {"dilation_w=-1"}},
        {"conv_transpose2d_setup", "[2,4,4,6] [3,3,4,6]", "groups=0", INVALID, {"groups=0"}},
        {"conv_transpose2d_setup", "[2,4,4,6] [3,3,1,6]", "groups=4", INVALID, {"C_in=6", "groups=4"}},
        {"conv_transpose2d_setup", "[2,4,4,6] [3,3,4,5]", "", INVALID, {"weight", "5", "C_in=6"}},
        {"conv_transpose2d_setup", "[2,4,4,6] [3,3,4,6]", "pad_left=-1", INVALID, {"pad_left=-1"}},
        {"conv_transpose2d_setup", "[2,4,4,6] [3,3,4,6]", "out_pad_h=1", INVALID, {"output_padding (1,0)", "stride (1,1)"}},
        {"conv_transpose2d_setup", "[2,4,4,6] [3,3,4,6]", "out_pad_w=-1 stride_w=2", INVALID, {"output_padding (0,-1)"}},
        /* the analogue of a kernel larger than the padded input: padding
         * that leaves no output */
        {"conv_transpose2d_setup", "[2,4,4,6] [3,3,4,6]", "pad_top=5 pad_bottom=5", INVALID, {"output size -4x6"}},
        {"conv_transpose2d_setup", "[2,4,4,6] [3,3,4,6]", "pad_same=1", UNSUPPORTED, {"same"}},
        {"conv_transpose2d_setup", "[2,4,4,6] [3,3,4,6]", "pad_mode=reflect", UNSUPPORTED, {"reflect"}},
        {"conv_transpose2d_setup", "[1,46341,46341,1] [1,1,1,1]", "", OK, {0}},
        {"conv_transpose2d_setup", "[2^32,2^32,1,1] [1,1,1,1]", "", OVERFLOW, {"N=4294967296"}},
        {"conv_transpose2d_setup", "[1,2147418113,1718039348,5] [1,1,1,5]", "", OVERFLOW, {"2147418113", "1718039348"}},
        {"conv_transpose2d_setup", "[1,2147418113,1,5] [1,1,1718039348,5]", "", OVERFLOW, {"2147418113", "1718039348"}},
        /* upsampling by 2^30 in both axes: the output has 2^62 pixels */
        {"conv_transpose2d_setup", "[1,3,3,1] [1,1,2,1]", "stride_h=2^30 stride_w=2^30", OVERFLOW, {"conv_transpose2d", "2147483649"}},
        /* its forward's workspace: the input dilated by the stride,
         * 2^30 x 2^30 pixels of 2^30 channels */
        {"conv_transpose2d_setup", "[1,2^15,2^15,2^30] [1,1,1,2^30]", "stride_h=2^15 stride_w=2^15", OVERFLOW, {"conv_transpose2d", "overflow"}},
    };
    RUN_TABLE(rows);
}

/* max and average pooling: x [N,H,W,C]; stride 0 means "the kernel". */
static void pool2d_setup_rejects_every_invalid_class(void)
{
    static const row rows[] = {
        {"max_pool2d_setup", "[2,6,6,3]", "", OK, {0}},
        {"max_pool2d_setup", "[2,6,6,3]", "stride_h=0 stride_w=0", OK, {0}},
        {"max_pool2d_setup", "[0,6,6,3]", "", INVALID, {"max_pool2d", "N=0"}},
        {"avg_pool2d_setup", "[-2,6,6,3]", "", INVALID, {"avg_pool2d", "N=-2"}},
        {"max_pool2d_setup", "[2,0,6,3]", "", INVALID, {"H=0"}},
        {"max_pool2d_setup", "[2,6,-6,3]", "", INVALID, {"W=-6"}},
        {"avg_pool2d_setup", "[2,6,6,0]", "", INVALID, {"C=0"}},
        {"max_pool2d_setup", "[2,6,6,3]", "kernel_h=0", INVALID, {"kernel_h=0"}},
        {"avg_pool2d_setup", "[2,6,6,3]", "kernel_w=-1", INVALID, {"kernel_w=-1"}},
        {"max_pool2d_setup", "[2,6,6,3]", "stride_h=-1", INVALID, {"stride_h=-1"}},
        {"avg_pool2d_setup", "[2,6,6,3]", "stride_w=-3", INVALID, {"stride_w=-3"}},
        {"max_pool2d_setup", "[2,6,6,3]", "dil_h=0", INVALID, {"dil_h=0"}},
        {"max_pool2d_setup", "[2,6,6,3]", "dil_w=-1", INVALID, {"dil_w=-1"}},
        {"avg_pool2d_setup", "[2,6,6,3]", "dil_h=2", INVALID, {"dil_h=2"}},
        {"max_pool2d_setup", "[2,6,6,3]", "pad_h=-1", INVALID, {"pad_h=-1"}},
        {"max_pool2d_setup", "[2,6,6,3]", "kernel_w=3 pad_w=2", INVALID, {"pad_w=2", "kernel_w=3"}},
        {"max_pool2d_setup", "[2,6,6,3]", "ceil_mode=2", INVALID, {"ceil_mode=2"}},
        {"avg_pool2d_setup", "[2,6,6,3]", "count_include_pad=-1", INVALID, {"count_include_pad=-1"}},
        {"max_pool2d_setup", "[2,6,6,3]", "type=7", INVALID, {"type=7"}},
        /* kernel larger than the padded input */
        {"max_pool2d_setup", "[1,2,2,1]", "kernel_h=3 kernel_w=3", INVALID, {"OH=0", "H=2", "kernel 3x3"}},
        {"avg_pool2d_setup", "[1,2,5,1]", "kernel_h=3 kernel_w=3", INVALID, {"OH=0", "H=2", "kernel 3x3"}},
        {"max_pool2d_setup", "[1,3,3,1]", "kernel_h=3 kernel_w=3 dil_h=2", INVALID, {"OH=0", "dil 2x1"}},
        {"max_pool2d_setup", "[1,2,2,1]", "kernel_h=3 kernel_w=3 pad_h=1 pad_w=1", OK, {0}},
        {"max_pool2d_setup", "[1,5,5,1]", "kernel_h=2147483647 kernel_w=2147483647", INVALID, {"kernel 2147483647x2147483647"}},
        {"max_pool2d_setup", "[1,46341,46341,1]", "kernel_h=1 kernel_w=1", OK, {0}},
        {"max_pool2d_setup", "[2^32,2^32,1,1]", "", OVERFLOW, {"[4294967296,4294967296,1,1]"}},
        {"avg_pool2d_setup", "[1,2147418113,1718039348,5]", "", OVERFLOW, {"[1,2147418113,1718039348,5]"}},
    };
    RUN_TABLE(rows);
}

/* Ops on raw buffers that take their sizes as arguments: they check them
 * before touching a buffer. */
static void raw_buffer_ops_reject_every_invalid_class(void)
{
    static const row rows[] = {
        /* global average pooling, both directions */
        {"global_avg_pool2d_fwd", "[2,3,3,4]", "", OK, {0}},
        {"global_avg_pool2d_fwd", "[0,3,3,4]", "", INVALID, {"global_avg_pool2d", "N=0"}},
        {"global_avg_pool2d_fwd", "[2,-3,3,4]", "", INVALID, {"H=-3"}},
        {"global_avg_pool2d_bwd", "[2,3,0,4]", "", INVALID, {"W=0"}},
        {"global_avg_pool2d_bwd", "[2,3,3,-4]", "", INVALID, {"C=-4"}},
        {"global_avg_pool2d_fwd", "[1,2^32,2^32,1]", "", OVERFLOW, {"[1,4294967296,4294967296,1]"}},
        {"global_avg_pool2d_bwd", "[1,2147418113,1718039348,5]", "", OVERFLOW, {"[1,2147418113,1718039348,5]"}},
        /* padding as an op, both directions */
        {"pad2d_fwd", "[2,3,3,4]", "pt=1 pb=2 pl=0 pr=1 mode=reflect", OK, {0}},
        {"pad2d_fwd", "[0,3,3,4]", "pt=1", INVALID, {"pad2d", "N=0"}},
        {"pad2d_bwd", "[2,-3,3,4]", "pt=1", INVALID, {"pad2d", "H=-3"}},
        {"pad2d_fwd", "[2,3,0,4]", "pt=1", INVALID, {"W=0"}},
        {"pad2d_bwd", "[2,3,3,-1]", "pt=1", INVALID, {"C=-1"}},
        {"pad2d_fwd", "[2,3,3,4]", "pt=-1", INVALID, {"pad_top=-1"}},
        {"pad2d_bwd", "[2,3,3,4]", "pb=-2", INVALID, {"pad_bottom=-2"}},
        {"pad2d_fwd", "[2,3,3,4]", "pl=-3", INVALID, {"pad_left=-3"}},
        {"pad2d_bwd", "[2,3,3,4]", "pr=-4", INVALID, {"pad_right=-4"}},
        {"pad2d_fwd", "[2,3,3,4]", "pt=3 mode=reflect", INVALID, {"reflect padding 3", "H=3"}},
        {"pad2d_bwd", "[2,3,3,4]", "pr=4 mode=circular", INVALID, {"circular padding 4", "W=3"}},
        {"pad2d_fwd", "[2,3,3,4]", "pt=4 mode=symmetric", INVALID, {"symmetric padding 4", "H=3"}},
        {"pad2d_fwd", "[2,3,3,4]", "mode=17", INVALID, {"padding mode", "17"}},
        {"pad2d_fwd", "[1,2^32,2^32,1]", "", OVERFLOW, {"pad2d", "4294967296"}},
        {"pad2d_bwd", "[1,2147418113,1718039348,5]", "", OVERFLOW, {"pad2d", "2147418113"}},
        {"pad2d_fwd", "[1,1,1,1]", "pt=2^62 pb=2^62", OVERFLOW, {"pad2d", "4611686018427387904"}},
        {"pad2d_bwd", "[1,2^31,1,1]", "pl=2^31 pr=2^31", OVERFLOW, {"pad2d"}},
        /* inserting zeros between pixels, both directions */
        {"dilate2d_fwd", "[2,3,3,4]", "dh=2 dw=3", OK, {0}},
        {"dilate2d_fwd", "[-1,3,3,4]", "", INVALID, {"dilate2d", "-1"}},
        {"dilate2d_bwd", "[2,0,3,4]", "", INVALID, {"dilate2d", "H=0"}},
        {"dilate2d_fwd", "[2,3,0,4]", "", INVALID, {"W=0"}},
        {"dilate2d_bwd", "[2,3,3,-4]", "", INVALID, {"C=-4"}},
        {"dilate2d_fwd", "[2,3,3,4]", "dh=0", INVALID, {"dh=0"}},
        {"dilate2d_bwd", "[2,3,3,4]", "dw=-1", INVALID, {"dw=-1"}},
        {"dilate2d_fwd", "[1,2^32,2^32,1]", "", OVERFLOW, {"dilate2d", "4294967296"}},
        {"dilate2d_bwd", "[1,2147418113,1718039348,5]", "", OVERFLOW, {"dilate2d", "2147418113"}},
        {"dilate2d_fwd", "[1,2,2,1]", "dh=2^62 dw=2^62", OVERFLOW, {"dilate2d", "4611686018427387904"}},
        {"dilate2d_bwd", "[1,2^20+1,2^20+1,1]", "dh=2^21 dw=2^21", OVERFLOW, {"dilate2d"}},
        /* flipping axes */
        {"flip", "[2,3,4]", "axes=5", OK, {0}},
        {"flip", "[2,-3,4]", "", INVALID, {"-3"}},
        {"flip", "[1,1,1,1,1,1]", "", INVALID, {"ndim=6"}},
        {"flip", "[2,3,4]", "axes=8", INVALID, {"flip", "0x8", "ndim=3"}},
        {"flip", "[2^32,2^32]", "", OVERFLOW, {"[4294967296,4294967296]"}},
        {"flip", "[2147418113,1718039348,5]", "", OVERFLOW, {"[2147418113,1718039348,5]"}},
        {"flip", "[0,2^32,2^32]", "", OVERFLOW, {"[0,4294967296,4294967296]"}},
        {"flip", "[0,2^20,2^20]", "", OK, {0}},
        /* batch norm over M = N*H*W rows of C channels */
        {"batchnorm_fwd", "[8,3]", "", OK, {0}},
        {"batchnorm_fwd", "[-1,3]", "", INVALID, {"batchnorm", "M=-1"}},
        {"batchnorm_fwd", "[8,-3]", "", INVALID, {"C=-3"}},
        {"batchnorm_fwd", "[0,3]", "", INVALID, {"M=0"}},
        {"batchnorm_fwd", "[1,3]", "", INVALID, {"M=1"}},
        {"batchnorm_fwd", "[0,3]", "training=0", OK, {0}},
        {"batchnorm_fwd", "[8,3]", "eps=-1", INVALID, {"eps=-1"}},
        {"batchnorm_fwd", "[8,3]", "eps=nan", INVALID, {"eps=nan"}},
        {"batchnorm_fwd", "[8,3]", "momentum=2", INVALID, {"momentum=2"}},
        {"batchnorm_fwd", "[8,3]", "training=0 running=0", INVALID, {"running_mean"}},
        {"batchnorm_fwd", "[2^32,2^32]", "", OVERFLOW, {"M=4294967296", "C=4294967296"}},
        {"batchnorm_fwd", "[10737090565,1718039348]", "", OVERFLOW, {"M=10737090565", "C=1718039348"}},
        {"batchnorm_fwd_relu", "[8,3]", "", OK, {0}},
        {"batchnorm_fwd_relu", "[1,3]", "", INVALID, {"M=1"}},
        {"batchnorm_fwd_add_relu", "[8,3]", "", OK, {0}},
        {"batchnorm_fwd_add_relu", "[8,3]", "eps=-1", INVALID, {"eps=-1"}},
        {"batchnorm_fwd_add_relu", "[8,3]", "res=0", INVALID, {"batchnorm", "res"}},
        /* softmax cross-entropy of logits [N,K] */
        {"xent_fwd", "[4,5]", "label=4", OK, {0}},
        {"xent_fwd", "[0,5]", "", INVALID, {"xent", "N=0"}},
        {"xent_fwd", "[-4,5]", "", INVALID, {"N=-4"}},
        {"xent_fwd", "[4,0]", "", INVALID, {"K=0"}},
        {"xent_fwd", "[4,5]", "label=5", INVALID, {"label 5", "index 0"}},
        {"xent_fwd", "[4,5]", "label=-1", INVALID, {"label -1"}},
        {"xent_fwd", "[2^32,2^32]", "", OVERFLOW, {"N=4294967296", "K=4294967296"}},
        {"xent_fwd", "[10737090565,1718039348]", "", OVERFLOW, {"N=10737090565", "K=1718039348"}},
        /* padding modes by name */
        {"pad_mode_parse", "", "name=mirror", INVALID, {"'mirror'"}},
    };
    RUN_TABLE(rows);
}

/* Tensors and the checked-size helpers everything else goes through. */
static void tensors_and_sizes_reject_every_invalid_class(void)
{
    static const row rows[] = {
        {"tensor_new", "[2,3]", "", OK, {0}},
        {"tensor_new", "[0,3]", "", OK, {0}},
        {"tensor_new", "[2,-3]", "", INVALID, {"dimension 1", "-3"}},
        {"tensor_new", "[1,1,1,1,1,1]", "", INVALID, {"ndim=6"}},
        {"tensor_new", "[2]", "ndim=-1", INVALID, {"ndim=-1"}},
        {"tensor_new", "[2^32,2^32]", "", OVERFLOW, {"[4294967296,4294967296]"}},
        {"tensor_new", "[2147418113,1718039348,5]", "", OVERFLOW, {"[2147418113,1718039348,5]"}},
        {"tensor_new", "[2^16,2^16,2^16,2^16]", "", OVERFLOW, {"[65536,65536,65536,65536]"}},
        {"tensor_new", "[0,2^32,2^32]", "", OVERFLOW, {"[0,4294967296,4294967296]"}},
        {"tensor_new", "[2^32,2^32,0]", "", OVERFLOW, {"[4294967296,4294967296,0]"}},
        {"tensor_new", "[2^61]", "", OVERFLOW, {"[2305843009213693952]", "byte size"}},
        {"size_mul", "", "a=46341 b=46341", OK, {0}},
        {"size_mul", "", "a=2^32 b=2^32", OVERFLOW, {"bytes", "4294967296 x 4294967296"}},
        {"size_mul", "", "a=2147418113 b=8590196740", OVERFLOW, {"2147418113 x 8590196740"}},
    };
    RUN_TABLE(rows);
}

/* The differentiable ops: each checks its inputs' shapes, then hands the
 * set-up checks above their arguments; failures are sticky in the graph. */
static void graph_builders_reject_every_invalid_class(void)
{
    static const row rows[] = {
        /* variables */
        {"var_new", "[2,3]", "", OK, {0}},
        {"var_new", "[2,-1]", "", INVALID, {"-1"}},
        {"var_new", "[1,1,1,1,1,1]", "", INVALID, {"ndim=6"}},
        {"var_wrap", "[2]", "ndim=-2", INVALID, {"ndim=-2"}},
        {"var_wrap", "[46341,46341]", "", OK, {0}},
        {"var_new", "[2^32,2^32]", "", OVERFLOW, {"[4294967296,4294967296]"}},
        {"var_wrap", "[2147418113,1718039348,5]", "", OVERFLOW, {"[2147418113,1718039348,5]"}},
        /* convolutions: rank, the set-up's classes, the bias */
        {"conv2d", "[2,5,5,4] [3,3,4,8] [8]", "", OK, {0}},
        {"conv2d", "[2,5,5] [3,3,4,8]", "", INVALID, {"conv2d", "x", "[2,5,5]"}},
        {"conv2d", "[2,5,5,4] [3,3,4]", "", INVALID, {"weight", "[3,3,4]"}},
        {"conv2d", "[2,5,5,4] [3,3,4,8] [7]", "", INVALID, {"bias", "[8]", "[7]"}},
        {"conv2d", "[0,5,5,4] [3,3,4,8]", "", INVALID, {"N=0"}},
        {"conv2d", "[2,5,5,4] [3,3,4,8]", "stride_w=0", INVALID, {"stride_w=0"}},
        {"conv2d", "[2,5,5,4] [3,3,4,8]", "dil_h=0", INVALID, {"dilation_h=0"}},
        {"conv2d", "[2,5,5,6] [3,3,1,8]", "groups=4", INVALID, {"C_in=6", "groups=4"}},
        {"conv2d", "[2,2,2,4] [3,3,4,8]", "", INVALID, {"kernel (3x3)", "(2x2)"}},
        {"conv1d", "[2,7,4] [3,4,8]", "", OK, {0}},
        {"conv1d", "[2,7,4,1] [3,4,8]", "", INVALID, {"conv1d", "x", "[2,7,4,1]"}},
        {"conv1d", "[2,7,4] [3,4,8]", "stride_w=0", INVALID, {"stride_w=0"}},
        {"conv1d", "[2,7,4] [3,4,8] [4]", "", INVALID, {"bias", "[8]", "[4]"}},
        {"conv_transpose2d", "[2,4,4,6] [3,3,4,6] [4]", "", OK, {0}},
        {"conv_transpose2d", "[2,4,4,6] [3,3,4,5]", "", INVALID, {"weight", "C_in=6"}},
        {"conv_transpose2d", "[2,4,4,6] [3,3,4,6] [6]", "", INVALID, {"bias", "[4]", "[6]"}},
        {"conv_transpose2d", "[2,4,4,6] [3,3,4,6]", "dil_w=0", INVALID, {"dilation_w=0"}},
        /* pooling */
        {"max_pool2d", "[2,6,6,3]", "", OK, {0}},
        {"max_pool2d", "[6,6,3]", "", INVALID, {"max_pool2d", "[6,6,3]"}},
        {"max_pool2d", "[0,6,6,3]", "", INVALID, {"N=0"}},
        {"avg_pool2d", "[2,6,6,3]", "kernel_h=0", INVALID, {"kernel_h=0"}},
        {"avg_pool2d", "[2,1,6,3]", "", INVALID, {"OH=0", "H=1"}},
        {"global_avg_pool2d", "[2,3,3,4]", "", OK, {0}},
        {"global_avg_pool2d", "[2,3,3]", "", INVALID, {"global_avg_pool2d", "[2,3,3]"}},
        {"global_avg_pool2d", "[0,3,3,4]", "", INVALID, {"N=0"}},
        /* linear: x [N,IN], w [IN,OUT], b [OUT] */
        {"linear", "[2,3] [3,5] [5]", "", OK, {0}},
        {"linear", "[0,3] [3,5] [5]", "", OK, {0}},
        {"linear", "[2,3,1] [3,5]", "", INVALID, {"linear", "[2,3,1]"}},
        {"linear", "[2,3] [4,5]", "", INVALID, {"[2,3]", "[4,5]"}},
        {"linear", "[2,3] [3,5] [4]", "", INVALID, {"bias", "[5]", "[4]"}},
        {"linear", "[2^32,0] [0,2^32]", "", OVERFLOW, {"linear", "[4294967296,4294967296]"}},
        {"linear", "[2147418113,0] [0,8590196740]", "", OVERFLOW, {"linear", "[2147418113,8590196740]"}},
        /* elementwise */
        {"add", "[2,3] [2,3]", "", OK, {0}},
        {"add", "[2,3] [3,2]", "", INVALID, {"add", "[2,3]", "[3,2]"}},
        {"add_relu", "[2,3] [2,3]", "", OK, {0}},
        {"add_relu", "[2,3] [3,2]", "", INVALID, {"add_relu", "[2,3]", "[3,2]"}},
        {"mul", "[2,3] [2,3,1]", "", INVALID, {"mul", "[2,3]", "[2,3,1]"}},
        {"relu", "-", "", INVALID, {"NULL"}},
        {"leaky_relu", "-", "", INVALID, {"NULL"}},
        {"tanh", "-", "", INVALID, {"NULL"}},
        {"sigmoid", "-", "", INVALID, {"NULL"}},
        /* shapes */
        {"reshape", "[2,3]", "to=[3,-1]", OK, {0}},
        {"reshape", "[46341,46341]", "to=[-1]", OK, {0}},
        {"reshape", "[2,3]", "to=[4,2]", INVALID, {"reshape", "[2,3]", "[4,2]"}},
        {"reshape", "[2,3]", "to=[-1,-1]", INVALID, {"reshape", "[-1,-1]"}},
        {"reshape", "[2,3]", "to=[-2,-3]", INVALID, {"reshape", "[-2,-3]"}},
        {"reshape", "[2,3]", "to=[1,1,1,1,1,6]", INVALID, {"ndim=6"}},
        {"reshape", "[0,3]", "to=[2^32,2^32,0]", OVERFLOW, {"reshape", "[4294967296,4294967296,0]"}},
        {"reshape", "[2,3]", "to=[2^32,2^32]", OVERFLOW, {"reshape", "[4294967296,4294967296]"}},
        {"reshape", "[2,2]", "to=[2147418113,1718039348,5]", OVERFLOW, {"reshape", "[2147418113,1718039348,5]"}},
        {"reshape", "[0,3]", "to=[2147418113,1718039348,5,0,-1]", OVERFLOW, {"reshape", "[2147418113,1718039348,5,0,-1]"}},
        {"flatten", "[0,2^20,2^20]", "", OK, {0}},
        {"var_new", "[0,2^40,2^40]", "", OVERFLOW, {"[0,1099511627776,1099511627776]"}},
        {"flatten", "[]", "", INVALID, {"flatten"}},
        {"concat", "[2,3] [2,4]", "axis=1", OK, {0}},
        {"concat", "[2,3] [2,4]", "n=0", INVALID, {"concat", "got 0"}},
        {"concat", "[2,3] [2,4]", "axis=2", INVALID, {"axis=2"}},
        {"concat", "[2,3] [2,4]", "axis=-1", INVALID, {"axis=-1"}},
        {"concat", "[2,3] [2,4]", "axis=0", INVALID, {"input 1", "[2,4]", "[2,3]"}},
        {"concat", "[2^20,2^20,0] [2^20,2^20,0]", "axis=1", OK, {0}},
        {"concat", "[0,2^60] [0,2^60] [0,2^60] [0,2^60]", "axis=1", OVERFLOW, {"concat", "[0,4611686018427387904]"}},
        {"concat", "[0,2^60] [0,2^60] [0,2^60] [0,2^60] [0,2^60] [0,2^60] [0,2^60] [0,2^60]", "axis=1", OVERFLOW, {"concat", "axis 1"}},
        {"concat", "[0,2^32] [0,2^32]", "axis=0", OK, {0}},
        /* batch norm: x [N,H,W,C], gamma and beta [C] */
        {"batch_norm2d", "[2,3,3,4] [4] [4]", "", OK, {0}},
        {"batch_norm2d", "[2,3,4] [4] [4]", "", INVALID, {"batch_norm2d", "[2,3,4]"}},
        {"batch_norm2d", "[2,3,3,4] [3] [4]", "", INVALID, {"gamma", "[3]", "C=4"}},
        {"batch_norm2d", "[2,3,3,4] [4] [5]", "", INVALID, {"beta", "[5]", "C=4"}},
        {"batch_norm2d", "[0,3,3,4] [4] [4]", "", INVALID, {"M=0"}},
        {"batch_norm2d", "[1,1,1,4] [4] [4]", "", INVALID, {"M=1"}},
        {"batch_norm2d", "[2,3,3,4] [4] [4]", "eps=-1", INVALID, {"eps=-1"}},
        {"batch_norm2d", "[2,3,3,4] [4] [4]", "momentum=1.5", INVALID, {"momentum=1.5"}},
        {"batch_norm2d", "[2,3,3,4] [4] [4]", "training=0 running=0", INVALID, {"running_mean"}},
        {"batch_norm2d_relu", "[2,3,3,4] [4] [4]", "", OK, {0}},
        {"batch_norm2d_relu", "[2,3,3,4] [3] [4]", "", INVALID, {"batch_norm2d_relu", "gamma", "[3]"}},
        {"batch_norm2d_relu", "[1,1,1,4] [4] [4]", "", INVALID, {"M=1"}},
        {"batch_norm2d_add_relu", "[2,3,3,4] [4] [4] [2,3,3,4]", "", OK, {0}},
        {"batch_norm2d_add_relu", "[2,3,3,4] [4] [4] [2,3,3,5]", "", INVALID,
         {"batch_norm2d_add_relu: res", "[2,3,3,5]", "[2,3,3,4]"}},
        {"batch_norm2d_add_relu", "[2,3,3,4] [4] [4] -", "", INVALID, {"NULL"}},
        {"batch_norm2d_add_relu", "[2,3,4] [4] [4] [2,3,4]", "", INVALID, {"batch_norm2d_add_relu", "[2,3,4]"}},
        /* dropout */
        {"dropout", "[8]", "p=0.5", OK, {0}},
        {"dropout", "[8]", "p=1", INVALID, {"p=1"}},
        {"dropout", "[8]", "p=-0.5", INVALID, {"p=-0.5"}},
        {"dropout", "[8]", "p=nan", INVALID, {"p=nan"}},
        {"dropout", "[8]", "ctx=0", INVALID, {"dropout", "cn_ctx"}},
        /* softmax family */
        {"log_softmax", "[2,5]", "", OK, {0}},
        {"log_softmax", "[2,5,1]", "", INVALID, {"log_softmax", "[2,5,1]"}},
        {"softmax_cross_entropy", "[2,5]", "label=4", OK, {0}},
        {"softmax_cross_entropy", "[2,5,1]", "", INVALID, {"softmax_cross_entropy", "[2,5,1]"}},
        {"softmax_cross_entropy", "[0,5]", "", INVALID, {"[0,5]"}},
        {"softmax_cross_entropy", "[2,0]", "", INVALID, {"[2,0]"}},
        {"softmax_cross_entropy", "[2,5]", "label=5", INVALID, {"label 5"}},
        {"softmax_cross_entropy", "[2,5]", "labels=0", INVALID, {"labels"}},
        /* reductions and backward */
        {"sum", "[0,3]", "", OK, {0}},
        {"mean", "[0,3]", "", INVALID, {"mean", "no elements"}},
        {"backward", "[1]", "requires_grad=0", INVALID, {"does not depend"}},
        {"backward", "[2]", "", INVALID, {"backward", "one element", "2"}},
        {"backward", "[1]", "loss=0", INVALID, {"backward", "NULL"}},
    };
    RUN_TABLE(rows);
}

/* Layers and models: each builder runs its op's set-up on the activation
 * shape, and the parameters must be countable one by one and in total. */
static void model_builders_reject_every_invalid_class(void)
{
    static const row rows[] = {
        {"model", "[28,28,1]", "layers=conv:8:3:1:1,bn,maxpool:2,flatten,linear:10", OK, {0}},
        {"model", "[0,5,1]", "", INVALID, {"[0,5,1]"}},
        {"model", "[5,-5,1]", "", INVALID, {"[5,-5,1]"}},
        {"model", "[46341,46341,1]", "layers=conv:4:3:1:1,flatten,linear:10", OK, {0}},
        {"model", "[2^32,2^32,1]", "", OVERFLOW, {"[4294967296,4294967296,1]"}},
        {"model", "[2147418113,1718039348,5]", "", OVERFLOW, {"[2147418113,1718039348,5]"}},
        {"model", "[4,4,1]", "layers=conv:0:3:1:1", INVALID, {"conv1", "C_out=0"}},
        {"model", "[4,4,1]", "layers=conv:4:3:0:1", INVALID, {"conv1", "stride_h=0"}},
        {"model", "[4,4,3]", "layers=conv:4:5:1:0", INVALID, {"kernel (5x5)", "(4x4)"}},
        {"model", "[4,4,1]", "layers=conv:4:3:1:-1", INVALID, {"pad_top=-1"}},
        {"model", "[4,4,1]", "layers=conv:2^32:1:1:0", OVERFLOW, {"conv1", "C_out=4294967296"}},
        {"model", "[4,4,1]", "layers=flatten,conv:4:3:1:1", INVALID, {"conv2d", "[H,W,C]"}},
        {"model", "[4,4,1]", "layers=linear:10", INVALID, {"linear", "flatten"}},
        {"model", "[4,4,1]", "layers=flatten,linear:0", INVALID, {"out_features=0"}},
        {"model", "[1,1,1]", "layers=flatten,linear:2^40,linear:2^40", OVERFLOW, {"fc2.weight", "[1099511627776,1099511627776]"}},
        {"model", "[1,1,1]", "layers=flatten,linear:2^30,linear:2^30,linear:2^30", OVERFLOW, {"fc3.weight", "parameters"}},
        {"model", "[4,4,1]", "layers=dropout:1.5", INVALID, {"p=1.5"}},
        {"model", "[4,4,1]", "layers=maxpool:0", INVALID, {"kernel_h=0"}},
        {"model", "[4,4,1]", "layers=maxpool:8", INVALID, {"OH=0", "kernel 8x8"}},
        {"model", "[4,4,1]", "layers=residual:0:1", INVALID, {"block1", "C_out=0"}},
        {"model", "[4,4,1]", "layers=residual:4:0", INVALID, {"stride=0"}},
    };
    RUN_TABLE(rows);
}

/* Filters and images: kernels, images too small for them, and tensors
 * whose shape does not agree with their size. */
static void filters_and_images_reject_every_invalid_class(void)
{
    static const row rows[] = {
        {"filter_kernel", "", "kind=0 param=1", OK, {0}},
        {"filter_kernel", "", "kind=0 param=0", INVALID, {"sigma=0"}},
        {"filter_kernel", "", "kind=0 param=-2", INVALID, {"sigma=-2"}},
        {"filter_kernel", "", "kind=0 param=nan", INVALID, {"sigma=nan"}},
        {"filter_kernel", "", "kind=0 param=1000", INVALID, {"sigma=1000", "6001x6001"}},
        {"filter_kernel", "", "kind=1 param=0", INVALID, {"K=0"}},
        {"filter_kernel", "", "kind=1 param=4", INVALID, {"K=4"}},
        {"filter_kernel", "", "kind=1 param=-3", INVALID, {"K=-3"}},
        {"filter_kernel", "", "kind=7", INVALID, {"kernel tensor"}},
        {"filter_kernel", "[2,3]", "kind=7", INVALID, {"KH=2", "KW=3"}},
        {"filter_kernel", "[3,0]", "kind=7", INVALID, {"KW=0"}},
        {"filter_kernel", "[3]", "kind=7", INVALID, {"[3]"}},
        {"filter_kernel", "", "kind=99", INVALID, {"kind 99"}},
        {"image_filter", "[5,5,3]", "kind=1 param=3", OK, {0}},
        {"image_filter", "[0,5,3]", "kind=1 param=3", INVALID, {"[0,5,3]"}},
        {"image_filter", "[5,5,3,1]", "kind=1 param=3", INVALID, {"[5,5,3,1]"}},
        {"image_filter", "[2,2,1]", "kind=0 param=1", INVALID, {"2x2", "7x7"}},
        {"image_filter", "[5,5,3]", "kind=1 param=4", INVALID, {"K=4"}},
        {"image_filter", "[2^32,2^32,1]", "kind=1 param=3", OVERFLOW, {"[4294967296,4294967296,1]"}},
        {"image_filter", "[2147418113,1718039348,5]", "kind=1 param=3", OVERFLOW, {"[2147418113,1718039348,5]"}},
        {"image_filter", "[5,5,3]", "kind=1 param=3 size=74", INVALID, {"[5,5,3]", "74"}},
        /* decoding: the header's size is checked before any pixel is */
        {"image_decode", "", "format=png w=46341 h=46341", FORMAT, {"46341x46341"}},
        {"image_decode", "", "format=bmp w=65536 h=65536", FORMAT, {"65536x65536"}},
        {"image_decode", "", "format=bmp w=2^24 h=2^24", FORMAT, {"16777216x16777216"}},
        {"image_decode", "", "format=png w=2^32-1 h=2^32-1", FORMAT, {"4294967295x4294967295"}},
        {"image_decode", "", "format=png w=0 h=5", FORMAT, {"0x5"}},
        {"image_decode", "", "format=png w=3 h=2", FORMAT, {"image: "}},
        {"image_decode", "", "format=bmp w=0 h=5", FORMAT, {"0x5"}},
        /* writing */
        {"image_write_png", "[4,4,3]", "", OK, {0}},
        {"image_write_png", "[0,4,3]", "", INVALID, {"4x0"}},
        {"image_write_png", "[4,4,5]", "", INVALID, {"5 channels"}},
        {"image_write_png", "[46341,46341,1]", "", INVALID, {"46341x46341"}},
        {"image_write_png", "[2^32,2^32,1]", "", INVALID, {"4294967296x4294967296"}},
        {"image_write_png", "[4,4,3]", "size=5", INVALID, {"[4,4,3]", "5"}},
    };
    RUN_TABLE(rows);
}

/* The loaders trust nothing in a header: sizes are computed checked and
 * matched against the bytes present before anything is allocated. A
 * [46341,46341] float32 array needs 8,589,953,124 bytes, which wraps 32
 * bits to 18,532: that many bytes must not pass for it. */
static void loaders_reject_every_invalid_class(void)
{
    static const row rows[] = {
        /* .npy */
        {"npy_decode", "", "descr=<f4 shape=(2,3) data=24", OK, {0}},
        {"npy_decode", "", "descr=<f4 shape=(0,3)", OK, {0}},
        {"npy_decode", "", "descr=<f4 shape=(3,-2)", FORMAT, {"negative dimension -2"}},
        {"npy_decode", "", "descr=<f4 shape=(1,1,1,1,1,1) data=4", UNSUPPORTED, {"6 dimensions"}},
        {"npy_decode", "", "descr=<f4 shape=(46341,46341) data=18532", FORMAT, {"8589953124", "[46341,46341]"}},
        {"npy_decode", "", "descr=|u1 shape=(46341,46341) data=4761", FORMAT, {"2147488281", "[46341,46341]"}},
        {"npy_decode", "", "descr=<f4 shape=(4294967296,4294967296)", OVERFLOW, {"[4294967296,4294967296]"}},
        {"npy_decode", "", "descr=|u1 shape=(65536,65536,65536,65536)", OVERFLOW, {"[65536,65536,65536,65536]"}},
        {"npy_decode", "", "descr=|u1 shape=(2147418113,1718039348,5) data=4", OVERFLOW, {"[2147418113,1718039348,5]"}},
        {"npy_decode", "", "descr=<f8 shape=(2305843009213693952,) data=0", OVERFLOW, {"[2305843009213693952]"}},
        {"npy_read", "", "descr=<f4 shape=(4294967296,4294967296)", OVERFLOW, {"errors.npy", "[4294967296,4294967296]"}},
        {"npy_read", "", "descr=<f4 shape=(46341,46341) data=18532", FORMAT, {"errors.npy", "8589953124"}},
        /* IDX: big-endian uint32 dims */
        {"idx_decode", "[2,3]", "data=6", OK, {0}},
        {"idx_decode", "[0,28,28]", "", OK, {0}},
        {"idx_decode", "[2]", "ndim=0", FORMAT, {"ndim=0"}},
        {"idx_decode", "[2]", "ndim=5", FORMAT, {"ndim=5"}},
        {"idx_decode", "[46341,46341]", "data=4761", FORMAT, {"2147488281"}},
        {"idx_decode", "[46341,46341]", "type=13 data=18532", FORMAT, {"8589953124"}},
        {"idx_decode", "[65536,65536]", "", FORMAT, {"4294967296"}},
        {"idx_decode", "[2^32-1,2^32-1,2^32-1]", "", FORMAT, {"[4294967295,4294967295,4294967295]", "overflow"}},
        {"idx_decode", "[65536,65536,65536,65536]", "", FORMAT, {"[65536,65536,65536,65536]", "overflow"}},
        {"idx_decode", "[3340214413,2761311370,2]", "data=4", FORMAT, {"[3340214413,2761311370,2]", "overflow"}},
        {"idx_decode", "[3340214413,2761311370,2]", "data=4 gz=1", FORMAT, {"[3340214413,2761311370,2]", "overflow"}},
        {"idx_decode", "[46341,46341]", "type=13 data=18532 gz=1", FORMAT, {"8589953124"}},
        {"idx_read", "[65536,65536,65536,65536]", "gz=1", FORMAT, {"errors.idx", "[65536,65536,65536,65536]"}},
        /* safetensors */
        {"st_open", "", "shape=[2,3] offsets=[0,24] data=24", OK, {0}},
        {"st_open", "", "shape=[2,-3] offsets=[0,0]", FORMAT, {"negative"}},
        {"st_open", "", "shape=[1,1,1,1,1,1] offsets=[0,4] data=4", UNSUPPORTED, {"'t'"}},
        {"st_open", "", "shape=[46341,46341] offsets=[0,18532] data=18532", FORMAT, {"'t'", "[46341,46341]", "8589953124"}},
        {"st_open", "", "shape=[4294967296,4294967296] offsets=[0,0]", FORMAT, {"'t'", "[4294967296,4294967296]", "overflow"}},
        {"st_open", "", "dtype=U8 shape=[67280421310721,274177] offsets=[0,1] data=1", FORMAT, {"'t'", "[67280421310721,274177]", "overflow"}},
        {"st_open", "", "dtype=U8 shape=[2147418113,1718039348,5] offsets=[0,4] data=4", FORMAT, {"[2147418113,1718039348,5]", "overflow"}},
        {"st_writer_add", "[2,3]", "", OK, {0}},
        {"st_writer_add", "[2,-3]", "", INVALID, {"'t'", "-3"}},
        {"st_writer_add", "[1,1,1,1,1,1]", "", INVALID, {"'t'", "ndim=6"}},
        {"st_writer_add", "[2^32,2^32]", "", OVERFLOW, {"'t'", "[4294967296,4294967296]"}},
        {"st_writer_add", "[2147418113,1718039348,5]", "", OVERFLOW, {"'t'", "[2147418113,1718039348,5]"}},
        /* datasets built from arrays: [n,h,w,c] */
        {"dataset_from_arrays", "[2,3,3,1]", "", OK, {0}},
        {"dataset_from_arrays", "[0,3,3,1]", "", OK, {0}},
        {"dataset_from_arrays", "[-1,3,3,1]", "", INVALID, {"dataset", "[-1,3,3,1]"}},
        {"dataset_from_arrays", "[2,0,3,1]", "", INVALID, {"[2,0,3,1]"}},
        {"dataset_from_arrays", "[2,3,3,1]", "classes=0", INVALID, {"num_classes=0"}},
        {"dataset_from_arrays", "[2,3,3,1]", "label=10", INVALID, {"label 10", "example 0"}},
        {"dataset_from_arrays", "[1,2^32,2^32,1]", "", OVERFLOW, {"dataset", "[1,4294967296,4294967296,1]"}},
        {"dataset_from_arrays", "[1,2147418113,1718039348,5]", "", OVERFLOW, {"dataset", "[1,2147418113,1718039348,5]"}},
    };
    RUN_TABLE(rows);
}

/* ---- sizes past 32 bits are computed exactly --------------------------- */

static void sizes_past_int32_are_exact(void)
{
    const int64_t big = 46341, big2 = big * big; /* 2,147,488,281 > INT32_MAX */
    int64_t xs[4] = {1, big, big, 1}, ws[4] = {3, 3, 1, 2};
    cn_conv2d_params p = cn_conv2d_params_default();
    p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 1;
    cn_conv2d_desc d;
    CHECK_OK(cn_conv2d_setup(&d, &p, xs, ws));
    CHECK(d.OH == big && d.OW == big, "OH=%lld OW=%lld", (long long)d.OH, (long long)d.OW);
    CHECK(cn_im2col_size(&d) == (size_t)big2 * 9, "im2col size %zu", cn_im2col_size(&d));
    /* The workspace holds at least one image's im2col, in bytes. */
    CHECK(cn_conv2d_workspace_size(&d) >= (size_t)big2 * 9 * sizeof(float), "workspace %zu bytes",
          cn_conv2d_workspace_size(&d));

    int64_t xs1[3] = {big, big, 1}, ws1[3] = {1, 1, 1};
    cn_conv2d_params p1 = cn_conv2d_params_default();
    CHECK_OK(cn_conv1d_setup(&d, &p1, xs1, ws1));
    CHECK(cn_im2col_size(&d) == (size_t)big2, "conv1d im2col size %zu", cn_im2col_size(&d));

    cn_conv_transpose2d_params tp = {cn_conv2d_params_default(), 0, 0};
    int64_t wt[4] = {1, 1, 1, 1};
    CHECK_OK(cn_conv_transpose2d_setup(&d, &tp, xs, wt));
    CHECK(d.IH == big && d.IW == big && d.OH == big, "transposed sizes %lld %lld %lld",
          (long long)d.IH, (long long)d.IW, (long long)d.OH);

    cn_pool2d_params pp = cn_pool2d_params_default(1, 1);
    cn_pool2d_desc pd;
    CHECK_OK(cn_pool2d_setup(&pd, &pp, CN_POOL_MAX, xs));
    CHECK(pd.OH == big && pd.OW == big, "pool OH=%lld OW=%lld", (long long)pd.OH, (long long)pd.OW);

    size_t n;
    CHECK_OK(cn_shape_numel(4, xs, &n));
    CHECK(n == (size_t)big2, "numel %zu", n);

    cn_graph *g;
    CHECK_OK(cn_graph_new(&g, NULL));
    int64_t vs[2] = {big, big}, flat = -1;
    cn_var *v = cn_var_wrap(g, 2, vs, buf_a, NULL, 0);
    cn_var *f = v ? cn_reshape(g, v, 1, &flat) : NULL;
    int ok = v && f && v->size == (size_t)big2 && f->shape[0] == big2;
    cn_graph_free(g);
    CHECK(ok, "46341 x 46341 variable or its reshape miscounted");
}

int main(void)
{
#ifndef UNDER_ASAN
    /* 4 GiB of address space: an allocation sized from a huge or wrapped
     * count fails (and the row with it) instead of succeeding lazily. */
    struct rlimit lim = {(rlim_t)4 << 30, (rlim_t)4 << 30};
    struct rlimit cur;
    if (getrlimit(RLIMIT_AS, &cur) == 0 && (cur.rlim_cur == RLIM_INFINITY || cur.rlim_cur > lim.rlim_cur))
        setrlimit(RLIMIT_AS, &lim);
#endif
    TL_RUN(conv2d_setup_rejects_every_invalid_class);
    TL_RUN(conv1d_setup_rejects_every_invalid_class);
    TL_RUN(conv_transpose2d_setup_rejects_every_invalid_class);
    TL_RUN(pool2d_setup_rejects_every_invalid_class);
    TL_RUN(raw_buffer_ops_reject_every_invalid_class);
    TL_RUN(tensors_and_sizes_reject_every_invalid_class);
    TL_RUN(graph_builders_reject_every_invalid_class);
    TL_RUN(model_builders_reject_every_invalid_class);
    TL_RUN(filters_and_images_reject_every_invalid_class);
    TL_RUN(loaders_reject_every_invalid_class);
    TL_RUN(sizes_past_int32_are_exact);
    return tl_summary();
}
