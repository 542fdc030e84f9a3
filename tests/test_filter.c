/* Image I/O, classic filters and the `convnet filter` command. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "internal.h"
#include "testlib.h"

static cn_tensor *image_new(int64_t H, int64_t W, int64_t C)
{
    int64_t shape[3] = {H, W, C};
    cn_tensor *t;
    return cn_tensor_new(&t, 3, shape) == CN_OK ? t : NULL;
}

/* Random integers 0..255, the values a PNG holds exactly. */
static cn_tensor *image_random(int64_t H, int64_t W, int64_t C)
{
    cn_tensor *t = image_new(H, W, C);
    if (t)
        for (size_t i = 0; i < t->size; i++) t->data[i] = (float)tl_randint(0, 255);
    return t;
}

static float px(const cn_tensor *t, int64_t y, int64_t x, int64_t c)
{
    return t->data[(y * t->shape[1] + x) * t->shape[2] + c];
}

/* Reflect index (edge excluded), the padding cn_image_filter promises. */
static int64_t reflect(int64_t i, int64_t n)
{
    if (i < 0) return -i;
    if (i >= n) return 2 * (n - 1) - i;
    return i;
}

/* ---- filters ---------------------------------------------------------- */

static void sobel_x_of_a_vertical_step_is_nonzero_only_at_the_edge_columns(void)
{
    /* Columns 0..3 are 10, columns 4..7 are 110: intensity rises left to right. */
    cn_tensor *img = image_new(6, 8, 1), *out;
    CHECK(img, "alloc");
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 8; x++) img->data[y * 8 + x] = x < 4 ? 10.0f : 110.0f;
    cn_filter_spec f = {CN_FILTER_SOBEL_X, 0, NULL};
    CHECK_OK(cn_image_filter(NULL, &f, img, &out));
    CHECK(out->ndim == 3 && out->shape[0] == 6 && out->shape[1] == 8 && out->shape[2] == 1,
          "shape kept");
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 8; x++) {
            /* Each of columns 3 and 4 sees a rise of 100 across its 1-2-1 rows. */
            float want = (x == 3 || x == 4) ? 400.0f : 0.0f;
            CHECK(fabsf(px(out, y, x, 0) - want) < 1e-3f, "(%d,%d): %g, want %g", y, x,
                  px(out, y, x, 0), want);
        }
    cn_tensor_free(out);

    cn_filter_spec fy = {CN_FILTER_SOBEL_Y, 0, NULL};
    CHECK_OK(cn_image_filter(NULL, &fy, img, &out));
    for (size_t i = 0; i < out->size; i++)
        CHECK(fabsf(out->data[i]) < 1e-3f, "sobel-y of a vertical edge at %zu: %g", i,
              out->data[i]);
    cn_tensor_free(out);
    cn_tensor_free(img);
}

static void sobel_x_is_negative_where_intensity_falls(void)
{
    cn_tensor *img = image_new(5, 6, 1), *out;
    CHECK(img, "alloc");
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 6; x++) img->data[y * 6 + x] = x < 3 ? 200.0f : 0.0f;
    cn_filter_spec f = {CN_FILTER_SOBEL_X, 0, NULL};
    CHECK_OK(cn_image_filter(NULL, &f, img, &out));
    CHECK(fabsf(px(out, 2, 2, 0) + 800.0f) < 1e-3f && fabsf(px(out, 2, 3, 0) + 800.0f) < 1e-3f,
          "edge columns %g %g, want -800", px(out, 2, 2, 0), px(out, 2, 3, 0));
    cn_tensor_free(out);
    cn_tensor_free(img);
}

static void sobel_magnitude_peaks_at_255_and_a_flat_image_stays_zero(void)
{
    cn_tensor *img = image_new(9, 9, 2), *out;
    CHECK(img, "alloc");
    /* Channel 0: a bright square; channel 1: flat. */
    for (int y = 0; y < 9; y++)
        for (int x = 0; x < 9; x++) {
            img->data[(y * 9 + x) * 2] = (y >= 3 && y < 6 && x >= 3 && x < 6) ? 50.0f : 0.0f;
            img->data[(y * 9 + x) * 2 + 1] = 77.0f;
        }
    cn_filter_spec f = {CN_FILTER_SOBEL, 0, NULL};
    CHECK_OK(cn_image_filter(NULL, &f, img, &out));
    float mx = 0;
    for (int i = 0; i < 81; i++) {
        float v = out->data[i * 2];
        CHECK(v >= 0.0f, "magnitude %g < 0", v);
        if (v > mx) mx = v;
        CHECK(out->data[i * 2 + 1] == 0.0f, "flat channel at %d: %g", i, out->data[i * 2 + 1]);
    }
    CHECK(fabsf(mx - 255.0f) < 1e-3f, "max %g, want 255", mx);
    CHECK(px(out, 0, 0, 0) == 0.0f && px(out, 4, 4, 0) == 0.0f, "no gradient far from edges");
    cn_tensor_free(out);

    for (size_t i = 0; i < img->size; i++) img->data[i] = 0.0f;
    CHECK_OK(cn_image_filter(NULL, &f, img, &out));
    for (size_t i = 0; i < out->size; i++) CHECK(out->data[i] == 0.0f, "zero image at %zu", i);
    cn_tensor_free(out);
    cn_tensor_free(img);
}

static void gaussian_keeps_a_constant_image_constant(void)
{
    const float level[3] = {1.0f, 100.0f, 250.0f};
    cn_tensor *img = image_new(20, 17, 3), *out;
    CHECK(img, "alloc");
    for (size_t i = 0; i < img->size; i++) img->data[i] = level[i % 3];
    cn_filter_spec f = {CN_FILTER_GAUSSIAN, 1.5f, NULL};
    CHECK_OK(cn_image_filter(NULL, &f, img, &out));
    for (size_t i = 0; i < out->size; i++) {
        float c = level[i % 3];
        CHECK(fabsf(out->data[i] - c) <= 1e-4f * c, "pixel %zu: %.7g, want %g", i, out->data[i],
              c);
    }
    cn_tensor_free(out);
    cn_tensor_free(img);
}

static void blurred_delta_sums_to_one_and_is_symmetric(void)
{
    const int N = 21, c = 10;
    cn_tensor *img = image_new(N, N, 1), *out;
    CHECK(img, "alloc");
    img->data[c * N + c] = 1.0f;
    cn_filter_spec f = {CN_FILTER_GAUSSIAN, 1.2f, NULL};
    CHECK_OK(cn_image_filter(NULL, &f, img, &out));
    double sum = 0;
    for (size_t i = 0; i < out->size; i++) sum += out->data[i];
    CHECK(fabs(sum - 1.0) < 1e-5, "sum %.9g", sum);
    for (int y = 0; y < N; y++)
        for (int x = 0; x < N; x++) {
            float v = px(out, y, x, 0);
            CHECK(fabsf(v - px(out, N - 1 - y, x, 0)) < 1e-7f, "not symmetric in y at (%d,%d)",
                  y, x);
            CHECK(fabsf(v - px(out, y, N - 1 - x, 0)) < 1e-7f, "not symmetric in x at (%d,%d)",
                  y, x);
            CHECK(fabsf(v - px(out, x, y, 0)) < 1e-7f, "not symmetric in x<->y at (%d,%d)", y, x);
            CHECK(v <= px(out, c, c, 0), "peak is not at the centre: (%d,%d)", y, x);
        }
    cn_tensor_free(out);
    cn_tensor_free(img);
}

static void box_of_a_constant_is_constant(void)
{
    cn_tensor *img = image_new(9, 7, 2), *out;
    CHECK(img, "alloc");
    for (size_t i = 0; i < img->size; i++) img->data[i] = i % 2 ? 42.0f : 3.0f;
    cn_filter_spec f = {CN_FILTER_BOX, 5, NULL};
    CHECK_OK(cn_image_filter(NULL, &f, img, &out));
    for (size_t i = 0; i < out->size; i++) {
        float c = i % 2 ? 42.0f : 3.0f;
        CHECK(fabsf(out->data[i] - c) <= 1e-5f * c, "pixel %zu: %.7g, want %g", i, out->data[i],
              c);
    }
    cn_tensor_free(out);
    cn_tensor_free(img);
}

static void gaussian_kernel_side_is_2_ceil_3_sigma_plus_1_and_sums_to_one(void)
{
    const float sigmas[] = {0.1f, 0.5f, 1.0f, 1.2f, 2.0f, 2.5f, 3.3f};
    for (size_t i = 0; i < sizeof sigmas / sizeof sigmas[0]; i++) {
        cn_filter_spec f = {CN_FILTER_GAUSSIAN, sigmas[i], NULL};
        cn_tensor *k;
        CHECK_OK(cn_filter_kernel(&f, &k));
        int64_t K = 2 * (int64_t)ceil(3.0 * (double)sigmas[i]) + 1;
        CHECK(k->ndim == 2 && k->shape[0] == K && k->shape[1] == K,
              "sigma %g: %lldx%lld, want %lld", sigmas[i], (long long)k->shape[0],
              (long long)k->shape[1], (long long)K);
        double sum = 0;
        for (size_t j = 0; j < k->size; j++) sum += k->data[j];
        CHECK(fabs(sum - 1.0) < 1e-5, "sigma %g: sum %.9g", sigmas[i], sum);
        cn_tensor_free(k);
    }
}

static void fixed_kernels_have_their_textbook_values(void)
{
    const float sx[9] = {-1, 0, 1, -2, 0, 2, -1, 0, 1};
    const float sy[9] = {-1, -2, -1, 0, 0, 0, 1, 2, 1};
    const float lap[9] = {0, 1, 0, 1, -4, 1, 0, 1, 0};
    const float sharp[9] = {0, -1, 0, -1, 5, -1, 0, -1, 0};
    const struct {
        cn_filter_kind kind;
        const float *want;
    } cases[] = {{CN_FILTER_SOBEL_X, sx},
                 {CN_FILTER_SOBEL, sx},
                 {CN_FILTER_SOBEL_Y, sy},
                 {CN_FILTER_LAPLACIAN, lap},
                 {CN_FILTER_SHARPEN, sharp}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cn_filter_spec f = {cases[i].kind, 0, NULL};
        cn_tensor *k;
        CHECK_OK(cn_filter_kernel(&f, &k));
        CHECK(k->shape[0] == 3 && k->shape[1] == 3, "kind %d: not 3x3", (int)cases[i].kind);
        CHECK(memcmp(k->data, cases[i].want, sizeof sx) == 0, "kind %d: wrong values",
              (int)cases[i].kind);
        cn_tensor_free(k);
    }
    cn_filter_spec f = {CN_FILTER_BOX, 3, NULL};
    cn_tensor *k;
    CHECK_OK(cn_filter_kernel(&f, &k));
    for (int j = 0; j < 9; j++) CHECK(k->data[j] == 1.0f / 9.0f, "box 3 entry %d", j);
    cn_tensor_free(k);
}

/* A double-precision reflect-padded cross-correlation to check against. */
static void filter_matches_a_direct_reflect_padded_cross_correlation(void)
{
    /* A non-square user kernel shows orientation: conv2d must not flip it. */
    int64_t ks[4] = {3, 5, 1, 1};
    cn_tensor *k, *img = image_random(7, 9, 3), *out;
    CHECK(img, "alloc");
    CHECK_OK(cn_tensor_new(&k, 4, ks));
    tl_fill(k->data, k->size, -1, 1);
    cn_filter_spec f = {CN_FILTER_KERNEL, 0, k};
    CHECK_OK(cn_image_filter(NULL, &f, img, &out));
    for (int64_t y = 0; y < 7; y++)
        for (int64_t x = 0; x < 9; x++)
            for (int64_t c = 0; c < 3; c++) {
                double ref = 0;
                for (int64_t i = 0; i < 3; i++)
                    for (int64_t j = 0; j < 5; j++)
                        ref += (double)k->data[i * 5 + j] *
                               px(img, reflect(y + i - 1, 7), reflect(x + j - 2, 9), c);
                float got = px(out, y, x, c);
                CHECK(fabs(got - ref) < 1e-3, "(%lld,%lld,%lld): %g, want %g", (long long)y,
                      (long long)x, (long long)c, got, ref);
            }
    cn_tensor_free(out);
    cn_tensor_free(img);
    cn_tensor_free(k);
}

static void two_d_images_are_filtered_as_one_channel(void)
{
    int64_t s2[2] = {6, 5};
    cn_tensor *img2, *img3 = image_random(6, 5, 1), *o2, *o3;
    CHECK(img3, "alloc");
    CHECK_OK(cn_tensor_new(&img2, 2, s2));
    memcpy(img2->data, img3->data, img3->size * sizeof(float));
    cn_filter_spec f = {CN_FILTER_LAPLACIAN, 0, NULL};
    CHECK_OK(cn_image_filter(NULL, &f, img2, &o2));
    CHECK_OK(cn_image_filter(NULL, &f, img3, &o3));
    CHECK(o2->ndim == 2 && o2->shape[0] == 6 && o2->shape[1] == 5, "[H,W] kept");
    CHECK(memcmp(o2->data, o3->data, o3->size * sizeof(float)) == 0, "same values");
    cn_tensor_free(o2);
    cn_tensor_free(o3);
    cn_tensor_free(img2);
    cn_tensor_free(img3);
}

static void invalid_filter_parameters_are_rejected_naming_the_value(void)
{
    cn_tensor *k = (cn_tensor *)1;
    const struct {
        cn_filter_kind kind;
        float param;
        const char *named;
    } bad[] = {{CN_FILTER_GAUSSIAN, 0.0f, "sigma=0"}, {CN_FILTER_GAUSSIAN, -1.5f, "sigma=-1.5"},
               {CN_FILTER_GAUSSIAN, NAN, "sigma=nan"}, {CN_FILTER_GAUSSIAN, 1e6f, "sigma=1e+06"},
               {CN_FILTER_BOX, 4.0f, "K=4"},           {CN_FILTER_BOX, 0.0f, "K=0"},
               {CN_FILTER_BOX, 2.5f, "K=2.5"},         {CN_FILTER_BOX, -3.0f, "K=-3"},
               {CN_FILTER_KIND_COUNT, 0.0f, "kind"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cn_filter_spec f = {bad[i].kind, bad[i].param, NULL};
        cn_status s = cn_filter_kernel(&f, &k);
        CHECK(s == CN_ERR_INVALID_ARG, "case %zu accepted (%s)", i, cn_status_str(s));
        CHECK(k == NULL, "case %zu: no kernel on failure", i);
        CHECK(strstr(cn_last_error(), bad[i].named), "case %zu: message '%s' lacks '%s'", i,
              cn_last_error(), bad[i].named);
    }

    const int64_t shapes[][4] = {{2, 3, 1, 1}, {3, 4, 1, 1}, {3, 3, 2, 1}};
    const int ndims[] = {2, 2, 4};
    for (int i = 0; i < 3; i++) {
        cn_tensor *user;
        CHECK_OK(cn_tensor_new(&user, ndims[i], shapes[i]));
        cn_filter_spec f = {CN_FILTER_KERNEL, 0, user};
        cn_status s = cn_filter_kernel(&f, &k);
        cn_tensor_free(user);
        CHECK(s == CN_ERR_INVALID_ARG, "user kernel %d accepted", i);
        CHECK(strstr(cn_last_error(), "kernel shape ["), "message: %s", cn_last_error());
    }
    cn_filter_spec none = {CN_FILTER_KERNEL, 0, NULL};
    CHECK(cn_filter_kernel(&none, &k) == CN_ERR_INVALID_ARG, "missing user kernel accepted");
}

static void image_smaller_than_the_reflect_padding_is_rejected(void)
{
    /* Box 7 pads 3: reflect needs at least 4 pixels each way. */
    cn_filter_spec f = {CN_FILTER_BOX, 7, NULL};
    cn_tensor *ok = image_random(4, 4, 1), *small = image_random(3, 10, 1), *out = (cn_tensor *)1;
    CHECK(ok && small, "alloc");
    cn_status s = cn_image_filter(NULL, &f, small, &out);
    CHECK(s == CN_ERR_INVALID_ARG, "3x10 image with a 7x7 kernel: %s", cn_status_str(s));
    CHECK(out == NULL, "no output on failure");
    CHECK(strstr(cn_last_error(), "3x10") && strstr(cn_last_error(), "too small"), "message: %s",
          cn_last_error());
    CHECK_OK(cn_image_filter(NULL, &f, ok, &out));
    cn_tensor_free(out);
    cn_tensor_free(ok);
    cn_tensor_free(small);
}

/* ---- image files ------------------------------------------------------ */

static void png_round_trip_is_exact_for_integer_images(void)
{
    for (int C = 1; C <= 4; C++) {
        cn_tensor *img = image_random(13, 17, C), *back;
        CHECK(img, "alloc");
        char path[300];
        tl_path(path, sizeof path, "roundtrip.png");
        CHECK_OK(cn_image_write_png(path, img));
        CHECK_OK(cn_image_read(path, 0, &back));
        CHECK(back->ndim == 3 && back->shape[0] == 13 && back->shape[1] == 17 &&
                  back->shape[2] == C,
              "C=%d: shape [%lld,%lld,%lld]", C, (long long)back->shape[0],
              (long long)back->shape[1], (long long)back->shape[2]);
        CHECK(memcmp(back->data, img->data, img->size * sizeof(float)) == 0, "C=%d: values", C);
        cn_tensor_free(back);
        cn_tensor_free(img);
    }
}

static void png_writer_clamps_rounds_and_maps_nan_to_zero(void)
{
    int64_t s2[2] = {1, 8};
    cn_tensor *img, *back;
    CHECK_OK(cn_tensor_new(&img, 2, s2));
    const float in[8] = {-5.0f, 300.0f, NAN, 1.4f, 1.6f, 254.5f, INFINITY, -INFINITY};
    const float want[8] = {0, 255, 0, 1, 2, 255, 255, 0};
    memcpy(img->data, in, sizeof in);
    char path[300];
    CHECK_OK(cn_image_write_png(tl_path(path, sizeof path, "clamp.png"), img));
    CHECK_OK(cn_image_read(path, 0, &back));
    CHECK(back->ndim == 3 && back->shape[2] == 1, "[H,W] is written as one channel");
    for (int i = 0; i < 8; i++)
        CHECK(back->data[i] == want[i], "%g -> %g, want %g", in[i], back->data[i], want[i]);
    cn_tensor_free(back);
    cn_tensor_free(img);
}

static void png_writer_rejects_shapes_that_are_not_images(void)
{
    const int64_t shapes[][3] = {{4, 4, 5}, {4, 4, 0}, {0, 4, 3}};
    char path[300];
    tl_path(path, sizeof path, "bad.png");
    for (int i = 0; i < 3; i++) {
        cn_tensor *t;
        CHECK_OK(cn_tensor_new(&t, 3, shapes[i]));
        cn_status s = cn_image_write_png(path, t);
        cn_tensor_free(t);
        CHECK(s == CN_ERR_INVALID_ARG, "shape %d accepted: %s", i, cn_status_str(s));
    }
    int64_t s1[1] = {5};
    cn_tensor *t;
    CHECK_OK(cn_tensor_new(&t, 1, s1));
    CHECK(cn_image_write_png(path, t) == CN_ERR_INVALID_ARG, "1-D accepted");
    cn_tensor_free(t);
}

static void reading_as_gray_gives_one_luma_channel(void)
{
    /* R = G = B: stb's integer luma weights (77+150+29 = 256) give back v. */
    cn_tensor *img = image_new(5, 6, 3), *back;
    CHECK(img, "alloc");
    for (int p = 0; p < 30; p++)
        for (int c = 0; c < 3; c++) img->data[p * 3 + c] = (float)(p * 8);
    char path[300];
    CHECK_OK(cn_image_write_png(tl_path(path, sizeof path, "gray.png"), img));
    CHECK_OK(cn_image_read(path, 1, &back));
    CHECK(back->shape[0] == 5 && back->shape[1] == 6 && back->shape[2] == 1, "one channel");
    for (int p = 0; p < 30; p++)
        CHECK(back->data[p] == (float)(p * 8), "pixel %d: %g", p, back->data[p]);
    cn_tensor_free(back);
    cn_tensor_free(img);
}

static void decoding_rejects_garbage_and_truncated_files(void)
{
    cn_tensor *t = (cn_tensor *)1;
    const char garbage[] = "\x01\x7fthis is certainly not an image, just some bytes";
    CHECK(cn_image_decode(garbage, sizeof garbage, 0, &t) == CN_ERR_FORMAT, "garbage accepted");
    CHECK(t == NULL, "no tensor on failure");
    CHECK(strncmp(cn_last_error(), "image: ", 7) == 0, "message: %s", cn_last_error());
    CHECK(cn_image_decode(garbage, 0, 0, &t) == CN_ERR_FORMAT, "empty buffer accepted");

    cn_tensor *img = image_random(32, 32, 3);
    CHECK(img, "alloc");
    char path[300];
    CHECK_OK(cn_image_write_png(tl_path(path, sizeof path, "whole.png"), img));
    cn_tensor_free(img);
    void *buf;
    size_t len;
    CHECK_OK(cn_file_read_all(path, 1 << 20, &buf, &len));
    CHECK_OK(cn_image_decode(buf, len, 0, &t));
    cn_tensor_free(t);
    /* mid-IDAT, without IEND, inside IHDR, the signature alone */
    const size_t cuts[] = {len / 2, len - 12, 20, 8};
    for (int i = 0; i < 4; i++) {
        cn_status s = cn_image_decode(buf, cuts[i], 0, &t);
        if (s != CN_ERR_FORMAT) {
            if (s == CN_OK) cn_tensor_free(t);
            free(buf);
        }
        CHECK(s == CN_ERR_FORMAT, "PNG cut to %zu of %zu bytes: %s", cuts[i], len,
              cn_status_str(s));
    }
    free(buf);

    char missing[300];
    cn_status s = cn_image_read(tl_path(missing, sizeof missing, "no-such.png"), 0, &t);
    CHECK(s == CN_ERR_IO, "missing file: %s", cn_status_str(s));
    CHECK(strncmp(cn_last_error(), "image: ", 7) == 0 && strstr(cn_last_error(), missing),
          "message: %s", cn_last_error());
}

static uint32_t crc32_png(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* A PNG signature and a valid IHDR (CRC included) claiming w x h 8-bit gray;
 * no pixel data follows. */
static size_t png_header(unsigned char out[33], uint32_t w, uint32_t h)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(out, sig, 8);
    put32(out + 8, 13);
    memcpy(out + 12, "IHDR", 4);
    put32(out + 16, w);
    put32(out + 20, h);
    out[24] = 8, out[25] = 0, out[26] = 0, out[27] = 0, out[28] = 0;
    put32(out + 29, crc32_png(out + 12, 17));
    return 33;
}

static void decoding_rejects_oversized_headers_before_allocating(void)
{
    const uint32_t sizes[][2] = {{2000000, 1}, {1, 2000000}, {20000, 20000}};
    const char *named[] = {"2000000x1", "1x2000000", "20000x20000"};
    for (int i = 0; i < 3; i++) {
        unsigned char hdr[33];
        size_t n = png_header(hdr, sizes[i][0], sizes[i][1]);
        cn_tensor *t = (cn_tensor *)1;
        cn_status s = cn_image_decode(hdr, n, 0, &t);
        CHECK(s == CN_ERR_FORMAT, "%s: %s", named[i], cn_status_str(s));
        CHECK(t == NULL, "no tensor on failure");
        /* The size check fired, not stb's failure to find pixel data. */
        CHECK(strstr(cn_last_error(), named[i]), "message '%s' lacks '%s'", cn_last_error(),
              named[i]);
    }
}

/* ---- the CLI ---------------------------------------------------------- */

/* Runs `convnet ARGS` with stdout and stderr in files; the exit status, or
 * -1 if it did not exit normally. *err_lines gets stderr's line count. */
static int cli(const char *args, int *err_lines)
{
    char out[300], err[300], cmd[2048];
    tl_path(out, sizeof out, "cli.stdout");
    tl_path(err, sizeof err, "cli.stderr");
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s'", CN_CLI, args, out, err);
    int st = system(cmd);
    *err_lines = 0;
    FILE *f = fopen(err, "r");
    if (f) {
        int ch, last = '\n';
        while ((ch = fgetc(f)) != EOF) {
            if (ch == '\n') ++*err_lines;
            last = ch;
        }
        if (last != '\n') ++*err_lines;  /* an unterminated last line counts too */
        fclose(f);
    }
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void cli_filter_writes_a_png_of_the_input_size(void)
{
    char in[300], out[300], knpy[300], args[1200];
    cn_tensor *img = image_random(12, 10, 3), *back;
    CHECK(img, "alloc");
    CHECK_OK(cn_image_write_png(tl_path(in, sizeof in, "cli-in.png"), img));
    cn_tensor_free(img);
    tl_path(out, sizeof out, "cli-out.png");

    int64_t ks[2] = {3, 1};
    cn_tensor *k;
    CHECK_OK(cn_tensor_new(&k, 2, ks));
    k->data[0] = 0.25f, k->data[1] = 0.5f, k->data[2] = 0.25f;
    cn_status ws = cn_npy_write(tl_path(knpy, sizeof knpy, "k.npy"), k);
    cn_tensor_free(k);
    CHECK_OK(ws);

    const struct {
        const char *opts;
        int64_t C;
    } runs[] = {{"--gaussian 1", 3}, {"--box=3", 3},     {"--sobel --gray", 1}, {"--sobel-x", 3},
                {"--sobel-y", 3},    {"--laplacian", 3}, {"--sharpen", 3},      {"--kernel", 3}};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        int lines;
        const int is_kernel = !strcmp(runs[i].opts, "--kernel");
        snprintf(args, sizeof args, "filter %s%s%s '%s' '%s'", runs[i].opts, is_kernel ? " " : "",
                 is_kernel ? knpy : "", in, out);
        remove(out);
        int rc = cli(args, &lines);
        CHECK(rc == 0 && lines == 0, "'%s': exit %d, %d stderr lines", args, rc, lines);
        CHECK_OK(cn_image_read(out, 0, &back));
        int good = back->shape[0] == 12 && back->shape[1] == 10 && back->shape[2] == runs[i].C;
        cn_tensor_free(back);
        CHECK(good, "'%s': wrong output shape", args);
    }

    int lines;
    CHECK(cli("filter --help", &lines) == 0 && lines == 0, "--help fails");
    char help[300];
    void *buf;
    size_t len;
    CHECK_OK(cn_file_read_all(tl_path(help, sizeof help, "cli.stdout"), 1 << 20, &buf, &len));
    char head[64] = "";
    memcpy(head, buf, CN__MIN(len, sizeof head - 1));
    free(buf);
    int has_usage = strstr(head, "usage: convnet filter") != NULL;
    CHECK(has_usage, "--help prints the usage to stdout");
}

static void cli_filter_mistakes_exit_nonzero_with_one_stderr_line(void)
{
    char in[300], out[300], missing[300];
    cn_tensor *img = image_random(8, 8, 1);
    CHECK(img, "alloc");
    CHECK_OK(cn_image_write_png(tl_path(in, sizeof in, "cli-in1.png"), img));
    cn_tensor_free(img);
    tl_path(out, sizeof out, "cli-out1.png");
    tl_path(missing, sizeof missing, "no-such-input.png");
    char knpy[300], args[12][1200];
    tl_path(knpy, sizeof knpy, "no-such-kernel.npy");
    int n = 0;
    snprintf(args[n++], 1200, "filter --gaussian 1 '%s' '%s'", missing, out);
    snprintf(args[n++], 1200, "filter '%s' '%s'", in, out);                 /* no filter */
    snprintf(args[n++], 1200, "filter --gaussian 1 --sobel '%s' '%s'", in, out);
    snprintf(args[n++], 1200, "filter --box 3 --frobnicate '%s' '%s'", in, out);
    snprintf(args[n++], 1200, "filter --gaussian 0 '%s' '%s'", in, out);
    snprintf(args[n++], 1200, "filter --gaussian abc '%s' '%s'", in, out);
    snprintf(args[n++], 1200, "filter --box 4 '%s' '%s'", in, out);         /* even box */
    snprintf(args[n++], 1200, "filter --box 17 '%s' '%s'", in, out);        /* 8x8 < padding */
    snprintf(args[n++], 1200, "filter --kernel '%s' '%s' '%s'", knpy, in, out);
    snprintf(args[n++], 1200, "filter --sobel '%s' '%s' extra", in, out);   /* three names */
    snprintf(args[n++], 1200, "filter --sobel '%s' /no/such/dir/x.png", in);
    snprintf(args[n++], 1200, "filter --gaussian");                         /* no value */
    for (int i = 0; i < n; i++) {
        int lines, rc = cli(args[i], &lines);
        CHECK(rc > 0, "'%s': exit %d", args[i], rc);
        CHECK(lines == 1, "'%s': %d stderr lines", args[i], lines);
    }
}

int main(void)
{
    TL_RUN(sobel_x_of_a_vertical_step_is_nonzero_only_at_the_edge_columns);
    TL_RUN(sobel_x_is_negative_where_intensity_falls);
    TL_RUN(sobel_magnitude_peaks_at_255_and_a_flat_image_stays_zero);
    TL_RUN(gaussian_keeps_a_constant_image_constant);
    TL_RUN(blurred_delta_sums_to_one_and_is_symmetric);
    TL_RUN(box_of_a_constant_is_constant);
    TL_RUN(gaussian_kernel_side_is_2_ceil_3_sigma_plus_1_and_sums_to_one);
    TL_RUN(fixed_kernels_have_their_textbook_values);
    TL_RUN(filter_matches_a_direct_reflect_padded_cross_correlation);
    TL_RUN(two_d_images_are_filtered_as_one_channel);
    TL_RUN(invalid_filter_parameters_are_rejected_naming_the_value);
    TL_RUN(image_smaller_than_the_reflect_padding_is_rejected);
    TL_RUN(png_round_trip_is_exact_for_integer_images);
    TL_RUN(png_writer_clamps_rounds_and_maps_nan_to_zero);
    TL_RUN(png_writer_rejects_shapes_that_are_not_images);
    TL_RUN(reading_as_gray_gives_one_luma_channel);
    TL_RUN(decoding_rejects_garbage_and_truncated_files);
    TL_RUN(decoding_rejects_oversized_headers_before_allocating);
    TL_RUN(cli_filter_writes_a_png_of_the_input_size);
    TL_RUN(cli_filter_mistakes_exit_nonzero_with_one_stderr_line);
    return tl_summary();
}
