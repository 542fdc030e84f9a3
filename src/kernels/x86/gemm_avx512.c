/* src/kernels/x86/gemm_avx512.c - the AVX-512 sgemm micro-kernel, 14 x 32,
 * and its batch-reduce variant for the implicit convolutions.
 *
 * Contract: the micro-kernel contract in kernels/gemm.h with MR = 14,
 * NR = 32. Only AVX-512F instructions (plus what it implies); gemm.c calls
 * it only after cn__isa_supported(CN_ISA_AVX512).
 *
 * Why 14 x 32: C tiles are rows of C, so a row of the tile is two zmm
 * vectors (32 floats, a full NR sliver for convolutions with 32 or 64
 * output channels). 14 rows x 2 = 28 accumulators + 2 B vectors + 1-2
 * broadcasts fill the 32 zmm registers; per k that is 28 FMAs against 2 B
 * loads and 14 broadcast loads, so the FMA units stay busy with the load
 * ports half idle, even when A and B are read in place from L2 rather than
 * from packed slivers in L1 (on one Zen 4 core, from L1: 104-114 GFLOP/s
 * against about 117 for a bare FMA loop).
 */
#include "kernels/gemm.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define TGT __attribute__((target("avx512f,avx2,fma")))
#define MR CN__SGEMM_AVX512_MR
#define NR CN__SGEMM_AVX512_NR
#define MR7 CN__SGEMM_AVX512_MR7

/* The lanes of columns [j0, j0 + 16) that lie below n. */
static inline TGT __mmask16 cols_mask(int n, int j0)
{
    return n >= j0 + 16 ? 0xffff : n > j0 ? (__mmask16)((1u << (n - j0)) - 1) : 0;
}

/* The batch kernels' prefetch hint (pf_lines lines from pf): with no pairs
 * (a tile the filter does not reach) all of it now; else the share of it
 * each pair's k loop issues first. */
static inline TGT int64_t hint_share(int nt, const float *pf, int64_t pf_lines)
{
    for (int64_t i = 0; nt == 0 && i < pf_lines; i++)
        _mm_prefetch((const char *)(pf + i * 16), _MM_HINT_T0);
    return nt ? (pf_lines + nt - 1) / nt : 0;
}

/* Applies c = alpha*ab + beta*c to the 32 columns of one row under masks
 * m0, m1 (columns 0-15, 16-31); beta == 0 never loads c. Masked lanes are
 * neither read nor written (AVX-512 masked accesses do not fault). */
static inline TGT void store_row(float *c, __m512 ab0, __m512 ab1, __m512 va, __m512 vb, int beta0,
                                 __mmask16 m0, __mmask16 m1)
{
    ab0 = _mm512_mul_ps(va, ab0);
    ab1 = _mm512_mul_ps(va, ab1);
    if (!beta0) {
        ab0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, c), ab0);
        ab1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, c + 16), ab1);
    }
    _mm512_mask_storeu_ps(c, m0, ab0);
    _mm512_mask_storeu_ps(c + 16, m1, ab1);
}

/* The 14 rows spelled out, so that the accumulators are named registers
 * rather than an array the compiler might keep in memory. */
#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)
#define DECL(i) __m512 c##i##a = _mm512_setzero_ps(), c##i##b = _mm512_setzero_ps();
#define FMA(i, row)                                                                                \
    {                                                                                              \
        __m512 ai = _mm512_set1_ps(row);                                                           \
        c##i##a = _mm512_fmadd_ps(ai, b0, c##i##a);                                                \
        c##i##b = _mm512_fmadd_ps(ai, b1, c##i##b);                                                \
    }
#define STORE(i)                                                                                   \
    if ((i) < m) store_row(c + (int64_t)(i)*ldc, c##i##a, c##i##b, va, vb, beta == 0.0f, m0, m1);

TGT void cn__sgemm_ukr_avx512(int64_t k, const float *a, int64_t rs_a, int64_t cs_a, const float *b,
                              int64_t rs_b, float *c, int64_t ldc, int m, int n, float alpha,
                              float beta)
{
    ROWS(DECL)
    /* Rows 3q, 3q+1, 3q+2 as base + {0, 1, 2} x stride: five pointers and
     * two strides stay in registers for any rs_a, so that one loop serves
     * packed slivers and rows of A read in place alike. */
    const int64_t r1 = rs_a, r2 = 2 * rs_a;
    const float *a0 = a, *a3 = a + 3 * r1, *a6 = a + 6 * r1, *a9 = a + 9 * r1, *a12 = a + 12 * r1;
    /* The C tile is written (and read, beta != 0) only after the k loop:
     * fetching it now hides the misses of tiles that are not in cache. */
    for (int i = 0; i < m; i++) {
        _mm_prefetch((const char *)(c + (int64_t)i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + (int64_t)i * ldc + NR - 1), _MM_HINT_T0);
    }
    /* Rows of A read in place (cs_a == 1) are usually followed by the MR
     * rows below: they are fetched a cache line per row every 16 k, as the
     * hardware prefetchers do not ramp up on 14 short streams. Prefetches
     * never fault, so rows past the matrix are harmless. */
    const int ahead = cs_a == 1;
    for (int64_t p0 = 0; p0 < k; p0 += 16) {
        if (ahead)
            for (int i = 0; i < MR; i++)
                _mm_prefetch((const char *)(a + (MR + i) * r1 + p0), _MM_HINT_T0);
        const int64_t p1 = CN__MIN(k, p0 + 16);
        for (int64_t p = p0; p < p1; p++) {
            __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
            /* clang-format off */
            FMA(0, a0[0]) FMA(1, a0[r1]) FMA(2, a0[r2])
            FMA(3, a3[0]) FMA(4, a3[r1]) FMA(5, a3[r2])
            FMA(6, a6[0]) FMA(7, a6[r1]) FMA(8, a6[r2])
            FMA(9, a9[0]) FMA(10, a9[r1]) FMA(11, a9[r2])
            FMA(12, a12[0]) FMA(13, a12[r1])
            a0 += cs_a, a3 += cs_a, a6 += cs_a, a9 += cs_a, a12 += cs_a;
            /* clang-format on */
            b += rs_b;
        }
    }
    const __mmask16 m0 = cols_mask(n, 0), m1 = cols_mask(n, 16);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    ROWS(STORE)
}

/* The same for at most 8 rows (m <= 8): 16 accumulators, for C tiles
 * whose row count 14 would divide badly (32 rows: 4 x 8 computed rather
 * than 3 x 14). Each element gets the same operations as in
 * cn__sgemm_ukr_avx512, so the two give identical bits. A is read at rows
 * [0, 8) only. */
#define ROWS8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
TGT void cn__sgemm_ukr8_avx512(int64_t k, const float *a, int64_t rs_a, int64_t cs_a,
                               const float *b, int64_t rs_b, float *c, int64_t ldc, int m, int n,
                               float alpha, float beta)
{
    ROWS8(DECL)
    const int64_t r1 = rs_a, r2 = 2 * rs_a;
    const float *a0 = a, *a3 = a + 3 * r1, *a6 = a + 6 * r1;
    for (int i = 0; i < m; i++) {
        _mm_prefetch((const char *)(c + (int64_t)i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + (int64_t)i * ldc + NR - 1), _MM_HINT_T0);
    }
    for (int64_t p = 0; p < k; p++) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        /* clang-format off */
        FMA(0, a0[0]) FMA(1, a0[r1]) FMA(2, a0[r2])
        FMA(3, a3[0]) FMA(4, a3[r1]) FMA(5, a3[r2])
        FMA(6, a6[0]) FMA(7, a6[r1])
        a0 += cs_a, a3 += cs_a, a6 += cs_a;
        /* clang-format on */
        b += rs_b;
    }
    const __mmask16 m0 = cols_mask(n, 0), m1 = cols_mask(n, 16);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    ROWS8(STORE)
}

/* One k step of the batch kernel on rows a0 + {0, r1, r2}, a3 + ... */
#define BODY                                                                                       \
    FMA(0, a0[0])                                                                                  \
    FMA(1, a0[r1]) FMA(2, a0[r2]) FMA(3, a3[0]) FMA(4, a3[r1]) FMA(5, a3[r2]) FMA(6, a6[0])        \
        FMA(7, a6[r1]) FMA(8, a6[r2]) FMA(9, a9[0]) FMA(10, a9[r1]) FMA(11, a9[r2])                \
            FMA(12, a12[0]) FMA(13, a12[r1]) a0 += cs_a,                                           \
        a3 += cs_a, a6 += cs_a, a9 += cs_a, a12 += cs_a;                                           \
    b += rs_b;

/* A k loop over rows [LO, HI) of a full-width tile: BODY with a test per
 * row, which folds away (with the other rows' FMAs and A reads) where LO
 * and HI are literals. */
/* clang-format off */
#define FMAR(i, row, LO, HI)                                                                       \
    if ((i) >= (LO) && (i) < (HI)) FMA(i, row)
#define LOOP14(LO, HI)                                                                             \
    for (int64_t p = 0; p < k; p++) {                                                              \
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);                             \
        FMAR(0, a0[0], LO, HI) FMAR(1, a0[r1], LO, HI) FMAR(2, a0[r2], LO, HI)                     \
        FMAR(3, a3[0], LO, HI) FMAR(4, a3[r1], LO, HI) FMAR(5, a3[r2], LO, HI)                     \
        FMAR(6, a6[0], LO, HI) FMAR(7, a6[r1], LO, HI) FMAR(8, a6[r2], LO, HI)                     \
        FMAR(9, a9[0], LO, HI) FMAR(10, a9[r1], LO, HI) FMAR(11, a9[r2], LO, HI)                   \
        FMAR(12, a12[0], LO, HI) FMAR(13, a12[r1], LO, HI)                                         \
        a0 += cs_a, a3 += cs_a, a6 += cs_a, a9 += cs_a, a12 += cs_a;                               \
        b += rs_b;                                                                                 \
    }                                                                                              \
    break;
/* clang-format on */

/* The batch-reduce kernel (gemm.h): the k loop of cn__sgemm_ukr_avx512 run
 * once per pair into the same accumulators, so a convolution sums its taps
 * (or pixels) straight from its tensors, without an im2col copy, storing C
 * once. B columns past n are masked off, as B is read in place. */
TGT void cn__sgemm_batch_avx512(int nt, const cn__sgemm_pair *pr, int64_t cs_a, int64_t rs_b,
                                float *c, int64_t ldc, int m, int n, float beta, const float *pf,
                                int64_t pf_lines)
{
    const int64_t pf_per = hint_share(nt, pf, pf_lines);
    ROWS(DECL)
    const __mmask16 m0 = cols_mask(n, 0), m1 = cols_mask(n, 16);
    for (int i = 0; i < m; i++) {
        _mm_prefetch((const char *)(c + (int64_t)i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + (int64_t)i * ldc + NR - 1), _MM_HINT_T0);
    }
    for (int t = 0; t < nt; t++) {
        for (int64_t i = 0; i < pf_per && pf_lines > 0; i++, pf_lines--, pf += 16)
            _mm_prefetch((const char *)pf, _MM_HINT_T0);
        const int64_t r1 = pr[t].rs_a, r2 = 2 * r1, k = pr[t].k;
        const float *b = pr[t].b;
        const int lo = pr[t].lo, hi = pr[t].hi;
        if (lo > 0 || hi < MR) {
            /* Rows [lo, hi) only (a tap partly in the padding, a tile
             * across two taps): the other rows' FMAs are skipped, and their
             * A never read; pr[t].a is row lo. */
            if (n == NR) {
                /* The ranges of a 3x3 filter's border taps literal, so that
                 * the row tests fold away (r2a, resnet's 3x3 stride-2 32 ->
                 * 64 layer on 28x28, whose kw = 0 taps all start at row 1:
                 * forward 0.92-0.95 of the time, backward-data 0.94,
                 * in-process A/B); other ranges test each row, as the 7-row
                 * kernel's do. Rows are base + i * r1, base the address of
                 * row 0, never dereferenced below lo (an integer
                 * subtraction: it may lie before the tensor). */
                const float *a0 = (const float *)((uintptr_t)pr[t].a -
                                                  (uintptr_t)(lo * r1 * (int64_t)sizeof(float))),
                            *a3 = a0 + 3 * r1, *a6 = a0 + 6 * r1, *a9 = a0 + 9 * r1,
                            *a12 = a0 + 12 * r1;
                switch (lo * 16 + hi) {
                case 1 * 16 + 14:
                    LOOP14(1, 14)
                case 0 * 16 + 13:
                    LOOP14(0, 13)
                case 2 * 16 + 14:
                    LOOP14(2, 14)
                case 0 * 16 + 12:
                    LOOP14(0, 12)
                case 1 * 16 + 13:
                    LOOP14(1, 13)
                default:
                    LOOP14(lo, hi)
                }
                continue;
            }
            /* Fewer columns: B's loads masked. */
            const float *rp[MR];
            for (int i = 0; i < MR; i++) rp[i] = pr[t].a + (i >= lo && i < hi ? (i - lo) * r1 : 0);
#define PFMA(i)                                                                                    \
    if ((i) >= lo && (i) < hi) FMA(i, rp[i][p * cs_a])
            for (int64_t p = 0; p < k; p++) {
                __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);
                ROWS(PFMA)
                b += rs_b;
            }
#undef PFMA
            continue;
        }
        const float *a0 = pr[t].a, *a3 = a0 + 3 * r1, *a6 = a0 + 6 * r1, *a9 = a0 + 9 * r1,
                    *a12 = a0 + 12 * r1;
        if (n == NR)
            for (int64_t p = 0; p < k; p++) {
                __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
                BODY
            }
        else
            for (int64_t p = 0; p < k; p++) {
                __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);
                BODY
            }
    }
    __m512 va = _mm512_set1_ps(1.0f), vb = _mm512_set1_ps(beta);
    ROWS(STORE)
}


/* The 7 x 64 batch kernel: for tiles of at most 7 rows (a 7-pixel output
 * row, a stride-2 phase of a 14-pixel row), where the 14-row kernel would
 * spend half its FMAs on rows that are dropped. 7 rows x 4 zmm = 28
 * accumulators again, 4 B loads and 7 broadcasts per 28 FMAs. */
#define R7(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6)
#define DECL4(i)                                                                                   \
    __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps(),                           \
           c##i##2 = _mm512_setzero_ps(), c##i##3 = _mm512_setzero_ps();
#define FMA4(i, v)                                                                                 \
    {                                                                                              \
        __m512 ai = _mm512_set1_ps(v);                                                             \
        c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0);                                                \
        c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1);                                                \
        c##i##2 = _mm512_fmadd_ps(ai, b2, c##i##2);                                                \
        c##i##3 = _mm512_fmadd_ps(ai, b3, c##i##3);                                                \
    }
/* Row i's A pointer: rows outside [lo, hi) get row lo's (never read). */
#define RP7(i) const float *rp##i = pr[t].a + ((i) >= lo && (i) < hi ? ((i)-lo) * r1 : 0);
#define RF7(i, LO, HI)                                                                             \
    if ((i) >= (LO) && (i) < (HI)) {                                                              \
        FMA4(i, *rp##i) rp##i += cs_a;                                                             \
    }
/* A pair's k loop over rows [LO, HI): with literal bounds (the switch
 * below) the row tests fold away, so a tap at a border costs no branches. */
#define LOOP7(LO, HI)                                                                              \
    for (int64_t p = 0; p < k; p++) {                                                              \
        __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);          \
        __m512 b2 = _mm512_maskz_loadu_ps(m2, b + 32), b3 = _mm512_maskz_loadu_ps(m3, b + 48);     \
        RF7(0, LO, HI) RF7(1, LO, HI) RF7(2, LO, HI) RF7(3, LO, HI) RF7(4, LO, HI) RF7(5, LO, HI)  \
            RF7(6, LO, HI) b += rs_b;                                                              \
    }                                                                                              \
    break;
/* The same over all 64 columns of full tiles, the common case: plain
 * loads, so that no mask registers are reloaded from the stack every k
 * (7 x 4 accumulators and 4 B vectors leave no register for them; s2b
 * forward 8.4 -> 8.0 ms, backward-data 8.6 -> 8.15 ms on one thread). */
#define LOOP7F                                                                                     \
    for (int64_t p = 0; p < k; p++) {                                                              \
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);                             \
        __m512 b2 = _mm512_loadu_ps(b + 32), b3 = _mm512_loadu_ps(b + 48);                        \
        RF7(0, 0, 7) RF7(1, 0, 7) RF7(2, 0, 7) RF7(3, 0, 7) RF7(4, 0, 7) RF7(5, 0, 7) RF7(6, 0, 7) \
        b += rs_b;                                                                                 \
    }                                                                                              \
    break;
#define STORE4(i)                                                                                  \
    if ((i) < m) {                                                                                 \
        float *ci = c + (int64_t)(i)*ldc;                                                          \
        if (beta != 0.0f) {                                                                        \
            c##i##0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, ci), c##i##0);                 \
            c##i##1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16), c##i##1);            \
            c##i##2 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m2, ci + 32), c##i##2);            \
            c##i##3 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m3, ci + 48), c##i##3);            \
        }                                                                                          \
        _mm512_mask_storeu_ps(ci, m0, c##i##0);                                                    \
        _mm512_mask_storeu_ps(ci + 16, m1, c##i##1);                                               \
        _mm512_mask_storeu_ps(ci + 32, m2, c##i##2);                                               \
        _mm512_mask_storeu_ps(ci + 48, m3, c##i##3);                                               \
    }

TGT void cn__sgemm_batch7_avx512(int nt, const cn__sgemm_pair *pr, int64_t cs_a, int64_t rs_b,
                                 float *c, int64_t ldc, int m, int n, float beta, const float *pf,
                                 int64_t pf_lines)
{
    const int64_t pf_per = hint_share(nt, pf, pf_lines);
    R7(DECL4)
    const __mmask16 m0 = cols_mask(n, 0), m1 = cols_mask(n, 16), m2 = cols_mask(n, 32),
                    m3 = cols_mask(n, 48);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j += 16) _mm_prefetch((const char *)(c + i * ldc + j), _MM_HINT_T0);
    for (int t = 0; t < nt; t++) {
        for (int64_t i = 0; i < pf_per && pf_lines > 0; i++, pf_lines--, pf += 16)
            _mm_prefetch((const char *)pf, _MM_HINT_T0);
        const int64_t r1 = pr[t].rs_a, k = pr[t].k;
        const float *b = pr[t].b;
        const int lo = pr[t].lo, hi = CN__MIN(pr[t].hi, MR7);
        R7(RP7)
        /* The ranges of taps at a border (the rest: the generic loop) */
        switch (lo == 0 && hi == 7 && n == 64 ? -1 : lo * 8 + hi) {
        case -1: LOOP7F
        case 7: LOOP7(0, 7)
        case 6: LOOP7(0, 6)
        case 5: LOOP7(0, 5)
        case 4: LOOP7(0, 4)
        case 15: LOOP7(1, 7)
        case 23: LOOP7(2, 7)
        case 31: LOOP7(3, 7)
        default: LOOP7(lo, hi)
        }
    }
    const __m512 vb = _mm512_set1_ps(beta);
    R7(STORE4)
}

/* k rows of n <= 16 floats, one masked load and store a row. */
TGT void cn__copy_rows_avx512(int64_t k, const float *src, int64_t lds, int n, float *dst,
                              int64_t ldd)
{
    const __mmask16 mk = cols_mask(n, 0);
    for (int64_t p = 0; p < k; p++, src += lds, dst += ldd)
        _mm512_mask_storeu_ps(dst, mk, _mm512_maskz_loadu_ps(mk, src));
}

#else
/* Not an x86 build: gemm.c does not reference the micro-kernel, and the
 * convolutions call the batch kernel only when cn__isa_detect() says
 * AVX-512, never here; this plain version only satisfies the linker. */
void cn__sgemm_batch_avx512(int nt, const cn__sgemm_pair *pr, int64_t cs_a, int64_t rs_b, float *c,
                            int64_t ldc, int m, int n, float beta, const float *pf,
                            int64_t pf_lines)
{
    (void)pf, (void)pf_lines;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float s = 0.0f;
            for (int t = 0; t < nt; t++)
                for (int64_t p = 0; p < pr[t].k && i >= pr[t].lo && i < pr[t].hi; p++)
                    s += pr[t].a[(i - pr[t].lo) * pr[t].rs_a + p * cs_a] * pr[t].b[p * rs_b + j];
            c[i * ldc + j] = beta == 0.0f ? s : s + beta * c[i * ldc + j];
        }
}
void cn__sgemm_batch7_avx512(int nt, const cn__sgemm_pair *pr, int64_t cs_a, int64_t rs_b,
                             float *c, int64_t ldc, int m, int n, float beta, const float *pf,
                             int64_t pf_lines)
{
    cn__sgemm_batch_avx512(nt, pr, cs_a, rs_b, c, ldc, m, n, beta, pf, pf_lines);
}
void cn__copy_rows_avx512(int64_t k, const float *src, int64_t lds, int n, float *dst,
                          int64_t ldd)
{
    for (int64_t p = 0; p < k; p++)
        for (int j = 0; j < n; j++) dst[p * ldd + j] = src[p * lds + j];
}
#endif
