/* Padding modes and padding as an op (forward and adjoint side by side).
 * Non-zero modes are how conv2d implements circular/reflect/... padding: the
 * input is padded into a workspace, convolved without padding, and the
 * gradient of the padded buffer is folded back through cn_pad2d_bwd. */
#include <string.h>

#include "internal.h"
#include "ops/conv_internal.h"

static const char *const mode_names[] = {"zeros",     "circular", "reflect",
                                         "replicate", "symmetric", "mean"};
_Static_assert(sizeof mode_names / sizeof mode_names[0] == CN_PAD_MODE_COUNT,
               "one name per padding mode");

const char *cn_pad_mode_name(cn_pad_mode m)
{
    return (unsigned)m < CN_PAD_MODE_COUNT ? mode_names[m] : NULL;
}

cn_status cn_pad_mode_parse(const char *name, cn_pad_mode *out)
{
    for (int m = 0; m < CN_PAD_MODE_COUNT; m++)
        if (name && strcmp(name, mode_names[m]) == 0) {
            *out = (cn_pad_mode)m;
            return CN_OK;
        }
    return cn__err(CN_ERR_INVALID_ARG,
                   "unknown padding mode '%s' (zeros, circular, reflect, replicate, symmetric, "
                   "mean)",
                   name ? name : "(null)");
}

int64_t cn__pad_src(int64_t i, int64_t n, cn_pad_mode m)
{
    if (i >= 0 && i < n) return i;
    switch (m) {
    case CN_PAD_CIRCULAR: return ((i % n) + n) % n;
    case CN_PAD_REFLECT:  /* pads < n, so one reflection suffices */
        return n == 1 ? 0 : (i < 0 ? -i : 2 * (n - 1) - i);
    case CN_PAD_REPLICATE: return i < 0 ? 0 : n - 1;
    case CN_PAD_SYMMETRIC: return i < 0 ? -i - 1 : 2 * n - 1 - i;
    default: return -1;  /* zeros and mean have no source pixel */
    }
}

cn_status cn_pad2d_check(int64_t H, int64_t W, int64_t pt, int64_t pb, int64_t pl, int64_t pr,
                         cn_pad_mode m, const char *op)
{
    if ((unsigned)m >= CN_PAD_MODE_COUNT)
        return cn__err(CN_ERR_INVALID_ARG, "%s: invalid padding mode %d", op, (int)m);
    const char *const pad_names[4] = {"pad_top", "pad_bottom", "pad_left", "pad_right"};
    const int64_t pads[4] = {pt, pb, pl, pr};
    for (int i = 0; i < 4; i++)
        if (pads[i] < 0)
            return cn__err(CN_ERR_INVALID_ARG, "%s: %s=%lld must be >= 0 (negative padding)", op,
                           pad_names[i], (long long)pads[i]);
    int64_t hmax = 0, wmax = 0;  /* largest pad each mode allows; < 0: unlimited */
    const char *rule = "";
    switch (m) {
    case CN_PAD_REFLECT: hmax = H - 1, wmax = W - 1, rule = "less than"; break;
    case CN_PAD_CIRCULAR:
    case CN_PAD_SYMMETRIC: hmax = H, wmax = W, rule = "at most"; break;
    default: return CN_OK;
    }
    if (CN__MAX(pt, pb) > hmax)
        return cn__err(CN_ERR_INVALID_ARG,
                       "%s: %s padding %lld must be %s the input height H=%lld", op,
                       mode_names[m], (long long)CN__MAX(pt, pb), rule, (long long)H);
    if (CN__MAX(pl, pr) > wmax)
        return cn__err(CN_ERR_INVALID_ARG, "%s: %s padding %lld must be %s the input width W=%lld",
                       op, mode_names[m], (long long)CN__MAX(pl, pr), rule, (long long)W);
    return CN_OK;
}

/* The checks both passes make before touching a buffer: the pads and mode
 * (cn_pad2d_check), every dimension >= 1, and the padded sizes and y's
 * element count countable (cn_shape_numel), so that no index wraps. */
static cn_status check_pass(int64_t N, int64_t H, int64_t W, int64_t C, int64_t pt, int64_t pb,
                            int64_t pl, int64_t pr, cn_pad_mode m, int64_t *PH, int64_t *PW)
{
    const char *const names[4] = {"N", "H", "W", "C"};
    const int64_t dims[4] = {N, H, W, C};
    for (int i = 0; i < 4; i++)
        if (dims[i] < 1)
            return cn__err(CN_ERR_INVALID_ARG, "pad2d: %s=%lld must be >= 1", names[i],
                           (long long)dims[i]);
    cn_status s = cn_pad2d_check(H, W, pt, pb, pl, pr, m, "pad2d");
    if (s) return s;
    if (__builtin_add_overflow(H, pt, PH) || __builtin_add_overflow(*PH, pb, PH))
        return cn__err(CN_ERR_OVERFLOW, "pad2d: H=%lld + pad_top=%lld + pad_bottom=%lld overflows",
                       (long long)H, (long long)pt, (long long)pb);
    if (__builtin_add_overflow(W, pl, PW) || __builtin_add_overflow(*PW, pr, PW))
        return cn__err(CN_ERR_OVERFLOW, "pad2d: W=%lld + pad_left=%lld + pad_right=%lld overflows",
                       (long long)W, (long long)pl, (long long)pr);
    const int64_t xs[4] = {N, H, W, C}, ys[4] = {N, *PH, *PW, C};
    size_t n;
    char bx[160], by[160];
    if (cn_shape_numel(4, xs, &n) || cn_shape_numel(4, ys, &n))
        return cn__err(CN_ERR_OVERFLOW, "pad2d: x %s padded to %s: element count overflows",
                       cn_shape_str(4, xs, bx, sizeof bx), cn_shape_str(4, ys, by, sizeof by));
    return CN_OK;
}

/* Per-(n, c) means of x [N,H,W,C] into mean [N,C], accumulated in double. */
static void channel_means(int64_t N, int64_t H, int64_t W, int64_t C, const float *x, double *acc,
                          float *mean)
{
    for (int64_t n = 0; n < N; n++) {
        memset(acc, 0, (size_t)C * sizeof *acc);
        const float *xn = x + n * H * W * C;
        for (int64_t p = 0; p < H * W; p++)
            for (int64_t c = 0; c < C; c++) acc[c] += xn[p * C + c];
        for (int64_t c = 0; c < C; c++) mean[n * C + c] = (float)(acc[c] / (double)(H * W));
    }
}

cn_status cn_pad2d_fwd(cn_ctx *ctx, int64_t N, int64_t H, int64_t W, int64_t C, int64_t pt,
                       int64_t pb, int64_t pl, int64_t pr, cn_pad_mode m, const float *x, float *y)
{
    (void)ctx;
    int64_t PH, PW;
    cn_status s = check_pass(N, H, W, C, pt, pb, pl, pr, m, &PH, &PW);
    if (s) return s;
    float *mean = NULL;
    double *acc = NULL;
    if (m == CN_PAD_MEAN) {
        mean = cn_alloc((size_t)(N * C) * sizeof *mean);
        acc = cn_alloc((size_t)C * sizeof *acc);
        if (!mean || !acc) {
            cn_free(mean);
            cn_free(acc);
            return cn__err(CN_ERR_NO_MEMORY, "pad2d: out of memory");
        }
        channel_means(N, H, W, C, x, acc, mean);
    }
    for (int64_t n = 0; n < N; n++)
        for (int64_t ph = 0; ph < PH; ph++)
            for (int64_t pw = 0; pw < PW; pw++) {
                float *yp = y + ((n * PH + ph) * PW + pw) * C;
                int64_t ih = cn__pad_src(ph - pt, H, m), iw = cn__pad_src(pw - pl, W, m);
                if (ih >= 0 && iw >= 0)
                    memcpy(yp, x + ((n * H + ih) * W + iw) * C, (size_t)C * sizeof *yp);
                else if (m == CN_PAD_MEAN)
                    memcpy(yp, mean + n * C, (size_t)C * sizeof *yp);
                else
                    memset(yp, 0, (size_t)C * sizeof *yp);
            }
    cn_free(mean);
    cn_free(acc);
    return CN_OK;
}

cn_status cn_pad2d_bwd(cn_ctx *ctx, int64_t N, int64_t H, int64_t W, int64_t C, int64_t pt,
                       int64_t pb, int64_t pl, int64_t pr, cn_pad_mode m, const float *gy, float *gx)
{
    (void)ctx;
    int64_t PH, PW;
    cn_status s = check_pass(N, H, W, C, pt, pb, pl, pr, m, &PH, &PW);
    if (s) return s;
    double *border = NULL;  /* mean mode: gradient reaching the border, per channel */
    if (m == CN_PAD_MEAN && !(border = cn_alloc((size_t)C * sizeof *border)))
        return cn__err(CN_ERR_NO_MEMORY, "pad2d: out of memory");
    memset(gx, 0, (size_t)(N * H * W * C) * sizeof *gx);
    for (int64_t n = 0; n < N; n++) {
        if (border) memset(border, 0, (size_t)C * sizeof *border);
        for (int64_t ph = 0; ph < PH; ph++)
            for (int64_t pw = 0; pw < PW; pw++) {
                const float *g = gy + ((n * PH + ph) * PW + pw) * C;
                int64_t ih = cn__pad_src(ph - pt, H, m), iw = cn__pad_src(pw - pl, W, m);
                if (ih >= 0 && iw >= 0) {
                    float *gp = gx + ((n * H + ih) * W + iw) * C;
                    for (int64_t c = 0; c < C; c++) gp[c] += g[c];
                } else if (border) {
                    for (int64_t c = 0; c < C; c++) border[c] += g[c];
                }
            }
        if (border) {
            float *gn = gx + n * H * W * C;
            for (int64_t p = 0; p < H * W; p++)
                for (int64_t c = 0; c < C; c++) gn[p * C + c] += (float)(border[c] / (double)(H * W));
        }
    }
    cn_free(border);
    return CN_OK;
}
