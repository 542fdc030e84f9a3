/* IDX files (raw and gzipped), datasets, normalisation and the batcher. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

#include "convnet/data.h"
#include "testlib.h"

/* ---- helpers ------------------------------------------------------------- */

#define HAS(sub) (strstr(cn_last_error(), (sub)) != NULL)

/* An IDX image: magic 00 00 type ndim, big-endian dims, then payload bytes
 * (already big-endian) copied as given. The caller frees *out. */
static unsigned char *idx_bytes(int type, int ndim, const uint32_t *dims, const void *payload,
                                size_t payload_len, size_t *len)
{
    size_t head = 4 + 4 * (size_t)ndim;
    unsigned char *p = malloc(head + payload_len + 1);
    p[0] = 0;
    p[1] = 0;
    p[2] = (unsigned char)type;
    p[3] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++) {
        p[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
        p[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
        p[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
        p[7 + 4 * i] = (unsigned char)dims[i];
    }
    if (payload_len) memcpy(p + head, payload, payload_len);
    *len = head + payload_len;
    return p;
}

/* gzip (not zlib) framing, as the gzip tool writes it. The caller frees. */
static unsigned char *gzip_bytes(const void *in, size_t len, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
    size_t cap = deflateBound(&z, (uLong)len) + 64;
    unsigned char *out = malloc(cap);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int r = deflate(&z, Z_FINISH);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    if (r != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    return out;
}

static int write_file(const char *path, const void *p, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

/* Writes an IDX file of ubyte values, gzipped if gz. */
static int write_idx_u8(const char *path, int ndim, const uint32_t *dims, const uint8_t *v,
                        size_t n, int gz)
{
    size_t len, glen;
    unsigned char *raw = idx_bytes(CN_IDX_U8, ndim, dims, v, n, &len);
    int r;
    if (gz) {
        unsigned char *g = gzip_bytes(raw, len, &glen);
        r = g ? write_file(path, g, glen) : -1;
        free(g);
    } else {
        r = write_file(path, raw, len);
    }
    free(raw);
    return r;
}

/* A directory under the test's tmpdir; returns buf. */
static char *subdir(char *buf, size_t len, const char *name)
{
    tl_path(buf, len, name);
    mkdir(buf, 0755);
    return buf;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- IDX ------------------------------------------------------------------ */

static void raw_and_gzipped_ubyte_files_read_back_exact_values(void)
{
    uint32_t dims[3] = {3, 4, 5};
    uint8_t v[60];
    for (int i = 0; i < 60; i++) v[i] = (uint8_t)(i * 37 + 11);
    for (int gz = 0; gz < 2; gz++) {
        char path[512];
        tl_path(path, sizeof path, gz ? "a.idx.gz" : "a.idx");
        CHECK(write_idx_u8(path, 3, dims, v, 60, gz) == 0, "cannot write %s", path);
        cn_idx *a;
        CHECK_OK(cn_idx_read(path, &a));
        CHECK(a->type == CN_IDX_U8 && a->ndim == 3, "gz=%d: type %d ndim %d", gz, a->type, a->ndim);
        CHECK(a->dims[0] == 3 && a->dims[1] == 4 && a->dims[2] == 5 && a->dims[3] == 1,
              "gz=%d: dims %lld %lld %lld", gz, (long long)a->dims[0], (long long)a->dims[1],
              (long long)a->dims[2]);
        CHECK(a->count == 60, "gz=%d: count %zu", gz, a->count);
        CHECK(memcmp(a->data, v, 60) == 0, "gz=%d: values differ", gz);
        float f[60];
        cn_idx_to_float(a, f);
        for (int i = 0; i < 60; i++) CHECK(f[i] == v[i], "gz=%d: float %d is %g", gz, i, f[i]);
        cn_idx_free(a);
    }
}

static void every_element_type_decodes_from_big_endian(void)
{
    /* One value per type that only a correct byte order reproduces. */
    const unsigned char i8[] = {0x80, 0x7f, 0xff};        /* -128 127 -1 */
    const unsigned char i16[] = {0x8a, 0xd0, 0x01, 0x02}; /* -30000 258 */
    const unsigned char i32[] = {0xff, 0xff, 0xff, 0xfe, 0x01, 0x02, 0x03, 0x04};
    const unsigned char f32[] = {0x3f, 0xc0, 0x00, 0x00, 0xc2, 0x28, 0x00, 0x00}; /* 1.5 -42 */
    const unsigned char f64[] = {0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18}; /* pi */
    const struct {
        int type;
        const unsigned char *p;
        size_t len;
        uint32_t n;
        double want[3];
    } cases[] = {
        {CN_IDX_I8, i8, sizeof i8, 3, {-128, 127, -1}},
        {CN_IDX_I16, i16, sizeof i16, 2, {-30000, 258}},
        {CN_IDX_I32, i32, sizeof i32, 2, {-2, 16909060}},
        {CN_IDX_F32, f32, sizeof f32, 2, {1.5, -42}},
        {CN_IDX_F64, f64, sizeof f64, 1, {3.141592653589793}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t len;
        unsigned char *buf =
            idx_bytes(cases[c].type, 1, &cases[c].n, cases[c].p, cases[c].len, &len);
        cn_idx *a;
        cn_status s = cn_idx_decode(buf, len, &a);
        free(buf);
        CHECK(s == CN_OK, "type 0x%02x: %s", cases[c].type, cn_last_error());
        CHECK(a->count == cases[c].n, "type 0x%02x: count %zu", cases[c].type, a->count);
        for (uint32_t i = 0; i < cases[c].n; i++)
            CHECK(cn_idx_get(a, i) == cases[c].want[i], "type 0x%02x element %u: %.17g",
                  cases[c].type, i, cn_idx_get(a, i));
        cn_idx_free(a);
    }
}

static void empty_arrays_are_valid(void)
{
    uint32_t dims[2] = {0, 28};
    size_t len, glen;
    unsigned char *raw = idx_bytes(CN_IDX_U8, 2, dims, NULL, 0, &len);
    unsigned char *gz = gzip_bytes(raw, len, &glen);
    cn_idx *a, *b;
    cn_status s1 = cn_idx_decode(raw, len, &a), s2 = cn_idx_decode(gz, glen, &b);
    free(raw);
    free(gz);
    CHECK(s1 == CN_OK && s2 == CN_OK, "%s", cn_last_error());
    CHECK(a->count == 0 && b->count == 0 && b->dims[1] == 28, "counts %zu %zu", a->count, b->count);
    cn_idx_free(a);
    cn_idx_free(b);
}

/* Decodes buf raw and gzipped; both must fail with CN_ERR_FORMAT and a
 * message containing sub. */
static int rejects_both_ways(const unsigned char *buf, size_t len, const char *sub, char *why,
                             size_t why_len)
{
    size_t glen;
    unsigned char *gz = gzip_bytes(buf, len, &glen);
    const unsigned char *in[2] = {buf, gz};
    size_t lens[2] = {len, glen};
    for (int k = 0; k < 2; k++) {
        cn_idx *a = (cn_idx *)1;
        cn_status s = cn_idx_decode(in[k], lens[k], &a);
        if (s != CN_ERR_FORMAT || a != NULL || !HAS(sub)) {
            snprintf(why, why_len, "%s: status %s, message \"%s\", wanted \"%s\"",
                     k ? "gzipped" : "raw", cn_status_str(s), cn_last_error(), sub);
            if (s == CN_OK) cn_idx_free(a);
            free(gz);
            return 0;
        }
    }
    free(gz);
    return 1;
}

static void bad_magic_unknown_type_and_bad_ndim_are_format_errors(void)
{
    char why[600];
    uint32_t d = 1;
    uint8_t v = 7;
    size_t len;
    unsigned char *p = idx_bytes(CN_IDX_U8, 1, &d, &v, 1, &len);
    p[0] = 0x01;
    CHECK(rejects_both_ways(p, len, "magic", why, sizeof why), "bad magic: %s", why);
    p[0] = 0;
    p[2] = 0x0a;
    CHECK(rejects_both_ways(p, len, "type 0x0a", why, sizeof why), "type 0x0a: %s", why);
    p[2] = 0x08;
    p[3] = 0;
    CHECK(rejects_both_ways(p, len, "ndim=0", why, sizeof why), "ndim 0: %s", why);
    free(p);

    uint32_t five[5] = {1, 1, 1, 1, 1};
    p = idx_bytes(CN_IDX_U8, 5, five, &v, 1, &len);
    CHECK(rejects_both_ways(p, len, "ndim=5", why, sizeof why), "ndim 5: %s", why);
    free(p);
    CHECK(rejects_both_ways((const unsigned char *)"\0\0", 2, "too short", why, sizeof why),
          "2-byte file: %s", why);
}

static void data_shorter_or_longer_than_the_header_promises_is_rejected(void)
{
    char why[600];
    uint32_t dims[2] = {10, 10};
    uint8_t v[101] = {0};
    size_t len;
    unsigned char *p = idx_bytes(CN_IDX_U8, 2, dims, v, 99, &len);
    CHECK(rejects_both_ways(p, len, "promises 100 data bytes", why, sizeof why), "short: %s", why);
    CHECK(HAS("truncated") && HAS("99"), "message names both sizes: %s", cn_last_error());
    free(p);
    p = idx_bytes(CN_IDX_U8, 2, dims, v, 101, &len);
    CHECK(rejects_both_ways(p, len, "trailing", why, sizeof why), "long: %s", why);
    free(p);
    /* Cut inside the dimensions. */
    p = idx_bytes(CN_IDX_U8, 2, dims, v, 0, &len);
    CHECK(rejects_both_ways(p, len - 2, "header", why, sizeof why), "cut header: %s", why);
    free(p);
}

static void truncated_gzip_stream_is_rejected(void)
{
    uint32_t dims[1] = {5000};
    uint8_t v[5000];
    for (int i = 0; i < 5000; i++) v[i] = (uint8_t)tl_randint(0, 255); /* incompressible */
    size_t len, glen;
    unsigned char *raw = idx_bytes(CN_IDX_U8, 1, dims, v, 5000, &len);
    unsigned char *gz = gzip_bytes(raw, len, &glen);
    free(raw);
    /* Mid-data, and inside the 8-byte CRC/length trailer. */
    const size_t cuts[] = {glen / 2, glen - 3, 12};
    for (int k = 0; k < 3; k++) {
        cn_idx *a = (cn_idx *)1;
        cn_status s = cn_idx_decode(gz, cuts[k], &a);
        CHECK(s == CN_ERR_FORMAT && a == NULL, "cut at %zu of %zu: %s", cuts[k], glen,
              cn_status_str(s));
        CHECK(HAS("truncated"), "cut at %zu: %s", cuts[k], cn_last_error());
    }
    /* A flipped byte in the middle is caught by inflate or the CRC. */
    gz[glen / 2] ^= 0x55;
    cn_idx *a;
    CHECK(cn_idx_decode(gz, glen, &a) == CN_ERR_FORMAT, "corrupt stream accepted");
    free(gz);
}

static void gzip_bomb_is_refused_after_one_byte_past_the_promise(void)
{
    /* Header promising 10 bytes, then 4 GiB of zeros: 4096 copies of a
     * full-flushed deflate block of 1 MiB zeros (each block is independent,
     * so repeating it is a valid stream) in ~4 MB. Inflating it all would
     * take seconds and 4 GiB; the reader must stop right after byte 11. */
    z_stream z;
    memset(&z, 0, sizeof z);
    CHECK(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK, "zlib");
    uint32_t d = 10;
    uint8_t ten[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    size_t hlen;
    unsigned char *head = idx_bytes(CN_IDX_U8, 1, &d, ten, 10, &hlen);
    size_t zlen = (size_t)1 << 20;
    unsigned char *zeros = calloc(zlen, 1);
    unsigned char a[256], blk[8192];
    z.next_in = head;
    z.avail_in = (uInt)hlen;
    z.next_out = a;
    z.avail_out = sizeof a;
    deflate(&z, Z_FULL_FLUSH);
    size_t alen = sizeof a - z.avail_out;
    z.next_in = zeros;
    z.avail_in = (uInt)zlen;
    z.next_out = blk;
    z.avail_out = sizeof blk;
    int r = deflate(&z, Z_FULL_FLUSH);
    size_t blen = sizeof blk - z.avail_out;
    deflateEnd(&z);
    free(head);
    free(zeros);
    CHECK(r == Z_OK && z.avail_in == 0, "flush block did not fit: %d", r);

    const size_t copies = 4096;
    size_t len = alen + copies * blen;
    unsigned char *bomb = malloc(len);
    memcpy(bomb, a, alen);
    for (size_t i = 0; i < copies; i++) memcpy(bomb + alen + i * blen, blk, blen);

    double t0 = now_s();
    cn_idx *out = (cn_idx *)1;
    cn_status s = cn_idx_decode(bomb, len, &out);
    double dt = now_s() - t0;
    free(bomb);
    CHECK(s == CN_ERR_FORMAT && out == NULL, "status %s", cn_status_str(s));
    CHECK(HAS("promises 10 data bytes") && HAS("trailing"), "message: %s", cn_last_error());
    CHECK(dt < 0.5, "took %.3f s: the reader inflated past the promise", dt);
}

static void dims_whose_product_overflows_are_rejected_before_allocating(void)
{
    char why[600];
    uint32_t dims[4] = {65536, 65536, 65536, 65536}; /* 2^64 elements */
    size_t len;
    unsigned char *p = idx_bytes(CN_IDX_U8, 4, dims, NULL, 0, &len);
    CHECK(rejects_both_ways(p, len, "overflow", why, sizeof why), "2^64: %s", why);
    free(p);
    /* 2^62 doubles: the element count fits int64, the byte count does not. */
    uint32_t big[2] = {UINT32_C(1) << 31, UINT32_C(1) << 31};
    p = idx_bytes(CN_IDX_F64, 2, big, NULL, 0, &len);
    CHECK(rejects_both_ways(p, len, "overflow", why, sizeof why), "2^62 doubles: %s", why);
    free(p);
}

static void missing_file_is_an_io_error_naming_it(void)
{
    char path[512];
    tl_path(path, sizeof path, "no-such.idx");
    cn_idx *a;
    CHECK(cn_idx_read(path, &a) == CN_ERR_IO, "status");
    CHECK(HAS("no-such.idx"), "message: %s", cn_last_error());
}

/* ---- datasets ------------------------------------------------------------- */

/* Writes {split}-images-idx3-ubyte and -labels-idx1-ubyte (gzipped or not)
 * into dir: n images of h x w whose pixels are (e*31 + p) % 256. */
static int write_split(const char *dir, const char *split, uint32_t n_img, uint32_t n_lab,
                       uint32_t h, uint32_t w, const uint8_t *labels, int gz_img, int gz_lab)
{
    char path[600];
    size_t np = (size_t)n_img * h * w;
    uint8_t *px = malloc(np + 1);
    for (size_t i = 0; i < np; i++) px[i] = (uint8_t)((i / (h * w)) * 31 + i % (h * w));
    uint32_t dims[3] = {n_img, h, w};
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte%s", dir, split, gz_img ? ".gz" : "");
    int r = write_idx_u8(path, 3, dims, px, np, gz_img);
    free(px);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte%s", dir, split, gz_lab ? ".gz" : "");
    return r | write_idx_u8(path, 1, &n_lab, labels, n_lab, gz_lab);
}

static void dataset_loads_raw_or_gzipped_files_as_nhwc_in_unit_range(void)
{
    char dir[512];
    subdir(dir, sizeof dir, "ds_ok");
    uint8_t lab[7] = {0, 9, 3, 3, 5, 1, 8};
    CHECK(write_split(dir, "train", 7, 7, 4, 6, lab, 1, 0) == 0, "write train");
    CHECK(write_split(dir, "t10k", 2, 2, 4, 6, lab, 0, 1) == 0, "write t10k");
    cn_dataset *tr, *te;
    CHECK_OK(cn_dataset_load(dir, 1, &tr));
    CHECK_OK(cn_dataset_load(dir, 0, &te));
    CHECK(tr->n == 7 && tr->h == 4 && tr->w == 6 && tr->c == 1 && tr->num_classes == 10,
          "train shape %lld %lld %lld %lld", (long long)tr->n, (long long)tr->h, (long long)tr->w,
          (long long)tr->c);
    CHECK(te->n == 2, "test n %lld", (long long)te->n);
    for (int e = 0; e < 7; e++) {
        CHECK(tr->y[e] == lab[e], "label %d", e);
        for (int p = 0; p < 24; p++) {
            float want = (float)(uint8_t)(e * 31 + p) / 255.0f;
            CHECK(tr->x[e * 24 + p] == want, "pixel %d of %d: %g vs %g", p, e, tr->x[e * 24 + p],
                  want);
        }
    }
    CHECK(tr->background == 0.0f, "background %g", tr->background);
    cn_dataset_free(tr);
    cn_dataset_free(te);
}

static void labels_at_or_above_ten_are_rejected(void)
{
    char dir[512];
    subdir(dir, sizeof dir, "ds_label");
    uint8_t lab[3] = {1, 10, 2};
    CHECK(write_split(dir, "train", 3, 3, 2, 2, lab, 0, 0) == 0, "write");
    cn_dataset *ds = (cn_dataset *)1;
    CHECK(cn_dataset_load(dir, 1, &ds) == CN_ERR_FORMAT && ds == NULL, "accepted label 10");
    CHECK(HAS("label 10 of example 1") && HAS("0..9"), "message: %s", cn_last_error());
}

static void image_and_label_count_mismatch_is_rejected(void)
{
    char dir[512];
    subdir(dir, sizeof dir, "ds_count");
    uint8_t lab[4] = {1, 2, 3, 4};
    CHECK(write_split(dir, "train", 3, 4, 2, 2, lab, 1, 1) == 0, "write");
    cn_dataset *ds = (cn_dataset *)1;
    CHECK(cn_dataset_load(dir, 1, &ds) == CN_ERR_FORMAT && ds == NULL, "accepted 3 vs 4");
    CHECK(HAS("3 images") && HAS("4 labels") && HAS("mismatch"), "message: %s", cn_last_error());
}

static void missing_dataset_files_are_named(void)
{
    char dir[512];
    subdir(dir, sizeof dir, "ds_empty");
    cn_dataset *ds;
    CHECK(cn_dataset_load(dir, 0, &ds) == CN_ERR_IO, "status");
    CHECK(HAS("t10k-images-idx3-ubyte") && HAS(".gz"), "message: %s", cn_last_error());
}

static void from_arrays_copies_and_checks_labels(void)
{
    float x[6] = {1, 2, 3, 4, 5, 6};
    int32_t y[3] = {0, 2, 1}, bad[3] = {0, 3, 1};
    cn_dataset *ds;
    CHECK_OK(cn_dataset_from_arrays(x, y, 3, 1, 2, 1, 3, &ds));
    x[0] = 99;
    CHECK(ds->x[0] == 1 && ds->y[1] == 2, "not a copy");
    cn_dataset_free(ds);
    CHECK(cn_dataset_from_arrays(x, bad, 3, 1, 2, 1, 3, &ds) == CN_ERR_INVALID_ARG, "label 3 of 3");
    CHECK(HAS("label 3"), "message: %s", cn_last_error());
}

static void normalize_gives_zero_mean_unit_std_and_moves_background(void)
{
    float x[8] = {0, 0.25f, 0.5f, 1, 0, 0, 0.75f, 0.5f};
    int32_t y[2] = {0, 1};
    cn_dataset *ds;
    CHECK_OK(cn_dataset_from_arrays(x, y, 2, 2, 2, 1, 2, &ds));
    double m, sd;
    CHECK_OK(cn_dataset_stats(ds, &m, &sd));
    CHECK(fabs(m - 0.375) < 1e-12, "mean %g", m);
    double v = 0;
    for (int i = 0; i < 8; i++) v += (x[i] - 0.375) * (x[i] - 0.375);
    CHECK(fabs(sd - sqrt(v / 8)) < 1e-12, "std %g", sd);
    CHECK_OK(cn_dataset_normalize(ds, (float)m, (float)sd));
    double m2, sd2;
    CHECK_OK(cn_dataset_stats(ds, &m2, &sd2));
    CHECK(fabs(m2) < 1e-6 && fabs(sd2 - 1) < 1e-6, "after: mean %g std %g", m2, sd2);
    CHECK(ds->background == (0 - (float)m) / (float)sd, "background %g", ds->background);
    CHECK(cn_dataset_normalize(ds, 0, 0) == CN_ERR_INVALID_ARG, "std 0 accepted");
    cn_dataset_free(ds);
}

static void fashion_mnist_class_names_are_the_published_ones(void)
{
    CHECK(strcmp(cn_fashion_mnist_class_name(0), "T-shirt/top") == 0, "0");
    CHECK(strcmp(cn_fashion_mnist_class_name(6), "Shirt") == 0, "6");
    CHECK(strcmp(cn_fashion_mnist_class_name(9), "Ankle boot") == 0, "9");
    CHECK(cn_fashion_mnist_class_name(10) == NULL && cn_fashion_mnist_class_name(-1) == NULL,
          "out of range");
}

/* ---- batching ------------------------------------------------------------- */

/* n examples of h x w x c whose pixel p of example e is e*1000 + p, and
 * label e % 10, so any output pixel tells where it came from. */
static cn_dataset *numbered_dataset(int64_t n, int64_t h, int64_t w, int64_t c)
{
    size_t img = (size_t)(h * w * c);
    float *x = malloc((size_t)n * img * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    for (int64_t e = 0; e < n; e++) {
        y[e] = (int32_t)(e % 10);
        for (size_t p = 0; p < img; p++) x[(size_t)e * img + p] = (float)(e * 1000 + (int64_t)p);
    }
    cn_dataset *ds = NULL;
    cn_dataset_from_arrays(x, y, n, h, w, c, 10, &ds);
    free(x);
    free(y);
    return ds;
}

/* One epoch's example ids in order (pixel 0 of an unaugmented image names
 * it); returns 1 if exactly n arrived with matching labels. */
static int epoch_order(cn_batcher *b, int64_t *ids, int64_t n, int *batches, int *last)
{
    const cn_dataset *ds = b->ds;
    size_t img = (size_t)(ds->h * ds->w * ds->c);
    float *x = malloc((size_t)b->batch_size * img * sizeof *x);
    int32_t *y = malloc((size_t)b->batch_size * sizeof *y);
    int64_t k = 0;
    int count, ok = 1;
    *batches = 0;
    while (cn_batcher_next(b, x, y, &count) == CN_OK && count > 0) {
        (*batches)++;
        *last = count;
        for (int i = 0; i < count; i++, k++) {
            int64_t id = (int64_t)(x[(size_t)i * img] / 1000);
            if (k < n) ids[k] = id;
            if (y[i] != (int32_t)(id % 10)) ok = 0;
        }
    }
    free(x);
    free(y);
    return ok && k == n;
}

/* Everything one epoch delivers, images then labels, into out (n*(img+1)
 * floats). */
static void epoch_contents(cn_batcher *b, float *out)
{
    const cn_dataset *ds = b->ds;
    size_t img = (size_t)(ds->h * ds->w * ds->c), k = 0;
    float *x = malloc((size_t)b->batch_size * img * sizeof *x);
    int32_t *y = malloc((size_t)b->batch_size * sizeof *y);
    int count;
    while (cn_batcher_next(b, x, y, &count) == CN_OK && count > 0) {
        memcpy(out + k * img, x, (size_t)count * img * sizeof *x);
        for (int i = 0; i < count; i++) out[(size_t)ds->n * img + k + (size_t)i] = (float)y[i];
        k += (size_t)count;
    }
    free(x);
    free(y);
}

static void batching_covers_every_example_exactly_once_per_epoch(void)
{
    const int64_t n = 103;
    cn_dataset *ds = numbered_dataset(n, 2, 3, 1);
    cn_ctx ctx;
    cn_ctx_init(&ctx);
    cn_rng_seed(&ctx, 7);
    for (int shuffle = 0; shuffle < 2; shuffle++) {
        cn_batcher b;
        CHECK_OK(cn_batcher_init(&b, ds, 10, shuffle, CN_AUG_NONE, &ctx));
        for (int epoch = 0; epoch < 3; epoch++) {
            int64_t ids[103];
            int batches, last = 0, seen[103] = {0};
            CHECK(epoch_order(&b, ids, n, &batches, &last),
                  "shuffle=%d epoch %d: wrong count or labels", shuffle, epoch);
            CHECK(batches == 11 && last == 3, "shuffle=%d: %d batches, last %d", shuffle, batches,
                  last);
            for (int64_t i = 0; i < n; i++) {
                CHECK(ids[i] >= 0 && ids[i] < n && !seen[ids[i]],
                      "shuffle=%d epoch %d: id %lld twice", shuffle, epoch, (long long)ids[i]);
                seen[ids[i]] = 1;
                if (!shuffle) CHECK(ids[i] == i, "unshuffled order differs at %lld", (long long)i);
            }
            int count = -1;
            float xx[60];
            int32_t yy[10];
            CHECK_OK(cn_batcher_next(&b, xx, yy, &count));
            CHECK(count == 0, "after the epoch: count %d", count);
            cn_batcher_start_epoch(&b);
        }
        CHECK(b.epoch == 4, "epoch counter %lld", (long long)b.epoch);
        cn_batcher_free(&b);
    }
    cn_dataset_free(ds);
}

static void same_seed_gives_same_order_and_another_seed_a_different_one(void)
{
    const int64_t n = 100;
    cn_dataset *ds = numbered_dataset(n, 1, 1, 1);
    int64_t ids[3][2][100];
    const uint64_t seeds[3] = {42, 42, 43};
    for (int r = 0; r < 3; r++) {
        cn_ctx ctx;
        cn_ctx_init(&ctx);
        cn_rng_seed(&ctx, seeds[r]);
        cn_batcher b;
        CHECK_OK(cn_batcher_init(&b, ds, 16, 1, CN_AUG_NONE, &ctx));
        int batches, last;
        for (int e = 0; e < 2; e++) {
            CHECK(epoch_order(&b, ids[r][e], n, &batches, &last), "run %d epoch %d", r, e);
            cn_batcher_start_epoch(&b);
        }
        cn_batcher_free(&b);
    }
    CHECK(memcmp(ids[0], ids[1], sizeof ids[0]) == 0, "seed 42 twice gave different orders");
    CHECK(memcmp(ids[0][0], ids[2][0], sizeof ids[0][0]) != 0, "seeds 42 and 43 gave one order");
    CHECK(memcmp(ids[0][0], ids[0][1], sizeof ids[0][0]) != 0, "epochs 1 and 2 share an order");
    cn_dataset_free(ds);
}

static void restoring_the_rng_at_an_epoch_boundary_replays_the_next_epoch(void)
{
    const int64_t n = 50;
    const size_t total = 50 * (9 + 1);
    cn_dataset *ds = numbered_dataset(n, 3, 3, 1);
    cn_ctx ctx;
    cn_ctx_init(&ctx);
    cn_rng_seed(&ctx, 5);
    cn_batcher b;
    CHECK_OK(cn_batcher_init(&b, ds, 8, 1, CN_AUG_CROP | CN_AUG_FLIP, &ctx));
    float first[500], second[500], again[500];
    epoch_contents(&b, first);
    uint64_t saved[4];
    memcpy(saved, ctx.rng, sizeof saved); /* what a checkpoint would store */
    cn_batcher_start_epoch(&b);
    epoch_contents(&b, second);
    cn_batcher_free(&b);
    CHECK(memcmp(first, second, total * sizeof(float)) != 0, "two epochs delivered the same");

    /* A fresh process: same dataset, RNG restored, new batcher. */
    cn_ctx ctx2;
    cn_ctx_init(&ctx2);
    memcpy(ctx2.rng, saved, sizeof saved);
    CHECK_OK(cn_batcher_init(&b, ds, 8, 1, CN_AUG_CROP | CN_AUG_FLIP, &ctx2));
    epoch_contents(&b, again);
    CHECK(memcmp(second, again, total * sizeof(float)) == 0,
          "the resumed epoch differs in order or augmentation");
    cn_batcher_free(&b);
    cn_dataset_free(ds);
}

/* True if out [h,w,c] is src shifted by (dy,dx) with bg outside, mirrored
 * if flip. */
static int is_shift(const float *src, const float *out, int64_t h, int64_t w, int64_t c, int dy,
                    int dx, int flip, float bg)
{
    for (int64_t r = 0; r < h; r++)
        for (int64_t col = 0; col < w; col++)
            for (int64_t k = 0; k < c; k++) {
                int64_t sr = r + dy, sc = (flip ? w - 1 - col : col) + dx;
                float want =
                    sr < 0 || sr >= h || sc < 0 || sc >= w ? bg : src[(sr * w + sc) * c + k];
                if (out[(r * w + col) * c + k] != want) return 0;
            }
    return 1;
}

/* Runs one unshuffled epoch with `aug` and checks each output is one of the
 * allowed transforms of its source; counts[t] counts which transform. */
static void check_augmented_epoch(unsigned aug, int max_shift, int flips, int *hits_flip,
                                  int *hits_shift)
{
    const int64_t n = 200, h = 5, w = 7, c = 2;
    cn_dataset *ds = numbered_dataset(n, h, w, c);
    CHECK_OK(cn_dataset_normalize(ds, 100.0f, 2.0f)); /* background -50, not 0 */
    cn_ctx ctx;
    cn_ctx_init(&ctx);
    cn_rng_seed(&ctx, 11);
    cn_batcher b;
    CHECK_OK(cn_batcher_init(&b, ds, 32, 0, aug, &ctx));
    float x[32 * 70];
    int32_t y[32];
    int count;
    int64_t e = 0;
    *hits_flip = *hits_shift = 0;
    while (cn_batcher_next(&b, x, y, &count) == CN_OK && count > 0) {
        for (int i = 0; i < count; i++, e++) {
            const float *src = ds->x + e * h * w * c, *out = x + i * h * w * c;
            int found = 0;
            for (int dy = -max_shift; dy <= max_shift && !found; dy++)
                for (int dx = -max_shift; dx <= max_shift && !found; dx++)
                    for (int f = 0; f <= flips && !found; f++)
                        if (is_shift(src, out, h, w, c, dy, dx, f, ds->background)) {
                            found = 1;
                            *hits_flip += f;
                            *hits_shift += dy || dx;
                        }
            CHECK(found, "aug 0x%x: example %lld is no allowed transform of its source", aug,
                  (long long)e);
            CHECK(y[i] == ds->y[e], "label of example %lld", (long long)e);
        }
    }
    CHECK(e == n, "epoch delivered %lld examples", (long long)e);
    cn_batcher_free(&b);
    cn_dataset_free(ds);
}

static void flip_augmentation_keeps_the_shape_and_mirrors_half_the_images(void)
{
    int flips, shifts;
    check_augmented_epoch(CN_AUG_FLIP, 0, 1, &flips, &shifts);
    if (!tl_ok()) return;
    CHECK(flips > 60 && flips < 140, "%d of 200 flipped", flips);
}

static void crop_augmentation_is_a_shift_of_at_most_two_padded_with_background(void)
{
    int flips, shifts;
    check_augmented_epoch(CN_AUG_CROP, 2, 0, &flips, &shifts);
    if (!tl_ok()) return;
    CHECK(shifts > 150, "only %d of 200 shifted (24 of 25 offsets shift)", shifts);
    check_augmented_epoch(CN_AUG_CROP | CN_AUG_FLIP, 2, 1, &flips, &shifts);
    if (!tl_ok()) return;
    CHECK(flips > 60 && flips < 140 && shifts > 150, "%d flipped, %d shifted", flips, shifts);
}

static void batcher_rejects_bad_arguments(void)
{
    cn_dataset *ds = numbered_dataset(4, 1, 1, 1);
    cn_ctx ctx;
    cn_ctx_init(&ctx);
    cn_batcher b;
    CHECK(cn_batcher_init(&b, ds, 0, 0, 0, &ctx) == CN_ERR_INVALID_ARG && HAS("batch_size"),
          "batch 0: %s", cn_last_error());
    CHECK(cn_batcher_init(&b, ds, 2, 1, 0, NULL) == CN_ERR_INVALID_ARG && HAS("ctx"),
          "shuffle without ctx: %s", cn_last_error());
    CHECK(cn_batcher_init(&b, ds, 2, 0, 0x80, &ctx) == CN_ERR_INVALID_ARG, "unknown flag");
    CHECK_OK(cn_batcher_init(&b, ds, 2, 0, 0, NULL)); /* no RNG needed */
    cn_batcher_free(&b);
    cn_dataset_free(ds);
}

/* ---- the installed dataset --------------------------------------------------- */

static void installed_fashion_mnist_has_60000_train_and_10000_test_examples(void)
{
    struct stat st;
    if (stat(CN_FASHION_MNIST_DIR, &st) != 0) {
        printf("  note: %s absent (Debian package dataset-fashion-mnist); skipped\n",
               CN_FASHION_MNIST_DIR);
        return;
    }
    cn_dataset *tr, *te;
    CHECK_OK(cn_dataset_load(CN_FASHION_MNIST_DIR, 1, &tr));
    CHECK_OK(cn_dataset_load(CN_FASHION_MNIST_DIR, 0, &te));
    CHECK(tr->n == 60000 && te->n == 10000, "n %lld / %lld", (long long)tr->n, (long long)te->n);
    CHECK(tr->h == 28 && tr->w == 28 && tr->c == 1, "image %lldx%lldx%lld", (long long)tr->h,
          (long long)tr->w, (long long)tr->c);
    int hist[2][10] = {{0}};
    for (int64_t i = 0; i < tr->n; i++) hist[0][tr->y[i]]++;
    for (int64_t i = 0; i < te->n; i++) hist[1][te->y[i]]++;
    for (int k = 0; k < 10; k++)
        CHECK(hist[0][k] == 6000 && hist[1][k] == 1000, "class %d (%s): %d train, %d test", k,
              cn_fashion_mnist_class_name(k), hist[0][k], hist[1][k]);
    double m, sd;
    CHECK_OK(cn_dataset_stats(tr, &m, &sd));
    CHECK(fabs(m - CN_FASHION_MNIST_MEAN) < 5e-5 && fabs(sd - CN_FASHION_MNIST_STD) < 5e-5,
          "train mean %.5f std %.5f vs the documented constants", m, sd);
    cn_dataset_free(tr);
    cn_dataset_free(te);
}

int main(void)
{
    TL_RUN(raw_and_gzipped_ubyte_files_read_back_exact_values);
    TL_RUN(every_element_type_decodes_from_big_endian);
    TL_RUN(empty_arrays_are_valid);
    TL_RUN(bad_magic_unknown_type_and_bad_ndim_are_format_errors);
    TL_RUN(data_shorter_or_longer_than_the_header_promises_is_rejected);
    TL_RUN(truncated_gzip_stream_is_rejected);
    TL_RUN(gzip_bomb_is_refused_after_one_byte_past_the_promise);
    TL_RUN(dims_whose_product_overflows_are_rejected_before_allocating);
    TL_RUN(missing_file_is_an_io_error_naming_it);
    TL_RUN(dataset_loads_raw_or_gzipped_files_as_nhwc_in_unit_range);
    TL_RUN(labels_at_or_above_ten_are_rejected);
    TL_RUN(image_and_label_count_mismatch_is_rejected);
    TL_RUN(missing_dataset_files_are_named);
    TL_RUN(from_arrays_copies_and_checks_labels);
    TL_RUN(normalize_gives_zero_mean_unit_std_and_moves_background);
    TL_RUN(fashion_mnist_class_names_are_the_published_ones);
    TL_RUN(batching_covers_every_example_exactly_once_per_epoch);
    TL_RUN(same_seed_gives_same_order_and_another_seed_a_different_one);
    TL_RUN(restoring_the_rng_at_an_epoch_boundary_replays_the_next_epoch);
    TL_RUN(flip_augmentation_keeps_the_shape_and_mirrors_half_the_images);
    TL_RUN(crop_augmentation_is_a_shift_of_at_most_two_padded_with_background);
    TL_RUN(batcher_rejects_bad_arguments);
    TL_RUN(installed_fashion_mnist_has_60000_train_and_10000_test_examples);
    return tl_summary();
}
