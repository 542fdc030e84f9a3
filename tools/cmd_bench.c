/* convnet bench: how fast every convolution pass of a problem suite runs, as
 * a fraction of the machine's measured FMA peak, optionally against oneDNN
 * on the same problems (timed interleaved, so that noise hits both), plus
 * the memory-bound ops (pooling, batch norm) against the measured bandwidth.
 *
 * FLOPs of a pass = 2 * N * OH * OW * OC * KH * KW * IC / G (the same for
 * forward, backward-data and backward-weights; bias excluded on both sides). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_machine.h"
#include "cli.h"
#include "kernels/gemm.h"
#include "onednn.h"
#include "ops/conv_internal.h"

static const char *const CMD = "bench";

#define MIN_SECONDS 0.3 /* adaptive repetitions: at least this long ... */
#define MIN_REPS 5      /* ... and at least this many */
#define MAX_REPS 100000
#define TURN 5 /* --compare: timed runs of one library in a row (--interleave) */
#define MAX_THREADS 8 /* entries of --threads */
#define PEAK_SECONDS 0.2

static const char usage[] =
    "usage: convnet bench [--suite FILE] [--problem NAME[,NAME...] | --problem \"N H W IC OC KH KW\n"
    "                     SH SW PH PW DH DW G\"] [--pass fwd,bwd_data,bwd_weights]\n"
    "                     [--threads 1,2] [--reps R]\n"
    "                     [--compare onednn [--interleave K]] [--no-memory] [--json]\n"
    "\n"
    "Times every convolution pass of a problem suite and reports the median time,\n"
    "GFLOP/s, the percentage of the machine's fp32 FMA peak (measured first, per\n"
    "thread count), the implementation convnet chose and its workspace, and the\n"
    "pass's memory floor: the median ms of reading its inputs once and writing its\n"
    "output once (plain or streaming stores, whichever is faster), on the same\n"
    "buffers and threads. Then the geometric mean per pass and thread count.\n"
    "\n"
    "Options (--opt=value works too):\n"
    "  --suite FILE        problems, one a line: name N H W IC OC KH KW SH SW PH PW DH DW G\n"
    "                      ('#' starts a comment; dilation 1 = none; default\n"
    "                      " CN_SOURCE_DIR "/bench/conv_suite.txt,\n"
    "                      else ./bench/conv_suite.txt)\n"
    "  --problem P         only these suite problems (comma-separated names), or one\n"
    "                      problem given as its 14 numbers in quotes\n"
    "  --pass LIST         any of fwd, bwd_data, bwd_weights (default: all three)\n"
    "  --threads LIST      thread counts (default 1,2)\n"
    "  --reps R            exactly R timed runs after the warm-up (default: enough for\n"
    "                      0.3 s, at least 5)\n"
    "  --compare onednn    also run oneDNN on the same problems, interleaved with\n"
    "                      convnet, and report the throughput ratio convnet/oneDNN\n"
    "                      (needs a build with libdnnl-dev: `make bench`)\n"
    "  --interleave K      with --compare: the libraries take turns of K timed runs,\n"
    "                      each turn after one untimed run, so that each is timed in\n"
    "                      the cache state its own runs leave (default 5; 1 alternates\n"
    "                      run by run, with no untimed runs)\n"
    "  --no-memory         skip the bandwidth, pooling and batch-norm section (it is\n"
    "                      also skipped when --problem is given)\n"
    "  --json              one JSON object per line instead of tables: \"kind\" is\n"
    "                      \"peak\", \"memory\" or \"conv\"; conv lines have problem, pass,\n"
    "                      threads, reps, ms, gflops, pct_peak, impl, ws_bytes,\n"
    "                      floor_ms (and\n"
    "                      onednn_ms, onednn_gflops, onednn_impl, ratio when comparing)\n"
    "  -h, --help          show this help\n"
    "\n"
    "Inputs are random, allocated once per problem; the workspace once and reused.\n"
    "Example: convnet bench --problem r50_3x3,dw3x3 --threads 1 --compare onednn\n";

static const char *const pass_names[BENCH_PASS_COUNT] = {"fwd", "bwd_data", "bwd_weights"};

/* One line of the suite: name and N H W IC OC KH KW SH SW PH PW DH DW G. */
enum { NUMS = 14 };
typedef struct problem {
    char name[32];
    int v[NUMS];
} problem;

typedef struct bench_opts {
    const char *suite, *problem;
    int pass[BENCH_PASS_COUNT], npass;
    int threads[MAX_THREADS], nthreads;
    int reps, turn, json, compare, no_memory;
} bench_opts;

/* ---- problems -------------------------------------------------------------- */

/* Parses whitespace-separated non-negative ints; the count, or -1 for junk. */
static int parse_numbers(const char *s, int *out, int max)
{
    int n = 0;
    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
        if (!*s) return n;
        if (*s < '0' || *s > '9' || n == max) return -1;
        char *end;
        long v = strtol(s, &end, 10);
        if (v > 1000000000L) return -1;
        out[n++] = (int)v;
        s = end;
        if (*s && *s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') return -1;
    }
}

static cn_status problem_desc(const problem *p, cn_conv2d_desc *d)
{
    const int *v = p->v;
    cn_conv2d_params cp = cn_conv2d_params_default();
    cp.stride_h = v[7], cp.stride_w = v[8];
    cp.pad_top = cp.pad_bottom = v[9], cp.pad_left = cp.pad_right = v[10];
    cp.dil_h = v[11], cp.dil_w = v[12], cp.groups = v[13];
    int64_t xs[4] = {v[0], v[1], v[2], v[3]};
    int64_t ws[4] = {v[5], v[6], v[13] > 0 ? v[3] / v[13] : v[3], v[4]};
    return cn_conv2d_setup(d, &cp, xs, ws);
}

/* Reads the suite into *out (malloc'd, *n entries); 0 or the exit status. */
static int read_suite(const char *path, problem **out, int *n)
{
    FILE *f = fopen(path, "r");
    if (!f) return cli_fail(CMD, "--suite: cannot open '%s'", path);
    problem *ps = NULL;
    int np = 0, cap = 0, lineno = 0;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        if (!*s || *s == '\n' || *s == '\r') continue;
        problem p;
        memset(&p, 0, sizeof p);
        size_t len = strcspn(s, " \t\r\n");
        if (len >= sizeof p.name) {
            fclose(f), free(ps);
            return cli_fail(CMD, "%s:%d: problem name longer than %zu characters", path, lineno,
                            sizeof p.name - 1);
        }
        memcpy(p.name, s, len);
        if (parse_numbers(s + len, p.v, NUMS) != NUMS) {
            fclose(f), free(ps);
            return cli_fail(CMD,
                            "%s:%d: expected a name and 14 non-negative integers "
                            "(N H W IC OC KH KW SH SW PH PW DH DW G)",
                            path, lineno);
        }
        if (np == cap) {
            cap = cap ? 2 * cap : 16;
            problem *grown = realloc(ps, (size_t)cap * sizeof *ps);
            if (!grown) {
                fclose(f), free(ps);
                return cli_fail(CMD, "out of memory reading '%s'", path);
            }
            ps = grown;
        }
        ps[np++] = p;
    }
    (void)fclose(f);
    if (!np) {
        free(ps);
        return cli_fail(CMD, "--suite: '%s' has no problems", path);
    }
    *out = ps, *n = np;
    return 0;
}

/* Narrows the suite to --problem: names, or one problem given as numbers. */
static int select_problems(const char *spec, problem **ps, int *n)
{
    problem custom;
    memset(&custom, 0, sizeof custom);
    int cnt = parse_numbers(spec, custom.v, NUMS);
    if (cnt == NUMS) {
        snprintf(custom.name, sizeof custom.name, "custom");
        (*ps)[0] = custom, *n = 1;
        return 0;
    }
    if (cnt > 0)
        return cli_usage(CMD,
                         "--problem: '%s' has %d numbers, expected 14 (N H W IC OC KH KW SH "
                         "SW PH PW DH DW G)",
                         spec, cnt);
    problem *sel = malloc((size_t)*n * sizeof *sel);
    if (!sel) return cli_fail(CMD, "out of memory");
    int ns = 0;
    const char *s = spec;
    while (*s) {
        size_t len = strcspn(s, ",");
        int found = 0;
        for (int i = 0; i < *n; i++)
            if (strlen((*ps)[i].name) == len && !strncmp((*ps)[i].name, s, len)) {
                if (ns < *n) sel[ns++] = (*ps)[i];
                found = 1;
                break;
            }
        if (!found) {
            free(sel);
            return cli_fail(CMD, "--problem: no problem '%.*s' in the suite", (int)len, s);
        }
        s += len;
        if (*s == ',') s++;
    }
    if (!ns) {
        free(sel);
        return cli_usage(CMD, "--problem: empty");
    }
    free(*ps);
    *ps = sel, *n = ns;
    return 0;
}

/* ---- options --------------------------------------------------------------- */

static int parse_passes(const char *v, bench_opts *o)
{
    o->npass = 0;
    const char *s = v;
    while (*s) {
        size_t len = strcspn(s, ",");
        int k = -1;
        for (int i = 0; i < BENCH_PASS_COUNT; i++)
            if (strlen(pass_names[i]) == len && !strncmp(pass_names[i], s, len)) k = i;
        if (k < 0)
            return cli_usage(CMD, "--pass: unknown pass '%.*s' (fwd, bwd_data, bwd_weights)",
                             (int)len, s);
        int dup = 0;
        for (int i = 0; i < o->npass; i++) dup |= o->pass[i] == k;
        if (!dup) o->pass[o->npass++] = k;
        s += len;
        if (*s == ',') s++;
    }
    if (!o->npass) return cli_usage(CMD, "--pass: empty");
    return 0;
}

static const char *default_suite(void)
{
    static const char src[] = CN_SOURCE_DIR "/bench/conv_suite.txt";
    FILE *f = fopen(src, "r");
    if (f) {
        (void)fclose(f);
        return src;
    }
    return "bench/conv_suite.txt";
}

static int parse(int argc, char **argv, bench_opts *o)
{
    memset(o, 0, sizeof *o);
    o->pass[0] = BENCH_FWD, o->pass[1] = BENCH_BWD_DATA, o->pass[2] = BENCH_BWD_WEIGHTS;
    o->npass = 3;
    o->threads[0] = 1, o->threads[1] = 2, o->nthreads = 2;
    o->turn = TURN;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if ((r = cli_opt(CMD, argc, argv, &i, "--suite", &v))) {
            if (r < 0) return 2;
            o->suite = v;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--problem", &v))) {
            if (r < 0) return 2;
            o->problem = v;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--pass", &v))) {
            if (r < 0) return 2;
            if ((r = parse_passes(v, o))) return r;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--threads", &v))) {
            if (r < 0) return 2;
            if ((o->nthreads = cli_opt_ints(CMD, "--threads", v, o->threads, MAX_THREADS)) < 0)
                return 2;
            for (int k = 0; k < o->nthreads; k++)
                if (o->threads[k] < 1 || o->threads[k] > 1024)
                    return cli_usage(CMD, "--threads: %d is not in [1, 1024]", o->threads[k]);
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--reps", &v))) {
            if (r < 0) return 2;
            if (cli_parse_int(v, &o->reps) || o->reps < 1 || o->reps > MAX_REPS)
                return cli_usage(CMD, "--reps: '%s' is not an integer in [1, %d]", v, MAX_REPS);
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--compare", &v))) {
            if (r < 0) return 2;
            if (strcmp(v, "onednn") != 0)
                return cli_usage(CMD, "--compare: unknown library '%s' (onednn)", v);
            o->compare = 1;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--interleave", &v))) {
            if (r < 0) return 2;
            if (cli_parse_int(v, &o->turn) || o->turn < 1 || o->turn > MAX_REPS)
                return cli_usage(CMD, "--interleave: '%s' is not an integer in [1, %d]", v,
                                 MAX_REPS);
        } else if ((r = cli_flag(CMD, argv, i, "--json"))) {
            if (r < 0) return 2;
            o->json = 1;
        } else if ((r = cli_flag(CMD, argv, i, "--no-memory"))) {
            if (r < 0) return 2;
            o->no_memory = 1;
        } else {
            return cli_usage(CMD, "unknown option '%s'", argv[i]);
        }
    }
    if (!o->suite) o->suite = default_suite();
    return 0;
}

/* ---- timing ---------------------------------------------------------------- */

/* One side of a measurement: run() executes the operation once (0 or -1). */
typedef struct timed {
    int (*run)(void *arg);
    void *arg;
    int threads;
} timed;

static double time_once(const timed *t, int *failed)
{
    omp_set_num_threads(t->threads);
    double t0 = bench_now();
    if (t->run(t->arg)) *failed = 1;
    return bench_now() - t0;
}

/* Warm-up, then n timed runs of a and of b (b may be NULL): a and b take
 * turns of `turn` runs, so that noise hits both. Each turn starts with an
 * untimed run: a run leaves the caches holding its own data in its own order,
 * and the other library's first run after it would pay for that (on a 25 MB
 * working set in the shared 32 MB L3 one thread of a depthwise pass ran twice
 * as slowly right after oneDNN's run). turn = 1 alternates run by run. ms
 * receive the medians; *reps the number of timed runs each. 0, or -1 if a run
 * failed. */
static int measure(const timed *a, const timed *b, int fixed_reps, int turn, double *ms_a,
                   double *ms_b, int *reps)
{
    int failed = 0;
    time_once(a, &failed);
    if (b) time_once(b, &failed);
    if (failed) return -1;
    /* One more run of each sizes the run. */
    double ta = time_once(a, &failed), tb = b ? time_once(b, &failed) : 0;
    int n = fixed_reps;
    if (!n) {
        double slow = ta > tb ? ta : tb;
        double want = slow > 0 ? ceil(MIN_SECONDS / slow) : MAX_REPS;
        n = want < MIN_REPS ? MIN_REPS : want > MAX_REPS ? MAX_REPS : (int)want;
    }
    double *sa = malloc((size_t)n * sizeof *sa), *sb = malloc((size_t)n * sizeof *sb);
    if (!sa || !sb) {
        free(sa), free(sb);
        return -1;
    }
    if (!b) turn = n;
    const int settle = b && turn > 1;
    for (int r = 0; r < n && !failed; r += turn) {
        const int k1 = r + turn < n ? r + turn : n;
        if (settle) time_once(a, &failed);
        for (int k = r; k < k1; k++) sa[k] = time_once(a, &failed);
        if (!b) continue;
        if (settle) time_once(b, &failed);
        for (int k = r; k < k1; k++) sb[k] = time_once(b, &failed);
    }
    if (!failed) {
        *ms_a = 1e3 * bench_median(sa, n);
        if (ms_b) *ms_b = b ? 1e3 * bench_median(sb, n) : 0;
    }
    *reps = n;
    free(sa), free(sb);
    return failed ? -1 : 0;
}

/* ---- convnet's passes -------------------------------------------------------- */

typedef struct conv_job {
    cn_ctx ctx;
    const cn_conv2d_desc *d;
    bench_pass pass;
    const float *x, *w, *gy;
    float *y, *gx, *gw;
    void *ws;
} conv_job;

static int run_conv(void *arg)
{
    conv_job *j = arg;
    cn_status s;
    switch (j->pass) {
    case BENCH_FWD:
        s = cn_conv2d_fwd(&j->ctx, j->d, j->x, j->w, NULL, j->y, j->ws);
        break;
    case BENCH_BWD_DATA:
        s = cn_conv2d_bwd_data(&j->ctx, j->d, j->gy, j->w, j->gx, j->ws);
        break;
    default:
        s = cn_conv2d_bwd_weights(&j->ctx, j->d, j->x, j->gy, j->gw, NULL, j->ws);
        break;
    }
    return s == CN_OK ? 0 : -1;
}

#ifdef CN_HAVE_ONEDNN
static int run_onednn(void *arg) { return bench_onednn_run(arg); }
#endif

/* A pass's memory floor: its inputs read once, its output written once. */
typedef struct floor_job {
    const float *a, *b;
    size_t na, nb, nout;
    float *out;
    int streaming, threads;
    float sink;
} floor_job;

static int run_floor(void *arg)
{
    floor_job *f = arg;
    f->sink += bench_stream(f->a, f->na, f->b, f->nb, f->out, f->nout, f->streaming, f->threads);
    return 0;
}

/* ---- output ------------------------------------------------------------------ */

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static const char *human_bytes(size_t b, char *buf, size_t len)
{
    if (b < 1024)
        snprintf(buf, len, "%zu", b);
    else if (b < (size_t)1024 * 1024)
        snprintf(buf, len, "%.1fK", (double)b / 1024);
    else if (b < (size_t)1024 * 1024 * 1024)
        snprintf(buf, len, "%.1fM", (double)b / (1024.0 * 1024));
    else
        snprintf(buf, len, "%.2fG", (double)b / (1024.0 * 1024 * 1024));
    return buf;
}

/* Per pass and thread count: sums of logs for the geometric means. */
typedef struct summary {
    double log_gflops[BENCH_PASS_COUNT][MAX_THREADS], log_ratio[BENCH_PASS_COUNT][MAX_THREADS];
    double log_pct[BENCH_PASS_COUNT][MAX_THREADS];
    int n[BENCH_PASS_COUNT][MAX_THREADS], nr[BENCH_PASS_COUNT][MAX_THREADS];
} summary;

/* ---- the machine and the memory-bound ops ------------------------------------- */

/* The 1-minute load average, or -1 where /proc/loadavg is missing. */
static double load_average(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        (void)fclose(f);
    }
    return l;
}

/* Conditions that change multi-threaded timings, stated with the results:
 * on a loaded machine OpenMP threads that spin at barriers take turns with
 * other processes, and every parallel region can cost a scheduler slice. */
static void print_conditions(const bench_opts *o)
{
    const double load = load_average();
    const int cpus = omp_get_num_procs();
    const char *wait = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
    if (o->json) {
        printf("{\"kind\": \"machine\", \"cpus\": %d, \"loadavg\": %.2f, \"omp_wait_policy\": ",
               cpus, load);
        json_str(wait ? wait : "");
        printf(", \"gomp_spincount\": ");
        json_str(spin ? spin : "");
        printf("}\n");
        return;
    }
    printf("machine: %d CPUs, load average %.2f, OMP_WAIT_POLICY=%s, GOMP_SPINCOUNT=%s\n", cpus,
           load, wait ? wait : "(unset)", spin ? spin : "(unset)");
    if (load > 0.5 * cpus)
        printf("warning: the machine is busy (load %.1f on %d CPUs): timings are noisy, "
               "multi-threaded ones most\n",
               load, cpus);
}

typedef struct pool_job {
    cn_ctx ctx;
    const cn_pool2d_desc *d;
    const float *x;
    float *y;
    int64_t *idx;
} pool_job;

static int run_pool(void *arg)
{
    pool_job *j = arg;
    cn_status s = j->d->type == CN_POOL_MAX ? cn_max_pool2d_fwd(&j->ctx, j->d, j->x, j->y, j->idx)
                                            : cn_avg_pool2d_fwd(&j->ctx, j->d, j->x, j->y);
    return s == CN_OK ? 0 : -1;
}

typedef struct bn_job {
    cn_ctx ctx;
    int64_t M, C;
    const float *x, *gamma, *beta;
    float *rm, *rv, *sm, *si, *y;
} bn_job;

static int run_bn(void *arg)
{
    bn_job *j = arg;
    return cn_batchnorm_fwd(&j->ctx, NULL, 1, j->M, j->C, j->x, j->gamma, j->beta, j->rm, j->rv,
                            j->sm, j->si, j->y) == CN_OK
               ? 0
               : -1;
}

static void fill(cn_ctx *rng, float *a, size_t n)
{
    for (size_t i = 0; i < n; i++) a[i] = (float)(2 * cn_rng_uniform(rng) - 1);
}

static void memory_row(const bench_opts *o, const char *name, int threads, int reps, double ms,
                       double bytes, double bw)
{
    double gbps = bytes / (ms * 1e-3) / 1e9;
    if (o->json) {
        printf("{\"kind\": \"memory\", \"problem\": \"%s\", \"threads\": %d, \"reps\": %d, "
               "\"ms\": %.6f, \"gbps\": %.3f, \"pct_bandwidth\": %.2f}\n",
               name, threads, reps, ms, gbps, 100 * gbps / bw);
    } else {
        printf("%-22s %3d %9.3f %8.1f %7.1f%%\n", name, threads, ms, gbps, 100 * gbps / bw);
    }
    fflush(stdout);
}

/* Bandwidth, then max/avg pooling on a ResNet-50-like [8,112,112,64] and
 * batch norm (training) on [8,56,56,64], in GB/s of compulsory traffic (each
 * input read once, each output written once) against the bandwidth. */
static int memory_section(const bench_opts *o, cn_ctx *rng)
{
    const int64_t px[4] = {8, 112, 112, 64}, M = INT64_C(8) * 56 * 56, C = 64;
    cn_pool2d_params mp = cn_pool2d_params_default(3, 3), ap = cn_pool2d_params_default(2, 2);
    mp.stride_h = mp.stride_w = 2, mp.pad_h = mp.pad_w = 1;
    cn_pool2d_desc md, ad;
    cn_status s;
    if ((s = cn_pool2d_setup(&md, &mp, CN_POOL_MAX, px)) ||
        (s = cn_pool2d_setup(&ad, &ap, CN_POOL_AVG, px)))
        return cli_fail_status(CMD, s);
    const size_t nx = (size_t)(px[0] * px[1] * px[2] * px[3]);
    const size_t ny = (size_t)(md.MB * md.OH * md.OW * md.C), nb = (size_t)(M * C);
    float *x = cn_alloc(nx * 4), *y = cn_alloc(nx * 4), *bx = cn_alloc(nb * 4),
          *by = cn_alloc(nb * 4), *par = cn_alloc(6 * (size_t)C * 4);
    int64_t *idx = cn_alloc(ny * 8);
    int rc = 0;
    if (!x || !y || !bx || !by || !par || !idx) {
        rc = cli_fail(CMD, "out of memory for the memory-bound benchmarks");
        goto done;
    }
    fill(rng, x, nx), fill(rng, bx, nb);
    for (int64_t c = 0; c < C; c++)
        par[c] = 1.0f, par[C + c] = 0.0f, par[2 * C + c] = 0.0f, par[3 * C + c] = 1.0f;
    if (!o->json)
        printf("\n%-22s %3s %9s %8s %8s\n", "memory-bound op", "thr", "ms", "GB/s", "%bw");
    for (int k = 0; k < o->nthreads; k++) {
        const int t = o->threads[k];
        double copy, triad;
        if (bench_bandwidth(t, &copy, &triad)) {
            rc = cli_fail(CMD, "out of memory for the bandwidth test");
            goto done;
        }
        const double bw = copy > triad ? copy : triad;
        if (o->json)
            printf(
                "{\"kind\": \"bandwidth\", \"threads\": %d, \"copy_gbps\": %.3f, \"triad_gbps\": "
                "%.3f}\n",
                t, copy, triad);
        else
            printf("%-22s %3d %9s %8.1f\n%-22s %3d %9s %8.1f\n", "stream copy", t, "", copy,
                   "stream triad", t, "", triad);
        pool_job pj = {.d = &md, .x = x, .y = y, .idx = NULL};
        cn_ctx_init(&pj.ctx);
        pj.ctx.threads = t;
        timed tp = {run_pool, &pj, t};
        struct {
            const char *name;
            const cn_pool2d_desc *d;
            int64_t *idx;
            double bytes;
        } pools[3] = {
            {"maxpool3x3s2 fwd", &md, NULL, 4.0 * (double)(nx + ny)},
            {"maxpool3x3s2 fwd+idx", &md, idx, 4.0 * (double)(nx + ny) + 8.0 * (double)ny},
            {"avgpool2x2 fwd", &ad, NULL,
             4.0 * (double)(nx + (size_t)(ad.MB * ad.OH * ad.OW * ad.C))}};
        for (int i = 0; i < 3; i++) {
            pj.d = pools[i].d, pj.idx = pools[i].idx;
            double ms;
            int reps;
            if (measure(&tp, NULL, o->reps, 1, &ms, NULL, &reps)) {
                rc = cli_fail(CMD, "%s: %s", pools[i].name, cn_last_error());
                goto done;
            }
            memory_row(o, pools[i].name, t, reps, ms, pools[i].bytes, bw);
        }
        bn_job bj = {.M = M,
                     .C = C,
                     .x = bx,
                     .gamma = par,
                     .beta = par + C,
                     .rm = par + 2 * C,
                     .rv = par + 3 * C,
                     .sm = par + 4 * C,
                     .si = par + 5 * C,
                     .y = by};
        cn_ctx_init(&bj.ctx);
        bj.ctx.threads = t;
        timed tb = {run_bn, &bj, t};
        double ms;
        int reps;
        if (measure(&tb, NULL, o->reps, 1, &ms, NULL, &reps)) {
            rc = cli_fail(CMD, "batchnorm: %s", cn_last_error());
            goto done;
        }
        memory_row(o, "batchnorm train fwd", t, reps, ms, 8.0 * (double)nb, bw);
    }
done:
    cn_free(x), cn_free(y), cn_free(bx), cn_free(by), cn_free(par), cn_free(idx);
    return rc;
}

/* ---- the convolution suite ------------------------------------------------------ */

typedef struct conv_bufs {
    float *x, *w, *gy, *y, *gx, *gw;
    void *ws;
} conv_bufs;

static void bufs_free(conv_bufs *b)
{
    cn_free(b->x), cn_free(b->w), cn_free(b->gy), cn_free(b->y), cn_free(b->gx), cn_free(b->gw);
    cn_free(b->ws);
    memset(b, 0, sizeof *b);
}

static int bufs_alloc(const cn_conv2d_desc *d, cn_ctx *rng, conv_bufs *b, size_t *ws_bytes)
{
    memset(b, 0, sizeof *b);
    const size_t nx = (size_t)(d->MB * d->IH * d->IW * d->IC),
                 ny = (size_t)(d->MB * d->OH * d->OW * d->OC);
    const size_t nw = (size_t)(d->KH * d->KW * (d->IC / d->G) * d->OC);
    *ws_bytes = cn_conv2d_workspace_size(d);
    b->x = cn_alloc(nx * 4), b->gx = cn_alloc(nx * 4), b->w = cn_alloc(nw * 4);
    b->gw = cn_alloc(nw * 4), b->y = cn_alloc(ny * 4), b->gy = cn_alloc(ny * 4);
    b->ws = cn_alloc(*ws_bytes ? *ws_bytes : 64);
    if (!b->x || !b->gx || !b->w || !b->gw || !b->y || !b->gy || !b->ws) {
        bufs_free(b);
        return -1;
    }
    fill(rng, b->x, nx), fill(rng, b->w, nw), fill(rng, b->gy, ny);
    return 0;
}

static void conv_header(const bench_opts *o, const char *dnnl_version)
{
    if (o->json) return;
    if (o->compare)
        printf("\nconvnet and oneDNN take turns of %d timed run%s%s\n", o->turn,
               o->turn > 1 ? "s" : "", o->turn > 1 ? ", each turn after one untimed run" : "");
    printf("\n%-10s %-11s %3s %9s %8s %7s %-6s %7s %7s", "problem", "pass", "thr", "ms", "GFLOP/s",
           "%peak", "impl", "ws", "floor");
    if (o->compare) {
        char head[40];
        snprintf(head, sizeof head, "oneDNN %s", dnnl_version);
        printf(" | %9s %8s %-22s %6s", "ms", "GFLOP/s", head, "ratio");
    }
    putchar('\n');
}

static int conv_suite(const bench_opts *o, const problem *ps, int np, const double *peak,
                      cn_ctx *rng, summary *sum)
{
    for (int ip = 0; ip < np; ip++) {
        const problem *p = &ps[ip];
        cn_conv2d_desc d;
        cn_status s = problem_desc(p, &d);
        if (s) return cli_fail(CMD, "problem %s: %s", p->name, cn_last_error());
        conv_bufs b;
        size_t ws_bytes;
        if (bufs_alloc(&d, rng, &b, &ws_bytes))
            return cli_fail(CMD, "problem %s: out of memory", p->name);
        const double flops = 2.0 * (double)d.MB * (double)d.OH * (double)d.OW * (double)d.OC *
                             (double)d.KH * (double)d.KW * (double)(d.IC / d.G);
        char shape[128];
        snprintf(shape, sizeof shape, "%d %d %d %d %d %d %d %d %d %d %d %d %d %d", p->v[0], p->v[1],
                 p->v[2], p->v[3], p->v[4], p->v[5], p->v[6], p->v[7], p->v[8], p->v[9], p->v[10],
                 p->v[11], p->v[12], p->v[13]);
        for (int kp = 0; kp < o->npass; kp++) {
            const bench_pass pass = (bench_pass)o->pass[kp];
            const char *impl = cn__conv2d_impl_name(&d, (int)pass);
            for (int kt = 0; kt < o->nthreads; kt++) {
                const int t = o->threads[kt];
                conv_job j = {.d = &d,
                              .pass = pass,
                              .x = b.x,
                              .w = b.w,
                              .gy = b.gy,
                              .y = b.y,
                              .gx = b.gx,
                              .gw = b.gw,
                              .ws = b.ws};
                cn_ctx_init(&j.ctx);
                j.ctx.threads = t;
                timed ta = {run_conv, &j, t}, tb = {NULL, NULL, t};
                const char *dimpl = NULL;
#ifdef CN_HAVE_ONEDNN
                bench_onednn *dn = NULL;
                if (o->compare) {
                    char err[256];
                    if (bench_onednn_new(&dn, &d, pass, t, b.x, b.w, b.gy, err, sizeof err)) {
                        bufs_free(&b);
                        return cli_fail(CMD, "problem %s, %s: %s", p->name, pass_names[pass], err);
                    }
                    tb.run = run_onednn, tb.arg = dn;
                    dimpl = bench_onednn_impl(dn);
                }
#endif
                /* the floor: fwd reads x and writes y, bwd_data gy and gx,
                 * bwd_weights reads x and gy (weights left out: small) */
                const size_t nx = (size_t)(d.MB * d.IH * d.IW * d.IC),
                             ny = (size_t)(d.MB * d.OH * d.OW * d.OC),
                             nw = (size_t)(d.KH * d.KW * (d.IC / d.G) * d.OC);
                floor_job fj = {.threads = t};
                if (pass == BENCH_FWD)
                    fj.a = b.x, fj.na = nx, fj.out = b.y, fj.nout = ny;
                else if (pass == BENCH_BWD_DATA)
                    fj.a = b.gy, fj.na = ny, fj.out = b.gx, fj.nout = nx;
                else
                    fj.a = b.x, fj.na = nx, fj.b = b.gy, fj.nb = ny, fj.out = b.gw, fj.nout = nw;
                floor_job fs = fj;
                fs.streaming = 1;
                /* the faster of plain stores (an output that stays in the
                 * caches) and streaming ones (one that would not), timed
                 * apart: streaming stores evict the lines plain ones reuse */
                timed tf = {run_floor, &fj, t}, tfs = {run_floor, &fs, t};
                double ms = 0, dms = 0, fms = 0, fsms = 0;
                int reps = 0, freps, bad = measure(&tf, NULL, o->reps, 1, &fms, NULL, &freps);
                if (!bad) bad = measure(&tfs, NULL, o->reps, 1, &fsms, NULL, &freps);
                if (!bad && fsms < fms) fms = fsms;
                if (!bad) bad = measure(&ta, tb.run ? &tb : NULL, o->reps, o->turn, &ms, &dms, &reps);
#ifdef CN_HAVE_ONEDNN
                bench_onednn_free(dn);
#endif
                if (bad) {
                    bufs_free(&b);
                    return cli_fail(CMD, "problem %s, %s: a run failed: %s", p->name,
                                    pass_names[pass], cn_last_error());
                }
                const double gf = flops / (ms * 1e-3) / 1e9, pct = 100 * gf / peak[kt];
                const double dgf = dimpl ? flops / (dms * 1e-3) / 1e9 : 0,
                             ratio = dimpl ? gf / dgf : 0;
                sum->log_gflops[pass][kt] += log(gf), sum->log_pct[pass][kt] += log(pct);
                sum->n[pass][kt]++;
                if (dimpl) sum->log_ratio[pass][kt] += log(ratio), sum->nr[pass][kt]++;
                if (o->json) {
                    printf("{\"kind\": \"conv\", \"problem\": ");
                    json_str(p->name);
                    printf(", \"shape\": \"%s\", \"pass\": \"%s\", \"threads\": %d, \"reps\": %d, "
                           "\"ms\": %.6f, \"gflops\": %.3f, \"pct_peak\": %.2f, \"impl\": \"%s\", "
                           "\"ws_bytes\": %zu, \"floor_ms\": %.6f",
                           shape, pass_names[pass], t, reps, ms, gf, pct, impl, ws_bytes, fms);
                    if (dimpl) {
                        printf(", \"onednn_ms\": %.6f, \"onednn_gflops\": %.3f, \"onednn_impl\": ",
                               dms, dgf);
                        json_str(dimpl);
                        printf(", \"ratio\": %.4f, \"interleave\": %d", ratio, o->turn);
                    }
                    printf("}\n");
                } else {
                    char wsb[32];
                    printf("%-10s %-11s %3d %9.3f %8.1f %6.1f%% %-6s %7s %7.3f", p->name,
                           pass_names[pass], t, ms, gf, pct, impl,
                           human_bytes(ws_bytes, wsb, sizeof wsb), fms);
                    if (dimpl) printf(" | %9.3f %8.1f %-22s %6.2f", dms, dgf, dimpl, ratio);
                    putchar('\n');
                }
                fflush(stdout);
            }
        }
        bufs_free(&b);
    }
    return 0;
}

static void print_summary(const bench_opts *o, const summary *sum)
{
    if (o->json) return;
    printf("\ngeometric means      %3s %8s %7s", "thr", "GFLOP/s", "%peak");
    if (o->compare) printf(" %14s", "convnet/oneDNN");
    putchar('\n');
    for (int kp = 0; kp < o->npass; kp++)
        for (int kt = 0; kt < o->nthreads; kt++) {
            const int p = o->pass[kp], n = sum->n[p][kt], nr = sum->nr[p][kt];
            if (!n) continue;
            printf("%-20s %3d %8.1f %6.1f%%", pass_names[p], o->threads[kt],
                   exp(sum->log_gflops[p][kt] / n), exp(sum->log_pct[p][kt] / n));
            if (nr) printf(" %14.2f", exp(sum->log_ratio[p][kt] / nr));
            putchar('\n');
        }
}

int cmd_bench(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    bench_opts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
#ifndef CN_HAVE_ONEDNN
    if (o.compare)
        return cli_fail(CMD, "--compare onednn: this convnet was built without oneDNN (install "
                             "libdnnl-dev and reconfigure; `make bench` does both)");
#endif
    problem *ps = NULL;
    int np = 0;
    if (o.problem && parse_numbers(o.problem, (int[NUMS]){0}, NUMS) == NUMS) {
        /* A problem given by its numbers needs no suite file. */
        if (!(ps = malloc(sizeof *ps))) return cli_fail(CMD, "out of memory");
        np = 1;
        if ((rc = select_problems(o.problem, &ps, &np))) goto done;
    } else {
        if ((rc = read_suite(o.suite, &ps, &np))) return rc;
        if (o.problem && (rc = select_problems(o.problem, &ps, &np))) goto done;
    }
    /* Every problem is checked before anything is timed. */
    for (int i = 0; i < np; i++) {
        cn_conv2d_desc d;
        if (problem_desc(&ps[i], &d)) {
            rc = cli_fail(CMD, "problem %s: %s", ps[i].name, cn_last_error());
            goto done;
        }
    }

    cn_ctx rng;
    cn_ctx_init(&rng);
    cn_rng_seed(&rng, 1);
    double peak[MAX_THREADS];
    const char *isa = "scalar";
    print_conditions(&o);
    for (int k = 0; k < o.nthreads; k++) peak[k] = bench_fma_peak(o.threads[k], PEAK_SECONDS, &isa);
    const char *dnnl_version = "";
#ifdef CN_HAVE_ONEDNN
    if (o.compare) dnnl_version = bench_onednn_version();
#endif
    if (o.json) {
        for (int k = 0; k < o.nthreads; k++)
            printf("{\"kind\": \"peak\", \"threads\": %d, \"isa\": \"%s\", \"gflops\": %.3f}\n",
                   o.threads[k], isa, peak[k]);
    } else {
        printf("fp32 FMA peak (%s):", isa);
        for (int k = 0; k < o.nthreads; k++)
            printf("%s %d thread%s %.1f GFLOP/s", k ? "," : "", o.threads[k],
                   o.threads[k] > 1 ? "s" : "", peak[k]);
        printf("\nconvnet GEMM kernels: %s\n", cn__isa_name(cn__isa_detect()));
    }
    fflush(stdout);
    if (!o.problem && !o.no_memory && (rc = memory_section(&o, &rng))) goto done;

    summary sum;
    memset(&sum, 0, sizeof sum);
    conv_header(&o, dnnl_version);
    if ((rc = conv_suite(&o, ps, np, peak, &rng, &sum))) goto done;
    print_summary(&o, &sum);
done:
    free(ps);
    return rc;
}
