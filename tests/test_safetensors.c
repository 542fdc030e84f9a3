/* safetensors checkpoints: round trips, the exact bytes other tools expect,
 * and a reader that rejects every malformed file with a precise message. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "convnet/safetensors.h"
#include "testlib.h"

/* ---- helpers ------------------------------------------------------------- */

/* Plain fwrite: test inputs need no atomicity and no fsync. */
static int write_file(const char *path, const void *buf, size_t len)
{
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    size_t w = len ? fwrite(buf, 1, len, fp) : 0;
    return fclose(fp) == 0 && w == len ? 0 : -1;
}

static unsigned char *read_file(const char *path, size_t *len)
{
    void *buf;
    if (cn_file_read_all(path, 1 << 20, &buf, len) != CN_OK) return NULL;
    return buf;
}

/* 1 if the NUL-terminated s occurs in buf[0..len). */
static int contains(const unsigned char *buf, size_t len, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(buf + i, s, n) == 0) return 1;
    return 0;
}

/* A file whose 8-byte prefix says hlen, followed by json and data_len bytes
 * counting 0, 1, 2, ... */
static const char *make_raw(const char *name, uint64_t hlen, const char *json, size_t json_len,
                            size_t data_len)
{
    static char path[512];
    tl_path(path, sizeof path, name);
    size_t len = 8 + json_len + data_len;
    unsigned char *buf = malloc(len);
    if (!buf) return NULL;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + 8, json, json_len);
    for (size_t i = 0; i < data_len; i++) buf[8 + json_len + i] = (unsigned char)i;
    int r = write_file(path, buf, len);
    free(buf);
    return r ? NULL : path;
}

/* A well-formed prefix for json (its exact length, no padding). */
static const char *make_file(const char *json, size_t data_len)
{
    return make_raw("case.safetensors", strlen(json), json, strlen(json), data_len);
}

typedef struct reject_case {
    const char *what; /* the property, for the failure message */
    const char *json;
    size_t data_len;
    cn_status status;
    const char *msg; /* a substring the message must contain */
} reject_case;

/* Opens each case's file and checks it fails with the status, the message
 * substring and the "safetensors: PATH: " prefix, leaving *out NULL. */
static int check_rejects(const reject_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const reject_case *c = &cases[i];
        const char *path = make_file(c->json, c->data_len);
        cn_st_file *f = (cn_st_file *)1;
        cn_status s = cn_st_open(path, &f);
        const char *m = cn_last_error();
        char prefix[600];
        snprintf(prefix, sizeof prefix, "safetensors: %s: ", path);
        if (s != c->status || !strstr(m, c->msg) || strncmp(m, prefix, strlen(prefix)) != 0 ||
            f != NULL) {
            tl_fail(__FILE__, __LINE__, "%s: status %s (want %s), message \"%s\" (want \"%s\")",
                    c->what, cn_status_str(s), cn_status_str(c->status), m, c->msg);
            if (s == CN_OK) cn_st_close(f);
            return -1;
        }
    }
    return 0;
}

#define CHECK_REJECTS(cases)                                                                       \
    CHECK(check_rejects(cases, sizeof cases / sizeof cases[0]) == 0, "see above")

/* ---- writing and reading back -------------------------------------------- */

static void round_trip_keeps_every_tensor_bit_for_bit(void)
{
    float w[6], scalar = -2.5f;
    double d[3] = {1.0 / 3.0, -1e300, 0.0};
    int64_t step = INT64_C(-9007199254740993), big[2] = {INT64_MIN, INT64_MAX};
    int32_t i32[2] = {-7, 2147483647};
    uint8_t rng[32];
    tl_fill(w, 6, -1, 1);
    for (int i = 0; i < 32; i++) rng[i] = (uint8_t)(i * 37 + 11);
    int64_t s23[2] = {2, 3}, s04[2] = {0, 4}, s3[1] = {3}, s2[1] = {2}, s32[1] = {32};

    cn_st_writer *wr;
    CHECK_OK(cn_st_writer_new(&wr));
    CHECK_OK(cn_st_writer_add(wr, "layer1.weight", 2, s23, w));
    CHECK_OK(cn_st_writer_add(wr, "scalar", 0, NULL, &scalar));
    CHECK_OK(cn_st_writer_add(wr, "empty", 2, s04, NULL));
    CHECK_OK(cn_st_writer_add_raw(wr, "doubles", CN_ST_F64, 1, s3, d));
    CHECK_OK(cn_st_writer_add_i64(wr, "optim.step", 0, NULL, &step));
    CHECK_OK(cn_st_writer_add_i64(wr, "extremes", 1, s2, big));
    CHECK_OK(cn_st_writer_add_raw(wr, "ints", CN_ST_I32, 1, s2, i32));
    CHECK_OK(cn_st_writer_add_u8(wr, "rng.state", 1, s32, rng));
    char path[512];
    CHECK_OK(cn_st_writer_write(wr, tl_path(path, sizeof path, "rt.safetensors")));
    cn_st_writer_free(wr);

    cn_st_file *f;
    CHECK_OK(cn_st_open(path, &f));
    static const char *const names[] = {"doubles",       "empty",      "extremes",  "ints",
                                        "layer1.weight", "optim.step", "rng.state", "scalar"};
    CHECK(cn_st_count(f) == 8, "count %zu", cn_st_count(f));
    for (size_t i = 0; i < 8; i++)
        CHECK(strcmp(cn_st_name(f, i), names[i]) == 0, "name %zu is %s, want %s (sorted)", i,
              cn_st_name(f, i), names[i]);
    CHECK(cn_st_name(f, 8) == NULL, "name past the end");
    cn_st_info info;
    for (size_t i = 0; i < 8; i++) {
        CHECK_OK(cn_st_get(f, names[i], &info));
        CHECK((uintptr_t)info.data % cn_st_dtype_size(info.dtype) == 0,
              "%s is not aligned to its element size", names[i]);
    }

    CHECK_OK(cn_st_get(f, "layer1.weight", &info));
    CHECK(info.dtype == CN_ST_F32 && info.ndim == 2 && info.shape[0] == 2 && info.shape[1] == 3 &&
              info.shape[2] == 1 && info.numel == 6 && info.nbytes == 24,
          "layer1.weight info");
    CHECK(memcmp(info.data, w, 24) == 0, "layer1.weight bytes differ");
    float got[6];
    CHECK_OK(cn_st_read_f32(f, "layer1.weight", got, 6));
    CHECK(memcmp(got, w, sizeof w) == 0, "read_f32 differs");

    CHECK_OK(cn_st_get(f, "scalar", &info));
    CHECK(info.ndim == 0 && info.numel == 1 && info.nbytes == 4, "0-D tensor has one element");
    CHECK_OK(cn_st_read_f32(f, "scalar", got, 1));
    CHECK(got[0] == -2.5f, "scalar %g", got[0]);

    CHECK_OK(cn_st_get(f, "empty", &info));
    CHECK(info.ndim == 2 && info.shape[0] == 0 && info.shape[1] == 4 && info.numel == 0 &&
              info.data == NULL,
          "empty tensor info");
    CHECK_OK(cn_st_read_f32(f, "empty", NULL, 0));

    CHECK_OK(cn_st_read_f32(f, "doubles", got, 3));
    CHECK(got[0] == (float)(1.0 / 3.0) && got[1] == -INFINITY && got[2] == 0.0f,
          "F64 converts to the nearest float: %g %g %g", got[0], got[1], got[2]);
    CHECK_OK(cn_st_get(f, "doubles", &info));
    CHECK(info.dtype == CN_ST_F64 && memcmp(info.data, d, sizeof d) == 0, "F64 bytes kept");

    int64_t iv[32];
    CHECK_OK(cn_st_read_i64(f, "optim.step", iv, 1));
    CHECK(iv[0] == step, "step %lld", (long long)iv[0]);
    CHECK_OK(cn_st_read_i64(f, "extremes", iv, 2));
    CHECK(iv[0] == INT64_MIN && iv[1] == INT64_MAX, "int64 extremes");
    CHECK_OK(cn_st_read_i64(f, "ints", iv, 2));
    CHECK(iv[0] == -7 && iv[1] == 2147483647, "I32 widens exactly");
    CHECK_OK(cn_st_read_i64(f, "rng.state", iv, 32));
    for (int i = 0; i < 32; i++) CHECK(iv[i] == rng[i], "U8 byte %d", i);
    CHECK_OK(cn_st_get(f, "rng.state", &info));
    CHECK(info.dtype == CN_ST_U8 && memcmp(info.data, rng, 32) == 0, "U8 bytes kept");
    cn_st_close(f);
}

static void metadata_round_trips_escapes_and_unicode(void)
{
    static const char *const kv[][2] = {
        {"epoch", "12"},
        {"quote\"back\\slash", "line1\nline2\ttab\r\b\f"},
        {"ctl", "\x01\x1f\x7f"},
        {"pi", "\xcf\x80 = 3.14159"},  /* U+03C0, 2 bytes */
        {"\xe2\x82\xac", "euro"},      /* U+20AC, 3 bytes */
        {"emoji", "\xf0\x9f\x98\x80"}, /* U+1F600, 4 bytes */
        {"empty", ""},
        {"slash", "a/b"},
    };
    cn_st_writer *w;
    CHECK_OK(cn_st_writer_new(&w));
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        CHECK_OK(cn_st_writer_meta(w, kv[i][0], kv[i][1]));
    CHECK_OK(cn_st_writer_meta(w, "epoch", "13")); /* replaces */
    char path[512];
    CHECK_OK(cn_st_writer_write(w, tl_path(path, sizeof path, "meta.safetensors")));
    cn_st_writer_free(w);

    cn_st_file *f;
    CHECK_OK(cn_st_open(path, &f));
    CHECK(cn_st_count(f) == 0, "no tensors");
    CHECK(cn_st_meta_count(f) == 8, "meta count %zu", cn_st_meta_count(f));
    CHECK(strcmp(cn_st_meta(f, "epoch"), "13") == 0, "a later value replaces an earlier one");
    for (size_t i = 1; i < sizeof kv / sizeof kv[0]; i++) {
        const char *v = cn_st_meta(f, kv[i][0]);
        CHECK(v && strcmp(v, kv[i][1]) == 0, "key %zu: got \"%s\"", i, v ? v : "(null)");
    }
    CHECK(cn_st_meta(f, "missing") == NULL, "absent key gives NULL");
    for (size_t i = 1; i < cn_st_meta_count(f); i++)
        CHECK(strcmp(cn_st_meta_key(f, i - 1), cn_st_meta_key(f, i)) < 0, "keys sorted");
    cn_st_close(f);

    /* The escapes on disk are serde_json's, so Python and Rust read them. */
    size_t len;
    unsigned char *buf = read_file(path, &len);
    CHECK(buf, "cannot read back");
    int ok = contains(buf, len, "\"ctl\":\"\\u0001\\u001f\x7f\"") &&
             contains(buf, len, "\"line1\\nline2\\ttab\\r\\b\\f\"") &&
             contains(buf, len, "\"quote\\\"back\\\\slash\"") && contains(buf, len, "\"a/b\"") &&
             contains(buf, len, "\"\xcf\x80 = 3.14159\"");
    free(buf);
    CHECK(ok, "escapes differ from serde_json's");
}

/* The reference implementation's own test vector (test_serialization_forced_
 * alignement in safetensors/src/tensor.rs): a 65-byte header padded with 7
 * spaces to 72, then the floats. */
static void tiny_file_matches_the_reference_bytes(void)
{
    static const unsigned char want[] =
        "\x48\0\0\0\0\0\0\0"
        "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       "
        "\0\0\0\0"
        "\0\0\x80\x3f"
        "\0\0\0\x40"
        "\0\0\x40\x40"
        "\0\0\x80\x40"
        "\0\0\xa0\x40";
    float v[6] = {0, 1, 2, 3, 4, 5};
    int64_t shape[4] = {1, 1, 2, 3};
    cn_st_writer *w;
    CHECK_OK(cn_st_writer_new(&w));
    CHECK_OK(cn_st_writer_add(w, "attn0", 4, shape, v));
    char path[512];
    CHECK_OK(cn_st_writer_write(w, tl_path(path, sizeof path, "tiny.safetensors")));
    cn_st_writer_free(w);
    size_t len;
    unsigned char *got = read_file(path, &len);
    CHECK(got, "cannot read back");
    int same = len == sizeof want - 1 && memcmp(got, want, len) == 0;
    free(got);
    CHECK(same, "bytes differ (length %zu, want %zu)", len, sizeof want - 1);
}

/* The reference's empty files ("test_empty"), and the order it gives mixed
 * dtypes: metadata first, then descending alignment (I64, F32, U8), offsets
 * contiguous, the 195-byte header padded to 200. */
static void header_order_and_padding_match_the_reference(void)
{
    static const unsigned char empty[] = "\x08\0\0\0\0\0\0\0{}      ";
    static const unsigned char empty_meta[] =
        "\x28\0\0\0\0\0\0\0{\"__metadata__\":{\"framework\":\"pt\"}}     ";
    static const unsigned char mixed[] =
        "\xc8\0\0\0\0\0\0\0"
        "{\"__metadata__\":{\"epoch\":\"3\"},"
        "\"step\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
        "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
        "\"rng\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[16,19]}}     "
        "\x07\0\0\0\0\0\0\0"
        "\0\0\x80\x3f"
        "\0\0\0\xc0"
        "\x01\x02\x03";
    char path[512];
    tl_path(path, sizeof path, "order.safetensors");
    for (int c = 0; c < 3; c++) {
        cn_st_writer *w;
        CHECK_OK(cn_st_writer_new(&w));
        const unsigned char *want = c == 0 ? empty : c == 1 ? empty_meta : mixed;
        size_t want_len = c == 0   ? sizeof empty - 1
                          : c == 1 ? sizeof empty_meta - 1
                                   : sizeof mixed - 1;
        int64_t step = 7, s2[1] = {2}, s3[1] = {3};
        float f[2] = {1.0f, -2.0f};
        uint8_t r[3] = {1, 2, 3};
        if (c == 1) CHECK_OK(cn_st_writer_meta(w, "framework", "pt"));
        if (c == 2) {
            CHECK_OK(cn_st_writer_add_u8(w, "rng", 1, s3, r));
            CHECK_OK(cn_st_writer_add(w, "w", 1, s2, f));
            CHECK_OK(cn_st_writer_add_i64(w, "step", 0, NULL, &step));
            CHECK_OK(cn_st_writer_meta(w, "epoch", "3"));
        }
        CHECK_OK(cn_st_writer_write(w, path));
        cn_st_writer_free(w);
        size_t len;
        unsigned char *got = read_file(path, &len);
        CHECK(got, "cannot read back");
        int same = len == want_len && memcmp(got, want, len) == 0;
        if (!same) printf("  got: %.*s\n", (int)len - 8, (const char *)got + 8);
        free(got);
        CHECK(same, "case %d: bytes differ (length %zu, want %zu)", c, len, want_len);
        cn_st_file *f2;
        CHECK_OK(cn_st_open(path, &f2));
        cn_st_close(f2);
    }
}

static void every_name_length_pads_the_header_to_8_bytes(void)
{
    char name[40], path[512];
    tl_path(path, sizeof path, "pad.safetensors");
    for (int n = 1; n <= 24; n++) {
        memset(name, 'a', (size_t)n);
        name[n] = '\0';
        double d = n;
        int64_t one[1] = {1};
        cn_st_writer *w;
        CHECK_OK(cn_st_writer_new(&w));
        CHECK_OK(cn_st_writer_add_raw(w, name, CN_ST_F64, 1, one, &d));
        CHECK_OK(cn_st_writer_write(w, path));
        cn_st_writer_free(w);
        size_t len;
        unsigned char *buf = read_file(path, &len);
        CHECK(buf, "cannot read back");
        uint64_t h = 0;
        for (int i = 7; i >= 0; i--) h = h << 8 | buf[i];
        int ok = h % 8 == 0 && len == 8 + h + 8 && buf[8 + h - 1] != '\0';
        free(buf);
        CHECK(ok, "name length %d: header length %llu, file %zu bytes", n, (unsigned long long)h,
              len);
    }
}

static void header_entries_may_come_in_any_order_with_whitespace(void)
{
    /* JSON objects are unordered: offsets, not listing order, place data. */
    const char *json = " \t\r\n{ \"b\" : { \"data_offsets\" : [ 4 , 8 ] , \"shape\":[1],"
                       "\"dtype\":\"F32\"},\n\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
                       "\"data_offsets\":[0,4]}, \"__metadata__\":{} }\n   ";
    cn_st_file *f;
    CHECK_OK(cn_st_open(make_file(json, 8), &f));
    cn_st_info a, b;
    CHECK_OK(cn_st_get(f, "a", &a));
    CHECK_OK(cn_st_get(f, "b", &b));
    CHECK(memcmp(a.data, "\0\1\2\3", 4) == 0 && memcmp(b.data, "\4\5\6\7", 4) == 0,
          "offsets decide where each tensor's bytes are");
    CHECK(cn_st_meta_count(f) == 0, "empty metadata");
    cn_st_close(f);
}

static void readers_check_names_counts_and_dtypes(void)
{
    const char *json = "{\"w\":{\"dtype\":\"F32\",\"shape\":[5,5],\"data_offsets\":[0,100]},"
                       "\"n\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[100,108]}}";
    cn_st_file *f;
    CHECK_OK(cn_st_open(make_file(json, 108), &f));
    float buf[25];
    int64_t iv[1];
    cn_st_info info;
    CHECK(cn_st_read_f32(f, "w", buf, 24) == CN_ERR_INVALID_ARG, "wrong count accepted");
    CHECK(strstr(cn_last_error(), "'w' has 25 elements (shape [5,5]), the caller expects 24"),
          "message: %s", cn_last_error());
    CHECK(cn_st_read_f32(f, "n", buf, 1) == CN_ERR_INVALID_ARG, "I64 read as floats");
    CHECK(strstr(cn_last_error(), "'n' is I64"), "message: %s", cn_last_error());
    CHECK(cn_st_read_i64(f, "w", iv, 25) == CN_ERR_INVALID_ARG, "F32 read as integers");
    CHECK(cn_st_get(f, "missing", &info) == CN_ERR_INVALID_ARG, "missing name found");
    CHECK(strstr(cn_last_error(), "no tensor named 'missing'"), "message: %s", cn_last_error());
    CHECK(cn_st_read_f32(f, "W", buf, 25) == CN_ERR_INVALID_ARG, "names are case-sensitive");
    CHECK_OK(cn_st_read_f32(f, "w", buf, 25));
    cn_st_close(f);
}

static void writer_rejects_names_it_cannot_write(void)
{
    cn_st_writer *w;
    CHECK_OK(cn_st_writer_new(&w));
    float x = 1;
    int64_t neg[1] = {-1}, wraps[2] = {INT64_C(1) << 32, INT64_C(1) << 32};
    CHECK_OK(cn_st_writer_add(w, "x", 0, NULL, &x));
    struct {
        const char *name;
        int ndim;
        const int64_t *shape;
        cn_status s;
        const char *msg;
    } cases[] = {
        {"x", 0, NULL, CN_ERR_INVALID_ARG, "'x' added twice"},
        {"", 0, NULL, CN_ERR_INVALID_ARG, "empty tensor name"},
        {"__metadata__", 0, NULL, CN_ERR_INVALID_ARG, "reserved"},
        {"bad\xff", 0, NULL, CN_ERR_INVALID_ARG, "not valid UTF-8"},
        {"neg", 1, neg, CN_ERR_INVALID_ARG, "negative"},
        {"wraps", 2, wraps, CN_ERR_OVERFLOW, "overflows"},
        {"six", 6, neg, CN_ERR_INVALID_ARG, "ndim=6"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cn_status s = cn_st_writer_add(w, cases[i].name, cases[i].ndim, cases[i].shape, &x);
        CHECK(s == cases[i].s && strstr(cn_last_error(), cases[i].msg), "case %zu: %s: %s", i,
              cn_status_str(s), cn_last_error());
    }
    CHECK(cn_st_writer_meta(w, "k", "\xc0\x80") == CN_ERR_INVALID_ARG, "overlong UTF-8 value");
    CHECK(cn_st_writer_write(w, "/nonexistent-dir/x.safetensors") == CN_ERR_IO,
          "write into a missing directory");
    CHECK(strncmp(cn_last_error(), "safetensors: ", 13) == 0, "message: %s", cn_last_error());
    cn_st_writer_free(w);
}

/* ---- rejection ----------------------------------------------------------- */

static void truncated_files_are_rejected(void)
{
    char path[512];
    tl_path(path, sizeof path, "short.safetensors");
    cn_st_file *f;
    for (size_t n = 0; n < 8; n++) {
        CHECK(write_file(path, "\x02\0\0\0\0\0\0\0", n) == 0, "write");
        CHECK(cn_st_open(path, &f) == CN_ERR_FORMAT, "%zu-byte file accepted", n);
        CHECK(strstr(cn_last_error(), "too short for the 8-byte header length"), "message: %s",
              cn_last_error());
    }
    const char *p = make_raw("past.safetensors", 100, "{}", 2, 48);
    CHECK(cn_st_open(p, &f) == CN_ERR_FORMAT, "header past EOF accepted");
    CHECK(strstr(cn_last_error(), "header length 100 runs past the end of the file (50 bytes"),
          "message: %s", cn_last_error());
    static const reject_case cases[] = {
        {"data shorter than the offsets",
         "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 20, CN_ERR_FORMAT,
         "'w' data_offsets [0,24] end past the 20 bytes of data"},
        {"no data at all", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 0,
         CN_ERR_FORMAT, "end past the 0 bytes of data"},
    };
    CHECK_REJECTS(cases);
    CHECK(cn_st_open(tl_path(path, sizeof path, "does-not-exist"), &f) == CN_ERR_IO,
          "missing file");
    CHECK(strncmp(cn_last_error(), "safetensors: ", 13) == 0, "message: %s", cn_last_error());
}

static void huge_header_lengths_are_rejected_before_allocation(void)
{
    cn_st_file *f;
    const char *p = make_raw("h63.safetensors", UINT64_C(1) << 63, "{}", 2, 0);
    CHECK(cn_st_open(p, &f) == CN_ERR_FORMAT, "2^63 accepted");
    CHECK(strstr(cn_last_error(), "header length 9223372036854775808 exceeds the limit of "
                                  "100000000 bytes"),
          "message: %s", cn_last_error());
    p = make_raw("hmax.safetensors", UINT64_MAX, "{}", 2, 0);
    CHECK(cn_st_open(p, &f) == CN_ERR_FORMAT, "2^64-1 accepted");
    p = make_raw("h1e8.safetensors", 100000001, "{}", 2, 0);
    CHECK(cn_st_open(p, &f) == CN_ERR_FORMAT, "100,000,001 accepted");
    CHECK(strstr(cn_last_error(), "header length 100000001 exceeds"), "message: %s",
          cn_last_error());
    /* The limit itself is allowed; this file is just too short for it. */
    p = make_raw("hlim.safetensors", 100000000, "{}", 2, 0);
    CHECK(cn_st_open(p, &f) == CN_ERR_FORMAT, "short file accepted");
    CHECK(strstr(cn_last_error(), "runs past the end"), "message: %s", cn_last_error());
}

static void headers_that_are_not_one_json_object_are_rejected(void)
{
    static const reject_case cases[] = {
        {"empty header", "", 0, CN_ERR_FORMAT, "not valid JSON: byte 0: unexpected end"},
        {"not JSON", "hello", 0, CN_ERR_FORMAT, "not valid JSON: byte 0: unexpected 'h'"},
        {"an array", "[1,2]", 0, CN_ERR_FORMAT, "header is an array, not a JSON object"},
        {"a string", "\"x\"", 0, CN_ERR_FORMAT, "header is a string, not a JSON object"},
        {"trailing garbage", "{}  x", 0, CN_ERR_FORMAT,
         "byte 4: unexpected 'x' after the end of the JSON value"},
        {"a second value", "{}{}", 0, CN_ERR_FORMAT, "after the end of the JSON value"},
        {"trailing comma", "{\"__metadata__\":{},}", 0, CN_ERR_FORMAT, "expected a string key"},
        {"unterminated object", "{\"__metadata__\":{}", 0, CN_ERR_FORMAT,
         "unexpected end of text inside an object"},
        {"single quotes", "{'a':1}", 0, CN_ERR_FORMAT, "expected a string key"},
        {"bare word", "{\"__metadata__\":{\"a\":nul}}", 0, CN_ERR_FORMAT,
         "invalid literal (expected null)"},
        {"leading zero", "{\"w\":{\"shape\":[01]}}", 0, CN_ERR_FORMAT,
         "expected ',' or ']', found '1'"},
        {"depth bomb in metadata",
         "{\"__metadata__\":{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
         "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
         0, CN_ERR_FORMAT, "byte 35: nested deeper than 16 levels"},
        {"depth 17 of objects",
         "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{"
         "\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}}}}}}}}}}}}}",
         0, CN_ERR_FORMAT, "nested deeper than 16 levels"},
    };
    CHECK_REJECTS(cases);
    cn_st_file *f;
    CHECK(cn_st_open(make_raw("nul.safetensors", 3, "{}\0", 3, 0), &f) == CN_ERR_FORMAT,
          "NUL padding accepted (the format pads with spaces)");
    CHECK(strstr(cn_last_error(), "byte 2: unexpected 0x00 after the end"), "message: %s",
          cn_last_error());
    /* Exactly 16 levels is valid JSON; it then fails on meaning instead. */
    const char *p = make_file("{\"__metadata__\":{\"a\":[[[[[[[[[[[[[[]]]]]]]]]]]]]]}}", 0);
    CHECK(cn_st_open(p, &f) == CN_ERR_FORMAT, "accepted");
    CHECK(strstr(cn_last_error(), "metadata 'a' is an array, not a string"), "message: %s",
          cn_last_error());
}

/* A depth bomb as large as a real attack: 10 MB of '[' is refused at the
 * 17th level, without recursing deeper or allocating anything per level. */
static void a_ten_megabyte_depth_bomb_fails_fast(void)
{
    size_t n = 10u << 20;
    char *json = malloc(n + 1);
    CHECK(json, "malloc");
    memcpy(json, "{\"__metadata__\":{\"a\":", 21);
    memset(json + 21, '[', n - 21);
    json[n] = '\0';
    const char *p = make_raw("bomb.safetensors", n, json, n, 0);
    free(json);
    CHECK(p, "cannot write the bomb");
    cn_st_file *f;
    cn_status s = cn_st_open(p, &f);
    remove(p);
    CHECK(s == CN_ERR_FORMAT, "accepted");
    CHECK(strstr(cn_last_error(), "nested deeper than 16 levels"), "message: %s", cn_last_error());
}

static void strings_must_be_valid_utf8_with_valid_escapes(void)
{
    static const reject_case cases[] = {
        {"unknown escape", "{\"__metadata__\":{\"a\":\"x\\qy\"}}", 0, CN_ERR_FORMAT,
         "invalid escape \\q in a string"},
        {"escaped single quote", "{\"__metadata__\":{\"a\":\"\\'\"}}", 0, CN_ERR_FORMAT,
         "invalid escape \\' in a string"},
        {"short \\u", "{\"__metadata__\":{\"a\":\"\\u12\"}}", 0, CN_ERR_FORMAT,
         "invalid \\u escape (needs 4 hex digits)"},
        {"non-hex \\u", "{\"__metadata__\":{\"a\":\"\\u12G4\"}}", 0, CN_ERR_FORMAT,
         "invalid \\u escape"},
        {"lone high surrogate", "{\"__metadata__\":{\"a\":\"\\ud800x\"}}", 0, CN_ERR_FORMAT,
         "\\ud800 is a high surrogate without a low one"},
        {"high + non-surrogate", "{\"__metadata__\":{\"a\":\"\\ud800\\u0041\"}}", 0, CN_ERR_FORMAT,
         "high surrogate without a low one"},
        {"lone low surrogate", "{\"__metadata__\":{\"a\":\"\\udc00\"}}", 0, CN_ERR_FORMAT,
         "\\udc00 is a lone low surrogate"},
        {"raw newline", "{\"__metadata__\":{\"a\":\"x\ny\"}}", 0, CN_ERR_FORMAT,
         "raw control character 0x0a"},
        {"invalid byte", "{\"__metadata__\":{\"a\":\"\xff\"}}", 0, CN_ERR_FORMAT,
         "invalid UTF-8 in a string"},
        {"overlong NUL", "{\"__metadata__\":{\"a\":\"\xc0\x80\"}}", 0, CN_ERR_FORMAT,
         "invalid UTF-8"},
        {"encoded surrogate", "{\"__metadata__\":{\"a\":\"\xed\xa0\x80\"}}", 0, CN_ERR_FORMAT,
         "invalid UTF-8"},
        {"past U+10FFFF", "{\"__metadata__\":{\"a\":\"\xf4\x90\x80\x80\"}}", 0, CN_ERR_FORMAT,
         "invalid UTF-8"},
        {"cut sequence", "{\"__metadata__\":{\"a\":\"\xe2\x82\"}}", 0, CN_ERR_FORMAT,
         "invalid UTF-8"},
        {"unterminated string", "{\"__metadata__\":{\"a\":\"abc", 0, CN_ERR_FORMAT,
         "unterminated string"},
        {"bad key escape", "{\"w\\x\":{}}", 0, CN_ERR_FORMAT, "invalid escape"},
        {"NUL in a name", "{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}}",
         1, CN_ERR_FORMAT, "tensor name 'a'... contains \\u0000"},
        {"NUL in a value", "{\"__metadata__\":{\"a\":\"x\\u0000\"}}", 0, CN_ERR_FORMAT,
         "metadata 'a' contains \\u0000"},
    };
    CHECK_REJECTS(cases);
    /* Valid escapes, pairs included, decode to UTF-8. */
    cn_st_file *f;
    CHECK_OK(cn_st_open(make_file("{\"__metadata__\":{\"k\\u00e9\":\"\\ud83d\\ude00\\u20AC\\/"
                                  "\\\"\"}}",
                                  0),
                        &f));
    const char *v = cn_st_meta(f, "k\xc3\xa9");
    int ok = v && strcmp(v, "\xf0\x9f\x98\x80\xe2\x82\xac/\"") == 0;
    cn_st_close(f);
    CHECK(ok, "decoded value \"%s\"", v ? v : "(null)");
}

static void entries_must_have_exactly_dtype_shape_and_offsets(void)
{
    static const reject_case cases[] = {
        {"unsupported dtype", "{\"w\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,2]}}",
         2, CN_ERR_UNSUPPORTED, "'w' has dtype 'BF16', which convnet does not read"},
        {"unknown dtype", "{\"w\":{\"dtype\":\"float32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         CN_ERR_UNSUPPORTED, "dtype 'float32'"},
        {"dtype not a string", "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         CN_ERR_FORMAT, "'w' dtype is a number, not a string"},
        {"missing dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, CN_ERR_FORMAT,
         "'w' lacks 'dtype'"},
        {"missing shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, CN_ERR_FORMAT,
         "'w' lacks 'shape'"},
        {"missing offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, CN_ERR_FORMAT,
         "'w' lacks 'data_offsets'"},
        {"extra key",
         "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"offsets\":[0,4]}}", 4,
         CN_ERR_FORMAT, "'w' has unknown key 'offsets'"},
        {"repeated key",
         "{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         CN_ERR_FORMAT, "'w' has key 'dtype' twice"},
        {"entry not an object", "{\"w\":[0,4]}", 4, CN_ERR_FORMAT,
         "'w' is described by an array, not an object"},
        {"negative dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,0]}}", 0,
         CN_ERR_FORMAT, "'w' shape entry 1 is negative (-1)"},
        {"fractional dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4,
         CN_ERR_FORMAT, "1.0 is not an integer"},
        {"exponent dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1e2],\"data_offsets\":[0,4]}}", 4,
         CN_ERR_FORMAT, "1e2 is not an integer"},
        {"dim above 2^53",
         "{\"w\":{\"dtype\":\"U8\",\"shape\":[9007199254740993],\"data_offsets\":[0,4]}}", 4,
         CN_ERR_FORMAT, "integer 9007199254740993 is larger than 2^53"},
        {"dim with 30 digits",
         "{\"w\":{\"dtype\":\"U8\",\"shape\":[123456789012345678901234567890],"
         "\"data_offsets\":[0,4]}}",
         4, CN_ERR_FORMAT, "is larger than 2^53"},
        {"string dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
         CN_ERR_FORMAT, "'w' shape holds a string, not an integer"},
        {"shape not an array", "{\"w\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8,
         CN_ERR_FORMAT, "'w' shape is a number, not an array"},
        {"six dimensions",
         "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
         CN_ERR_UNSUPPORTED, "'w' has more than 5 dimensions"},
        {"shape product overflow",
         "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0,
         CN_ERR_FORMAT, "'w' shape [4294967296,4294967296]: element count overflows"},
        {"byte count overflow",
         "{\"w\":{\"dtype\":\"F64\",\"shape\":[4611686018427387,4096],\"data_offsets\":[0,0]}}", 0,
         CN_ERR_FORMAT, "overflows"},
        {"three offsets", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,1]}}", 1,
         CN_ERR_FORMAT, "data_offsets has more than 2 entries"},
        {"one offset", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1]}}", 1,
         CN_ERR_FORMAT, "data_offsets has 1 entries, not 2"},
        {"negative offset", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 1,
         CN_ERR_FORMAT, "data_offsets entry 0 is negative (-1)"},
        {"size mismatch",
         "{\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[5,5],"
         "\"data_offsets\":[0,96]}}",
         96, CN_ERR_FORMAT,
         "tensor 'conv1.weight' data_offsets [0,96] hold 96 bytes, dtype F32 x shape [5,5] "
         "needs 100"},
        {"empty name", "{\"\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
         CN_ERR_FORMAT, "a tensor has an empty name"},
        {"metadata not an object", "{\"__metadata__\":[\"a\"]}", 0, CN_ERR_FORMAT,
         "'__metadata__' is an array, not an object"},
        {"metadata number", "{\"__metadata__\":{\"epoch\":3}}", 0, CN_ERR_FORMAT,
         "metadata 'epoch' is a number, not a string"},
        {"metadata null", "{\"__metadata__\":{\"epoch\":null}}", 0, CN_ERR_FORMAT,
         "metadata 'epoch' is null, not a string"},
        {"metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, CN_ERR_FORMAT,
         "'__metadata__' appears twice"},
        {"metadata key twice", "{\"__metadata__\":{\"a\":\"1\",\"b\":\"2\",\"a\":\"3\"}}", 0,
         CN_ERR_FORMAT, "metadata 'a' appears twice"},
    };
    CHECK_REJECTS(cases);
}

static void tensors_must_tile_the_data_buffer_exactly(void)
{
    static const reject_case cases[] = {
        {"offsets out of order", "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]}}",
         4, CN_ERR_FORMAT, "'w' data_offsets [4,0] are out of order (begin > end)"},
        {"hole between tensors",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         12, CN_ERR_FORMAT, "data bytes [4,8) belong to no tensor (a hole before tensor 'b'"},
        {"hole at the start", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
         CN_ERR_FORMAT, "data bytes [0,4) belong to no tensor"},
        {"overlapping tensors",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         8, CN_ERR_FORMAT, "'b' data_offsets [4,8] overlap tensor 'a' at [0,8]"},
        {"two tensors sharing bytes",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
         4, CN_ERR_FORMAT, "overlap tensor"},
        {"duplicate names",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         8, CN_ERR_FORMAT, "tensor 'a' appears twice"},
        {"end past the buffer", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         7, CN_ERR_FORMAT, "'a' data_offsets [0,8] end past the 7 bytes of data"},
        {"buffer longer than the last end",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 9, CN_ERR_FORMAT,
         "the data is 9 bytes but the tensors end at byte 8 (1 bytes unaccounted for)"},
        {"data without tensors", "{}", 1, CN_ERR_FORMAT,
         "the data is 1 bytes but the tensors end at byte 0"},
    };
    CHECK_REJECTS(cases);
    /* Empty tensors take no bytes and may sit anywhere a tensor may start. */
    cn_st_file *f;
    CHECK_OK(cn_st_open(make_file("{\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                                  "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                                  "\"e\":{\"dtype\":\"F64\",\"shape\":[3,0],\"data_offsets\":[0,0]}"
                                  "}",
                                  4),
                        &f));
    CHECK(cn_st_count(f) == 3, "count %zu", cn_st_count(f));
    cn_st_close(f);
}

/* Random single-byte corruptions and truncations of a valid checkpoint must
 * either fail with a file error or open a file whose tensors tile its data;
 * run under the sanitizers this is a small fuzzer. */
static void corrupted_files_fail_cleanly_or_stay_consistent(void)
{
    float w[12];
    tl_fill(w, 12, -1, 1);
    int64_t s34[2] = {3, 4}, step = 5;
    cn_st_writer *wr;
    CHECK_OK(cn_st_writer_new(&wr));
    CHECK_OK(cn_st_writer_add(wr, "conv.w", 2, s34, w));
    CHECK_OK(cn_st_writer_add_i64(wr, "step", 0, NULL, &step));
    CHECK_OK(cn_st_writer_meta(wr, "note", "caf\xc3\xa9 \"x\""));
    char path[512];
    CHECK_OK(cn_st_writer_write(wr, tl_path(path, sizeof path, "good.safetensors")));
    cn_st_writer_free(wr);
    size_t len;
    unsigned char *good = read_file(path, &len);
    CHECK(good, "cannot read back");
    unsigned char *bad = malloc(len);
    if (!bad) free(good);
    CHECK(bad, "malloc");
    tl_path(path, sizeof path, "bad.safetensors");
    int opened = 0;
    for (int trial = 0; trial < 3000 && tl_ok(); trial++) {
        memcpy(bad, good, len);
        size_t n = len;
        if (trial % 4 == 3) {
            n = (size_t)tl_randint(0, (int)len - 1);
        } else {
            /* Mostly the header, where the parser lives. */
            size_t at = (size_t)tl_randint(0, trial % 2 ? (int)len - 1 : 120);
            bad[at] = (unsigned char)tl_randint(0, 255);
        }
        if (write_file(path, bad, n)) break;
        cn_st_file *f;
        cn_status s = cn_st_open(path, &f);
        if (s != CN_OK) {
            if (s != CN_ERR_FORMAT && s != CN_ERR_UNSUPPORTED)
                tl_fail(__FILE__, __LINE__, "trial %d: status %s: %s", trial, cn_status_str(s),
                        cn_last_error());
            continue;
        }
        opened++;
        size_t total = 0;
        for (size_t i = 0; i < cn_st_count(f); i++) {
            cn_st_info info;
            if (cn_st_get(f, cn_st_name(f, i), &info) != CN_OK) {
                tl_fail(__FILE__, __LINE__, "trial %d: listed name not found", trial);
                break;
            }
            total += info.nbytes;
        }
        uint64_t h = 0;
        for (int i = 7; i >= 0; i--) h = h << 8 | bad[i];
        if (total != n - 8 - h)
            tl_fail(__FILE__, __LINE__, "trial %d: tensors hold %zu of %zu data bytes", trial,
                    total, (size_t)(n - 8 - h));
        cn_st_close(f);
    }
    free(bad);
    free(good);
    CHECK(opened > 0, "no corruption left the file readable (data bytes should)");
}

int main(void)
{
    TL_RUN(round_trip_keeps_every_tensor_bit_for_bit);
    TL_RUN(metadata_round_trips_escapes_and_unicode);
    TL_RUN(tiny_file_matches_the_reference_bytes);
    TL_RUN(header_order_and_padding_match_the_reference);
    TL_RUN(every_name_length_pads_the_header_to_8_bytes);
    TL_RUN(header_entries_may_come_in_any_order_with_whitespace);
    TL_RUN(readers_check_names_counts_and_dtypes);
    TL_RUN(writer_rejects_names_it_cannot_write);
    TL_RUN(truncated_files_are_rejected);
    TL_RUN(huge_header_lengths_are_rejected_before_allocation);
    TL_RUN(headers_that_are_not_one_json_object_are_rejected);
    TL_RUN(a_ten_megabyte_depth_bomb_fails_fast);
    TL_RUN(strings_must_be_valid_utf8_with_valid_escapes);
    TL_RUN(entries_must_have_exactly_dtype_shape_and_offsets);
    TL_RUN(tensors_must_tile_the_data_buffer_exactly);
    TL_RUN(corrupted_files_fail_cleanly_or_stay_consistent);
    return tl_summary();
}
