#define _XOPEN_SOURCE 700 /* nftw */
#include "testlib.h"

#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <time.h>

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#ifndef CN_CLI
#define CN_CLI "convnet"
#endif

static int n_passed, n_failed, cur_failed, tmp_made;
static const char *cur_name = "";
static cn_ctx rng_ctx;
static int rng_ready;
static uint64_t rng_salt;

/* Seeds the generator from CN_TEST_SEED (or 1), name (FNV-1a) and the salt. */
static void rng_reseed(const char *name)
{
    const char *s = getenv("CN_TEST_SEED");
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (; *name; name++) h = (h ^ (unsigned char)*name) * UINT64_C(0x100000001b3);
    cn_ctx_init(&rng_ctx);
    cn_rng_seed(&rng_ctx, (s ? strtoull(s, NULL, 10) : 1) ^ h ^
                              rng_salt * UINT64_C(0x9e3779b97f4a7c15));
    rng_ready = 1;
}

cn_ctx *tl_rng(void)
{
    if (!rng_ready) rng_reseed("");
    return &rng_ctx;
}

void tl_salt(uint64_t salt) { rng_salt = salt; }

void tl_run(const char *name, void (*fn)(void))
{
    cur_name = name;
    cur_failed = 0;
    rng_reseed(name);
    fn();
    if (cur_failed) {
        n_failed++;
        printf("FAIL %s\n", name);
    } else {
        n_passed++;
        printf("ok   %s\n", name);
    }
    fflush(stdout);
}

int tl_ok(void) { return !cur_failed; }

void tl_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  %s:%d: %s: ", file, line, cur_name);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    cur_failed = 1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int tl_summary(void)
{
    /* Keep the scratch files of a failed run for inspection. */
    if (!n_failed && tmp_made) nftw(tl_tmpdir(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}

int tl_randint(int lo, int hi) { return lo + (int)(cn_rng_u64(tl_rng()) % (uint64_t)(hi - lo + 1)); }
double tl_uniform(double lo, double hi) { return lo + (hi - lo) * cn_rng_uniform(tl_rng()); }

void tl_fill(float *a, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) a[i] = (float)tl_uniform(lo, hi);
}
void tl_fill_d(double *a, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) a[i] = tl_uniform(lo, hi);
}
void tl_f2d(const float *a, double *b, size_t n)
{
    for (size_t i = 0; i < n; i++) b[i] = a[i];
}
void tl_d2f(const double *a, float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) b[i] = (float)a[i];
}

long tl_mismatch_d(const double *got, const double *ref, size_t n, double atol, double rtol,
                   double *max_err)
{
    long first = -1;
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(got[i] - ref[i]);
        if (!(e <= atol + rtol * fabs(ref[i]))) {
            if (first < 0) first = (long)i;
            if (isnan(e)) e = INFINITY;
        }
        if (e > m) m = e;
    }
    if (max_err) *max_err = m;
    return first;
}

long tl_mismatch(const float *got, const double *ref, size_t n, double atol, double rtol,
                 double *max_err)
{
    long first = -1;
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]);
        if (!(e <= atol + rtol * fabs(ref[i]))) {
            if (first < 0) first = (long)i;
            if (isnan(e)) e = INFINITY;
        }
        if (e > m) m = e;
    }
    if (max_err) *max_err = m;
    return first;
}

const char *tl_tmpdir(void)
{
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/cn-test-XXXXXX");
        if (!mkdtemp(dir)) snprintf(dir, sizeof dir, "/tmp");
        else tmp_made = 1;
    }
    return dir;
}

char *tl_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tl_tmpdir(), name);
    return buf;
}

/* ---- running the CLI ---------------------------------------------------- */

static tl_cli_result last;

static void slurp(const char *path, char *buf, size_t len, int *lines)
{
    buf[0] = '\0';
    if (lines) *lines = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    if (lines) {
        int c;
        rewind(f);
        while ((c = fgetc(f)) != EOF) *lines += c == '\n';
    }
    fclose(f);
}

/* Runs CN_CLI with the given arguments (an array ending in NULL). */
const tl_cli_result *tl_cli_argv(const char *const *args)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = CN_CLI;
    for (; args[n - 1] && n < 63; n++) argv[n] = args[n - 1];
    argv[n] = NULL;
    return tl_spawn_argv(argv);
}

/* run("conv2d", "--input", x, ..., NULL) */
const tl_cli_result *tl_cli(const char *first, ...)
{
    const char *args[64];
    int n = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && n < 63; a = va_arg(ap, const char *)) args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    return tl_cli_argv(args);
}


/* ---- running other programs --------------------------------------------- */

int tl_have_program(const char *name)
{
    const char *path = getenv("PATH");
    if (!path || strchr(name, '/')) return access(name, X_OK) == 0;
    char buf[1024];
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, p, name);
        if (n && access(buf, X_OK) == 0) return 1;
        p += n + (p[n] == ':');
    }
    return 0;
}

/* last's status from the child's wait status, and its captured output. */
static const tl_cli_result *finish(int ws, const char *out_path, const char *err_path)
{
    if (WIFSIGNALED(ws)) {
        last.crashed = 1;
        last.status = 128 + WTERMSIG(ws);
    } else {
        last.status = WEXITSTATUS(ws);
    }
    slurp(out_path, last.out, sizeof last.out, NULL);
    slurp(err_path, last.err, sizeof last.err, &last.err_lines);
    return &last;
}

const tl_cli_result *tl_spawn_argv(const char *const *args)
{
    char out_path[512], err_path[512];
    tl_path(out_path, sizeof out_path, "stdout.txt");
    tl_path(err_path, sizeof err_path, "stderr.txt");
    char *argv[64];
    int n = 0;
    for (; n < 63 && args[n]; n++) argv[n] = (char *)args[n];
    argv[n] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    memset(&last, 0, sizeof last);
    int e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e != 0) {
        last.status = 127;
        last.crashed = 1;
        snprintf(last.err, sizeof last.err, "posix_spawnp %s failed: %s", argv[0], strerror(e));
        return &last;
    }
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0) {}
    return finish(ws, out_path, err_path);
}

/* ---- running under limits --------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define TL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TL_ASAN 1
#endif
#endif
#ifndef TL_ASAN
#define TL_ASAN 0
#endif

int tl_asan(void) { return TL_ASAN; }

/* The child's RLIMIT_AS: none under ASan, whose shadow memory reserves
 * terabytes, where the child instead gets allocator_may_return_null=1. */
static uint64_t child_address_space(const tl_limits *lim)
{
#if TL_ASAN
    (void)lim;
    const char *o = getenv("ASAN_OPTIONS");
    if (!o || !strstr(o, "allocator_may_return_null")) {
        char opts[1024];
        snprintf(opts, sizeof opts, "allocator_may_return_null=1%s%s", o && *o ? ":" : "",
                 o ? o : "");
        setenv("ASAN_OPTIONS", opts, 1);
    }
    return 0;
#else
    return lim ? lim->address_space : 0;
#endif
}

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

const tl_cli_result *tl_spawn_limited(const char *const *args, const tl_limits *lim)
{
    char out_path[512], err_path[512];
    tl_path(out_path, sizeof out_path, "stdout.txt");
    tl_path(err_path, sizeof err_path, "stderr.txt");
    char *argv[64];
    int n = 0;
    for (; n < 63 && args[n]; n++) argv[n] = (char *)args[n];
    argv[n] = NULL;
    uint64_t as = child_address_space(lim);
    memset(&last, 0, sizeof last);
    /* Opened here, so that the child only dup2s: between fork and exec it
     * calls async-signal-safe functions alone. */
    int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    double t0 = now_seconds();
    pid_t pid = fo < 0 || fe < 0 ? -1 : fork();
    if (pid == 0) {
        if (as) {
            struct rlimit rl = {(rlim_t)as, (rlim_t)as};
            setrlimit(RLIMIT_AS, &rl);
        }
        dup2(fo, 1), dup2(fe, 2);
        close(fo), close(fe);
        execvp(argv[0], argv);
        _exit(127);
    }
    if (fo >= 0) close(fo);
    if (fe >= 0) close(fe);
    if (pid < 0) {
        last.status = 127;
        last.crashed = 1;
        snprintf(last.err, sizeof last.err, "cannot start %s: %s", argv[0], strerror(errno));
        return &last;
    }
    int ws = 0;
    for (;;) {
        pid_t r = waitpid(pid, &ws, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR)) break;
        if (lim && lim->seconds > 0 && now_seconds() - t0 > lim->seconds && !last.timed_out) {
            kill(pid, SIGKILL);
            last.timed_out = 1;
        }
        struct timespec nap = {0, 1000000};
        nanosleep(&nap, NULL);
    }
    last.seconds = now_seconds() - t0;
    return finish(ws, out_path, err_path);
}

const tl_cli_result *tl_cli_limited(const char *const *args, const tl_limits *lim)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = CN_CLI;
    for (; n < 63 && args[n - 1]; n++) argv[n] = args[n - 1];
    argv[n] = NULL;
    return tl_spawn_limited(argv, lim);
}

/* ---- a synthetic IDX dataset ------------------------------------------- */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static void make_split(const char *dir, const char *prefix, int n)
{
    size_t isz = 16 + (size_t)n * 784, lsz = 8 + (size_t)n;
    unsigned char *img = calloc(isz, 1), *lab = calloc(lsz, 1);
    put_be32(img, 0x803), put_be32(img + 4, (uint32_t)n), put_be32(img + 8, 28), put_be32(img + 12, 28);
    put_be32(lab, 0x801), put_be32(lab + 4, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        int k = tl_randint(0, 9), y0 = 3 + (k / 5) * 12, x0 = 1 + (k % 5) * 5;
        lab[8 + i] = (unsigned char)k;
        unsigned char *p = img + 16 + (size_t)i * 784;
        for (int j = 0; j < 784; j++) p[j] = (unsigned char)tl_randint(0, 60);
        for (int y = y0; y < y0 + 6; y++)
            for (int x = x0; x < x0 + 6 && x < 28; x++) p[y * 28 + x] = (unsigned char)tl_randint(180, 255);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, prefix);
    cn_file_write_atomic(path, img, isz);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, prefix);
    cn_file_write_atomic(path, lab, lsz);
    free(img), free(lab);
}

const char *tl_squares_dataset(int n_train, int n_test)
{
    static char dirs[4][512];
    static int sizes[4][2], made;
    for (int i = 0; i < made; i++)
        if (sizes[i][0] == n_train && sizes[i][1] == n_test) return dirs[i];
    int i = made < 4 ? made++ : 3;
    char name[64];
    snprintf(name, sizeof name, "idx-%d-%d", n_train, n_test);
    tl_path(dirs[i], sizeof dirs[i], name);
    sizes[i][0] = n_train, sizes[i][1] = n_test;
    if (mkdir(dirs[i], 0755) == 0) {
        make_split(dirs[i], "train", n_train);
        make_split(dirs[i], "t10k", n_test);
    }
    return dirs[i];
}

char *tl_scratch(const char *name)
{
    static char bufs[16][512];
    static int next;
    char *b = bufs[next++ % 16];
    return tl_path(b, 512, name);
}

/* ---- comparing checkpoints --------------------------------------------- */

int tl_same_checkpoint(const char *a, const char *b, char *why, size_t len)
{
    cn_st_file *fa, *fb;
    if (cn_st_open(a, &fa)) return snprintf(why, len, "%s", cn_last_error()), 0;
    if (cn_st_open(b, &fb)) return cn_st_close(fa), snprintf(why, len, "%s", cn_last_error()), 0;
    int same = cn_st_count(fa) == cn_st_count(fb);
    if (!same) snprintf(why, len, "tensor counts differ");
    for (size_t i = 0; same && i < cn_st_count(fa); i++) {
        cn_st_info ia, ib;
        const char *name = cn_st_name(fa, i);
        same = cn_st_get(fb, name, &ib) == CN_OK && cn_st_get(fa, name, &ia) == CN_OK &&
               ia.nbytes == ib.nbytes && (!ia.nbytes || !memcmp(ia.data, ib.data, ia.nbytes));
        if (!same) snprintf(why, len, "tensor '%s' differs", name);
    }
    cn_st_close(fa), cn_st_close(fb);
    return same;
}
