/* The convnet CLI as a black box: conv2d and pool2d outputs and gradients
 * against double-precision references written here, and the error contract
 * (exactly one stderr line, exit 1 for failures and 2 for usage mistakes). */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"

/* ---- running the CLI: tl_cli from testlib ---------------------------- */

typedef tl_cli_result cli_result;
#define run tl_cli
#define run_argv tl_cli_argv

/* The path of a file in the test's scratch directory; one stable buffer per
 * name, so paths stay valid for the whole run. */
static const char *tmp(const char *name)
{
    static char names[64][32], paths[64][512];
    static int used;
    for (int i = 0; i < used; i++)
        if (!strcmp(names[i], name)) return paths[i];
    if (used == 64 || strlen(name) >= sizeof names[0]) abort();  /* a bug in this file */
    snprintf(names[used], sizeof names[used], "%s", name);
    return tl_path(paths[used++], sizeof paths[0], name);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static const char *save(const char *name, int ndim, const int64_t *shape, const float *data)
{
    const char *path = tmp(name);
    cn_tensor *t;
    if (cn_tensor_new(&t, ndim, shape) != CN_OK) return NULL;
    if (t->size) memcpy(t->data, data, t->size * sizeof(float));
    cn_status s = cn_npy_write(path, t);
    cn_tensor_free(t);
    return s == CN_OK ? path : NULL;
}

/* A tensor of uniform values in [-1, 1], saved; *out keeps a copy. */
static const char *save_random(const char *name, int ndim, const int64_t *shape, float **out)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    float *a = malloc((n ? n : 1) * sizeof *a);
    tl_fill(a, n, -1, 1);
    const char *p = save(name, ndim, shape, a);
    *out = a;
    return p;
}

/* Loads `path`, requiring the given shape; NULL (and a message) otherwise. */
static cn_tensor *load(const char *path, int ndim, const int64_t *shape, char *why, size_t len)
{
    cn_tensor *t;
    if (cn_npy_read(path, &t) != CN_OK) {
        snprintf(why, len, "cannot read %s: %s", path, cn_last_error());
        return NULL;
    }
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char a[96], b[96];
        snprintf(why, len, "%s has shape %s, expected %s", path,
                 cn_shape_str(t->ndim, t->shape, a, sizeof a), cn_shape_str(ndim, shape, b, sizeof b));
        cn_tensor_free(t);
        return NULL;
    }
    return t;
}

/* ---- conv2d reference ---------------------------------------------------- */

typedef struct conv_cfg {
    int N, H, W, C, OC, KH, KW, G;
    int sh, sw, dh, dw;
    int pt, pb, pl, pr;
    int same;             /* --padding same: pt..pr are computed */
    cn_pad_mode mode;
    int bias;
} conv_cfg;

static void conv_cfg_str(const conv_cfg *c, char *buf, size_t len)
{
    snprintf(buf, len,
             "N=%d H=%d W=%d C=%d OC=%d K=%dx%d G=%d stride=%d,%d dil=%d,%d pad=%d,%d,%d,%d "
             "same=%d mode=%s bias=%d",
             c->N, c->H, c->W, c->C, c->OC, c->KH, c->KW, c->G, c->sh, c->sw, c->dh, c->dw, c->pt,
             c->pb, c->pl, c->pr, c->same, cn_pad_mode_name(c->mode), c->bias);
}

/* TensorFlow's "same": OH = ceil(H/S), the odd padding pixel at the end. */
static void same_pads(int H, int K, int S, int D, int *lo, int *hi)
{
    int OH = (H + S - 1) / S;
    int total = (OH - 1) * S + D * (K - 1) + 1 - H;
    if (total < 0) total = 0;
    *lo = total / 2;
    *hi = total - *lo;
}

/* Source row of padded row i, -1 for a constant (zeros or mean) pixel. */
static int pad_src(int i, int n, cn_pad_mode m)
{
    if (i >= 0 && i < n) return i;
    switch (m) {
    case CN_PAD_CIRCULAR: return ((i % n) + n) % n;
    case CN_PAD_REFLECT: return i < 0 ? -i : 2 * (n - 1) - i;
    case CN_PAD_REPLICATE: return i < 0 ? 0 : n - 1;
    case CN_PAD_SYMMETRIC: return i < 0 ? -i - 1 : 2 * n - 1 - i;
    default: return -1;
    }
}

static int conv_out(int H, int pad, int D, int K, int S) { return (H + pad - D * (K - 1) - 1) / S + 1; }

/* y = conv(pad(x), w) + b and, given gy, the exact adjoints gx, gw, gb, in
 * plain loops over the definition. */
static void conv_ref(const conv_cfg *c, const float *x, const float *w, const float *b,
                     const float *gy, double *y, double *gx, double *gw, double *gb)
{
    int OH = conv_out(c->H, c->pt + c->pb, c->dh, c->KH, c->sh);
    int OW = conv_out(c->W, c->pl + c->pr, c->dw, c->KW, c->sw);
    int ICg = c->C / c->G, OCg = c->OC / c->G;
    double *mean = calloc((size_t)c->N * c->C, sizeof *mean);
    double *gmean = calloc((size_t)c->N * c->C, sizeof *gmean);
    for (int n = 0; n < c->N; n++)
        for (int p = 0; p < c->H * c->W; p++)
            for (int ch = 0; ch < c->C; ch++)
                mean[n * c->C + ch] += x[((size_t)n * c->H * c->W + p) * c->C + ch] / (c->H * c->W);
    memset(gx, 0, sizeof *gx * c->N * c->H * c->W * c->C);
    memset(gw, 0, sizeof *gw * c->KH * c->KW * ICg * c->OC);
    memset(gb, 0, sizeof *gb * c->OC);
    for (int n = 0; n < c->N; n++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int oc = 0; oc < c->OC; oc++) {
                    size_t yi = (((size_t)n * OH + oh) * OW + ow) * c->OC + oc;
                    int g = oc / OCg;
                    double acc = b ? b[oc] : 0, dy = gy[yi];
                    gb[oc] += dy;
                    for (int kh = 0; kh < c->KH; kh++)
                        for (int kw = 0; kw < c->KW; kw++) {
                            int ih = oh * c->sh - c->pt + kh * c->dh;
                            int iw = ow * c->sw - c->pl + kw * c->dw;
                            int sh = pad_src(ih, c->H, c->mode), sw = pad_src(iw, c->W, c->mode);
                            for (int j = 0; j < ICg; j++) {
                                int ic = g * ICg + j;
                                size_t wi = (((size_t)kh * c->KW + kw) * ICg + j) * c->OC + oc;
                                double v = 0;
                                if (sh >= 0 && sw >= 0) {
                                    size_t xi = (((size_t)n * c->H + sh) * c->W + sw) * c->C + ic;
                                    v = x[xi];
                                    gx[xi] += dy * w[wi];
                                } else if (c->mode == CN_PAD_MEAN) {
                                    v = mean[n * c->C + ic];
                                    gmean[n * c->C + ic] += dy * w[wi];
                                }
                                acc += v * w[wi];
                                gw[wi] += v * dy;
                            }
                        }
                    y[yi] = acc;
                }
    /* Each mean-padded pixel depends on every pixel of its channel. */
    for (int n = 0; n < c->N; n++)
        for (int p = 0; p < c->H * c->W; p++)
            for (int ch = 0; ch < c->C; ch++)
                gx[((size_t)n * c->H * c->W + p) * c->C + ch] +=
                    gmean[n * c->C + ch] / (c->H * c->W);
    free(mean);
    free(gmean);
}

/* Runs one configuration through the CLI (forward and every gradient) and
 * compares with conv_ref. Returns 0, or 1 with a message in why. */
static int conv_case(conv_cfg c, const char *pad_arg, char *why, size_t len)
{
    char cfg[320];
    if (c.same) {
        same_pads(c.H, c.KH, c.sh, c.dh, &c.pt, &c.pb);
        same_pads(c.W, c.KW, c.sw, c.dw, &c.pl, &c.pr);
    }
    conv_cfg_str(&c, cfg, sizeof cfg);
    int OH = conv_out(c.H, c.pt + c.pb, c.dh, c.KH, c.sh);
    int OW = conv_out(c.W, c.pl + c.pr, c.dw, c.KW, c.sw);
    int64_t xs[4] = {c.N, c.H, c.W, c.C}, wsh[4] = {c.KH, c.KW, c.C / c.G, c.OC};
    int64_t bs[1] = {c.OC}, ys[4] = {c.N, OH, OW, c.OC};
    float *x, *w, *b = NULL, *gy;
    const char *xp = save_random("x.npy", 4, xs, &x);
    const char *wp = save_random("w.npy", 4, wsh, &w);
    const char *bp = c.bias ? save_random("b.npy", 1, bs, &b) : NULL;
    const char *gyp = save_random("gy.npy", 4, ys, &gy);
    size_t nx = (size_t)c.N * c.H * c.W * c.C, nw = (size_t)c.KH * c.KW * (c.C / c.G) * c.OC;
    size_t ny = (size_t)c.N * OH * OW * c.OC;
    double *y = malloc(ny * sizeof *y), *gx = malloc(nx * sizeof *gx);
    double *gw = malloc(nw * sizeof *gw), *gb = malloc((size_t)c.OC * sizeof *gb);
    conv_ref(&c, x, w, b, gy, y, gx, gw, gb);

    char stride[32], dil[32], groups[16], pads[64];
    snprintf(stride, sizeof stride, "%d,%d", c.sh, c.sw);
    snprintf(dil, sizeof dil, "--dilation=%d,%d", c.dh, c.dw);
    snprintf(groups, sizeof groups, "%d", c.G);
    if (pad_arg)
        snprintf(pads, sizeof pads, "%s", pad_arg);
    else
        snprintf(pads, sizeof pads, "%d,%d,%d,%d", c.pt, c.pb, c.pl, c.pr);
    const char *args[40] = {"conv2d", "--input", xp, "--weight", wp, "--stride", stride, dil,
                            "--groups", groups, "--padding", pads, "--padding-mode",
                            cn_pad_mode_name(c.mode), "--output", tmp("y.npy"), "--grad-output",
                            gyp, "--grad-input", tmp("gx.npy"), "--grad-weight", tmp("gw.npy"),
                            "--grad-bias", tmp("gb.npy")};
    int na = 24;
    if (bp) {
        args[na++] = "--bias";
        args[na++] = bp;
    }
    args[na] = NULL;
    int bad = 0;
    const cli_result *r = run_argv(args);
    if (r->status != 0) {
        snprintf(why, len, "%s: exit %d: %.300s", cfg, r->status, r->err);
        bad = 1;
    }
    const struct {
        const char *name;
        int ndim;
        const int64_t *shape;
        const double *ref;
        size_t n;
    } outs[] = {
        {"y.npy", 4, ys, y, ny},
        {"gx.npy", 4, xs, gx, nx},
        {"gw.npy", 4, wsh, gw, nw},
        {"gb.npy", 1, bs, gb, (size_t)c.OC},
    };
    for (int i = 0; i < 4 && !bad; i++) {
        char msg[256];
        cn_tensor *t = load(tmp(outs[i].name), outs[i].ndim, outs[i].shape, msg, sizeof msg);
        if (!t) {
            snprintf(why, len, "%s: %s", cfg, msg);
            bad = 1;
            break;
        }
        double err;
        long at = tl_mismatch(t->data, outs[i].ref, outs[i].n, 1e-4, 1e-4, &err);
        if (at >= 0) {
            snprintf(why, len, "%s: %s[%ld] = %g, reference %g (max err %g)", cfg, outs[i].name,
                     at, t->data[at], outs[i].ref[at], err);
            bad = 1;
        }
        cn_tensor_free(t);
    }
    free(x);
    free(w);
    free(b);
    free(gy);
    free(y);
    free(gx);
    free(gw);
    free(gb);
    return bad;
}

/* ---- conv2d tests -------------------------------------------------------- */

static void conv2d_output_and_all_gradients_match_reference_for_random_configs(void)
{
    const cn_pad_mode modes[] = {CN_PAD_ZEROS,    CN_PAD_REPLICATE, CN_PAD_REFLECT,
                                 CN_PAD_CIRCULAR, CN_PAD_SYMMETRIC, CN_PAD_MEAN};
    for (int t = 0; t < 24; t++) {
        conv_cfg c = {0};
        c.N = tl_randint(1, 2);
        c.G = (int[]){1, 1, 2, 3}[tl_randint(0, 3)];
        c.C = c.G * tl_randint(1, 3);
        c.OC = c.G * tl_randint(1, 3);
        if (t % 4 == 3) {  /* depthwise with a channel multiplier of 2 */
            c.C = c.G = 4;
            c.OC = 8;
        }
        c.KH = tl_randint(1, 3);
        c.KW = tl_randint(1, 3);
        c.sh = tl_randint(1, 3);
        c.sw = tl_randint(1, 2);
        c.dh = tl_randint(1, 2);
        c.dw = tl_randint(1, 3);
        c.H = tl_randint(4, 8);
        c.W = tl_randint(4, 8);
        c.mode = modes[t % 6];
        c.bias = t % 2;
        c.same = t % 5 == 4;
        int maxpad = c.mode == CN_PAD_REFLECT ? 3 : 4;
        c.pt = tl_randint(0, maxpad);
        c.pb = tl_randint(0, maxpad);
        c.pl = tl_randint(0, maxpad);
        c.pr = tl_randint(0, maxpad);
        if (c.H + c.pt + c.pb < c.dh * (c.KH - 1) + 1 || c.W + c.pl + c.pr < c.dw * (c.KW - 1) + 1)
            c.pt = c.pb = c.pl = c.pr = 2;
        char why[1024];
        CHECK(!conv_case(c, c.same ? "same" : NULL, why, sizeof why), "case %d: %s", t, why);
    }
}

static void conv2d_one_or_two_padding_numbers_mean_both_or_height_width(void)
{
    conv_cfg c = {.N = 1, .H = 5, .W = 6, .C = 2, .OC = 3, .KH = 3, .KW = 3, .G = 1, .sh = 1,
                  .sw = 1, .dh = 1, .dw = 1, .pt = 2, .pb = 2, .pl = 2, .pr = 2,
                  .mode = CN_PAD_REPLICATE, .bias = 1};
    char why[1024];
    CHECK(!conv_case(c, "2", why, sizeof why), "--padding 2: %s", why);
    c.pt = c.pb = 1;
    c.pl = c.pr = 3;
    CHECK(!conv_case(c, "1,3", why, sizeof why), "--padding 1,3: %s", why);
}

static void conv2d_repeated_option_takes_the_last_value(void)
{
    int64_t xs[4] = {1, 6, 6, 1}, wsh[4] = {2, 2, 1, 1};
    float *x, *w;
    const char *xp = save_random("x.npy", 4, xs, &x), *wp = save_random("w.npy", 4, wsh, &w);
    free(x);
    free(w);
    const cli_result *r = run("conv2d", "--input", xp, "--weight", wp, "--stride", "3",
                              "--stride=2", "--padding", "same", "--padding=0", "--output",
                              tmp("y.npy"), NULL);
    CHECK(r->status == 0, "exit %d: %s", r->status, r->err);
    char why[256];
    int64_t ys[4] = {1, 3, 3, 1};
    cn_tensor *y = load(tmp("y.npy"), 4, ys, why, sizeof why);
    CHECK(y, "stride 2 and padding 0 should win: %s", why);
    cn_tensor_free(y);
}

static void conv2d_same_padding_gives_ceil_of_size_over_stride_for_any_stride(void)
{
    for (int s = 1; s <= 3; s++) {
        conv_cfg c = {.N = 1, .H = 7, .W = 8, .C = 1, .OC = 2, .KH = 4, .KW = 3, .G = 1, .sh = s,
                      .sw = s, .dh = 1, .dw = 2, .same = 1, .mode = CN_PAD_ZEROS};
        char why[1024];
        CHECK(!conv_case(c, "same", why, sizeof why), "stride %d: %s", s, why);
        int64_t ys[4] = {1, (7 + s - 1) / s, (8 + s - 1) / s, 2};
        cn_tensor *y = load(tmp("y.npy"), 4, ys, why, sizeof why);
        CHECK(y, "%s", why);
        cn_tensor_free(y);
    }
}

/* ---- pool2d reference ---------------------------------------------------- */

typedef struct pool_cfg {
    int max;              /* 1 max, 0 avg */
    int N, H, W, C, KH, KW, sh, sw, ph, pw, dh, dw, ceil, include_pad;
} pool_cfg;

/* PyTorch's output size: in ceil mode the last window must start inside the
 * input or the top/left padding. */
static int pool_out(int H, int K, int S, int P, int D, int ceil)
{
    int span = H + 2 * P - D * (K - 1) - 1;
    int o = (ceil ? (span + S - 1) / S : span / S) + 1;
    if (ceil && (o - 1) * S >= H + P) o--;
    return o;
}

static void pool_ref(const pool_cfg *c, const float *x, const float *gy, double *y, double *gx)
{
    int OH = pool_out(c->H, c->KH, c->sh, c->ph, c->dh, c->ceil);
    int OW = pool_out(c->W, c->KW, c->sw, c->pw, c->dw, c->ceil);
    memset(gx, 0, sizeof *gx * c->N * c->H * c->W * c->C);
    for (int n = 0; n < c->N; n++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int ch = 0; ch < c->C; ch++) {
                    size_t yi = (((size_t)n * OH + oh) * OW + ow) * c->C + ch;
#define XI(h, w) ((((size_t)n * c->H + (h)) * c->W + (w)) * c->C + ch)
                    if (c->max) {
                        double m = -INFINITY;
                        long arg = -1;
                        for (int kh = 0; kh < c->KH; kh++)
                            for (int kw = 0; kw < c->KW; kw++) {
                                int ih = oh * c->sh - c->ph + kh * c->dh;
                                int iw = ow * c->sw - c->pw + kw * c->dw;
                                if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W) continue;
                                if (x[XI(ih, iw)] > m) {
                                    m = x[XI(ih, iw)];
                                    arg = (long)XI(ih, iw);
                                }
                            }
                        y[yi] = m;
                        if (arg >= 0) gx[arg] += gy[yi];
                    } else {
                        int h0 = oh * c->sh - c->ph, w0 = ow * c->sw - c->pw;
                        int h1 = h0 + c->KH < c->H + c->ph ? h0 + c->KH : c->H + c->ph;
                        int w1 = w0 + c->KW < c->W + c->pw ? w0 + c->KW : c->W + c->pw;
                        int area = (h1 - h0) * (w1 - w0);
                        h0 = h0 < 0 ? 0 : h0;
                        w0 = w0 < 0 ? 0 : w0;
                        h1 = h1 > c->H ? c->H : h1;
                        w1 = w1 > c->W ? c->W : w1;
                        if (!c->include_pad) area = (h1 - h0) * (w1 - w0);
                        double s = 0;
                        for (int ih = h0; ih < h1; ih++)
                            for (int iw = w0; iw < w1; iw++) {
                                s += x[XI(ih, iw)];
                                gx[XI(ih, iw)] += gy[yi] / area;
                            }
                        y[yi] = s / area;
                    }
#undef XI
                }
}

/* Runs a pooling configuration on x (random if NULL) through the CLI with
 * the gradient; compares with pool_ref. Returns 0 or 1 with why. */
static int pool_case(const pool_cfg *c, char *why, size_t len)
{
    char cfg[256];
    snprintf(cfg, sizeof cfg,
             "%s N=%d H=%d W=%d C=%d K=%d,%d S=%d,%d P=%d,%d D=%d,%d ceil=%d include_pad=%d",
             c->max ? "max" : "avg", c->N, c->H, c->W, c->C, c->KH, c->KW, c->sh, c->sw, c->ph,
             c->pw, c->dh, c->dw, c->ceil, c->include_pad);
    int OH = pool_out(c->H, c->KH, c->sh, c->ph, c->dh, c->ceil);
    int OW = pool_out(c->W, c->KW, c->sw, c->pw, c->dw, c->ceil);
    int64_t xs[4] = {c->N, c->H, c->W, c->C}, ys[4] = {c->N, OH, OW, c->C};
    float *x, *gy;
    const char *xp = save_random("px.npy", 4, xs, &x), *gyp = save_random("pgy.npy", 4, ys, &gy);
    size_t nx = (size_t)c->N * c->H * c->W * c->C, ny = (size_t)c->N * OH * OW * c->C;
    double *y = malloc(ny * sizeof *y), *gx = malloc(nx * sizeof *gx);
    pool_ref(c, x, gy, y, gx);
    char k[32], s[32], p[32], d[32];
    snprintf(k, sizeof k, "%d,%d", c->KH, c->KW);
    snprintf(s, sizeof s, "--stride=%d,%d", c->sh, c->sw);
    snprintf(p, sizeof p, "%d,%d", c->ph, c->pw);
    snprintf(d, sizeof d, "%d,%d", c->dh, c->dw);
    const char *args[32] = {"pool2d", "--type", c->max ? "max" : "avg", "--input", xp, "--kernel",
                            k, s, "--padding", p, "--output", tmp("py.npy"), "--grad-output",
                            gyp, "--grad-input", tmp("pgx.npy")};
    int na = 16;
    if (c->max) {
        args[na++] = "--dilation";
        args[na++] = d;
    }
    if (c->ceil) args[na++] = "--ceil-mode";
    if (!c->include_pad) args[na++] = "--no-count-include-pad";
    args[na] = NULL;
    int bad = 0;
    const cli_result *r = run_argv(args);
    if (r->status != 0) {
        snprintf(why, len, "%s: exit %d: %.300s", cfg, r->status, r->err);
        bad = 1;
    }
    for (int i = 0; i < 2 && !bad; i++) {
        char msg[256];
        cn_tensor *t = load(tmp(i ? "pgx.npy" : "py.npy"), 4, i ? xs : ys, msg, sizeof msg);
        if (!t) {
            snprintf(why, len, "%s: %s", cfg, msg);
            bad = 1;
            break;
        }
        double err;
        long at = tl_mismatch(t->data, i ? gx : y, i ? nx : ny, 1e-5, 1e-5, &err);
        if (at >= 0) {
            snprintf(why, len, "%s: %s[%ld] = %g, reference %g", cfg, i ? "gx" : "y", at,
                     t->data[at], (i ? gx : y)[at]);
            bad = 1;
        }
        cn_tensor_free(t);
    }
    free(x);
    free(gy);
    free(y);
    free(gx);
    return bad;
}

/* ---- pool2d tests -------------------------------------------------------- */

/* x [1,4,4,1] = 0..15 row by row; pooled with --kernel 2 (stride 2). */
static void pool2d_on_a_ramp_gives_hand_computed_values_and_gradients(void)
{
    float ramp[16], gy[4] = {1, 2, 3, 4};
    for (int i = 0; i < 16; i++) ramp[i] = (float)i;
    int64_t xs[4] = {1, 4, 4, 1}, ys[4] = {1, 2, 2, 1};
    const char *xp = save("ramp.npy", 4, xs, ramp), *gyp = save("rgy.npy", 4, ys, gy);
    const float want_y[2][4] = {{5, 7, 13, 15}, {2.5f, 4.5f, 10.5f, 12.5f}};
    for (int t = 0; t < 2; t++) {
        const cli_result *r = run("pool2d", "--type", t ? "avg" : "max", "--input", xp,
                                  "--kernel", "2", "--output", tmp("y.npy"), "--grad-output",
                                  gyp, "--grad-input", tmp("gx.npy"), NULL);
        CHECK(r->status == 0, "exit %d: %s", r->status, r->err);
        char why[256];
        cn_tensor *y = load(tmp("y.npy"), 4, ys, why, sizeof why);
        CHECK(y, "%s", why);
        for (int i = 0; i < 4; i++)
            CHECK(y->data[i] == want_y[t][i], "%s y[%d] = %g, want %g", t ? "avg" : "max", i,
                  y->data[i], want_y[t][i]);
        cn_tensor_free(y);
        cn_tensor *gx = load(tmp("gx.npy"), 4, xs, why, sizeof why);
        CHECK(gx, "%s", why);
        for (int i = 0; i < 16; i++) {
            int h = i / 4, w = i % 4, o = (h / 2) * 2 + w / 2;
            /* max: the window's gradient lands on its bottom-right pixel;
             * avg: a quarter of it on each of the four. */
            float want = t ? gy[o] / 4 : (h % 2 && w % 2 ? gy[o] : 0);
            CHECK(gx->data[i] == want, "%s gx[%d] = %g, want %g", t ? "avg" : "max", i,
                  gx->data[i], want);
        }
        cn_tensor_free(gx);
    }
}

/* Ones [1,3,3,1], 3x3 average, stride 1, padding 1: corners see 4 of 9. */
static void pool2d_avg_divides_by_the_padded_window_unless_told_not_to(void)
{
    float ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    int64_t xs[4] = {1, 3, 3, 1};
    const char *xp = save("ones.npy", 4, xs, ones);
    const float with_pad[9] = {4 / 9.f, 6 / 9.f, 4 / 9.f, 6 / 9.f, 1, 6 / 9.f, 4 / 9.f, 6 / 9.f, 4 / 9.f};
    for (int t = 0; t < 2; t++) {
        const cli_result *r = run("pool2d", "--type=avg", "--input", xp, "--kernel=3",
                                  "--stride", "1", "--padding", "1", "--output", tmp("y.npy"),
                                  t ? "--no-count-include-pad" : NULL, NULL);
        CHECK(r->status == 0, "exit %d: %s", r->status, r->err);
        char why[256];
        cn_tensor *y = load(tmp("y.npy"), 4, xs, why, sizeof why);
        CHECK(y, "%s", why);
        for (int i = 0; i < 9; i++) {
            float want = t ? 1.0f : with_pad[i];
            CHECK(fabsf(y->data[i] - want) < 1e-6f, "include_pad=%d y[%d] = %g, want %g", !t, i,
                  y->data[i], want);
        }
        cn_tensor_free(y);
    }
}

/* A 5x5 ramp (0..24), kernel 2, stride 2: ceil mode adds a third row and
 * column of windows that hold one pixel column/row. */
static void pool2d_ceil_mode_keeps_the_partial_last_window(void)
{
    float ramp[25];
    for (int i = 0; i < 25; i++) ramp[i] = (float)i;
    int64_t xs[4] = {1, 5, 5, 1}, floor_s[4] = {1, 2, 2, 1}, ceil_s[4] = {1, 3, 3, 1};
    const char *xp = save("ramp5.npy", 4, xs, ramp);
    char why[256];
    const cli_result *r = run("pool2d", "--type", "max", "--input", xp, "--kernel", "2",
                              "--output", tmp("y.npy"), NULL);
    CHECK(r->status == 0, "exit %d: %s", r->status, r->err);
    cn_tensor *y = load(tmp("y.npy"), 4, floor_s, why, sizeof why);
    CHECK(y, "floor mode: %s", why);
    cn_tensor_free(y);
    const float want[2][9] = {{6, 8, 9, 16, 18, 19, 21, 23, 24},
                              {3, 5, 6.5f, 13, 15, 16.5f, 20.5f, 22.5f, 24}};
    for (int t = 0; t < 2; t++) {
        r = run("pool2d", "--type", t ? "avg" : "max", "--input", xp, "--kernel", "2",
                "--ceil-mode", "--output", tmp("y.npy"), NULL);
        CHECK(r->status == 0, "exit %d: %s", r->status, r->err);
        y = load(tmp("y.npy"), 4, ceil_s, why, sizeof why);
        CHECK(y, "ceil mode: %s", why);
        for (int i = 0; i < 9; i++)
            CHECK(y->data[i] == want[t][i], "%s ceil y[%d] = %g, want %g", t ? "avg" : "max", i,
                  y->data[i], want[t][i]);
        cn_tensor_free(y);
    }
}

static void pool2d_output_and_gradient_match_reference_for_random_configs(void)
{
    for (int t = 0; t < 24; t++) {
        pool_cfg c = {0};
        c.max = t % 2 == 0;
        c.N = tl_randint(1, 2);
        c.C = tl_randint(1, 3);
        c.H = tl_randint(4, 9);
        c.W = tl_randint(4, 9);
        c.KH = tl_randint(1, 4);
        c.KW = tl_randint(1, 4);
        c.sh = tl_randint(1, 3);
        c.sw = tl_randint(1, 3);
        c.ph = tl_randint(0, c.KH / 2);
        c.pw = tl_randint(0, c.KW / 2);
        c.dh = c.max ? tl_randint(1, 2) : 1;
        c.dw = c.max ? tl_randint(1, 2) : 1;
        c.ceil = t % 4 >= 2;
        c.include_pad = t % 3 != 0;
        if (c.H + 2 * c.ph < c.dh * (c.KH - 1) + 1) c.dh = 1;
        if (c.W + 2 * c.pw < c.dw * (c.KW - 1) + 1) c.dw = 1;
        char why[1024];
        CHECK(!pool_case(&c, why, sizeof why), "case %d: %s", t, why);
    }
}

/* ---- the error contract -------------------------------------------------- */

/* A run that must fail: exit status `code`, exactly one stderr line that
 * contains `needle`, and no output file left behind. */
static int check_fails(const char *what, int code, const char *needle, const char *output,
                       const char *const *args)
{
    if (output) remove(output);
    const cli_result *r = run_argv(args);
    const char *why = NULL;
    if (r->crashed)
        why = "crashed";
    else if (r->status != code)
        why = "wrong exit status";
    else if (r->err_lines != 1 || r->err[strlen(r->err) - 1] != '\n')
        why = "stderr is not exactly one line";
    else if (!strstr(r->err, needle))
        why = "message does not name the problem";
    else if (output && exists(output))
        why = "an output was written";
    if (!why) return 0;
    tl_fail(__FILE__, __LINE__, "%s: %s (exit %d, want %d; want \"%s\"; stderr: %s)", what, why,
            r->status, code, needle, r->err);
    return 1;
}

#define FAILS(what, code, needle, ...)                                                    \
    do {                                                                                  \
        const char *a_[] = {__VA_ARGS__, NULL};                                           \
        if (check_fails(what, code, needle, tmp("bad_y.npy"), a_)) return;                \
    } while (0)

static void conv2d_bad_inputs_fail_with_one_line_naming_the_problem(void)
{
    int64_t xs[4] = {1, 5, 5, 6}, wsh[4] = {3, 3, 6, 4}, x2s[2] = {3, 4}, bs[1] = {3};
    int64_t ys[4] = {1, 3, 3, 4}, gys[4] = {1, 3, 2, 4}, w5s[4] = {7, 7, 6, 4};
    float *x, *w, *b, *gy, *w5, *x2, *gyb;
    const char *xp = save_random("ex.npy", 4, xs, &x), *wp = save_random("ew.npy", 4, wsh, &w);
    const char *bp = save_random("eb.npy", 1, bs, &b), *x2p = save_random("ex2.npy", 2, x2s, &x2);
    const char *gyp = save_random("egy.npy", 4, ys, &gy);
    const char *gybp = save_random("egyb.npy", 4, gys, &gyb);
    const char *w5p = save_random("ew5.npy", 4, w5s, &w5);
    free(x), free(w), free(b), free(gy), free(w5), free(x2), free(gyb);
    /* A truncated file: the header promises more data than follows. */
    char buf[4096];
    const char *trunc = tmp("trunc.npy"), *junk = tmp("junk.npy");
    FILE *f = fopen(xp, "rb");
    CHECK(f, "reopen %s", xp);
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    f = fopen(trunc, "wb");
    CHECK(f && fwrite(buf, 1, n - 40, f) == n - 40, "write %s", trunc);
    fclose(f);
    f = fopen(junk, "wb");
    CHECK(f && fputs("this is not a numpy file\n", f) >= 0, "write %s", junk);
    fclose(f);
    const char *y = tmp("bad_y.npy");
#define CONV "conv2d", "--weight", wp, "--output", y

    FAILS("missing input file", 1, "--input", CONV, "--input", tmp("no_such_file.npy"));
    FAILS("truncated input", 1, "--input", CONV, "--input", trunc);
    FAILS("corrupt input", 1, "--input", CONV, "--input", junk);
    FAILS("2-D input", 1, "--input must be 4-D [N,H,W,C_in], got [3,4]", CONV, "--input", x2p);
    FAILS("2-D weight", 1, "--weight must be 4-D", "conv2d", "--input", xp, "--weight", x2p,
          "--output", y);
    FAILS("C_in not divisible by groups", 1, "groups", CONV, "--input", xp, "--groups", "4");
    FAILS("kernel larger than the input", 1, "output size <= 0", "conv2d", "--input", xp, "--weight", w5p,
          "--output", y);
    FAILS("stride 0", 2, "--stride", CONV, "--input", xp, "--stride", "0");
    FAILS("dilation 0", 2, "--dilation", CONV, "--input", xp, "--dilation", "1,0");
    FAILS("groups 0", 2, "--groups", CONV, "--input", xp, "--groups", "0");
    FAILS("negative padding", 2, "--padding must be non-negative, got '-1'", CONV, "--input", xp,
          "--padding", "-1");
    FAILS("negative stride with =", 2, "--stride must be non-negative, got '1,-2'", CONV, "--input", xp, "--stride=1,-2");
    FAILS("three padding numbers", 2, "--padding", CONV, "--input", xp, "--padding", "1,2,3");
    FAILS("junk number", 2, "'2x'", CONV, "--input", xp, "--stride", "2x");
    FAILS("overflowing number", 2, "99999999999", CONV, "--input", xp, "--padding",
          "99999999999");
    FAILS("reflect padding as large as the input", 1, "reflect", CONV, "--input", xp,
          "--padding", "5", "--padding-mode", "reflect");
    FAILS("unknown padding mode", 2, "'wrap'", CONV, "--input", xp, "--padding-mode", "wrap");
    FAILS("unknown option", 2, "--frobnicate", CONV, "--input", xp, "--frobnicate", "1");
    FAILS("stray argument", 2, "stray", CONV, "--input", xp, "stray");
    FAILS("missing --input", 2, "--input", CONV);
    FAILS("missing --weight", 2, "--weight", "conv2d", "--input", xp, "--output", y);
    FAILS("missing --output", 2, "--output", "conv2d", "--input", xp, "--weight", wp);
    FAILS("missing value at the end", 2, "--stride", CONV, "--input", xp, "--stride");
    FAILS("option where a value belongs", 2, "--input", CONV, "--input", "--groups", "1");
    FAILS("empty value", 2, "--groups", CONV, "--input", xp, "--groups=");
    FAILS("bias of the wrong length", 1, "--bias", CONV, "--input", xp, "--bias", bp);
    FAILS("bias of the wrong rank", 1, "--bias", CONV, "--input", xp, "--bias", x2p);
    FAILS("gradient without --grad-output", 2, "--grad-output", CONV, "--input", xp,
          "--grad-input", tmp("gx.npy"));
    FAILS("--grad-output alone", 2, "--grad-output", CONV, "--input", xp, "--grad-output", gyp);
    FAILS("grad-output of the wrong shape", 1, "--grad-output must have the output's shape",
          CONV, "--input", xp, "--grad-output", gybp, "--grad-weight", tmp("gw.npy"));
    FAILS("missing grad-output file", 1, "--grad-output", CONV, "--input", xp, "--grad-output",
          tmp("no_such_gy.npy"), "--grad-bias", tmp("gb.npy"));
    FAILS("unwritable output", 1, "--output", "conv2d", "--input", xp, "--weight", wp,
          "--output", tmp("no_such_dir/y.npy"));
#undef CONV
    /* The same arguments with a good gy succeed, so the cases above failed
     * for the reason they name. */
    const cli_result *r = run("conv2d", "--input", xp, "--weight", wp, "--output", y,
                              "--grad-output", gyp, "--grad-weight", tmp("gw.npy"), NULL);
    CHECK(r->status == 0 && r->err[0] == '\0', "control run: exit %d: %s", r->status, r->err);
}

static void pool2d_bad_inputs_fail_with_one_line_naming_the_problem(void)
{
    int64_t xs[4] = {1, 4, 4, 2}, x3s[3] = {4, 4, 2}, gys[4] = {1, 2, 2, 1};
    float *x, *x3, *gy;
    const char *xp = save_random("px.npy", 4, xs, &x), *x3p = save_random("px3.npy", 3, x3s, &x3);
    const char *gyp = save_random("pgy.npy", 4, gys, &gy);
    free(x), free(x3), free(gy);
    const char *y = tmp("bad_y.npy");
#define POOL "pool2d", "--type", "max", "--output", y

    FAILS("missing input file", 1, "--input", POOL, "--kernel", "2", "--input",
          tmp("no_such_file.npy"));
    FAILS("3-D input", 1, "--input must be 4-D [N,H,W,C], got [4,4,2]", POOL, "--kernel", "2",
          "--input", x3p);
    FAILS("unknown type", 2, "--type", "pool2d", "--type", "min", "--input", xp, "--kernel", "2",
          "--output", y);
    FAILS("missing --type", 2, "--type", "pool2d", "--input", xp, "--kernel", "2", "--output", y);
    FAILS("missing --kernel", 2, "--kernel", POOL, "--input", xp);
    FAILS("kernel 0", 2, "--kernel", POOL, "--input", xp, "--kernel", "0");
    FAILS("stride 0", 2, "--stride", POOL, "--input", xp, "--kernel", "2", "--stride", "0");
    FAILS("dilation 0", 2, "--dilation", POOL, "--input", xp, "--kernel", "2", "--dilation", "0");
    FAILS("negative padding", 2, "'-1'", POOL, "--input", xp, "--kernel", "2", "--padding=-1");
    FAILS("padding over half the kernel", 1, "pool2d", POOL, "--input", xp, "--kernel", "2",
          "--padding", "2");
    FAILS("window larger than the input", 1, "pool2d", POOL, "--input", xp, "--kernel", "5");
    FAILS("dilated average", 2, "--dilation", "pool2d", "--type", "avg", "--input", xp,
          "--kernel", "2", "--dilation", "2", "--output", y);
    FAILS("flag with a value", 2, "--ceil-mode", POOL, "--input", xp, "--kernel", "2",
          "--ceil-mode=1");
    FAILS("unknown option", 2, "--count-include-pad", POOL, "--input", xp, "--kernel", "2",
          "--count-include-pad");
    FAILS("--grad-output without --grad-input", 2, "--grad-input", POOL, "--input", xp,
          "--kernel", "2", "--grad-output", gyp);
    FAILS("--grad-input without --grad-output", 2, "--grad-output", POOL, "--input", xp,
          "--kernel", "2", "--grad-input", tmp("gx.npy"));
    FAILS("grad-output of the wrong shape", 1, "[1,2,2,2]", POOL, "--input", xp, "--kernel", "2",
          "--grad-output", gyp, "--grad-input", tmp("gx.npy"));
#undef POOL
}

static void unknown_or_missing_command_fails_with_one_line(void)
{
    const char *unknown[] = {"conv3d", "--input", "x.npy", NULL};
    if (check_fails("unknown command", 2, "conv3d", NULL, unknown)) return;
    const char *none[] = {NULL};
    if (check_fails("no command", 2, "convnet", NULL, none)) return;
    const char *help_unknown[] = {"help", "nope", NULL};
    if (check_fails("help for an unknown command", 2, "nope", NULL, help_unknown)) return;
}

/* ---- help and version ---------------------------------------------------- */

static void help_lists_every_subcommand_and_version_prints_it(void)
{
    const char *forms[] = {"--help", "-h", "help"};
    for (int i = 0; i < 3; i++) {
        const cli_result *r = run(forms[i], NULL);
        CHECK(r->status == 0 && r->err[0] == '\0', "%s: exit %d: %s", forms[i], r->status, r->err);
        const char *cmds[] = {"conv2d", "pool2d", "filter", "--version"};
        for (int k = 0; k < 4; k++)
            CHECK(strstr(r->out, cmds[k]), "%s does not mention %s", forms[i], cmds[k]);
    }
    const cli_result *r = run("--version", NULL);
    CHECK(r->status == 0, "--version: exit %d", r->status);
    CHECK(strstr(r->out, CN_VERSION_STRING), "--version printed '%s'", r->out);
}

static void subcommand_help_mentions_every_option_and_exits_zero(void)
{
    const char *conv_opts[] = {"--input", "--weight", "--bias", "--stride", "--padding",
                               "--dilation", "--groups", "--padding-mode", "--output",
                               "--grad-output", "--grad-input", "--grad-weight", "--grad-bias",
                               "zeros", "circular", "reflect", "replicate", "symmetric", "mean",
                               "same", "T,B,L,R", "[N, H, W, C_in]", "[KH, KW, C_in/G, C_out]",
                               "--max-memory", "Example", NULL};
    const char *pool_opts[] = {"--type", "max", "avg", "--input", "--kernel", "--stride",
                               "--padding", "--dilation", "--ceil-mode", "--no-count-include-pad",
                               "--output", "--grad-output", "--grad-input", "[N, H, W, C]",
                               "--max-memory", "Example", NULL};
    const char *const *opts[2] = {conv_opts, pool_opts};
    const char *cmds[2] = {"conv2d", "pool2d"};
    for (int c = 0; c < 2; c++) {
        /* --help wins even after a mistake on the same line. */
        const cli_result *r = run(cmds[c], "--bogus", "--help", NULL);
        CHECK(r->status == 0 && r->err[0] == '\0', "%s --help: exit %d: %s", cmds[c], r->status,
              r->err);
        for (int k = 0; opts[c][k]; k++)
            CHECK(strstr(r->out, opts[c][k]), "%s --help does not mention %s", cmds[c],
                  opts[c][k]);
        char out[sizeof r->out];
        memcpy(out, r->out, sizeof out);
        r = run("help", cmds[c], NULL);
        CHECK(r->status == 0 && !strcmp(r->out, out), "'help %s' differs from '%s --help'",
              cmds[c], cmds[c]);
    }
}

int main(void)
{
    TL_RUN(help_lists_every_subcommand_and_version_prints_it);
    TL_RUN(subcommand_help_mentions_every_option_and_exits_zero);
    TL_RUN(unknown_or_missing_command_fails_with_one_line);
    TL_RUN(conv2d_output_and_all_gradients_match_reference_for_random_configs);
    TL_RUN(conv2d_one_or_two_padding_numbers_mean_both_or_height_width);
    TL_RUN(conv2d_repeated_option_takes_the_last_value);
    TL_RUN(conv2d_same_padding_gives_ceil_of_size_over_stride_for_any_stride);
    TL_RUN(conv2d_bad_inputs_fail_with_one_line_naming_the_problem);
    TL_RUN(pool2d_on_a_ramp_gives_hand_computed_values_and_gradients);
    TL_RUN(pool2d_avg_divides_by_the_padded_window_unless_told_not_to);
    TL_RUN(pool2d_ceil_mode_keeps_the_partial_last_window);
    TL_RUN(pool2d_output_and_gradient_match_reference_for_random_configs);
    TL_RUN(pool2d_bad_inputs_fail_with_one_line_naming_the_problem);
    return tl_summary();
}
