/* sgemm (kernels/gemm.h): every ISA this CPU runs against a double-precision
 * reference, edge shapes, transposes, strides, alpha/beta, determinism
 * across thread counts, the workspace contract and the CN_ISA override;
 * and the strided transpose beside it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm.h"
#include "testlib.h"

/* One call's configuration, printed on failure so it can be rerun. */
typedef struct cfg {
    int ta, tb;
    int64_t M, N, K, lda, ldb, ldc;
    float alpha, beta;
} cfg;

static const char *cfg_str(const cfg *c)
{
    static char s[200];
    snprintf(s, sizeof s,
             "M=%lld N=%lld K=%lld ta=%d tb=%d lda=%lld ldb=%lld ldc=%lld alpha=%g beta=%g",
             (long long)c->M, (long long)c->N, (long long)c->K, c->ta, c->tb, (long long)c->lda,
             (long long)c->ldb, (long long)c->ldc, c->alpha, c->beta);
    return s;
}

/* Storage of op(A) [M,K] and op(B) [K,N] with their leading dimensions. */
static int64_t a_rows(const cfg *c) { return c->ta ? c->K : c->M; }
static int64_t b_rows(const cfg *c) { return c->tb ? c->N : c->K; }
static size_t a_len(const cfg *c) { return (size_t)(a_rows(c) * c->lda); }
static size_t b_len(const cfg *c) { return (size_t)(b_rows(c) * c->ldb); }
static size_t c_len(const cfg *c) { return (size_t)(c->M * c->ldc); }

static float op_a(const cfg *c, const float *A, int64_t i, int64_t p)
{
    return c->ta ? A[p * c->lda + i] : A[i * c->lda + p];
}
static float op_b(const cfg *c, const float *B, int64_t p, int64_t j)
{
    return c->tb ? B[j * c->ldb + p] : B[p * c->ldb + j];
}

/* Test data: A, B, C with their padding (columns past K, N, N) set to NaN,
 * so that a kernel reading outside the matrices poisons its result. */
typedef struct data {
    float *A, *B, *C0, *C;
    double *ref, *bound;
} data;

static void data_free(data *d)
{
    free(d->A), free(d->B), free(d->C0), free(d->C), free(d->ref), free(d->bound);
    memset(d, 0, sizeof *d);
}

/* integer != 0: small integers, whose products and sums are exact in float. */
static int data_make(data *d, const cfg *c, int integer)
{
    size_t na = a_len(c) + 1, nb = b_len(c) + 1, nc = c_len(c) + 1;
    d->A = malloc(na * sizeof(float)), d->B = malloc(nb * sizeof(float));
    d->C0 = malloc(nc * sizeof(float)), d->C = malloc(nc * sizeof(float));
    d->ref = malloc(nc * sizeof(double)), d->bound = malloc(nc * sizeof(double));
    if (!d->A || !d->B || !d->C0 || !d->C || !d->ref || !d->bound) return 0;
    float *bufs[3] = {d->A, d->B, d->C0};
    int64_t rows[3] = {a_rows(c), b_rows(c), c->M}, cols[3], ld[3] = {c->lda, c->ldb, c->ldc};
    cols[0] = c->ta ? c->M : c->K, cols[1] = c->tb ? c->K : c->N, cols[2] = c->N;
    for (int t = 0; t < 3; t++)
        for (int64_t r = 0; r < rows[t]; r++)
            for (int64_t j = 0; j < ld[t]; j++)
                bufs[t][r * ld[t] + j] = j >= cols[t] ? NAN
                                         : integer    ? (float)tl_randint(-4, 4)
                                                      : (float)tl_uniform(-1, 1);
    /* beta == 0 promises not to read C: make reading it visible. */
    if (c->beta == 0.0f)
        for (int64_t i = 0; i < c->M; i++)
            for (int64_t j = 0; j < c->N; j++) d->C0[i * c->ldc + j] = NAN;
    for (int64_t i = 0; i < c->M; i++)
        for (int64_t j = 0; j < c->N; j++) {
            double s = 0, sa = 0;
            if (c->alpha != 0.0f)
                for (int64_t p = 0; p < c->K; p++) {
                    double ab = (double)op_a(c, d->A, i, p) * op_b(c, d->B, p, j);
                    s += ab;
                    sa += fabs(ab);
                }
            double c0 = c->beta == 0.0f ? 0.0 : (double)c->beta * d->C0[i * c->ldc + j];
            d->ref[i * c->ldc + j] = (double)c->alpha * s + c0;
            d->bound[i * c->ldc + j] = fabs((double)c->alpha) * sa + fabs(c0);
        }
    return 1;
}

static cn_status run(cn__isa isa, int threads, const cfg *c, data *d, void *ws)
{
    cn_ctx ctx;
    cn_ctx_init(&ctx);
    ctx.threads = threads;
    memcpy(d->C, d->C0, c_len(c) * sizeof(float));
    return cn__sgemm_isa(isa, &ctx, c->ta, c->tb, c->M, c->N, c->K, c->alpha, d->A, c->lda, d->B,
                         c->ldb, c->beta, d->C, c->ldc, ws);
}

/* The first element off by more than 1e-5 of sum |alpha a b| + |beta c| (+ 1e-6),
 * or one outside the M x N window that changed (NaN padding must stay NaN);
 * -1 if none. */
static long first_bad(const cfg *c, const data *d, double *err)
{
    *err = 0;
    for (int64_t i = 0; i < c->M; i++)
        for (int64_t j = 0; j < c->ldc; j++) {
            int64_t at = i * c->ldc + j;
            if (j >= c->N) {
                if (!isnan(d->C[at]) && d->C[at] != d->C0[at]) return (long)at;
                continue;
            }
            double e = fabs((double)d->C[at] - d->ref[at]);
            if (!(e <= 1e-5 * d->bound[at] + 1e-6)) {
                *err = e;
                return (long)at;
            }
        }
    return -1;
}

/* Dimensions that straddle every ISA's tile sizes (MR 4, 6, 14; NR 16, 32;
 * KC 256) or are awkward primes. */
static const int64_t edges[] = {1,  2,  3,  4,  5,  6,  7,  13, 14, 15, 16,  17,  27,  28,
                                29, 31, 32, 33, 41, 47, 63, 64, 65, 97, 127, 131, 255, 257};
#define N_EDGES ((int)(sizeof edges / sizeof edges[0]))

static int64_t pick_dim(int big)
{
    if (big && tl_randint(0, 7) == 0) return tl_randint(200, 600);
    return edges[tl_randint(0, N_EDGES - 1)];
}

static cfg random_cfg(void)
{
    static const float alphas[] = {1.0f, -1.0f, 0.5f, 2.5f, 0.0f};
    static const float betas[] = {0.0f, 1.0f, -0.5f, 0.25f};
    cfg c;
    c.ta = tl_randint(0, 1), c.tb = tl_randint(0, 1);
    c.M = pick_dim(1), c.N = pick_dim(1), c.K = pick_dim(1);
    if (tl_randint(0, 9) == 0) c.K = 0;
    if (tl_randint(0, 9) == 0) c.K = tl_randint(600, 1100); /* several K-slices */
    int64_t pad = tl_randint(0, 2) ? 0 : tl_randint(1, 9);
    c.lda = (c.ta ? c.M : c.K) + pad;
    c.ldb = (c.tb ? c.K : c.N) + (tl_randint(0, 2) ? 0 : tl_randint(1, 9));
    c.ldc = c.N + (tl_randint(0, 2) ? 0 : tl_randint(1, 9));
    if (c.lda == 0) c.lda = 1;
    if (c.ldb == 0) c.ldb = 1;
    /* Strides of a multiple of 512 floats make gemm.c pack A and B
     * instead of reading them in place. */
    if (tl_randint(0, 5) == 0) c.lda = (c.lda + 511) / 512 * 512;
    if (tl_randint(0, 5) == 0) c.ldb = (c.ldb + 511) / 512 * 512;
    c.alpha = alphas[tl_randint(0, 4)];
    c.beta = betas[tl_randint(0, 3)];
    return c;
}

/* Runs c on every ISA this CPU supports; returns 0 after reporting a failure. */
static int check_all_isas(const cfg *c, int integer)
{
    data d;
    memset(&d, 0, sizeof d);
    if (!data_make(&d, c, integer)) {
        data_free(&d);
        tl_fail(__FILE__, __LINE__, "out of memory for %s", cfg_str(c));
        return 0;
    }
    for (int isa = 0; isa < CN_ISA_COUNT; isa++) {
        if (!cn__isa_supported((cn__isa)isa)) continue;
        cn_status s = run((cn__isa)isa, 1, c, &d, NULL);
        double err;
        long bad = s == CN_OK ? first_bad(c, &d, &err) : 0;
        if (s != CN_OK || bad >= 0) {
            tl_fail(
                __FILE__, __LINE__, "%s: %s: element %ld (row %ld col %ld) = %g, want %g (err %g)",
                cn__isa_name((cn__isa)isa), cfg_str(c), bad, bad / (long)c->ldc, bad % (long)c->ldc,
                bad >= 0 ? d.C[bad] : 0.0, bad >= 0 ? d.ref[bad] : 0.0, err);
            data_free(&d);
            return 0;
        }
        if (integer)
            for (int64_t i = 0; i < c->M; i++)
                for (int64_t j = 0; j < c->N; j++)
                    if ((double)d.C[i * c->ldc + j] != d.ref[i * c->ldc + j]) {
                        tl_fail(__FILE__, __LINE__, "%s: %s: C[%lld,%lld] = %g, exactly %g",
                                cn__isa_name((cn__isa)isa), cfg_str(c), (long long)i, (long long)j,
                                d.C[i * c->ldc + j], d.ref[i * c->ldc + j]);
                        data_free(&d);
                        return 0;
                    }
    }
    data_free(&d);
    return 1;
}

static void every_isa_matches_double_reference_on_random_shapes(void)
{
    for (int t = 0; t < 300; t++) {
        cfg c = random_cfg();
        if (!check_all_isas(&c, 0)) return;
    }
}

static void every_isa_is_exact_on_small_integer_inputs(void)
{
    for (int t = 0; t < 60; t++) {
        cfg c = random_cfg();
        if (c.K > 300) c.K = 300; /* sums stay below 2^24 */
        c.lda = c.ta ? c.M : c.K, c.ldb = c.tb ? c.K : c.N;
        if (c.lda == 0) c.lda = 1;
        if (c.ldb == 0) c.ldb = 1;
        c.alpha = tl_randint(0, 1) ? 1.0f : -2.0f;
        if (!check_all_isas(&c, 1)) return;
    }
}

static void all_transposes_and_tile_edges_match_reference(void)
{
    static const int64_t dims[] = {1, 13, 14, 15, 31, 32, 33};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int i = 0; i < 7; i++)
                for (int j = 0; j < 7; j++) {
                    cfg c = {ta, tb, dims[i], dims[j], dims[(i + j) % 7] + 5, 0, 0, 0, 1.0f, 0.0f};
                    c.lda = (ta ? c.M : c.K) + 3, c.ldb = (tb ? c.K : c.N) + 1, c.ldc = c.N + 2;
                    if (!check_all_isas(&c, 0)) return;
                }
}

static void k_zero_or_alpha_zero_gives_beta_times_c(void)
{
    static const float betas[] = {0.0f, 1.0f, -3.0f};
    for (int b = 0; b < 3; b++)
        for (int az = 0; az < 2; az++) {
            cfg c = {0, 1, 9, 37, az ? 20 : 0, 0, 0, 40, az ? 0.0f : 1.5f, betas[b]};
            c.lda = c.K ? c.K : 1, c.ldb = c.K ? c.K : 1;
            data d;
            memset(&d, 0, sizeof d);
            CHECK(data_make(&d, &c, 0), "out of memory");
            /* alpha == 0 must not read A or B either */
            for (size_t i = 0; i < a_len(&c); i++) d.A[i] = NAN;
            for (size_t i = 0; i < b_len(&c); i++) d.B[i] = NAN;
            int ok = 1;
            for (int isa = 0; isa < CN_ISA_COUNT && ok; isa++) {
                if (!cn__isa_supported((cn__isa)isa)) continue;
                ok = run((cn__isa)isa, 2, &c, &d, NULL) == CN_OK;
                for (int64_t i = 0; i < c.M && ok; i++)
                    for (int64_t j = 0; j < c.N && ok; j++) {
                        float want = c.beta == 0.0f ? 0.0f : c.beta * d.C0[i * c.ldc + j];
                        ok = d.C[i * c.ldc + j] == want;
                    }
                if (!ok) printf("  isa %s\n", cn__isa_name((cn__isa)isa));
            }
            data_free(&d);
            CHECK(ok, "%s: C is not beta * C", cfg_str(&c));
        }
}

static void empty_m_or_n_touches_nothing(void)
{
    float C[4] = {1, 2, 3, 4};
    CHECK_OK(cn__sgemm(NULL, 0, 0, 0, 4, 3, 1.0f, NULL, 3, NULL, 4, 0.0f, C, 4));
    CHECK_OK(cn__sgemm(NULL, 0, 0, 1, 0, 3, 1.0f, NULL, 3, NULL, 1, 0.0f, C, 4));
    CHECK(C[0] == 1 && C[3] == 4, "C changed");
}

/* Shapes big enough to be split between threads in each direction; the
 * last has K so deep that op(B) is packed a group of K-slices at a time. */
static const cfg thread_cfgs[] = {
    {0, 0, 301, 77, 300, 300, 77, 77, 1.0f, 0.0f},
    {1, 0, 29, 700, 513, 29, 700, 703, 0.5f, 1.0f},
    {0, 1, 6272 / 8, 64, 288, 288, 288, 64, 1.0f, 0.0f},
    {1, 1, 200, 200, 1000, 203, 1000, 200, -1.0f, 0.25f},
    {0, 0, 1000, 17, 65, 65, 17, 17, 1.0f, 1.0f},
    {1, 1, 15, 20, 70001, 15, 70001, 21, 1.0f, 0.5f},
};
#define N_THREAD_CFGS ((int)(sizeof thread_cfgs / sizeof thread_cfgs[0]))

static void one_and_two_threads_give_identical_bits(void)
{
    for (int t = 0; t < N_THREAD_CFGS; t++) {
        const cfg *c = &thread_cfgs[t];
        data d;
        memset(&d, 0, sizeof d);
        CHECK(data_make(&d, c, 0), "out of memory");
        float *one = malloc(c_len(c) * sizeof(float));
        for (int isa = 0; isa < CN_ISA_COUNT && one; isa++) {
            if (!cn__isa_supported((cn__isa)isa)) continue;
            int same = run((cn__isa)isa, 1, c, &d, NULL) == CN_OK;
            memcpy(one, d.C, c_len(c) * sizeof(float));
            for (int threads = 2; threads <= 3 && same; threads++)
                same = run((cn__isa)isa, threads, c, &d, NULL) == CN_OK &&
                       memcmp(one, d.C, c_len(c) * sizeof(float)) == 0;
            double err;
            if (!same || first_bad(c, &d, &err) >= 0) {
                free(one), data_free(&d);
                CHECK(0, "%s: %s: differs between thread counts or from the reference",
                      cn__isa_name((cn__isa)isa), cfg_str(c));
            }
        }
        CHECK(one, "out of memory");
        free(one);
        data_free(&d);
    }
}

/* Matrices read in place and packed (strides of a multiple of 512 floats,
 * or B stored transposed) are the same arithmetic. */
static void in_place_and_packed_operands_give_identical_bits(void)
{
    /* variant 0: A and B in place; 1: both packed; 2: B^T packed */
    cfg c[3] = {{0, 0, 100, 40, 300, 301, 41, 40, 1.0f, 0.0f}};
    c[1] = c[0], c[2] = c[0];
    c[1].lda = 1024, c[1].ldb = 512;
    c[2].tb = 1, c[2].ldb = c[0].K;
    data d[3];
    memset(d, 0, sizeof d);
    int ok = 1;
    for (int v = 0; v < 3; v++) ok = ok && data_make(&d[v], &c[v], 0);
    CHECK(ok, "out of memory");
    for (int v = 1; v < 3; v++) {
        for (int64_t i = 0; i < c[0].M; i++)
            memcpy(&d[v].A[i * c[v].lda], &d[0].A[i * c[0].lda], (size_t)c[0].K * 4);
        for (int64_t p = 0; p < c[0].K; p++)
            for (int64_t j = 0; j < c[0].N; j++)
                d[v].B[c[v].tb ? j * c[v].ldb + p : p * c[v].ldb + j] = d[0].B[p * c[0].ldb + j];
    }
    for (int isa = 0; isa < CN_ISA_COUNT && ok; isa++) {
        if (!cn__isa_supported((cn__isa)isa)) continue;
        for (int v = 0; v < 3 && ok; v++) ok = run((cn__isa)isa, 1, &c[v], &d[v], NULL) == CN_OK;
        for (int v = 1; v < 3 && ok; v++)
            ok = memcmp(d[0].C, d[v].C, c_len(&c[0]) * sizeof(float)) == 0;
        if (!ok) printf("  isa %s\n", cn__isa_name((cn__isa)isa));
    }
    for (int v = 0; v < 3; v++) data_free(&d[v]);
    CHECK(ok, "in-place and packed operands differ");
}

/* A workspace of exactly cn__sgemm_ws_size bytes is enough (a guard band
 * after it stays intact) and gives the same bits as internal allocation. */
static void workspace_of_the_documented_size_suffices(void)
{
    for (int t = 0; t < 40; t++) {
        cfg c = random_cfg();
        if (t < N_THREAD_CFGS) c = thread_cfgs[t];
        int threads = tl_randint(1, 2);
        size_t ws_bytes = cn__sgemm_ws_size(c.M, c.N, c.K, threads), guard = 4096;
        unsigned char *ws = cn_alloc(ws_bytes + guard);
        data d;
        memset(&d, 0, sizeof d);
        CHECK(ws && data_make(&d, &c, 0), "out of memory");
        memset(ws + ws_bytes, 0xA5, guard);
        float *own = malloc(c_len(&c) * sizeof(float));
        int ok = own != NULL;
        for (int isa = 0; isa < CN_ISA_COUNT && ok; isa++) {
            if (!cn__isa_supported((cn__isa)isa)) continue;
            ok = run((cn__isa)isa, threads, &c, &d, NULL) == CN_OK;
            memcpy(own, d.C, c_len(&c) * sizeof(float));
            ok = ok && run((cn__isa)isa, threads, &c, &d, ws) == CN_OK &&
                 memcmp(own, d.C, c_len(&c) * sizeof(float)) == 0;
            for (size_t i = 0; i < guard && ok; i++) ok = ws[ws_bytes + i] == 0xA5;
            if (!ok)
                printf("  isa %s threads %d ws %zu bytes\n", cn__isa_name((cn__isa)isa), threads,
                       ws_bytes);
        }
        free(own);
        cn_free(ws);
        data_free(&d);
        CHECK(ok, "%s: workspace overrun or result differs", cfg_str(&c));
    }
}

static void naive_loop_matches_reference(void)
{
    for (int t = 0; t < 40; t++) {
        cfg c = random_cfg();
        data d;
        memset(&d, 0, sizeof d);
        CHECK(data_make(&d, &c, 0), "out of memory");
        memcpy(d.C, d.C0, c_len(&c) * sizeof(float));
        cn__sgemm_naive(c.ta, c.tb, c.M, c.N, c.K, c.alpha, d.A, c.lda, d.B, c.ldb, c.beta, d.C,
                        c.ldc);
        double err;
        long bad = first_bad(&c, &d, &err);
        data_free(&d);
        CHECK(bad < 0, "%s: element %ld err %g", cfg_str(&c), bad, err);
    }
}

static void cn_isa_environment_variable_caps_the_isa(void)
{
    const char *saved = getenv("CN_ISA");
    char keep[32] = "";
    if (saved) snprintf(keep, sizeof keep, "%s", saved);
    unsetenv("CN_ISA");
    cn__isa best = cn__isa_detect();
    CHECK(cn__isa_supported(best), "detected %s is not supported", cn__isa_name(best));
    for (int i = best + 1; i < CN_ISA_COUNT; i++)
        CHECK(!cn__isa_supported((cn__isa)i), "%s supported but not detected",
              cn__isa_name((cn__isa)i));
    int ok = 1;
    for (int i = 0; i < CN_ISA_COUNT; i++) {
        setenv("CN_ISA", cn__isa_name((cn__isa)i), 1);
        cn__isa got = cn__isa_detect(), want = i < (int)best ? (cn__isa)i : best;
        if (got != want) {
            printf("  CN_ISA=%s gave %s\n", cn__isa_name((cn__isa)i), cn__isa_name(got));
            ok = 0;
        }
    }
    setenv("CN_ISA", "bogus", 1);
    ok = ok && cn__isa_detect() == best;
    /* The dispatching entry point follows the variable: the scalar path's
     * result differs in rounding from the SIMD ones, so compare bits. */
    cfg c = {0, 0, 37, 45, 301, 301, 45, 45, 1.0f, 0.0f};
    data d;
    memset(&d, 0, sizeof d);
    float *via_env = malloc(c_len(&c) * sizeof(float));
    if (!via_env || !data_make(&d, &c, 0)) ok = 0;
    for (int i = 0; i < CN_ISA_COUNT && ok; i++) {
        if (!cn__isa_supported((cn__isa)i)) continue;
        setenv("CN_ISA", cn__isa_name((cn__isa)i), 1);
        memcpy(d.C, d.C0, c_len(&c) * sizeof(float));
        ok = cn__sgemm(NULL, 0, 0, c.M, c.N, c.K, 1.0f, d.A, c.lda, d.B, c.ldb, 0.0f, d.C, c.ldc) ==
             CN_OK;
        memcpy(via_env, d.C, c_len(&c) * sizeof(float));
        ok = ok && run((cn__isa)i, 1, &c, &d, NULL) == CN_OK &&
             memcmp(via_env, d.C, c_len(&c) * sizeof(float)) == 0;
    }
    free(via_env);
    data_free(&d);
    if (saved)
        setenv("CN_ISA", keep, 1);
    else
        unsetenv("CN_ISA");
    CHECK(ok, "CN_ISA not honoured");
}

/* The batch-reduce kernel against a plain sum: 0-3 pairs, each with its
 * own depth k, row stride and (half the time) row range, A columns 1 or 2
 * apart, edge tiles in m and n (columns past n must not be read, so B ends
 * right after them), beta 0 over NaN and beta 1, and nothing outside the
 * m x n tile written. Small integers: exact. */
static void batch_kernel_is_exact_and_stays_in_its_tile(void)
{
    if (!cn__isa_supported(CN_ISA_AVX512)) return;
    /* pair rows up to 14 (the conv's pairs), tiles up to 14 x 32 or, for
     * the 7 x 64 kernel (every other iteration), 7 x 64, every fourth of
     * those all 64 columns wide (its unmasked loop) */
    enum { MR = CN__SGEMM_AVX512_MR, NR = CN__SGEMM_AVX512_NR7, LDC = NR + 3 };
    for (int it = 0; it < 600 && tl_ok(); it++) {
        const int k7 = it % 2;
        const int nt = tl_randint(0, 3), m = tl_randint(1, k7 ? CN__SGEMM_AVX512_MR7 : MR),
                  n = it % 8 == 1 ? NR : tl_randint(1, k7 ? NR : CN__SGEMM_AVX512_NR);
        const int64_t cs = tl_randint(1, 2), rs_b = n + tl_randint(0, 2);
        const float beta = (float)tl_randint(0, 1);
        const int ranged = tl_randint(0, 1);
        float *a[3], *b[3], c[(MR + 1) * LDC], want[(MR + 1) * LDC];
        cn__sgemm_pair pr[3];
        for (int t = 0; t < nt; t++) {
            const int64_t k = tl_randint(1, 40), rs = k * cs + tl_randint(0, 5);
            const int lo = ranged ? tl_randint(0, MR - 1) : 0;
            const int hi = ranged ? tl_randint(lo + 1, MR) : MR;
            a[t] = malloc((size_t)(MR * rs) * sizeof(float));
            b[t] = malloc((size_t)((k - 1) * rs_b + n) * sizeof(float));
            for (int64_t i = 0; i < MR * rs; i++) a[t][i] = (float)tl_randint(-3, 3);
            for (int64_t i = 0; i < (k - 1) * rs_b + n; i++) b[t][i] = (float)tl_randint(-3, 3);
            pr[t] = (cn__sgemm_pair){a[t] + lo * rs, b[t], rs, k, lo, hi};
        }
        for (int i = 0; i < (MR + 1) * LDC; i++) c[i] = want[i] = (float)tl_randint(-3, 3);
        if (beta == 0.0f) c[0] = NAN;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                float s = 0.0f;
                for (int t = 0; t < nt; t++)
                    for (int64_t p = 0; p < pr[t].k && i >= pr[t].lo && i < pr[t].hi; p++)
                        s += a[t][i * pr[t].rs_a + p * cs] * b[t][p * rs_b + j];
                want[i * LDC + j] = s + (beta == 0.0f ? 0.0f : beta * want[i * LDC + j]);
            }
        (k7 ? cn__sgemm_batch7_avx512 : cn__sgemm_batch_avx512)(nt, pr, cs, rs_b, c, LDC, m, n,
                                                                beta, NULL, 0);
        CHECK(!memcmp(c, want, sizeof c),
              "batch kernel: k7=%d nt=%d m=%d n=%d cs=%lld beta=%g ranged=%d", k7, nt, m, n,
              (long long)cs, beta, ranged);
        for (int t = 0; t < nt; t++) free(a[t]), free(b[t]);
    }
}

/* The 8-row micro-kernel gives the 14-row one's bits on its rows: random
 * floats, A read in place either way (rows or columns apart by 1) or
 * packed, edge tiles in m and n, alpha and beta (0 over NaN), and nothing
 * outside the m x n tile written. */
static void eight_row_kernel_matches_the_fourteen_row_kernel(void)
{
    if (!cn__isa_supported(CN_ISA_AVX512)) return;
    enum { MR = CN__SGEMM_AVX512_MR, NR = CN__SGEMM_AVX512_NR, LDC = NR + 5 };
    for (int it = 0; it < 400 && tl_ok(); it++) {
        const int64_t k = tl_randint(1, 50);
        const int m = tl_randint(1, CN__SGEMM_AVX512_MR8), n = tl_randint(1, NR), orient = it % 3;
        /* orient 0: rows of A k + pad apart (in place), 1: A^T in place,
         * 2: a packed sliver (rs_a = 1, cs_a = MR) */
        const int64_t pad = tl_randint(0, 3);
        const int64_t rs_a = orient == 0 ? k + pad : 1;
        const int64_t cs_a = orient == 0 ? 1 : orient == 1 ? MR + pad : MR;
        const int64_t rs_b = NR + tl_randint(0, 3);
        const float alpha = it % 4 ? 1.0f : 0.5f, beta = (float)tl_randint(0, 2) * 0.5f;
        /* A readable for MR rows (the 14-row kernel reads them all) */
        const int64_t na = MR * rs_a + k * cs_a, nb = k * rs_b;
        float *a = malloc((size_t)na * sizeof *a), *b = malloc((size_t)nb * sizeof *b);
        float c8[(MR + 1) * LDC], c14[(MR + 1) * LDC];
        tl_fill(a, (size_t)na, -1.0, 1.0), tl_fill(b, (size_t)nb, -1.0, 1.0);
        tl_fill(c8, sizeof c8 / sizeof *c8, -1.0, 1.0);
        memcpy(c14, c8, sizeof c8);
        if (beta == 0.0f) c8[0] = c14[0] = NAN;
        cn__sgemm_ukr8_avx512(k, a, rs_a, cs_a, b, rs_b, c8, LDC, m, n, alpha, beta);
        cn__sgemm_ukr_avx512(k, a, rs_a, cs_a, b, rs_b, c14, LDC, m, n, alpha, beta);
        CHECK(!memcmp(c8, c14, sizeof c8), "ukr8: k=%lld m=%d n=%d orient=%d alpha=%g beta=%g",
              (long long)k, m, n, orient, alpha, beta);
        free(a), free(b);
    }
}

/* cn__transpose copies every element to its transposed place on every ISA,
 * full 8 x 8 blocks and ragged edges alike, and writes nothing else. */
static void transpose_moves_every_element_and_nothing_else(void)
{
    for (int it = 0; it < 300 && tl_ok(); it++) {
        const int64_t rows = tl_randint(0, 40), cols = tl_randint(0, 40);
        const int64_t lds = cols + tl_randint(0, 5), ldd = rows + tl_randint(0, 5);
        const size_t ns = (size_t)(rows * lds) + 1, nd = (size_t)(cols * ldd) + 1;
        float *src = malloc(ns * sizeof *src), *dst = malloc(nd * sizeof *dst);
        tl_fill(src, ns, -1.0, 1.0);
        for (int i = 0; i < CN_ISA_COUNT; i++) {
            if (!cn__isa_supported((cn__isa)i)) continue;
            for (size_t k = 0; k < nd; k++) dst[k] = NAN;
            cn__transpose((cn__isa)i, rows, cols, src, lds, dst, ldd);
            int64_t bad = 0;
            for (int64_t c = 0; c < cols; c++)
                for (int64_t r = 0; r < ldd; r++) {
                    const float got = dst[c * ldd + r];
                    bad += r < rows ? memcmp(&got, &src[r * lds + c], sizeof got) != 0
                                    : !isnan(got);
                }
            bad += !isnan(dst[nd - 1]);
            CHECK(bad == 0, "%s: rows=%lld cols=%lld lds=%lld ldd=%lld: %lld wrong",
                  cn__isa_name((cn__isa)i), (long long)rows, (long long)cols, (long long)lds,
                  (long long)ldd, (long long)bad);
        }
        free(src), free(dst);
    }
}

int main(void)
{
    printf("ISAs on this CPU:");
    for (int i = 0; i < CN_ISA_COUNT; i++)
        if (cn__isa_supported((cn__isa)i)) printf(" %s", cn__isa_name((cn__isa)i));
    printf("\n");
    TL_RUN(every_isa_matches_double_reference_on_random_shapes);
    TL_RUN(every_isa_is_exact_on_small_integer_inputs);
    TL_RUN(all_transposes_and_tile_edges_match_reference);
    TL_RUN(k_zero_or_alpha_zero_gives_beta_times_c);
    TL_RUN(empty_m_or_n_touches_nothing);
    TL_RUN(one_and_two_threads_give_identical_bits);
    TL_RUN(in_place_and_packed_operands_give_identical_bits);
    TL_RUN(workspace_of_the_documented_size_suffices);
    TL_RUN(naive_loop_matches_reference);
    TL_RUN(cn_isa_environment_variable_caps_the_isa);
    TL_RUN(batch_kernel_is_exact_and_stays_in_its_tile);
    TL_RUN(eight_row_kernel_matches_the_fourteen_row_kernel);
    TL_RUN(transpose_moves_every_element_and_nothing_else);
    return tl_summary();
}
