/* Malformed .npy, safetensors and IDX files through the command line
 * (images: test_malformed_images.c; the shared generators and runner:
 * malformed.h). From valid seeds, generators build a few hundred broken
 * variants per format with the seeded generator (CN_TEST_SEED; the seed is
 * printed): truncations at every structurally interesting offset, bit flips
 * and stamped bytes, header fields set to 0 / -1 / huge / wrapping values,
 * shapes whose product overflows, dtype mismatches, safetensors offsets out
 * of range, overlapping or leaving holes, metadata that sizes the model
 * past the file, IDX dimensions that disagree with the length, gzip bombs,
 * and more. Each goes to the command that reads it:
 *
 *     .npy          convnet conv2d --input / --weight
 *     safetensors   convnet eval --load
 *     IDX           convnet train --data DIR --epochs 1 --limit 8
 *
 * and must get one clear error line and exit 1 or 2 (malformed.h has the
 * whole contract). Also here: the memory budget (--max-memory) of conv2d,
 * pool2d and filter, which refuses valid requests too large to allocate,
 * and regressions for what the corpus found. */
#include "malformed.h"

/* ---- .npy ------------------------------------------------------------------ */

/* A .npy file: magic, version, header length (u16 for 1.0, else u32; hlen
 * >= 0 overrides the true value), the dict padded to 64 bytes and '\n'. */
static bytes npy_file(int major, int minor, const char *dict, int64_t hlen, const void *data,
                      size_t n)
{
    size_t pre = major == 1 ? 10 : 12, len = strlen(dict) + 1;
    len += (64 - (pre + len) % 64) % 64;
    bytes b = {0};
    put(&b, "\x93NUMPY", 6);
    put8(&b, (unsigned)major), put8(&b, (unsigned)minor);
    uint64_t field = hlen >= 0 ? (uint64_t)hlen : len;
    unsigned char q[4];
    if (major == 1) {
        set_le16(q, (unsigned)field);
        put(&b, q, 2);
    } else {
        set_le32(q, (uint32_t)field);
        put(&b, q, 4);
    }
    put_str(&b, dict);
    for (size_t i = strlen(dict) + 1; i < len; i++) put8(&b, ' ');
    put8(&b, '\n');
    put(&b, data, n);
    return b;
}

static const char *npy_dict(const char *descr, const char *fortran, const char *shape)
{
    static char buf[8192];
    snprintf(buf, sizeof buf, "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr, fortran,
             shape);
    return buf;
}

static float seed_x[72], seed_w[72]; /* x [1,6,6,2], w [3,3,2,4] */

enum { NPY_INPUT, NPY_WEIGHT };

static const char *const *npy_stage(const variant *v)
{
    static const char *args[16];
    static char x[512], w[512], y[512];
    tl_path(x, sizeof x, v->role == NPY_INPUT ? "mal.npy" : "seed-x.npy");
    tl_path(w, sizeof w, v->role == NPY_WEIGHT ? "mal.npy" : "seed-w.npy");
    tl_path(y, sizeof y, "mal-y.npy");
    write_file(v->role == NPY_INPUT ? x : w, &v->data);
    int n = 0;
    args[n++] = "conv2d", args[n++] = "--input", args[n++] = x, args[n++] = "--weight";
    args[n++] = w, args[n++] = "--output", args[n++] = y;
    if (v->data.n % 3 == 0) args[n++] = "--padding", args[n++] = "1";
    args[n] = NULL;
    return args;
}

static void npy_corpus(corpus *c)
{
    const char *good = npy_dict("<f4", "False", "(1, 6, 6, 2)");
    const size_t nb = sizeof seed_x;
    /* Shapes against the 288 data bytes of [1,6,6,2] float32: wrong counts,
     * signs, sizes past int32/int64, products that overflow or wrap to a
     * small number (then with exactly the bytes the wrapped count needs),
     * ranks conv2d refuses, and syntax numpy would refuse. */
    static const struct {
        const char *shape;
        size_t bytes; /* data bytes written; (size_t)-1: the seed's 288 */
        int essential;
    } shapes[] = {
        {"()", (size_t)-1, 0},
        {"(72,)", (size_t)-1, 0},
        {"(1, 6, 6)", (size_t)-1, 0},
        {"(1, 6, 6, 2, 1)", (size_t)-1, 0},
        {"(1, 1, 1, 1, 1, 72)", (size_t)-1, 0},
        {"(-1, 6, 6, 2)", (size_t)-1, 1},
        {"(1, -6, 6, 2)", (size_t)-1, 0},
        {"(0, 6, 6, 2)", 0, 1},
        {"(1, 0, 6, 2)", 0, 0},
        {"(1, 6, 6, 0)", 0, 0},
        {"(0, 1000000, 1000000, 1)", 0, 1},
        {"(0, 2147483647, 2147483647, 2)", 0, 0},
        {"(2147483647, 6, 6, 2)", (size_t)-1, 0},
        {"(2147483648, 1, 1, 1)", (size_t)-1, 0},
        {"(4294967295, 1, 1, 1)", (size_t)-1, 0},
        {"(4294967296, 1, 1, 1)", (size_t)-1, 0},
        {"(46341, 46341, 1, 1)", (size_t)-1, 1},
        {"(65536, 65536, 1, 1)", (size_t)-1, 0},
        {"(4294967296, 4294967296, 1, 1)", (size_t)-1, 1},
        {"(3037000500, 3037000500, 1, 1)", (size_t)-1, 0},
        {"(9223372036854775807, 1, 1, 1)", (size_t)-1, 0},
        {"(9223372036854775808, 1, 1, 1)", (size_t)-1, 0},
        {"(18446744073709551615, 1, 1, 1)", (size_t)-1, 0},
        {"(18446744073709551616, 1, 1, 1)", (size_t)-1, 0},
        {"(99999999999999999999999999999999, 1, 1, 1)", (size_t)-1, 0},
        {"(4611686018427387904, 4, 1, 1)", 0, 1}, /* 2^64 elements: 0 */
        {"(6148914691236517206, 3, 1, 1)", 8, 1}, /* 2^64 + 2 elements: 2 */
        {"(4611686018427387904, 1, 1, 1)", 0, 1}, /* 2^64 bytes: 0 */
        {"(2305843009213693953, 1, 1, 1)", 4, 0}, /* 2^63 + 4 bytes */
        {"(4294967296, 4294967296, 4294967296, 1)", 0, 0},
        {"(1, 2147483648, 2147483648, 4)", 0, 0},
        {"(1, 6, 6, 2", (size_t)-1, 0},
        {"1, 6, 6, 2)", (size_t)-1, 0},
        {"(1 6 6 2)", (size_t)-1, 0},
        {"(1,, 6, 6, 2)", (size_t)-1, 0},
        {"(1, 6, 6, 2,,)", (size_t)-1, 0},
        {"[1, 6, 6, 2]", (size_t)-1, 0},
        {"(1.0, 6, 6, 2)", (size_t)-1, 0},
        {"(1e0, 6, 6, 2)", (size_t)-1, 0},
        {"(0x1, 6, 6, 2)", (size_t)-1, 0},
        {"(+1, 6, 6, 2)", (size_t)-1, 0},
        {"(None, 6, 6, 2)", (size_t)-1, 0},
        {"('1', 6, 6, 2)", (size_t)-1, 0},
        {"(1)", 4, 0},
        {"(1, 6, 6, 2)x", (size_t)-1, 0},
        {"(1, 6, 6, 2)", 287, 0},
        {"(1, 6, 6, 2)", 284, 0},
        {"(1, 6, 6, 2)", 289, 0},
        {"(1, 6, 6, 2)", 292, 0},
        {"(1, 6, 6, 2)", 0, 0},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        size_t n = shapes[i].bytes == (size_t)-1 ? nb : shapes[i].bytes;
        unsigned char data[512] = {0};
        memcpy(data, seed_x, n < nb ? n : nb);
        variant *v = add(c, (int)rnd(2), 1,
                         npy_file(1, 0, npy_dict("<f4", "False", shapes[i].shape), -1, data, n),
                         "shape %s with %zu data bytes", shapes[i].shape, n);
        v->essential = shapes[i].essential;
    }
    /* Ranks up to 1000 dimensions. */
    static const int ranks[] = {6, 9, 33, 1000};
    for (size_t i = 0; i < 4; i++) {
        bytes s = {0};
        put_str(&s, "(");
        for (int k = 0; k < ranks[i]; k++) put_str(&s, "1, ");
        put_str(&s, ")");
        put8(&s, 0);
        add(c, (int)rnd(2), 1, npy_file(1, 0, npy_dict("<f4", "False", (char *)s.p), -1, seed_x, 4),
            "%d dimensions", ranks[i]);
        free(s.p);
    }
    /* dtypes: unsupported, wrong byte order, and sizes that disagree with
     * the data (the dtype mismatches); then conversions that are valid. */
    static const struct {
        const char *descr;
        size_t bytes;
        int must_fail;
    } descrs[] = {
        {"<f2", 144, 1}, {">f4", 288, 1}, {"|f4", 288, 1},    {"f4", 288, 1},   {"<f16", 1152, 1},
        {"<c8", 576, 1}, {"|b1", 72, 1},  {"|O", 576, 1},     {"<U8", 2304, 1}, {"<M8", 576, 1},
        {"<V4", 288, 1}, {"", 288, 1},    {"<f4<f4", 288, 1}, {"<i2", 144, 1},  {"<u4", 288, 1},
        {"<u8", 576, 1}, {">i8", 576, 1}, {"<f8", 288, 1},    {"<f4", 576, 1},  {"|u1", 288, 1},
        {"<i8", 288, 1}, {"<f8", 575, 1}, {"<f8", 576, 0},    {"=f4", 288, 0},  {"<i4", 288, 0},
        {"|u1", 72, 0},  {"|i1", 72, 0},  {"<i8", 576, 0},    {"u1", 72, 0},
    };
    for (size_t i = 0; i < sizeof descrs / sizeof descrs[0]; i++) {
        unsigned char data[2304];
        for (size_t k = 0; k < descrs[i].bytes; k++) data[k] = (unsigned char)rnd(256);
        /* Integers and doubles stay finite; the values do not matter. */
        variant *v =
            add(c, (int)rnd(2), descrs[i].must_fail,
                npy_file(1, 0, npy_dict(descrs[i].descr, "False", "(1, 6, 6, 2)"), -1, data,
                         descrs[i].bytes),
                "dtype '%s' with %zu data bytes for [1,6,6,2]", descrs[i].descr, descrs[i].bytes);
        v->essential = i == 17 || i == 18;
        if (!strcmp(descrs[i].descr, "u1")) v->must_fail = 1; /* no byte order: refused */
    }
    /* The dict itself. */
    static const struct {
        const char *dict;
        int must_fail;
    } dicts[] = {
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (1, 6, 6, 2), }", 1},
        {"{'descr': '<f4', 'fortran_order': 1, 'shape': (1, 6, 6, 2), }", 1},
        {"{'descr': '<f4', 'fortran_order': false, 'shape': (1, 6, 6, 2), }", 1},
        {"{'descr': '<f4', 'fortran_order': None, 'shape': (1, 6, 6, 2), }", 1},
        {"{'fortran_order': False, 'shape': (1, 6, 6, 2), }", 1},
        {"{'descr': '<f4', 'shape': (1, 6, 6, 2), }", 1},
        {"{'descr': '<f4', 'fortran_order': False, }", 1},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 6, 6, 2), 'x': 1, }", 1},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 6, 6, 2), 'shape': (72,), }", 1},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1, 6, 6, 2), }", 1},
        {"[]", 1},
        {"{}", 1},
        {"", 1},
        {"{'descr': '<f4'", 1},
        {"{descr: '<f4', 'fortran_order': False, 'shape': (1, 6, 6, 2), }", 1},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 6, 6, 2), } x", 1},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 6, 6, 2), }\t", 1},
        {"{'descr': '<f4' 'fortran_order': False, 'shape': (1, 6, 6, 2), }", 1},
        {"{'descr': '<\\x66\\x34', 'fortran_order': False, 'shape': (1, 6, 6, 2), }", 1},
        {"{'descr': '<f4\x01', 'fortran_order': False, 'shape': (1, 6, 6, 2), }", 1},
        {"{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (1, 6, 6, 2)}", 0},
        {"{'shape': (1, 6, 6, 2), 'fortran_order': False, 'descr': '<f4'}", 0},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1L, 6L, 6L, 2L), }", 0},
    };
    for (size_t i = 0; i < sizeof dicts / sizeof dicts[0]; i++)
        add(c, (int)rnd(2), dicts[i].must_fail, npy_file(1, 0, dicts[i].dict, -1, seed_x, nb),
            "header dict \"%.100s\"", dicts[i].dict);
    /* A header that does not end in '\n', or holds a NUL or a non-ASCII
     * byte inside the dict. */
    bytes b = npy_file(1, 0, good, -1, seed_x, nb);
    size_t hend = 10 + (size_t)(b.p[8] | b.p[9] << 8);
    b.p[hend - 1] = ' ';
    add(c, (int)rnd(2), 1, b, "header not ended by a newline");
    b = npy_file(1, 0, good, -1, seed_x, nb);
    b.p[12] = 0;
    add(c, (int)rnd(2), 1, b, "NUL byte in the descr");
    b = npy_file(1, 0, good, -1, seed_x, nb);
    b.p[11] = 0xe9;
    add(c, (int)rnd(2), 1, b, "byte 0xe9 in the dict");
    /* The header length: zero, short, long, and past the file. */
    size_t real = hend - 10;
    const int64_t hlens[] = {
        0,     1, 9, (int64_t)real - 1, (int64_t)real + 1, (int64_t)real + 64, (int64_t)(real + nb),
        0xffff};
    for (size_t i = 0; i < sizeof hlens / sizeof hlens[0]; i++)
        add(c, (int)rnd(2), 1, npy_file(1, 0, good, hlens[i], seed_x, nb),
            "version 1.0 header length %lld (true %zu)", (long long)hlens[i], real)
            ->essential = i == 7;
    const int64_t hlens2[] = {0, 0x7fffffff, 0x80000000, 0xffffffff, 0x10000};
    for (size_t i = 0; i < sizeof hlens2 / sizeof hlens2[0]; i++)
        add(c, (int)rnd(2), 1, npy_file(2, 0, good, hlens2[i], seed_x, nb),
            "version 2.0 header length %lld", (long long)hlens2[i])
            ->essential = i == 3;
    /* Versions and magic. */
    static const int versions[][3] = {{0, 0, 1},     {1, 1, 1}, {4, 0, 1},
                                      {255, 255, 1}, {2, 0, 0}, {3, 0, 0}};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++)
        add(c, (int)rnd(2), versions[i][2],
            npy_file(versions[i][0] > 1 && versions[i][0] < 4 ? versions[i][0] : 1, versions[i][1],
                     good, -1, seed_x, nb),
            "version %d.%d", versions[i][0], versions[i][1]);
    for (size_t i = 0; i < 2; i++) {
        /* A 1.0 layout labelled 2.0 and the reverse: the length is misread. */
        b = npy_file(i ? 2 : 1, 0, good, -1, seed_x, nb);
        b.p[6] = i ? 1 : 2;
        add(c, (int)rnd(2), 1, b, "version %d.0 with a %d.0 header length", i ? 1 : 2, i ? 2 : 1);
    }
    static const char *const magics[] = {"\x93NUMPZ", "\x92NUMPY", "NUMPY\x01", "\x93numpy"};
    for (size_t i = 0; i < 4; i++) {
        b = npy_file(1, 0, good, -1, seed_x, nb);
        memcpy(b.p, magics[i], 6);
        add(c, (int)rnd(2), 1, b, "magic #%zu replaced", i);
    }
    add(c, (int)rnd(2), 1, copy_of((const unsigned char *)"", 0), "empty file");
    /* Valid files conv2d must refuse: ranks and channel counts. */
    add(c, NPY_INPUT, 1, npy_file(1, 0, npy_dict("<f4", "False", "(6, 6, 2)"), -1, seed_x, nb),
        "input of rank 3");
    add(c, NPY_INPUT, 1, npy_file(1, 0, npy_dict("<f4", "False", "(1, 6, 4, 3)"), -1, seed_x, nb),
        "input with 3 channels for a 2-channel weight");
    add(c, NPY_WEIGHT, 1, npy_file(1, 0, npy_dict("<f4", "False", "(3, 3, 8, 1)"), -1, seed_w, nb),
        "weight with 8 input channels");
    add(c, NPY_WEIGHT, 1, npy_file(1, 0, npy_dict("<f4", "False", "(9, 4, 2, 1)"), -1, seed_w, nb),
        "weight taller than the padded input");
    add(c, NPY_WEIGHT, 0, npy_file(1, 0, npy_dict("<f4", "False", "(1, 1, 2, 36)"), -1, seed_w, nb),
        "1x1 weight with 36 outputs");
    /* Generic damage to both seeds. */
    for (int role = 0; role < 2; role++) {
        bytes seed = npy_file(1, 0, good, -1, role ? seed_w : seed_x, nb);
        size_t hl = 10 + (size_t)(seed.p[8] | seed.p[9] << 8);
        size_t cuts[] = {0,  1,      5,      6,           7,          8,
                         9,  10,     11,     30,          hl - 2,     hl - 1,
                         hl, hl + 1, hl + 4, hl + nb / 2, seed.n - 4, seed.n - 1};
        damage(c, role, &seed, role ? "weight" : "input", cuts, (int)(sizeof cuts / sizeof cuts[0]),
               1, hl, 50, 25, 1);
        free(seed.p);
    }
}

/* ---- safetensors ------------------------------------------------------------ */

/* A checkpoint as text fields, so that any of them can be made wrong. */
typedef struct st_entry {
    char name[80];
    char dtype[32];   /* JSON, quotes included */
    char shape[160];  /* JSON array */
    char offsets[96]; /* JSON array */
    char extra[64];   /* more "key":value pairs, or "" */
    uint64_t begin, end;
} st_entry;

typedef struct st_doc {
    st_entry e[48];
    int n;
    char meta[16][2][160]; /* key, JSON value */
    int nm;
    int no_meta;
    bytes data;
} st_doc;

static st_doc st_seed;

static void st_set_offsets(st_entry *e, uint64_t b, uint64_t end)
{
    e->begin = b, e->end = end;
    snprintf(e->offsets, sizeof e->offsets, "[%llu,%llu]", (unsigned long long)b,
             (unsigned long long)end);
}

static bytes st_json(const st_doc *d)
{
    bytes j = {0};
    put_str(&j, "{");
    int first = 1;
    if (!d->no_meta) {
        put_str(&j, "\"__metadata__\":{");
        for (int i = 0; i < d->nm; i++)
            putf(&j, "%s\"%s\":%s", i ? "," : "", d->meta[i][0], d->meta[i][1]);
        put_str(&j, "}");
        first = 0;
    }
    for (int i = 0; i < d->n; i++) {
        const st_entry *e = &d->e[i];
        putf(&j, "%s\"%s\":{\"dtype\":%s,\"shape\":%s,\"data_offsets\":%s%s%s}", first ? "" : ",",
             e->name, e->dtype, e->shape, e->offsets, e->extra[0] ? "," : "", e->extra);
        first = 0;
    }
    put_str(&j, "}");
    return j;
}

/* 8-byte length field (hlen), header, data. */
static bytes st_file_len(const bytes *json, uint64_t hlen, const bytes *data)
{
    bytes b = {0};
    unsigned char q[8];
    set_le64(q, hlen);
    put(&b, q, 8);
    put(&b, json->p, json->n);
    put(&b, data->p, data->n);
    return b;
}

static bytes st_file(const bytes *json, const bytes *data)
{
    return st_file_len(json, json->n, data);
}

static bytes st_doc_file(const st_doc *d)
{
    bytes j = st_json(d), b = st_file(&j, &d->data);
    free(j.p);
    return b;
}

static st_doc *st_copy(void)
{
    st_doc *d = malloc(sizeof *d);
    if (!d) abort();
    *d = st_seed;
    d->data = copy_of(st_seed.data.p, st_seed.data.n);
    return d;
}

static void st_add(corpus *c, st_doc *d, int must_fail, int essential, const char *what)
{
    add(c, 0, must_fail, st_doc_file(d), "%s", what)->essential = essential;
    free(d->data.p);
    free(d);
}

/* Moves entries i.. by delta bytes (inserting or removing data at entry i's
 * start), keeping the file consistent. */
static void st_shift(st_doc *d, int i, int64_t delta)
{
    uint64_t at = d->e[i].begin;
    if (delta > 0) {
        unsigned char pad[64] = {0};
        bytes nd = splice(&d->data, at, 0, pad, (size_t)delta);
        free(d->data.p);
        d->data = nd;
    } else {
        bytes nd = splice(&d->data, at, (size_t)-delta, NULL, 0);
        free(d->data.p);
        d->data = nd;
    }
    for (int k = i; k < d->n; k++)
        st_set_offsets(&d->e[k], d->e[k].begin + delta, d->e[k].end + delta);
}

static int st_find(const st_doc *d, const char *name)
{
    for (int i = 0; i < d->n; i++)
        if (!strcmp(d->e[i].name, name)) return i;
    return 0;
}

static void st_make_seed(const char *path)
{
    /* An untrained LeNet for 28x28x1, 10 classes: what eval reads. */
    cn_model *m;
    cn_ctx ctx;
    cn_ctx_init(&ctx);
    if (cn_model_build(&m, "lenet", 28, 28, 1, 10) || cn_model_init(m, &ctx) ||
        cn_checkpoint_save(path, m, NULL, 1, &ctx, 0, NULL, NULL))
        abort();
    cn_model_free(m);
    cn_st_file *f;
    if (cn_st_open(path, &f)) abort();
    st_doc *d = &st_seed;
    memset(d, 0, sizeof *d);
    for (size_t i = 0; i < cn_st_count(f) && d->n < 48; i++) {
        cn_st_info info;
        if (cn_st_get(f, cn_st_name(f, i), &info)) abort();
        st_entry *e = &d->e[d->n++];
        snprintf(e->name, sizeof e->name, "%s", info.name);
        snprintf(e->dtype, sizeof e->dtype, "\"%s\"", cn_st_dtype_name(info.dtype));
        char *p = e->shape;
        p += sprintf(p, "[");
        for (int k = 0; k < info.ndim; k++)
            p += sprintf(p, "%s%lld", k ? "," : "", (long long)info.shape[k]);
        sprintf(p, "]");
        st_set_offsets(e, d->data.n, d->data.n + info.nbytes);
        put(&d->data, info.data, info.nbytes);
    }
    for (size_t i = 0; i < cn_st_meta_count(f) && d->nm < 16; i++) {
        const char *k = cn_st_meta_key(f, i), *v = cn_st_meta(f, k);
        if (strchr(v, '"') || strchr(v, '\\')) continue;
        snprintf(d->meta[d->nm][0], 160, "%s", k);
        snprintf(d->meta[d->nm][1], 160, "\"%.150s\"", v);
        d->nm++;
    }
    cn_st_close(f);
}

static int st_meta_index(st_doc *d, const char *key)
{
    for (int i = 0; i < d->nm; i++)
        if (!strcmp(d->meta[i][0], key)) return i;
    snprintf(d->meta[d->nm][0], 160, "%s", key);
    return d->nm++;
}

static const char *const *st_stage(const variant *v)
{
    static const char *args[12];
    static char path[512], data[512];
    tl_path(path, sizeof path, "mal.safetensors");
    tl_path(data, sizeof data, "idx-seed");
    write_file(path, &v->data);
    int n = 0;
    args[n++] = "eval", args[n++] = "--load", args[n++] = path, args[n++] = "--data";
    args[n++] = data, args[n++] = "--threads", args[n++] = "1";
    args[n] = NULL;
    return args;
}

/* A random tensor of the model (eval reads those; train.* it does not). */
static int st_model_tensor(const st_doc *d)
{
    for (;;) {
        int i = (int)rnd((size_t)d->n);
        if (strncmp(d->e[i].name, "train.", 6)) return i;
    }
}

static void st_corpus(corpus *c)
{
    char what[160];
    int last = st_seed.n - 1, fc = st_find(&st_seed, "fc1.weight");
    /* data_offsets: past the end, begin > end, overlapping, holes, the same
     * bytes twice, numbers JSON or the format does not allow. */
    for (int t = 0; t < 12; t++) {
        int i = t < 6 ? last : (int)rnd((size_t)st_seed.n);
        st_doc *d = st_copy();
        st_entry *e = &d->e[i];
        uint64_t b = e->begin, en = e->end;
        switch (t % 6) {
        case 0:
            st_set_offsets(e, b, en + 4),
                snprintf(what, sizeof what, "'%s' ends 4 bytes past the data", e->name);
            break;
        case 1:
            st_set_offsets(e, en, b), snprintf(what, sizeof what, "'%s' offsets reversed", e->name);
            break;
        case 2:
            st_set_offsets(e, b + (UINT64_C(1) << 53), en + (UINT64_C(1) << 53)),
                snprintf(what, sizeof what, "'%s' offsets 2^53 up", e->name);
            break;
        case 3:
            snprintf(e->offsets, sizeof e->offsets, "[%llu,18446744073709551615]",
                     (unsigned long long)b),
                snprintf(what, sizeof what, "'%s' ends at 2^64-1", e->name);
            break;
        case 4:
            snprintf(e->offsets, sizeof e->offsets, "[-4,%llu]", (unsigned long long)en),
                snprintf(what, sizeof what, "'%s' begins at -4", e->name);
            break;
        default:
            snprintf(e->offsets, sizeof e->offsets, "[%llu.0,%llu]", (unsigned long long)b,
                     (unsigned long long)en),
                snprintf(what, sizeof what, "'%s' begin %llu.0", e->name, (unsigned long long)b);
            break;
        }
        st_add(c, d, 1, t < 6, what);
    }
    for (int t = 0; t < 8; t++) {
        int i = 1 + (int)rnd((size_t)st_seed.n - 1);
        st_doc *d = st_copy();
        const char *kind;
        if (t % 4 == 0) { /* overlap: entry i starts 4 bytes early, the data ends 4 short */
            st_set_offsets(&d->e[i], d->e[i].begin - 4, d->e[i].end - 4);
            kind = "overlaps the previous tensor";
        } else if (t % 4 == 1) { /* a hole of 4 bytes before entry i */
            st_shift(d, i, 4);
            kind = "leaves a 4-byte hole before it";
        } else if (t % 4 == 2) { /* the same bytes as entry 0, when the sizes allow */
            d->e[i] = d->e[0];
            snprintf(d->e[i].name, sizeof d->e[i].name, "%s", st_seed.e[i].name);
            kind = "shares tensor 0's bytes";
        } else {
            memcpy(d->e[i].name, d->e[i - 1].name, sizeof d->e[i].name);
            kind = "is a second tensor of the previous name";
        }
        snprintf(what, sizeof what, "'%s' %s", st_seed.e[i].name, kind);
        st_add(c, d, 1, t < 4, what);
    }
    /* Shapes: zero, negative, past int32/int64, products that overflow,
     * more dimensions than convnet has, the right count in the wrong shape. */
    static const char *const shapes[] = {
        "[0]",
        "[-1]",
        "[3,3,1,-32]",
        "[2147483648]",
        "[4294967296,4294967296]",
        "[46341,46341,1,1]",
        "[3037000500,3037000500]",
        "[9223372036854775807]",
        "[18446744073709551616]",
        "[4611686018427387904,4]",
        "[1,1,1,1,1,1]",
        "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]",
        "[1e3]",
        "[1.5]",
        "[\"3\"]",
        "3",
        "null",
        "[]",
        "[[3]]"};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        st_doc *d = st_copy();
        int i = s % 2 ? fc : (int)rnd((size_t)d->n);
        snprintf(d->e[i].shape, sizeof d->e[i].shape, "%s", shapes[s]);
        snprintf(what, sizeof what, "'%s' shape %.60s", d->e[i].name, shapes[s]);
        st_add(c, d, 1, s == 4 || s == 5, what);
    }
    { /* The same bytes, another shape: a conv weight as a matrix. */
        st_doc *d = st_copy();
        int i = st_find(d, "conv1.weight");
        snprintf(d->e[i].shape, sizeof d->e[i].shape, "[9,32]");
        st_add(c, d, 1, 0, "conv1.weight reshaped to [9,32]");
    }
    /* dtypes: unsupported, misspelled, not strings, and dtype x shape
     * disagreeing with the offsets; then F64 with the bytes to match (a
     * valid file eval reads). */
    static const char *const dtypes[] = {"\"F16\"",  "\"BF16\"", "\"BOOL\"", "\"I8\"", "\"f32\"",
                                         "\"F32 \"", "\"\"",     "5",        "null",   "[\"F32\"]",
                                         "\"F64\"",  "\"U8\"",   "\"I32\""};
    for (size_t s = 0; s < sizeof dtypes / sizeof dtypes[0]; s++) {
        st_doc *d = st_copy();
        int i = st_model_tensor(d);
        snprintf(d->e[i].dtype, sizeof d->e[i].dtype, "%s", dtypes[s]);
        snprintf(what, sizeof what, "'%s' dtype %s", d->e[i].name, dtypes[s]);
        st_add(c, d, 1, s == 10, what);
    }
    {
        st_doc *d = st_copy();
        bytes nd = {0};
        for (int i = 0; i < d->n; i++) {
            st_entry *e = &d->e[i];
            uint64_t b = nd.n;
            if (!strcmp(e->dtype, "\"F32\"")) {
                for (uint64_t k = e->begin; k < e->end; k += 4) {
                    float f;
                    memcpy(&f, st_seed.data.p + k, 4);
                    double v = f;
                    put(&nd, &v, 8);
                }
                snprintf(e->dtype, sizeof e->dtype, "\"F64\"");
            } else {
                put(&nd, st_seed.data.p + e->begin, (size_t)(e->end - e->begin));
            }
            st_set_offsets(e, b, nd.n);
        }
        free(d->data.p);
        d->data = nd;
        st_add(c, d, 0, 0, "every F32 tensor stored as F64");
    }
    { /* A float tensor declared I32 with the right size. */
        st_doc *d = st_copy();
        snprintf(d->e[fc].dtype, sizeof d->e[fc].dtype, "\"I32\"");
        st_add(c, d, 1, 0, "fc1.weight declared I32");
    }
    /* Keys of an entry. */
    static const char *const extras[] = {"\"x\":1", "\"dtype\":\"F32\"", "\"data_offset\":[0,0]"};
    for (size_t s = 0; s < 3; s++) {
        st_doc *d = st_copy();
        int i = (int)rnd((size_t)d->n);
        snprintf(d->e[i].extra, sizeof d->e[i].extra, "%s", extras[s]);
        snprintf(what, sizeof what, "'%s' with %s", d->e[i].name, extras[s]);
        st_add(c, d, 1, 0, what);
    }
    /* Tensors missing (repacked, or leaving their bytes behind), renamed,
     * and extra ones (valid: eval ignores them). */
    for (int t = 0; t < 6; t++) {
        st_doc *d = st_copy();
        int i = (int)rnd((size_t)d->n);
        snprintf(what, sizeof what, "'%s' %s", d->e[i].name,
                 t % 3 == 0   ? "removed with its bytes"
                 : t % 3 == 1 ? "removed, its bytes left"
                              : "renamed");
        if (t % 3 == 0) {
            st_shift(d, i, -(int64_t)(d->e[i].end - d->e[i].begin));
            memmove(&d->e[i], &d->e[i + 1], (size_t)(d->n - i - 1) * sizeof d->e[0]);
            d->n--;
        } else if (t % 3 == 1) {
            memmove(&d->e[i], &d->e[i + 1], (size_t)(d->n - i - 1) * sizeof d->e[0]);
            d->n--;
        } else {
            d->e[i].name[0] = 'X';
        }
        /* eval needs every model tensor; bytes left behind are a hole */
        st_add(c, d, t % 3 == 1 || strncmp(st_seed.e[i].name, "train.", 6) != 0, 0, what);
    }
    {
        st_doc *d = st_copy();
        st_entry *e = &d->e[d->n++];
        snprintf(e->name, sizeof e->name, "extra.tensor");
        snprintf(e->dtype, sizeof e->dtype, "\"U8\"");
        snprintf(e->shape, sizeof e->shape, "[3]");
        st_set_offsets(e, d->data.n, d->data.n + 3);
        put(&d->data, "abc", 3);
        st_add(c, d, 0, 0, "an extra U8 tensor");
    }
    /* Metadata: the model's name, input shape and class count size the
     * model eval builds before it reads a byte of the weights. */
    static const struct {
        const char *key, *value;
        int essential;
    } metas[] = {
        {"model", "\"resnet\"", 0},
        {"model", "\"x\"", 0},
        {"model", "\"\"", 0},
        {"model", "5", 0},
        {"input_shape", "\"1,1,1\"", 0},
        {"input_shape", "\"0,28,1\"", 0},
        {"input_shape", "\"-28,28,1\"", 0},
        {"input_shape", "\"28,28\"", 0},
        {"input_shape", "\"28,28,1,1\"", 0},
        {"input_shape", "\"100000,100000,1\"", 1},
        {"input_shape", "\"4096,4096,1\"", 1},
        {"input_shape", "\"4294967296,1,1\"", 0},
        {"input_shape", "\"28,28,100000\"", 1},
        {"input_shape", "\"28,28,3\"", 0},
        {"input_shape", "\"56,56,1\"", 0},
        {"classes", "\"0\"", 0},
        {"classes", "\"-1\"", 0},
        {"classes", "\"1000000\"", 1},
        {"classes", "\"100000000\"", 1},
        {"classes", "\"99999999999999999999\"", 0},
        {"classes", "\"1e3\"", 0},
        {"classes", "\"10x\"", 0},
        {"classes", "\"11\"", 0},
        {"data_std", "\"0\"", 0},
        {"data_std", "\"-1\"", 0},
        {"data_mean", "\"nan\"", 0},
    };
    for (size_t s = 0; s < sizeof metas / sizeof metas[0]; s++) {
        st_doc *d = st_copy();
        snprintf(d->meta[st_meta_index(d, metas[s].key)][1], 160, "%s", metas[s].value);
        snprintf(what, sizeof what, "metadata %s = %s", metas[s].key, metas[s].value);
        st_add(c, d, strncmp(metas[s].key, "data_", 5) != 0, metas[s].essential, what);
    }
    {
        st_doc *d = st_copy();
        d->no_meta = 1;
        st_add(c, d, 1, 0, "no __metadata__");
    }
    /* The 8-byte header length. */
    bytes json = st_json(&st_seed);
    const int64_t hl = (int64_t)json.n, dl = (int64_t)st_seed.data.n;
    const uint64_t hlens[] = {0,
                              1,
                              2,
                              7,
                              8,
                              hl - 1,
                              hl + 1,
                              hl + dl,
                              hl + dl + 1,
                              100000001,
                              (UINT64_C(1) << 32) + hl,
                              INT64_MAX,
                              UINT64_MAX - 1,
                              UINT64_MAX};
    for (size_t s = 0; s < sizeof hlens / sizeof hlens[0]; s++)
        add(c, 0, 1, st_file_len(&json, hlens[s], &st_seed.data), "header length %llu (true %lld)",
            (unsigned long long)hlens[s], (long long)hl)
            ->essential = s == 9 || s == 13;
    /* The JSON: cut short (with a length to match), a character replaced,
     * nesting past the reader's depth, encodings. */
    for (int t = 0; t < 16; t++) {
        bytes j = copy_of(json.p, 1 + rnd(json.n - 1));
        add(c, 0, 1, st_file(&j, &st_seed.data), "header JSON cut to %zu of %zu bytes", j.n,
            json.n);
        free(j.p);
    }
    for (int t = 0; t < 16; t++) {
        bytes j = copy_of(json.p, json.n);
        size_t at = rnd(j.n);
        j.p[at] = (unsigned char)"{}[]:,\"\\ 0-.e\x01\xff"[rnd(16)];
        add(c, 0, 0, st_file(&j, &st_seed.data), "header byte %zu replaced by 0x%02x", at, j.p[at]);
        free(j.p);
    }
    static const char *const deep_at[] = {"model", "classes"};
    static const int depths[] = {15, 16, 17, 40, 70};
    for (size_t t = 0; t < 5; t++) {
        st_doc *d = st_copy();
        char *v = d->meta[st_meta_index(d, deep_at[t % 2])][1];
        int k = depths[t];
        memset(v, '[', (size_t)k), memset(v + k, ']', (size_t)k), v[2 * k] = 0;
        snprintf(what, sizeof what, "metadata nested %d deep", k);
        st_add(c, d, 1, 0, what);
    }
    {
        bytes j = {0};
        for (int k = 0; k < 100000; k++) put8(&j, '[');
        bytes e = {0};
        add(c, 0, 1, st_file(&j, &e), "header of 100000 '['")->essential = 1;
        free(j.p);
    }
    static const char *const wraps[] = {"\xef\xbb\xbf%s", "  %s", "%s  ",  "%s\x01",
                                        "null",           "[]",   "\"x\"", "{\"a\":1}%s"};
    for (size_t s = 0; s < sizeof wraps / sizeof wraps[0]; s++) {
        bytes j = {0};
        char *js = strndup((const char *)json.p, json.n);
        putf(&j, wraps[s], js);
        free(js);
        add(c, 0, s == 1 || s == 2 ? 0 : 1, st_file(&j, &st_seed.data), "header JSON as '%s'",
            wraps[s]);
        free(j.p);
    }
    { /* 20,000 more (empty) tensors: a 1.2 MB header, valid. */
        st_doc *d = st_copy();
        bytes j = st_json(d);
        j.n--; /* drop the final '}' */
        for (int k = 0; k < 20000; k++)
            putf(&j, ",\"pad.%d\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[%zu,%zu]}", k,
                 d->data.n, d->data.n);
        put_str(&j, "}");
        add(c, 0, 0, st_file(&j, &d->data), "20000 extra empty tensors");
        free(j.p), free(d->data.p), free(d);
    }
    /* Generic damage. */
    bytes seed = st_file(&json, &st_seed.data);
    size_t h = 8 + json.n,
           cuts[] = {
               0,         1, 4, 7, 8, 9, 8 + json.n / 2, h - 1, h, h + 1, h + st_seed.data.n / 2,
               seed.n - 1};
    damage(c, 0, &seed, "checkpoint", cuts, (int)(sizeof cuts / sizeof cuts[0]), 1, h, 60, 30, 1);
    free(seed.p);
    free(json.p);
}

/* ---- IDX --------------------------------------------------------------------- */

/* Roles: which of the four files; IDX_GZ added: written as NAME.gz. */
enum {
    IDX_TRAIN_IMAGES,
    IDX_TRAIN_LABELS,
    IDX_TEST_IMAGES,
    IDX_TEST_LABELS,
    IDX_GZ = 4,
    IDX_TRAIN_IMAGES_GZ = IDX_GZ /* IDX_TRAIN_IMAGES is 0 */
};
static const char *const idx_names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
static bytes idx_seed[4];
static const int idx_n[2] = {64, 16};

static bytes idx_file(int type, int ndim, const uint32_t *dims, const void *data, size_t n)
{
    bytes b = {0};
    put8(&b, 0), put8(&b, 0), put8(&b, (unsigned)type), put8(&b, (unsigned)ndim);
    for (int i = 0; i < ndim; i++) put_be32(&b, dims[i]);
    put(&b, data, n);
    return b;
}

/* gzip of src. */
static bytes gzip_of(const unsigned char *src, size_t n, int level)
{
    bytes out = {0};
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, level, Z_DEFLATED, 16 + 15, 9, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    reserve(&out, deflateBound(&z, (uLong)n) + 64);
    z.next_in = (Bytef *)(uintptr_t)src;
    z.avail_in = (uInt)n;
    z.next_out = out.p;
    z.avail_out = (uInt)out.cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
    out.n = z.total_out;
    deflateEnd(&z);
    return out;
}

static void idx_make_seed(void)
{
    for (int s = 0; s < 2; s++) {
        int n = idx_n[s];
        unsigned char *px = malloc((size_t)n * 784), *lab = malloc((size_t)n);
        if (!px || !lab) abort();
        for (int i = 0; i < n; i++) {
            lab[i] = (unsigned char)rnd(10);
            for (int k = 0; k < 784; k++) px[(size_t)i * 784 + k] = (unsigned char)rnd(256);
        }
        uint32_t d3[3] = {(uint32_t)n, 28, 28}, d1[1] = {(uint32_t)n};
        idx_seed[2 * s] = idx_file(8, 3, d3, px, (size_t)n * 784);
        idx_seed[2 * s + 1] = idx_file(8, 1, d1, lab, (size_t)n);
        free(px), free(lab);
    }
}

/* dir holds the four seed files, with the variant's role replaced. */
static void idx_write_dir(const char *dir, const variant *v)
{
    char path[768];
    mkdir(dir, 0755);
    for (int k = 0; k < 4; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, idx_names[k]);
        unlink(path);
        snprintf(path, sizeof path, "%s/%s.gz", dir, idx_names[k]);
        unlink(path);
        int mine = v && (v->role & 3) == k;
        snprintf(path, sizeof path, "%s/%s%s", dir, idx_names[k],
                 mine && (v->role & IDX_GZ) ? ".gz" : "");
        write_file(path, mine ? &v->data : &idx_seed[k]);
    }
}

static const char *const *idx_stage(const variant *v)
{
    static const char *args[16];
    static char dir[512];
    tl_path(dir, sizeof dir, "idx-mal");
    idx_write_dir(dir, v);
    int n = 0;
    args[n++] = "train", args[n++] = "--data", args[n++] = dir, args[n++] = "--epochs";
    args[n++] = "1", args[n++] = "--limit", args[n++] = "8", args[n++] = "--batch-size";
    args[n++] = "8", args[n++] = "--threads", args[n++] = "1";
    args[n] = NULL;
    return args;
}

static void idx_corpus(corpus *c)
{
    const bytes *img = &idx_seed[IDX_TRAIN_IMAGES], *lab = &idx_seed[IDX_TRAIN_LABELS];
    const unsigned char *px = img->p + 16, *ly = lab->p + 8;
    const size_t npx = img->n - 16;
    /* The magic: its zero bytes, the type, the rank. */
    static const unsigned char magics[][4] = {{1, 0, 8, 3},    {0, 1, 8, 3},    {0, 0, 0, 3},
                                              {0, 0, 7, 3},    {0, 0, 0x0a, 3}, {0, 0, 0x0f, 3},
                                              {0, 0, 0xff, 3}, {0, 0, 8, 0},    {0, 0, 8, 5},
                                              {0, 0, 8, 255},  {0, 0, 8, 2},    {0, 0, 8, 4}};
    for (size_t i = 0; i < sizeof magics / sizeof magics[0]; i++) {
        int role = (int)rnd(4);
        bytes b = copy_of(idx_seed[role].p, idx_seed[role].n);
        memcpy(b.p, magics[i], 4);
        add(c, role, 1, b, "%s magic %02x %02x %02x %02x", idx_names[role], magics[i][0],
            magics[i][1], magics[i][2], magics[i][3]);
    }
    /* Dimensions against the length: off by one, zero, 2^31, 2^32-1,
     * products past 2^48 and past 2^64. */
    static const uint32_t bad_dims[][3] = {{65, 28, 28},
                                           {63, 28, 28},
                                           {64, 29, 28},
                                           {64, 28, 27},
                                           {64, 0, 28},
                                           {64, 28, 0},
                                           {0, 28, 28},
                                           {0xffffffffu, 28, 28},
                                           {64, 0xffffffffu, 0xffffffffu},
                                           {0x80000000u, 1, 1},
                                           {0x10000, 0x10000, 0x10000},
                                           {0xffffffffu, 0xffffffffu, 0xffffffffu},
                                           {64, 784, 1},
                                           {1, 64, 784},
                                           {64 * 784, 1, 1}};
    for (size_t i = 0; i < sizeof bad_dims / sizeof bad_dims[0]; i++) {
        int test = (int)rnd(2);
        add(c, test ? IDX_TEST_IMAGES : IDX_TRAIN_IMAGES, 1,
            idx_file(8, 3, bad_dims[i], test ? idx_seed[2].p + 16 : px,
                     test ? idx_seed[2].n - 16 : npx),
            "%s dims [%u,%u,%u]", idx_names[test ? 2 : 0], bad_dims[i][0], bad_dims[i][1],
            bad_dims[i][2])
            ->essential = i == 7 || i == 10;
    }
    static const uint32_t bad_counts[] = {65, 63, 0, 0xffffffffu, 0x80000000u};
    for (size_t i = 0; i < 5; i++)
        add(c, IDX_TRAIN_LABELS, 1, idx_file(8, 1, &bad_counts[i], ly, 64), "%s count %u",
            idx_names[1], bad_counts[i]);
    /* Lengths: a byte or an image short or long. */
    static const int64_t deltas[] = {-1, -784, 1, 784};
    for (size_t i = 0; i < 4; i++) {
        bytes b = copy_of(img->p, (size_t)((int64_t)img->n + (deltas[i] < 0 ? deltas[i] : 0)));
        for (int64_t k = 0; k < deltas[i]; k++) put8(&b, 7);
        add(c, IDX_TRAIN_IMAGES, 1, b, "%s %+lld bytes", idx_names[0], (long long)deltas[i])
            ->essential = i == 0;
    }
    /* Labels: out of range, the wrong type, the wrong rank; a dataset with
     * no images at all; the test split shaped unlike the training split. */
    static const unsigned char bad_labels[] = {10, 11, 128, 255};
    for (size_t i = 0; i < 4; i++) {
        int role = rnd(2) ? IDX_TRAIN_LABELS : IDX_TEST_LABELS;
        bytes b = copy_of(idx_seed[role].p, idx_seed[role].n);
        b.p[8 + rnd(b.n - 8)] = bad_labels[i];
        add(c, role, 1, b, "%s with a label %d", idx_names[role], bad_labels[i]);
    }
    {
        int32_t l32[64];
        for (int i = 0; i < 64; i++) l32[i] = ly[i];
        uint32_t d1 = 64, d2[2] = {64, 1};
        add(c, IDX_TRAIN_LABELS, 1, idx_file(0x0c, 1, &d1, l32, 256), "int32 labels");
        add(c, IDX_TRAIN_LABELS, 1, idx_file(8, 2, d2, ly, 64), "labels [64,1]");
        add(c, IDX_TRAIN_IMAGES, 1, idx_file(0x0d, 3, (uint32_t[]){16, 28, 28}, px, npx),
            "float32 images");
        uint32_t e3[3] = {0, 28, 28}, e1 = 0;
        add(c, IDX_TRAIN_IMAGES, 1, idx_file(8, 3, e3, NULL, 0), "empty training images");
        /* Both halves of an empty split: the labels agree, there is nothing. */
        bytes both = idx_file(8, 1, &e1, NULL, 0);
        add(c, IDX_TRAIN_LABELS, 1, both, "empty training labels");
        uint32_t big[3] = {0, 100000, 100000};
        add(c, IDX_TRAIN_IMAGES, 1, idx_file(8, 3, big, NULL, 0), "no images of 100000x100000")
            ->essential = 1;
        uint32_t t14[3] = {16, 14, 14};
        add(c, IDX_TEST_IMAGES, 1, idx_file(8, 3, t14, idx_seed[2].p + 16, 16 * 196),
            "test images 14x14, training 28x28");
        uint32_t d4[4] = {64, 28, 28, 1};
        add(c, IDX_TRAIN_IMAGES, 0, idx_file(8, 4, d4, px, npx), "images as [64,28,28,1]");
        uint32_t d4c[4] = {64, 28, 28, 0};
        add(c, IDX_TRAIN_IMAGES, 1, idx_file(8, 4, d4c, NULL, 0), "images with 0 channels");
        uint32_t d4t[4] = {16, 28, 28, 3};
        bytes b = idx_file(8, 4, d4t, NULL, 0);
        for (int k = 0; k < 3; k++) put(&b, idx_seed[2].p + 16, 16 * 784);
        add(c, IDX_TEST_IMAGES, 1, b, "test images with 3 channels");
    }
    /* gzip: valid (all four), cut at the header, in the stream, in the
     * trailer; its CRC or length wrong; garbage or a second member after it;
     * its header flags promising fields that are not there. */
    for (int k = 0; k < 4; k++)
        add(c, k | IDX_GZ, 0, gzip_of(idx_seed[k].p, idx_seed[k].n, 6), "%s.gz", idx_names[k]);
    bytes gz = gzip_of(img->p, img->n, 6);
    size_t gcuts[] = {0,  1,        2,        3,        9,        10,       11,
                      12, gz.n / 2, gz.n - 9, gz.n - 8, gz.n - 5, gz.n - 4, gz.n - 1};
    for (size_t i = 0; i < sizeof gcuts / sizeof gcuts[0]; i++)
        add(c, IDX_TRAIN_IMAGES_GZ, 1, copy_of(gz.p, gcuts[i]), "%s.gz cut to %zu of %zu bytes",
            idx_names[0], gcuts[i], gz.n);
    static const struct {
        long at; /* from the end when negative */
        unsigned char x;
        const char *what;
    } gflips[] = {{-8, 0x01, "CRC"},
                  {-4, 0x01, "length"},
                  {-1, 0x80, "length's top byte"},
                  {2, 0x01, "method"},
                  {3, 0x04, "FEXTRA flag"},
                  {3, 0x08, "FNAME flag"},
                  {3, 0xe0, "reserved flags"},
                  {10, 0xff, "first deflate byte"}};
    for (size_t i = 0; i < sizeof gflips / sizeof gflips[0]; i++) {
        bytes b = copy_of(gz.p, gz.n);
        b.p[gflips[i].at < 0 ? (long)b.n + gflips[i].at : gflips[i].at] ^= gflips[i].x;
        add(c, IDX_TRAIN_IMAGES_GZ, i < 3 || i == 3 || i == 6, b, "%s.gz with its %s changed",
            idx_names[0], gflips[i].what);
    }
    {
        bytes b = copy_of(gz.p, gz.n);
        put_str(&b, "garbage");
        add(c, IDX_TRAIN_IMAGES_GZ, 1, b, "%s.gz then garbage", idx_names[0]);
        bytes empty = gzip_of((const unsigned char *)"", 0, 6),
              one = gzip_of((const unsigned char *)"x", 1, 6);
        b = copy_of(gz.p, gz.n);
        put(&b, empty.p, empty.n);
        add(c, IDX_TRAIN_IMAGES_GZ, 0, b, "%s.gz then an empty member", idx_names[0]);
        b = copy_of(gz.p, gz.n);
        put(&b, one.p, one.n);
        add(c, IDX_TRAIN_IMAGES_GZ, 1, b, "%s.gz then a member of one byte", idx_names[0]);
        free(empty.p), free(one.p);
        add(c, IDX_TRAIN_IMAGES_GZ, 0, copy_of(img->p, img->n), "raw %s named .gz", idx_names[0]);
    }
    /* Bombs: the header promises 64 images (50 KB) and the stream goes on
     * with 16 MiB of zeros, or with 16 more members of 16 MiB each; the
     * header promises 2^31 images to a small stream; it promises 7.8 MB
     * and the stream ends after 4 MB. */
    {
        bytes b = deflate_zeros(img->p, img->n, (size_t)16 << 20, 31);
        add(c, IDX_TRAIN_IMAGES_GZ, 1, b, "gzip bomb: 16 MiB past the header's 50 KB")->essential =
            1;
        bytes member = deflate_zeros(NULL, 0, (size_t)16 << 20, 31);
        b = copy_of(gz.p, gz.n);
        for (int k = 0; k < 16; k++) put(&b, member.p, member.n);
        add(c, IDX_TRAIN_IMAGES_GZ, 1, b, "gzip bomb: 16 members of 16 MiB after the data")
            ->essential = 1;
        free(member.p);
        uint32_t huge[3] = {0x7fffffffu, 28, 28};
        bytes head = idx_file(8, 3, huge, NULL, 0);
        b = deflate_zeros(head.p, head.n, (size_t)1 << 20, 31);
        add(c, IDX_TRAIN_IMAGES_GZ, 1, b, "gzip header promising 2^31 images, 1 MiB of data")
            ->essential = 1;
        free(head.p);
        uint32_t many[3] = {10000, 28, 28};
        head = idx_file(8, 3, many, NULL, 0);
        b = deflate_zeros(head.p, head.n, (size_t)4 << 20, 31);
        /* Padded so that deflate's best ratio could hold the promise. */
        for (size_t k = b.n; k < 8000; k++) put8(&b, 0);
        add(c, IDX_TRAIN_IMAGES_GZ, 1, b, "gzip promising 7.8 MB, holding 4 MB")->essential = 1;
        free(head.p);
        b = deflate_zeros(lab->p, lab->n, (size_t)16 << 20, 31);
        add(c, IDX_TRAIN_LABELS | IDX_GZ, 1, b, "gzip bomb in the labels: 16 MiB past 72 bytes")
            ->essential = 1;
    }
    /* Generic damage: raw images and labels, gzipped images. */
    size_t icuts[] = {0, 1, 2, 3, 4, 5, 8, 12, 15, 16, 17, 16 + 784, img->n / 2, img->n - 1};
    damage(c, IDX_TRAIN_IMAGES, img, idx_names[0], icuts, (int)(sizeof icuts / sizeof icuts[0]), 1,
           16, 30, 20, 1);
    size_t lcuts[] = {0, 3, 4, 7, 8, 9, lab->n - 1};
    damage(c, IDX_TRAIN_LABELS, lab, idx_names[1], lcuts, (int)(sizeof lcuts / sizeof lcuts[0]), 1,
           8, 20, 10, 1);
    size_t tcuts[] = {15, idx_seed[2].n - 1};
    damage(c, IDX_TEST_IMAGES, &idx_seed[2], idx_names[2], tcuts, 2, 1, 16, 10, 5, 1);
    damage(c, IDX_TRAIN_IMAGES_GZ, &gz, "train-images .gz", NULL, 0, 1, 24, 30, 10, 1);
    free(gz.p);
}

/* ---- the corpus runs ---------------------------------------------------------- */

static void malformed_npy_fed_to_conv2d_fails_cleanly(void)
{
    print_seed_once();
    tl_fill(seed_x, 72, -1, 1), tl_fill(seed_w, 72, -1, 1);
    const char *good = npy_dict("<f4", "False", "(1, 6, 6, 2)");
    bytes x = npy_file(1, 0, good, -1, seed_x, sizeof seed_x);
    bytes w = npy_file(1, 0, npy_dict("<f4", "False", "(3, 3, 2, 4)"), -1, seed_w, sizeof seed_w);
    write_file(tl_scratch("seed-x.npy"), &x), write_file(tl_scratch("seed-w.npy"), &w);
    /* The seeds themselves must work, or every refusal below means little. */
    variant v = {.role = NPY_INPUT, .data = x};
    const tl_cli_result *r = tl_cli_limited(npy_stage(&v), limits());
    CHECK(r->status == 0, "the seed npy files fail: %s", r->err);
    free(x.p), free(w.p);
    corpus c = {.format = "npy -> conv2d"};
    npy_corpus(&c);
    run_corpus(&c, npy_stage);
    corpus_free(&c);
}

static void malformed_safetensors_fed_to_eval_fails_cleanly(void)
{
    print_seed_once();
    idx_make_seed();
    char dir[512];
    idx_write_dir(tl_path(dir, sizeof dir, "idx-seed"), NULL);
    st_make_seed(tl_scratch("seed.safetensors"));
    bytes seed = st_doc_file(&st_seed);
    variant v = {.data = seed};
    const tl_cli_result *r = tl_cli_limited(st_stage(&v), limits());
    CHECK(r->status == 0, "the seed checkpoint fails: %s", r->err);
    free(seed.p);
    corpus c = {.format = "safetensors -> eval --load"};
    st_corpus(&c);
    run_corpus(&c, st_stage);
    corpus_free(&c);
}

static void malformed_idx_fed_to_train_fails_cleanly(void)
{
    print_seed_once();
    if (!idx_seed[0].n) idx_make_seed();
    const tl_cli_result *r =
        tl_cli_limited(idx_stage(&(variant){.role = 0, .data = idx_seed[0]}), limits());
    CHECK(r->status == 0, "the seed dataset fails: %s", r->err);
    corpus c = {.format = "IDX -> train --data"};
    idx_corpus(&c);
    run_corpus(&c, idx_stage);
    corpus_free(&c);
}

/* ---- the memory budget ---------------------------------------------------------- */

static const tl_cli_result *cli(const char *const *args)
{
    /* Refusals come before any allocation, so even 256 MiB is plenty. */
    tl_limits lim = {tl_asan() ? 30 : 10, UINT64_C(256) << 20};
    return tl_cli_limited(args, &lim);
}

static int one_line(const tl_cli_result *r, int status, const char *needle)
{
    return !r->crashed && r->status == status && r->err_lines == 1 && strstr(r->err, needle);
}

static void conv2d_refuses_outputs_over_the_memory_limit_before_allocating(void)
{
    float x[32], w[72];
    tl_fill(x, 32, -1, 1), tl_fill(w, 72, -1, 1);
    bytes bx = npy_file(1, 0, npy_dict("<f4", "False", "(1, 4, 4, 2)"), -1, x, sizeof x);
    bytes bw = npy_file(1, 0, npy_dict("<f4", "False", "(3, 3, 2, 4)"), -1, w, sizeof w);
    char xp[512], wp[512], yp[512], gyp[512], gxp[512];
    write_file(tl_path(xp, sizeof xp, "mem-x.npy"), &bx),
        write_file(tl_path(wp, sizeof wp, "mem-w.npy"), &bw);
    tl_path(yp, sizeof yp, "mem-y.npy");
    free(bx.p), free(bw.p);
    /* --padding 100000 makes a [1,200002,200002,4] output: 596 GiB, over any
     * default (half the RAM, at most the address-space limit). */
    const char *huge[] = {"conv2d",   "--input", xp,          "--weight", wp,
                          "--output", yp,        "--padding", "100000",   NULL};
    const tl_cli_result *r = cli(huge);
    CHECK(one_line(r, 1, "would need 596.1 GiB") && strstr(r->err, "output [1,200002,200002,4]") &&
              strstr(r->err, "--max-memory"),
          "padding 100000: exit %d: %s", r->status, r->err);
    CHECK(r->seconds < 5, "the refusal took %.1f s", r->seconds);
    /* An explicit limit, both ways: padding 200 needs about 2.5 MiB. */
    const char *small[] = {"conv2d", "--input",   xp,    "--weight",     wp,   "--output",
                           yp,       "--padding", "200", "--max-memory", "1M", NULL};
    r = cli(small);
    CHECK(one_line(r, 1, "the limit is 1.0 MiB (set by --max-memory)") &&
              strstr(r->err, "output [1,402,402,4]"),
          "padding 200 under 1M: exit %d: %s", r->status, r->err);
    small[10] = "64M";
    r = cli(small);
    CHECK(r->status == 0 && !r->err[0], "padding 200 under 64M: exit %d: %s", r->status, r->err);
    cn_tensor *y;
    CHECK(cn_npy_read(yp, &y) == CN_OK && y->shape[1] == 402 && y->shape[3] == 4,
          "no [1,402,402,4] output");
    cn_tensor_free(y);
    /* Gradients count too: dL/dX of a stride-4 problem is as big as X. */
    float gy[4 * 4];
    tl_fill(gy, 16, -1, 1);
    bytes bgy = npy_file(1, 0, npy_dict("<f4", "False", "(1, 2, 2, 4)"), -1, gy, sizeof gy);
    write_file(tl_path(gyp, sizeof gyp, "mem-gy.npy"), &bgy);
    free(bgy.p);
    tl_path(gxp, sizeof gxp, "mem-gx.npy");
    const char *grads[] = {"conv2d", "--input",      xp,  "--weight",     wp,    "--output",
                           yp,       "--stride",     "2", "--padding",    "1",   "--grad-output",
                           gyp,      "--grad-input", gxp, "--max-memory", "64M", NULL};
    r = cli(grads);
    CHECK(r->status == 0, "gradients under 64M: exit %d: %s", r->status, r->err);
    grads[16] = "1K";
    r = cli(grads);
    CHECK(one_line(r, 1, "would need"), "gradients under 1K: exit %d: %s", r->status, r->err);
}

static void pool2d_and_filter_refuse_over_the_memory_limit(void)
{
    float x[8 * 8 * 3];
    tl_fill(x, 192, -1, 1);
    bytes bx = npy_file(1, 0, npy_dict("<f4", "False", "(1, 8, 8, 3)"), -1, x, sizeof x);
    char xp[512], yp[512];
    write_file(tl_path(xp, sizeof xp, "mem-px.npy"), &bx);
    free(bx.p);
    tl_path(yp, sizeof yp, "mem-py.npy");
    const char *pool[] = {"pool2d", "--type",   "max", "--input",      xp,   "--kernel",
                          "2",      "--output", yp,    "--max-memory", "1K", NULL};
    const tl_cli_result *r = cli(pool);
    CHECK(one_line(r, 1, "input [1,8,8,3]"), "pool2d under 1K: exit %d: %s", r->status, r->err);
    pool[10] = "4K";
    r = cli(pool);
    CHECK(r->status == 0, "pool2d under 4K: exit %d: %s", r->status, r->err);
    /* A 65 KB PNG of 8192 x 8192 zeros (allowed by the decoder) needs a
     * gigabyte as floats: refused from its header, before any pixel is
     * decoded - the 256 MiB address-space limit would stop the decoder
     * otherwise. */
    bytes z = deflate_zeros(NULL, 0, (size_t)8192 * 8193, 15);
    bytes png = {0};
    put(&png, "\x89PNG\r\n\x1a\n", 8);
    unsigned char ihdr[13] = {0};
    set_be32(ihdr, 8192), set_be32(ihdr + 4, 8192), ihdr[8] = 8;
    chunk(&png, "IHDR", ihdr, 13);
    chunk(&png, "IDAT", z.p, z.n);
    chunk(&png, "IEND", NULL, 0);
    char in[512], out[512];
    write_file(tl_path(in, sizeof in, "mem-big.png"), &png);
    tl_path(out, sizeof out, "mem-out.png");
    free(z.p), free(png.p);
    const char *filt[] = {"filter", "--gaussian", "1", in, out, "--max-memory", "512M", NULL};
    r = cli(filt);
    CHECK(one_line(r, 1, "would need") && strstr(r->err, "padded image [8198,8198,1]"),
          "8192x8192 PNG under 512M: exit %d: %s", r->status, r->err);
    CHECK(r->seconds < 5, "the refusal took %.1f s", r->seconds);
    /* The same image under the default limit, here the 256 MiB address
     * space (under ASan, with no such limit, it would be filtered). */
    if (!tl_asan()) {
        const char *deflt[] = {"filter", "--box", "3", in, out, NULL};
        r = cli(deflt);
        CHECK(one_line(r, 1, "ulimit -v"), "8192x8192 PNG with the default limit: exit %d: %s",
              r->status, r->err);
    }
}

static void max_memory_accepts_sizes_with_suffixes_and_refuses_the_rest(void)
{
    char xp[512], yp[512];
    tl_path(xp, sizeof xp, "mem-px.npy"), tl_path(yp, sizeof yp, "mem-py.npy");
    static const char *const good[] = {"4096", "64K", "1.5M", "8G", "8GiB", "2T", "512MB", "1g"};
    static const char *const bad[] = {"0",
                                      "-1",
                                      "1e9",
                                      "12Q",
                                      "",
                                      "1.5.2G",
                                      "0x100",
                                      "G",
                                      "1 G",
                                      "0.0001",
                                      "99999999999999999999",
                                      "20000000T",
                                      "8GBB",
                                      "inf"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        const char *args[] = {"pool2d", "--type",   "max", "--input",      xp,      "--kernel",
                              "2",      "--output", yp,    "--max-memory", good[i], NULL};
        const tl_cli_result *r = cli(args);
        CHECK(r->status == 0, "--max-memory %s: exit %d: %s", good[i], r->status, r->err);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[] = {"pool2d", "--type",   "max", "--input",      xp,     "--kernel",
                              "2",      "--output", yp,    "--max-memory", bad[i], NULL};
        const tl_cli_result *r = cli(args);
        CHECK(one_line(r, 2, "--max-memory"), "--max-memory '%s': exit %d: %s", bad[i], r->status,
              r->err);
    }
    static const char *const cmds[] = {"conv2d", "pool2d", "filter"};
    for (size_t i = 0; i < 3; i++) {
        const char *args[] = {cmds[i], "--help", NULL};
        const tl_cli_result *r = cli(args);
        CHECK(r->status == 0 && strstr(r->out, "--max-memory BYTES"),
              "%s --help lacks --max-memory", cmds[i]);
    }
}

/* ---- regressions for what the corpus found ------------------------------------- */

static void conv2d_setup_refuses_sizes_whose_workspace_would_wrap(void)
{
    /* stride 2^30-1 and padding 2^29 over a 4x4 input: a 2x2 output, and a
     * dilated gradient of (2^30)^2 x 4 floats = 2^64 bytes, which wrapped
     * to a 0-byte workspace block that backward-data then filled (SIGSEGV
     * from `convnet conv2d ... --grad-input`). */
    cn_conv2d_params p = cn_conv2d_params_default();
    p.stride_h = p.stride_w = 1073741823;
    p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 536870912;
    int64_t xs[4] = {1, 4, 4, 1}, ws[4] = {1, 1, 1, 4};
    cn_conv2d_desc d;
    CHECK(cn_conv2d_setup(&d, &p, xs, ws) == CN_ERR_OVERFLOW, "setup accepted it: %s",
          cn_last_error());
    /* OH x OW itself past 2^63 (UBSan: signed overflow in setup). */
    p.stride_h = p.stride_w = 1;
    p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 2147483647;
    CHECK(cn_conv2d_setup(&d, &p, xs, ws) == CN_ERR_OVERFLOW, "setup accepted OH*OW > 2^63: %s",
          cn_last_error());
    /* The CLI says so in one line. */
    float x[16], w[4], gy[16];
    tl_fill(x, 16, -1, 1), tl_fill(w, 4, -1, 1), tl_fill(gy, 16, -1, 1);
    bytes bx = npy_file(1, 0, npy_dict("<f4", "False", "(1, 4, 4, 1)"), -1, x, sizeof x);
    bytes bw = npy_file(1, 0, npy_dict("<f4", "False", "(1, 1, 1, 4)"), -1, w, sizeof w);
    bytes bg = npy_file(1, 0, npy_dict("<f4", "False", "(1, 2, 2, 4)"), -1, gy, sizeof gy);
    char xp[512], wp[512], gp[512], yp[512], gxp[512];
    write_file(tl_path(xp, sizeof xp, "wrap-x.npy"), &bx),
        write_file(tl_path(wp, sizeof wp, "wrap-w.npy"), &bw);
    write_file(tl_path(gp, sizeof gp, "wrap-gy.npy"), &bg);
    free(bx.p), free(bw.p), free(bg.p);
    tl_path(yp, sizeof yp, "wrap-y.npy"), tl_path(gxp, sizeof gxp, "wrap-gx.npy");
    const char *args[] = {"conv2d",    "--input",      xp,           "--weight",
                          wp,          "--output",     yp,           "--padding",
                          "536870912", "--stride",     "1073741823", "--grad-output",
                          gp,          "--grad-input", gxp,          NULL};
    const tl_cli_result *r = cli(args);
    CHECK(one_line(r, 1, "overflow"), "exit %d: %s", r->status, r->err);
}

static void eval_checks_a_checkpoint_before_sizing_the_model_by_its_metadata(void)
{
    /* classes = 10^6 asks for a 3136 x 10^6 linear layer (12.5 GB) that
     * the file does not hold: refused for the shape, not for the memory. */
    if (!st_seed.n) {
        idx_make_seed();
        char dir[512];
        idx_write_dir(tl_path(dir, sizeof dir, "idx-seed"), NULL);
        st_make_seed(tl_scratch("seed.safetensors"));
    }
    st_doc *d = st_copy();
    snprintf(d->meta[st_meta_index(d, "classes")][1], 160, "\"1000000\"");
    bytes f = st_doc_file(d);
    variant v = {.data = f};
    const tl_cli_result *r = cli(st_stage(&v));
    CHECK(one_line(r, 1, "fc1.weight") && strstr(r->err, "[3136,1000000]") &&
              !strstr(r->err, "allocate"),
          "exit %d: %s", r->status, r->err);
    free(f.p), free(d->data.p), free(d);
}

static void train_refuses_an_empty_split(void)
{
    if (!idx_seed[0].n) idx_make_seed();
    uint32_t e3[3] = {0, 10000, 10000}, e1 = 0;
    variant v = {.role = IDX_TRAIN_IMAGES, .data = idx_file(8, 3, e3, NULL, 0)};
    char dir[512];
    tl_path(dir, sizeof dir, "idx-empty");
    idx_write_dir(dir, &v);
    bytes lab = idx_file(8, 1, &e1, NULL, 0);
    char path[768];
    snprintf(path, sizeof path, "%s/%s", dir, idx_names[IDX_TRAIN_LABELS]);
    write_file(path, &lab);
    const char *args[] = {"train", "--data", dir, "--epochs", "1", "--threads", "1", NULL};
    const tl_cli_result *r = cli(args);
    CHECK(one_line(r, 1, "holds no images"), "exit %d: %s", r->status, r->err);
    free(v.data.p), free(lab.p);
}

int main(void)
{
    TL_RUN(malformed_npy_fed_to_conv2d_fails_cleanly);
    TL_RUN(malformed_safetensors_fed_to_eval_fails_cleanly);
    TL_RUN(malformed_idx_fed_to_train_fails_cleanly);
    TL_RUN(conv2d_refuses_outputs_over_the_memory_limit_before_allocating);
    TL_RUN(pool2d_and_filter_refuse_over_the_memory_limit);
    TL_RUN(max_memory_accepts_sizes_with_suffixes_and_refuses_the_rest);
    TL_RUN(conv2d_setup_refuses_sizes_whose_workspace_would_wrap);
    TL_RUN(eval_checks_a_checkpoint_before_sizing_the_model_by_its_metadata);
    TL_RUN(train_refuses_an_empty_split);
    for (int k = 0; k < 4; k++) free(idx_seed[k].p);
    free(st_seed.data.p);
    return tl_summary();
}
