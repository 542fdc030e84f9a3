/* Batch norm over NHWC data seen as [M, C] rows, with PyTorch's semantics:
 * biased batch variance to normalise, unbiased for the running variance,
 * running = (1 - momentum) * running + momentum * batch, eps inside the
 * square root.
 *
 * Channels are processed in blocks of CB so that per-channel sums live on
 * the stack (no allocation) while the innermost loop still runs along a
 * contiguous row; `omp simd` vectorises it (at -O2 gcc will not add the
 * run-time overlap checks itself), and no such loop reorders a sum: its
 * lanes are independent channels. The row loops are CN__MULTIVERSION leaf
 * functions, so they run with AVX2 or AVX-512 where the CPU has them.
 *
 * Statistics are summed in double. The variance is never E[x^2] - E[x]^2,
 * which cancels a factor mean^2 / var (mean 1000, std 0.01 loses 10 of
 * double's 16 digits): each chunk of rows gets its sums of x - pivot and
 * (x - pivot)^2 with one of its own values as the pivot, which bounds the
 * cancellation by the chunk's row count (see part_stats), and chunks are
 * merged with Chan, Golub and LeVeque's update, which adds only
 * non-negative terms. x is read once, and only once from memory.
 *
 * Determinism: the rows are cut into NPART parts, a fixed number that does
 * not depend on the thread count, and parts into chunks of a size that
 * depends only on the channel count. Each part is summed in row order by
 * one thread, and the parts are merged in part order by one thread; the
 * elementwise passes are split over the same parts. So the results are
 * bit-identical for any number of threads. */
#include <math.h>
#include <omp.h>
#include <stdint.h>

#include "convnet/ops.h"
#include "internal.h"
#include "kernels/gemm.h"
#include "ops/batchnorm_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define BN_X86 1
#include <immintrin.h>
#else
#define BN_X86 0
#endif

/* Channels per block: the parts' statistics of one block, NPART * CB * 2
 * doubles (32 KiB), live on the caller's stack. */
#define CB 128
/* Row parts of the statistics; a constant, so that sums do not depend on
 * the thread count (16 keeps up to 16 threads busy). */
#define NPART 16
/* Below this many elements a parallel region costs more than it saves. */
#define PAR_MIN 32768
/* Elements per chunk of the statistics: its rows bound the cancellation
 * of a chunk's variance (at most 16384 rows, 4.2 of double's 16 digits). */
#define CHUNK 16384
/* The sum kernels keep the sums of a block of G channels (the backward's:
 * GW where it can) in registers over a block of RB rows (in memory, each
 * row's add would wait for the previous row's store). Every channel is
 * still summed row after row, so the blocking changes no result. Wide
 * blocks only where a channel block holds whole rows (C <= CB), as
 * measured: the backward of 2M elements in rows of 64 channels ran 1.4x as
 * fast with one block of 64 as with four of 16, rows of 128 1.3x; halves
 * of 256-channel rows ran 1.2x slower; the forward showed no difference. */
#define GW 64
#define G 16
#define RB 32

/* First row of part p of M rows: parts differ in size by at most one row
 * (some are empty when M < NPART). */
static int64_t part_lo(int64_t M, int p) { return M / NPART * p + CN__MIN(p, M % NPART); }

/* Over rows [0, rows) of x (row stride C, cb channels from x[0]), in
 * double, around the pivot k[c]: s1[c] = sum (x - k), s2[c] = sum (x - k)^2,
 * from one read of x. */
CN__MULTIVERSION static void col_sums(int64_t rows, int64_t C, int64_t cb, const float *x,
                                      const double *restrict k, double *restrict s1,
                                      double *restrict s2)
{
    for (int64_t c = 0; c < cb; c++) s1[c] = s2[c] = 0.0;
    for (int64_t m0 = 0; m0 < rows; m0 += RB) {
        const int64_t mb = CN__MIN(RB, rows - m0);
        const float *xb = x + m0 * C;
        int64_t c0 = 0;
        for (; c0 + G <= cb; c0 += G) {
            double a1[G], a2[G];
            for (int c = 0; c < G; c++) a1[c] = s1[c0 + c], a2[c] = s2[c0 + c];
            for (int64_t m = 0; m < mb; m++) {
                const float *r = xb + m * C + c0;
#pragma omp simd
                for (int c = 0; c < G; c++) {
                    const double d = (double)r[c] - k[c0 + c];
                    a1[c] += d;
                    a2[c] += d * d;
                }
            }
            for (int c = 0; c < G; c++) s1[c0 + c] = a1[c], s2[c0 + c] = a2[c];
        }
        for (int64_t m = 0; m < mb && c0 < cb; m++) {
            const float *r = xb + m * C;
#pragma omp simd
            for (int64_t c = c0; c < cb; c++) {
                const double d = (double)r[c] - k[c];
                s1[c] += d;
                s2[c] += d * d;
            }
        }
    }
}

/* Statistics of some rows: their count, per channel the sum of x and the
 * sum of squared deviations from the rows' mean. */
typedef struct {
    int64_t n;
    double sum[CB], sq[CB];
} stats;

/* a = a merged with the rows of b that follow (Chan, Golub and LeVeque):
 * sq += sq_b + d^2 n n_b / (n + n_b), d the difference of the two means. */
static void merge(int64_t cb, stats *a, const stats *b)
{
    if (b->n == 0) return;
    const double na = (double)a->n, nb = (double)b->n, w = na * nb / (na + nb);
    for (int64_t c = 0; c < cb; c++) {
        const double d = a->n ? b->sum[c] / nb - a->sum[c] / na : 0.0;
        a->sq[c] += b->sq[c] + d * d * w;
        a->sum[c] += b->sum[c];
    }
    a->n += b->n;
}

/* *st = the statistics of rows [0, rows) of x, chunk by chunk: the sums
 * of each chunk around a pivot, its first row, then merged into *st. The
 * squared deviations are s2 - s1^2 / n, which cancels a factor
 * s2 / (s2 - s1^2 / n) = 1 + (mean - pivot)^2 / var <= n: one value's
 * squared deviation is at most n - 1 times the biased variance. A value
 * that is not finite is no pivot (inf - inf would hide an infinite mean). */
static void part_stats(int64_t rows, int64_t C, int64_t cb, const float *x, stats *st)
{
    const int64_t ch = CN__MAX(CHUNK / cb, 1);
    st->n = 0;
    for (int64_t c = 0; c < cb; c++) st->sum[c] = st->sq[c] = 0.0;
    for (int64_t m0 = 0; m0 < rows; m0 += ch) {
        stats k;
        double piv[CB], s1[CB], s2[CB];
        k.n = CN__MIN(ch, rows - m0);
        const double n = (double)k.n;
        for (int64_t c = 0; c < cb; c++) {
            const float v = x[m0 * C + c];
            piv[c] = isfinite(v) ? v : 0.0;
        }
        col_sums(k.n, C, cb, x + m0 * C, piv, s1, s2);
        for (int64_t c = 0; c < cb; c++) {
            const double sq = s2[c] - s1[c] * s1[c] / n;
            k.sum[c] = piv[c] * n + s1[c];
            k.sq[c] = sq < 0.0 ? 0.0 : sq; /* rounding only; NaN stays */
        }
        merge(cb, st, &k);
    }
}

/* One normalised value, before any residual and ReLU: the forward's and
 * the backward's recomputation of the ReLU's input (bn_norm) share it, so
 * that both round it alike. */
static inline float bn_value(float x, float hi, float lo, float scale, float shift)
{
    return ((x - hi) - lo) * scale + shift;
}

/* y[m, c] = (x - mean[c]) * scale[c] + shift[c] for rows [0, rows), the
 * double mean split into float hi + lo: x - hi is exact when x is near the
 * mean, so the result keeps float precision even when |mean| dwarfs the
 * standard deviation (x * scale + (shift - mean * scale) would cancel).
 * With res (same stride) it is added, and with relu the ReLU is applied,
 * exactly as cn_act_fwd's (NaN stays NaN), in the same pass: a second
 * sweep over y would cost as much memory traffic as the first. x, res and
 * y may alias (each element is read before it is written). An inline body
 * specialised per case, so no case carries another's work. */
static inline __attribute__((always_inline)) void
normalise_body(int add, int relu, int64_t rows, int64_t C, int64_t cb, const float *x,
               const float *hi, const float *lo, const float *scale, const float *shift,
               const float *res, float *y)
{
    for (int64_t m = 0; m < rows; m++) {
        const float *xr = x + m * C, *rr = add ? res + m * C : NULL;
        float *yr = y + m * C;
#pragma omp simd
        for (int64_t c = 0; c < cb; c++) {
            float v = bn_value(xr[c], hi[c], lo[c], scale[c], shift[c]);
            if (add) v += rr[c];
            yr[c] = !relu || !(v <= 0.0f) ? v : 0.0f;
        }
    }
}

/* res (nullable) only with relu: a ResNet block's last batch norm, its
 * shortcut and its ReLU. */
CN__MULTIVERSION static void normalise(int64_t rows, int64_t C, int64_t cb, const float *x,
                                       const float *hi, const float *lo, const float *scale,
                                       const float *shift, const float *res, int relu, float *y)
{
    if (res)
        normalise_body(1, 1, rows, C, cb, x, hi, lo, scale, shift, res, y);
    else if (relu)
        normalise_body(0, 1, rows, C, cb, x, hi, lo, scale, shift, NULL, y);
    else
        normalise_body(0, 0, rows, C, cb, x, hi, lo, scale, shift, NULL, y);
}

/* Streaming stores. An output of STREAM_BYTES or more, more than a core's
 * L2 holds, goes around the caches with AVX-512 non-temporal stores where
 * its rows are whole 64-byte lines (C % 16 == 0, 64-byte aligned): a plain
 * store first reads the line it writes, a quarter to a third of these
 * passes' traffic, and evicts the data the next layer is about to read.
 * Measured on the development VM (Intel Xeon, 2 threads, inputs from
 * memory): [100352, 32] forward with ReLU 0.75-0.82 of the time, backward
 * 0.82-0.88; [25088, 64] 0.63-0.83 and 0.76-0.92; resnet training on
 * 12800 images, median 0.96 of the time over 10 alternating pairs (0.84 to
 * 1.2: the machine's noise). The vector bodies compute exactly what the
 * scalar ones do (no FMA contraction in this file), so which one runs
 * changes no bit. */
#define STREAM_BYTES ((int64_t)2 << 20)

static int streams(int64_t MC, int64_t C, const float *out)
{
    return BN_X86 && cn__isa_detect() == CN_ISA_AVX512 && C % 16 == 0 &&
           ((uintptr_t)out & 63) == 0 && MC >= STREAM_BYTES / (int64_t)sizeof(float);
}

#if BN_X86
#define TGT __attribute__((target("avx512f")))
#define V16(p) _mm512_loadu_ps(p)

/* bn_value over 16 channels */
static inline __attribute__((always_inline)) TGT __m512 bn_value16(__m512 x, const float *hi,
                                                                   const float *lo,
                                                                   const float *scale,
                                                                   const float *shift)
{
    const __m512 d = _mm512_sub_ps(_mm512_sub_ps(x, V16(hi)), V16(lo));
    return _mm512_add_ps(_mm512_mul_ps(d, V16(scale)), V16(shift));
}

/* normalise, streamed: y's rows 64-byte aligned, cb a multiple of 16. */
static TGT void normalise_stream(int64_t rows, int64_t C, int64_t cb, const float *x,
                                 const float *hi, const float *lo, const float *scale,
                                 const float *shift, const float *res, int relu, float *y)
{
    const __m512 z = _mm512_setzero_ps();
    for (int64_t m = 0; m < rows; m++)
        for (int64_t c = 0; c < cb; c += 16) {
            __m512 v = bn_value16(V16(x + m * C + c), hi + c, lo + c, scale + c, shift + c);
            if (res) v = _mm512_add_ps(v, V16(res + m * C + c));
            /* cn_act_fwd's relu: v <= 0 gives +0, NaN stays */
            if (relu) v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, z, _CMP_LE_OQ), z);
            _mm512_stream_ps(y + m * C + c, v);
        }
    _mm_sfence(); /* before another thread reads y */
}
#else
static void normalise_stream(int64_t rows, int64_t C, int64_t cb, const float *x, const float *hi,
                             const float *lo, const float *scale, const float *shift,
                             const float *res, int relu, float *y)
{
    normalise(rows, C, cb, x, hi, lo, scale, shift, res, relu, y);
}
#endif

/* The training statistics of one channel block, its parts merged in part
 * order: mean and biased variance, and the running statistics updated. */
static void combine_stats(int64_t cb, const stats *part, double mom, float *running_mean,
                          float *running_var, double *mean, double *var)
{
    stats all = part[0];
    for (int q = 1; q < NPART; q++) merge(cb, &all, &part[q]);
    const double M = (double)all.n;
    for (int64_t c = 0; c < cb; c++) {
        mean[c] = all.sum[c] / M;
        var[c] = all.sq[c] / M;
        if (running_mean) running_mean[c] = (float)((1.0 - mom) * running_mean[c] + mom * mean[c]);
        if (running_var)
            running_var[c] = (float)((1.0 - mom) * running_var[c] + mom * (all.sq[c] / (M - 1)));
    }
}

/* relu: y = relu(bn(x) [+ res]); res (nullable) only with relu. */
static cn_status bn_fwd(cn_ctx *ctx, const cn_bn_params *p, int training, int relu, int64_t M,
                        int64_t C, const float *x, const float *gamma, const float *beta,
                        float *running_mean, float *running_var, float *save_mean,
                        float *save_invstd, const float *res, float *y, float *norm)
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

    const int nt = cn__threads(ctx), stream = streams(MC, C, y);
    const double eps = p->eps, mom = p->momentum;
    for (int64_t c0 = 0; c0 < C; c0 += CB) {
        const int64_t cb = CN__MIN(CB, C - c0);
        stats part[NPART];
#pragma omp parallel num_threads(nt) if (nt > 1 && M * cb >= PAR_MIN)
        {
            double mean[CB], var[CB];
            float hi[CB], lo[CB], scale[CB], shift[CB];
            /* Every thread derives the normalisation itself, the same values
             * from the same parts in the same order: a barrier fewer than
             * one thread deriving it for all. Only the first writes the
             * running and saved statistics, which the region does not read. */
            const int first = omp_get_thread_num() == 0;
            if (training) {
#pragma omp for schedule(static)
                for (int q = 0; q < NPART; q++) {
                    const int64_t m0 = part_lo(M, q);
                    part_stats(part_lo(M, q + 1) - m0, C, cb, x + m0 * C + c0, &part[q]);
                }
                combine_stats(cb, part, mom, first && running_mean ? running_mean + c0 : NULL,
                              first && running_var ? running_var + c0 : NULL, mean, var);
            } else {
                for (int64_t c = 0; c < cb; c++) {
                    mean[c] = running_mean[c0 + c];
                    var[c] = running_var[c0 + c];
                }
            }
            for (int64_t c = 0; c < cb; c++) {
                const double invstd = 1.0 / sqrt(var[c] + eps);
                hi[c] = (float)mean[c];
                lo[c] = (float)(mean[c] - hi[c]);
                scale[c] = (float)(invstd * (gamma ? gamma[c0 + c] : 1.0f));
                shift[c] = beta ? beta[c0 + c] : 0.0f;
                if (first && save_mean) save_mean[c0 + c] = hi[c];
                if (first && save_invstd) save_invstd[c0 + c] = (float)invstd;
                if (first && norm) {
                    norm[c0 + c] = hi[c], norm[C + c0 + c] = lo[c];
                    norm[2 * C + c0 + c] = scale[c], norm[3 * C + c0 + c] = shift[c];
                }
            }
#pragma omp for schedule(static)
            for (int q = 0; q < NPART; q++) {
                const int64_t m0 = part_lo(M, q), off = m0 * C + c0;
                const int64_t rows = part_lo(M, q + 1) - m0;
                (stream ? normalise_stream : normalise)(rows, C, cb, x + off, hi, lo, scale, shift,
                                                        res ? res + off : NULL, relu, y + off);
            }
        }
    }
    return CN_OK;
}

cn_status cn_batchnorm_fwd(cn_ctx *ctx, const cn_bn_params *p, int training, int64_t M, int64_t C,
                           const float *x, const float *gamma, const float *beta,
                           float *running_mean, float *running_var, float *save_mean,
                           float *save_invstd, float *y)
{
    return bn_fwd(ctx, p, training, 0, M, C, x, gamma, beta, running_mean, running_var, save_mean,
                  save_invstd, NULL, y, NULL);
}

cn_status cn_batchnorm_fwd_relu(cn_ctx *ctx, const cn_bn_params *p, int training, int64_t M,
                                int64_t C, const float *x, const float *gamma, const float *beta,
                                float *running_mean, float *running_var, float *save_mean,
                                float *save_invstd, float *y)
{
    return bn_fwd(ctx, p, training, 1, M, C, x, gamma, beta, running_mean, running_var, save_mean,
                  save_invstd, NULL, y, NULL);
}

cn_status cn__batchnorm_fwd_relu_norm(cn_ctx *ctx, const cn_bn_params *p, int training, int64_t M,
                                      int64_t C, const float *x, const float *gamma,
                                      const float *beta, float *running_mean, float *running_var,
                                      float *save_mean, float *save_invstd, float *y, float *norm)
{
    return bn_fwd(ctx, p, training, 1, M, C, x, gamma, beta, running_mean, running_var, save_mean,
                  save_invstd, NULL, y, norm);
}

cn_status cn_batchnorm_fwd_add_relu(cn_ctx *ctx, const cn_bn_params *p, int training, int64_t M,
                                    int64_t C, const float *x, const float *gamma,
                                    const float *beta, float *running_mean, float *running_var,
                                    float *save_mean, float *save_invstd, const float *res,
                                    float *y)
{
    if (!res) return cn__err(CN_ERR_INVALID_ARG, "batchnorm: add_relu needs the residual res");
    return bn_fwd(ctx, p, training, 1, M, C, x, gamma, beta, running_mean, running_var, save_mean,
                  save_invstd, res, y, NULL);
}

/* The gradient through a fused ReLU from its output v, exactly as
 * cn_act_bwd's: g where v > 0, NaN where v is NaN, else 0. */
static inline float relu_grad(float v, float g)
{
    const float pos = v > 0 ? g : 0.0f; /* two flat selects: gcc if-converts these */
    return v != v ? v : pos;
}

/* The forward's normalisation of channels from c0 on (cn__batchnorm_*_norm):
 * the ReLU's input recomputed from x, bit for bit, instead of read back. */
typedef struct bn_norm {
    const float *hi, *lo, *scale, *shift;
} bn_norm;

/* No normalisation kept: the passes that read y or take no ReLU. */
static const bn_norm no_norm;

/* Channels from c0 on of norm [4][C] (hi, lo, scale, shift; NULL: none). */
static bn_norm norm_at(const float *norm, int64_t C, int64_t c0)
{
    if (!norm) return no_norm;
    return (bn_norm){norm + c0, norm + C + c0, norm + 2 * C + c0, norm + 3 * C + c0};
}

static inline bn_norm norm_from(bn_norm n, int64_t c0)
{
    if (!n.hi) return n;
    return (bn_norm){n.hi + c0, n.lo + c0, n.scale + c0, n.shift + c0};
}

/* The gradient through the fused ReLU of element c of row xr / yr: relu 1
 * reads its output y, relu 2 recomputes its input from x (with nm). */
static inline __attribute__((always_inline)) float
relu_in(int relu, const float *xr, const float *yr, bn_norm nm, int64_t c, float g)
{
    if (relu == 2)
        return relu_grad(bn_value(xr[c], nm.hi[c], nm.lo[c], nm.scale[c], nm.shift[c]), g);
    return relu == 1 ? relu_grad(yr[c], g) : g;
}

/* sgy[c] += gy, sgxc[c] += gy * (x - mean[c]) over rows [0, mb) (row
 * stride C) for channels [0, g), g GW or G where inlined; gy through the
 * ReLU of output y with relu (relu_in), and then stored in rb if not NULL. */
static inline __attribute__((always_inline)) void
bwd_block(int relu, int g, int64_t mb, int64_t C, const float *xb, const float *yb, const float *gb,
          float *rb, bn_norm nm, const float *restrict mean, double *restrict sgy,
          double *restrict sgxc)
{
    double a1[GW], a2[GW];
    for (int c = 0; c < g; c++) a1[c] = sgy[c], a2[c] = sgxc[c];
    for (int64_t m = 0; m < mb; m++) {
        const float *xr = xb + m * C, *gyr = gb + m * C, *yr = relu == 1 ? yb + m * C : NULL;
        float *rr = rb ? rb + m * C : NULL;
#pragma omp simd
        for (int c = 0; c < g; c++) {
            const float v = relu_in(relu, xr, yr, nm, c, gyr[c]);
            if (rb) rr[c] = v;
            a1[c] += v;
            a2[c] += (double)v * ((double)xr[c] - mean[c]);
        }
    }
    for (int c = 0; c < g; c++) sgy[c] = a1[c], sgxc[c] = a2[c];
}

/* Over rows [0, rows): sgy[c] = sum gy, sgxc[c] = sum gy * (x - mean[c]),
 * in double, blocked as col_sums. With relu, gy is first taken through the
 * ReLU whose output is y (same stride as x), and with gr that gradient is
 * also stored in gr (same stride): an inline body specialised three times,
 * so the plain case carries no test. */
static inline __attribute__((always_inline)) void
bwd_sums_body(int relu, int64_t rows, int64_t C, int64_t cb, const float *x, const float *y,
              const float *gy, float *gr, bn_norm nm, const float *restrict mean,
              double *restrict sgy, double *restrict sgxc)
{
    for (int64_t c = 0; c < cb; c++) sgy[c] = sgxc[c] = 0.0;
    for (int64_t m0 = 0; m0 < rows; m0 += RB) {
        const int64_t mb = CN__MIN(RB, rows - m0);
        const float *xb = x + m0 * C, *gb = gy + m0 * C, *yb = relu == 1 ? y + m0 * C : NULL;
        float *rb = gr ? gr + m0 * C : NULL;
        int64_t c0 = 0;
        for (; cb == C && c0 + GW <= cb; c0 += GW)
            bwd_block(relu, GW, mb, C, xb + c0, relu == 1 ? yb + c0 : NULL, gb + c0,
                      gr ? rb + c0 : NULL, norm_from(nm, c0), mean + c0, sgy + c0, sgxc + c0);
        for (; c0 + G <= cb; c0 += G)
            bwd_block(relu, G, mb, C, xb + c0, relu == 1 ? yb + c0 : NULL, gb + c0,
                      gr ? rb + c0 : NULL, norm_from(nm, c0), mean + c0, sgy + c0, sgxc + c0);
        for (int64_t m = 0; m < mb && c0 < cb; m++) {
            const float *xr = xb + m * C, *gyr = gb + m * C, *yr = relu == 1 ? yb + m * C : NULL;
            float *rr = gr ? rb + m * C : NULL;
#pragma omp simd
            for (int64_t c = c0; c < cb; c++) {
                const float g = relu_in(relu, xr, yr, nm, c, gyr[c]);
                if (gr) rr[c] = g;
                sgy[c] += g;
                sgxc[c] += (double)g * ((double)xr[c] - mean[c]);
            }
        }
    }
}

CN__MULTIVERSION static void bwd_sums(int64_t rows, int64_t C, int64_t cb, const float *x,
                                      const float *gy, const float *restrict mean,
                                      double *restrict sgy, double *restrict sgxc)
{
    bwd_sums_body(0, rows, C, cb, x, NULL, gy, NULL, no_norm, mean, sgy, sgxc);
}

CN__MULTIVERSION static void bwd_sums_relu(int64_t rows, int64_t C, int64_t cb, const float *x,
                                           const float *y, const float *gy,
                                           const float *restrict mean, double *restrict sgy,
                                           double *restrict sgxc)
{
    bwd_sums_body(1, rows, C, cb, x, y, gy, NULL, no_norm, mean, sgy, sgxc);
}

/* bwd_sums_relu with the ReLU's input recomputed from x (nm), not y. */
CN__MULTIVERSION static void bwd_sums_relu_x(int64_t rows, int64_t C, int64_t cb, const float *x,
                                             const float *gy, bn_norm nm,
                                             const float *restrict mean, double *restrict sgy,
                                             double *restrict sgxc)
{
    bwd_sums_body(2, rows, C, cb, x, NULL, gy, NULL, nm, mean, sgy, sgxc);
}

CN__MULTIVERSION static void bwd_sums_relu_store(int64_t rows, int64_t C, int64_t cb,
                                                 const float *x, const float *y, const float *gy,
                                                 float *restrict gr, const float *restrict mean,
                                                 double *restrict sgy, double *restrict sgxc)
{
    bwd_sums_body(1, rows, C, cb, x, y, gy, gr, no_norm, mean, sgy, sgxc);
}

/* gx = k * (gy - a - (x - mean) * b) over rows [0, rows), gy through the
 * ReLU of output y with relu; gx may alias gy. */
static inline __attribute__((always_inline)) void
bwd_gx_training_body(int relu, int64_t rows, int64_t C, int64_t cb, const float *x, const float *y,
                     const float *gy, bn_norm nm, const float *mean, const float *k, const float *a,
                     const float *b, float *gx)
{
    for (int64_t m = 0; m < rows; m++) {
        const float *xr = x + m * C, *gr = gy + m * C, *yr = relu == 1 ? y + m * C : NULL;
        float *gxr = gx + m * C;
#pragma omp simd
        for (int64_t c = 0; c < cb; c++) {
            const float g = relu_in(relu, xr, yr, nm, c, gr[c]);
            gxr[c] = k[c] * (g - a[c] - (xr[c] - mean[c]) * b[c]);
        }
    }
}

CN__MULTIVERSION static void bwd_gx_training(int64_t rows, int64_t C, int64_t cb, const float *x,
                                             const float *gy, const float *mean, const float *k,
                                             const float *a, const float *b, float *gx)
{
    bwd_gx_training_body(0, rows, C, cb, x, NULL, gy, no_norm, mean, k, a, b, gx);
}

CN__MULTIVERSION static void bwd_gx_training_relu(int64_t rows, int64_t C, int64_t cb,
                                                  const float *x, const float *y, const float *gy,
                                                  const float *mean, const float *k, const float *a,
                                                  const float *b, float *gx)
{
    bwd_gx_training_body(1, rows, C, cb, x, y, gy, no_norm, mean, k, a, b, gx);
}

CN__MULTIVERSION static void bwd_gx_training_relu_x(int64_t rows, int64_t C, int64_t cb,
                                                    const float *x, const float *gy, bn_norm nm,
                                                    const float *mean, const float *k,
                                                    const float *a, const float *b, float *gx)
{
    bwd_gx_training_body(2, rows, C, cb, x, NULL, gy, nm, mean, k, a, b, gx);
}

#if BN_X86
/* bwd_gx_training_body, streamed (STREAM_BYTES). */
static TGT void bwd_gx_stream(int relu, int64_t rows, int64_t C, int64_t cb, const float *x,
                              const float *y, const float *gy, bn_norm nm, const float *mean,
                              const float *k, const float *a, const float *b, float *gx)
{
    const __m512 z = _mm512_setzero_ps();
    for (int64_t m = 0; m < rows; m++)
        for (int64_t c = 0; c < cb; c += 16) {
            const __m512 xv = V16(x + m * C + c);
            __m512 g = V16(gy + m * C + c);
            if (relu) { /* relu_grad from y, or from x (relu 2) */
                const __m512 v =
                    relu == 1 ? V16(y + m * C + c)
                              : bn_value16(xv, nm.hi + c, nm.lo + c, nm.scale + c, nm.shift + c);
                g = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, z, _CMP_GT_OQ), g);
                g = _mm512_mask_mov_ps(g, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v);
            }
            const __m512 d = _mm512_mul_ps(_mm512_sub_ps(xv, V16(mean + c)), V16(b + c));
            _mm512_stream_ps(
                gx + m * C + c,
                _mm512_mul_ps(V16(k + c), _mm512_sub_ps(_mm512_sub_ps(g, V16(a + c)), d)));
        }
    _mm_sfence();
}
#else
static void bwd_gx_stream(int relu, int64_t rows, int64_t C, int64_t cb, const float *x,
                          const float *y, const float *gy, bn_norm nm, const float *mean,
                          const float *k, const float *a, const float *b, float *gx)
{
    bwd_gx_training_body(relu, rows, C, cb, x, y, gy, nm, mean, k, a, b, gx);
}
#endif

/* gx = k * gy over rows [0, rows): in evaluation x must not reach gx (a
 * 0 * inf would turn into NaN). gx may alias gy. */
CN__MULTIVERSION static void bwd_gx_eval(int64_t rows, int64_t C, int64_t cb, const float *y,
                                         const float *gy, const float *k, float *gx)
{
    for (int64_t m = 0; m < rows; m++) {
        const float *gr = gy + m * C, *yr = y ? y + m * C : NULL;
        float *gxr = gx + m * C;
        if (yr)
#pragma omp simd
            for (int64_t c = 0; c < cb; c++) gxr[c] = k[c] * relu_grad(yr[c], gr[c]);
        else
#pragma omp simd
            for (int64_t c = 0; c < cb; c++) gxr[c] = k[c] * gr[c];
    }
}

/* y: the output of a fused ReLU that gy is taken through, or NULL. gr
 * (with y): where that ReLU's gradient is stored by the sums pass, which
 * the gx pass then reads instead of y and gy (a stream fewer), or NULL.
 * norm (training, without y and gr): the forward's normalisation [4][C],
 * from which both passes recompute the ReLU's input instead of reading y
 * (a stream fewer in each). */
static void bn_bwd(cn_ctx *ctx, int training, int64_t M, int64_t C, const float *x,
                   const float *gamma, const float *save_mean, const float *save_invstd,
                   const float *y, const float *gy, float *gr, const float *norm, float *gx,
                   float *ggamma, float *gbeta)
{
    if (M <= 0 || C <= 0) {
        for (int64_t c = 0; c < C; c++) {
            if (ggamma) ggamma[c] = 0.0f;
            if (gbeta) gbeta[c] = 0.0f;
        }
        return;
    }
    const int nt = cn__threads(ctx), stream = gx && streams(M * C, C, gx);
    /* Evaluation without gamma and beta gradients needs no sums (but the
     * pass that stores gr). */
    const int sums = training || ggamma || gbeta || gr;
    for (int64_t c0 = 0; c0 < C; c0 += CB) {
        const int64_t cb = CN__MIN(CB, C - c0);
        const float *mean = save_mean + c0, *invstd = save_invstd + c0;
        const bn_norm nm = norm_at(norm, C, c0);
        /* Per part: sgy = sum gy, sgxc = sum gy * (x - mean), that is gbeta
         * and ggamma / invstd. */
        double psgy[NPART][CB], psgxc[NPART][CB];
#pragma omp parallel num_threads(nt) if (nt > 1 && M * cb >= PAR_MIN)
        {
            float k[CB], a[CB], b[CB];
            /* As in the forward: every thread derives k, a and b itself, a
             * barrier fewer; only the first writes ggamma and gbeta. */
            const int first = omp_get_thread_num() == 0;
            if (sums) {
#pragma omp for schedule(static)
                for (int q = 0; q < NPART; q++) {
                    const int64_t m0 = part_lo(M, q), off = m0 * C + c0;
                    if (norm)
                        bwd_sums_relu_x(part_lo(M, q + 1) - m0, C, cb, x + off, gy + off, nm, mean,
                                        psgy[q], psgxc[q]);
                    else if (gr)
                        bwd_sums_relu_store(part_lo(M, q + 1) - m0, C, cb, x + off, y + off,
                                            gy + off, gr + off, mean, psgy[q], psgxc[q]);
                    else if (y)
                        bwd_sums_relu(part_lo(M, q + 1) - m0, C, cb, x + off, y + off, gy + off,
                                      mean, psgy[q], psgxc[q]);
                    else
                        bwd_sums(part_lo(M, q + 1) - m0, C, cb, x + off, gy + off, mean, psgy[q],
                                 psgxc[q]);
                }
            }
            /* Training: gx = k * (gy - mean(gy) - xhat * mean(gy * xhat))
             * with k = gamma * invstd and xhat = (x - mean) * invstd; the
             * batch statistics depend on x too. Evaluation: gx = k * gy. */
            for (int64_t c = 0; c < cb; c++) {
                double sgy = 0.0, sgxc = 0.0;
                if (sums)
                    for (int q = 0; q < NPART; q++) sgy += psgy[q][c], sgxc += psgxc[q][c];
                const double is = invstd[c], gxhat = sgxc * is;
                if (first && ggamma) ggamma[c0 + c] = (float)gxhat;
                if (first && gbeta) gbeta[c0 + c] = (float)sgy;
                k[c] = (float)((gamma ? gamma[c0 + c] : 1.0f) * is);
                a[c] = training ? (float)(sgy / (double)M) : 0.0f;
                /* Folds xhat's invstd in: xhat * b = (x - mean) * b. */
                b[c] = training ? (float)(gxhat / (double)M * is) : 0.0f;
            }
            if (gx) {
                /* gy through the ReLU is in gr already */
                const float *ry = gr ? NULL : y, *rg = gr ? gr : gy;
#pragma omp for schedule(static)
                for (int q = 0; q < NPART; q++) {
                    const int64_t m0 = part_lo(M, q), rows = part_lo(M, q + 1) - m0;
                    const int64_t off = m0 * C + c0;
                    if (training && stream)
                        bwd_gx_stream(norm ? 2
                                      : ry ? 1
                                           : 0,
                                      rows, C, cb, x + off, ry ? ry + off : NULL, rg + off, nm,
                                      mean, k, a, b, gx + off);
                    else if (norm)
                        bwd_gx_training_relu_x(rows, C, cb, x + off, rg + off, nm, mean, k, a, b,
                                               gx + off);
                    else if (training && ry)
                        bwd_gx_training_relu(rows, C, cb, x + off, ry + off, rg + off, mean, k, a,
                                             b, gx + off);
                    else if (training)
                        bwd_gx_training(rows, C, cb, x + off, rg + off, mean, k, a, b, gx + off);
                    else
                        bwd_gx_eval(rows, C, cb, ry ? ry + off : NULL, rg + off, k, gx + off);
                }
            }
        }
    }
}

void cn_batchnorm_bwd(cn_ctx *ctx, int training, int64_t M, int64_t C, const float *x,
                      const float *gamma, const float *save_mean, const float *save_invstd,
                      const float *gy, float *gx, float *ggamma, float *gbeta)
{
    bn_bwd(ctx, training, M, C, x, gamma, save_mean, save_invstd, NULL, gy, NULL, NULL, gx, ggamma,
           gbeta);
}

void cn_batchnorm_bwd_relu(cn_ctx *ctx, int training, int64_t M, int64_t C, const float *x,
                           const float *gamma, const float *save_mean, const float *save_invstd,
                           const float *y, const float *gy, float *gx, float *ggamma, float *gbeta)
{
    bn_bwd(ctx, training, M, C, x, gamma, save_mean, save_invstd, y, gy, NULL, NULL, gx, ggamma,
           gbeta);
}

void cn__batchnorm_bwd_relu_norm(cn_ctx *ctx, int64_t M, int64_t C, const float *x,
                                 const float *gamma, const float *save_mean,
                                 const float *save_invstd, const float *norm, const float *gy,
                                 float *gx, float *ggamma, float *gbeta)
{
    bn_bwd(ctx, 1, M, C, x, gamma, save_mean, save_invstd, NULL, gy, NULL, norm, gx, ggamma, gbeta);
}

void cn_batchnorm_bwd_add_relu(cn_ctx *ctx, int training, int64_t M, int64_t C, const float *x,
                               const float *gamma, const float *save_mean, const float *save_invstd,
                               const float *y, const float *gy, float *gres, float *gx,
                               float *ggamma, float *gbeta)
{
    bn_bwd(ctx, training, M, C, x, gamma, save_mean, save_invstd, y, gy, gres, NULL, gx, ggamma,
           gbeta);
}
