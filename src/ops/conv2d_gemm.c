/* conv2d as GEMM: the fast path for every problem with enough channels per
 * group. Output pixels are processed in chunks of R rows; for each chunk and
 * group the input patches are gathered into cols [R, KH*KW*ICG] (im2col of
 * the chunk only, never of the whole batch), then
 *     forward           y_g [R, OCG]   = cols · w_g [KG, OCG]
 *     backward data     cols           = gy_g · w_g^T, scattered back (col2im)
 *     backward weights  gw_g [KG, OCG] += cols^T · gy_g
 * A 1x1, stride-1, unpadded convolution needs no gathering at all: the NHWC
 * input already is cols. Zero padding only: conv2d.c pads other modes first.
 * On AVX-512, problems with enough channels per tap skip cols altogether
 * (implicit GEMM: implicit_row, implicit_bwd_row, implicit_bww_part): the
 * batch-reduce kernel reads each tap's pixels in place and leaves out the
 * padding instead of multiplying zeros.
 *
 * Each pass is one OpenMP parallel region: a thread takes whole chunks,
 * gathers them into its own cols and runs a one-thread GEMM on them, so
 * threads meet only at the region's end (with idle workers asleep, as the
 * CLI runs them, each extra region costs a wake-up). Results do not depend
 * on the thread count: a forward or backward-data element is computed by
 * one thread as the same GEMM arithmetic; backward-weights sums a fixed
 * number of parts of the chunks, each by one thread, and adds the parts in
 * order. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm.h"
#include "ops/conv_internal.h"

/* 256 KiB of cols a chunk, so that a chunk stays in L2 between its gather
 * and its GEMM; at least MIN_ROWS rows so that the GEMM has some height. */
#define COLS_FLOATS ((int64_t)1 << 16)
#define MIN_ROWS 84
/* Backward-weights partial sums: at most this many, and at most this many
 * bytes of them. */
#define BWW_PARTS 8
#define BWW_PART_BYTES ((int64_t)64 << 20)

static int64_t kg(const cn_conv2d_desc *d) { return d->KH * d->KW * (d->IC / d->G); }
static int64_t rows_total(const cn_conv2d_desc *d) { return d->MB * d->OH * d->OW; }
static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Rows of cols per chunk: a function of the problem only, and a multiple
 * of 42 (both micro-kernels' MR, 14 and 6, divide it) so that a chunk ends
 * in no partial tile of rows. */
static int64_t chunk_rows(const cn_conv2d_desc *d)
{
    int64_t r = CN__MAX(COLS_FLOATS / kg(d), MIN_ROWS) / 42 * 42;
    return CN__MIN(r, rows_total(d));
}

/* The forward's and backward-data's chunks: no longer than chunk_rows, and
 * short enough that a small batch still makes CN__MIN_CHUNKS of them for the
 * threads to share (a 1x1 layer on one 32x32 image was one chunk of 1024
 * rows, and ran no faster on two threads). The weight gradient keeps
 * chunk_rows: its parts follow the chunks, and more parts cost more sums. */
static int64_t task_rows(const cn_conv2d_desc *d)
{
    const int64_t few = cdiv(cdiv(rows_total(d), CN__MIN_CHUNKS), 42) * 42;
    return CN__MIN(chunk_rows(d), CN__MAX(MIN_ROWS, few));
}

/* The implicit passes' OpenMP chunk, in rows of `rows_per_image`: whole
 * images, so that a row's prefetch of the next row's input serves the
 * thread that reads it and the threads seldom meet at the loop counter;
 * but with fewer than four images a thread, enough smaller chunks to keep
 * the threads busy. Scheduling only: no result depends on it. */
static int64_t row_chunk(const cn_conv2d_desc *d, int64_t rows_per_image, int T)
{
    if (d->MB >= 4 * (int64_t)T) return rows_per_image;
    return CN__MAX(1, cdiv(d->MB * rows_per_image, 4 * (int64_t)T));
}

static int is_pointwise(const cn_conv2d_desc *d)
{
    return d->G == 1 && d->KH == 1 && d->KW == 1 && d->SH == 1 && d->SW == 1 && d->PT == 0 &&
           d->PL == 0 && d->OH == d->IH && d->OW == d->IW;
}

int cn__conv_gemm_applies(const cn_conv2d_desc *d)
{
    const char *impl = getenv("CN_CONV_IMPL");
    if (impl && !strcmp(impl, "direct")) return 0;
    if (impl && !strcmp(impl, "gemm")) return 1;
    /* Depthwise-like problems are a batch of tiny GEMMs: the direct loops,
     * vectorised over channels, do better. */
    return !(d->IC / d->G == 1 && d->OC / d->G <= 4);
}

/* The workspace holds per-thread blocks for this many threads (the CPUs,
 * at least 2, at most 16); a context asking for more runs on this many. */
int cn__conv_ws_threads(void)
{
    int n = omp_get_num_procs();
    return n < 2 ? 2 : n > 16 ? 16 : n;
}

static int pass_threads(const cn_ctx *ctx)
{
    return CN__MIN(cn__threads(ctx), cn__conv_ws_threads());
}

static size_t align64(size_t b) { return (b + 63) & ~(size_t)63; }

static size_t cols_bytes(const cn_conv2d_desc *d)
{
    return is_pointwise(d) ? 0 : align64((size_t)(chunk_rows(d) * kg(d)) * sizeof(float));
}

/* The implicit backward-weights (implicit_bww_part) sums whole output rows
 * of about BWW_PIXELS pixels at a time: a tile's A (a line or two a pixel)
 * stays in L1 while its column slivers read it (r50_s2, 28-pixel rows, on
 * one thread: 25.3 ms in batches of 16 rows, 23.3 in batches of 8), and
 * its C is loaded and stored once per batch. Its buffer holds a batch's
 * pair list (one pair per output row), for the tiles that pack_bww_row
 * copies the batch's pixels of MR floats, and where bww_packs_gy the
 * batch's gy in panels. */
#define BWW_PIXELS 224
static int implicit_bww_applies(const cn_conv2d_desc *d);
static int64_t bww_rows(const cn_conv2d_desc *d) { return CN__MAX(1, BWW_PIXELS / d->OW); }
static size_t bww_pairs_bytes(const cn_conv2d_desc *d)
{
    return align64((size_t)bww_rows(d) * sizeof(cn__sgemm_pair));
}
/* Rows of gy 2 KiB apart or more (512 channels) are copied, a batch at a
 * time, into panels of NR columns, and so are pixels of x 4 KiB apart (all
 * tiles through pack_bww_row): read in place, every k step of the kernel
 * touched another page, and at 4 KiB the same L1 set, so a tile's B and A
 * came back from L2 for every column sliver. r50's 512 -> 1024 1x1 stride
 * 2 layer (both) took 0.76-0.86 of the time, 256 -> 512 (gy) 0.89-0.97, the
 * 3x3 stride-2 512 -> 512 (both) 0.92-1.03; 64 -> 256 pointwise, whose gy
 * rows are 1 KiB apart and read by only 5 tiles, 1.05-1.2, so not there. */
static int bww_packs_gy(const cn_conv2d_desc *d) { return d->G == 1 && d->OC >= 512; }
static int bww_packs_x(const cn_conv2d_desc *d) { return d->SW * d->IC >= 1024; }
static size_t bww_a_bytes(const cn_conv2d_desc *d)
{
    return align64((size_t)(bww_rows(d) * d->OW * CN__SGEMM_AVX512_MR) * sizeof(float));
}
static size_t bww_buf_bytes(const cn_conv2d_desc *d)
{
    /* (panels of up to 64 columns, the last one whole) */
    const int64_t cols = cdiv(d->OC, CN__SGEMM_AVX512_NR7) * CN__SGEMM_AVX512_NR7;
    const size_t gy = bww_packs_gy(d) ? (size_t)(bww_rows(d) * d->OW * cols) * sizeof(float) : 0;
    return bww_pairs_bytes(d) + bww_a_bytes(d) + align64(gy);
}

/* One thread's block: its cols, then its GEMM packing buffers, sized for
 * every GEMM shape of the three passes; at least the implicit
 * backward-weights buffer. */
static size_t thread_bytes(const cn_conv2d_desc *d)
{
    const int64_t OCG = d->OC / d->G, K = kg(d), R = chunk_rows(d);
    const int64_t shapes[][3] = {{R, OCG, K}, {R, K, OCG}, {K, OCG, R}};
    size_t g = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        g = CN__MAX(g, cn__sgemm_ws_size(shapes[i][0], shapes[i][1], shapes[i][2], 1));
    const size_t b = implicit_bww_applies(d) ? bww_buf_bytes(d) : 0;
    return CN__MAX(cols_bytes(d) + align64(g), b);
}

/* A weight gradient of 1 MiB or more is not summed in parts: threads take
 * shares of its tiles instead, each summed over all output rows, in order.
 * Parts of r50's 1024 -> 2048 1x1 stride-2 layer, 8 MiB each, were
 * written to memory and read back, 80 MB for 1.6 GFLOP; it now takes
 * 0.79-0.93 of the time, its 512 -> 512 3x3 stride-2 layer 0.60-0.71 (one
 * image: 0.20-0.43, where one part had run on one thread), 512 -> 1024 1x1
 * 0.86-1.06. */
static int bww_splits_gw(const cn_conv2d_desc *d)
{
    return kg(d) * d->OC * (int64_t)sizeof(float) >= ((int64_t)1 << 20);
}

static int64_t bww_parts(const cn_conv2d_desc *d)
{
    const int64_t nch = cdiv(rows_total(d), chunk_rows(d));
    const int64_t per = kg(d) * d->OC;
    /* (the implicit pass cuts whole output rows: no part without one) */
    int64_t p = CN__MIN(BWW_PARTS, nch);
    if (implicit_bww_applies(d)) p = CN__MIN(p, d->MB * d->OH);
    p = CN__MIN(p, BWW_PART_BYTES / (per * (int64_t)sizeof(float)));
    return CN__MAX(p, 1);
}

size_t cn__conv_gemm_ws(const cn_conv2d_desc *d)
{
    const size_t parts = (size_t)(bww_parts(d) * kg(d) * d->OC) * sizeof(float);
    return (size_t)cn__conv_ws_threads() * thread_bytes(d) + align64(parts);
}

static float *thread_cols(const cn_conv2d_desc *d, float *ws)
{
    return (float *)((char *)ws + (size_t)omp_get_thread_num() * thread_bytes(d));
}

/* The region after the threads' blocks: the weight gradient's parts, at
 * least the size of w; the implicit forward and backward-data pack their
 * B there. */
static float *ws_parts(const cn_conv2d_desc *d, float *ws)
{
    return (float *)((char *)ws + (size_t)cn__conv_ws_threads() * thread_bytes(d));
}

/* One-thread GEMM with the thread's packing buffers (cannot fail). */
static void gemm1(const cn_conv2d_desc *d, float *cols, int ta, int tb, int64_t M, int64_t N,
                  int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                  float *C, int64_t ldc)
{
    (void)cn__sgemm_ws(NULL, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc,
                       (char *)cols + cols_bytes(d));
}

typedef float v8 __attribute__((vector_size(32), aligned(4), may_alias));

/* d[0..n) = s[0..n): short rows are the common case, where a call to
 * memcpy costs as much as the copy. */
static void copy_row(float *restrict dst, const float *restrict src, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) *(v8 *)(dst + i) = *(const v8 *)(src + i);
    for (; i < n; i++) dst[i] = src[i];
}

/* cols [R, KG] = the patches of group g for output rows [r0, r0+R). */
static void gather(const cn_conv2d_desc *d, const float *x, int64_t g, int64_t r0, int64_t R,
                   float *cols)
{
    const int64_t ICG = d->IC / d->G, K = kg(d);
    for (int64_t r = 0; r < R; r++) {
        const int64_t row = r0 + r, ow = row % d->OW, oh = row / d->OW % d->OH,
                      n = row / (d->OW * d->OH);
        float *c = cols + r * K;
        for (int64_t kh = 0; kh < d->KH; kh++) {
            const int64_t ih = oh * d->SH - d->PT + kh * d->DH;
            for (int64_t kw = 0; kw < d->KW; kw++, c += ICG) {
                const int64_t iw = ow * d->SW - d->PL + kw * d->DW;
                if (ih < 0 || ih >= d->IH || iw < 0 || iw >= d->IW)
                    memset(c, 0, (size_t)ICG * sizeof *c);
                else
                    copy_row(c, x + ((n * d->IH + ih) * d->IW + iw) * d->IC + g * ICG, ICG);
            }
        }
    }
}

/* p[i] += c[i]: the col2im inner loop, compiled per ISA. */
CN__MULTIVERSION static void add_row(float *restrict p, const float *restrict c, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) p[i] += c[i];
}

/* y[r, :] += b for R rows of n channels. */
CN__MULTIVERSION static void add_bias(float *restrict y, const float *restrict b, int64_t R,
                                      int64_t n)
{
    for (int64_t r = 0; r < R; r++)
#pragma omp simd
        for (int64_t i = 0; i < n; i++) y[r * n + i] += b[i];
}

/* gx += the patches of cols [R, KG] put back where gather took them, in
 * input rows [ia, ib) only; rows [r0, r0+R) of one image, added in order. */
static void scatter(const cn_conv2d_desc *d, const float *cols, int64_t g, int64_t r0, int64_t R,
                    int64_t ia, int64_t ib, float *gx)
{
    const int64_t ICG = d->IC / d->G, K = kg(d);
    for (int64_t row = r0; row < r0 + R; row++) {
        const int64_t ow = row % d->OW, oh = row / d->OW % d->OH, n = row / (d->OW * d->OH);
        const float *c = cols + (row - r0) * K;
        for (int64_t kh = 0; kh < d->KH; kh++) {
            const int64_t ih = oh * d->SH - d->PT + kh * d->DH;
            for (int64_t kw = 0; kw < d->KW; kw++, c += ICG) {
                const int64_t iw = ow * d->SW - d->PL + kw * d->DW;
                if (ih < ia || ih >= ib || iw < 0 || iw >= d->IW) continue;
                add_row(gx + ((n * d->IH + ih) * d->IW + iw) * d->IC + g * ICG, c, ICG);
            }
        }
    }
}

/* Implicit GEMM (AVX-512): a tile of MR output pixels of one output row
 * takes each tap's MR input pixels in place from x, at a stride of SW*IC,
 * so nothing is gathered, and the rows of a tap that fall into the padding
 * (all of them, or a few at a border) are skipped rather than multiplied
 * by zeros. Used where a tap is deep enough (ICG) for the kernel's k loop. */
#define IMPLICIT_MIN_ICG 32
/* Tiles of at most MR7 rows (7-pixel rows, stride-2 phases of 14) take
 * the 7 x 64 kernel, which computes no dropped rows. */
#define MR7 CN__SGEMM_AVX512_MR7
#define NR7 CN__SGEMM_AVX512_NR7
#define IMPLICIT_A_FLOATS 12288

static int implicit_applies(const cn_conv2d_desc *d)
{
    /* (the pair lists, 40 bytes a tap, then fit in the thread's cols) */
    return cn__isa_detect() == CN_ISA_AVX512 && !is_pointwise(d) &&
           d->IC / d->G >= IMPLICIT_MIN_ICG;
}

/* B (the weights) of at most this many bytes stays in L2 while a row of
 * tiles uses it; a larger one is cut into blocks of output channels, each
 * used by a group of rows (implicit_blocking). */
#define IMPLICIT_B_BYTES ((int64_t)512 << 10)

/* The output channels of a B block (a multiple of both kernels' NR, or
 * all of them) and the rows of a group: enough for 8 tiles, but at most a
 * share of the pass's `rows` that leaves 2 groups a thread (one image of
 * r50's 3x3 stride-2 512 -> 512 layer is 7 rows). With one block (B small
 * enough) a group is one row. Scheduling only: no result depends on it. */
static void implicit_blocking(const cn_conv2d_desc *d, int64_t k, int64_t cols, int64_t width,
                              int64_t rows, int T, int64_t *nb, int64_t *rg)
{
    const int64_t per_col = k * (int64_t)sizeof(float), all = per_col * cols;
    *nb = cols, *rg = 1;
    if (all <= IMPLICIT_B_BYTES) return;
    *nb = CN__MAX(NR7, IMPLICIT_B_BYTES / per_col / NR7 * NR7);
    *rg = CN__MIN(cdiv(8, cdiv(width, CN__SGEMM_AVX512_MR) * d->G),
                  CN__MAX(1, rows / (2 * (int64_t)T)));
}

/* B read in place has rows OC floats apart: from 1024 channels on (4 KiB),
 * every row is in a page of its own, where the hardware prefetchers stop,
 * and r50's 512 -> 1024 1x1 stride-2 layer ran at a quarter of peak. So B
 * with more than one panel of PW columns is packed first: panels of PW
 * output channels, each [taps, ICG, PW], rows PW floats apart (the kernels
 * read B at any row stride, so the arithmetic is unchanged). */
#define PW CN__SGEMM_AVX512_NR7
typedef struct implicit_b {
    const float *b;   /* B: w, or its panels */
    int64_t rs, step; /* its row stride (packed: the panel width); panel to panel */
    int packed;
} implicit_b;

static int implicit_packs(int64_t cols, int64_t ld) { return cols % PW == 0 && ld > PW; }

/* Offset of column j (of a group's) in B. */
static int64_t b_col(implicit_b B, int64_t j)
{
    return B.packed ? j / B.rs * B.step + j % B.rs : j;
}

/* Offset in B of tap t's first row in group g's columns, for K rows a tap
 * and cols columns a group (unpacked, rows are B.rs = G * cols apart). */
static int64_t b_tap(implicit_b B, int64_t g, int64_t t, int64_t K, int64_t cols)
{
    return t * K * B.rs + (B.packed ? g * (cols / B.rs) * B.step : g * cols);
}

/* The panels of w [taps, K, ld] (columns g*cols + [0, cols) for each group
 * g), into pk: one OpenMP for over the panels, inside a parallel region. */
static void pack_panels(int64_t G, int64_t taps, int64_t K, int64_t cols, int64_t ld,
                        const float *w, float *pk)
{
    const int64_t np = cols / PW;
#pragma omp for schedule(static)
    for (int64_t q = 0; q < G * np; q++)
        for (int64_t t = 0; t < taps; t++)
            for (int64_t i = 0; i < K; i++)
                memcpy(pk + ((q * taps + t) * K + i) * PW,
                       w + (t * K + i) * ld + q / np * cols + q % np * PW, PW * sizeof *pk);
}

/* y[n, oh, :, g*OCG + [j0, j1)] of every group g from x and w; buf
 * (thread_cols) holds the tap lists; pf: prefetch the next row's input
 * (off for the second and later blocks of a row, whose input is cached). */
static void implicit_row(const cn_conv2d_desc *d, const float *x, implicit_b B, int64_t n,
                         int64_t oh, int64_t j0, int64_t j1, int pf_on, float *y, float *buf)
{
    const int MR = CN__SGEMM_AVX512_MR, NR = CN__SGEMM_AVX512_NR;
    const int64_t ICG = d->IC / d->G, OCG = d->OC / d->G, taps = d->KH * d->KW;
    cn__sgemm_pair *pr = (cn__sgemm_pair *)buf;
    /* The input rows [ih0, ih1] that the next output row is the first to
     * read (filter rows kh >= kh0), prefetched a share in each kernel call:
     * they come from memory, and the hardware prefetchers do not follow the
     * tiles' short row streams. */
    const int64_t row_floats = d->IW * d->IC, tiles = cdiv(d->OW, MR) * d->G;
    const int64_t calls =
        cdiv(taps, CN__MAX(1, IMPLICIT_A_FLOATS / (MR * ICG))) * cdiv(j1 - j0, NR);
    int64_t kh0 = 0;
    while (kh0 < d->KH && kh0 * d->DH <= (d->KH - 1) * d->DH - d->SH) kh0++;
    const int64_t ih0 = CN__MAX(0, (oh + 1) * d->SH - d->PT + kh0 * d->DH);
    const int64_t ih1 = CN__MIN(d->IH - 1, (oh + 1) * d->SH - d->PT + (d->KH - 1) * d->DH);
    const int64_t pf_lines =
        pf_on && oh + 1 < d->OH && ih0 <= ih1 ? (ih1 - ih0 + 1) * row_floats / 16 : 0;
    const int64_t pf_call = cdiv(cdiv(pf_lines, tiles), calls);
    const float *pf = pf_lines ? x + (n * d->IH + ih0) * row_floats : NULL;
    const float *pf_end = pf_lines ? pf + pf_lines * 16 : NULL;
    for (int64_t g = 0; g < d->G; g++)
        for (int64_t ow0 = 0; ow0 < d->OW; ow0 += MR) {
            const int m = (int)CN__MIN(MR, d->OW - ow0);
            int nt = 0;
            for (int64_t kh = 0; kh < d->KH; kh++) {
                const int64_t ih = oh * d->SH - d->PT + kh * d->DH;
                if (ih < 0 || ih >= d->IH) continue;
                const float *xrow = x + ((n * d->IH + ih) * d->IW) * d->IC + g * ICG;
                for (int64_t kw = 0; kw < d->KW; kw++) {
                    /* tile row i reads input column iw0 + i*SW: rows [lo, hi) exist */
                    const int64_t iw0 = ow0 * d->SW - d->PL + kw * d->DW;
                    const int64_t lo = iw0 >= 0 ? 0 : cdiv(-iw0, d->SW);
                    const int64_t hi = iw0 >= d->IW ? 0 : CN__MIN(MR, (d->IW - 1 - iw0) / d->SW + 1);
                    if (lo >= CN__MIN(hi, m)) continue;
                    const float *b = B.b + b_tap(B, g, kh * d->KW + kw, ICG, OCG);
                    pr[nt++] = (cn__sgemm_pair){xrow + (iw0 + lo * d->SW) * d->IC,
                                                b + b_col(B, j0),
                                                d->SW * d->IC,
                                                ICG,
                                                (int)lo,
                                                (int)hi};
                }
            }
            /* Taps in groups whose A (MR x ICG each) stays in L1 while
             * all column slivers use it; the first group sets C. */
            float *c = y + ((n * d->OH + oh) * d->OW + ow0) * d->OC + g * OCG + j0;
            const int per = (int)CN__MAX(1, IMPLICIT_A_FLOATS / (MR * ICG));
            const int64_t nr = m <= MR7 ? NR7 : NR;
            for (int t0 = 0; t0 < nt || t0 == 0; t0 += per) {
                const int nb = CN__MIN(per, nt - t0);
                for (int64_t j = 0; j < j1 - j0; j += nr) {
                    const int64_t np = pf ? CN__MIN(pf_call, (pf_end - pf) / 16) : 0;
                    (m <= MR7 ? cn__sgemm_batch7_avx512 : cn__sgemm_batch_avx512)(
                        nb, pr + t0, 1, B.rs, c + j, d->OC, m, (int)CN__MIN(nr, j1 - j0 - j),
                        t0 ? 1.0f : 0.0f, pf, np);
                    if (np) pf += np * 16;
                    const int64_t next = b_col(B, j0 + j + nr) - b_col(B, j0 + j);
                    for (int t = t0; t < t0 + nb; t++) pr[t].b += next;
                }
            }
        }
}

static void implicit_fwd(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                         const float *w, const float *b, int relu, float *y, float *ws)
{
    const int64_t rows = d->MB * d->OH, row = d->OW * d->OC, OCG = d->OC / d->G;
    const int T = pass_threads(ctx);
    /* A group of rows takes the blocks of B in turn (each y element is the
     * same kernel arithmetic whatever the blocking). */
    const int64_t taps = d->KH * d->KW, ICG = d->IC / d->G;
    int64_t nb, rg;
    implicit_blocking(d, taps * ICG, OCG, d->OW, rows, T, &nb, &rg);
    const int64_t groups = cdiv(rows, rg);
    const int pack = implicit_packs(OCG, d->OC);
    const implicit_b B =
        pack ? (implicit_b){ws_parts(d, ws), PW, taps * ICG * PW, 1} : (implicit_b){w, d->OC, 0, 0};
#pragma omp parallel num_threads(T) if (T > 1 && groups > 1)
    {
        float *buf = thread_cols(d, ws);
        if (pack) pack_panels(d->G, taps, ICG, OCG, d->OC, w, (float *)B.b);
#pragma omp for schedule(dynamic, CN__MAX(1, row_chunk(d, d->OH, T) / rg))
        for (int64_t q = 0; q < groups; q++) {
            const int64_t r0 = q * rg, r1 = CN__MIN(rows, r0 + rg);
            for (int64_t j0 = 0; j0 < OCG; j0 += nb)
                for (int64_t r = r0; r < r1; r++)
                    implicit_row(d, x, B, r / d->OH, r % d->OH, j0, CN__MIN(OCG, j0 + nb), j0 == 0,
                                 y, buf);
            for (int64_t r = r0; r < r1; r++) {
                if (b) add_bias(y + r * row, b, d->OW, d->OC);
                if (relu)
                    cn_act_fwd(NULL, CN_ACT_RELU, 0.0f, (size_t)row, y + r * row, y + r * row);
            }
        }
    }
}

cn_status cn__conv2d_gemm_fwd(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                              const float *w, const float *b, int relu, float *y, float *ws)
{
    const int64_t OCG = d->OC / d->G, K = kg(d), P = rows_total(d), R = task_rows(d);
    const int64_t nch = cdiv(P, R);
    const int pw = is_pointwise(d), T = pass_threads(ctx);
    if (implicit_applies(d)) {
        implicit_fwd(ctx, d, x, w, b, relu, y, ws);
        return CN_OK;
    }
#pragma omp parallel num_threads(T) if (T > 1 && nch > 1)
    {
        float *cols = thread_cols(d, ws);
#pragma omp for schedule(dynamic)
        for (int64_t c = 0; c < nch; c++) {
            const int64_t r0 = c * R, n = CN__MIN(R, P - r0);
            for (int64_t g = 0; g < d->G; g++) {
                if (!pw) gather(d, x, g, r0, n, cols);
                gemm1(d, cols, 0, 0, n, OCG, K, pw ? x + r0 * d->IC : cols, K, w + g * OCG, d->OC,
                      0.0f, y + r0 * d->OC + g * OCG, d->OC);
            }
            if (b) add_bias(y + r0 * d->OC, b, n, d->OC);
            if (relu)
                cn_act_fwd(NULL, CN_ACT_RELU, 0.0f, (size_t)(n * d->OC), y + r0 * d->OC,
                           y + r0 * d->OC);
        }
    }
    return CN_OK;
}

/* Backward-data the same way, as the implicit forward of the adjoint: a
 * tile is MR pixels of one gx row that are SW apart (one phase of the
 * stride), so every tap reaching them does so from MR consecutive gy
 * pixels, read in place; each gx pixel is written once, by one thread, with
 * no col2im, and taps that reach a phase only through padding (or not at
 * all, 3 in 4 of them for a 3x3 stride-2 filter) are skipped. */
int cn__conv_gemm_bwd_implicit(const cn_conv2d_desc *d)
{
    return cn__isa_detect() == CN_ISA_AVX512 && !is_pointwise(d) &&
           d->OC / d->G >= IMPLICIT_MIN_ICG && d->IC / d->G >= 16;
}

/* gx[n, ih, :, g*ICG + [j0, j1)] of every group g from gy and B (w^T per
 * tap, implicit_bwd_data), or with acc added to it; buf as in
 * implicit_row. The next row's gy is prefetched in the first block only. */
static void implicit_bwd_row(const cn_conv2d_desc *d, const float *gy, implicit_b B, int64_t n,
                             int64_t ih, int64_t j0, int64_t j1, int acc, float *gx, float *buf)
{
    const int MR = CN__SGEMM_AVX512_MR, NR = CN__SGEMM_AVX512_NR;
    const int64_t ICG = d->IC / d->G, OCG = d->OC / d->G;
    cn__sgemm_pair *pr = (cn__sgemm_pair *)buf;
    const int per = (int)CN__MAX(1, IMPLICIT_A_FLOATS / (MR * OCG));
    /* As implicit_row: the gy rows (oh0, oh1] that the next gx row reaches
     * first (filter row 0 reaches the furthest), a share per kernel call. */
    const int64_t oh0 = CN__MAX(-1, CN__MIN(d->OH - 1, (ih + d->PT) / d->SH));
    const int64_t oh1 = CN__MAX(oh0, CN__MIN(d->OH - 1, (ih + 1 + d->PT) / d->SH));
    const int64_t pf_lines = j0 == 0 && ih + 1 < d->IH ? (oh1 - oh0) * d->OW * d->OC / 16 : 0;
    const int64_t calls = d->G * cdiv(d->IW, MR) * cdiv(j1 - j0, NR);
    const int64_t pf_call = cdiv(pf_lines, calls);
    const float *pf = pf_lines ? gy + (n * d->OH + oh0 + 1) * d->OW * d->OC : NULL;
    const float *pf_end = pf_lines ? pf + pf_lines * 16 : NULL;
    /* A row that no filter row reaches, or with a phase that no filter
     * column reaches (a strided 1x1 filter: 3 pixels in 4 at stride 2), is
     * cleared first with memset, which writes whole cache lines without
     * reading them, and its empty tiles are skipped: the kernel's stores of
     * zeros would read every line first. Adding to gx, such tiles are only
     * skipped. */
    int gap = 1;
    for (int64_t kh = 0; kh < d->KH; kh++) {
        const int64_t oy = ih + d->PT - kh * d->DH;
        if (oy >= 0 && oy % d->SH == 0 && oy / d->SH < d->OH) gap = 0;
    }
    for (int64_t ph = 0; !gap && ph < CN__MIN(d->SW, d->IW); ph++) {
        int reached = 0;
        for (int64_t kw = 0; kw < d->KW; kw++)
            reached |= (((ph + d->PL - kw * d->DW) % d->SW) + d->SW) % d->SW == 0;
        gap = !reached;
    }
    const int cleared = gap && d->G == 1;
    if (cleared && !acc && j0 == 0)
        memset(gx + (n * d->IH + ih) * d->IW * d->IC, 0, (size_t)(d->IW * d->IC) * 4);
    for (int64_t g = 0; g < d->G; g++)
        for (int64_t ph = 0; ph < CN__MIN(d->SW, d->IW); ph++)
            for (int64_t q0 = 0; q0 * d->SW + ph < d->IW; q0 += MR) {
                const int64_t iw0 = ph + q0 * d->SW;
                const int m = (int)CN__MIN(MR, cdiv(d->IW - iw0, d->SW));
                int nt = 0;
                for (int64_t kh = 0; kh < d->KH; kh++) {
                    const int64_t oy = ih + d->PT - kh * d->DH, oh = oy / d->SH;
                    if (oy < 0 || oy % d->SH || oh >= d->OH) continue;
                    const float *grow = gy + (n * d->OH + oh) * d->OW * d->OC + g * OCG;
                    for (int64_t kw = 0; kw < d->KW; kw++) {
                        /* tile row i is reached from gy column ow0 + i */
                        const int64_t ox = iw0 + d->PL - kw * d->DW;
                        if (((ox % d->SW) + d->SW) % d->SW) continue;
                        const int64_t ow0 = (ox - ((ox % d->SW) + d->SW) % d->SW) / d->SW;
                        const int64_t lo = CN__MAX(0, -ow0), hi = CN__MIN(MR, d->OW - ow0);
                        if (lo >= CN__MIN(hi, m)) continue;
                        const int64_t t = kh * d->KW + kw;
                        const float *b = B.b + b_tap(B, g, t, OCG, ICG);
                        pr[nt++] = (cn__sgemm_pair){grow + (ow0 + lo) * d->OC,
                                                    b + b_col(B, j0),
                                                    d->OC,
                                                    OCG,
                                                    (int)lo,
                                                    (int)hi};
                    }
                }
                if ((cleared || acc) && nt == 0) continue;
                float *c = gx + ((n * d->IH + ih) * d->IW + iw0) * d->IC + g * ICG + j0;
                const int64_t nr = m <= MR7 ? NR7 : NR;
                for (int t0 = 0; t0 < nt || t0 == 0; t0 += per) {
                    const int nb = CN__MIN(per, nt - t0);
                    for (int64_t j = 0; j < j1 - j0; j += nr) {
                        const int64_t np = pf ? CN__MIN(pf_call, (pf_end - pf) / 16) : 0;
                        (m <= MR7 ? cn__sgemm_batch7_avx512 : cn__sgemm_batch_avx512)(
                            nb, pr + t0, 1, B.rs, c + j, d->SW * d->IC, m,
                            (int)CN__MIN(nr, j1 - j0 - j), t0 || acc ? 1.0f : 0.0f, pf, np);
                        if (np) pf += np * 16;
                        const int64_t next = b_col(B, j0 + j + nr) - b_col(B, j0 + j);
                        for (int t = t0; t < t0 + nb; t++) pr[t].b += next;
                    }
                }
            }
}

static void implicit_bwd_data(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *gy,
                              const float *w, int acc, float *gx, float *wt, float *ws)
{
    const int64_t ICG = d->IC / d->G, OCG = d->OC / d->G, taps = d->KH * d->KW;
    const int64_t rows = d->MB * d->IH;
    const int T = pass_threads(ctx);
    int64_t nb, rg;
    implicit_blocking(d, taps * OCG, ICG, d->IW, rows, T, &nb, &rg);
    const int64_t groups = cdiv(rows, rg);
    /* B is w^T per tap, wt [taps, OCG, IC], or its panels of PW input
     * channels, [taps, OCG, PW] each (as in the forward) */
    const int pack = implicit_packs(ICG, d->IC);
    const implicit_b B =
        pack ? (implicit_b){wt, PW, taps * OCG * PW, 1} : (implicit_b){wt, d->IC, 0, 0};
#pragma omp parallel num_threads(T) if (T > 1)
    {
        float *buf = thread_cols(d, ws);
        /* B[t, o, i] of group g = w[t, i, g*OCG + o], in runs of a panel's
         * (or a group's) columns, run q of group q / nr: one run's rows of
         * w stay cached over all (t, o) */
        const int64_t run = pack ? PW : ICG, nr = ICG / run;
#pragma omp for collapse(2) schedule(static)
        for (int64_t q = 0; q < d->G * nr; q++)
            for (int64_t to = 0; to < taps * OCG; to++) {
                const int64_t g = q / nr, i0 = q % nr * run, t = to / OCG, o = to % OCG;
                float *dst = wt + b_tap(B, g, t, OCG, ICG) + o * B.rs + b_col(B, i0);
                const float *src = w + (t * ICG + i0) * d->OC + g * OCG + o;
                for (int64_t i = 0; i < run; i++) dst[i] = src[i * d->OC];
            }
#pragma omp for schedule(dynamic, CN__MAX(1, row_chunk(d, d->IH, T) / rg))
        for (int64_t q = 0; q < groups; q++) {
            const int64_t r0 = q * rg, r1 = CN__MIN(rows, r0 + rg);
            for (int64_t j0 = 0; j0 < ICG; j0 += nb)
                for (int64_t r = r0; r < r1; r++)
                    implicit_bwd_row(d, gy, B, r / d->IH, r % d->IH, j0, CN__MIN(ICG, j0 + nb), acc,
                                     gx, buf);
        }
    }
}

cn_status cn__conv2d_gemm_bwd_data(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *gy,
                                   const float *w, int acc, float *gx, float *wt, float *ws)
{
    const int64_t OCG = d->OC / d->G, K = kg(d), R = task_rows(d), per_image = d->OH * d->OW;
    const int64_t img = d->IH * d->IW * d->IC;
    const int pw = is_pointwise(d), T = pass_threads(ctx);
    if (cn__conv_gemm_bwd_implicit(d)) {
        implicit_bwd_data(ctx, d, gy, w, acc, gx, wt, ws);
        return CN_OK;
    }
    if (pw) { /* gx is gy w^T, row by row: any chunk on any thread */
        const int64_t P = rows_total(d), nch = cdiv(P, R);
#pragma omp parallel for num_threads(T) if (T > 1 && nch > 1) schedule(dynamic)
        for (int64_t c = 0; c < nch; c++) {
            const int64_t r0 = c * R, m = CN__MIN(R, P - r0);
            gemm1(d, thread_cols(d, ws), 0, 1, m, K, OCG, gy + r0 * d->OC, d->OC, w, d->OC,
                  acc ? 1.0f : 0.0f, gx + r0 * d->IC, K);
        }
        return CN_OK;
    }
    /* Patches of one image overlap, those of different images never do: a
     * task is a band of input rows of one image (the whole image when there
     * are images enough for the threads); it computes the output rows that
     * reach its band, in order, and adds only what lands in it. So every
     * gx element gets its terms in output-row order whatever the bands, and
     * a band boundary costs the GEMM of the few rows on both sides. */
    const int64_t T2 = 2 * (int64_t)T;
    const int64_t bands = T == 1 || d->MB >= T2 ? 1 : CN__MIN(d->IH, cdiv(T2, d->MB));
    const int64_t row = d->IW * d->IC;
#pragma omp parallel num_threads(T) if (T > 1 && d->MB * bands > 1)
    {
        float *cols = thread_cols(d, ws);
#pragma omp for schedule(dynamic)
        for (int64_t task = 0; task < d->MB * bands; task++) {
            const int64_t n = task / bands, b = task % bands;
            const int64_t ia = d->IH * b / bands, ib = d->IH * (b + 1) / bands;
            if (!acc) memset(gx + n * img + ia * row, 0, (size_t)((ib - ia) * row) * sizeof *gx);
            /* output rows [oh0, oh1] are those whose filter spans reach it */
            const int64_t top = ia + d->PT - (d->KH - 1) * d->DH;
            const int64_t oh0 = top <= 0 ? 0 : cdiv(top, d->SH);
            const int64_t oh1 = CN__MIN(d->OH - 1, (ib - 1 + d->PT) / d->SH);
            const int64_t end = n * per_image + (oh1 + 1) * d->OW;
            for (int64_t r0 = n * per_image + oh0 * d->OW; r0 < end; r0 += R) {
                const int64_t m = CN__MIN(R, end - r0);
                for (int64_t g = 0; g < d->G; g++) {
                    gemm1(d, cols, 0, 1, m, K, OCG, gy + r0 * d->OC + g * OCG, d->OC, w + g * OCG,
                          d->OC, 0.0f, cols, K);
                    scatter(d, cols, g, r0, m, ia, ib, gx);
                }
            }
        }
    }
    return CN_OK;
}

/* The filter rows [*k0, *k1) that output row oh reads inside the input. */
static void kh_range(const cn_conv2d_desc *d, int64_t oh, int64_t *k0, int64_t *k1)
{
    const int64_t ih = oh * d->SH - d->PT;
    *k0 = 0, *k1 = d->KH;
    while (*k0 < d->KH && ih + *k0 * d->DH < 0) ++*k0;
    while (*k1 > *k0 && ih + (*k1 - 1) * d->DH >= d->IH) --*k1;
}

/* Backward-weights the same way: gw rows (tap, i) in MR-row tiles by
 * NR-column slivers, each summing over a batch of output rows (bww_rows),
 * one pair per output row, whose A is a column of x read in place
 * (channels apart by 1, pixels by SW*IC) over just the pixels whose tap
 * lies inside the input: no cols, no zeros. A tile across two taps, or
 * short, is copied a batch at a time (pack_bww_row). */

static int implicit_bww_applies(const cn_conv2d_desc *d)
{
    /* pointwise too: like the GEMM it reads x in place, and its prefetch
     * of the next batch keeps the long strided streams fed (r50_1x1, 1
     * thread, against oneDNN in the same run: 0.59-0.60x through the GEMM,
     * 0.98-1.12x) */
    return cn__isa_detect() == CN_ISA_AVX512 && d->IC / d->G >= IMPLICIT_MIN_ICG &&
           d->OC / d->G >= 16;
}

/* The output columns [*lo, *hi) whose filter column kw lies in the input. */
static void kw_range(const cn_conv2d_desc *d, int64_t kw, int64_t *lo, int64_t *hi)
{
    const int64_t off = kw * d->DW - d->PL; /* iw = ow*SW + off */
    *lo = off >= 0 ? 0 : cdiv(-off, d->SW);
    *hi = d->IW - 1 - off < 0 ? 0 : CN__MIN(d->OW, (d->IW - 1 - off) / d->SW + 1);
}

/* Whether tap t of output row oh reads the input: then *ih is its input
 * row and [*lo, *hi) the output columns whose pixels it reads. */
static int tap_reads(const cn_conv2d_desc *d, int64_t oh, int64_t t, int64_t *ih, int64_t *lo,
                     int64_t *hi)
{
    *ih = oh * d->SH - d->PT + t / d->KW * d->DH;
    kw_range(d, t % d->KW, lo, hi);
    return *ih >= 0 && *ih < d->IH && *lo < *hi;
}

/* A tile's output row (n, oh) when the tile is not MR rows of one tap (it
 * spans two taps, or it is the last, short one): the rows of each tap,
 * pixel by pixel, copied side by side into pixels of MR floats (the
 * tile's height) at pa over the output columns [lo, hi) any of its taps
 * reads (rows no tap gives, and pixels a tap does not read, are zeros), so
 * that the kernel takes its full-tile loop, with no test per row: its
 * row-by-row loop ran such tiles at about half speed (3x3 stride 2 on one
 * thread: 32 channels in, a third of the tiles across two taps, about 95
 * GFLOP/s before this; 42 or 56 channels, none across, 145). Returns the
 * pair, or one with k = 0 when no tap reads the row. */
static cn__sgemm_pair pack_bww_row(const cn_conv2d_desc *d, const float *x, const float *grow,
                                   int64_t ldg, int64_t n, int64_t oh, int64_t g, int64_t m0, int m,
                                   int MR, float *pa)
{
    const int64_t ICG = d->IC / d->G, t0 = m0 / ICG, t1 = (m0 + m - 1) / ICG;
    int64_t lo = d->OW, hi = 0, ih, l, h;
    for (int64_t t = t0; t <= t1; t++)
        if (tap_reads(d, oh, t, &ih, &l, &h)) lo = CN__MIN(lo, l), hi = CN__MAX(hi, h);
    if (lo >= hi) return (cn__sgemm_pair){pa, grow, 1, 0, 0, CN__SGEMM_AVX512_MR};
    memset(pa, 0, (size_t)((hi - lo) * MR) * sizeof *pa);
    for (int64_t t = t0; t <= t1; t++) {
        if (!tap_reads(d, oh, t, &ih, &l, &h)) continue;
        /* tile rows [rlo, rhi) are the tap's channels c0 + [0, rhi - rlo) */
        const int64_t rlo = CN__MAX(0, t * ICG - m0), rhi = CN__MIN(m, (t + 1) * ICG - m0);
        const int64_t c0 = g * ICG + m0 + rlo - t * ICG;
        const int64_t iw = l * d->SW + t % d->KW * d->DW - d->PL;
        const float *xp = x + ((n * d->IH + ih) * d->IW + iw) * d->IC;
        cn__copy_rows_avx512(h - l, xp + c0, d->SW * d->IC, (int)(rhi - rlo),
                             pa + (l - lo) * MR + rlo, MR);
    }
    return (cn__sgemm_pair){pa, grow + lo * ldg, 1, hi - lo, 0, CN__SGEMM_AVX512_MR};
}

/* The output rows [r0, r1) of pass part into pg (gw, overwritten), with
 * buf (thread_cols, bww_buf_bytes) for the pair lists and packed rows;
 * only share `sh` of `nsh` equal shares of the tiles (g, m0) of pg. */
static void implicit_bww_part(const cn_conv2d_desc *d, const float *x, const float *gy, int64_t r0,
                              int64_t r1, float *pg, char *buf, int sh, int nsh)
{
    const int64_t ICG = d->IC / d->G, OCG = d->OC / d->G, K = kg(d), rows_b = bww_rows(d);
    /* 7 x 64 tiles where they compute an eighth fewer elements (32 rows x
     * 64 columns: 5 x 1 tiles of 7 x 64 against 3 x 2 of 14 x 32); short
     * of that the 14 x 32 kernel, which loads half as much of gy a k, is
     * faster (128x14x14 64->128 3x3 stride 2 on 2 threads, 166 tiles of 7
     * x 64 against 168 halves of 14 x 32: 5.6-5.9 ms against 4.5-4.6) */
    const int64_t e7 = cdiv(K, MR7) * cdiv(OCG, NR7) * MR7 * NR7;
    const int64_t e14 = cdiv(K, CN__SGEMM_AVX512_MR) * cdiv(OCG, CN__SGEMM_AVX512_NR) *
                        CN__SGEMM_AVX512_MR * CN__SGEMM_AVX512_NR;
    const int use7 = 8 * e7 < 7 * e14;
    const int MR = use7 ? MR7 : CN__SGEMM_AVX512_MR, NR = use7 ? NR7 : CN__SGEMM_AVX512_NR;
    cn__sgemm_pair *pr = (cn__sgemm_pair *)buf;
    float *packed = (float *)(buf + bww_pairs_bytes(d));
    const int pgy = bww_packs_gy(d), px = bww_packs_x(d);
    float *gpk = pgy ? (float *)(buf + bww_pairs_bytes(d) + bww_a_bytes(d)) : NULL;
    const int64_t tiles = d->G * cdiv(K, MR);
    const int64_t q0 = tiles * sh / nsh, q1 = tiles * (sh + 1) / nsh;
    const int64_t calls = CN__MAX(1, q1 - q0) * cdiv(OCG, NR);
    for (int64_t b0 = r0; b0 < r1; b0 += rows_b) {
        const int64_t b1 = CN__MIN(r1, b0 + rows_b), b2 = CN__MIN(r1, b1 + rows_b);
        /* The next batch's gy rows and the x rows they read, a share in
         * each kernel call: they come from memory, and the hardware
         * prefetchers do not follow the tiles' short strided streams. */
        const float *pf[2] = {NULL, NULL};
        int64_t pl[2] = {0, 0};
        if (b1 < b2) {
            const int64_t n1 = b1 / d->OH, oh1 = b1 % d->OH;
            const int64_t n2 = (b2 - 1) / d->OH, oh2 = (b2 - 1) % d->OH;
            const int64_t lo = n1 * d->IH + CN__MAX(0, oh1 * d->SH - d->PT);
            const int64_t hi =
                n2 * d->IH + CN__MIN(d->IH - 1, oh2 * d->SH - d->PT + (d->KH - 1) * d->DH);
            pf[0] = gy + b1 * d->OW * d->OC, pl[0] = (b2 - b1) * d->OW * d->OC / 16;
            /* (not where the stride skips rows or pixels, 1x1 stride 2:
             * that would double the memory traffic) */
            if (hi >= lo && (d->KH - 1) * d->DH + 1 >= d->SH && (d->KW - 1) * d->DW + 1 >= d->SW)
                pf[1] = x + lo * d->IW * d->IC, pl[1] = (hi - lo + 1) * d->IW * d->IC / 16;
        }
        const int64_t share = cdiv(pl[0] + pl[1], calls);
        int cur = 0;
        /* gy's rows of the batch in panels of NR columns, [pixels, NR]
         * each (bww_packs_gy) */
        const int64_t bpx = (b1 - b0) * d->OW;
        if (pgy)
            for (int64_t q = 0; q < cdiv(OCG, NR); q++)
                for (int64_t i = 0; i < bpx; i++)
                    memcpy(gpk + (q * bpx + i) * NR, gy + (b0 * d->OW + i) * d->OC + q * NR,
                           (size_t)CN__MIN(NR, OCG - q * NR) * sizeof(float));
        for (int64_t g = 0; g < d->G; g++)
            for (int64_t m0 = 0; m0 < K; m0 += MR) {
                const int64_t q = g * cdiv(K, MR) + m0 / MR;
                if (q < q0 || q >= q1) continue;
                const int m = (int)CN__MIN(MR, K - m0);
                const int pack = px || m < MR || m0 / ICG != (m0 + m - 1) / ICG;
                int np = 0;
                float *pa = packed;
                /* one tap's tile: its filter row and columns, once (tap_reads
                 * per row divided twice, 1% of a resnet step) */
                const int64_t tap = m0 / ICG, kh = tap / d->KW, kw = tap % d->KW;
                int64_t lo, hi;
                kw_range(d, kw, &lo, &hi);
                const int64_t iw = lo * d->SW + kw * d->DW - d->PL;
                int64_t n = b0 / d->OH, oh = b0 % d->OH;
                for (int64_t r = b0; r < b1; r++, oh = oh + 1 == d->OH ? (n++, 0) : oh + 1) {
                    if (pack) {
                        const float *grow = pgy ? gpk + (r - b0) * d->OW * NR
                                                : gy + (n * d->OH + oh) * d->OW * d->OC + g * OCG;
                        pr[np] =
                            pack_bww_row(d, x, grow, pgy ? NR : d->OC, n, oh, g, m0, m, MR, pa);
                        if (pr[np].k) pa += pr[np++].k * MR;
                        continue;
                    }
                    const int64_t ih = oh * d->SH - d->PT + kh * d->DH;
                    if (ih < 0 || ih >= d->IH || lo >= hi) continue;
                    pr[np++] = (cn__sgemm_pair){
                        x + ((n * d->IH + ih) * d->IW + iw) * d->IC + g * ICG + m0 - tap * ICG,
                        pgy ? gpk + ((r - b0) * d->OW + lo) * NR
                            : gy + ((n * d->OH + oh) * d->OW + lo) * d->OC + g * OCG,
                        1,
                        hi - lo,
                        0,
                        CN__SGEMM_AVX512_MR};
                }
                /* the column slivers in turn, while the tile's A is in L1 */
                for (int64_t o0 = 0; o0 < OCG; o0 += NR) {
                    while (cur < 2 && pl[cur] == 0) cur++;
                    const int64_t nl = cur < 2 ? CN__MIN(share, pl[cur]) : 0;
                    (use7 ? cn__sgemm_batch7_avx512 : cn__sgemm_batch_avx512)(
                        np, pr, pack ? MR : d->SW * d->IC, pgy ? NR : d->OC,
                        pg + m0 * d->OC + g * OCG + o0, d->OC, m, (int)CN__MIN(NR, OCG - o0),
                        b0 > r0 ? 1.0f : 0.0f, nl ? pf[cur] : NULL, nl);
                    if (nl) pf[cur] += nl * 16, pl[cur] -= nl;
                    for (int t = 0; t < np; t++) pr[t].b += pgy ? bpx * NR : NR;
                }
            }
    }
}

cn_status cn__conv2d_gemm_bwd_weights(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                      const float *gy, float *gw, float *ws)
{
    const int64_t OCG = d->OC / d->G, K = kg(d), P = rows_total(d), R = chunk_rows(d);
    const int64_t nch = cdiv(P, R), np = bww_parts(d), nw = K * d->OC;
    const int pw = is_pointwise(d), T = pass_threads(ctx), implicit = implicit_bww_applies(d);
    float *parts = ws_parts(d, ws);
    if (implicit && bww_splits_gw(d)) {
        /* every gw element is summed over all rows, in order, by one thread */
#pragma omp parallel num_threads(T) if (T > 1)
        implicit_bww_part(d, x, gy, 0, d->MB * d->OH, gw, (char *)thread_cols(d, ws),
                          omp_get_thread_num(), omp_get_num_threads());
        return CN_OK;
    }
#pragma omp parallel num_threads(T) if (T > 1 && np > 1)
    {
        float *cols = thread_cols(d, ws);
#pragma omp for schedule(dynamic)
        for (int64_t p = 0; p < np; p++) {
            float *pg = parts + p * nw;
            if (implicit) {
                const int64_t rows = d->MB * d->OH;
                implicit_bww_part(d, x, gy, rows * p / np, rows * (p + 1) / np, pg, (char *)cols, 0,
                                  1);
                continue;
            }
            const int64_t c0 = nch * p / np, c1 = nch * (p + 1) / np;
            /* Whether every output row of the part reads all filter rows:
             * then the first chunk's GEMMs set pg, else it starts at 0. */
            int full = 1;
            for (int64_t r = c0 * R, k0, k1; r < CN__MIN(c1 * R, P); r += d->OW - r % d->OW) {
                kh_range(d, r / d->OW % d->OH, &k0, &k1);
                full = full && k0 == 0 && k1 == d->KH;
            }
            if (!full) memset(pg, 0, (size_t)nw * sizeof *pg);
            for (int64_t c = c0; c < c1; c++) {
                const int64_t r0 = c * R, n = CN__MIN(R, P - r0);
                for (int64_t g = 0; g < d->G; g++) {
                    if (!pw) gather(d, x, g, r0, n, cols);
                    /* Runs of output rows whose filter rows [k0, k1) lie in
                     * the input: the GEMM skips the zero patches of the others. */
                    for (int64_t s0 = 0, s1; s0 < n; s0 = s1) {
                        int64_t k0, k1, j0, j1;
                        kh_range(d, (r0 + s0) / d->OW % d->OH, &k0, &k1);
                        for (s1 = s0; s1 < n; s1 += d->OW - (r0 + s1) % d->OW) {
                            kh_range(d, (r0 + s1) / d->OW % d->OH, &j0, &j1);
                            if (j0 != k0 || j1 != k1) break;
                        }
                        s1 = CN__MIN(s1, n);
                        if (k0 >= k1) continue;
                        const int64_t m0 = k0 * d->KW * (d->IC / d->G);
                        const int64_t m1 = k1 * d->KW * (d->IC / d->G);
                        gemm1(d, cols, 1, 0, m1 - m0, OCG, s1 - s0,
                              (pw ? x + r0 * d->IC : cols) + s0 * K + m0, K,
                              gy + (r0 + s0) * d->OC + g * OCG, d->OC,
                              full && c == c0 ? 0.0f : 1.0f, pg + m0 * d->OC + g * OCG, d->OC);
                    }
                }
            }
        }
        /* each element is the sum of its parts in part order */
#pragma omp for schedule(static)
        for (int64_t i = 0; i < nw; i++) {
            float s = parts[i];
            for (int64_t p = 1; p < np; p++) s += parts[p * nw + i];
            gw[i] = s;
        }
    }
    return CN_OK;
}
