/* Elementwise activations: relu, leaky relu, tanh, sigmoid, forward and
 * backward. A NaN input gives a NaN output and a NaN gradient, so that a
 * diverging network shows up in its parameter gradients rather than being
 * masked to zero (PyTorch's relu backward would give 0 there).
 *
 * Each activation is a CN__MULTIVERSION loop over a contiguous range (so it
 * runs with AVX2 or AVX-512 where the CPU has them); run() splits the
 * elements into fixed chunks and hands them to threads. Every element is
 * computed alone, so results do not depend on the thread count. */
#include <math.h>

#include "convnet/ops.h"
#include "internal.h"

/* Below this many elements a parallel region costs more than it saves. */
#define PAR_MIN 32768
/* Elements per task (64 KiB of floats): a multiple of every vector width. */
#define CHUNK 16384

/* Loop bodies load every operand unconditionally and select only between
 * values, never between computations: gcc will not if-convert (and so not
 * vectorise) a conditional load or floating-point multiply. x and y (gy and
 * gx) may be the same buffer, so no pointer is restrict: `omp simd` asserts
 * what matters, that element i is read before it is written and by no other
 * iteration. A pointer a kernel does not read may be NULL. */
typedef void act_kernel(int64_t n, float slope, const float *x, const float *y, const float *gy,
                        float *out);

/* Not fmaxf: fmaxf(NaN, 0) is 0. !(v <= 0) holds for v > 0 and for NaN;
 * -0 gives +0, as v > 0 ? v : 0 does. */
CN__MULTIVERSION static void relu_fwd(int64_t n, float slope, const float *x, const float *y,
                                      const float *gy, float *out)
{
    (void)slope, (void)y, (void)gy;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) out[i] = !(x[i] <= 0.0f) ? x[i] : 0.0f;
}

/* pos + slope * neg rather than v > 0 ? v : slope * v, whose conditional
 * multiply gcc will not vectorise; a NaN lands in neg. */
CN__MULTIVERSION static void leaky_relu_fwd(int64_t n, float slope, const float *x, const float *y,
                                            const float *gy, float *out)
{
    (void)y, (void)gy;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i], pos = v > 0 ? v : 0.0f, neg = v > 0 ? 0.0f : v;
        out[i] = pos + slope * neg;
    }
}

/* tanhf and expf are scalar libm calls (glibc declares no vector variants
 * without -ffast-math); the clones differ only in the surrounding code. */
static void tanh_fwd(int64_t n, float slope, const float *x, const float *y, const float *gy,
                     float *out)
{
    (void)slope, (void)y, (void)gy;
    for (int64_t i = 0; i < n; i++) out[i] = tanhf(x[i]);
}

/* exp(-x) overflows to inf for x < -88, giving exactly 0: no NaN. */
static void sigmoid_fwd(int64_t n, float slope, const float *x, const float *y, const float *gy,
                        float *out)
{
    (void)slope, (void)y, (void)gy;
    for (int64_t i = 0; i < n; i++) out[i] = 1.0f / (1.0f + expf(-x[i]));
}

/* From y: y > 0 exactly where x > 0, and y is NaN where x is. */
CN__MULTIVERSION static void relu_bwd(int64_t n, float slope, const float *x, const float *y,
                                      const float *gy, float *out)
{
    (void)slope, (void)x;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        const float v = y[i], g = gy[i];
        out[i] = v > 0 ? g : (v != v ? v : 0.0f);
    }
}

/* From x: with slope < 0 the sign of x is not recoverable from y. */
CN__MULTIVERSION static void leaky_relu_bwd(int64_t n, float slope, const float *x, const float *y,
                                            const float *gy, float *out)
{
    (void)y;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i], g = gy[i];
        const float pos = v > 0 ? g : (v != v ? v : 0.0f), neg = v > 0 ? 0.0f : g;
        out[i] = pos + slope * neg;
    }
}

CN__MULTIVERSION static void tanh_bwd(int64_t n, float slope, const float *x, const float *y,
                                      const float *gy, float *out)
{
    (void)slope, (void)x;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) out[i] = gy[i] * (1.0f - y[i] * y[i]);
}

CN__MULTIVERSION static void sigmoid_bwd(int64_t n, float slope, const float *x, const float *y,
                                         const float *gy, float *out)
{
    (void)slope, (void)x;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) out[i] = gy[i] * y[i] * (1.0f - y[i]);
}

/* p + i, or NULL for a pointer the kernel does not read. */
static const float *at(const float *p, int64_t i) { return p ? p + i : NULL; }

/* f over [0, len) in chunks of CHUNK elements, split between threads. */
static void run(const cn_ctx *ctx, act_kernel *f, float slope, size_t n, const float *x,
                const float *y, const float *gy, float *out)
{
    const int64_t len = (int64_t)n, chunks = (len + CHUNK - 1) / CHUNK;
    const int nt = cn__threads(ctx);
#pragma omp parallel for num_threads(nt) if (nt > 1 && len >= PAR_MIN) schedule(static)
    for (int64_t t = 0; t < chunks; t++) {
        const int64_t i0 = t * CHUNK;
        f(CN__MIN(CHUNK, len - i0), slope, at(x, i0), at(y, i0), at(gy, i0), out + i0);
    }
}

_Static_assert(CN_ACT_COUNT == 4, "one forward and one backward kernel per cn_act");

void cn_act_fwd(cn_ctx *ctx, cn_act a, float slope, size_t n, const float *x, float *y)
{
    static act_kernel *const fwd[CN_ACT_COUNT] = {relu_fwd, leaky_relu_fwd, tanh_fwd, sigmoid_fwd};
    if ((unsigned)a < CN_ACT_COUNT) run(ctx, fwd[a], slope, n, x, NULL, NULL, y);
}

void cn_act_bwd(cn_ctx *ctx, cn_act a, float slope, size_t n, const float *x, const float *y,
                const float *gy, float *gx)
{
    static act_kernel *const bwd[CN_ACT_COUNT] = {relu_bwd, leaky_relu_bwd, tanh_bwd, sigmoid_bwd};
    if ((unsigned)a < CN_ACT_COUNT) run(ctx, bwd[a], slope, n, x, y, gy, gx);
}
