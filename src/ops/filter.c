/* Classic image filters expressed as one depthwise convolution, so that they
 * share conv2d's kernels and its padding modes instead of a second
 * hand-written stencil loop. */
#include <math.h>
#include <string.h>

#include "convnet/conv.h"
#include "convnet/image.h"
#include "internal.h"

/* Largest kernel side: a 1001x1001 kernel is already 4 MB per channel and
 * needs an image of at least 501x501 for reflect padding. */
#define FILTER_MAX_K 1001

static const float sobel_x[9] = {-1, 0, 1, -2, 0, 2, -1, 0, 1};
static const float laplacian[9] = {0, 1, 0, 1, -4, 1, 0, 1, 0};
static const float sharpen[9] = {0, -1, 0, -1, 5, -1, 0, -1, 0};

static cn_status kernel_from(int64_t KH, int64_t KW, const float *k, cn_tensor **out)
{
    int64_t shape[2] = {KH, KW};
    cn_status s = cn_tensor_new(out, 2, shape);
    if (s) return s;
    if (k) memcpy((*out)->data, k, (size_t)(KH * KW) * sizeof(float));
    return CN_OK;
}

/* [K,K] Gaussian with K = 2*ceil(3*sigma)+1, the outer product of a 1-D
 * Gaussian normalised in double so that the 2-D kernel sums to 1 and is
 * exactly symmetric. */
static cn_status gaussian(float sigma, cn_tensor **out)
{
    if (!(sigma > 0.0f) || !isfinite(sigma))
        return cn__err(CN_ERR_INVALID_ARG, "filter: gaussian sigma=%g must be > 0", sigma);
    double r = ceil(3.0 * (double)sigma);
    if (2 * r + 1 > FILTER_MAX_K)
        return cn__err(CN_ERR_INVALID_ARG,
                       "filter: gaussian sigma=%g needs a %.0fx%.0f kernel (at most %d)", sigma,
                       2 * r + 1, 2 * r + 1, FILTER_MAX_K);
    int R = (int)r, K = 2 * R + 1;
    double g[FILTER_MAX_K], sum = 0;
    for (int i = 0; i < K; i++) {
        const double d = i - R; /* -R..R */
        sum += g[i] = exp(-d * d / (2.0 * sigma * sigma));
    }
    for (int i = 0; i < K; i++) g[i] /= sum;
    cn_status s = kernel_from(K, K, NULL, out);
    if (s) return s;
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) (*out)->data[i * K + j] = (float)(g[i] * g[j]);
    return CN_OK;
}

static cn_status box(float size, cn_tensor **out)
{
    if (!(size >= 1.0f) || size > FILTER_MAX_K || size != floorf(size) ||
        fmodf(size, 2.0f) != 1.0f)
        return cn__err(CN_ERR_INVALID_ARG,
                       "filter: box size K=%g must be an odd integer between 1 and %d", size,
                       FILTER_MAX_K);
    int K = (int)size;
    cn_status s = kernel_from(K, K, NULL, out);
    if (s) return s;
    float v = 1.0f / (float)(K * K);
    for (size_t i = 0; i < (*out)->size; i++) (*out)->data[i] = v;
    return CN_OK;
}

/* A user kernel: [KH,KW] or [KH,KW,1,1] (a one-channel conv weight). */
static cn_status user_kernel(const cn_tensor *k, cn_tensor **out)
{
    if (!k) return cn__err(CN_ERR_INVALID_ARG, "filter: kernel filter without a kernel tensor");
    char sh[160];
    if (!(k->ndim == 2 || (k->ndim == 4 && k->shape[2] == 1 && k->shape[3] == 1)))
        return cn__err(CN_ERR_INVALID_ARG, "filter: kernel shape %s is not [KH,KW] or [KH,KW,1,1]",
                       cn_shape_str(k->ndim, k->shape, sh, sizeof sh));
    int64_t KH = k->shape[0], KW = k->shape[1];
    if (KH < 1 || KW < 1 || KH % 2 == 0 || KW % 2 == 0 || KH > FILTER_MAX_K || KW > FILTER_MAX_K)
        return cn__err(CN_ERR_INVALID_ARG,
                       "filter: kernel shape %s: KH=%lld and KW=%lld must be odd, 1 to %d",
                       cn_shape_str(k->ndim, k->shape, sh, sizeof sh), (long long)KH,
                       (long long)KW, FILTER_MAX_K);
    return kernel_from(KH, KW, k->data, out);
}

cn_status cn_filter_kernel(const cn_filter_spec *f, cn_tensor **out)
{
    *out = NULL;
    if (!f) return cn__err(CN_ERR_INVALID_ARG, "filter: spec is NULL");
    switch (f->kind) {
    case CN_FILTER_GAUSSIAN: return gaussian(f->param, out);
    case CN_FILTER_BOX: return box(f->param, out);
    case CN_FILTER_SOBEL:
    case CN_FILTER_SOBEL_X: return kernel_from(3, 3, sobel_x, out);
    case CN_FILTER_SOBEL_Y: {
        cn_status s = kernel_from(3, 3, NULL, out);
        if (s) return s;
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) (*out)->data[i * 3 + j] = sobel_x[j * 3 + i];
        return CN_OK;
    }
    case CN_FILTER_LAPLACIAN: return kernel_from(3, 3, laplacian, out);
    case CN_FILTER_SHARPEN: return kernel_from(3, 3, sharpen, out);
    case CN_FILTER_KERNEL: return user_kernel(f->kernel, out);
    default: return cn__err(CN_ERR_INVALID_ARG, "filter: unknown filter kind %d", (int)f->kind);
    }
}

cn_status cn_image_filter(cn_ctx *ctx, const cn_filter_spec *f, const cn_tensor *img,
                          cn_tensor **out)
{
    *out = NULL;
    if (!img) return cn__err(CN_ERR_INVALID_ARG, "filter: image is NULL");
    char sh[160];
    /* The shape is what sizes every loop below: it must agree with the
     * tensor's size (a hand-filled struct may not). */
    size_t numel;
    cn_status s = cn_shape_numel(img->ndim, img->shape, &numel);
    if (s)
        return cn__err(s, "filter: image shape %s: %s",
                       cn_shape_str(img->ndim, img->shape, sh, sizeof sh), cn_last_error());
    if (numel != img->size || (numel && !img->data))
        return cn__err(CN_ERR_INVALID_ARG,
                       "filter: image shape %s has %zu elements, but its size is %zu%s",
                       cn_shape_str(img->ndim, img->shape, sh, sizeof sh), numel, img->size,
                       img->data ? "" : " and data is NULL");
    if ((img->ndim != 2 && img->ndim != 3) || img->size == 0)
        return cn__err(CN_ERR_INVALID_ARG, "filter: image shape %s is not a non-empty [H,W,C]",
                       cn_shape_str(img->ndim, img->shape, sh, sizeof sh));
    int64_t H = img->shape[0], W = img->shape[1], C = img->ndim == 3 ? img->shape[2] : 1;

    cn_tensor *k;
    s = cn_filter_kernel(f, &k);
    if (s) return s;
    int64_t KH = k->shape[0], KW = k->shape[1], PH = (KH - 1) / 2, PW = (KW - 1) / 2;
    /* Reflect padding mirrors without repeating the edge, so it needs more
     * pixels than it pads. */
    if (PH >= H || PW >= W) {
        cn_tensor_free(k);
        return cn__err(CN_ERR_INVALID_ARG,
                       "filter: a %lldx%lld (HxW) image is too small for a %lldx%lld kernel: "
                       "reflect padding needs H > %lld and W > %lld",
                       (long long)H, (long long)W, (long long)KH, (long long)KW, (long long)PH,
                       (long long)PW);
    }

    /* Sobel runs x and y in the same convolution: depth multiplier M = 2, so
     * output channel c*M + m is kernel m applied to input channel c. */
    int sobel = f->kind == CN_FILTER_SOBEL;
    int64_t M = sobel ? 2 : 1, OC = C * M;
    cn_conv2d_params p = cn_conv2d_params_default();
    p.pad_top = p.pad_bottom = (int)PH;
    p.pad_left = p.pad_right = (int)PW;
    p.groups = (int)C;
    p.pad_mode = CN_PAD_REFLECT;
    int64_t xs[4] = {1, H, W, C}, wsh[4] = {KH, KW, 1, OC};
    cn_conv2d_desc d;
    s = cn_conv2d_setup(&d, &p, xs, wsh);
    if (s) {
        cn_tensor_free(k);
        return s;
    }

    cn_tensor *w = NULL, *y = NULL, *res = NULL;
    s = cn_tensor_new(&w, 4, wsh);
    if (!s) s = cn_tensor_new(&res, img->ndim, img->shape);
    int64_t ys[3] = {H, W, OC};
    if (!s && sobel) s = cn_tensor_new(&y, 3, ys);
    if (s) goto done;

    /* w [KH, KW, 1, OC] */
    for (int64_t t = 0; t < KH * KW; t++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t m = 0; m < M; m++) {
                /* the y kernel is the x kernel transposed */
                int64_t src = m == 0 ? t : (t % KW) * KW + t / KW;
                w->data[t * OC + c * M + m] = k->data[src];
            }

    s = cn_conv2d_fwd(ctx, &d, img->data, w->data, NULL, sobel ? y->data : res->data, NULL);
    if (s || !sobel) goto done;

    float mx = 0.0f;
    for (int64_t i = 0; i < H * W * C; i++) {
        float gx = y->data[2 * i], gy = y->data[2 * i + 1];
        float v = sqrtf(gx * gx + gy * gy);
        res->data[i] = v;
        if (v > mx) mx = v;
    }
    if (mx > 0.0f) {
        float scale = 255.0f / mx;
        for (int64_t i = 0; i < H * W * C; i++) res->data[i] *= scale;
    }

done:
    cn_tensor_free(k);
    cn_tensor_free(w);
    cn_tensor_free(y);
    if (s) {
        cn_tensor_free(res);
        return s;
    }
    *out = res;
    return CN_OK;
}
