/* bench/bench_gemm.c - GFLOP/s of cn__sgemm per ISA, thread count and shape.
 * Not a test and not built by CMake; build by hand from the repository root:
 *
 *   gcc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -fopenmp -Iinclude -Isrc -Isrc/core \
 *       bench/bench_gemm.c src/kernels/gemm.c src/kernels/ref/gemm_ref.c \
 *       src/kernels/x86/gemm_avx2.c src/kernels/x86/gemm_avx512.c \
 *       src/core/context.c src/core/status.c src/core/tensor.c \
 *       -lm -o /tmp/bench_gemm
 *   /tmp/bench_gemm [reps] [isa] [MxNxK[:ta,tb] ...]
 *
 * Each sample repeats the call for at least 50 ms; the median of `reps`
 * samples (default 7) is reported for every available ISA (or only `isa`:
 * scalar, avx2, avx512) on 1 and 2 threads in wall-clock time, and on 1
 * thread in process CPU time, which stays meaningful on a machine shared
 * with other jobs (the load average is printed first). The workspace is
 * allocated once, as a library caller would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "convnet/convnet.h"
#include "kernels/gemm.h"

typedef struct shape {
    int64_t M, N, K;
    int ta, tb;
} shape;

static const shape default_shapes[] = {
    {1024, 1024, 1024, 0, 0}, {6272, 64, 288, 0, 0}, {25088, 32, 9, 0, 0},
    {50176, 64, 576, 0, 0},   {784, 256, 64, 0, 0},  {256, 4096, 1024, 0, 0},
    {64, 1000, 512, 0, 1},    {512, 512, 512, 1, 0},
};

static double now(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double bench(cn__isa isa, int threads, clockid_t clock, const shape *s, int reps, float *A,
                    float *B, float *C, void *ws)
{
    cn_ctx ctx;
    cn_ctx_init(&ctx);
    ctx.threads = threads;
    int64_t lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    double flops = 2.0 * (double)s->M * (double)s->N * (double)s->K, samples[64];
    for (int r = 0; r < reps; r++) {
        int calls = 0;
        double t0 = now(clock), t;
        do {
            cn__sgemm_isa(isa, &ctx, s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C,
                          s->N, ws);
            calls++;
        } while ((t = now(clock) - t0) < 0.05);
        samples[r] = flops * calls / t * 1e-9;
    }
    qsort(samples, (size_t)reps, sizeof samples[0], cmp_double);
    return samples[reps / 2];
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 7;
    if (reps < 1 || reps > 64) reps = 7;
    shape shapes[32];
    int ns = 0, only = -1;
    for (int i = 2; i < argc && ns < 32; i++) {
        for (int j = 0; j < CN_ISA_COUNT; j++)
            if (strcmp(argv[i], cn__isa_name((cn__isa)j)) == 0) only = j;
        shape s = {0, 0, 0, 0, 0};
        long long m, n, k;
        if (sscanf(argv[i], "%lldx%lldx%lld:%d,%d", &m, &n, &k, &s.ta, &s.tb) >= 3) {
            s.M = m, s.N = n, s.K = k;
            shapes[ns++] = s;
        }
    }
    if (!ns) {
        ns = (int)(sizeof default_shapes / sizeof default_shapes[0]);
        memcpy(shapes, default_shapes, sizeof default_shapes);
    }
    FILE *f = fopen("/proc/loadavg", "r");
    char load[64] = "?";
    if (f) {
        if (!fgets(load, sizeof load, f)) load[0] = '\0';
        fclose(f);
    }
    printf("load average: %s", load);
    printf("%-22s %-7s %10s %10s %10s  (GFLOP/s, median of %d)\n", "MxNxK:ta,tb", "isa", "1 thread",
           "2 threads", "1t cpu", reps);
    for (int i = 0; i < ns; i++) {
        const shape *s = &shapes[i];
        float *A = cn_alloc((size_t)(s->M * s->K) * 4), *B = cn_alloc((size_t)(s->K * s->N) * 4),
              *C = cn_alloc((size_t)(s->M * s->N) * 4);
        void *ws = cn_alloc(cn__sgemm_ws_size(s->M, s->N, s->K, 2));
        for (int64_t j = 0; j < s->M * s->K; j++) A[j] = (float)(j % 7) - 3.0f;
        for (int64_t j = 0; j < s->K * s->N; j++) B[j] = (float)(j % 5) * 0.25f;
        char name[64];
        snprintf(name, sizeof name, "%lldx%lldx%lld:%d,%d", (long long)s->M, (long long)s->N,
                 (long long)s->K, s->ta, s->tb);
        for (int isa = CN_ISA_COUNT - 1; isa >= 0; isa--) {
            if (!cn__isa_supported((cn__isa)isa) || (only >= 0 && isa != only)) continue;
            double g1 = bench((cn__isa)isa, 1, CLOCK_MONOTONIC, s, reps, A, B, C, ws);
            double g2 = bench((cn__isa)isa, 2, CLOCK_MONOTONIC, s, reps, A, B, C, ws);
            double gc = bench((cn__isa)isa, 1, CLOCK_PROCESS_CPUTIME_ID, s, reps, A, B, C, ws);
            printf("%-22s %-7s %10.1f %10.1f %10.1f\n", name, cn__isa_name((cn__isa)isa), g1, g2,
                   gc);
            fflush(stdout);
        }
        cn_free(A);
        cn_free(B);
        cn_free(C);
        cn_free(ws);
    }
    return 0;
}
