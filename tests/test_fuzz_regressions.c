/* The fuzz targets' entry points (fuzz/fuzz_*.c), built normally, on every
 * file in fuzz/regressions/NAME/ - inputs that once crashed a target, or
 * were built to reach a corner - and on the seed corpora fuzz/corpus/NAME/.
 * A broken promise aborts inside the entry point (CN_FUZZ_CHECK), so a
 * regression shows as this test crashing right after printing the file's
 * name; under make test-sanitize the same inputs also meet ASan and UBSan.
 * New crashes from `make fuzz` (build-fuzz/artifacts/) belong in
 * fuzz/regressions/NAME/ once fixed. */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../fuzz/fuzz.h"
#include "testlib.h"

typedef int (*fuzz_fn)(const uint8_t *, size_t);

/* Runs fn on every regular file in dir (sorted, so runs repeat exactly);
 * returns the number of files, or -1 if dir cannot be read. */
static int replay(const char *dir, fuzz_fn fn, int quiet)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) return -1;
    int count = 0;
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        struct stat st;
        void *data = NULL;
        size_t len = 0;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
            cn_file_read_all(path, (size_t)1 << 24, &data, &len) == CN_OK) {
            printf("  %s\n", path);
            fflush(stdout);
            /* The CLI's usage texts would drown the file names: its stdout
             * goes to /dev/null (stderr stays, for sanitizer reports). */
            int saved = quiet ? dup(1) : -1, null = quiet ? open("/dev/null", O_WRONLY) : -1;
            if (saved >= 0 && null >= 0) dup2(null, 1);
            fn(data, len);
            fflush(stdout);
            if (saved >= 0) {
                dup2(saved, 1);
                close(saved);
            }
            if (null >= 0) close(null);
            free(data);
            count++;
        }
        free(names[i]);
    }
    free(names);
    return count;
}

static void replay_target(const char *name, fuzz_fn fn)
{
    char dir[512];
    int quiet = !strcmp(name, "cli_args");
    snprintf(dir, sizeof dir, "%s/fuzz/corpus/%s", CN_SOURCE_DIR, name);
    int seeds = replay(dir, fn, quiet);
    CHECK(seeds > 0, "%s: no seed files", dir);
    snprintf(dir, sizeof dir, "%s/fuzz/regressions/%s", CN_SOURCE_DIR, name);
    CHECK(replay(dir, fn, quiet) > 0, "%s: no files (or cannot read the directory)", dir);
}

static void npy_inputs_replay_cleanly(void) { replay_target("npy", cn_fuzz_npy); }
static void idx_inputs_replay_cleanly(void) { replay_target("idx", cn_fuzz_idx); }
static void safetensors_inputs_replay_cleanly(void)
{
    replay_target("safetensors", cn_fuzz_safetensors);
}
static void image_inputs_replay_cleanly(void) { replay_target("image", cn_fuzz_image); }
static void cli_args_inputs_replay_cleanly(void) { replay_target("cli_args", cn_fuzz_cli_args); }

/* The seeds are worth having only if the valid ones really are valid: every
 * bad_* seed must be refused, odd_* ones may go either way (stb decodes
 * some truncated files), all others must decode. */
static void seed_corpora_are_valid_except_bad_ones(void)
{
    static const char *const formats[] = {"npy", "idx", "safetensors", "image"};
    for (size_t k = 0; k < sizeof formats / sizeof formats[0]; k++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/fuzz/corpus/%s", CN_SOURCE_DIR, formats[k]);
        struct dirent **names;
        int n = scandir(dir, &names, NULL, alphasort);
        CHECK(n > 0, "%s: cannot read the directory", dir);
        int failed = 0;
        for (int i = 0; i < n; i++) {
            const char *f = names[i]->d_name;
            if (f[0] != '.' && strncmp(f, "odd_", 4) != 0) {
                char path[1024];
                snprintf(path, sizeof path, "%s/%s", dir, f);
                cn_status s = CN_OK;
                if (k == 0) {
                    cn_tensor *t = NULL;
                    s = cn_npy_read(path, &t);
                    cn_tensor_free(t);
                } else if (k == 1) {
                    cn_idx *a = NULL;
                    s = cn_idx_read(path, &a);
                    cn_idx_free(a);
                } else if (k == 2) {
                    cn_st_file *st = NULL;
                    s = cn_st_open(path, &st);
                    cn_st_close(st);
                } else {
                    cn_tensor *t = NULL;
                    s = cn_image_read(path, 0, &t);
                    cn_tensor_free(t);
                }
                int bad = !strncmp(f, "bad_", 4);
                if ((s == CN_OK) == bad) {
                    tl_fail(__FILE__, __LINE__, "%s: %s (%s)", path,
                            bad ? "decodes, but is meant to be refused" : "is refused",
                            s ? cn_last_error() : "ok");
                    failed = 1;
                }
            }
            free(names[i]);
        }
        free(names);
        if (failed) return;
    }
}

int main(void)
{
    TL_RUN(seed_corpora_are_valid_except_bad_ones);
    TL_RUN(npy_inputs_replay_cleanly);
    TL_RUN(idx_inputs_replay_cleanly);
    TL_RUN(safetensors_inputs_replay_cleanly);
    TL_RUN(image_inputs_replay_cleanly);
    TL_RUN(cli_args_inputs_replay_cleanly);
    return tl_summary();
}
