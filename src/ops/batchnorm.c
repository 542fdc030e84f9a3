/* Batch norm over NHWC data seen as [M, C] rows, with PyTorch's semantics:
 * biased batch variance to normalise, unbiased for the running variance,
 * running = (1 - momentum) * running + momentum * batch, eps inside the
 * square root.
 *
 * Channels are processed in blocks of CB so that per-channel sums live on
 * the stack (no allocation) while the innermost loop still runs along a
 * contiguous row; `omp simd` vectorises it (at -O2 gcc will not add the
 * run-time overlap checks itself), and no such loop reorders a sum.
 * Statistics are summed in double, serially, in row order; only the
 * elementwise passes are split across threads, over rows, so the results
 * do not depend on the thread count. */
#include <math.h>

#include "convnet/ops.h"
#include "internal.h"

#define CB 256
/* Below this many elements a parallel region costs more than it saves. */
#define PAR_MIN 32768

/* s[c] = sum over rows of x[m, c0 + c], c < cb. */
static void col_sums(int64_t M, int64_t C, int64_t c0, int64_t cb, const float *x, double *s)
{
    for (int64_t c = 0; c < cb; c++) s[c] = 0.0;
    for (int64_t m = 0; m < M; m++) {
        const float *r = x + m * C + c0;
#pragma omp simd
        for (int64_t c = 0; c < cb; c++) s[c] += r[c];
    }
}

/* s[c] = sum over rows of (x[m, c0 + c] - mean[c])^2. */
static void col_sq_dev(int64_t M, int64_t C, int64_t c0, int64_t cb, const float *x,
                       const double *mean, double *s)
{
    for (int64_t c = 0; c < cb; c++) s[c] = 0.0;
    for (int64_t m = 0; m < M; m++) {
        const float *r = x + m * C + c0;
#pragma omp simd
        for (int64_t c = 0; c < cb; c++) {
            const double d = r[c] - mean[c];
            s[c] += d * d;
        }
    }
}

/* y[m, c0 + c] = (x - mean[c]) * scale[c] + shift[c] for every row, the
 * double mean split into float hi + lo: x - hi is exact when x is near the
 * mean, so the result keeps float precision even when |mean| dwarfs the
 * standard deviation (x * scale + (shift - mean * scale) would cancel). */
static void normalise(int nt, int64_t M, int64_t C, int64_t c0, int64_t cb, const float *x,
                      const float *hi, const float *lo, const float *scale, const float *shift,
                      float *y)
{
#pragma omp parallel for num_threads(nt) if (nt > 1 && M * cb >= PAR_MIN) schedule(static)
    for (int64_t m = 0; m < M; m++) {
        const float *xr = x + m * C + c0;
        float *yr = y + m * C + c0;
#pragma omp simd
        for (int64_t c = 0; c < cb; c++) yr[c] = ((xr[c] - hi[c]) - lo[c]) * scale[c] + shift[c];
    }
}

cn_status cn_batchnorm_fwd(cn_ctx *ctx, const cn_bn_params *p, int training, int64_t M,
                           int64_t C, const float *x, const float *gamma, const float *beta,
                           float *running_mean, float *running_var, float *save_mean,
                           float *save_invstd, float *y)
{
    const cn_bn_params def = {1e-5f, 0.1f};
    if (!p) p = &def;
    if (M < 0 || C < 0)
        return cn__err(CN_ERR_INVALID_ARG, "batchnorm: M=%lld and C=%lld must be >= 0",
                       (long long)M, (long long)C);
    if (!(p->eps >= 0.0f) || isinf(p->eps))
        return cn__err(CN_ERR_INVALID_ARG, "batchnorm: eps=%g must be finite and >= 0",
                       (double)p->eps);
    if (!(p->momentum >= 0.0f && p->momentum <= 1.0f))
        return cn__err(CN_ERR_INVALID_ARG, "batchnorm: momentum=%g outside [0, 1]",
                       (double)p->momentum);
    if (training && M < 2)
        return cn__err(CN_ERR_INVALID_ARG,
                       "batchnorm: training needs more than 1 value per channel (M=%lld)",
                       (long long)M);
    if (!training && (!running_mean || !running_var))
        return cn__err(CN_ERR_INVALID_ARG,
                       "batchnorm: evaluation needs running_mean and running_var");
    int64_t MC;
    if (cn__mul_i64(M, C, &MC))
        return cn__err(CN_ERR_OVERFLOW, "batchnorm: M=%lld x C=%lld overflows", (long long)M,
                       (long long)C);

    const int nt = cn__threads(ctx);
    const double eps = p->eps, mom = p->momentum;
    for (int64_t c0 = 0; c0 < C; c0 += CB) {
        const int64_t cb = CN__MIN(CB, C - c0);
        double mean[CB], var[CB];
        if (training) {
            col_sums(M, C, c0, cb, x, mean);
            for (int64_t c = 0; c < cb; c++) mean[c] /= (double)M;
            /* Two passes: the textbook E[x^2] - E[x]^2 cancels. */
            col_sq_dev(M, C, c0, cb, x, mean, var);
            for (int64_t c = 0; c < cb; c++) {
                const double ss = var[c];
                var[c] = ss / (double)M;
                if (running_mean)
                    running_mean[c0 + c] =
                        (float)((1.0 - mom) * running_mean[c0 + c] + mom * mean[c]);
                if (running_var)
                    running_var[c0 + c] =
                        (float)((1.0 - mom) * running_var[c0 + c] + mom * (ss / (double)(M - 1)));
            }
        } else {
            for (int64_t c = 0; c < cb; c++) {
                mean[c] = running_mean[c0 + c];
                var[c] = running_var[c0 + c];
            }
        }
        float hi[CB], lo[CB], scale[CB], shift[CB];
        for (int64_t c = 0; c < cb; c++) {
            const double invstd = 1.0 / sqrt(var[c] + eps);
            hi[c] = (float)mean[c];
            lo[c] = (float)(mean[c] - hi[c]);
            scale[c] = (float)(invstd * (gamma ? gamma[c0 + c] : 1.0f));
            shift[c] = beta ? beta[c0 + c] : 0.0f;
            if (save_mean) save_mean[c0 + c] = hi[c];
            if (save_invstd) save_invstd[c0 + c] = (float)invstd;
        }
        normalise(nt, M, C, c0, cb, x, hi, lo, scale, shift, y);
    }
    return CN_OK;
}

void cn_batchnorm_bwd(cn_ctx *ctx, int training, int64_t M, int64_t C, const float *x,
                      const float *gamma, const float *save_mean, const float *save_invstd,
                      const float *gy, float *gx, float *ggamma, float *gbeta)
{
    if (M <= 0 || C <= 0) {
        for (int64_t c = 0; c < C; c++) {
            if (ggamma) ggamma[c] = 0.0f;
            if (gbeta) gbeta[c] = 0.0f;
        }
        return;
    }
    const int nt = cn__threads(ctx);
    for (int64_t c0 = 0; c0 < C; c0 += CB) {
        const int64_t cb = CN__MIN(CB, C - c0);
        /* sgy = sum gy, sgxc = sum gy * (x - mean): gbeta and ggamma / invstd. */
        double sgy[CB], sgxc[CB];
        for (int64_t c = 0; c < cb; c++) sgy[c] = sgxc[c] = 0.0;
        const float *mean = save_mean + c0, *invstd = save_invstd + c0;
        for (int64_t m = 0; m < M; m++) {
            const float *xr = x + m * C + c0, *gr = gy + m * C + c0;
#pragma omp simd
            for (int64_t c = 0; c < cb; c++) {
                sgy[c] += gr[c];
                sgxc[c] += (double)gr[c] * ((double)xr[c] - mean[c]);
            }
        }
        /* Training: gx = k * (gy - mean(gy) - xhat * mean(gy * xhat)) with
         * k = gamma * invstd and xhat = (x - mean) * invstd; the batch
         * statistics depend on x too. Evaluation: gx = k * gy. */
        float k[CB], a[CB], b[CB];
        for (int64_t c = 0; c < cb; c++) {
            const double is = invstd[c], gxhat = sgxc[c] * is;
            if (ggamma) ggamma[c0 + c] = (float)gxhat;
            if (gbeta) gbeta[c0 + c] = (float)sgy[c];
            k[c] = (float)((gamma ? gamma[c0 + c] : 1.0f) * is);
            a[c] = training ? (float)(sgy[c] / (double)M) : 0.0f;
            /* Folds xhat's invstd in: xhat * b = (x - mean) * b. */
            b[c] = training ? (float)(gxhat / (double)M * is) : 0.0f;
        }
        if (!gx) continue;
        /* Separate loops: in evaluation x must not reach gx (0 * inf). */
        if (training) {
#pragma omp parallel for num_threads(nt) if (nt > 1 && M * cb >= PAR_MIN) schedule(static)
            for (int64_t m = 0; m < M; m++) {
                const float *xr = x + m * C + c0, *gr = gy + m * C + c0;
                float *gxr = gx + m * C + c0;
#pragma omp simd
                for (int64_t c = 0; c < cb; c++)
                    gxr[c] = k[c] * (gr[c] - a[c] - (xr[c] - mean[c]) * b[c]);
            }
        } else {
#pragma omp parallel for num_threads(nt) if (nt > 1 && M * cb >= PAR_MIN) schedule(static)
            for (int64_t m = 0; m < M; m++) {
                const float *gr = gy + m * C + c0;
                float *gxr = gx + m * C + c0;
#pragma omp simd
                for (int64_t c = 0; c < cb; c++) gxr[c] = k[c] * gr[c];
            }
        }
    }
}
