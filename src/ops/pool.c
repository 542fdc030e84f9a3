/* Pooling in NHWC: setup (the only place shapes are checked), then each
 * pass next to its adjoint. Semantics are PyTorch 1.13's max_pool2d,
 * avg_pool2d and adaptive_avg_pool2d(1). Innermost loops run over channels
 * and carry `omp simd`, because -O2's cost model leaves them scalar (the
 * lanes are independent channels, so the results equal the scalar loop's);
 * threads split rows of the output (or of gx) with a fixed partition, so
 * results do not depend on the thread count.
 *
 * One deliberate difference from PyTorch: with dilation a window can hold
 * no input pixel (H=2, kernel 2, pad 1, dilation 3). PyTorch returns -inf
 * with an index outside the window (even outside the plane), and its
 * backward then writes to that pixel or past the buffer. Here such a window
 * gives -inf and index -1, and the backward skips it.
 */
#include <math.h>
#include <string.h>

#include "convnet/pool.h"
#include "convnet/tensor.h"
#include "internal.h"

/* Channels per task in passes that parallelise over (image, channel block). */
#define CN__POOL_CBLOCK 64

cn_pool2d_params cn_pool2d_params_default(int kh, int kw)
{
    cn_pool2d_params p;
    memset(&p, 0, sizeof p);
    p.kernel_h = kh;
    p.kernel_w = kw;
    p.stride_h = kh;
    p.stride_w = kw;
    p.dil_h = p.dil_w = 1;
    p.count_include_pad = 1;
    return p;
}

/* floor(a / b) for b > 0 (C division truncates toward zero). */
static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/* PyTorch's pooling_output_shape: in ceil mode the last window must start
 * inside the input or the left padding, not in the right padding. */
static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t dil, int ceil_mode)
{
    int64_t o = floor_div(in + 2 * p - dil * (k - 1) - 1 + (ceil_mode ? s - 1 : 0), s) + 1;
    if (ceil_mode && (o - 1) * s >= in + p) o--;
    return o;
}

/* One axis of cn_pool2d_setup; ax is "h" or "w". */
static cn_status check_axis(const char *op, const char *ax, int k, int s, int p, int dil,
                            cn_pool_type type)
{
    if (k < 1) return cn__err(CN_ERR_INVALID_ARG, "%s: kernel_%s=%d must be >= 1", op, ax, k);
    if (s < 0)
        return cn__err(CN_ERR_INVALID_ARG, "%s: stride_%s=%d must be >= 0 (0: the kernel size)", op,
                       ax, s);
    if (p < 0) return cn__err(CN_ERR_INVALID_ARG, "%s: pad_%s=%d must be >= 0", op, ax, p);
    if (p > k / 2)
        return cn__err(CN_ERR_INVALID_ARG, "%s: pad_%s=%d should be at most half of kernel_%s=%d",
                       op, ax, p, ax, k);
    if (dil < 1) return cn__err(CN_ERR_INVALID_ARG, "%s: dil_%s=%d must be >= 1", op, ax, dil);
    if (type == CN_POOL_AVG && dil != 1)
        return cn__err(CN_ERR_INVALID_ARG, "%s: dil_%s=%d must be 1 (no dilated average)", op, ax,
                       dil);
    return CN_OK;
}

cn_status cn_pool2d_setup(cn_pool2d_desc *d, const cn_pool2d_params *p, cn_pool_type type,
                          const int64_t x_shape[4])
{
    if (!d || !p || !x_shape)
        return cn__err(CN_ERR_INVALID_ARG, "pool2d: d, p and x_shape must not be NULL");
    if ((unsigned)type >= CN_POOL_TYPE_COUNT)
        return cn__err(CN_ERR_INVALID_ARG, "pool2d: type=%d is not a cn_pool_type", (int)type);
    const char *op = type == CN_POOL_MAX ? "max_pool2d" : "avg_pool2d";
    cn_status s;
    if ((s = check_axis(op, "h", p->kernel_h, p->stride_h, p->pad_h, p->dil_h, type))) return s;
    if ((s = check_axis(op, "w", p->kernel_w, p->stride_w, p->pad_w, p->dil_w, type))) return s;
    if (p->ceil_mode != 0 && p->ceil_mode != 1)
        return cn__err(CN_ERR_INVALID_ARG, "%s: ceil_mode=%d must be 0 or 1", op, p->ceil_mode);
    if (p->count_include_pad != 0 && p->count_include_pad != 1)
        return cn__err(CN_ERR_INVALID_ARG, "%s: count_include_pad=%d must be 0 or 1", op,
                       p->count_include_pad);

    static const char *const dim_names[4] = {"N", "H", "W", "C"};
    for (int i = 0; i < 4; i++)
        if (x_shape[i] < 1)
            return cn__err(CN_ERR_INVALID_ARG, "%s: x %s=%lld must be >= 1", op, dim_names[i],
                           (long long)x_shape[i]);
    /* Bounding the element count first keeps every size below in int64. */
    char buf[160];
    size_t numel;
    if (cn_shape_numel(4, x_shape, &numel) != CN_OK)
        return cn__err(CN_ERR_OVERFLOW, "%s: x shape %s: element count overflows", op,
                       cn_shape_str(4, x_shape, buf, sizeof buf));

    int64_t KH = p->kernel_h, KW = p->kernel_w;
    int64_t SH = p->stride_h ? p->stride_h : KH, SW = p->stride_w ? p->stride_w : KW;
    int64_t H = x_shape[1], W = x_shape[2];
    int64_t OH = out_size(H, KH, SH, p->pad_h, p->dil_h, p->ceil_mode);
    int64_t OW = out_size(W, KW, SW, p->pad_w, p->dil_w, p->ceil_mode);
    if (OH < 1 || OW < 1)
        return cn__err(CN_ERR_INVALID_ARG,
                       "%s: output size OH=%lld OW=%lld is too small (x H=%lld W=%lld, "
                       "kernel %lldx%lld, stride %lldx%lld, pad %dx%d, dil %dx%d)",
                       op, (long long)OH, (long long)OW, (long long)H, (long long)W, (long long)KH,
                       (long long)KW, (long long)SH, (long long)SW, p->pad_h, p->pad_w, p->dil_h,
                       p->dil_w);
    int64_t y_shape[4] = {x_shape[0], OH, OW, x_shape[3]};
    if (cn_shape_numel(4, y_shape, &numel) != CN_OK)
        return cn__err(CN_ERR_OVERFLOW, "%s: y shape %s: element count overflows", op,
                       cn_shape_str(4, y_shape, buf, sizeof buf));

    d->type = type;
    d->MB = x_shape[0];
    d->IH = H;
    d->IW = W;
    d->C = x_shape[3];
    d->OH = OH;
    d->OW = OW;
    d->KH = KH;
    d->KW = KW;
    d->SH = SH;
    d->SW = SW;
    d->PH = p->pad_h;
    d->PW = p->pad_w;
    d->DH = p->dil_h;
    d->DW = p->dil_w;
    d->count_include_pad = p->count_include_pad;
    return CN_OK;
}

static cn_status check_pass(const cn_pool2d_desc *d, cn_pool_type type, const char *op,
                            const void *a, const void *b)
{
    if (!d || !a || !b) return cn__err(CN_ERR_INVALID_ARG, "%s: NULL descriptor or buffer", op);
    if (d->type != type)
        return cn__err(CN_ERR_INVALID_ARG, "%s: descriptor type=%d was set up for another op", op,
                       (int)d->type);
    return CN_OK;
}

/* ---- max pooling ---------------------------------------------------- */

/* Kernel taps k in [*lo, *hi) with start + k*dil inside [0, in). */
static void taps(int64_t start, int64_t k, int64_t dil, int64_t in, int64_t *lo, int64_t *hi)
{
    *lo = start < 0 ? (-start + dil - 1) / dil : 0;
    *hi = start < in ? CN__MIN((in - 1 - start) / dil + 1, k) : 0;
}

/* PyTorch's rule `val > maxval || isnan(val)`: the first maximum stays,
 * and every NaN, the last one included, replaces what came before. */
CN__MULTIVERSION static void max_step(float *restrict y, const float *restrict x, int64_t C)
{
#pragma omp simd
    for (int64_t c = 0; c < C; c++) y[c] = (x[c] > y[c] || isnan(x[c])) ? x[c] : y[c];
}

/* Vectorises from AVX2 on; SSE2 lacks the 64-bit select for idx. */
CN__MULTIVERSION static void max_step_idx(float *restrict y, int64_t *restrict idx,
                                          const float *restrict x, int64_t pos, int64_t C)
{
#pragma omp simd
    for (int64_t c = 0; c < C; c++) {
        int take = x[c] > y[c] || isnan(x[c]);
        y[c] = take ? x[c] : y[c];
        idx[c] = take ? pos : idx[c];
    }
}

/* The common 2x2 window with stride 2, no padding and no dilation, where
 * every window lies inside the input (a ceil-mode window hanging over the
 * edge takes the general path): windows do not overlap, and the taps are
 * fixed, so a whole output row is one loop. */
static int is_2x2_s2(const cn_pool2d_desc *d)
{
    return d->KH == 2 && d->KW == 2 && d->SH == 2 && d->SW == 2 && d->PH == 0 && d->PW == 0 &&
           d->DH == 1 && d->DW == 1 && 2 * d->OH <= d->IH && 2 * d->OW <= d->IW;
}

/* PyTorch's rule as in max_step, over the taps in their order: (0,0),
 * (0,1), (1,0), (1,1). */
#define MAX2X2_TAKE(v, m) ((v) > (m) || (v) != (v))

/* One output row of the 2x2 stride-2 case: x0 and x1 are input rows 2*oh and
 * 2*oh + 1 ([IW, C]), y and idx [OW, C]; pos is the index of x0's first
 * pixel in its plane. */
CN__MULTIVERSION static void max2x2_row_idx(int64_t OW, int64_t C, int64_t IW, int64_t pos,
                                            const float *restrict x0, const float *restrict x1,
                                            float *restrict y, int64_t *restrict idx)
{
    for (int64_t ow = 0; ow < OW; ow++) {
        const float *a = x0 + 2 * ow * C, *b = a + C, *c2 = x1 + 2 * ow * C, *e = c2 + C;
        const int64_t p = pos + 2 * ow;
        float *yp = y + ow * C;
        int64_t *ip = idx + ow * C;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) {
            float m = a[c];
            int64_t i = p;
            int t = MAX2X2_TAKE(b[c], m);
            m = t ? b[c] : m, i = t ? p + 1 : i;
            t = MAX2X2_TAKE(c2[c], m);
            m = t ? c2[c] : m, i = t ? p + IW : i;
            t = MAX2X2_TAKE(e[c], m);
            m = t ? e[c] : m, i = t ? p + IW + 1 : i;
            yp[c] = m;
            ip[c] = i;
        }
    }
}

CN__MULTIVERSION static void max2x2_row(int64_t OW, int64_t C, const float *restrict x0,
                                        const float *restrict x1, float *restrict y)
{
    for (int64_t ow = 0; ow < OW; ow++) {
        const float *a = x0 + 2 * ow * C, *b = a + C, *c2 = x1 + 2 * ow * C, *e = c2 + C;
        float *yp = y + ow * C;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) {
            float m = a[c];
            m = MAX2X2_TAKE(b[c], m) ? b[c] : m;
            m = MAX2X2_TAKE(c2[c], m) ? c2[c] : m;
            yp[c] = MAX2X2_TAKE(e[c], m) ? e[c] : m;
        }
    }
}

cn_status cn_max_pool2d_fwd(cn_ctx *ctx, const cn_pool2d_desc *d, const float *x, float *y,
                            int64_t *idx)
{
    cn_status s = check_pass(d, CN_POOL_MAX, "max_pool2d", x, y);
    if (s) return s;
    const int64_t C = d->C, IH = d->IH, IW = d->IW, OH = d->OH, OW = d->OW;
    const int nt = cn__threads(ctx);
    if (is_2x2_s2(d)) {
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
        for (int64_t r = 0; r < d->MB * OH; r++) {
            const int64_t n = r / OH, ih = 2 * (r % OH);
            const float *x0 = x + (n * IH + ih) * IW * C;
            if (idx)
                max2x2_row_idx(OW, C, IW, ih * IW, x0, x0 + IW * C, y + r * OW * C,
                               idx + r * OW * C);
            else
                max2x2_row(OW, C, x0, x0 + IW * C, y + r * OW * C);
        }
        return CN_OK;
    }
    /* x [MB,IH,IW,C], y and idx [MB,OH,OW,C]; one task per output row. */
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t r = 0; r < d->MB * OH; r++) {
        const int64_t n = r / OH, hs = (r % OH) * d->SH - d->PH;
        int64_t kh0, kh1, kw0, kw1;
        taps(hs, d->KH, d->DH, IH, &kh0, &kh1);
        for (int64_t ow = 0; ow < OW; ow++) {
            const int64_t ws = ow * d->SW - d->PW;
            float *yp = y + (r * OW + ow) * C;
            int64_t *ip = idx ? idx + (r * OW + ow) * C : NULL;
            taps(ws, d->KW, d->DW, IW, &kw0, &kw1);
            if (kh0 >= kh1 || kw0 >= kw1) {
                for (int64_t c = 0; c < C; c++) yp[c] = -INFINITY;
                if (ip)
                    for (int64_t c = 0; c < C; c++) ip[c] = -1;
                continue;
            }
            /* Starting from the first tap equals PyTorch's start from -inf
             * at the first tap's index: a value replaces -inf unless it is
             * -inf itself. */
            for (int64_t kh = kh0; kh < kh1; kh++) {
                const int64_t ih = hs + kh * d->DH;
                for (int64_t kw = kw0; kw < kw1; kw++) {
                    const int64_t iw = ws + kw * d->DW, pos = ih * IW + iw;
                    const float *xp = x + ((n * IH + ih) * IW + iw) * C;
                    if (kh == kh0 && kw == kw0) {
                        memcpy(yp, xp, (size_t)C * sizeof *yp);
                        if (ip)
                            for (int64_t c = 0; c < C; c++) ip[c] = pos;
                    } else if (ip) {
                        max_step_idx(yp, ip, xp, pos, C);
                    } else {
                        max_step(yp, xp, C);
                    }
                }
            }
        }
    }
    return CN_OK;
}

/* One output row of the 2x2 stride-2 backward: idx and gy [OW, C], g0 and
 * g1 the gx rows 2*oh and 2*oh + 1 ([IW, C]), pos the index of g0's first
 * pixel in its plane. Returns how many indices lie outside their window. */
CN__MULTIVERSION static int64_t max2x2_bwd_row(int64_t OW, int64_t C, int64_t IW, int64_t pos,
                                               const int64_t *restrict idx,
                                               const float *restrict gy, float *restrict g0,
                                               float *restrict g1)
{
    int64_t misses = 0;
    for (int64_t ow = 0; ow < OW; ow++) {
        const int64_t p = pos + 2 * ow, *ip = idx + ow * C;
        const float *gp = gy + ow * C;
        float *a = g0 + 2 * ow * C, *b = a + C, *c2 = g1 + 2 * ow * C, *e = c2 + C;
#pragma omp simd reduction(+ : misses)
        for (int64_t c = 0; c < C; c++) {
            /* 0 + g as the scatter's sum gives, so -0 becomes +0 there too. */
            const float g = gp[c] + 0.0f;
            const int64_t i = ip[c];
            a[c] = i == p ? g : 0.0f;
            b[c] = i == p + 1 ? g : 0.0f;
            c2[c] = i == p + IW ? g : 0.0f;
            e[c] = i == p + IW + 1 ? g : 0.0f;
            misses += i != p && i != p + 1 && i != p + IW && i != p + IW + 1;
        }
    }
    return misses;
}

cn_status cn_max_pool2d_bwd(cn_ctx *ctx, const cn_pool2d_desc *d, const int64_t *idx,
                            const float *gy, float *gx)
{
    cn_status s = check_pass(d, CN_POOL_MAX, "max_pool2d", idx, gy);
    if (s) return s;
    if (!gx) return cn__err(CN_ERR_INVALID_ARG, "max_pool2d: gx must not be NULL");
    const int64_t C = d->C, plane = d->IH * d->IW, opix = d->OH * d->OW;
    const int64_t ncb = (C + CN__POOL_CBLOCK - 1) / CN__POOL_CBLOCK;
    const int nt = cn__threads(ctx);
    if (is_2x2_s2(d)) {
        /* Gathered instead of scattered: each window writes its own four
         * pixels, gy where idx points and 0 elsewhere, so gx needs no
         * zeroing pass; pixels outside every window (an odd last row or
         * column) are zeroed. An index outside its window (not one the
         * forward pass wrote) sends everything through the scatter below. */
        const int64_t IH = d->IH, IW = d->IW, OH = d->OH, OW = d->OW;
        int64_t misses = 0;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static) reduction(+ : misses)
        for (int64_t r = 0; r < d->MB * OH; r++) {
            const int64_t n = r / OH, oh = r % OH, ih = 2 * oh;
            float *g0 = gx + (n * IH + ih) * IW * C;
            misses += max2x2_bwd_row(OW, C, IW, ih * IW, idx + r * OW * C, gy + r * OW * C, g0,
                                     g0 + IW * C);
            /* This row's leftover column, and after the last window row
             * the leftover input rows. */
            for (int64_t i = 2 * OW * C; i < IW * C; i++) g0[i] = g0[IW * C + i] = 0.0f;
            if (oh == OH - 1)
                for (int64_t i = 2 * IW * C; i < (IH - ih) * IW * C; i++) g0[i] = 0.0f;
        }
        if (!misses) return CN_OK;
    }
    /* Overlapping windows scatter into the same pixel, so each task owns
     * one (image, channel block) of gx and walks the outputs in order: no
     * two tasks write one element, and the sums do not depend on threads. */
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t t = 0; t < d->MB * ncb; t++) {
        const int64_t n = t / ncb, c0 = t % ncb * CN__POOL_CBLOCK;
        const int64_t c1 = CN__MIN(c0 + CN__POOL_CBLOCK, C);
        float *gxn = gx + n * plane * C;
        for (int64_t p = 0; p < plane; p++)
            for (int64_t c = c0; c < c1; c++) gxn[p * C + c] = 0.0f;
        for (int64_t o = 0; o < opix; o++) {
            const int64_t *ip = idx + (n * opix + o) * C;
            const float *gyp = gy + (n * opix + o) * C;
            for (int64_t c = c0; c < c1; c++)
                /* -1 marks a window without pixels; the bound also keeps
                 * a corrupt index from writing outside gx. */
                if ((uint64_t)ip[c] < (uint64_t)plane) gxn[ip[c] * C + c] += gyp[c];
        }
    }
    return CN_OK;
}

/* ---- average pooling ------------------------------------------------ */

/* PyTorch's window for output o on one axis: the padded extent (clipped to
 * the right padding, which ceil mode can overshoot) and the pixels in it. */
typedef struct {
    int64_t padded, lo, hi;
} avg_window;

static avg_window avg_axis(int64_t o, int64_t s, int64_t p, int64_t k, int64_t in)
{
    const int64_t start = o * s - p, end = CN__MIN(start + k, in + p);
    avg_window w = {end - start, CN__MAX(start, 0), CN__MIN(end, in)};
    return w;
}

static int64_t avg_divisor(const cn_pool2d_desc *d, avg_window h, avg_window w)
{
    return d->count_include_pad ? h.padded * w.padded : (h.hi - h.lo) * (w.hi - w.lo);
}

cn_status cn_avg_pool2d_fwd(cn_ctx *ctx, const cn_pool2d_desc *d, const float *x, float *y)
{
    cn_status s = check_pass(d, CN_POOL_AVG, "avg_pool2d", x, y);
    if (s) return s;
    const int64_t C = d->C, IH = d->IH, IW = d->IW, OH = d->OH, OW = d->OW;
    const int nt = cn__threads(ctx);
    /* x [MB,IH,IW,C], y [MB,OH,OW,C]; one task per output row. */
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t r = 0; r < d->MB * OH; r++) {
        const int64_t n = r / OH;
        const avg_window wh = avg_axis(r % OH, d->SH, d->PH, d->KH, IH);
        for (int64_t ow = 0; ow < OW; ow++) {
            const avg_window ww = avg_axis(ow, d->SW, d->PW, d->KW, IW);
            float *restrict yp = y + (r * OW + ow) * C;
            for (int64_t c = 0; c < C; c++) yp[c] = 0.0f;
            /* Unreachable with setup's rules; PyTorch leaves 0 here too. */
            if (wh.lo >= wh.hi || ww.lo >= ww.hi) continue;
            for (int64_t ih = wh.lo; ih < wh.hi; ih++)
                for (int64_t iw = ww.lo; iw < ww.hi; iw++) {
                    const float *restrict xp = x + ((n * IH + ih) * IW + iw) * C;
#pragma omp simd
                    for (int64_t c = 0; c < C; c++) yp[c] += xp[c];
                }
            const float div = (float)avg_divisor(d, wh, ww);
#pragma omp simd
            for (int64_t c = 0; c < C; c++) yp[c] /= div;
        }
    }
    return CN_OK;
}

cn_status cn_avg_pool2d_bwd(cn_ctx *ctx, const cn_pool2d_desc *d, const float *gy, float *gx)
{
    cn_status s = check_pass(d, CN_POOL_AVG, "avg_pool2d", gy, gx);
    if (s) return s;
    const int64_t C = d->C, IH = d->IH, IW = d->IW, OH = d->OH, OW = d->OW;
    const int nt = cn__threads(ctx);
    /* Gathered by gx row so that no two tasks write the same pixel: row ih
     * lies in the windows oh with oh*SH - PH <= ih < oh*SH - PH + KH (the
     * right-padding clip never cuts below IH). */
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t r = 0; r < d->MB * IH; r++) {
        const int64_t n = r / IH, ih = r % IH;
        float *restrict gxr = gx + r * IW * C;
        for (int64_t i = 0; i < IW * C; i++) gxr[i] = 0.0f;
        const int64_t oh0 = CN__MAX(floor_div(ih + d->PH - d->KH, d->SH) + 1, 0);
        const int64_t oh1 = CN__MIN((ih + d->PH) / d->SH, OH - 1);
        for (int64_t oh = oh0; oh <= oh1; oh++) {
            const avg_window wh = avg_axis(oh, d->SH, d->PH, d->KH, IH);
            for (int64_t ow = 0; ow < OW; ow++) {
                const avg_window ww = avg_axis(ow, d->SW, d->PW, d->KW, IW);
                const float div = (float)avg_divisor(d, wh, ww);
                const float *restrict gyp = gy + (((n * OH + oh) * OW) + ow) * C;
                for (int64_t iw = ww.lo; iw < ww.hi; iw++)
#pragma omp simd
                    for (int64_t c = 0; c < C; c++) gxr[iw * C + c] += gyp[c] / div;
            }
        }
    }
    return CN_OK;
}

/* ---- global average pooling ----------------------------------------- */

static cn_status check_global(int64_t N, int64_t H, int64_t W, int64_t C, const void *a,
                              const void *b)
{
    if (!a || !b) return cn__err(CN_ERR_INVALID_ARG, "global_avg_pool2d: NULL buffer");
    const int64_t shape[4] = {N, H, W, C};
    static const char *const names[4] = {"N", "H", "W", "C"};
    for (int i = 0; i < 4; i++)
        if (shape[i] < 1)
            return cn__err(CN_ERR_INVALID_ARG, "global_avg_pool2d: x %s=%lld must be >= 1",
                           names[i], (long long)shape[i]);
    size_t numel;
    char buf[160];
    if (cn_shape_numel(4, shape, &numel) != CN_OK)
        return cn__err(CN_ERR_OVERFLOW, "global_avg_pool2d: x shape %s: element count overflows",
                       cn_shape_str(4, shape, buf, sizeof buf));
    return CN_OK;
}

cn_status cn_global_avg_pool2d_fwd(cn_ctx *ctx, int64_t N, int64_t H, int64_t W, int64_t C,
                                   const float *x, float *y)
{
    cn_status s = check_global(N, H, W, C, x, y);
    if (s) return s;
    const int64_t plane = H * W, ncb = (C + CN__POOL_CBLOCK - 1) / CN__POOL_CBLOCK;
    const int nt = cn__threads(ctx);
    /* x [N,H,W,C] -> y [N,C]. Whole planes are summed, so the sums are in
     * double: float would lose digits over a 224x224 plane. */
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t t = 0; t < N * ncb; t++) {
        const int64_t n = t / ncb, c0 = t % ncb * CN__POOL_CBLOCK;
        const int64_t nc = CN__MIN(CN__POOL_CBLOCK, C - c0);
        double acc[CN__POOL_CBLOCK] = {0};
        for (int64_t p = 0; p < plane; p++) {
            const float *xp = x + (n * plane + p) * C + c0;
#pragma omp simd
            for (int64_t c = 0; c < nc; c++) acc[c] += xp[c];
        }
        for (int64_t c = 0; c < nc; c++) y[n * C + c0 + c] = (float)(acc[c] / (double)plane);
    }
    return CN_OK;
}

cn_status cn_global_avg_pool2d_bwd(cn_ctx *ctx, int64_t N, int64_t H, int64_t W, int64_t C,
                                   const float *gy, float *gx)
{
    cn_status s = check_global(N, H, W, C, gy, gx);
    if (s) return s;
    const float area = (float)(H * W);
    const int nt = cn__threads(ctx);
    /* gy [N,C] -> gx [N,H,W,C]; one task per gx row. */
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t r = 0; r < N * H; r++) {
        const float *gyn = gy + r / H * C;
        float *gxr = gx + r * W * C;
        for (int64_t w = 0; w < W; w++)
#pragma omp simd
            for (int64_t c = 0; c < C; c++) gxr[w * C + c] = gyn[c] / area;
    }
    return CN_OK;
}
