/* src/kernels/gemm.h - single-precision GEMM for the library's own use
 * (convolution as implicit GEMM, linear layers), with run-time ISA dispatch.
 *
 *     // C[M,N] = A[M,K] * B[K,N], all row-major and dense
 *     cn_status s = cn__sgemm(ctx, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
 *
 *     // the same with a caller-owned workspace, so that the call never allocates
 *     size_t bytes = cn__sgemm_ws_size(M, N, K, cn__threads(ctx));
 *     void *ws = cn_alloc(bytes);
 *     cn__sgemm_ws(ctx, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N, ws);
 *
 * Semantics (BLAS sgemm, row-major):
 *   C = alpha * op(A) * op(B) + beta * C, op(A) is [M,K], op(B) is [K,N], C is [M,N].
 *   trans_a == 0: op(A)[i,p] = A[i*lda + p] (lda >= K);  else A[p*lda + i] (lda >= M).
 *   trans_b == 0: op(B)[p,j] = B[p*ldb + j] (ldb >= N);  else B[j*ldb + p] (ldb >= K).
 *   C[i,j] = C[i*ldc + j], ldc >= N.
 *   beta == 0: C is written without being read, so it may hold NaN or garbage.
 *   K == 0 or alpha == 0: C = beta * C and A, B are not read.
 *   M == 0 or N == 0: nothing is touched.
 * C must not overlap A or B. Dimensions are assumed valid (checked by the
 * calling op when it is set up); the only failure is CN_ERR_NO_MEMORY when
 * ws is NULL and the packing buffers cannot be allocated.
 *
 * Structure (BLIS): gemm.c partitions C between threads, blocks K into
 * KC-deep slices and M into MC-tall blocks, and calls an MR x NR
 * register-blocked micro-kernel per tile. The micro-kernels take strided
 * operands, so A and B are read in place where that is as fast; otherwise
 * (and for the short edge slivers) op(B) is packed into NR-wide slivers and
 * op(A) into MR-tall ones, zero-padded. Micro-kernels live in
 * kernels/x86/gemm_<isa>.c (intrinsics, compiled for that ISA through
 * function target attributes) and kernels/ref/gemm_ref.c (plain C: the
 * reference and the fallback for CPUs without AVX2).
 *
 * Determinism: every C element is computed by exactly one thread, as the
 * same sequence of operations whatever the thread count (K-slices in fixed
 * order, one fused multiply-add per k inside a slice), so results are
 * bit-identical for any ctx->threads. Different ISAs may round differently.
 */
#ifndef CONVNET_GEMM_H
#define CONVNET_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

typedef enum cn__isa {
    CN_ISA_SCALAR, /* plain C, any x86-64 (or any CPU at all) */
    CN_ISA_AVX2,   /* AVX2 + FMA, 256-bit */
    CN_ISA_AVX512, /* AVX-512F, 512-bit */
    CN_ISA_COUNT
} cn__isa;

/* The best ISA this CPU (and OS) supports, capped by the environment variable
 * CN_ISA=scalar|avx2|avx512 when it is set (unknown values are ignored).
 * Read on every call, so tests can change the variable between calls. */
CN__HIDDEN cn__isa cn__isa_detect(void);
/* "scalar", "avx2", "avx512". */
CN__HIDDEN const char *cn__isa_name(cn__isa isa);
/* 1 if this CPU can run kernels for isa (ignores CN_ISA). */
CN__HIDDEN int cn__isa_supported(cn__isa isa);

/* Bytes of workspace a call with these sizes needs on `threads` threads, for
 * any ISA and any strides (0 when M, N or K is 0); at most about 4.3 MiB
 * per thread. */
CN__HIDDEN size_t cn__sgemm_ws_size(int64_t M, int64_t N, int64_t K, int threads);

/* C = alpha op(A) op(B) + beta C on cn__isa_detect()'s ISA with
 * cn__threads(ctx) threads (ctx may be NULL: one thread). Allocates the
 * packing buffers with cn_alloc for the duration of the call. */
CN__HIDDEN cn_status cn__sgemm(const cn_ctx *ctx, int trans_a, int trans_b, int64_t M, int64_t N,
                               int64_t K, float alpha, const float *A, int64_t lda, const float *B,
                               int64_t ldb, float beta, float *C, int64_t ldc);

/* As cn__sgemm, with ws either NULL (allocate internally) or a caller-owned
 * buffer of at least cn__sgemm_ws_size(M, N, K, cn__threads(ctx)) bytes,
 * 64-byte aligned (cn_alloc), used by one call at a time; its contents
 * need no initialisation and are garbage afterwards. With a workspace the
 * call cannot fail. */
CN__HIDDEN cn_status cn__sgemm_ws(const cn_ctx *ctx, int trans_a, int trans_b, int64_t M, int64_t N,
                                  int64_t K, float alpha, const float *A, int64_t lda,
                                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
                                  void *ws);

/* As cn__sgemm_ws on an explicit ISA (tests, benchmarks). An ISA the CPU
 * cannot run is lowered to the best one it can, never executed. */
CN__HIDDEN cn_status cn__sgemm_isa(cn__isa isa, const cn_ctx *ctx, int trans_a, int trans_b,
                                   int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                                   int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                                   int64_t ldc, void *ws);

/* dst[c*ldd + r] = src[r*lds + c] for r < rows, c < cols: a copy, the
 * same bits on every ISA (isa: one the CPU runs, cn__isa_detect()'s, taken
 * once by callers that transpose many small blocks). 8 x 8 blocks go through AVX2 where
 * isa allows: the plain loop moves a float every few cycles, and at large
 * strides touches a new line per float. src and dst must not overlap. */
CN__HIDDEN void cn__transpose(cn__isa isa, int64_t rows, int64_t cols, const float *src,
                              int64_t lds, float *dst, int64_t ldd);

/* ---- Micro-kernels (used by gemm.c; declared here for the kernel files) ----
 *
 * The contract every micro-kernel meets, for its own MR and NR:
 *   a   the op(A) sliver, a[i*rs_a + p*cs_a] = op(A)[i, p] for p < k, i < MR:
 *       a packed sliver (rs_a = 1, cs_a = MR) or A read in place (rs_a =
 *       lda, cs_a = 1, or for A^T rs_a = 1, cs_a = lda). All MR rows are
 *       read, also those beyond m, whose results are dropped: they must be
 *       readable, and gemm.c zero-pads them in a packed sliver.
 *   b   the op(B) sliver, b[p*rs_b + j] = op(B)[p, j] for p < k, j < NR: a
 *       packed sliver (rs_b = NR) or B read in place (rs_b = ldb). All NR
 *       columns are read, as for rows of a. No alignment is required.
 *   k   >= 1.
 *   c   the C tile, c[i*ldc + j] for i < m, j < n, 1 <= m <= MR, 1 <= n <= NR.
 *   Computes ab[i][j] = sum over p = 0..k-1, in that order, of a*b with one
 *   fused multiply-add (a plain multiply and add in the reference), then
 *   c = alpha*ab + beta*c for the m x n tile only, nothing outside it read or
 *   written. beta == 0: c is not read.
 * The arithmetic of an element does not depend on m or n, so an edge tile
 * rounds exactly as a full one would. */
typedef void cn__sgemm_ukr(int64_t k, const float *a, int64_t rs_a, int64_t cs_a, const float *b,
                           int64_t rs_b, float *c, int64_t ldc, int m, int n, float alpha,
                           float beta);

#define CN__SGEMM_REF_MR 4
#define CN__SGEMM_REF_NR 16
#define CN__SGEMM_AVX2_MR 6
#define CN__SGEMM_AVX2_NR 16
#define CN__SGEMM_AVX512_MR 14
#define CN__SGEMM_AVX512_NR 32

CN__HIDDEN cn__sgemm_ukr cn__sgemm_ukr_ref, cn__sgemm_ukr_avx2, cn__sgemm_ukr_avx512;
/* The AVX-512 micro-kernel for at most MR8 = 8 rows (NR columns), for C
 * tiles whose row count MR divides badly; identical bits to
 * cn__sgemm_ukr_avx512, and A is read at rows [0, MR8) only. */
#define CN__SGEMM_AVX512_MR8 8
CN__HIDDEN cn__sgemm_ukr cn__sgemm_ukr8_avx512;

/* Batch-reduce micro-kernel, AVX-512 only (MR x NR as above): for the
 * m x n tile, c = ab + beta*c, where ab = sum over the pairs t = 0..nt-1,
 * in that order, of A_t B_t over p < pr[t].k:
 *   A_t[i, p] = pr[t].a[(i - lo)*pr[t].rs_a + p*cs_a] for the rows
 *     lo <= i < hi (lo = pr[t].lo, hi = pr[t].hi, 0 <= lo < hi <= MR);
 *     other rows take no part and are not read (all MR rows for [0, MR):
 *     read even past m, as for a);
 *   B_t[p, j] = pr[t].b[p*rs_b + j], columns j >= n not read;
 * each product one fused multiply-add in p order; beta == 0: c is not read.
 * pf, pf_lines: a hint, pf_lines 64-byte lines from pf on to prefetch along
 * the way (never dereferenced; NULL, 0 for none). A convolution's taps (or
 * output rows, for the weight gradient) are the pairs (conv2d_gemm.c). */
typedef struct cn__sgemm_pair {
    const float *a, *b;
    int64_t rs_a, k;
    int lo, hi;
} cn__sgemm_pair;
CN__HIDDEN void cn__sgemm_batch_avx512(int nt, const cn__sgemm_pair *pr, int64_t cs_a,
                                       int64_t rs_b, float *c, int64_t ldc, int m, int n,
                                       float beta, const float *pf, int64_t pf_lines);
/* The same for tiles of at most MR7 = 7 rows and NR7 = 64 columns (m <= 7,
 * n <= 64; hi may exceed 7, rows from 7 on are not read): each element
 * gets the same operations as in cn__sgemm_batch_avx512, so the two give
 * identical bits. */
#define CN__SGEMM_AVX512_MR7 7
#define CN__SGEMM_AVX512_NR7 64
CN__HIDDEN void cn__sgemm_batch7_avx512(int nt, const cn__sgemm_pair *pr, int64_t cs_a,
                                        int64_t rs_b, float *c, int64_t ldc, int m, int n,
                                        float beta, const float *pf, int64_t pf_lines);

/* dst[p*ldd + j] = src[p*lds + j] for p < k, j < n <= 16: short rows
 * copied with masked AVX-512 loads and stores (nothing past n is read or
 * written), for the implicit backward-weights' packed tiles. */
CN__HIDDEN void cn__copy_rows_avx512(int64_t k, const float *src, int64_t lds, int n, float *dst,
                                     int64_t ldd);

/* Packing kernel for op(B) = B^T: d[p*nr + j] = src[j*ld + p] for p < k,
 * j < nr, with nr a multiple of 8 (a full sliver of NR columns of op(B)
 * from NR rows of B). Plain copies, so packed slivers are identical
 * whichever packer wrote them. */
CN__HIDDEN void cn__sgemm_pack_bt_avx2(int64_t k, const float *src, int64_t ld, int nr, float *d);
/* cn__transpose's full 8 x 8 blocks: rows and cols multiples of 8. */
CN__HIDDEN void cn__transpose8_avx2(int64_t rows, int64_t cols, const float *src, int64_t lds,
                                    float *dst, int64_t ldd);

/* The plain triple loop, single-threaded, in float with a float accumulator:
 * the obvious-by-inspection version of cn__sgemm's semantics. */
CN__HIDDEN void cn__sgemm_naive(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                                float alpha, const float *A, int64_t lda, const float *B,
                                int64_t ldb, float beta, float *C, int64_t ldc);

#endif
