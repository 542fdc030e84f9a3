/* tools/bench_machine.c - FMA peak and memory bandwidth (see bench_machine.h).
 *
 * The peak loop keeps more independent accumulators in flight than the FMA
 * units need to hide their latency (4 cycles x 2 pipes on Zen 4/5 and recent
 * Intel cores: 8 chains; we run 16 zmm or 12 ymm), each step acc = acc*m + c
 * with m just below 1, so values stay normal and finite. Kernels are compiled
 * for their ISA through target attributes and picked at run time, as the
 * library's GEMM does. */
#include "bench_machine.h"

#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "convnet/tensor.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BENCH_X86 1
#endif

double bench_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n)
{
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Each kernel runs `iters` steps and returns a value that depends on all
 * chains, so nothing can be optimised away. */
typedef float fma_kernel(int64_t iters, float seed);

#ifdef BENCH_X86
#define STEP16(f, m, c)                                                                            \
    a0 = f(a0, m, c), a1 = f(a1, m, c), a2 = f(a2, m, c), a3 = f(a3, m, c), a4 = f(a4, m, c),      \
    a5 = f(a5, m, c), a6 = f(a6, m, c), a7 = f(a7, m, c), a8 = f(a8, m, c), a9 = f(a9, m, c),      \
    a10 = f(a10, m, c), a11 = f(a11, m, c), a12 = f(a12, m, c), a13 = f(a13, m, c),                \
    a14 = f(a14, m, c), a15 = f(a15, m, c)

__attribute__((target("avx512f"))) static float fma_avx512(int64_t iters, float seed)
{
    const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
    __m512 a0 = _mm512_set1_ps(seed), a1 = _mm512_add_ps(a0, c), a2 = _mm512_add_ps(a1, c),
           a3 = _mm512_add_ps(a2, c), a4 = _mm512_add_ps(a3, c), a5 = _mm512_add_ps(a4, c),
           a6 = _mm512_add_ps(a5, c), a7 = _mm512_add_ps(a6, c), a8 = _mm512_add_ps(a7, c),
           a9 = _mm512_add_ps(a8, c), a10 = _mm512_add_ps(a9, c), a11 = _mm512_add_ps(a10, c),
           a12 = _mm512_add_ps(a11, c), a13 = _mm512_add_ps(a12, c), a14 = _mm512_add_ps(a13, c),
           a15 = _mm512_add_ps(a14, c);
    for (int64_t i = 0; i < iters; i++) STEP16(_mm512_fmadd_ps, m, c);
    __m512 s = _mm512_add_ps(
        _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                      _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7))),
        _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)),
                      _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15))));
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma_avx2(int64_t iters, float seed)
{
    const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
    __m256 a[12];
    for (int j = 0; j < 12; j++) a[j] = _mm256_set1_ps(seed + 1e-7f * (float)j);
    __m256 a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], a4 = a[4], a5 = a[5], a6 = a[6], a7 = a[7],
           a8 = a[8], a9 = a[9], a10 = a[10], a11 = a[11];
    for (int64_t i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, m, c), a1 = _mm256_fmadd_ps(a1, m, c);
        a2 = _mm256_fmadd_ps(a2, m, c), a3 = _mm256_fmadd_ps(a3, m, c);
        a4 = _mm256_fmadd_ps(a4, m, c), a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c), a7 = _mm256_fmadd_ps(a7, m, c);
        a8 = _mm256_fmadd_ps(a8, m, c), a9 = _mm256_fmadd_ps(a9, m, c);
        a10 = _mm256_fmadd_ps(a10, m, c), a11 = _mm256_fmadd_ps(a11, m, c);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float t[8];
    _mm256_storeu_ps(t, s);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#endif

/* Plain C: 8 chains of a multiply and an add (2 flops each). */
static float fma_scalar(int64_t iters, float seed)
{
    float a[8];
    for (int j = 0; j < 8; j++) a[j] = seed + 1e-7f * (float)j;
    for (int64_t i = 0; i < iters; i++)
        for (int j = 0; j < 8; j++) a[j] = a[j] * 0.9999999f + 1e-7f;
    return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

static volatile float sink;

/* Seconds for `threads` threads to run `iters` steps each. */
static double time_fma(fma_kernel *k, int64_t iters, int threads)
{
    double t0 = bench_now();
    float acc = 0;
#pragma omp parallel num_threads(threads) reduction(+ : acc)
    acc += k(iters, 1.0f + 1e-3f * (float)omp_get_thread_num());
    double t = bench_now() - t0;
    sink = acc;
    return t;
}

double bench_fma_peak(int threads, double seconds, const char **isa)
{
    fma_kernel *k = fma_scalar;
    double flops_per_iter = 8 * 2;
    *isa = "scalar";
#ifdef BENCH_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        k = fma_avx512, flops_per_iter = 16 * 16 * 2, *isa = "avx512";
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        k = fma_avx2, flops_per_iter = 12 * 8 * 2, *isa = "avx2";
    }
#endif
    /* Calibrate on one thread (no fork, no wake-up latency) to about 20 ms,
     * then take 5 samples of seconds/5 on all threads and keep the best:
     * noise on a shared machine only ever slows the loop down. */
    int64_t iters = 1000;
    double t;
    while ((t = time_fma(k, iters, 1)) < 0.02 && iters < (INT64_C(1) << 40)) iters *= 2;
    int64_t n = (int64_t)((double)iters * (seconds / 5) / (t > 0 ? t : 1e-9));
    if (n < 1) n = 1;
    double best = 0;
    for (int s = 0; s < 5; s++) {
        double g = (double)threads * (double)n * flops_per_iter / time_fma(k, n, threads) / 1e9;
        if (g > best) best = g;
    }
    return best;
}

int bench_bandwidth(int threads, double *copy_gbps, double *triad_gbps)
{
    const int64_t n = INT64_C(1) << 25; /* 128 MiB per array */
    float *a = cn_alloc((size_t)n * sizeof(float)), *b = cn_alloc((size_t)n * sizeof(float)),
          *c = cn_alloc((size_t)n * sizeof(float));
    if (!a || !b || !c) {
        cn_free(a), cn_free(b), cn_free(c);
        return -1;
    }
    /* First touch by the threads that will use the pages. */
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++) a[i] = 0.0f, b[i] = 1.0f, c[i] = 2.0f;
    double tc[5], tt[5];
    for (int r = 0; r < 5; r++) {
        double t0 = bench_now();
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t i = 0; i < n; i++) a[i] = b[i];
        tc[r] = bench_now() - t0;
        const float s = 0.5f + (float)r;
        t0 = bench_now();
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
        tt[r] = bench_now() - t0;
    }
    sink = a[n / 3];
    *copy_gbps = 8.0 * (double)n / bench_median(tc, 5) / 1e9;
    *triad_gbps = 12.0 * (double)n / bench_median(tt, 5) / 1e9;
    cn_free(a), cn_free(b), cn_free(c);
    return 0;
}

/* The sum of p[0..n) and stores of v over q[0..m), q 64-byte aligned:
 * streaming stores with nt (AVX-512 only), else plain ones. */
typedef float stream_kernel(const float *p, size_t n, float *q, size_t m, float v, int nt);

static float stream_scalar(const float *p, size_t n, float *q, size_t m, float v, int nt)
{
    (void)nt;
    float s[8] = {0};
    for (size_t i = 0; i < n; i++) s[i % 8] += p[i];
    for (size_t i = 0; i < m; i++) q[i] = v;
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

#ifdef BENCH_X86
/* nt: streaming stores, which write whole lines without reading them first */
__attribute__((target("avx512f"))) static float stream_avx512(const float *p, size_t n, float *q,
                                                              size_t m, float v, int nt)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_add_ps(s0, _mm512_loadu_ps(p + i));
        s1 = _mm512_add_ps(s1, _mm512_loadu_ps(p + i + 16));
        s2 = _mm512_add_ps(s2, _mm512_loadu_ps(p + i + 32));
        s3 = _mm512_add_ps(s3, _mm512_loadu_ps(p + i + 48));
    }
    float r = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
    for (; i < n; i++) r += p[i];
    const __m512 vv = _mm512_set1_ps(v);
    size_t j = 0;
    if (nt)
        for (; j + 16 <= m; j += 16) _mm512_stream_ps(q + j, vv);
    else
        for (; j + 16 <= m; j += 16) _mm512_store_ps(q + j, vv);
    for (; j < m; j++) q[j] = v;
    if (nt) _mm_sfence(); /* the streamed lines reach memory before anyone reads q */
    return r;
}
#endif

/* [lo, hi) of block k of K over n floats, the bounds multiples of 16 (so
 * that 64-byte aligned blocks stay aligned). */
static void block_range(size_t n, size_t k, size_t K, size_t *lo, size_t *hi)
{
    const size_t lines = (n + 15) / 16;
    *lo = lines * k / K * 16, *hi = lines * (k + 1) / K * 16;
    if (*lo > n) *lo = n;
    if (*hi > n) *hi = n;
}

float bench_stream(const float *a, size_t na, const float *b, size_t nb, float *out, size_t nout,
                   int streaming, int threads)
{
    stream_kernel *k = stream_scalar;
#ifdef BENCH_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) k = stream_avx512;
#endif
    /* 64 KiB-ish blocks: each thread reads a block of the inputs, then
     * writes its share of the output, as a kernel interleaves them */
    const size_t total = na + nb + nout;
    size_t K = total / 16384;
    if (K < (size_t)threads) K = (size_t)threads;
    float acc = 0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : acc)
    for (size_t i = 0; i < K; i++) {
        size_t a0, a1, b0, b1, o0, o1;
        block_range(na, i, K, &a0, &a1), block_range(nb, i, K, &b0, &b1);
        block_range(nout, i, K, &o0, &o1);
        acc += k(a + a0, a1 - a0, out + o0, o1 - o0, 0.5f, streaming);
        if (nb) acc += k(b + b0, b1 - b0, out, 0, 0.0f, streaming);
    }
    return acc;
}
