/* src/kernels/gemm.c - sgemm: ISA dispatch, thread partition, cache blocking
 * and packing around the micro-kernels (see kernels/gemm.h).
 *
 * Threads: C is cut into row chunks (or, for short C, column ranges) that
 * the threads take first come first served (choose_grid, grid_cell); with
 * the row split they first pack op(B) together into one shared buffer.
 * Per thread, over each of its rectangles of C (loop names as in BLIS):
 *   jc: NC-wide column panels of C
 *     group: pack op(B)[slices, jc:jc+NC] into NR-wide slivers, one K-slice
 *            after another; normally one group holds all of K, so that a C
 *            block meets every slice while it is still in cache
 *       ic: MC-tall row blocks of C
 *         pc: K-slices of depth <= KC, in order (the first applies beta,
 *             the rest accumulate with beta = 1)
 *             pack op(A)[ic:ic+MC, slice] into MR-tall slivers
 *             jr, ir: one micro-kernel call per MR x NR tile
 * Packing is skipped where the micro-kernel can read the matrix in place
 * (a_in_place, b_in_place); then only the short edge sliver is packed.
 * The K-slices depend only on K and the ISA, and each C element is
 * computed by one thread, so the result does not depend on the thread
 * count or on which thread took which rectangle.
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
    case CN_ISA_SCALAR:
        return 1;
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
    default:
        return 0;
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

/* A packing kernel for full slivers of op(B) = B^T (see gemm.h). */
typedef void pack_bt_fn(int64_t k, const float *src, int64_t ld, int nr, float *d);

/* op(B)[p0:p0+kc, j0:j0+nc] -> NR-wide slivers d[s*nr*kc + p*nr + j],
 * columns past nc zero; full slivers of B^T through pack_bt when not NULL,
 * as the plain loop below transposes at several cycles per float. */
static inline __attribute__((always_inline)) void pack_b(int nr, pack_bt_fn *pack_bt, int trans,
                                                         const float *B, int64_t ldb, int64_t p0,
                                                         int64_t kc, int64_t j0, int64_t nc,
                                                         float *d)
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
        if (cols == nr && pack_bt) {
            pack_bt(kc, B + (j0 + s) * ldb + p0, ldb, nr, d);
            continue;
        }
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
#define PACK_A(R)                                                                                  \
    static void pack_a_##R(int t, const float *A, int64_t lda, int64_t i0, int64_t mc, int64_t p0, \
                           int64_t kc, float *d)                                                   \
    {                                                                                              \
        pack_a(R, t, A, lda, i0, mc, p0, kc, d);                                                   \
    }
#define PACK_B(C, BT, NAME)                                                                        \
    static void NAME(int t, const float *B, int64_t ldb, int64_t p0, int64_t kc, int64_t j0,       \
                     int64_t nc, float *d)                                                         \
    {                                                                                              \
        pack_b(C, BT, t, B, ldb, p0, kc, j0, nc, d);                                               \
    }
PACK_A(4)
PACK_B(16, NULL, pack_b_16)
#if CN__X86
PACK_A(6)
PACK_A(14)
PACK_B(16, cn__sgemm_pack_bt_avx2, pack_b_16_avx2)
PACK_B(32, cn__sgemm_pack_bt_avx2, pack_b_32_avx2)
#endif

typedef void pack_a_fn(int, const float *, int64_t, int64_t, int64_t, int64_t, int64_t, float *);
typedef void pack_b_fn(int, const float *, int64_t, int64_t, int64_t, int64_t, int64_t, float *);

/* ------------------------------------------------------ kernel table */

/* Blocking per ISA. KC: the deepest K-slice; MC: rows of C per packed A
 * block (MC x KC, kept in L2). B_FLOATS: the packed op(B) of a thread is
 * kept near this size (L3): all of K for as many columns as fit, but at
 * least NC_MIN columns (fewer K-slices then), because every jc panel packs
 * op(A) again, which would cost more than the compute for narrow panels. */
typedef struct kernel {
    cn__sgemm_ukr *ukr;
    pack_a_fn *pack_a; /* packers for this MR and NR */
    pack_b_fn *pack_b;
    int mr, nr, kc, mc;
    int b_in_place; /* may read op(B) in place (see b_in_place) */
} kernel;

#define B_FLOATS (1 << 20)
#define NC_MIN 1024

_Static_assert(CN__SGEMM_REF_MR == 4 && CN__SGEMM_AVX2_MR == 6 && CN__SGEMM_AVX512_MR == 14 &&
                   CN__SGEMM_REF_NR == 16 && CN__SGEMM_AVX2_NR == 16 && CN__SGEMM_AVX512_NR == 32,
               "the packers in the table match the kernels' MR and NR");

static const kernel kernels[CN_ISA_COUNT] = {
    [CN_ISA_SCALAR] = {cn__sgemm_ukr_ref, pack_a_4, pack_b_16, CN__SGEMM_REF_MR, CN__SGEMM_REF_NR,
                       256, 64, 0},
#if CN__X86
    [CN_ISA_AVX2] = {cn__sgemm_ukr_avx2, pack_a_6, pack_b_16_avx2, CN__SGEMM_AVX2_MR,
                     CN__SGEMM_AVX2_NR, 384, 144, 0},
    [CN_ISA_AVX512] = {cn__sgemm_ukr_avx512, pack_a_14, pack_b_32_avx2, CN__SGEMM_AVX512_MR,
                       CN__SGEMM_AVX512_NR, 384, 168, 1},
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
 * first K % nk of them one longer: a function of K and the ISA only. */
static void k_slice(const problem *pb, int64_t s, int64_t *k0, int64_t *kc)
{
    int64_t base = pb->K / pb->bk.nk, rem = pb->K % pb->bk.nk;
    *k0 = s * base + CN__MIN(s, rem);
    *kc = base + (s < rem);
}

/* Whether full slivers are read from A or B in place instead of packed.
 * The micro-kernels take any row stride, and packing is pure overhead where
 * reading in place is as fast: up to a third of the time for convolution
 * shapes with few output channels. Measured on Zen 4, that holds for A with
 * every kernel, and for B only with the 14-row AVX-512 kernel, which loads
 * B once per 28 FMAs and so tolerates B slivers streaming from L2; the
 * 6-row AVX2 kernel needs its B sliver in L1, as only packing keeps it
 * (in place, rows at a short or unaligned stride crowd few cache sets).
 * op(B) = B^T has no contiguous rows, and a row stride of a multiple of
 * 2 KiB maps the rows of a sliver onto too few cache sets: always packed. */
static int a_in_place(const problem *pb) { return pb->lda % 512 != 0; }
static int b_in_place(const problem *pb)
{
    return pb->kr->b_in_place && !pb->tb && pb->ldb % 512 != 0;
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

/* One K-slice of the C block [ic, ic+mc) x [jc, jc+nc). An A sliver read
 * in place meets all B slivers while it is in L1 (no packed copy to keep
 * hot); packed A slivers stream past each B sliver as in BLIS. */
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

/* Whether the packed op(B) of ncols columns is one jc panel of one group,
 * i.e. bbuf ends up holding all of it, reusable by later blocks. */
static int b_whole(const problem *pb, int64_t ncols)
{
    return ncols <= pb->bk.nc && pb->bk.group >= pb->bk.nk;
}

/* Packs op(B) for all N columns into bbuf, laid out as run_block would
 * (b_whole must hold), one sliver per task shared out between the threads
 * of the enclosing parallel region. */
static void pack_b_shared(const problem *pb, float *bbuf)
{
    const kernel *kr = pb->kr;
    const int64_t N = pb->N, nr = kr->nr, nb = b_in_place(pb) ? N / nr * nr : 0;
    const int64_t ncp = round_up(N - nb, nr), slivers = ncp / nr;
#pragma omp for schedule(static)
    for (int64_t t = 0; t < pb->bk.nk * slivers; t++) {
        int64_t k0, kc, j = nb + t % slivers * nr;
        k_slice(pb, t / slivers, &k0, &kc);
        kr->pack_b(pb->tb, pb->B, pb->ldb, k0, kc, j, CN__MIN(nr, N - j),
                   bbuf + k0 * ncp + (j - nb) * kc);
    }
}

/* C[m0:m1, n0:n1] on one thread with its packing buffers abuf, bbuf.
 * *b_cached: the n0 of the columns whose op(B), all of it, bbuf already
 * holds from this thread's previous block, or -1. */
static void run_block(const problem *pb, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                      float *abuf, float *bbuf, int64_t *b_cached)
{
    const kernel *kr = pb->kr;
    const int mr = kr->mr, nr = kr->nr;
    const blocking *bk = &pb->bk;
    /* Near-equal row blocks, so that the last one is not a sliver. */
    const int64_t MC = round_up(cdiv(m1 - m0, cdiv(m1 - m0, kr->mc)), mr);
    const int a_direct = a_in_place(pb), b_direct = b_in_place(pb);
    /* One panel and one group: bbuf then ends up holding all of op(B) for
     * these columns, reusable by the next block with the same ones. */
    const int whole = b_whole(pb, n1 - n0);
    const int b_ready = whole && *b_cached == n0;
    *b_cached = whole ? n0 : -1;
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
            for (int64_t s = g0; s < g1 && nb < nc && !b_ready; s++) {
                k_slice(pb, s, &k0, &kc);
                kr->pack_b(pb->tb, pb->B, pb->ldb, k0, kc, jc + nb, nc - nb,
                           bbuf + (k0 - gk0) * ncp);
            }
            for (int64_t ic = m0; ic < m1; ic += MC) {
                const int64_t mc = CN__MIN(MC, m1 - ic);
                const int64_t ma = a_direct ? mc / mr * mr : 0; /* as nb */
                for (int64_t s = g0; s < g1; s++) {
                    k_slice(pb, s, &k0, &kc);
                    if (ma < mc) kr->pack_a(pb->ta, pb->A, pb->lda, ic + ma, mc - ma, k0, kc, abuf);
                    macro_kernel(pb, ic, mc, ma, jc, nc, nb, k0, kc, abuf, bbuf + (k0 - gk0) * ncp);
                }
            }
        }
    }
}

/* Below this many flops a second thread costs more to start than it saves. */
#define PAR_MIN_FLOPS (1 << 20)

/* Splits C into tm row bands by tn column ranges along tile boundaries, for
 * at most `threads` threads (fewer when there are too few tiles). A thread
 * packs the op(A) rows it needs, and the op(B) columns too unless all
 * threads share one packed op(B) (row split, b_whole), so the split with
 * the least packing per thread wins when the compute per thread is equal
 * (the weight 16 is roughly the cost of packing one float in lane-FMAs),
 * and on a tie the row split, whose bands are then dealt out in smaller
 * chunks (CHUNKS_PER_THREAD). */
static int choose_grid(const problem *pb, int threads, int *tm, int *tn)
{
    const kernel *kr = pb->kr;
    const int64_t M = pb->M, N = pb->N, K = pb->K;
    const int64_t mt = cdiv(M, kr->mr), nt = cdiv(N, kr->nr);
    const double cost_pa = a_in_place(pb) ? 0.0 : 16.0, cost_pb = b_in_place(pb) ? 0.0 : 16.0;
    if ((double)M * (double)N * (double)K * 2.0 < PAR_MIN_FLOPS) threads = 1;
    for (int t = threads; t > 1; t--) {
        double best = -1;
        for (int a = t; a >= 1; a--) {
            if (t % a || a > mt || t / a > nt) continue;
            const int b = t / a;
            const double b_cols = (double)N / (b == 1 && b_whole(pb, N) ? t : b);
            double cost = (double)cdiv(mt, a) * (double)kr->mr * (double)cdiv(nt, b) *
                              (double)kr->nr * (double)K +
                          (double)K * (cost_pa * (double)M / a + cost_pb * b_cols);
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

/* With the row split, C rows are dealt out in this many chunks per thread,
 * taken first come first served: a thread that runs late (the CPU is
 * shared with other work) then computes fewer of them instead of holding
 * up the others. */
#define CHUNKS_PER_THREAD 4

/* Cell w of the grid of row chunks (rc of them) by column ranges (tn): its
 * rows [*m0, *m1) and columns [*n0, *n1), cut at multiples of MR and NR so
 * that edge tiles stay at the matrix edges. Cells of one column range are
 * consecutive, so a thread usually finds that range's op(B) packed. */
static void grid_cell(const problem *pb, int w, int rc, int tn, int64_t *m0, int64_t *m1,
                      int64_t *n0, int64_t *n1)
{
    const int64_t mt = cdiv(pb->M, pb->kr->mr), nt = cdiv(pb->N, pb->kr->nr);
    const int i = w % rc, j = w / rc;
    *m0 = CN__MIN(pb->M, mt * i / rc * pb->kr->mr);
    *m1 = CN__MIN(pb->M, mt * (i + 1) / rc * pb->kr->mr);
    *n0 = CN__MIN(pb->N, nt * j / tn * pb->kr->nr);
    *n1 = CN__MIN(pb->N, nt * (j + 1) / tn * pb->kr->nr);
}

static void scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++)
            C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
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
    problem pb = {.kr = kr,
                  .ta = trans_a,
                  .tb = trans_b,
                  .M = M,
                  .N = N,
                  .K = K,
                  .bk = block_sizes(kr, N, K),
                  .alpha = alpha,
                  .beta = beta,
                  .A = A,
                  .B = B,
                  .lda = lda,
                  .ldb = ldb,
                  .ldc = ldc,
                  .C = C};

    int tm = 1, tn = 1;
    const int T = choose_grid(&pb, cn__threads(ctx), &tm, &tn);
    /* Row split with one packed op(B) for all columns: the threads pack it
     * together into one shared buffer instead of one copy each. */
    const int shared_b = T > 1 && tn == 1 && b_whole(&pb, N);
    /* Buffers as cn__sgemm_ws_size counts them (which bounds shared_b's
     * bf + T*af too), but only an edge sliver's worth for a matrix read in
     * place, so that a call without workspace does not allocate (and fault
     * in) megabytes it never touches. */
    int64_t af = a_floats(kr, M, K), bf = b_floats(kr, N, K);
    if (a_in_place(&pb)) af = round_up(kr->mr * pb.bk.kc_max, 16);
    if (b_in_place(&pb)) bf = round_up(kr->nr * CN__MIN(K, pb.bk.group * pb.bk.kc_max), 16);
    const int64_t slot = shared_b ? af : af + bf, total = (shared_b ? bf : 0) + T * slot;
    float *buf = ws, *owned = NULL;
    if (!buf) {
        owned = buf = cn_alloc((size_t)total * sizeof(float));
        if (!buf)
            return cn__err(CN_ERR_NO_MEMORY, "sgemm: cannot allocate %lld bytes of workspace",
                           (long long)total * (long long)sizeof(float));
    }

    int64_t cached = -1;
    if (T == 1) {
        run_block(&pb, 0, M, 0, N, buf, buf + af, &cached);
    } else {
        /* Column ranges keep one cell per thread: dealt out in chunks, a
         * thread would pack op(B) for several of them. */
        const int rc = tn > 1 ? tm : (int)CN__MIN(cdiv(M, kr->mr), (int64_t)T * CHUNKS_PER_THREAD);
        float *slots = shared_b ? buf + bf : buf;
#pragma omp parallel num_threads(T) firstprivate(cached)
        {
            int tid = 0;
#ifdef _OPENMP
            tid = omp_get_thread_num();
#endif
            float *a = slots + tid * slot, *b = shared_b ? buf : a + af;
            if (shared_b) {
                pack_b_shared(&pb, buf); /* ends in a barrier */
                cached = 0;
            }
#pragma omp for schedule(dynamic, 1)
            for (int w = 0; w < rc * tn; w++) {
                int64_t m0, m1, n0, n1;
                grid_cell(&pb, w, rc, tn, &m0, &m1, &n0, &n1);
                if (m0 < m1 && n0 < n1) run_block(&pb, m0, m1, n0, n1, a, b, &cached);
            }
        }
    }
    cn_free(owned);
    return CN_OK;
}

cn_status cn__sgemm_ws(const cn_ctx *ctx, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                       float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                       float beta, float *C, int64_t ldc, void *ws)
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

void cn__transpose(cn__isa isa, int64_t rows, int64_t cols, const float *src, int64_t lds,
                   float *dst, int64_t ldd)
{
    int64_t r8 = 0, c8 = 0;
#if CN__X86
    if (isa >= CN_ISA_AVX2) {
        r8 = rows / 8 * 8, c8 = cols / 8 * 8;
        if (r8 && c8) cn__transpose8_avx2(r8, c8, src, lds, dst, ldd);
    }
#else
    (void)isa;
#endif
    /* the edges: rows past r8 of the first c8 columns, then the columns past c8 */
    for (int64_t c = 0; c < c8; c++)
        for (int64_t r = r8; r < rows; r++) dst[c * ldd + r] = src[r * lds + c];
    for (int64_t c = c8; c < cols; c++)
        for (int64_t r = 0; r < rows; r++) dst[c * ldd + r] = src[r * lds + c];
}
