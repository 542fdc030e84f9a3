#include "train_common.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

int tc_load(const char *cmd, const char *dir, int train, int limit, float mean, float std,
            cn_dataset **out)
{
    cn_status s = cn_dataset_load(dir, train, out);
    if (s) return cli_fail_status(cmd, s);
    /* An empty split has nothing to learn from or to score, and its image
     * size, which sizes the model, is then backed by no data at all. */
    if ((*out)->n == 0) {
        cn_dataset_free(*out);
        *out = NULL;
        return cli_fail(cmd, "%s: the %s split holds no images", dir, train ? "training" : "test");
    }
    if (limit > 0 && limit < (*out)->n) (*out)->n = limit;  /* a prefix view: x and y stay whole */
    if ((s = cn_dataset_normalize(*out, mean, std))) {
        cn_dataset_free(*out);
        *out = NULL;
        return cli_fail_status(cmd, s);
    }
    return 0;
}

void tc_checkpoint_norm(const char *path, float *mean, float *std)
{
    *mean = CN_FASHION_MNIST_MEAN, *std = CN_FASHION_MNIST_STD;
    cn_st_file *f;
    if (cn_st_open(path, &f)) return;
    const char *m = cn_st_meta(f, "data_mean"), *s = cn_st_meta(f, "data_std");
    float a, b;
    if (m && s && cli_parse_float(m, &a) == 0 && cli_parse_float(s, &b) == 0) *mean = a, *std = b;
    cn_st_close(f);
}

double tc_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Bilinear resize of a one-channel image [h,w] to [H,W] (pixel centres aligned). */
static void resize(const float *src, int64_t h, int64_t w, float *dst, int64_t H, int64_t W)
{
    for (int64_t y = 0; y < H; y++) {
        double fy = ((double)y + 0.5) * (double)h / (double)H - 0.5;
        fy = fy < 0 ? 0 : fy > (double)(h - 1) ? (double)(h - 1) : fy;
        int64_t y0 = (int64_t)fy, y1 = y0 + 1 < h ? y0 + 1 : y0;
        double ay = fy - (double)y0;
        for (int64_t x = 0; x < W; x++) {
            double fx = ((double)x + 0.5) * (double)w / (double)W - 0.5;
            fx = fx < 0 ? 0 : fx > (double)(w - 1) ? (double)(w - 1) : fx;
            int64_t x0 = (int64_t)fx, x1 = x0 + 1 < w ? x0 + 1 : x0;
            double ax = fx - (double)x0;
            double top = src[y0 * w + x0] * (1 - ax) + src[y0 * w + x1] * ax;
            double bot = src[y1 * w + x0] * (1 - ax) + src[y1 * w + x1] * ax;
            dst[y * W + x] = (float)(top * (1 - ay) + bot * ay);
        }
    }
}

/* Mean of the image's outermost pixels, 0..255. */
static double border_mean(const float *p, int64_t h, int64_t w)
{
    double s = 0;
    int64_t n = 0;
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++)
            if (y == 0 || x == 0 || y == h - 1 || x == w - 1) s += p[y * w + x], n++;
    return n ? s / (double)n : 0;
}

int tc_image_input(const char *cmd, const char *path, const char *invert, int64_t H, int64_t W,
                   float mean, float std, float *x, int *inverted)
{
    cn_tensor *img;
    cn_status s = cn_image_read(path, 1, &img);
    if (s) return cli_fail_status(cmd, s);
    resize(img->data, img->shape[0], img->shape[1], x, H, W);
    int inv = !strcmp(invert, "yes") ||
              (!strcmp(invert, "auto") && border_mean(img->data, img->shape[0], img->shape[1]) > 127.5);
    cn_tensor_free(img);
    for (int64_t i = 0; i < H * W; i++) {
        float v = (inv ? 255.0f - x[i] : x[i]) / 255.0f;
        x[i] = (v - mean) / std;
    }
    if (inverted) *inverted = inv;
    return 0;
}
