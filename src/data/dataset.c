/* In-memory datasets from IDX files, normalisation, and the batcher with
 * seeded shuffling and augmentation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convnet/data.h"
#include "internal.h"

static const char *const fashion_names[CN_FASHION_MNIST_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot",
};

const char *cn_fashion_mnist_class_name(int label)
{
    return label >= 0 && label < CN_FASHION_MNIST_CLASSES ? fashion_names[label] : NULL;
}

/* An empty dataset with x and y allocated for n examples of h*w*c. */
static cn_status dataset_alloc(int64_t n, int64_t h, int64_t w, int64_t c, int num_classes,
                               cn_dataset **out)
{
    int64_t shape[4] = {n, h, w, c};
    size_t count, ybytes;
    cn_status s = cn_shape_numel(4, shape, &count);
    if (s) {
        char sh[160];
        return cn__err(s, "dataset: [n,h,w,c] = %s: %s", cn_shape_str(4, shape, sh, sizeof sh),
                       cn_last_error());
    }
    if ((s = cn_size_mul((size_t)n, sizeof(int32_t), &ybytes, "dataset labels"))) return s;
    cn_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return cn__err(CN_ERR_NO_MEMORY, "dataset: out of memory");
    ds->n = n;
    ds->h = h;
    ds->w = w;
    ds->c = c;
    ds->num_classes = num_classes;
    /* cn_alloc(0) is NULL, which is what an empty dataset holds. */
    ds->x = count ? cn_alloc(count * sizeof(float)) : NULL;
    ds->y = n ? malloc(ybytes) : NULL;
    if ((count && !ds->x) || (n && !ds->y)) {
        cn_dataset_free(ds);
        return cn__err(CN_ERR_NO_MEMORY, "dataset: cannot allocate %zu pixels and %lld labels",
                       count, (long long)n);
    }
    *out = ds;
    return CN_OK;
}

void cn_dataset_free(cn_dataset *ds)
{
    if (!ds) return;
    cn_free(ds->x);
    free(ds->y);
    free(ds);
}

cn_status cn_dataset_from_arrays(const float *x, const int32_t *y, int64_t n, int64_t h, int64_t w,
                                 int64_t c, int num_classes, cn_dataset **out)
{
    if (!out) return cn__err(CN_ERR_INVALID_ARG, "dataset: out is NULL");
    *out = NULL;
    if (n < 0 || h < 1 || w < 1 || c < 1)
        return cn__err(CN_ERR_INVALID_ARG,
                       "dataset: shape [%lld,%lld,%lld,%lld] needs n >= 0 and h, w, c >= 1",
                       (long long)n, (long long)h, (long long)w, (long long)c);
    if (num_classes < 1)
        return cn__err(CN_ERR_INVALID_ARG, "dataset: num_classes=%d must be >= 1", num_classes);
    if (n && (!x || !y)) return cn__err(CN_ERR_INVALID_ARG, "dataset: x or y is NULL");
    for (int64_t i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= num_classes)
            return cn__err(CN_ERR_INVALID_ARG, "dataset: label %d of example %lld is outside 0..%d",
                           (int)y[i], (long long)i, num_classes - 1);
    cn_dataset *ds;
    cn_status s = dataset_alloc(n, h, w, c, num_classes, &ds);
    if (s) return s;
    if (ds->x) memcpy(ds->x, x, (size_t)(n * h * w * c) * sizeof(float));
    if (ds->y) memcpy(ds->y, y, (size_t)n * sizeof(int32_t));
    *out = ds;
    return CN_OK;
}

cn_status cn_dataset_load_files(const char *images_path, const char *labels_path, int num_classes,
                                cn_dataset **out)
{
    if (!out) return cn__err(CN_ERR_INVALID_ARG, "dataset: out is NULL");
    *out = NULL;
    if (!images_path || !labels_path)
        return cn__err(CN_ERR_INVALID_ARG, "dataset: images or labels path is NULL");
    /* Labels are ubyte, so more than 256 classes could never be used. */
    if (num_classes < 1 || num_classes > 256)
        return cn__err(CN_ERR_INVALID_ARG, "dataset: num_classes=%d outside 1..256", num_classes);

    cn_idx *img = NULL, *lab = NULL;
    cn_dataset *ds = NULL;
    cn_status s = cn_idx_read(images_path, &img);
    if (!s) s = cn_idx_read(labels_path, &lab);
    if (s) goto done;

    if (img->type != CN_IDX_U8 || (img->ndim != 3 && img->ndim != 4)) {
        char sh[96];
        s = cn__err(CN_ERR_FORMAT,
                    "dataset: %s: images must be ubyte [N,H,W] or [N,H,W,C], got type 0x%02x %s",
                    images_path, (unsigned)img->type,
                    cn_shape_str(img->ndim, img->dims, sh, sizeof sh));
        goto done;
    }
    if (lab->type != CN_IDX_U8 || lab->ndim != 1) {
        char sh[96];
        s = cn__err(CN_ERR_FORMAT, "dataset: %s: labels must be ubyte [N], got type 0x%02x %s",
                    labels_path, (unsigned)lab->type,
                    cn_shape_str(lab->ndim, lab->dims, sh, sizeof sh));
        goto done;
    }
    if (img->dims[0] != lab->dims[0]) {
        s = cn__err(CN_ERR_FORMAT,
                    "dataset: %s has %lld images but %s has %lld labels (count mismatch)",
                    images_path, (long long)img->dims[0], labels_path, (long long)lab->dims[0]);
        goto done;
    }
    const uint8_t *ly = lab->data;
    for (size_t i = 0; i < lab->count; i++)
        if (ly[i] >= num_classes) {
            s = cn__err(CN_ERR_FORMAT, "dataset: %s: label %d of example %zu is outside 0..%d",
                        labels_path, ly[i], i, num_classes - 1);
            goto done;
        }
    /* dims[3] is 1 for a 3-d array: one channel. */
    if ((s = dataset_alloc(img->dims[0], img->dims[1], img->dims[2], img->dims[3], num_classes,
                           &ds)))
        goto done;
    const uint8_t *px = img->data;
    for (size_t i = 0; i < img->count; i++) ds->x[i] = (float)px[i] / 255.0f;
    for (size_t i = 0; i < lab->count; i++) ds->y[i] = ly[i];
    *out = ds;
    ds = NULL;
done:
    cn_dataset_free(ds);
    cn_idx_free(img);
    cn_idx_free(lab);
    return s;
}

/* dir/name, or dir/name.gz when only that exists. *path is malloc'ed. */
static cn_status find_file(const char *dir, const char *name, char **path)
{
    size_t n = strlen(dir) + strlen(name) + 8;
    char *p = malloc(n);
    if (!p) return cn__err(CN_ERR_NO_MEMORY, "dataset: out of memory");
    struct stat st;
    snprintf(p, n, "%s/%s", dir, name);
    if (stat(p, &st) != 0) {
        snprintf(p, n, "%s/%s.gz", dir, name);
        if (stat(p, &st) != 0) {
            free(p);
            return cn__err(CN_ERR_IO, "dataset: neither %s/%s nor %s/%s.gz exists", dir, name, dir,
                           name);
        }
    }
    *path = p;
    return CN_OK;
}

cn_status cn_dataset_load(const char *dir, int train, cn_dataset **out)
{
    if (!out) return cn__err(CN_ERR_INVALID_ARG, "dataset: out is NULL");
    *out = NULL;
    if (!dir) return cn__err(CN_ERR_INVALID_ARG, "dataset: dir is NULL");
    const char *split = train ? "train" : "t10k";
    char img_name[64], lab_name[64], *img = NULL, *lab = NULL;
    snprintf(img_name, sizeof img_name, "%s-images-idx3-ubyte", split);
    snprintf(lab_name, sizeof lab_name, "%s-labels-idx1-ubyte", split);
    cn_status s = find_file(dir, img_name, &img);
    if (!s) s = find_file(dir, lab_name, &lab);
    if (!s) s = cn_dataset_load_files(img, lab, CN_FASHION_MNIST_CLASSES, out);
    free(img);
    free(lab);
    return s;
}

static size_t dataset_count(const cn_dataset *ds)
{
    return (size_t)ds->n * (size_t)ds->h * (size_t)ds->w * (size_t)ds->c;
}

cn_status cn_dataset_stats(const cn_dataset *ds, double *mean, double *std)
{
    if (!ds || !mean || !std) return cn__err(CN_ERR_INVALID_ARG, "dataset: NULL argument to stats");
    size_t n = dataset_count(ds);
    double m = 0, v = 0;
    /* Two passes: E[x^2] - E[x]^2 loses digits when the mean dominates. */
    for (size_t i = 0; i < n; i++) m += ds->x[i];
    m = n ? m / (double)n : 0;
    for (size_t i = 0; i < n; i++) v += (ds->x[i] - m) * (ds->x[i] - m);
    *mean = m;
    *std = n ? sqrt(v / (double)n) : 0;
    return CN_OK;
}

cn_status cn_dataset_normalize(cn_dataset *ds, float mean, float std)
{
    if (!ds) return cn__err(CN_ERR_INVALID_ARG, "dataset: NULL dataset to normalize");
    if (!(std > 0) || !isfinite(std) || !isfinite(mean))
        return cn__err(CN_ERR_INVALID_ARG,
                       "dataset: normalize needs a finite mean and std > 0, got %g, %g",
                       (double)mean, (double)std);
    size_t n = dataset_count(ds);
    for (size_t i = 0; i < n; i++) ds->x[i] = (ds->x[i] - mean) / std;
    ds->background = (ds->background - mean) / std;
    return CN_OK;
}

/* ---- batcher ------------------------------------------------------------- */

/* Uniform in [0, n): the modulo bias is below n / 2^64, invisible here. */
static uint64_t rng_below(cn_ctx *ctx, uint64_t n) { return cn_rng_u64(ctx) % n; }

cn_status cn_batcher_init(cn_batcher *b, const cn_dataset *ds, int batch_size, int shuffle,
                          unsigned augment, cn_ctx *ctx)
{
    if (!b) return cn__err(CN_ERR_INVALID_ARG, "batcher: b is NULL");
    memset(b, 0, sizeof *b);
    if (!ds) return cn__err(CN_ERR_INVALID_ARG, "batcher: dataset is NULL");
    if (batch_size < 1)
        return cn__err(CN_ERR_INVALID_ARG, "batcher: batch_size=%d must be >= 1", batch_size);
    if (augment & ~(unsigned)(CN_AUG_CROP | CN_AUG_FLIP))
        return cn__err(CN_ERR_INVALID_ARG, "batcher: unknown augmentation flags 0x%x", augment);
    if ((shuffle || augment) && !ctx)
        return cn__err(CN_ERR_INVALID_ARG,
                       "batcher: shuffling and augmentation need a ctx for the RNG");
    size_t bytes;
    cn_status s = cn_size_mul((size_t)ds->n, sizeof(int64_t), &bytes, "batcher order");
    if (s) return s;
    b->order = malloc(bytes ? bytes : 1);
    if (!b->order) return cn__err(CN_ERR_NO_MEMORY, "batcher: cannot allocate %zu bytes", bytes);
    b->ds = ds;
    b->ctx = ctx;
    b->batch_size = batch_size;
    b->shuffle = shuffle;
    b->augment = augment;
    b->crop_pad = 2;
    cn_batcher_start_epoch(b);
    return CN_OK;
}

void cn_batcher_start_epoch(cn_batcher *b)
{
    int64_t n = b->ds->n;
    /* From the identity every epoch, so the order depends on the RNG state
     * alone and not on earlier epochs' orders. */
    for (int64_t i = 0; i < n; i++) b->order[i] = i;
    if (b->shuffle)
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)rng_below(b->ctx, (uint64_t)i + 1);
            int64_t t = b->order[i];
            b->order[i] = b->order[j];
            b->order[j] = t;
        }
    b->pos = 0;
    b->epoch++;
}

/* dst [h,w,c] = src shifted by (dy,dx) with background outside, then
 * mirrored left-right if flip. */
static void augment_copy(const float *src, float *dst, int64_t h, int64_t w, int64_t c, int64_t dy,
                         int64_t dx, int flip, float bg)
{
    for (int64_t r = 0; r < h; r++) {
        int64_t sr = r + dy;
        for (int64_t col = 0; col < w; col++) {
            int64_t sc = (flip ? w - 1 - col : col) + dx;
            float *d = dst + (r * w + col) * c;
            if (sr < 0 || sr >= h || sc < 0 || sc >= w) {
                for (int64_t k = 0; k < c; k++) d[k] = bg;
            } else {
                memcpy(d, src + (sr * w + sc) * c, (size_t)c * sizeof(float));
            }
        }
    }
}

cn_status cn_batcher_next(cn_batcher *b, float *x_out, int32_t *y_out, int *count)
{
    if (!b || !b->order || !count)
        return cn__err(CN_ERR_INVALID_ARG, "batcher: NULL or uninitialised batcher or count");
    *count = 0;
    if (!x_out || !y_out) return cn__err(CN_ERR_INVALID_ARG, "batcher: x_out or y_out is NULL");
    if (b->crop_pad < 0)
        return cn__err(CN_ERR_INVALID_ARG, "batcher: crop_pad=%d must be >= 0", b->crop_pad);
    const cn_dataset *ds = b->ds;
    int64_t m = CN__MIN((int64_t)b->batch_size, ds->n - b->pos);
    size_t img = (size_t)ds->h * (size_t)ds->w * (size_t)ds->c;
    for (int64_t i = 0; i < m; i++) {
        int64_t e = b->order[b->pos + i];
        const float *src = ds->x + (size_t)e * img;
        float *dst = x_out + (size_t)i * img;
        y_out[i] = ds->y[e];
        if (!b->augment) {
            memcpy(dst, src, img * sizeof(float));
            continue;
        }
        /* Fixed draw order (dy, dx, flip) per example keeps runs reproducible. */
        int64_t dy = 0, dx = 0;
        int flip = 0;
        if (b->augment & CN_AUG_CROP) {
            uint64_t span = 2 * (uint64_t)b->crop_pad + 1;
            dy = (int64_t)rng_below(b->ctx, span) - b->crop_pad;
            dx = (int64_t)rng_below(b->ctx, span) - b->crop_pad;
        }
        if (b->augment & CN_AUG_FLIP) flip = (int)(cn_rng_u64(b->ctx) >> 63);
        augment_copy(src, dst, ds->h, ds->w, ds->c, dy, dx, flip, ds->background);
    }
    b->pos += m;
    *count = (int)m;
    return CN_OK;
}

void cn_batcher_free(cn_batcher *b)
{
    if (!b) return;
    free(b->order);
    b->order = NULL;
}
