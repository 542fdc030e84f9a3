/* conv2d: parameters, shape checks, forward and both backward passes, and the
 * conv1d set-up that reuses them. This is the plain, exact implementation;
 * the reference oracle it is tested against lives in src/kernels/ref. */
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm.h"
#include "ops/conv_internal.h"

cn_conv2d_params cn_conv2d_params_default(void)
{
    cn_conv2d_params p = {0};
    p.stride_h = p.stride_w = 1;
    p.dil_h = p.dil_w = 1;
    p.groups = 1;
    p.pad_mode = CN_PAD_ZEROS;
    return p;
}

int cn__conv_pads_explicitly(const cn_conv2d_desc *d)
{
    return d->mode != CN_PAD_ZEROS && (d->PT || d->PB || d->PL || d->PR);
}

/* TensorFlow "same": OH = ceil(H/S), the odd padding pixel at the end. */
static void same_pads(int64_t in, int64_t k, int64_t s, int64_t dil, int64_t *lo, int64_t *hi)
{
    int64_t out = (in + s - 1) / s;
    int64_t total = CN__MAX((out - 1) * s + (k - 1) * dil + 1 - in, 0);
    *lo = total / 2;
    *hi = total - *lo;
}

static cn_status check_positive(const char *op, const char *what, int64_t v)
{
    if (v < 1) return cn__err(CN_ERR_INVALID_ARG, "%s: %s=%lld must be >= 1", op, what, (long long)v);
    return CN_OK;
}

/* Everything after the op-specific shape reading: d has MB..OC, KH, KW, G,
 * strides, dilations, pads and mode filled; this validates them and
 * computes OH, OW. */
static cn_status finish_setup(cn_conv2d_desc *d, const char *op, int64_t w_icg)
{
    cn_status s;
    const char *names[] = {"N", "H", "W", "C_in", "KH", "KW", "C_out", "groups",
                           "stride_h", "stride_w", "dilation_h", "dilation_w"};
    int64_t vals[] = {d->MB, d->IH, d->IW, d->IC, d->KH, d->KW, d->OC, d->G,
                      d->SH, d->SW, d->DH, d->DW};
    for (int i = 0; i < 12; i++)
        if ((s = check_positive(op, names[i], vals[i]))) return s;
    if (d->IC % d->G)
        return cn__err(CN_ERR_INVALID_ARG, "%s: C_in=%lld not divisible by groups=%lld", op,
                       (long long)d->IC, (long long)d->G);
    if (d->OC % d->G)
        return cn__err(CN_ERR_INVALID_ARG, "%s: C_out=%lld not divisible by groups=%lld", op,
                       (long long)d->OC, (long long)d->G);
    if (w_icg != d->IC / d->G)
        return cn__err(CN_ERR_INVALID_ARG,
                       "%s: weight has %lld input channels per group, but C_in=%lld / "
                       "groups=%lld = %lld",
                       op, (long long)w_icg, (long long)d->IC, (long long)d->G,
                       (long long)(d->IC / d->G));
    if ((unsigned)d->mode >= CN_PAD_MODE_COUNT)
        return cn__err(CN_ERR_INVALID_ARG, "%s: invalid padding mode %d", op, (int)d->mode);
    if ((s = cn_pad2d_check(d->IH, d->IW, d->PT, d->PB, d->PL, d->PR, d->mode, op))) return s;
    /* All products below stay far from overflow once each factor is < 2^31. */
    const int64_t lim = INT64_C(1) << 31;
    for (int i = 0; i < 12; i++)
        if (vals[i] >= lim)
            return cn__err(CN_ERR_OVERFLOW, "%s: %s=%lld is too large", op, names[i],
                           (long long)vals[i]);
    if (d->PT >= lim || d->PB >= lim || d->PL >= lim || d->PR >= lim)
        return cn__err(CN_ERR_OVERFLOW, "%s: padding too large", op);
    int64_t ekh = d->DH * (d->KH - 1) + 1, ekw = d->DW * (d->KW - 1) + 1;
    int64_t ph = d->IH + d->PT + d->PB, pw = d->IW + d->PL + d->PR;
    if (ph < ekh || pw < ekw)
        return cn__err(CN_ERR_INVALID_ARG,
                       "%s: output size <= 0: the dilated kernel (%lldx%lld) is larger than the "
                       "padded input (%lldx%lld)",
                       op, (long long)ekh, (long long)ekw, (long long)ph, (long long)pw);
    d->OH = (ph - ekh) / d->SH + 1;
    d->OW = (pw - ekw) / d->SW + 1;
    /* Every buffer a pass touches, the workspace blocks of ws_layout
     * included, must have a countable size, and so must all of them
     * together (counted as doubles), so that no workspace size wraps: a
     * 4x4 input with --padding 536870912 --stride 1073741823 once sized the
     * dilated gradient 2^64 bytes, i.e. 0, and backward-data wrote past it.
     * OH*OW may itself overflow (OH, OW < 2^33), so it is checked first. */
    int64_t ohw = -1;
    if (cn__mul_i64(d->OH, d->OW, &ohw)) ohw = -1;
    int64_t shapes[7][4] = {{d->MB, d->IH, d->IW, d->IC},
                            {d->MB, d->OH, d->OW, d->OC},
                            {d->MB, ph, pw, d->IC},
                            {ohw, d->KH, d->KW, d->IC},
                            {d->MB, (d->OH - 1) * d->SH + 1, (d->OW - 1) * d->SW + 1, d->OC},
                            {d->KH, d->KW, d->OC / d->G, d->IC},
                            /* every image's im2col: cn_im2col_size */
                            {ohw, d->MB, d->KH * d->KW, d->IC}};
    size_t n, total = 0;
    for (int i = 0; i < 7; i++) {
        if (shapes[i][0] < 0)
            return cn__err(CN_ERR_OVERFLOW, "%s: tensor sizes overflow (OH=%lld x OW=%lld)", op,
                           (long long)d->OH, (long long)d->OW);
        if ((s = cn_shape_numel(4, shapes[i], &n)))
            return cn__err(s, "%s: tensor sizes overflow (%s)", op, cn_last_error());
        if (__builtin_add_overflow(total, n, &total) || total > SIZE_MAX / 8)
            return cn__err(CN_ERR_OVERFLOW,
                           "%s: tensor sizes overflow (the buffers exceed 2^61 elements)", op);
    }
    return CN_OK;
}

cn_status cn_conv2d_setup(cn_conv2d_desc *d, const cn_conv2d_params *p, const int64_t x_shape[4],
                          const int64_t w_shape[4])
{
    memset(d, 0, sizeof *d);
    d->MB = x_shape[0], d->IH = x_shape[1], d->IW = x_shape[2], d->IC = x_shape[3];
    d->KH = w_shape[0], d->KW = w_shape[1], d->OC = w_shape[3];
    d->G = p->groups;
    d->SH = p->stride_h, d->SW = p->stride_w, d->DH = p->dil_h, d->DW = p->dil_w;
    d->mode = p->pad_mode;
    if (p->pad_same && d->SH >= 1 && d->SW >= 1 && d->DH >= 1 && d->DW >= 1 && d->IH > 0 &&
        d->IW > 0 && d->KH > 0 && d->KW > 0) {
        same_pads(d->IH, d->KH, d->SH, d->DH, &d->PT, &d->PB);
        same_pads(d->IW, d->KW, d->SW, d->DW, &d->PL, &d->PR);
    } else if (!p->pad_same) {
        d->PT = p->pad_top, d->PB = p->pad_bottom, d->PL = p->pad_left, d->PR = p->pad_right;
    }
    return finish_setup(d, "conv2d", w_shape[2]);
}

cn_status cn_conv1d_setup(cn_conv2d_desc *d, const cn_conv2d_params *p, const int64_t x_shape[3],
                          const int64_t w_shape[3])
{
    memset(d, 0, sizeof *d);
    /* conv1d runs along W: the H parameters keep their defaults, and L and
     * K are named as the caller knows them (finish_setup says W and KW). */
    const char *const hn[4] = {"pad_top", "pad_bottom", "stride_h", "dil_h"};
    const int hv[4] = {p->pad_top, p->pad_bottom, p->stride_h, p->dil_h}, hd[4] = {0, 0, 1, 1};
    for (int i = 0; i < 4; i++)
        if (hv[i] != hd[i])
            return cn__err(CN_ERR_INVALID_ARG, "conv1d: %s=%d must be %d (conv1d runs along W)",
                           hn[i], hv[i], hd[i]);
    if (x_shape[1] < 1)
        return cn__err(CN_ERR_INVALID_ARG, "conv1d: L=%lld must be >= 1", (long long)x_shape[1]);
    if (w_shape[0] < 1)
        return cn__err(CN_ERR_INVALID_ARG, "conv1d: K=%lld must be >= 1", (long long)w_shape[0]);
    d->MB = x_shape[0], d->IH = 1, d->IW = x_shape[1], d->IC = x_shape[2];
    d->KH = 1, d->KW = w_shape[0], d->OC = w_shape[2];
    d->G = p->groups;
    d->SH = 1, d->SW = p->stride_w, d->DH = 1, d->DW = p->dil_w;
    d->mode = p->pad_mode;
    if (p->pad_same) {
        if (d->SW >= 1 && d->DW >= 1 && d->IW > 0 && d->KW > 0)
            same_pads(d->IW, d->KW, d->SW, d->DW, &d->PL, &d->PR);
    } else {
        d->PL = p->pad_left, d->PR = p->pad_right;
    }
    return finish_setup(d, "conv1d", w_shape[1]);
}

/* Fixed runs of pixels of the bias gradient's sum (bias_grad). */
#define BIAS_CHUNKS 8

/* Workspace layout, in order; each block 64-byte aligned:
 *   xpad  [MB, IH+PT+PB, IW+PL+PR, IC]   non-zero padding modes
 *   gyd   [MB, (OH-1)*SH+1, (OW-1)*SW+1, OC]   bwd_data, stride > 1
 *   wt    [KH, KW, OC/G, IC]             bwd_data: flipped, channels swapped
 *   cols  [OH*OW, KH*KW*IC]              bwd_weights: one image's im2col
 *   gw64  [KH*KW*IC/G*OC] doubles
 *   gb64  [BIAS_CHUNKS, OC] doubles     bwd_weights: the bias's partial sums
 *   gcols the GEMM path's chunk of cols (cn__conv_gemm_ws)
 *   part  the vectorised kernels' partial weight gradients
 *   wino  the Winograd paths' transformed weights, per-thread tiles and
 *         partial weight gradients
 *   grp8  the 8-channel-group kernel's per-thread input copies (and its
 *         partial weight gradients)
 *   phase dilated 3x3 layers: the pass's input and output as D*D phases
 *         each (phase_copy), then the phase problem's own workspace */
typedef struct conv_ws {
    float *xpad, *gyd, *wt, *cols, *gcols, *part, *wino, *grp8, *phase;
    double *gw64, *gb64;
} conv_ws;

/* The descriptor of the same convolution over the explicitly padded input. */
static cn_conv2d_desc padded_desc(const cn_conv2d_desc *d)
{
    cn_conv2d_desc p = *d;
    p.IH += d->PT + d->PB, p.IW += d->PL + d->PR;
    p.PT = p.PB = p.PL = p.PR = 0;
    p.mode = CN_PAD_ZEROS;
    return p;
}

/* The zero-padded problem the kernels see. */
static cn_conv2d_desc kernel_desc(const cn_conv2d_desc *d)
{
    return cn__conv_pads_explicitly(d) ? padded_desc(d) : *d;
}

/* Backward-data as a forward convolution: gx = conv(dilate(gy, stride),
 * flip(w) with input and output channels swapped), stride 1, the same
 * dilation, padding (K-1)*dil - pad before (negative pads crop). src is the
 * zero-padded problem. */
static cn_conv2d_desc transposed_desc(const cn_conv2d_desc *src)
{
    cn_conv2d_desc t = {0};
    t.MB = src->MB, t.IH = (src->OH - 1) * src->SH + 1, t.IW = (src->OW - 1) * src->SW + 1;
    t.IC = src->OC, t.OC = src->IC, t.G = src->G;
    t.KH = src->KH, t.KW = src->KW, t.SH = t.SW = 1, t.DH = src->DH, t.DW = src->DW;
    t.PT = (src->KH - 1) * src->DH - src->PT, t.PL = (src->KW - 1) * src->DW - src->PL;
    t.OH = src->IH, t.OW = src->IW;
    t.mode = CN_PAD_ZEROS;
    return t;
}

typedef enum {
    IMPL_DIRECT,
    IMPL_GEMM,
    IMPL_VEC,
    IMPL_FEWCH,
    IMPL_WINOGRAD,
    IMPL_GWINO,
    IMPL_PHASES
} conv_impl;

/* Dilated 3x3 stride-1 layers as Winograd (TensorFlow's space-to-batch):
 * with dilations DH, DW the pixels (i*DH + r, j*DW + c) of input and output
 * form DH*DW phases (r, c), and output phase (r, c) is the undilated
 * convolution of input phase (r, c) with padding / dilation: output row
 * i*DH + r reads input rows i*DH + r - PT + kh*DH = (i - PT/DH + kh)*DH + r.
 * Taken when the sizes and pads divide by the dilations, so that every
 * phase has the same shape and the phases are the images of one batch of
 * MB*DH*DW, and when that batch takes Winograd (2.25 multiplies an output
 * instead of 9). */
static cn_conv2d_desc phase_desc(const cn_conv2d_desc *p)
{
    cn_conv2d_desc q = *p;
    q.MB = p->MB * p->DH * p->DW;
    q.IH = p->IH / p->DH, q.IW = p->IW / p->DW, q.OH = p->OH / p->DH, q.OW = p->OW / p->DW;
    q.PT = p->PT / p->DH, q.PB = p->PB / p->DH, q.PL = p->PL / p->DW, q.PR = p->PR / p->DW;
    q.DH = q.DW = 1;
    return q;
}

static int phases_apply(const cn_conv2d_desc *p)
{
    if ((p->DH == 1 && p->DW == 1) || cn__conv_pads_explicitly(p) || p->SH != 1 || p->SW != 1 ||
        p->IH % p->DH || p->IW % p->DW || p->PT % p->DH || p->PB % p->DH || p->PL % p->DW ||
        p->PR % p->DW)
        return 0;
    const cn_conv2d_desc q = phase_desc(p);
    return cn__conv_winograd_applies(&q) && q.OH >= 1 && q.OW >= 1;
}

/* Phase image (n*DH + r)*DW + c of ph [MB*DH*DW, H/DH, W/DW, C] <-> pixels
 * (i*DH + r, j*DW + c) of image n of t [MB, H, W, C]; split: t -> ph,
 * else ph -> t. Rows in parallel, each pixel copied once. */
static void phase_copy(const cn_ctx *ctx, int64_t MB, int64_t H, int64_t W, int64_t C, int64_t DH,
                       int64_t DW, const float *src, float *dst, int split)
{
    const int64_t h = H / DH, w = W / DW, rows = MB * H;
    const int nt = cn__threads(ctx);
#pragma omp parallel for num_threads(nt) if (nt > 1 && rows * W * C >= 65536) schedule(static)
    for (int64_t row = 0; row < rows; row++) {
        const int64_t n = row / H, ih = row % H, r = ih % DH, i = ih / DH;
        for (int64_t iw = 0; iw < W; iw++) {
            const int64_t c = iw % DW, j = iw / DW;
            const int64_t at = ((n * H + ih) * W + iw) * C,
                          pt = ((((n * DH + r) * DW + c) * h + i) * w + j) * C;
            if (split)
                memcpy(dst + pt, src + at, (size_t)C * sizeof *dst);
            else
                memcpy(dst + at, src + pt, (size_t)C * sizeof *dst);
        }
    }
}

/* The phase path's blocks in l.phase: a [MB, IH, IW, IC] and b [MB, OH,
 * OW, OC] of p in phase order, then the phase problem's workspace. */
static size_t phase_bytes(const cn_conv2d_desc *p, unsigned passes, float *base, float **a,
                          float **b, void **ws);

static int vec_applies(const cn_conv2d_desc *p)
{
    return cn__conv_dw_applies(p) || cn__conv_grouped_applies(p);
}

/* The kernel for pass (0 fwd, 1 bwd_data, 2 bwd_weights) of the zero-padded
 * problem p: the few-input-channel kernels where they apply, the vectorised direct kernels where
 * they apply (for backward-data: to the transposed problem), Winograd for 3x3 stride 1 (dilated
 * ones through their phases), else the GEMM path, else the plain loops. CN_CONV_IMPL=direct|gemm
 * forces those (tests); =vec is the default choice. */
static conv_impl choose_impl(const cn_conv2d_desc *p, int pass)
{
    const char *e = getenv("CN_CONV_IMPL");
    if (e && !strcmp(e, "direct")) return IMPL_DIRECT;
    if (e && !strcmp(e, "gemm")) return IMPL_GEMM;
    if (cn__conv_fewch_applies(p)) return IMPL_FEWCH;
    cn_conv2d_desc t = pass == 1 ? transposed_desc(p) : *p;
    /* 8-channel groups, 3x3 stride 1: Winograd needs 4x fewer multiplies
     * than the paired-group kernel */
    if (cn__conv_gwino_applies(p) && cn__conv_gwino_applies(&t)) return IMPL_GWINO;
    /* The small-group weight gradient keeps KG x OCG accumulators per tap
     * sweep; with many taps over one group (a 7x7 first layer) a GEMM
     * reduction does better. */
    const int few_taps = cn__conv_dw_applies(p) || p->G > 1 || p->KH * p->KW * (p->IC / p->G) <= 64;
    if (vec_applies(p) && vec_applies(&t) && (pass != 2 || few_taps)) return IMPL_VEC;
    /* for backward-data the transposed problem is then 3x3 stride 1 too */
    if (cn__conv_winograd_applies(p)) return IMPL_WINOGRAD;
    if (phases_apply(p)) return IMPL_PHASES;
    return cn__conv_gemm_applies(p) ? IMPL_GEMM : IMPL_DIRECT;
}

/* Backward-data on the GEMM path: cn__conv2d_gemm_bwd_data (its implicit
 * kernel where it applies, any stride; else GEMM per patch and col2im), or
 * the forward GEMM of the transposed problem when the stride is 1 and that
 * GEMM is wide enough (its N is C_in/groups). */
static int bwd_data_by_col2im(const cn_conv2d_desc *p)
{
    return p->SH > 1 || p->SW > 1 || p->IC / p->G < 16 || cn__conv_gemm_bwd_implicit(p);
}

const char *cn__conv2d_impl_name(const cn_conv2d_desc *d, int pass)
{
    const cn_conv2d_desc p = kernel_desc(d);
    switch (choose_impl(&p, pass)) {
    case IMPL_VEC: return cn__conv_dw_applies(&p) ? "depthwise" : "grouped";
    case IMPL_FEWCH: return "fewch";
    case IMPL_GWINO: return "grouped-winograd4";
    case IMPL_GEMM: return "gemm";
    case IMPL_WINOGRAD: {
        const cn_conv2d_desc t = transposed_desc(&p);
        return cn__conv_winograd_name(pass == 1 ? &t : &p);
    }
    case IMPL_PHASES: {
        const cn_conv2d_desc q = phase_desc(&p), t = transposed_desc(&q);
        return strcmp(cn__conv_winograd_name(pass == 1 ? &t : &q), "winograd4") ? "winograd-phases"
                                                                              : "winograd4-phases";
    }
    default: return "direct";
    }
}

/* The passes a layout serves: a pass that allocates its own workspace
 * takes only its blocks (the forward pass of a 101x101 filter over a
 * one-megapixel image needs the padded copy, 4 MB, not the 122 GB im2col
 * buffer of backward-weights); cn_conv2d_workspace_size serves them all. */
enum { WS_FWD = 1, WS_BWD_DATA = 2, WS_BWD_WEIGHTS = 4, WS_ALL = 7 };

static size_t ws_layout(const cn_conv2d_desc *d, unsigned passes, char *base, conv_ws *out)
{
    const int bd = (passes & WS_BWD_DATA) != 0, bw = (passes & WS_BWD_WEIGHTS) != 0;
    size_t at = 0;
    conv_ws l;
    int64_t ph = d->IH + d->PT + d->PB, pw = d->IW + d->PL + d->PR;
    size_t f = sizeof(float), dd = sizeof(double);
    l.xpad = cn__ws_take(base, &at, cn__conv_pads_explicitly(d) ? (size_t)(d->MB * ph * pw * d->IC) * f : 0);
    size_t gyd = (d->SH > 1 || d->SW > 1)
                     ? (size_t)(d->MB * ((d->OH - 1) * d->SH + 1) * ((d->OW - 1) * d->SW + 1) * d->OC) * f
                     : 0;
    l.gyd = cn__ws_take(base, &at, bd ? gyd : 0);
    l.wt = cn__ws_take(base, &at, bd ? (size_t)(d->KH * d->KW * (d->OC / d->G) * d->IC) * f : 0);
    l.cols = cn__ws_take(base, &at, bw ? (size_t)(d->OH * d->OW * d->KH * d->KW * d->IC) * f : 0);
    l.gw64 = cn__ws_take(base, &at, bw ? (size_t)(d->KH * d->KW * (d->IC / d->G) * d->OC) * dd : 0);
    l.gb64 = cn__ws_take(base, &at, bw ? (size_t)(BIAS_CHUNKS * d->OC) * dd : 0);
    const cn_conv2d_desc p = kernel_desc(d);
    const cn_conv2d_desc t = transposed_desc(&p);
    l.gcols = cn__ws_take(base, &at, CN__MAX(cn__conv_gemm_ws(&p), cn__conv_gemm_ws(&t)));
    const size_t vp = vec_applies(&p) ? cn__conv_vec_bww_ws(&p) : 0,
                 fp = cn__conv_fewch_applies(&p) ? cn__conv_fewch_bww_ws(&p) : 0;
    l.part = cn__ws_take(base, &at, bw ? CN__MAX(vp, fp) : 0);
    const size_t wf = (passes & WS_FWD) ? cn__conv_winograd_ws(&p) : 0,
                 wb = bd ? cn__conv_winograd_ws(&t) : 0;
    const size_t ww = bw ? CN__MAX(cn__conv_winograd_bww_ws(&p), cn__conv_gwino_bww_ws(&p)) : 0;
    const size_t gwf = (passes & WS_FWD) ? cn__conv_gwino_ws(&p) : 0,
                 gwb = bd && cn__conv_gwino_applies(&p) ? cn__conv_gwino_ws(&t) : 0;
    l.wino = cn__ws_take(base, &at, CN__MAX(CN__MAX(CN__MAX(wf, wb), ww), CN__MAX(gwf, gwb)));
    const size_t gf = (passes & WS_FWD) ? cn__conv_grp8_ws(&p) : 0,
                 gb = bd && d->SH == 1 && d->SW == 1 ? cn__conv_grp8_ws(&t) : 0;
    l.grp8 = cn__ws_take(base, &at, CN__MAX(CN__MAX(gf, gb), bw ? cn__conv_grp8_bww_ws(&p) : 0));
    l.phase = cn__ws_take(base, &at, phases_apply(&p) ? phase_bytes(&p, passes, NULL, NULL, NULL, NULL) : 0);
    if (out) *out = l;
    return at;
}

static size_t phase_bytes(const cn_conv2d_desc *p, unsigned passes, float *base, float **a,
                          float **b, void **ws)
{
    const cn_conv2d_desc q = phase_desc(p);
    size_t at = 0;
    float *pa = cn__ws_take((char *)base, &at, (size_t)(p->MB * p->IH * p->IW * p->IC) * sizeof(float));
    float *pb = cn__ws_take((char *)base, &at, (size_t)(p->MB * p->OH * p->OW * p->OC) * sizeof(float));
    void *pw = cn__ws_take((char *)base, &at, ws_layout(&q, passes, NULL, NULL));
    if (a) *a = pa, *b = pb, *ws = pw;
    return at;
}

size_t cn_conv2d_workspace_size(const cn_conv2d_desc *d) { return ws_layout(d, WS_ALL, NULL, NULL); }

/* Runs body with a workspace: the caller's, or one allocated here. */
static cn_status get_ws(const cn_conv2d_desc *d, unsigned pass, void *ws, void **own, conv_ws *l)
{
    *own = NULL;
    if (!ws) {
        size_t bytes = ws_layout(d, pass, NULL, NULL);
        if (!(ws = *own = cn_alloc(bytes ? bytes : 64)))
            return cn__err(CN_ERR_NO_MEMORY, "conv2d: cannot allocate %zu bytes of workspace", bytes);
    }
    ws_layout(d, pass, ws, l);
    return CN_OK;
}

void cn__conv2d_direct(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                       const float *w, const float *b, float *y)
{
    const int64_t ICG = d->IC / d->G, OCG = d->OC / d->G;
    const int nt = cn__threads(ctx);
    /* Output rows are independent: threads split them, results do not
     * depend on the thread count. */
#pragma omp parallel for num_threads(nt) if (nt > 1 && d->MB * d->OH > 1) schedule(static)
    for (int64_t row = 0; row < d->MB * d->OH; row++) {
        const int64_t n = row / d->OH, oh = row % d->OH;
        for (int64_t ow = 0; ow < d->OW; ow++) {
            float *yp = y + ((n * d->OH + oh) * d->OW + ow) * d->OC;
            for (int64_t oc = 0; oc < d->OC; oc++) yp[oc] = b ? b[oc] : 0.0f;
            for (int64_t kh = 0; kh < d->KH; kh++) {
                int64_t ih = oh * d->SH - d->PT + kh * d->DH;
                if (ih < 0 || ih >= d->IH) continue;
                for (int64_t kw = 0; kw < d->KW; kw++) {
                    int64_t iw = ow * d->SW - d->PL + kw * d->DW;
                    if (iw < 0 || iw >= d->IW) continue;
                    const float *xp = x + ((n * d->IH + ih) * d->IW + iw) * d->IC;
                    const float *wp = w + (kh * d->KW + kw) * ICG * d->OC;
                    if (ICG == 1 && OCG == 1) {
                        /* depthwise: one multiply-add per channel, vectorised */
#pragma omp simd
                        for (int64_t c = 0; c < d->OC; c++) yp[c] += xp[c] * wp[c];
                        continue;
                    }
                    for (int64_t g = 0; g < d->G; g++)
                        for (int64_t i = 0; i < ICG; i++) {
                            const float xv = xp[g * ICG + i];
                            const float *wr = wp + i * d->OC + g * OCG;
                            float *yr = yp + g * OCG;
#pragma omp simd
                            for (int64_t o = 0; o < OCG; o++) yr[o] += xv * wr[o];
                        }
                }
            }
        }
    }
}

/* The forward pass; relu: y = max(y, 0) as the kernels write it. */
static cn_status fwd(cn_ctx *ctx, const cn_conv2d_desc *d, const float *x, const float *w,
                     const float *b, int relu, float *y, void *ws)
{
    const int explicit_pad = cn__conv_pads_explicitly(d);
    const cn_conv2d_desc p = kernel_desc(d);
    const conv_impl impl = choose_impl(&p, 0);
    const int grp8 = impl == IMPL_VEC && cn__conv_grp8_applies(&p);
    if (!explicit_pad && !grp8 && (impl == IMPL_VEC || impl == IMPL_FEWCH || impl == IMPL_DIRECT)) {
        if (impl == IMPL_FEWCH) {
            cn__conv2d_fewch_fwd(ctx, d, x, w, b, relu, y);
        } else if (impl == IMPL_VEC) {
            cn__conv2d_vec_fwd(ctx, d, x, w, b, relu, y);
        } else {
            cn__conv2d_direct(ctx, d, x, w, b, y);
            if (relu) cn_act_fwd(ctx, CN_ACT_RELU, 0.0f, (size_t)(d->MB * d->OH * d->OW * d->OC), y, y);
        }
        return CN_OK;
    }
    void *own;
    conv_ws l;
    cn_status s = get_ws(d, WS_FWD, ws, &own, &l);
    if (s) return s;
    if (explicit_pad)
        s = cn_pad2d_fwd(ctx, d->MB, d->IH, d->IW, d->IC, d->PT, d->PB, d->PL, d->PR, d->mode, x,
                         l.xpad);
    const float *src = explicit_pad ? l.xpad : x;
    if (!s && impl == IMPL_GEMM) {
        s = cn__conv2d_gemm_fwd(ctx, &p, src, w, b, relu, y, l.gcols);
    } else if (!s && impl == IMPL_WINOGRAD) {
        cn__conv2d_winograd_fwd(ctx, &p, src, w, b, relu, 0, y, l.wino);
    } else if (!s && impl == IMPL_PHASES) {
        /* the phases as one batch of an undilated problem (phase_desc) */
        const cn_conv2d_desc q = phase_desc(&p);
        float *xq, *yq;
        void *qws;
        phase_bytes(&p, WS_FWD, l.phase, &xq, &yq, &qws);
        phase_copy(ctx, p.MB, p.IH, p.IW, p.IC, p.DH, p.DW, src, xq, 1);
        s = fwd(ctx, &q, xq, w, b, relu, yq, qws);
        if (!s) phase_copy(ctx, p.MB, p.OH, p.OW, p.OC, p.DH, p.DW, yq, y, 0);
    } else if (!s && impl == IMPL_GWINO) {
        cn__conv2d_gwino_fwd(ctx, &p, src, w, b, relu, y, l.wino);
    } else if (!s && grp8) {
        cn__conv2d_grp8_fwd(ctx, &p, src, w, b, relu, y, l.grp8);
    } else if (!s && impl == IMPL_VEC) {
        cn__conv2d_vec_fwd(ctx, &p, src, w, b, relu, y);
    } else if (!s && impl == IMPL_FEWCH) {
        cn__conv2d_fewch_fwd(ctx, &p, src, w, b, relu, y);
    } else if (!s) {
        cn__conv2d_direct(ctx, &p, src, w, b, y);
        if (relu) cn_act_fwd(ctx, CN_ACT_RELU, 0.0f, (size_t)(d->MB * d->OH * d->OW * d->OC), y, y);
    }
    cn_free(own);
    return s;
}

cn_status cn_conv2d_fwd(cn_ctx *ctx, const cn_conv2d_desc *d, const float *x, const float *w,
                        const float *b, float *y, void *ws)
{
    return fwd(ctx, d, x, w, b, 0, y, ws);
}

cn_status cn_conv2d_fwd_relu(cn_ctx *ctx, const cn_conv2d_desc *d, const float *x, const float *w,
                             const float *b, float *y, void *ws)
{
    return fwd(ctx, d, x, w, b, 1, y, ws);
}

/* The transposed problem's weights: wt [KH, KW, OC/G, IC] <- w [KH, KW,
 * IC/G, OC] flipped in space, each group's block transposed (a 256 x 256
 * layer's 2.4 MB took 0.8 ms element by element, now a copy's time). */
static void flip_weights(const cn_conv2d_desc *d, const float *w, float *wt)
{
    const int64_t ICG = d->IC / d->G, OCG = d->OC / d->G, KK = d->KH * d->KW;
    const cn__isa isa = cn__isa_detect();
    for (int64_t e = 0; e < KK; e++) {
        const float *src = w + (KK - 1 - e) * ICG * d->OC;
        float *dst = wt + e * OCG * d->IC;
        if (ICG == 1 && OCG == 1) /* depthwise: a row each */
            memcpy(dst, src, (size_t)d->IC * sizeof *dst);
        else
            for (int64_t g = 0; g < d->G; g++)
                cn__transpose(isa, ICG, OCG, src + g * OCG, d->OC, dst + g * ICG, d->IC);
    }
}

/* Whether backward-data can add to gx in place (cn__conv2d_bwd_data_acc):
 * its GEMM (col2im or implicit), Winograd and few-input-channel kernels can,
 * of zero-padded problems. */
int cn__conv2d_bwd_data_accumulates(const cn_conv2d_desc *d)
{
    if (cn__conv_pads_explicitly(d)) return 0;
    const cn_conv2d_desc src = kernel_desc(d);
    const conv_impl impl = choose_impl(&src, 1);
    return (impl == IMPL_GEMM && bwd_data_by_col2im(&src)) || impl == IMPL_WINOGRAD ||
           impl == IMPL_FEWCH;
}

/* The lecture's adjoint (transposed_desc), or its GEMM form; for padding
 * modes other than zeros the result is the gradient of the padded input,
 * folded back. acc: gx += the gradient (only where
 * cn__conv2d_bwd_data_accumulates). */
static cn_status bwd_data(cn_ctx *ctx, const cn_conv2d_desc *d, const float *gy, const float *w,
                          int acc, float *gx, void *ws)
{
    void *own;
    conv_ws l;
    cn_status s = get_ws(d, WS_BWD_DATA, ws, &own, &l);
    if (s) return s;
    const int explicit_pad = cn__conv_pads_explicitly(d);
    const cn_conv2d_desc src = kernel_desc(d);
    const conv_impl impl = choose_impl(&src, 1);
    float *out = explicit_pad ? l.xpad : gx;
    if (impl == IMPL_GEMM && bwd_data_by_col2im(&src)) {
        s = cn__conv2d_gemm_bwd_data(ctx, &src, gy, w, acc, out, l.wt, l.gcols);
    } else if (impl == IMPL_FEWCH) {
        cn__conv2d_fewch_bwd_data(ctx, &src, gy, w, acc, out);
    } else if (impl == IMPL_PHASES) {
        const cn_conv2d_desc q = phase_desc(&src);
        float *gxq, *gyq;
        void *qws;
        phase_bytes(&src, WS_BWD_DATA, l.phase, &gxq, &gyq, &qws);
        phase_copy(ctx, src.MB, src.OH, src.OW, src.OC, src.DH, src.DW, gy, gyq, 1);
        s = cn_conv2d_bwd_data(ctx, &q, gyq, w, gxq, qws);
        if (!s) phase_copy(ctx, src.MB, src.IH, src.IW, src.IC, src.DH, src.DW, gxq, out, 0);
    } else {
        /* Only the plain loops read a zero-stuffed gy; the other kernels see
         * stride 1 here (GEMM, Winograd) or skip the zeros (vectorised). */
        const float *gyd = gy;
        if ((d->SH > 1 || d->SW > 1) && impl == IMPL_DIRECT) {
            cn_dilate2d_fwd(d->MB, d->OH, d->OW, d->OC, d->SH, d->SW, gy, l.gyd);
            gyd = l.gyd;
        }
        flip_weights(d, w, l.wt);
        const cn_conv2d_desc t = transposed_desc(&src);
        if (impl == IMPL_GEMM) s = cn__conv2d_gemm_fwd(ctx, &t, gyd, l.wt, NULL, 0, out, l.gcols);
        else if (impl == IMPL_WINOGRAD)
            cn__conv2d_winograd_fwd(ctx, &t, gyd, l.wt, NULL, 0, acc, out, l.wino);
        else if (impl == IMPL_GWINO) cn__conv2d_gwino_fwd(ctx, &t, gy, l.wt, NULL, 0, out, l.wino);
        else if (impl == IMPL_VEC && d->SH == 1 && d->SW == 1 && cn__conv_grp8_applies(&t))
            cn__conv2d_grp8_fwd(ctx, &t, gy, l.wt, NULL, 0, out, l.grp8);
        else if (impl == IMPL_VEC) cn__conv2d_vec_fwd_dilated(ctx, &t, gy, l.wt, d->SH, d->SW, out);
        else cn__conv2d_direct(ctx, &t, gyd, l.wt, NULL, out);
    }
    if (!s && explicit_pad)
        s = cn_pad2d_bwd(ctx, d->MB, d->IH, d->IW, d->IC, d->PT, d->PB, d->PL, d->PR, d->mode,
                         l.xpad, gx);
    cn_free(own);
    return s;
}

cn_status cn_conv2d_bwd_data(cn_ctx *ctx, const cn_conv2d_desc *d, const float *gy, const float *w,
                             float *gx, void *ws)
{
    return bwd_data(ctx, d, gy, w, 0, gx, ws);
}

cn_status cn__conv2d_bwd_data_acc(cn_ctx *ctx, const cn_conv2d_desc *d, const float *gy,
                                  const float *w, float *gx, void *ws)
{
    if (!cn__conv2d_bwd_data_accumulates(d))
        return cn__err(CN_ERR_INVALID_ARG, "conv2d: this backward-data cannot accumulate");
    return bwd_data(ctx, d, gy, w, 1, gx, ws);
}

/* out[o] = sum over pixels [p0, p1) of gy[p, o] in double, pixel order,
 * for channels [o0, o0 + B) (B a constant: the sums stay in registers down
 * the rows). */
static inline __attribute__((always_inline)) void bias_block(const float *gy, int64_t C,
                                                             int64_t p0, int64_t p1, int64_t o0,
                                                             double *out, const int B)
{
    double a[64] = {0};
    for (int64_t p = p0; p < p1; p++) {
        const float *r = gy + p * C + o0;
#pragma GCC unroll 64
        for (int o = 0; o < B; o++) a[o] += r[o];
    }
    memcpy(out + o0, a, (size_t)B * sizeof *a);
}

/* out[o] = sum over pixels [p0, p1) of gy[p, o], every channel: blocks of
 * 64, 32, 16 and single channels. */
CN__MULTIVERSION static void bias_run(const float *gy, int64_t C, int64_t p0, int64_t p1,
                                      double *out)
{
    int64_t o0 = 0;
    for (; o0 + 64 <= C; o0 += 64) bias_block(gy, C, p0, p1, o0, out, 64);
    if (o0 + 32 <= C) bias_block(gy, C, p0, p1, o0, out, 32), o0 += 32;
    if (o0 + 16 <= C) bias_block(gy, C, p0, p1, o0, out, 16), o0 += 16;
    for (; o0 < C; o0++) bias_block(gy, C, p0, p1, o0, out, 1);
}

/* gb[o] = sum over every output pixel of gy[., o], for every kernel alike:
 * BIAS_CHUNKS fixed runs of pixels each summed in double (bias_run; part
 * [BIAS_CHUNKS, OC]), the runs added in order, so the result is within a
 * few roundings of the exact sum and does not depend on the kernel or the
 * thread count. (A float sum drifts past 1e-5 of the exact one within a
 * few hundred pixels.) */
static void bias_grad(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *gy, float *gb,
                      double *part)
{
    const int64_t C = d->OC, P = d->MB * d->OH * d->OW, K = CN__MIN(BIAS_CHUNKS, P);
    const int nt = cn__threads(ctx);
#pragma omp parallel num_threads(nt) if (nt > 1 && P * C >= 65536)
    {
#pragma omp for schedule(static)
        for (int64_t k = 0; k < K; k++) bias_run(gy, C, P * k / K, P * (k + 1) / K, part + k * C);
#pragma omp for schedule(static)
        for (int64_t o = 0; o < C; o++) {
            double t = part[o];
            for (int64_t k = 1; k < K; k++) t += part[k * C + o];
            gb[o] = (float)t;
        }
    }
}

/* gw[(kh,kw,i), g*OCG+o] = sum over pixels p of cols[p, (kh,kw,g*ICG+i)] gy[p, g*OCG+o],
 * image by image, accumulated in double so long reductions stay exact; gb
 * by bias_grad, the kernels asked for gw alone. */
cn_status cn_conv2d_bwd_weights(cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                const float *gy, float *gw, float *gb, void *ws)
{
    if (!gw && !gb) return CN_OK;
    void *own;
    conv_ws l;
    cn_status s = get_ws(d, WS_BWD_WEIGHTS, ws, &own, &l);
    if (s) return s;
    if (gb) bias_grad(ctx, d, gy, gb, l.gb64);
    if (!gw) goto done;
    const float *xs = x;
    cn_conv2d_desc src = *d;
    if (cn__conv_pads_explicitly(d)) {
        s = cn_pad2d_fwd(ctx, d->MB, d->IH, d->IW, d->IC, d->PT, d->PB, d->PL, d->PR, d->mode, x,
                         l.xpad);
        if (s) goto done;
        src = padded_desc(d);
        xs = l.xpad;
    }
    const conv_impl impl = choose_impl(&src, 2);
    if (impl == IMPL_VEC && cn__conv_grp8_bww_applies(&src)) {
        cn__conv2d_grp8_bwd_weights(ctx, &src, xs, gy, gw, l.grp8);
        goto done;
    }
    if (impl == IMPL_VEC) {
        cn__conv2d_vec_bwd_weights(ctx, &src, xs, gy, gw, l.part);
        goto done;
    }
    if (impl == IMPL_FEWCH) {
        cn__conv2d_fewch_bwd_weights(ctx, &src, xs, gy, gw, l.part);
        goto done;
    }
    if (impl == IMPL_WINOGRAD) {
        cn__conv2d_winograd_bwd_weights(ctx, &src, xs, gy, gw, l.wino);
        goto done;
    }
    if (impl == IMPL_GWINO) {
        cn__conv2d_gwino_bwd_weights(ctx, &src, xs, gy, gw, l.wino);
        goto done;
    }
    if (impl == IMPL_PHASES) {
        const cn_conv2d_desc q = phase_desc(&src);
        float *xq, *gyq;
        void *qws;
        phase_bytes(&src, WS_BWD_WEIGHTS, l.phase, &xq, &gyq, &qws);
        phase_copy(ctx, src.MB, src.IH, src.IW, src.IC, src.DH, src.DW, xs, xq, 1);
        phase_copy(ctx, src.MB, src.OH, src.OW, src.OC, src.DH, src.DW, gy, gyq, 1);
        s = cn_conv2d_bwd_weights(ctx, &q, xq, gyq, gw, NULL, qws);
        goto done;
    }
    const int64_t ICG = d->IC / d->G, OCG = d->OC / d->G, K = d->KH * d->KW * d->IC,
                  P = d->OH * d->OW, nw = d->KH * d->KW * ICG * d->OC;
    if (impl == IMPL_GEMM) {
        s = cn__conv2d_gemm_bwd_weights(ctx, &src, xs, gy, gw, l.gcols);
        goto done;
    }
    memset(l.gw64, 0, (size_t)nw * sizeof(double)); /* the plain loops' sums */
    cn_conv2d_desc one = src;
    one.MB = 1;
    for (int64_t n = 0; n < d->MB; n++) {
        const float *gyn = gy + n * P * d->OC;
        cn_im2col(ctx, &one, xs + n * src.IH * src.IW * src.IC, l.cols);
        for (int64_t p = 0; p < P; p++)
            for (int64_t k = 0; k < K; k++) {
                const int64_t khw = k / d->IC, c = k % d->IC, g = c / ICG;
                const double v = l.cols[p * K + k];
                double *gr = l.gw64 + (khw * ICG + c % ICG) * d->OC + g * OCG;
                const float *gyr = gyn + p * d->OC + g * OCG;
                for (int64_t o = 0; o < OCG; o++) gr[o] += v * gyr[o];
            }
    }
    for (int64_t i = 0; i < nw; i++) gw[i] = (float)l.gw64[i];
done:
    cn_free(own);
    return s;
}
