/* Elementwise activations: relu, leaky relu, tanh, sigmoid, forward and
 * backward. A NaN input gives a NaN output and a NaN gradient, so that a
 * diverging network shows up in its parameter gradients rather than being
 * masked to zero (PyTorch's relu backward would give 0 there). */
#include <math.h>

#include "convnet/ops.h"
#include "internal.h"

/* Below this many elements a parallel region costs more than it saves. */
#define PAR_MIN 32768

/* Loop bodies load every operand unconditionally and select only between
 * values, never between computations: gcc will not if-convert (and so not
 * vectorise) a conditional load or floating-point multiply. A shared slope
 * is made firstprivate for the same reason (else it is loaded in a branch). */

void cn_act_fwd(cn_ctx *ctx, cn_act a, float slope, size_t n, const float *x, float *y)
{
    const int64_t len = (int64_t)n;
    const int nt = cn__threads(ctx);
    switch (a) {
    case CN_ACT_RELU:
        /* Not fmaxf: fmaxf(NaN, 0) is 0. */
#pragma omp parallel for simd num_threads(nt) if (parallel : nt > 1 && len >= PAR_MIN) \
    schedule(static)
        for (int64_t i = 0; i < len; i++) y[i] = x[i] > 0 ? x[i] : (x[i] != x[i] ? x[i] : 0.0f);
        break;
    case CN_ACT_LEAKY_RELU:
        /* pos + slope * neg rather than v > 0 ? v : slope * v, whose
         * conditional multiply gcc will not vectorise; a NaN lands in neg. */
#pragma omp parallel for simd num_threads(nt) if (parallel : nt > 1 && len >= PAR_MIN) \
    schedule(static) firstprivate(slope)
        for (int64_t i = 0; i < len; i++) {
            const float v = x[i], pos = v > 0 ? v : 0.0f, neg = v > 0 ? 0.0f : v;
            y[i] = pos + slope * neg;
        }
        break;
    case CN_ACT_TANH:
#pragma omp parallel for simd num_threads(nt) if (parallel : nt > 1 && len >= PAR_MIN) \
    schedule(static)
        for (int64_t i = 0; i < len; i++) y[i] = tanhf(x[i]);
        break;
    case CN_ACT_SIGMOID:
        /* exp(-x) overflows to inf for x < -88, giving exactly 0: no NaN. */
#pragma omp parallel for simd num_threads(nt) if (parallel : nt > 1 && len >= PAR_MIN) \
    schedule(static)
        for (int64_t i = 0; i < len; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    default:
        break;
    }
}

void cn_act_bwd(cn_ctx *ctx, cn_act a, float slope, size_t n, const float *x, const float *y,
                const float *gy, float *gx)
{
    const int64_t len = (int64_t)n;
    const int nt = cn__threads(ctx);
    switch (a) {
    case CN_ACT_RELU:
        /* From y: y > 0 exactly where x > 0, and y is NaN where x is. */
#pragma omp parallel for simd num_threads(nt) if (parallel : nt > 1 && len >= PAR_MIN) \
    schedule(static)
        for (int64_t i = 0; i < len; i++) {
            const float v = y[i], g = gy[i];
            gx[i] = v > 0 ? g : (v != v ? v : 0.0f);
        }
        break;
    case CN_ACT_LEAKY_RELU:
        /* From x: with slope < 0 the sign of x is not recoverable from y. */
#pragma omp parallel for simd num_threads(nt) if (parallel : nt > 1 && len >= PAR_MIN) \
    schedule(static) firstprivate(slope)
        for (int64_t i = 0; i < len; i++) {
            const float v = x[i], g = gy[i];
            const float pos = v > 0 ? g : (v != v ? v : 0.0f), neg = v > 0 ? 0.0f : g;
            gx[i] = pos + slope * neg;
        }
        break;
    case CN_ACT_TANH:
#pragma omp parallel for simd num_threads(nt) if (parallel : nt > 1 && len >= PAR_MIN) \
    schedule(static)
        for (int64_t i = 0; i < len; i++) gx[i] = gy[i] * (1.0f - y[i] * y[i]);
        break;
    case CN_ACT_SIGMOID:
#pragma omp parallel for simd num_threads(nt) if (parallel : nt > 1 && len >= PAR_MIN) \
    schedule(static)
        for (int64_t i = 0; i < len; i++) gx[i] = gy[i] * y[i] * (1.0f - y[i]);
        break;
    default:
        break;
    }
}
