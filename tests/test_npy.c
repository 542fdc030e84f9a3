/* NumPy .npy reading and writing, and the atomic file helpers under them.
 *
 * Inputs are built byte by byte here (no Python needed); decoded buffers are
 * copied to exact-size heap blocks so that a sanitizer build catches any
 * read past the end. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"

#define MAGIC "\x93NUMPY"

/* ---- helpers ------------------------------------------------------------- */

typedef struct {
    unsigned char b[4096];
    size_t n;
} bytes;

static void put(bytes *o, const void *p, size_t n)
{
    if (o->n + n > sizeof o->b) abort();   /* a test's own mistake */
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

/* Preamble and verbatim header text (which must carry its own padding). */
static void npy_raw(bytes *o, int major, const char *hdr, size_t hlen)
{
    o->n = 0;
    put(o, MAGIC, 6);
    unsigned char v[6] = {(unsigned char)major, 0, (unsigned char)hlen, (unsigned char)(hlen >> 8),
                          (unsigned char)(hlen >> 16), (unsigned char)(hlen >> 24)};
    put(o, v, major == 1 ? 4 : 6);
    put(o, hdr, hlen);
}

/* A well-formed preamble and header: dict, spaces up to `align`, '\n'. */
static void npy_header(bytes *o, int major, const char *dict, size_t align)
{
    char hdr[1024];
    size_t pre = major == 1 ? 10 : 12, n = strlen(dict);
    memcpy(hdr, dict, n);
    while ((pre + n + 1) % align) hdr[n++] = ' ';
    hdr[n++] = '\n';
    npy_raw(o, major, hdr, n);
}

/* A well-formed .npy of `dict` followed by dlen zero bytes. */
static void npy_zeros(bytes *o, const char *dict, size_t dlen)
{
    npy_header(o, 1, dict, 64);
    static const unsigned char zeros[256];
    put(o, zeros, dlen);
}

static void put_le(bytes *o, uint64_t v, int size)
{
    for (int i = 0; i < size; i++) {
        unsigned char c = (unsigned char)(v >> (8 * i));
        put(o, &c, 1);
    }
}

static cn_status decode_exact(const bytes *o, cn_tensor **t)
{
    void *copy = malloc(o->n ? o->n : 1);
    memcpy(copy, o->b, o->n);
    *t = (cn_tensor *)1;
    cn_status s = cn_npy_decode(copy, o->n, t);
    free(copy);
    return s;
}

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

static float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Names in the scratch directory that look like leftover temp files. */
static int count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

static int write_plain(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

/* Whether the file holds exactly `text`. */
static int holds(const char *path, const char *text)
{
    void *data;
    size_t len;
    if (cn_file_read_all(path, 1 << 20, &data, &len) != CN_OK) return 0;
    int ok = len == strlen(text) && memcmp(data, text, len) == 0;
    free(data);
    return ok;
}

/* ---- writing and round trips --------------------------------------------- */

static void round_trip_keeps_shape_and_every_bit_for_0d_to_5d_and_empty_dims(void)
{
    static const struct {
        int ndim;
        int64_t shape[CN_MAX_DIMS];
    } cases[] = {
        {0, {0}},          {1, {7}},          {1, {0}},          {2, {2, 3}},
        {3, {3, 0, 2}},    {3, {2, 3, 4}},    {4, {1, 2, 3, 4}}, {5, {2, 1, 3, 1, 2}},
        {5, {0, 0, 0, 0, 0}}, {5, {2, 3, 4, 5, 6}},
    };
    char path[512];
    tl_path(path, sizeof path, "round_trip.npy");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char s[64];
        cn_shape_str(cases[c].ndim, cases[c].shape, s, sizeof s);
        cn_tensor *t, *u;
        CHECK_OK(cn_tensor_new(&t, cases[c].ndim, cases[c].shape));
        tl_fill(t->data, t->size, -10, 10);
        /* Special values must survive bit for bit, NaN payload included. */
        const float special[] = {-0.0f, INFINITY, -INFINITY, bits_to_float(0x7fc00123u),
                                 bits_to_float(1u)};
        for (size_t i = 0; i < t->size && i < 5; i++) t->data[i] = special[i];
        CHECK_OK(cn_npy_write(path, t));
        CHECK_OK(cn_npy_read(path, &u));
        CHECK(u->ndim == t->ndim, "shape %s: ndim %d", s, u->ndim);
        for (int d = 0; d < CN_MAX_DIMS; d++)
            CHECK(u->shape[d] == t->shape[d], "shape %s: dim %d is %lld", s, d,
                  (long long)u->shape[d]);
        CHECK(u->size == t->size, "shape %s: size %zu", s, u->size);
        for (size_t i = 0; i < t->size; i++)
            CHECK(same_bits(u->data[i], t->data[i]), "shape %s: element %zu: %a vs %a", s, i,
                  u->data[i], t->data[i]);
        cn_tensor_free(t);
        cn_tensor_free(u);
    }
    unlink(path);
}

static void written_header_is_numpy_dict_padded_to_64_bytes_with_final_newline(void)
{
    static const struct {
        int ndim;
        int64_t shape[CN_MAX_DIMS];
        const char *dict;
    } cases[] = {
        {0, {0}, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }"},
        {1, {3}, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"},
        {2, {2, 3}, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"},
        {5, {0, 123456789012345, 7, 1, 99},
         "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 123456789012345, 7, 1, 99), }"},
    };
    char path[512];
    tl_path(path, sizeof path, "header.npy");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        cn_tensor *t;
        CHECK_OK(cn_tensor_new(&t, cases[c].ndim, cases[c].shape));
        CHECK_OK(cn_npy_write(path, t));
        void *file;
        size_t len;
        CHECK_OK(cn_file_read_all(path, 1 << 20, &file, &len));
        const unsigned char *f = file;
        size_t hlen = (size_t)f[8] | (size_t)f[9] << 8, head = 10 + hlen;
        size_t dl = strlen(cases[c].dict);
        int ok = len >= 10 && memcmp(f, MAGIC "\x01\x00", 8) == 0 && head % 64 == 0 &&
                 head <= len && len - head == t->size * 4 && f[head - 1] == '\n' &&
                 hlen > dl && memcmp(f + 10, cases[c].dict, dl) == 0;
        for (size_t i = 10 + dl; ok && i < head - 1; i++) ok = f[i] == ' ';
        free(file);
        cn_tensor_free(t);
        CHECK(ok, "%s: header length %zu, file %zu bytes, not numpy's layout", cases[c].dict,
              hlen, len);
    }
    unlink(path);
}

static void written_file_matches_np_save_byte_for_byte(void)
{
    /* np.save(f, np.arange(6, dtype='<f4').reshape(2, 3)) with numpy 1.24. */
    static const char header[] =
        MAGIC "\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
              "                                                          \n";
    _Static_assert(sizeof header - 1 == 128, "numpy's header is two 64-byte blocks");
    int64_t shape[2] = {2, 3};
    cn_tensor *t;
    CHECK_OK(cn_tensor_new(&t, 2, shape));
    for (int i = 0; i < 6; i++) t->data[i] = (float)i;
    char path[512];
    tl_path(path, sizeof path, "np_save.npy");
    CHECK_OK(cn_npy_write(path, t));
    cn_tensor_free(t);
    void *f;
    size_t len;
    CHECK_OK(cn_file_read_all(path, 1 << 20, &f, &len));
    bytes want = {.n = 0};
    put(&want, header, 128);
    for (int i = 0; i < 6; i++) {
        float v = (float)i;
        uint32_t u;
        memcpy(&u, &v, 4);
        put_le(&want, u, 4);
    }
    int same = len == want.n && memcmp(f, want.b, len) == 0;
    free(f);
    unlink(path);
    CHECK(same, "file of %zu bytes differs from np.save's %zu", len, want.n);
}

static void write_rejects_an_inconsistent_tensor(void)
{
    int64_t shape[2] = {2, 3};
    cn_tensor *t;
    CHECK_OK(cn_tensor_new(&t, 2, shape));
    t->size = 5;
    char path[512];
    cn_status s = cn_npy_write(tl_path(path, sizeof path, "bad.npy"), t);
    cn_tensor_free(t);
    CHECK(s == CN_ERR_INVALID_ARG, "status %s", cn_status_str(s));
    CHECK(strstr(cn_last_error(), "npy: ") == cn_last_error(), "message: %s", cn_last_error());
    CHECK(access(path, F_OK) != 0, "nothing written");
}

static void write_into_missing_directory_is_io_error_naming_the_path(void)
{
    char path[512];
    tl_path(path, sizeof path, "no/such/dir/x.npy");
    int64_t shape[1] = {2};
    cn_tensor *t;
    CHECK_OK(cn_tensor_new(&t, 1, shape));
    cn_status s = cn_npy_write(path, t);
    cn_tensor_free(t);
    CHECK(s == CN_ERR_IO, "status %s", cn_status_str(s));
    const char *m = cn_last_error();
    CHECK(strncmp(m, "npy: ", 5) == 0 && strstr(m, path) && strstr(m, strerror(ENOENT)),
          "message: %s", m);
}

/* ---- reading what other writers produce ---------------------------------- */

static void header_keys_in_any_order_with_spaces_quotes_and_trailing_commas_are_read(void)
{
    static const char *const dicts[] = {
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
        "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}",
        "{ \"fortran_order\" :False,\"shape\":( 2 ,3 , ),  'descr' : \"<f4\" , }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }",   /* Python 2 */
    };
    for (size_t c = 0; c < sizeof dicts / sizeof dicts[0]; c++) {
        for (size_t align = 16; align <= 64; align *= 4) {   /* old numpy aligned to 16 */
            bytes o;
            npy_header(&o, 1, dicts[c], align);
            for (int i = 0; i < 6; i++) {
                float v = (float)i - 2.5f;
                uint32_t u;
                memcpy(&u, &v, 4);
                put_le(&o, u, 4);
            }
            cn_tensor *t;
            CHECK_OK(decode_exact(&o, &t));
            int ok = t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3;
            for (int i = 0; ok && i < 6; i++) ok = t->data[i] == (float)i - 2.5f;
            cn_tensor_free(t);
            CHECK(ok, "header %s (align %zu) read wrongly", dicts[c], align);
        }
    }
}

static void versions_2_and_3_with_uint32_header_length_are_read(void)
{
    for (int major = 2; major <= 3; major++) {
        bytes o;
        npy_header(&o, major, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 64);
        put_le(&o, 0x3f800000u, 4);   /* 1.0f */
        put_le(&o, 0xc0000000u, 4);   /* -2.0f */
        put_le(&o, 0x7f800000u, 4);   /* inf */
        cn_tensor *t;
        CHECK_OK(decode_exact(&o, &t));
        int ok = t->ndim == 1 && t->shape[0] == 3 && t->data[0] == 1.0f &&
                 t->data[1] == -2.0f && t->data[2] == INFINITY;
        cn_tensor_free(t);
        CHECK(ok, "version %d.0 read wrongly", major);
    }
}

static void scalars_and_empty_arrays_are_read(void)
{
    bytes o;
    npy_header(&o, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", 64);
    double v = -0.25;
    uint64_t u;
    memcpy(&u, &v, 8);
    put_le(&o, u, 8);
    cn_tensor *t;
    CHECK_OK(decode_exact(&o, &t));
    CHECK(t->ndim == 0 && t->size == 1 && t->data[0] == -0.25f, "scalar read wrongly");
    cn_tensor_free(t);

    npy_zeros(&o, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 0, 2), }", 0);
    CHECK_OK(decode_exact(&o, &t));
    CHECK(t->ndim == 3 && t->size == 0 && t->shape[1] == 0 && t->shape[2] == 2,
          "empty array read wrongly");
    cn_tensor_free(t);
}

static void every_accepted_dtype_converts_to_the_nearest_float(void)
{
    static const struct {
        const char *descr;
        int size;
        uint64_t raw[4];     /* little-endian element bits */
        float want[4];
    } cases[] = {
        {"<f4", 4, {0x3fc00000u, 0x80000000u, 0x7f800000u, 0x00000001u},
         {1.5f, -0.0f, INFINITY, 0x1p-149f}},
        {"=f4", 4, {0x3fc00000u, 0xc1200000u, 0, 0}, {1.5f, -10.0f, 0, 0}},
        {"<f8", 8, {0x3fb999999999999aull /* 0.1 */, 0xc00c000000000000ull /* -3.5 */,
                    0x4170000010000000ull /* 2^24+1 */, 0xfff0000000000000ull /* -inf */},
         {(float)0.1, -3.5f, (float)16777217.0, -INFINITY}},
        {"<i4", 4, {0x80000000u, 0x7fffffffu, 0xfffffff9u, 0},
         {(float)INT32_MIN, (float)INT32_MAX, -7.0f, 0}},
        {"<i8", 8, {0xfffffffffffffffdull, 0x8000000000000000ull, 0x0020000000000001ull, 1},
         {-3.0f, (float)INT64_MIN, (float)INT64_C(9007199254740993), 1.0f}},
        {"|u1", 1, {0, 255, 128, 7}, {0, 255, 128, 7}},
        {"<u1", 1, {255, 1, 0, 0}, {255, 1, 0, 0}},
        {"|i1", 1, {0x80, 0x7f, 0xff, 0}, {-128, 127, -1, 0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char dict[128];
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (2, 2), }",
                 cases[c].descr);
        bytes o;
        npy_header(&o, 1, dict, 64);
        for (int i = 0; i < 4; i++) put_le(&o, cases[c].raw[i], cases[c].size);
        cn_tensor *t;
        CHECK_OK(decode_exact(&o, &t));
        for (int i = 0; i < 4; i++) {
            float got = t->data[i], want = cases[c].want[i];
            if (!same_bits(got, want)) {
                cn_tensor_free(t);
                CHECK(0, "dtype %s element %d: got %a, want %a", cases[c].descr, i, got, want);
            }
        }
        cn_tensor_free(t);
    }
}

/* ---- rejections ---------------------------------------------------------- */

#define F4(shape) "{'descr': '<f4', 'fortran_order': False, 'shape': " shape ", }"

/* Decodes o and checks the failure: status, no tensor, "npy: " message
 * containing msg. Reports and returns 0 on a mismatch. */
static int rejected(const char *what, const bytes *o, cn_status want, const char *msg)
{
    cn_tensor *t;
    cn_status s = decode_exact(o, &t);
    const char *m = cn_last_error();
    if (s == CN_OK) cn_tensor_free(t);
    if (s != want) {
        tl_fail(__FILE__, __LINE__, "%s: status %s (%s), want %s", what, cn_status_str(s), m,
                cn_status_str(want));
        return 0;
    }
    if (t != NULL) {
        tl_fail(__FILE__, __LINE__, "%s: *out not NULL on failure", what);
        return 0;
    }
    if (strncmp(m, "npy: ", 5) != 0 || !strstr(m, msg)) {
        tl_fail(__FILE__, __LINE__, "%s: message '%s' lacks '%s'", what, m, msg);
        return 0;
    }
    return 1;
}

static void malformed_and_unsupported_headers_are_rejected_with_a_reason(void)
{
    static const struct {
        const char *what;
        const char *dict;
        size_t dlen;
        cn_status status;
        const char *msg;
    } cases[] = {
        {"truncated data", F4("(2, 3)"), 20, CN_ERR_FORMAT,
         "truncated: header promises 24 bytes of data"},
        {"trailing bytes", F4("(2, 3)"), 28, CN_ERR_FORMAT, "4 trailing bytes"},
        {"fortran order", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24,
         CN_ERR_UNSUPPORTED, "fortran_order"},
        {"fortran_order not a bool", "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", 8,
         CN_ERR_FORMAT, "True or False"},
        {"big-endian", "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8,
         CN_ERR_UNSUPPORTED, "big-endian dtype '>f4'"},
        {"big-endian int64", "{'descr': '>i8', 'fortran_order': False, 'shape': (1,), }", 8,
         CN_ERR_UNSUPPORTED, "big-endian"},
        {"object dtype", "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", 16,
         CN_ERR_UNSUPPORTED, "object arrays"},
        {"complex64", "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16,
         CN_ERR_UNSUPPORTED, "dtype '<c8' is not supported"},
        {"float16", "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", 4,
         CN_ERR_UNSUPPORTED, "dtype '<f2'"},
        {"'|' on a multi-byte type", "{'descr': '|f4', 'fortran_order': False, 'shape': (2,), }",
         8, CN_ERR_UNSUPPORTED, "dtype '|f4'"},
        {"structured dtype",
         "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8,
         CN_ERR_UNSUPPORTED, "structured"},
        {"subarray dtype",
         "{'descr': ('<f4', (2,)), 'fortran_order': False, 'shape': (2,), }", 16,
         CN_ERR_UNSUPPORTED, "subarray"},
        {"control character in a string",
         "{'descr': '<f\x1b" "4', 'fortran_order': False, 'shape': (2,), }", 8, CN_ERR_FORMAT,
         "control character"},
        {"6 dims", F4("(1, 1, 1, 1, 1, 1)"), 4, CN_ERR_UNSUPPORTED, "6 dimensions"},
        {"negative dim", F4("(3, -1)"), 0, CN_ERR_FORMAT, "negative dimension -1"},
        {"product wraps to 2^64", F4("(4294967296, 4294967296)"), 0, CN_ERR_OVERFLOW,
         "overflows"},
        {"bytes exceed 64 bits", F4("(46341, 46341, 46341, 46341)"), 0, CN_ERR_OVERFLOW,
         "overflows"},
        {"dim beyond int64", F4("(99999999999999999999,)"), 0, CN_ERR_OVERFLOW, "2^63-1"},
        {"shape (3) is not a tuple", F4("(3)"), 12, CN_ERR_FORMAT, "not the tuple"},
        {"shape as a list", F4("[3]"), 12, CN_ERR_FORMAT, "'('"},
        {"missing shape", "{'descr': '<f4', 'fortran_order': False}", 4, CN_ERR_FORMAT,
         "missing key 'shape'"},
        {"unknown key", "{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}", 4,
         CN_ERR_FORMAT, "unexpected key 'x'"},
        {"duplicate key", "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}",
         4, CN_ERR_FORMAT, "duplicate key 'descr'"},
        {"unterminated dict", "{'descr': '<f4', 'fortran_order': False, 'shape': ()", 4,
         CN_ERR_FORMAT, "expected ',' or '}'"},
        {"unterminated string", "{'descr': '<f4, 'fortran_order': False, 'shape': ()}", 4,
         CN_ERR_FORMAT, "malformed header"},
        {"junk after the dict", F4("()") " x", 4, CN_ERR_FORMAT, "after the dict"},
        {"no dict", "[1, 2]", 4, CN_ERR_FORMAT, "'{'"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        bytes o;
        npy_zeros(&o, cases[c].dict, cases[c].dlen);
        if (!rejected(cases[c].what, &o, cases[c].status, cases[c].msg)) return;
    }
}

static void broken_preambles_and_header_framing_are_rejected(void)
{
    bytes o = {.n = 0};
    if (!rejected("empty file", &o, CN_ERR_FORMAT, "magic")) return;

    npy_zeros(&o, F4("(1,)"), 4);
    o.b[5] = 'Z';
    if (!rejected("bad magic", &o, CN_ERR_FORMAT, "not a .npy file")) return;

    npy_zeros(&o, F4("(1,)"), 4);
    o.b[6] = 4;
    if (!rejected("version 4.0", &o, CN_ERR_UNSUPPORTED, "version 4.0")) return;

    npy_zeros(&o, F4("(1,)"), 4);
    o.n = 9;
    if (!rejected("preamble cut inside the header length", &o, CN_ERR_FORMAT, "truncated"))
        return;

    npy_zeros(&o, F4("(1,)"), 4);   /* 10 + 118-byte header + 4 */
    o.n = 50;
    if (!rejected("header length past the end", &o, CN_ERR_FORMAT,
                  "truncated: header length 118 runs past the end"))
        return;

    static const char hdr[] = F4("(1,)") "     \n";
    npy_raw(&o, 1, hdr, sizeof hdr - 2);
    put(&o, "\0\0\0\0", 4);
    if (!rejected("header without its final newline", &o, CN_ERR_FORMAT,
                  "not terminated by a newline"))
        return;

    npy_raw(&o, 1, "", 0);
    if (!rejected("empty header", &o, CN_ERR_FORMAT, "not terminated by a newline")) return;

    npy_raw(&o, 1, hdr, sizeof hdr - 1);
    o.b[o.n - 3] = '\0';
    put(&o, "\0\0\0\0", 4);
    if (!rejected("padding that is not spaces", &o, CN_ERR_FORMAT, "only space padding"))
        return;
}

static void every_truncation_of_a_valid_file_is_a_format_error(void)
{
    bytes o;
    npy_zeros(&o, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 48);
    size_t full = o.n;
    for (size_t n = 0; n < full; n++) {
        o.n = n;
        cn_tensor *t;
        cn_status s = decode_exact(&o, &t);
        CHECK(s == CN_ERR_FORMAT && t == NULL, "prefix of %zu/%zu bytes: %s (%s)", n, full,
              cn_status_str(s), cn_last_error());
    }
}

static void random_corruption_never_crashes_and_always_explains_itself(void)
{
    bytes good;
    npy_zeros(&good, "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 2), }", 24);
    for (int iter = 0; iter < 20000; iter++) {
        bytes o = good;
        int flips = tl_randint(1, 4);
        for (int f = 0; f < flips; f++) {
            /* Mostly the header, where the parser lives. */
            size_t at = (size_t)tl_randint(0, (int)(tl_randint(0, 3) ? 80 : o.n - 1));
            static const char alphabet[] = "{}()[],:' \"\n-0123456789<>|=fiuLOTrueFals\x93";
            int pick = tl_randint(0, (int)sizeof alphabet - 2);
            o.b[at] = tl_randint(0, 1) ? (unsigned char)tl_randint(0, 255)
                                       : (unsigned char)alphabet[pick];
        }
        if (tl_randint(0, 4) == 0) o.n = (size_t)tl_randint(0, (int)o.n);
        cn_tensor *t;
        cn_status s = decode_exact(&o, &t);
        if (s == CN_OK) {
            CHECK(t && (t->size == 0 || t->data), "iteration %d: OK without data", iter);
            cn_tensor_free(t);
            continue;
        }
        CHECK(t == NULL, "iteration %d: *out set on failure", iter);
        CHECK(s == CN_ERR_FORMAT || s == CN_ERR_UNSUPPORTED || s == CN_ERR_OVERFLOW,
              "iteration %d: status %s", iter, cn_status_str(s));
        CHECK(strncmp(cn_last_error(), "npy: ", 5) == 0 && strlen(cn_last_error()) > 10,
              "iteration %d: message '%s'", iter, cn_last_error());
    }
}

static void read_errors_name_the_file(void)
{
    char path[512];
    tl_path(path, sizeof path, "short.npy");
    bytes o;
    npy_zeros(&o, F4("(2, 3)"), 20);
    FILE *f = fopen(path, "wb");
    CHECK(f, "cannot create %s", path);
    fwrite(o.b, 1, o.n, f);
    fclose(f);
    cn_tensor *t;
    cn_status s = cn_npy_read(path, &t);
    CHECK(s == CN_ERR_FORMAT && t == NULL, "status %s", cn_status_str(s));
    char want[600];
    snprintf(want, sizeof want, "npy: %s: truncated: header promises 24 bytes of data", path);
    const char *m = cn_last_error();
    CHECK(strncmp(m, want, strlen(want)) == 0 && strstr(m, "file has 20"), "message: %s", m);
    unlink(path);
}

static void missing_file_is_an_io_error_naming_the_path(void)
{
    char path[512];
    tl_path(path, sizeof path, "does-not-exist.npy");
    cn_tensor *t;
    cn_status s = cn_npy_read(path, &t);
    CHECK(s == CN_ERR_IO && t == NULL, "status %s", cn_status_str(s));
    const char *m = cn_last_error();
    CHECK(strncmp(m, "npy: ", 5) == 0 && strstr(m, path) && strstr(m, strerror(ENOENT)),
          "message: %s", m);
}

static void reading_a_directory_is_an_io_error(void)
{
    cn_tensor *t;
    cn_status s = cn_npy_read(tl_tmpdir(), &t);
    CHECK(s == CN_ERR_IO && t == NULL, "status %s", cn_status_str(s));
    CHECK(strstr(cn_last_error(), strerror(EISDIR)), "message: %s", cn_last_error());
}

/* ---- whole-file helpers -------------------------------------------------- */

static void read_all_enforces_its_size_limit(void)
{
    char path[512];
    tl_path(path, sizeof path, "hundred.bin");
    char text[101];
    memset(text, 'a', 100);
    text[100] = '\0';
    CHECK(write_plain(path, text) == 0, "cannot write %s", path);
    void *data;
    size_t len;
    CHECK_OK(cn_file_read_all(path, 100, &data, &len));
    CHECK(len == 100, "len %zu", len);
    free(data);
    cn_status s = cn_file_read_all(path, 99, &data, &len);
    CHECK(s == CN_ERR_FORMAT && data == NULL, "status %s", cn_status_str(s));
    CHECK(strstr(cn_last_error(), path) && strstr(cn_last_error(), "limit"), "message: %s",
          cn_last_error());

    CHECK(write_plain(path, "") == 0, "cannot truncate %s", path);
    CHECK_OK(cn_file_read_all(path, 0, &data, &len));
    CHECK(len == 0, "empty file read as %zu bytes", len);
    free(data);
    unlink(path);
}

static void read_all_reads_files_that_report_no_size(void)
{
    /* /proc files stat as 0 bytes; the reader must grow its buffer. */
    void *data;
    size_t len;
    if (access("/proc/self/status", R_OK) != 0) return;
    CHECK_OK(cn_file_read_all("/proc/self/status", 1 << 20, &data, &len));
    int ok = len > 10 && memcmp(data, "Name:", 5) == 0;
    free(data);
    CHECK(ok, "read %zu bytes", len);
    cn_status s = cn_file_read_all("/proc/self/status", 8, &data, &len);
    CHECK(s == CN_ERR_FORMAT, "limit ignored for unsized files: %s", cn_status_str(s));
}

static void atomic_write_replaces_the_file_with_mode_0644_and_no_temp_left(void)
{
    char path[512];
    tl_path(path, sizeof path, "atomic.txt");
    CHECK(write_plain(path, "old contents") == 0, "cannot write %s", path);
    CHECK_OK(cn_file_write_atomic(path, "new", 3));
    CHECK(holds(path, "new"), "contents not replaced");
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644, "mode %o", st.st_mode & 0777);
    CHECK_OK(cn_file_write_atomic(path, NULL, 0));
    CHECK(holds(path, ""), "empty write");
    CHECK(count_temp_files(tl_tmpdir()) == 0, "temp files left behind");
    unlink(path);
}

static void atomic_write_into_unwritable_directory_keeps_the_old_file(void)
{
    char dir[512], path[600];
    tl_path(dir, sizeof dir, "ro");
    snprintf(path, sizeof path, "%s/keep.txt", dir);
    CHECK(mkdir(dir, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", dir, strerror(errno));
    CHECK(write_plain(path, "precious") == 0, "cannot write %s", path);
    chmod(dir, 0555);
    /* root ignores directory permissions; /proc refuses new files even to root. */
    char probe[600];
    snprintf(probe, sizeof probe, "%s/probe", dir);
    int privileged = write_plain(probe, "x") == 0;
    if (privileged) {
        unlink(probe);
        chmod(dir, 0755);
        if (access("/proc/version", R_OK) != 0) return;
        snprintf(path, sizeof path, "/proc/version");
    }
    void *before;
    size_t before_len;
    CHECK_OK(cn_file_read_all(path, 1 << 20, &before, &before_len));

    cn_status s = cn_file_write_atomic(path, "garbage", 7);
    const char *m = cn_last_error();
    int named = strstr(m, path) != NULL;
    void *after;
    size_t after_len;
    cn_status r = cn_file_read_all(path, 1 << 20, &after, &after_len);
    int same = r == CN_OK && after_len == before_len && memcmp(before, after, before_len) == 0;
    free(before);
    if (r == CN_OK) free(after);
    chmod(dir, 0755);
    CHECK(s == CN_ERR_IO, "status %s", cn_status_str(s));
    CHECK(named, "message does not name %s: %s", path, m);
    CHECK(same, "%s changed", path);
    CHECK(count_temp_files(dir) == 0, "temp files left behind");
}

static void atomic_write_over_a_directory_fails_and_leaves_it_alone(void)
{
    char dir[512], inner[600];
    tl_path(dir, sizeof dir, "a_directory");
    snprintf(inner, sizeof inner, "%s/inside.txt", dir);
    CHECK(mkdir(dir, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", dir, strerror(errno));
    CHECK(write_plain(inner, "inside") == 0, "cannot write %s", inner);
    cn_status s = cn_file_write_atomic(dir, "x", 1);
    CHECK(s == CN_ERR_IO, "status %s", cn_status_str(s));
    CHECK(strstr(cn_last_error(), dir) && strstr(cn_last_error(), strerror(EISDIR)),
          "message: %s", cn_last_error());
    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode), "directory replaced");
    CHECK(holds(inner, "inside"), "directory contents changed");
    CHECK(count_temp_files(tl_tmpdir()) == 0, "temp files left behind");
}

static void atomic_write_failing_midway_keeps_the_old_file_and_removes_the_temp(void)
{
    /* A file-size limit makes write() come up short and then fail (EFBIG),
     * exercising the short-write loop and the cleanup path. */
    char path[512];
    tl_path(path, sizeof path, "fsize.bin");
    CHECK(write_plain(path, "old") == 0, "cannot write %s", path);
    size_t n = 1 << 20;
    char *big = calloc(n, 1);
    CHECK(big, "out of memory");
    struct rlimit old_lim, lim;
    struct sigaction ign = {0}, old_sa;
    ign.sa_handler = SIG_IGN;
    getrlimit(RLIMIT_FSIZE, &old_lim);
    lim = old_lim;
    lim.rlim_cur = 4096;
    sigaction(SIGXFSZ, &ign, &old_sa);
    setrlimit(RLIMIT_FSIZE, &lim);
    cn_status s = cn_file_write_atomic(path, big, n);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", cn_last_error());
    setrlimit(RLIMIT_FSIZE, &old_lim);
    sigaction(SIGXFSZ, &old_sa, NULL);
    free(big);
    CHECK(s == CN_ERR_IO, "status %s", cn_status_str(s));
    CHECK(strstr(msg, path) && strstr(msg, strerror(EFBIG)), "message: %s", msg);
    CHECK(holds(path, "old"), "old file damaged");
    CHECK(count_temp_files(tl_tmpdir()) == 0, "temp file left behind");
    unlink(path);
}

int main(void)
{
    TL_RUN(round_trip_keeps_shape_and_every_bit_for_0d_to_5d_and_empty_dims);
    TL_RUN(written_header_is_numpy_dict_padded_to_64_bytes_with_final_newline);
    TL_RUN(written_file_matches_np_save_byte_for_byte);
    TL_RUN(write_rejects_an_inconsistent_tensor);
    TL_RUN(write_into_missing_directory_is_io_error_naming_the_path);
    TL_RUN(header_keys_in_any_order_with_spaces_quotes_and_trailing_commas_are_read);
    TL_RUN(versions_2_and_3_with_uint32_header_length_are_read);
    TL_RUN(scalars_and_empty_arrays_are_read);
    TL_RUN(every_accepted_dtype_converts_to_the_nearest_float);
    TL_RUN(malformed_and_unsupported_headers_are_rejected_with_a_reason);
    TL_RUN(broken_preambles_and_header_framing_are_rejected);
    TL_RUN(every_truncation_of_a_valid_file_is_a_format_error);
    TL_RUN(random_corruption_never_crashes_and_always_explains_itself);
    TL_RUN(read_errors_name_the_file);
    TL_RUN(missing_file_is_an_io_error_naming_the_path);
    TL_RUN(reading_a_directory_is_an_io_error);
    TL_RUN(read_all_enforces_its_size_limit);
    TL_RUN(read_all_reads_files_that_report_no_size);
    TL_RUN(atomic_write_replaces_the_file_with_mode_0644_and_no_temp_left);
    TL_RUN(atomic_write_into_unwritable_directory_keeps_the_old_file);
    TL_RUN(atomic_write_over_a_directory_fails_and_leaves_it_alone);
    TL_RUN(atomic_write_failing_midway_keeps_the_old_file_and_removes_the_temp);
    return tl_summary();
}
