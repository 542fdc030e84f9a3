/* Crash-safe checkpoints. `convnet train --save F` is killed (SIGKILL) at
 * random moments, many of them inside a save, and resumed from F each time:
 * F is always absent (before the first save) or a complete checkpoint that
 * loads, its epoch never goes back, temp files left by a kill are never F,
 * and the chain of killed and resumed runs ends bit-identical to one
 * uninterrupted run. A save that fails for lack of space (a file-size
 * limit: EFBIG; a full tmpfs where a private mount namespace is allowed:
 * ENOSPC) is one error line naming F and the cause, and leaves F as it was. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

/* ---- a small synthetic IDX dataset (as test_train) ------------------------ */



static const char *data_dir(void) { return tl_squares_dataset(64, 16); }

/* ---- helpers ------------------------------------------------------------- */


/* The whole file with a '\0' after it (caller frees), or NULL with *len 0
 * if it cannot be read. */
static unsigned char *slurp(const char *path, size_t *len)
{
    void *data = NULL;
    *len = 0;
    if (cn_file_read_all(path, (size_t)1 << 30, &data, len)) return NULL;
    unsigned char *p = realloc(data, *len + 1);
    if (!p) return free(data), *len = 0, NULL;
    p[*len] = '\0';
    return p;
}

/* Counts the temp files a save left next to path ("PATH.tmp.XXXXXX"). With
 * sweep set it also removes them and counts through *partial those that do
 * not open as a complete safetensors file. */
static int temp_files(const char *path, int sweep, int *partial)
{
    char dir[512], prefix[300];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) return 0;
    *slash = '\0';
    snprintf(prefix, sizeof prefix, "%s.tmp.", slash + 1);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    if (partial) *partial = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, strlen(prefix))) continue;
        n++;
        if (!sweep) continue;
        char full[1024];
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        cn_st_file *f;
        if (cn_st_open(full, &f))
            (*partial)++;
        else
            cn_st_close(f);
        unlink(full);
    }
    closedir(d);
    return n;
}

/* Starts CN_CLI with args (NULL-terminated, without the program name),
 * stdout to /dev/null and stderr to err_path. fsize_limit > 0 caps the size
 * of any file it writes (RLIMIT_FSIZE) with SIGXFSZ ignored, so an
 * oversized write fails with EFBIG instead of killing it. */
static pid_t spawn_cli(const char *const *args, const char *err_path, rlim_t fsize_limit)
{
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)CN_CLI;
    for (; args[n - 1] && n < 63; n++) argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    fflush(stdout);
    pid_t pid = fork();
    if (pid != 0) return pid;
    int out = open("/dev/null", O_WRONLY), err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(126);
    if (fsize_limit > 0) {
        struct rlimit rl = {fsize_limit, fsize_limit};
        signal(SIGXFSZ, SIG_IGN); /* survives exec */
        if (setrlimit(RLIMIT_FSIZE, &rl)) _exit(126);
    }
    execv(CN_CLI, argv);
    _exit(127);
}

static int wait_for(pid_t pid)
{
    int ws;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR) return -1;
    return ws;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* F's epoch, after checking that it opens, that the model loads from it and
 * that the metadata and the stored counter agree; -1 (and a message in why)
 * if anything is wrong. */
static long long checked_epoch(const char *path, char *why, size_t len)
{
    cn_st_file *f;
    if (cn_st_open(path, &f)) return snprintf(why, len, "open: %s", cn_last_error()), -1;
    char meta[32];
    snprintf(meta, sizeof meta, "%s", cn_st_meta(f, "epoch") ? cn_st_meta(f, "epoch") : "(none)");
    int64_t stored = -1;
    cn_status s = cn_st_read_i64(f, "train.epoch", &stored, 1);
    cn_st_close(f);
    if (s || atoll(meta) != stored)
        return snprintf(why, len, "epoch metadata '%s' vs train.epoch %lld", meta,
                        (long long)stored),
               -1;
    cn_model *m;
    if (cn_checkpoint_load_model(path, &m))
        return snprintf(why, len, "load: %s", cn_last_error()), -1;
    cn_model_free(m);
    return stored;
}

/* The training command shared by every run: tiny epochs (one step of 16,
 * 16 test images: ~30 ms on one core) so that saves (~15 ms with their
 * fsyncs on ext4) come many times a second and a good share of the kills
 * lands inside one. */
static int train_args(const char **a, const char *epochs, const char *save, const char *resume)
{
    int n = 0;
    const char *common[] = {"train",   "--data", data_dir(),   "--batch-size", "16",
                            "--limit", "16",     "--schedule", "constant",     "--threads",
                            "1",       "--seed", "5",          "--epochs",     epochs};
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) a[n++] = common[i];
    if (save) a[n++] = "--save", a[n++] = save;
    if (resume) a[n++] = "--resume", a[n++] = resume;
    a[n] = NULL;
    return n;
}

/* ---- the tests ----------------------------------------------------------- */

/* Three kinds of kill, in turn. Plain: a random 5-200 ms after the start
 * (startup, resume, training or a save). Aimed, at a save whatever the
 * file system's speed (tmpfs saves take well under a millisecond): after
 * 5-50 ms the test spins until a temp file appears, i.e. a save has begun
 * and not renamed yet, and kills at once. Steady: a random 5-200 ms after
 * the run's first save began, so that a slow start (a loaded machine, a
 * sanitizer build) does not turn every kill into one during startup. */
static void sigkill_at_random_moments_never_leaves_a_broken_checkpoint(void)
{
    enum { KILLS = 60 };
    char *F = tl_scratch("crash.safetensors"), *err = tl_scratch("crash.err");
    unsigned char *prev = NULL;
    size_t prev_len = 0;
    long long prev_epoch = -1;
    int existed = 0, unchanged = 0, advanced = 0, with_temp = 0, with_temp_aimed = 0,
        temp_partial = 0, self_exit = 0;
    /* One epoch first, so that every killed run resumes (and a loaded
     * machine whose runs start slowly still probes the saves). */
    const char *first[32];
    train_args(first, "1", F, NULL);
    const tl_cli_result *r0 = tl_cli_argv(first);
    CHECK(r0->status == 0, "first epoch failed: %s", r0->err);
    char why0[300];
    prev_epoch = checked_epoch(F, why0, sizeof why0);
    prev = slurp(F, &prev_len);
    CHECK(prev && prev_epoch == 1, "first checkpoint: epoch %lld: %s", prev_epoch, why0);
    double t0 = now_s();
    for (int k = 0; k < KILLS && tl_ok(); k++) {
        const char *args[32];
        struct stat st;
        train_args(args, "1000000", F, stat(F, &st) == 0 ? F : NULL);
        pid_t pid = spawn_cli(args, err, 0);
        CHECK(pid > 0, "fork: %s", strerror(errno));
        const int kind = k % 3; /* 0 plain, 1 aimed, 2 steady */
        int ms = kind == 1 ? tl_randint(5, 50) : tl_randint(5, 200);
        if (kind != 2) sleep_ms(ms);
        if (kind != 0)
            for (double t = now_s(); !temp_files(F, 0, NULL) && now_s() - t < 2;) {
            }
        if (kind == 2) sleep_ms(ms);
        kill(pid, SIGKILL);
        int ws = wait_for(pid);
        if (!(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL)) {
            /* It finished by itself before the kill: only a failure matters. */
            size_t n;
            char *msg = (char *)slurp(err, &n);
            CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "kill %d: run exited with %d: %.*s", k,
                  WIFEXITED(ws) ? WEXITSTATUS(ws) : -1, (int)n, msg ? msg : "");
            free(msg);
            self_exit++;
        }
        int partial = 0, temps = temp_files(F, 1, &partial);
        with_temp += temps > 0, with_temp_aimed += temps > 0 && kind == 1, temp_partial += partial;

        size_t len;
        unsigned char *now = slurp(F, &len);
        if (!now) {
            CHECK(!existed, "kill %d after %d ms: %s vanished", k, ms, F);
            continue;
        }
        existed = 1;
        char why[300];
        long long epoch = checked_epoch(F, why, sizeof why);
        CHECK(epoch >= 1, "kill %d after %d ms (%d temp files): %s is broken: %s", k, ms, temps, F,
              why);
        if (prev && len == prev_len && !memcmp(now, prev, len)) {
            unchanged++;
        } else {
            CHECK(epoch > prev_epoch, "kill %d: %s changed but went from epoch %lld to %lld", k, F,
                  prev_epoch, epoch);
            advanced++;
        }
        free(prev);
        prev = now, prev_len = len, prev_epoch = epoch;
    }
    free(prev);
    if (!tl_ok()) return;
    double secs = now_s() - t0;
    printf("  %d kills in %.1f s: %d landed inside a save (%d of them aimed; a temp file was "
           "left, %d of them incomplete), %d found the checkpoint advanced, %d unchanged, %d "
           "runs ended first; final epoch %lld\n",
           KILLS, secs, with_temp, with_temp_aimed, temp_partial, advanced, unchanged, self_exit,
           prev_epoch);
    CHECK(prev_epoch >= 1, "no checkpoint was ever written");
    CHECK(with_temp >= KILLS / 6,
          "only %d of %d kills landed inside a save: the test no longer probes it", with_temp,
          KILLS);

    /* The killed and resumed chain equals one uninterrupted run. */
    char epochs[32];
    snprintf(epochs, sizeof epochs, "%lld", prev_epoch);
    const char *args[32];
    char *ref = tl_scratch("uninterrupted.safetensors");
    train_args(args, epochs, ref, NULL);
    const tl_cli_result *r = tl_cli_argv(args);
    CHECK(r->status == 0, "uninterrupted run failed: %s", r->err);
    char why[300];
    CHECK(tl_same_checkpoint(F, ref, why, sizeof why),
          "%lld epochs killed and resumed %d times differ from an uninterrupted run: %s",
          prev_epoch, KILLS, why);
}

/* A first epoch saved normally, for the failure tests to start from. */
static const char *good_checkpoint(void)
{
    static char good[512];
    if (!good[0]) {
        tl_path(good, sizeof good, "good.safetensors");
        const char *args[32];
        train_args(args, "1", good, NULL);
        const tl_cli_result *r = tl_cli_argv(args);
        if (r->status) printf("  first epoch failed: %s", r->err);
    }
    return good;
}

static void a_save_past_the_file_size_limit_fails_in_one_line_and_keeps_the_old_file(void)
{
    size_t good_len, len;
    unsigned char *good = slurp(good_checkpoint(), &good_len);
    CHECK(good && good_len > 100000, "no first checkpoint");
    char *F = tl_scratch("limited.safetensors"), *err = tl_scratch("limited.err");
    CHECK_OK(cn_file_write_atomic(F, good, good_len));
    const char *args[32];
    train_args(args, "2", F, F);
    pid_t pid = spawn_cli(args, err, 64 << 10);
    CHECK(pid > 0, "fork: %s", strerror(errno));
    int ws = wait_for(pid);
    char *msg = (char *)slurp(err, &len);
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += msg[i] == '\n';
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 1, "exit status %d (signal %d): %.*s",
          WIFEXITED(ws) ? WEXITSTATUS(ws) : -1, WIFSIGNALED(ws) ? WTERMSIG(ws) : 0, (int)len,
          msg ? msg : "");
    CHECK(lines == 1 && strstr(msg, "convnet train: ") && strstr(msg, F) &&
              strstr(msg, strerror(EFBIG)),
          "want one line naming %s and '%s': %.*s", F, strerror(EFBIG), (int)len, msg);
    printf("  %.*s", (int)len, msg);
    free(msg);
    unsigned char *after = slurp(F, &len);
    CHECK(after && len == good_len && !memcmp(after, good, len), "%s changed", F);
    free(after), free(good);
    char why[300];
    CHECK(checked_epoch(F, why, sizeof why) == 1, "%s: %s", F, why);
    int partial;
    CHECK(temp_files(F, 1, &partial) == 0, "the failed save left a temp file");
}

static void a_save_onto_a_full_file_system_fails_in_one_line_and_keeps_the_old_file(void)
{
    /* A 1 MiB-ish tmpfs holding the old checkpoint with less room left than
     * a new one needs, mounted in a private user and mount namespace
     * (unshare -rm), so no root and no trace outside the test. */
    size_t good_len, len;
    unsigned char *good = slurp(good_checkpoint(), &good_len);
    CHECK(good, "no first checkpoint");
    free(good);
    if (system("unshare -rm true >/dev/null 2>&1") != 0) {
        printf("  skipped: unshare -rm is not permitted here\n");
        return;
    }
    char *dir = tl_scratch("full"), *err = tl_scratch("full.err"), *after = tl_scratch("full.after"),
         *listing = tl_scratch("full.ls"), *rc = tl_scratch("full.rc");
    mkdir(dir, 0755);
    const char *args[32];
    char F[600];
    snprintf(F, sizeof F, "%s/ckpt.safetensors", dir);
    int n = train_args(args, "2", F, F);
    char cmd[4096];
    int at = snprintf(cmd, sizeof cmd,
                      "unshare -rm sh -c 'mount -t tmpfs -o size=%zuk cnfull \"%s\" || exit 99; "
                      "cp \"%s\" \"%s\" || exit 98; \"%s\"",
                      (good_len >> 10) + 48, dir, good_checkpoint(), F, CN_CLI);
    for (int i = 0; i < n; i++)
        at += snprintf(cmd + at, sizeof cmd - (size_t)at, " \"%s\"", args[i]);
    snprintf(cmd + at, sizeof cmd - (size_t)at,
             " >/dev/null 2>\"%s\"; echo $? >\"%s\"; cp \"%s\" \"%s\"; ls -a \"%s\" >\"%s\"'", err,
             rc, F, after, dir, listing);
    int st = system(cmd);
    char *code = (char *)slurp(rc, &len);
    if (st != 0 || !code) {
        printf("  skipped: could not mount a tmpfs in a private namespace (%d)\n", st);
        free(code);
        return;
    }
    char *msg = (char *)slurp(err, &len);
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += msg[i] == '\n';
    CHECK(atoi(code) == 1, "exit status %s: %.*s", code, (int)len, msg ? msg : "");
    CHECK(lines == 1 && strstr(msg, "convnet train: ") && strstr(msg, F) &&
              strstr(msg, strerror(ENOSPC)),
          "want one line naming %s and '%s': %.*s", F, strerror(ENOSPC), (int)len, msg);
    printf("  %.*s", (int)len, msg);
    free(code), free(msg);
    char why[300];
    CHECK(tl_same_checkpoint(after, good_checkpoint(), why, sizeof why), "the old checkpoint changed: %s",
          why);
    CHECK(checked_epoch(after, why, sizeof why) == 1, "%s", why);
    char *ls = (char *)slurp(listing, &len);
    CHECK(ls && !strstr(ls, ".tmp."), "a temp file was left on the full file system: %s", ls);
    free(ls);
}

int main(void)
{
    TL_RUN(sigkill_at_random_moments_never_leaves_a_broken_checkpoint);
    TL_RUN(a_save_past_the_file_size_limit_fails_in_one_line_and_keeps_the_old_file);
    TL_RUN(a_save_onto_a_full_file_system_fails_in_one_line_and_keeps_the_old_file);
    return tl_summary();
}
