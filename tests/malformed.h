/* tests/malformed.h - what the malformed-file tests share
 * (test_malformed_cli.c: .npy, safetensors, IDX; test_malformed_images.c):
 * byte buffers, a corpus of variants made from valid seeds with the seeded
 * generator (CN_TEST_SEED), the damage any file can suffer, and the runner
 * that feeds each variant to a CLI command under limits and checks the
 * error contract.
 *
 * Every run must end with exit status 1 or 2 and exactly one non-empty
 * stderr line naming the problem - or, for a variant that is still a valid
 * file (a flipped pixel), exit 0 and silence - within seconds, under an
 * address-space limit (RLIMIT_AS, not under ASan), never by a signal.
 * Variants built to be malformed must fail. A sample runs by default
 * (CN_MALFORMED_RUNS=N per format, or "all"; CN_MALFORMED_VERBOSE=1 prints
 * every run). */
#ifndef CN_TESTS_MALFORMED_H
#define CN_TESTS_MALFORMED_H

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "testlib.h"

/* Plain static functions (inline would change how gcc inlines them and
 * what it then warns about), each used by one or both of the tests. */
#define MAL_SHARED __attribute__((unused))

/* ---- byte buffers ------------------------------------------------------- */

typedef struct bytes {
    unsigned char *p;
    size_t n, cap;
} bytes;

static MAL_SHARED void reserve(bytes *b, size_t more)
{
    if (b->n + more <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + more) cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (!p) abort(); /* the test's own memory */
    b->p = p, b->cap = cap;
}

static MAL_SHARED void put(bytes *b, const void *p, size_t n)
{
    reserve(b, n + 1);
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}

static MAL_SHARED void put8(bytes *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    put(b, &c, 1);
}

static MAL_SHARED void put_str(bytes *b, const char *s) { put(b, s, strlen(s)); }

static MAL_SHARED void putf(bytes *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static MAL_SHARED void putf(bytes *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

static MAL_SHARED void set_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}
static MAL_SHARED void set_le16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8);
}
static MAL_SHARED void set_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> 8 * i);
}
static MAL_SHARED void set_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> 8 * i);
}
static MAL_SHARED uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static MAL_SHARED void put_be32(bytes *b, uint32_t v)
{
    unsigned char q[4];
    set_be32(q, v);
    put(b, q, 4);
}

static MAL_SHARED bytes copy_of(const unsigned char *p, size_t n)
{
    bytes b = {0};
    put(&b, p, n);
    return b;
}

static MAL_SHARED bytes splice(const bytes *src, size_t at, size_t drop, const void *ins, size_t n)
{
    bytes b = {0};
    put(&b, src->p, at);
    put(&b, ins, n);
    if (at + drop < src->n) put(&b, src->p + at + drop, src->n - at - drop);
    return b;
}

static MAL_SHARED size_t rnd(size_t n) { return n ? (size_t)(cn_rng_u64(tl_rng()) % n) : 0; }

/* ---- the corpus --------------------------------------------------------- */

typedef struct variant {
    char what[160]; /* how it was made: "shape (46341, 46341, 1, 1)" */
    bytes data;
    int role;      /* which argument or file it replaces (per format) */
    int must_fail; /* malformed by construction: exit 0 is wrong too */
    int essential; /* run even when sampling */
} variant;

typedef struct corpus {
    const char *format;
    variant *v;
    int n, cap;
} corpus;

static MAL_SHARED variant *add(corpus *c, int role, int must_fail, bytes data, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static MAL_SHARED variant *add(corpus *c, int role, int must_fail, bytes data, const char *fmt, ...)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 256;
        c->v = realloc(c->v, (size_t)c->cap * sizeof *c->v);
        if (!c->v) abort();
    }
    variant *v = &c->v[c->n++];
    memset(v, 0, sizeof *v);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->what, sizeof v->what, fmt, ap);
    va_end(ap);
    v->data = data;
    v->role = role;
    v->must_fail = must_fail;
    return v;
}

static MAL_SHARED void corpus_free(corpus *c)
{
    for (int i = 0; i < c->n; i++) free(c->v[i].data.p);
    free(c->v);
    memset(c, 0, sizeof *c);
}

/* The damage any file can suffer: a cut at each of cuts[] (malformed when
 * cuts_fail) and at random places, bit flips (most within the first `head`
 * bytes, where the structure is), 1-8 bytes stamped with 0x00, 0xff, 0x7f,
 * 0x80 or noise, and bytes after the end (malformed when tail_fails). */
static MAL_SHARED void damage(corpus *c, int role, const bytes *seed, const char *name,
                              const size_t *cuts, int ncuts, int cuts_fail, size_t head, int flips,
                              int stamps, int tail_fails)
{
    if (!head || head > seed->n) head = seed->n;
    for (int i = 0; i < ncuts; i++) {
        int dup = cuts[i] >= seed->n;
        for (int j = 0; j < i && !dup; j++) dup = cuts[j] == cuts[i];
        if (!dup)
            add(c, role, cuts_fail, copy_of(seed->p, cuts[i]), "%s cut to %zu of %zu bytes", name,
                cuts[i], seed->n);
    }
    for (int i = 0; i < 6; i++) {
        size_t at = 1 + rnd(seed->n - 1);
        add(c, role, 0, copy_of(seed->p, at), "%s cut to %zu of %zu bytes", name, at, seed->n);
    }
    for (int i = 0; i < flips; i++) {
        bytes b = copy_of(seed->p, seed->n);
        int k = 1 + (int)rnd(8);
        size_t first = 0;
        for (int j = 0; j < k; j++) {
            size_t at = rnd(4) ? rnd(head) : rnd(b.n);
            b.p[at] ^= (unsigned char)(1u << rnd(8));
            if (!j) first = at;
        }
        add(c, role, 0, b, "%s with %d bit flip(s), first at byte %zu", name, k, first);
    }
    static const int stamp_values[] = {0x00, 0xff, 0x7f, 0x80, -1};
    for (int i = 0; i < stamps; i++) {
        bytes b = copy_of(seed->p, seed->n);
        size_t w = (size_t)1 << rnd(4), at = rnd(head);
        int v = stamp_values[rnd(5)];
        for (size_t j = at; j < at + w && j < b.n; j++)
            b.p[j] = (unsigned char)(v < 0 ? rnd(256) : (size_t)v);
        add(c, role, 0, b, "%s with bytes %zu..%zu set to %s", name, at, at + w - 1,
            v < 0       ? "noise"
            : v == 0    ? "0x00"
            : v == 0xff ? "0xff"
            : v == 0x7f ? "0x7f"
                        : "0x80");
    }
    bytes b = copy_of(seed->p, seed->n);
    put8(&b, 0);
    add(c, role, tail_fails, b, "%s with a byte after the end", name);
    b = copy_of(seed->p, seed->n);
    for (int i = 0; i < 4096; i++) put8(&b, (unsigned)rnd(256));
    add(c, role, tail_fails, b, "%s with 4 KiB of noise after the end", name);
}

/* ---- running the variants ------------------------------------------------ */

/* Writes the variant where the command will read it and returns the
 * command's arguments (after "convnet"). */
typedef const char *const *(*stage_fn)(const variant *v);

typedef struct tally {
    int run, refused, accepted, bad;
    double slowest;
    char slowest_what[160];
} tally;

static MAL_SHARED const tl_limits *limits(void)
{
    /* Whatever a malformed file asks for, nothing here may need more than
     * 1 GiB or a few seconds (ASan's own slowness and bookkeeping aside). */
    static tl_limits lim;
    lim.seconds = tl_asan() ? 30 : 10;
    lim.address_space = UINT64_C(1) << 30;
    return &lim;
}

/* The error contract; NULL when r keeps it, else why not. */
static MAL_SHARED const char *broken(const tl_cli_result *r, int must_fail, char *why, size_t len)
{
    if (r->timed_out) return snprintf(why, len, "still running after %.1f s", r->seconds), why;
    if (r->crashed) return snprintf(why, len, "killed by signal %d", r->status - 128), why;
    if (r->status == 0) {
        if (must_fail) return snprintf(why, len, "exit 0 for a malformed file"), why;
        if (r->err[0]) return snprintf(why, len, "exit 0 with stderr '%.300s'", r->err), why;
        return NULL;
    }
    if (r->status != 1 && r->status != 2)
        return snprintf(why, len, "exit status %d, not 1 or 2: '%.300s'", r->status, r->err), why;
    size_t n = strlen(r->err);
    if (r->err_lines != 1 || n < 2 || r->err[n - 1] != '\n' || strncmp(r->err, "convnet ", 8) ||
        n < 20)
        return snprintf(why, len,
                        "exit %d with %d stderr lines, not one 'convnet ...' line: '%.300s'",
                        r->status, r->err_lines, r->err),
               why;
    return NULL;
}

/* How many variants of each format run: CN_MALFORMED_RUNS (a number, or
 * "all"), else 200 (40 under ASan, which is slower). */
static MAL_SHARED int budget(void)
{
    const char *e = getenv("CN_MALFORMED_RUNS");
    if (e && !strcmp(e, "all")) return 1 << 30;
    if (e && atoi(e) > 0) return atoi(e);
    return tl_asan() ? 40 : 200;
}

/* Runs the essential variants and a random sample of the rest, checks each
 * against the contract, and prints the tally. */
static MAL_SHARED void run_corpus(corpus *c, stage_fn stage)
{
    int n = c->n, want = budget(), *order = malloc((size_t)n * sizeof *order), m = 0;
    if (!order) abort();
    for (int i = 0; i < n; i++)
        if (c->v[i].essential) order[m++] = i;
    int ness = m;
    for (int i = 0; i < n; i++)
        if (!c->v[i].essential) order[m++] = i;
    for (int i = ness; i < n; i++) { /* shuffle the rest */
        int j = i + (int)rnd((size_t)(n - i)), t = order[i];
        order[i] = order[j], order[j] = t;
    }
    int runs = want > ness ? (want < n ? want : n) : ness;
    tally t = {0};
    int must = 0;
    for (int i = 0; i < n; i++) must += c->v[i].must_fail;
    for (int k = 0; k < runs; k++) {
        const variant *v = &c->v[order[k]];
        const tl_cli_result *r = tl_cli_limited(stage(v), limits());
        char why[512];
        if (getenv("CN_MALFORMED_VERBOSE"))
            printf("    %.3f s  exit %d  %s\n", r->seconds, r->status, v->what);
        t.run++;
        if (r->seconds > t.slowest) {
            t.slowest = r->seconds;
            snprintf(t.slowest_what, sizeof t.slowest_what, "%s", v->what);
        }
        if (broken(r, v->must_fail, why, sizeof why)) {
            if (t.bad++ < 20)
                tl_fail(__FILE__, __LINE__, "%s: %s: %s (CN_TEST_SEED=%s)", c->format, v->what, why,
                        getenv("CN_TEST_SEED") ? getenv("CN_TEST_SEED") : "1");
        } else if (r->status) {
            t.refused++;
        } else {
            t.accepted++;
        }
    }
    printf("  %s: %d variants (%d malformed by construction, %d essential), ran %d: %d refused "
           "with one line, %d still valid, %d broke the contract; slowest %.2f s (%s)\n",
           c->format, n, must, ness, t.run, t.refused, t.accepted, t.bad, t.slowest,
           t.slowest_what);
    fflush(stdout);
    free(order);
}

static MAL_SHARED void write_file(const char *path, const bytes *b)
{
    FILE *f = fopen(path, "wb");
    if (!f || (b->n && fwrite(b->p, 1, b->n, f) != b->n)) abort();
    fclose(f);
}

/* A gzip (wbits 31) or zlib (15) stream of head followed by `zeros` zero
 * bytes, deflated in pieces so that the zeros never exist in memory. */
static MAL_SHARED bytes deflate_zeros(const void *head, size_t hn, size_t zeros, int wbits)
{
    static unsigned char zero[1 << 16];
    bytes out = {0};
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 9, Z_DEFLATED, wbits, 9, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    int flush = Z_NO_FLUSH;
    const unsigned char *p = head;
    size_t left = hn, zl = zeros;
    do {
        if (z.avail_in == 0) {
            if (left) {
                z.next_in = (Bytef *)(uintptr_t)p, z.avail_in = (uInt)left, left = 0;
            } else if (zl) {
                size_t k = zl < sizeof zero ? zl : sizeof zero;
                z.next_in = zero, z.avail_in = (uInt)k, zl -= k;
            }
            if (!left && !zl) flush = Z_FINISH;
        }
        reserve(&out, 1 << 16);
        z.next_out = out.p + out.n;
        z.avail_out = 1 << 16;
        int r = deflate(&z, flush);
        out.n += (1 << 16) - z.avail_out;
        if (r == Z_STREAM_END) break;
        if (r != Z_OK && r != Z_BUF_ERROR) abort();
    } while (1);
    deflateEnd(&z);
    return out;
}

/* A PNG chunk: length, type, data, CRC. */
static MAL_SHARED void chunk(bytes *b, const char *type, const void *data, size_t n)
{
    put_be32(b, (uint32_t)n);
    size_t at = b->n;
    put(b, type, 4);
    put(b, data, n);
    put_be32(b, (uint32_t)crc32(0, b->p + at, (uInt)(n + 4)));
}

static MAL_SHARED void print_seed_once(void)
{
    static int done;
    if (done++) return;
    const char *s = getenv("CN_TEST_SEED");
    printf("  seed %s (CN_TEST_SEED), %d runs per format (CN_MALFORMED_RUNS), limits %.0f s and "
           "%s per run\n",
           s ? s : "1", budget(), limits()->seconds,
           tl_asan() ? "no RLIMIT_AS (ASan)" : "1 GiB RLIMIT_AS");
}

#endif
