/* src/kernels/ref/gemm_ref.c - the plain-C sgemm: a triple loop that states
 * the semantics, and the reference micro-kernel (MR = 4, NR = 16) that
 * gemm.c uses on CPUs without AVX2. No intrinsics, no ISA flags. */
#include "kernels/gemm.h"

void cn__sgemm_naive(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                     const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                     int64_t ldc)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float s = 0.0f;
            if (alpha != 0.0f)
                for (int64_t p = 0; p < K; p++) {
                    float a = trans_a ? A[p * lda + i] : A[i * lda + p];
                    float b = trans_b ? B[j * ldb + p] : B[p * ldb + j];
                    s += a * b;
                }
            float *c = &C[i * ldc + j];
            *c = beta == 0.0f ? alpha * s : alpha * s + beta * *c;
        }
}

#define MR CN__SGEMM_REF_MR
#define NR CN__SGEMM_REF_NR

/* Contract: the micro-kernel contract in kernels/gemm.h with MR = 4,
 * NR = 16, a multiply and an add per k. The accumulator array is small
 * enough for the compiler to vectorize the j loops with SSE2. */
void cn__sgemm_ukr_ref(int64_t k, const float *a, int64_t rs_a, int64_t cs_a, const float *b,
                       int64_t rs_b, float *c, int64_t ldc, int m, int n, float alpha, float beta)
{
    float ab[MR][NR] = {{0}};
    for (int64_t p = 0; p < k; p++, a += cs_a, b += rs_b)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) ab[i][j] += a[i * rs_a] * b[j];
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float *cij = &c[i * ldc + j];
            *cij = beta == 0.0f ? alpha * ab[i][j] : alpha * ab[i][j] + beta * *cij;
        }
}
