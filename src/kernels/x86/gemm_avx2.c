/* src/kernels/x86/gemm_avx2.c - the AVX2 sgemm micro-kernel, 6 x 16, and
 * the AVX2 packing kernel for B^T.
 *
 * Contract: the micro-kernel contract in kernels/gemm.h with MR = 6,
 * NR = 16, and the packing contract of cn__sgemm_pack_bt_avx2 there. Only
 * AVX2 and FMA instructions; gemm.c calls them only after
 * cn__isa_supported(CN_ISA_AVX2) (or AVX512, which implies it).
 *
 * Why 6 x 16: with 16 ymm registers, 6 rows x 2 vectors = 12 accumulators
 * + 2 B vectors + 1 broadcast; 12 independent FMA chains cover the FMA
 * latency (4 cycles) on two pipes.
 */
#include "kernels/gemm.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define TGT __attribute__((target("avx2,fma")))
#define MR CN__SGEMM_AVX2_MR
#define NR CN__SGEMM_AVX2_NR

/* Lane l of the mask is all-ones when l < n: vmaskmov neither reads nor
 * writes (nor faults on) the other lanes. */
static inline TGT __m256i lane_mask(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* c = alpha*ab + beta*c on one row of 16 columns; a full row takes plain
 * loads and stores, an edge row the masked ones, with the same arithmetic. */
static inline TGT void store_row(float *c, __m256 ab0, __m256 ab1, __m256 va, __m256 vb, int beta0,
                                 int n, __m256i m0, __m256i m1)
{
    ab0 = _mm256_mul_ps(va, ab0);
    ab1 = _mm256_mul_ps(va, ab1);
    if (n == NR) {
        if (!beta0) {
            ab0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c), ab0);
            ab1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + 8), ab1);
        }
        _mm256_storeu_ps(c, ab0);
        _mm256_storeu_ps(c + 8, ab1);
    } else {
        if (!beta0) {
            ab0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(c, m0), ab0);
            ab1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(c + 8, m1), ab1);
        }
        _mm256_maskstore_ps(c, m0, ab0);
        _mm256_maskstore_ps(c + 8, m1, ab1);
    }
}

#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define DECL(i) __m256 c##i##a = _mm256_setzero_ps(), c##i##b = _mm256_setzero_ps();
#define FMA(i, row)                                                                                \
    {                                                                                              \
        __m256 ai = _mm256_broadcast_ss(row);                                                      \
        c##i##a = _mm256_fmadd_ps(ai, b0, c##i##a);                                                \
        c##i##b = _mm256_fmadd_ps(ai, b1, c##i##b);                                                \
    }
#define STORE(i)                                                                                   \
    if ((i) < m) store_row(c + (int64_t)(i) * ldc, c##i##a, c##i##b, va, vb, beta == 0.0f, n, m0, m1);

TGT void cn__sgemm_ukr_avx2(int64_t k, const float *a, int64_t rs_a, int64_t cs_a, const float *b,
                            int64_t rs_b, float *c, int64_t ldc, int m, int n, float alpha,
                            float beta)
{
    ROWS(DECL)
    /* Rows as base + {0, 1, 2} x stride, as in the AVX-512 kernel. */
    const int64_t r1 = rs_a, r2 = 2 * rs_a;
    const float *a0 = a, *a3 = a + 3 * r1;
    for (int64_t p = 0; p < k; p++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        /* clang-format off */
        FMA(0, a0) FMA(1, a0 + r1) FMA(2, a0 + r2)
        FMA(3, a3) FMA(4, a3 + r1) FMA(5, a3 + r2)
        a0 += cs_a, a3 += cs_a;
        /* clang-format on */
        b += rs_b;
    }
    __m256i m0 = lane_mask(n), m1 = lane_mask(n - 8);
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    ROWS(STORE)
}

/* Transposes the 8 x 8 block r[0..7] (rows) in place into columns. */
static inline TGT void transpose8(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

TGT void cn__transpose8_avx2(int64_t rows, int64_t cols, const float *src, int64_t lds,
                             float *dst, int64_t ldd)
{
    /* a band of 8 output rows at a time: writes run along dst's rows */
    for (int64_t c0 = 0; c0 < cols; c0 += 8)
        for (int64_t r0 = 0; r0 < rows; r0 += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + (r0 + i) * lds + c0);
            transpose8(r);
            for (int i = 0; i < 8; i++) _mm256_storeu_ps(dst + (c0 + i) * ldd + r0, r[i]);
        }
}

/* d[p*nr + j] = src[j*ld + p]: the transpose of an nr x k block. */
TGT void cn__sgemm_pack_bt_avx2(int64_t k, const float *src, int64_t ld, int nr, float *d)
{
    const int64_t k8 = k / 8 * 8;
    cn__transpose8_avx2(nr, k8, src, ld, d, nr);
    for (int64_t p = k8; p < k; p++)
        for (int j = 0; j < nr; j++) d[p * nr + j] = src[j * ld + p];
}

#else
/* Not an x86 build: gemm.c does not reference the kernel. */
typedef int cn__gemm_avx2_unavailable;
#endif
