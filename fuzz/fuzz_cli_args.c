/* Fuzzes the command line: the input is split at NUL bytes into words,
 * which become argv of `convnet WORD...` (tools/main.c, compiled with
 * -Dmain=convnet_main so the fuzzer keeps its own main), run in-process
 * through cli_run (convnet_main would re-execute the process).
 *
 * Only parsing may happen, never real work and never a write outside /tmp:
 * the run happens inside an empty directory of our own under /tmp, every
 * '/' in a word becomes '_' and every ".." loses its second dot, so each
 * path names a file in that directory, and none exists. Subcommands that
 * would work without any input file get guard options first (see guards[]):
 * `train` and `eval` get `--data nodata`, so their default (the real
 * Fashion-MNIST directory) is never loaded (a later --data of the input
 * still replaces it, but can only name something inside the empty
 * directory); `bench` gets `--compare onednn`, which every build without
 * oneDNN (the fuzz builds and the regression test never define
 * CN_HAVE_ONEDNN) refuses right after parsing, and which a later --compare
 * cannot undo. A new subcommand that does work without input files needs a
 * guard here. Every subcommand reads all its inputs before it writes
 * anything, so nothing is ever written; the directory is checked to be
 * still empty after each run.
 */
#include "fuzz.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int cli_run(int argc, char **argv);

#define CLI_MAX_WORDS 48

#ifdef CN_HAVE_ONEDNN
#error "fuzz_cli_args relies on `bench --compare onednn` failing: build it without oneDNN"
#endif

/* Options put right after these subcommands' names (see the top). */
static char opt_data[] = "--data", val_data[] = "nodata";
static char opt_compare[] = "--compare", val_compare[] = "onednn";
static const struct {
    const char *cmd;
    char *opt, *val;
} guards[] = {
    {"train", opt_data, val_data},
    {"eval", opt_data, val_data},
    {"bench", opt_compare, val_compare},
};

static char cli_dir[64];

static void cli_remove_dir(void)
{
    if (cli_dir[0]) rmdir(cli_dir);
}

static const char *cli_workdir(void)
{
    if (!cli_dir[0]) {
        strcpy(cli_dir, "/tmp/cn-fuzz-cli-XXXXXX");
        CN_FUZZ_CHECK(mkdtemp(cli_dir) != NULL);
        atexit(cli_remove_dir);
    }
    return cli_dir;
}

static int cli_dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return 0;
    int empty = 1;
    struct dirent *e;
    while (empty && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            fprintf(stderr, "fuzz_cli_args: the CLI created %s/%s\n", path, e->d_name);
            empty = 0;
        }
    closedir(d);
    return empty;
}

/* Confines a word to the working directory (see the top of the file). */
static void cli_confine(char *w)
{
    for (char *p = w; *p; p++) {
        if (*p == '/') *p = '_';
        if (p[0] == '.' && p[1] == '.') p[1] = '_';
    }
}

int cn_fuzz_cli_args(const uint8_t *data, size_t size)
{
    const char *dir = cli_workdir();
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    buf[size] = '\0';

    static char prog[] = "convnet";
    char *argv[CLI_MAX_WORDS + 4];
    int argc = 0;
    argv[argc++] = prog;
    for (size_t at = 0; at < size && argc < CLI_MAX_WORDS; at += strlen(buf + at) + 1) {
        cli_confine(buf + at);
        argv[argc++] = buf + at;
        for (size_t g = 0; argc == 2 && g < sizeof guards / sizeof guards[0]; g++)
            if (!strcmp(buf + at, guards[g].cmd)) {
                argv[argc++] = guards[g].opt;
                argv[argc++] = guards[g].val;
            }
    }
    argv[argc] = NULL;

    int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CN_FUZZ_CHECK(cwd >= 0);
    CN_FUZZ_CHECK(chdir(dir) == 0);
    int rc = cli_run(argc, argv);
    CN_FUZZ_CHECK(fchdir(cwd) == 0);
    close(cwd);
    fflush(stdout);
    /* 0, 1 after a one-line error, 2 after a usage error: nothing else. */
    CN_FUZZ_CHECK(rc == 0 || rc == 1 || rc == 2);
    CN_FUZZ_CHECK(cli_dir_is_empty(dir));
    free(buf);
    return 0;
}

CN_FUZZ_ENTRY(cn_fuzz_cli_args)
