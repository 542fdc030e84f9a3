/* convnet/data.h - IDX files (MNIST's format), in-memory datasets, batching.
 *
 *     cn_dataset *train;
 *     if (cn_dataset_load(CN_FASHION_MNIST_DIR, 1, &train) != CN_OK)
 *         fprintf(stderr, "%s\n", cn_last_error());
 *     cn_dataset_normalize(train, CN_FASHION_MNIST_MEAN, CN_FASHION_MNIST_STD);
 *
 *     cn_ctx data_ctx;                        // the shuffle and augmentation RNG
 *     cn_ctx_init(&data_ctx);
 *     cn_rng_seed(&data_ctx, 42);
 *     cn_batcher b;
 *     cn_batcher_init(&b, train, 64, 1, CN_AUG_CROP | CN_AUG_FLIP, &data_ctx);
 *     float *x = malloc(64 * 28 * 28 * sizeof *x);      // [B,H,W,C]
 *     int32_t y[64];                                    // [B]
 *     for (int epoch = 0; epoch < 10; epoch++) {
 *         int count;
 *         while (cn_batcher_next(&b, x, y, &count) == CN_OK && count > 0)
 *             ...train on x[0..count), y[0..count)...
 *         cn_batcher_start_epoch(&b);                   // reshuffle
 *     }
 *     cn_batcher_free(&b);
 *     cn_dataset_free(train);
 *
 * IDX: magic 0x00 0x00 <type> <ndim>, ndim big-endian uint32 dimensions, then
 * the elements in C order, big-endian. Files may be gzip-compressed (detected
 * by the 1f 8b magic, not by the name). The header is validated and the exact
 * data size computed (overflow-checked) before anything is allocated; a gzip
 * stream is never inflated past one byte more than its header promises, so
 * a small file cannot make the reader allocate or spin on a "zip bomb".
 *
 * Ownership: objects returned through out-parameters belong to the caller
 * (cn_idx_free, cn_dataset_free). A cn_batcher borrows its dataset and
 * context, which must outlive it, and owns its index buffer (cn_batcher_free).
 */
#ifndef CONVNET_DATA_H
#define CONVNET_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- IDX arrays ------------------------------------------------------- */

/* Element types, valued as the third magic byte. */
typedef enum cn_idx_type {
    CN_IDX_U8 = 0x08,
    CN_IDX_I8 = 0x09,
    CN_IDX_I16 = 0x0B,
    CN_IDX_I32 = 0x0C,
    CN_IDX_F32 = 0x0D,
    CN_IDX_F64 = 0x0E
} cn_idx_type;

#define CN_IDX_MAX_DIMS 4

typedef struct cn_idx {
    cn_idx_type type;
    int ndim;                      /* 1..CN_IDX_MAX_DIMS */
    int64_t dims[CN_IDX_MAX_DIMS]; /* unused trailing entries are 1 */
    size_t count;                  /* product of dims[0..ndim) */
    /* count elements of `type` in host byte order (uint8_t, int8_t, int16_t,
     * int32_t, float, double), owned; NULL when count is 0. */
    void *data;
} cn_idx;

/* Reads an IDX file, raw or gzipped. The caller owns *out (cn_idx_free).
 * Malformed files give CN_ERR_FORMAT with a message naming the path and the
 * numbers ("idx: a.gz: header promises 47040000 data bytes, stream ends
 * after 1000 (truncated)"); a missing file gives CN_ERR_IO. */
CN_API cn_status cn_idx_read(const char *path, cn_idx **out);
/* Decodes len bytes of an IDX image (raw or gzipped); the caller owns *out. */
CN_API cn_status cn_idx_decode(const void *buf, size_t len, cn_idx **out);
/* NULL is a no-op. */
CN_API void cn_idx_free(cn_idx *a);

/* Element i converted to double (exact for every IDX type). */
CN_API double cn_idx_get(const cn_idx *a, size_t i);
/* Converts all count elements to float32 into dst (caller's buffer). */
CN_API void cn_idx_to_float(const cn_idx *a, float *dst);

/* ---- datasets ----------------------------------------------------------- */

/* The Debian package dataset-fashion-mnist installs the four gzipped files
 * here. */
#define CN_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
/* Mean and standard deviation of the Fashion-MNIST training pixels scaled to
 * [0,1] (cn_dataset_stats on the train set gives 0.2860, 0.3530). */
#define CN_FASHION_MNIST_MEAN 0.2860f
#define CN_FASHION_MNIST_STD 0.3530f
#define CN_FASHION_MNIST_CLASSES 10

/* "T-shirt/top", "Trouser", ..., "Ankle boot" for labels 0..9; NULL for any
 * other label. Static strings. */
CN_API const char *cn_fashion_mnist_class_name(int label);

/* Examples in memory: images x [n, h, w, c] float32 NHWC, labels y [n]. */
typedef struct cn_dataset {
    int64_t n, h, w, c;
    int num_classes; /* every label is in 0..num_classes-1 */
    float *x;        /* [n, h, w, c], owned (cn_alloc) */
    int32_t *y;      /* [n], owned */
    /* The value a black (0) pixel has now: 0 after loading, (0-mean)/std
     * after cn_dataset_normalize. Random crops pad with it, so padding looks
     * like the image background whether or not the data is normalized. */
    float background;
} cn_dataset;

/* Loads MNIST-style IDX files from dir: {train,t10k}-images-idx3-ubyte and
 * {train,t10k}-labels-idx1-ubyte, each with or without .gz (train != 0
 * picks train-*, else t10k-*). Images must be ubyte [N, H, W], labels ubyte
 * [N] below CN_FASHION_MNIST_CLASSES (10), with the same N. Pixels become
 * x [N, H, W, 1] = value / 255. The caller owns *out (cn_dataset_free). */
CN_API cn_status cn_dataset_load(const char *dir, int train, cn_dataset **out);
/* The same from two explicit paths and a class count (1..256). */
CN_API cn_status cn_dataset_load_files(const char *images_path, const char *labels_path,
                                       int num_classes, cn_dataset **out);
/* A dataset holding copies of x [n, h, w, c] and y [n] (labels checked
 * against num_classes). n may be 0. The caller owns *out. */
CN_API cn_status cn_dataset_from_arrays(const float *x, const int32_t *y, int64_t n, int64_t h,
                                        int64_t w, int64_t c, int num_classes, cn_dataset **out);
/* NULL is a no-op. */
CN_API void cn_dataset_free(cn_dataset *ds);

/* Mean and (population) standard deviation of all pixels, summed in
 * double. An empty dataset gives 0 and 0. */
CN_API cn_status cn_dataset_stats(const cn_dataset *ds, double *mean, double *std);
/* x = (x - mean) / std in place (std > 0), and background likewise. Use the
 * train set's statistics for the test set too (for Fashion-MNIST,
 * CN_FASHION_MNIST_MEAN and CN_FASHION_MNIST_STD). */
CN_API cn_status cn_dataset_normalize(cn_dataset *ds, float mean, float std);

/* ---- batching ------------------------------------------------------------ */

/* Augmentations, drawn per example from the batcher's context RNG. */
enum {
    CN_AUG_NONE = 0,
    /* Random crop: the image padded by crop_pad (default 2) pixels on each
     * side with ds->background, then an h x w window at a uniform offset;
     * i.e. a shift by (dy, dx) in [-crop_pad, crop_pad]^2. */
    CN_AUG_CROP = 1u << 0,
    /* Mirror left-right with probability 1/2 (after the crop). */
    CN_AUG_FLIP = 1u << 1
};

typedef struct cn_batcher {
    const cn_dataset *ds; /* borrowed */
    cn_ctx *ctx;          /* borrowed: the RNG for shuffling and augmenting */
    int batch_size;
    int shuffle;
    unsigned augment; /* CN_AUG_* flags */
    int crop_pad;     /* CN_AUG_CROP's padding; 2, may be changed */
    int64_t *order;   /* [n] example order of this epoch, owned */
    int64_t pos;      /* next position in order */
    int64_t epoch;    /* epochs started, 1 after init */
} cn_batcher;

/* Sets up *b over ds and starts the first epoch (which, with shuffle,
 * draws from ctx). ctx may be NULL only without shuffle and augmentation.
 * Allocates the [n] index array once; nothing is allocated per batch. */
CN_API cn_status cn_batcher_init(cn_batcher *b, const cn_dataset *ds, int batch_size, int shuffle,
                                 unsigned augment, cn_ctx *ctx);
/* Starts a new epoch: order = 0..n-1, then (with shuffle) a Fisher-Yates
 * shuffle drawing only from ctx. Because each epoch's order depends only on
 * the RNG state when it starts, restoring ctx->rng as saved at an epoch
 * boundary and calling this reproduces the rest of a run exactly. */
CN_API void cn_batcher_start_epoch(cn_batcher *b);
/* Copies the next examples of this epoch into x_out [batch_size, h, w, c]
 * and y_out [batch_size] (caller's buffers) and sets *count to how many:
 * batch_size, fewer for the epoch's last batch when batch_size does not
 * divide n, and 0 once the epoch is exhausted (until cn_batcher_start_epoch).
 * Each example of the epoch is delivered exactly once. */
CN_API cn_status cn_batcher_next(cn_batcher *b, float *x_out, int32_t *y_out, int *count);
/* Frees the index array; *b may then be re-initialised. */
CN_API void cn_batcher_free(cn_batcher *b);

#ifdef __cplusplus
}
#endif
#endif
