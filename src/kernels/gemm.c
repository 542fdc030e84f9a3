/* src/kernels/gemm.c - sgemm: ISA dispatch, thread partition, cache blocking
 * and packing around the micro-kernels (see kernels/gemm.h).
 *
 * Per thread, over its own rectangle of C (loop names as in BLIS):
 *   jc: NC-wide column panels of C
 *     group: pack op(B)[slices, jc:jc+NC] into NR-wide slivers, one K-slice
 *            after another; normally one group holds all of K, so that a C
 *            block meets every slice while it is still in cache
 *       ic: MC-tall row blocks of C
 *         pc: K-slices of depth <= KC, in order (the first applies beta,
 *             the rest accumulate with beta = 1)
 *             pack op(A)[ic:ic+MC, slice] into MR-tall slivers, or read
 *             full slivers of A in place when C is narrow (a_in_place)
 *             jr, ir: one micro-kernel call per MR x NR tile
 * The K-slices depend only on K and the ISA, and each C element belongs to
 * one thread, so the result does not depend on the thread count.
 */
#include "kernels/gemm.h"

#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "convnet/tensor.h"

#if defined(__x86_64__) || defined(__i386__)
#define CN__X86 1
#else
#define CN__X86 0
#endif

/* ---------------------------------------------------------------- ISAs */

static const char *const isa_names[] = {"scalar", "avx2", "avx512"};
_Static_assert(sizeof isa_names / sizeof isa_names[0] == CN_ISA_COUNT, "one name per cn__isa");

const char *cn__isa_name(cn__isa isa)
{
    return (unsigned)isa < CN_ISA_COUNT ? isa_names[isa] : "unknown";
}

int cn__isa_supported(cn__isa isa)
{
    switch (isa) {
    case CN_ISA_SCALAR: return 1;
#if CN__X86
    /* __builtin_cpu_supports also checks that the OS saves the wide
     * registers (XCR0), not only the CPUID bits. */
    case CN_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CN_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
#endif
    default: return 0;
    }
}

cn__isa cn__isa_detect(void)
{
    cn__isa best = CN_ISA_SCALAR;
    for (int i = CN_ISA_COUNT - 1; i > CN_ISA_SCALAR; i--)
        if (cn__isa_supported((cn__isa)i)) {
            best = (cn__isa)i;
            break;
        }
    const char *cap = getenv("CN_ISA");
    if (cap)
        for (int i = 0; i < CN_ISA_COUNT; i++)
            if (strcmp(cap, isa_names[i]) == 0 && i < (int)best) best = (cn__isa)i;
    return best;
}

/* ------------------------------------------------------ kernel table */

/* Blocking per ISA. KC: the deepest K-slice; MC: rows of C per packed A
 * block (MC x KC, kept in L2). B_FLOATS: the packed op(B) of a thread is
 * kept near this size (L3): all of K for as many columns as fit, but at
 * least NC_MIN columns (fewer K-slices then), because every jc panel packs
 * op(A) again, which would cost more than the compute for narrow panels. */
typedef struct kernel {
    cn__sgemm_ukr *ukr;
    int mr, nr, kc, mc;
} kernel;

#define B_FLOATS (1 << 20)
#define NC_MIN 1024

static const kernel kernels[CN_ISA_COUNT] = {
    [CN_ISA_SCALAR] = {cn__sgemm_ukr_ref, CN__SGEMM_REF_MR, CN__SGEMM_REF_NR, 256, 64},
#if CN__X86
    [CN_ISA_AVX2] = {cn__sgemm_ukr_avx2, CN__SGEMM_AVX2_MR, CN__SGEMM_AVX2_NR, 384, 144},
    [CN_ISA_AVX512] = {cn__sgemm_ukr_avx512, CN__SGEMM_AVX512_MR, CN__SGEMM_AVX512_NR, 384, 168},
#endif
};

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t round_up(int64_t a, int64_t b) { return cdiv(a, b) * b; }

/* How K and N are cut: nk K-slices of at most kc_max, jc panels of nc
 * columns, op(B) packed `group` slices at a time. */
typedef struct blocking {
    int64_t nk, kc_max, nc, group;
} blocking;

static blocking block_sizes(const kernel *kr, int64_t N, int64_t K)
{
    blocking b;
    b.nk = cdiv(K, kr->kc);
    b.kc_max = cdiv(K, b.nk);
    b.nc = CN__MIN(round_up(N, kr->nr), CN__MAX(NC_MIN, B_FLOATS / K / kr->nr * kr->nr));
    b.group = K * b.nc <= B_FLOATS ? b.nk : CN__MAX(1, B_FLOATS / (b.kc_max * b.nc));
    return b;
}

/* Floats of one thread's packing buffers: A block, then B panel, each
 * rounded to 16 floats so that both start 64-byte aligned. */
static int64_t a_floats(const kernel *kr, int64_t M, int64_t K)
{
    return round_up(CN__MIN(round_up(M, kr->mr), kr->mc) * CN__MIN(K, kr->kc), 16);
}
static int64_t b_floats(const kernel *kr, int64_t N, int64_t K)
{
    blocking b = block_sizes(kr, N, K);
    return round_up(CN__MIN(K, b.group * b.kc_max) * b.nc, 16);
}

size_t cn__sgemm_ws_size(int64_t M, int64_t N, int64_t K, int threads)
{
    if (M <= 0 || N <= 0 || K <= 0) return 0;
    if (threads < 1) threads = 1;
    int64_t most = 0;
    for (int i = 0; i < CN_ISA_COUNT; i++) {
        if (!kernels[i].ukr) continue;
        int64_t f = a_floats(&kernels[i], M, K) + b_floats(&kernels[i], N, K);
        most = CN__MAX(most, f);
    }
    return (size_t)most * sizeof(float) * (size_t)threads;
}

/* ---------------------------------------------------------- packing */

/* op(A)[i0:i0+mc, p0:p0+kc] -> MR-tall slivers d[s*mr*kc + p*mr + i],
 * rows past mc zero. Inlined per MR so the inner loops have constant trip
 * counts. */
static inline __attribute__((always_inline)) void pack_a(int mr, int trans, const float *A,
                                                         int64_t lda, int64_t i0, int64_t mc,
                                                         int64_t p0, int64_t kc, float *d)
{
    for (int64_t s = 0; s < mc; s += mr, d += mr * kc) {
        int rows = (int)CN__MIN(mr, mc - s);
        if (!trans) {
            const float *src = A + (i0 + s) * lda + p0;
            if (rows == mr) {
                for (int64_t p = 0; p < kc; p++)
                    for (int i = 0; i < mr; i++) d[p * mr + i] = src[i * lda + p];
            } else {
                for (int64_t p = 0; p < kc; p++)
                    for (int i = 0; i < mr; i++) d[p * mr + i] = i < rows ? src[i * lda + p] : 0.0f;
            }
        } else {
            const float *src = A + p0 * lda + i0 + s;
            for (int64_t p = 0; p < kc; p++)
                for (int i = 0; i < mr; i++) d[p * mr + i] = i < rows ? src[p * lda + i] : 0.0f;
        }
    }
}

/* op(B)[p0:p0+kc, j0:j0+nc] -> NR-wide slivers d[s*nr*kc + p*nr + j],
 * columns past nc zero. */
static inline __attribute__((always_inline)) void pack_b(int nr, int trans, const float *B,
                                                         int64_t ldb, int64_t p0, int64_t kc,
                                                         int64_t j0, int64_t nc, float *d)
{
    if (!trans) {
        /* Row by row of B: walking down a sliver instead would touch a new
         * page per row when ldb is large. */
        for (int64_t p = 0; p < kc; p++) {
            const float *src = B + (p0 + p) * ldb + j0;
            float *dp = d + p * nr;
            int64_t s = 0;
            for (; s + nr <= nc; s += nr)
                for (int j = 0; j < nr; j++) dp[s * kc + j] = src[s + j];
            if (s < nc)
                for (int j = 0; j < nr; j++) dp[s * kc + j] = s + j < nc ? src[s + j] : 0.0f;
        }
        return;
    }
    /* op(B) = B^T: row j of B is column j of op(B), contiguous in p. */
    for (int64_t s = 0; s < nc; s += nr, d += nr * kc) {
        const int cols = (int)CN__MIN(nr, nc - s);
        for (int j = 0; j < nr; j++) {
            const float *src = B + (j0 + s + j) * ldb + p0;
            if (j < cols)
                for (int64_t p = 0; p < kc; p++) d[p * nr + j] = src[p];
            else
                for (int64_t p = 0; p < kc; p++) d[p * nr + j] = 0.0f;
        }
    }
}

/* One out-of-line copy per MR and NR in use. */
#define PACK_A(R)                                                                                \
    static void pack_a_##R(int t, const float *A, int64_t lda, int64_t i0, int64_t mc,           \
                           int64_t p0, int64_t kc, float *d)                                     \
    {                                                                                            \
        pack_a(R, t, A, lda, i0, mc, p0, kc, d);                                                 \
    }
#define PACK_B(C)                                                                                \
    static void pack_b_##C(int t, const float *B, int64_t ldb, int64_t p0, int64_t kc,           \
                           int64_t j0, int64_t nc, float *d)                                     \
    {                                                                                            \
        pack_b(C, t, B, ldb, p0, kc, j0, nc, d);                                                 \
    }
PACK_A(4)
PACK_A(6)
PACK_A(14)
PACK_B(16)
PACK_B(32)

typedef void pack_a_fn(int, const float *, int64_t, int64_t, int64_t, int64_t, int64_t, float *);
typedef void pack_b_fn(int, const float *, int64_t, int64_t, int64_t, int64_t, int64_t, float *);

static pack_a_fn *packer_a(int mr)
{
    return mr == 14 ? pack_a_14 : mr == 6 ? pack_a_6 : pack_a_4;
}
static pack_b_fn *packer_b(int nr) { return nr == 32 ? pack_b_32 : pack_b_16; }
_Static_assert(CN__SGEMM_REF_MR == 4 && CN__SGEMM_AVX2_MR == 6 && CN__SGEMM_AVX512_MR == 14 &&
                   CN__SGEMM_REF_NR == 16 && CN__SGEMM_AVX2_NR == 16 &&
                   CN__SGEMM_AVX512_NR == 32,
               "packers exist for these MR and NR");

/* ----------------------------------------------------------- driver */

typedef struct problem {
    const kernel *kr;
    int ta, tb;
    int64_t M, N, K;
    blocking bk;
    float alpha, beta;
    const float *A, *B;
    int64_t lda, ldb, ldc;
    float *C;
} problem;

/* K-slice s is [*k0, *k0 + *kc): nk near-equal slices of at most KC, the
 * first K % nk one longer, a function of K and the ISA only. */
static void k_slice(const problem *pb, int64_t s, int64_t *k0, int64_t *kc)
{
    int64_t base = pb->K / pb->bk.nk, rem = pb->K % pb->bk.nk;
    *k0 = s * base + CN__MIN(s, rem);
    *kc = base + (s < rem);
}

/* Whether full slivers are read from A or B in place instead of packed.
 * Packing costs about as much per element as a few FMA vectors, so it only
 * pays when a sliver is reused many times: an A sliver once per B sliver
 * (NR columns of C), a B sliver once per A sliver (MR rows). Narrow C
 * (convolutions with few output channels) reads A in place; short C
 * (weight gradients, small batches) reads B in place when it is not
 * transposed. A row stride of a multiple of 2 KiB maps the rows of a sliver
 * onto too few cache sets, so such matrices are always packed. */
#define IN_PLACE_MAX_SLIVERS 4
static int a_in_place(const problem *pb, int64_t ncols)
{
    return cdiv(ncols, pb->kr->nr) <= IN_PLACE_MAX_SLIVERS && pb->lda % 512 != 0;
}
static int b_in_place(const problem *pb, int64_t mrows)
{
    return !pb->tb && pb->ldb % 512 != 0;
}

/* The MR x NR tile at (ir, jr) of a C block for the K-slice [k0, k0+kc):
 * rows below ma and columns below nb in place, the others from the packed
 * abuf and bs (whose slivers start at rows ma and columns nb). */
static inline void tile(const problem *pb, int64_t ic, int64_t mc, int64_t ma, int64_t jc,
                        int64_t nc, int64_t nb, int64_t k0, int64_t kc, const float *abuf,
                        const float *bs, int64_t ir, int64_t jr, float beta)
{
    const kernel *kr = pb->kr;
    /* In place, op(A)[i, p] = A[i*lda + p] (rs = lda, cs = 1) or, for A^T,
     * A[p*lda + i] (rs = 1, cs = lda); op(B)[p, j] = B[p*ldb + j]. */
    const int64_t rs = pb->ta ? 1 : pb->lda, cs = pb->ta ? pb->lda : 1;
    const float *a = ir < ma ? pb->A + (ic + ir) * rs + k0 * cs : abuf + (ir - ma) * kc;
    const float *b = jr < nb ? pb->B + k0 * pb->ldb + jc + jr : bs + (jr - nb) * kc;
    kr->ukr(kc, a, ir < ma ? rs : 1, ir < ma ? cs : kr->mr, b, jr < nb ? pb->ldb : kr->nr,
            pb->C + (ic + ir) * pb->ldc + jc + jr, pb->ldc, (int)CN__MIN(kr->mr, mc - ir),
            (int)CN__MIN(kr->nr, nc - jr), pb->alpha, beta);
}

/* One K-slice of the C block [ic, ic+mc) x [jc, jc+nc). A sliver read in
 * place meets its few B slivers while it is in L1; otherwise each B sliver
 * stays in cache while the A slivers of the block stream past it. */
static void macro_kernel(const problem *pb, int64_t ic, int64_t mc, int64_t ma, int64_t jc,
                         int64_t nc, int64_t nb, int64_t k0, int64_t kc, const float *abuf,
                         const float *bs)
{
    const int mr = pb->kr->mr, nr = pb->kr->nr;
    const float beta = k0 == 0 ? pb->beta : 1.0f;
    for (int64_t ir = 0; ir < ma; ir += mr)
        for (int64_t jr = 0; jr < nc; jr += nr)
            tile(pb, ic, mc, ma, jc, nc, nb, k0, kc, abuf, bs, ir, jr, beta);
    for (int64_t jr = 0; jr < nc; jr += nr)
        for (int64_t ir = ma; ir < mc; ir += mr)
            tile(pb, ic, mc, ma, jc, nc, nb, k0, kc, abuf, bs, ir, jr, beta);
}

/* C[m0:m1, n0:n1] on one thread with its packing buffers abuf, bbuf. */
static void run_block(const problem *pb, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                      float *abuf, float *bbuf)
{
    const kernel *kr = pb->kr;
    const int mr = kr->mr, nr = kr->nr;
    const blocking *bk = &pb->bk;
    pack_a_fn *pack_a_k = packer_a(mr);
    pack_b_fn *pack_b_k = packer_b(nr);
    /* Near-equal row blocks, so that the last one is not a sliver. */
    const int64_t MC = round_up(cdiv(m1 - m0, cdiv(m1 - m0, kr->mc)), mr);
    const int a_direct = a_in_place(pb, n1 - n0), b_direct = b_in_place(pb, m1 - m0);
    for (int64_t jc = n0; jc < n1; jc += bk->nc) {
        const int64_t nc = CN__MIN(bk->nc, n1 - jc);
        /* Columns [jc, jc+nb) in place; the rest (all, or the short edge
         * sliver, whose missing columns must not be read from B) packed. */
        const int64_t nb = b_direct ? nc / nr * nr : 0, ncp = round_up(nc - nb, nr);
        /* Slices [g0, g1) of op(B) packed together: usually all of them,
         * so that a C block meets all of K while it is in cache. */
        for (int64_t g0 = 0; g0 < bk->nk; g0 += bk->group) {
            const int64_t g1 = CN__MIN(bk->nk, g0 + bk->group);
            int64_t gk0, k0, kc;
            k_slice(pb, g0, &gk0, &kc);
            for (int64_t s = g0; s < g1 && nb < nc; s++) {
                k_slice(pb, s, &k0, &kc);
                pack_b_k(pb->tb, pb->B, pb->ldb, k0, kc, jc + nb, nc - nb,
                         bbuf + (k0 - gk0) * ncp);
            }
            for (int64_t ic = m0; ic < m1; ic += MC) {
                const int64_t mc = CN__MIN(MC, m1 - ic);
                const int64_t ma = a_direct ? mc / mr * mr : 0; /* as nb */
                for (int64_t s = g0; s < g1; s++) {
                    k_slice(pb, s, &k0, &kc);
                    if (ma < mc) pack_a_k(pb->ta, pb->A, pb->lda, ic + ma, mc - ma, k0, kc, abuf);
                    macro_kernel(pb, ic, mc, ma, jc, nc, nb, k0, kc, abuf,
                                 bbuf + (k0 - gk0) * ncp);
                }
            }
        }
    }
}

/* Below this many flops a second thread costs more to start than it saves. */
#define PAR_MIN_FLOPS (1 << 20)

/* Splits C into a tm x tn grid of rectangles along tile boundaries, for at
 * most `threads` threads (fewer when there are too few tiles). Each thread
 * packs its own rows of op(A) and columns of op(B), so the split that
 * duplicates less packing wins when the compute per thread is equal; the
 * weight 16 is roughly the cost of packing one float in lane-FMAs. */
static int choose_grid(const kernel *kr, int64_t M, int64_t N, int64_t K, int threads, int *tm,
                       int *tn)
{
    const int64_t mt = cdiv(M, kr->mr), nt = cdiv(N, kr->nr);
    if ((double)M * (double)N * (double)K * 2.0 < PAR_MIN_FLOPS) threads = 1;
    for (int t = threads; t > 1; t--) {
        double best = -1;
        for (int a = 1; a <= t; a++) {
            if (t % a || a > mt || t / a > nt) continue;
            const int b = t / a;
            double cost = (double)cdiv(mt, a) * kr->mr * (double)cdiv(nt, b) * kr->nr * K +
                          16.0 * (double)K * ((double)M / a + (double)N / b);
            if (best < 0 || cost < best) {
                best = cost;
                *tm = a;
                *tn = b;
            }
        }
        if (best >= 0) return t;
    }
    *tm = *tn = 1;
    return 1;
}

/* Grid cell w of tm x tn: its rows [*m0, *m1) and columns [*n0, *n1), cut at
 * multiples of MR and NR so that edge tiles stay at the matrix edges. */
static void grid_cell(const problem *pb, int w, int tm, int tn, int64_t *m0, int64_t *m1,
                      int64_t *n0, int64_t *n1)
{
    const int64_t mt = cdiv(pb->M, pb->kr->mr), nt = cdiv(pb->N, pb->kr->nr);
    const int i = w % tm, j = w / tm;
    *m0 = CN__MIN(pb->M, mt * i / tm * pb->kr->mr);
    *m1 = CN__MIN(pb->M, mt * (i + 1) / tm * pb->kr->mr);
    *n0 = CN__MIN(pb->N, nt * j / tn * pb->kr->nr);
    *n1 = CN__MIN(pb->N, nt * (j + 1) / tn * pb->kr->nr);
}

static void scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
}

cn_status cn__sgemm_isa(cn__isa isa, const cn_ctx *ctx, int trans_a, int trans_b, int64_t M,
                        int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                        const float *B, int64_t ldb, float beta, float *C, int64_t ldc, void *ws)
{
    if (M <= 0 || N <= 0) return CN_OK;
    if (K <= 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, ldc);
        return CN_OK;
    }
    if ((unsigned)isa >= CN_ISA_COUNT) isa = CN_ISA_SCALAR;
    while (!cn__isa_supported(isa)) isa = (cn__isa)(isa - 1);
    const kernel *kr = &kernels[isa];
    problem pb = {kr, trans_a, trans_b, M, N, K, block_sizes(kr, N, K), alpha, beta,
                  A, B, lda, ldb, ldc, C};

    int tm, tn;
    const int T = choose_grid(kr, M, N, K, cn__threads(ctx), &tm, &tn);
    const int64_t af = a_floats(kr, M, K), per_thread = af + b_floats(kr, N, K);
    float *buf = ws, *owned = NULL;
    if (!buf) {
        owned = buf = cn_alloc((size_t)(per_thread * T) * sizeof(float));
        if (!buf)
            return cn__err(CN_ERR_NO_MEMORY, "sgemm: cannot allocate %lld bytes of workspace",
                           (long long)(per_thread * T * (int64_t)sizeof(float)));
    }

    if (T == 1) {
        run_block(&pb, 0, M, 0, N, buf, buf + af);
    } else {
#pragma omp parallel num_threads(T)
        {
            int tid = 0, got = 1;
#ifdef _OPENMP
            tid = omp_get_thread_num();
            got = omp_get_num_threads();
#endif
            /* The runtime may grant fewer threads than asked (nesting,
             * OMP_THREAD_LIMIT): the cells are then shared out. */
            float *a = buf + tid * per_thread;
            for (int w = tid; w < T; w += got) {
                int64_t m0, m1, n0, n1;
                grid_cell(&pb, w, tm, tn, &m0, &m1, &n0, &n1);
                if (m0 < m1 && n0 < n1) run_block(&pb, m0, m1, n0, n1, a, a + af);
            }
        }
    }
    cn_free(owned);
    return CN_OK;
}

cn_status cn__sgemm_ws(const cn_ctx *ctx, int trans_a, int trans_b, int64_t M, int64_t N,
                       int64_t K, float alpha, const float *A, int64_t lda, const float *B,
                       int64_t ldb, float beta, float *C, int64_t ldc, void *ws)
{
    return cn__sgemm_isa(cn__isa_detect(), ctx, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb,
                         beta, C, ldc, ws);
}

cn_status cn__sgemm(const cn_ctx *ctx, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                    float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                    float beta, float *C, int64_t ldc)
{
    return cn__sgemm_isa(cn__isa_detect(), ctx, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb,
                         beta, C, ldc, NULL);
}
