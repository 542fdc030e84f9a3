/* The memory budget of the commands whose allocations grow with their input
 * (--max-memory): they add up the bytes a run will hold at its peak, with
 * the library's overflow-checked size helpers, and refuse with one line
 * before allocating any of it. A small file can ask for a lot: a 4x4 input
 * with --padding 100000 makes a 596 GiB output, and a 300-byte PNG can
 * declare 16384 x 16384 pixels. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"

/* Half the physical memory: room for the rest of the machine, and a run
 * that fits never swaps. Never above the address-space limit (ulimit -v),
 * where the allocation would fail anyway. 4 GiB if the memory is unknown. */
static uint64_t default_limit(const char **source)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    uint64_t lim = UINT64_C(4) << 30;
    *source = "the default";
    if (pages > 0 && page > 0) {
        lim = (uint64_t)pages / 2 * (uint64_t)page;
        *source = "the default, half the RAM";
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (uint64_t)rl.rlim_cur < lim) {
        lim = (uint64_t)rl.rlim_cur;
        *source = "the default, the address-space limit of ulimit -v";
    }
    return lim;
}

uint64_t cli_mem_default_limit(void)
{
    const char *source;
    return default_limit(&source);
}

void cli_mem_init(cli_mem *m)
{
    memset(m, 0, sizeof *m);
    m->limit = default_limit(&m->source);
}

int cli_parse_bytes(const char *s, uint64_t *out)
{
    /* Digits with at most one '.', nothing strtod would also take
     * (exponents, hex, "inf"). */
    if (!s || !isdigit((unsigned char)*s)) return -1;
    size_t num = strspn(s, "0123456789.");
    const char *dot = memchr(s, '.', num);
    if (dot && memchr(dot + 1, '.', num - (size_t)(dot - s) - 1)) return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno == ERANGE || !isfinite(v) || end != s + num) return -1;
    double unit = 1;
    const char *units = "KMGT";
    const char *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
    if (u) {
        unit = ldexp(1.0, 10 * (int)(u - units + 1));
        end++;
        if (!strcmp(end, "iB")) end += 2;
    }
    if (!strcmp(end, "B")) end++;
    if (*end) return -1;
    v *= unit;
    /* 2^64 itself does not fit; a fraction of a byte is no budget. */
    if (!(v >= 1) || v >= 18446744073709551616.0) return -1;
    *out = (uint64_t)v;
    return 0;
}

int cli_mem_opt(const char *cmd, int argc, char **argv, int *i, cli_mem *m)
{
    const char *v;
    int r = cli_opt(cmd, argc, argv, i, "--max-memory", &v);
    if (r <= 0) return r;
    if (cli_parse_bytes(v, &m->limit)) {
        cli_usage(cmd,
                  "--max-memory expects a size in bytes >= 1 with an optional K, M, G or T "
                  "suffix (8G, 512M), got '%s'",
                  v);
        return -1;
    }
    m->source = "set by --max-memory";
    return 1;
}

void cli_mem_add(cli_mem *m, const char *what, uint64_t bytes)
{
    if (__builtin_add_overflow(m->need, bytes, &m->need)) m->overflow = 1;
    if (bytes > m->largest) {
        m->largest = bytes;
        snprintf(m->largest_what, sizeof m->largest_what, "%s", what);
    }
}

void cli_mem_add_shape(cli_mem *m, const char *what, int ndim, const int64_t *shape, size_t elem)
{
    char label[sizeof m->largest_what], sh[96];
    snprintf(label, sizeof label, "%s %s", what, cn_shape_str(ndim, shape, sh, sizeof sh));
    size_t n, bytes;
    if (cn_shape_numel(ndim, shape, &n) != CN_OK || cn_size_mul(n, elem, &bytes, what) != CN_OK) {
        /* More than any machine has: counted as an overflow, and named. */
        m->overflow = 1;
        m->largest = UINT64_MAX;
        snprintf(m->largest_what, sizeof m->largest_what, "%s", label);
        return;
    }
    cli_mem_add(m, label, bytes);
}

void cli_mem_add_tensor(cli_mem *m, const char *what, const cn_tensor *t)
{
    if (t) cli_mem_add_shape(m, what, t->ndim, t->shape, sizeof(float));
}

/* "1.5 GiB", "512.0 MiB", "300 bytes" */
static const char *human(uint64_t b, char *buf, size_t len)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (b < 1024) {
        snprintf(buf, len, "%llu bytes", (unsigned long long)b);
        return buf;
    }
    double v = (double)b / 1024;
    int u = 0;
    while (v >= 1024 && u < 5) v /= 1024, u++;
    snprintf(buf, len, "%.1f %s", v, units[u]);
    return buf;
}

int cli_mem_check(const char *cmd, const cli_mem *m)
{
    if (!m->overflow && m->need <= m->limit) return 0;
    char need[32], part[32], lim[32];
    const char *hint = strcmp(m->source, "set by --max-memory") ? "; see --max-memory" : "";
    if (m->overflow)
        return cli_fail(cmd,
                        "would need more memory than a 64-bit machine has (%s); the limit is "
                        "%s (%s%s)",
                        m->largest_what, human(m->limit, lim, sizeof lim), m->source, hint);
    return cli_fail(cmd, "would need %s of memory, %s of it for the %s; the limit is %s (%s%s)",
                    human(m->need, need, sizeof need), human(m->largest, part, sizeof part),
                    m->largest_what, human(m->limit, lim, sizeof lim), m->source, hint);
}
