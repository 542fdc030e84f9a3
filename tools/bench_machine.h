/* tools/bench_machine.h - what the machine can do, for `convnet bench`:
 * the fp32 FMA peak and the memory bandwidth, measured rather than looked up,
 * plus the timing helpers the benchmark shares. */
#ifndef CN_TOOLS_BENCH_MACHINE_H
#define CN_TOOLS_BENCH_MACHINE_H

#include <stddef.h>

/* Monotonic seconds. */
double bench_now(void);

/* The median of v[0..n) (sorts v in place); 0 for n = 0. */
double bench_median(double *v, int n);

/* GFLOP/s of many independent chains of fused multiply-adds on `threads`
 * OpenMP threads, the widest ISA the CPU has (AVX-512F, else AVX2+FMA, else
 * plain C), the best of 5 samples spanning about `seconds` in all. *isa
 * receives "avx512", "avx2" or "scalar". */
double bench_fma_peak(int threads, double seconds, const char **isa);

/* Memory bandwidth in GB/s (1e9 bytes/s) on `threads` threads over arrays far
 * larger than any cache, STREAM's way of counting: copy a[i] = b[i] moves 8
 * bytes per element, triad a[i] = b[i] + s*c[i] 12. Medians of 5 runs.
 * Returns 0, or -1 when the arrays cannot be allocated. */
int bench_bandwidth(int threads, double *copy_gbps, double *triad_gbps);

/* Reads na floats of a and nb of b (nb may be 0, b then NULL) and writes nout
 * floats of out (64-byte aligned) on `threads` threads, in blocks that
 * interleave the reads and the writes: the least memory traffic a pass with
 * these inputs and output can have. streaming: write with streaming stores
 * (AVX-512 CPUs; else plain stores), which skip reading the lines first but
 * leave the output out of the caches. Returns a value that depends on every
 * read. */
float bench_stream(const float *a, size_t na, const float *b, size_t nb, float *out, size_t nout,
                   int streaming, int threads);

#endif
