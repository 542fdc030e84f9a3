/* convnet/tensor.h - float32 tensors of up to 5 dimensions and checked sizes.
 *
 *     int64_t shape[4] = {2, 28, 28, 1};          // NHWC
 *     cn_tensor *x;
 *     if (cn_tensor_new(&x, 4, shape) != CN_OK) puts(cn_last_error());
 *     x->data[0] = 1.0f;
 *     cn_tensor_free(x);
 *
 * Ownership: a cn_tensor made by cn_tensor_new owns its struct and its data;
 * cn_tensor_free releases both. Sizes are counted with overflow checks, so
 * a shape whose product wraps is rejected before anything is allocated.
 */
#ifndef CONVNET_TENSOR_H
#define CONVNET_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CN_MAX_DIMS 5

typedef struct cn_tensor {
    float *data;                   /* size floats, 64-byte aligned, owned */
    int ndim;                      /* 0..CN_MAX_DIMS */
    int64_t shape[CN_MAX_DIMS];    /* unused trailing entries are 1 */
    size_t size;                   /* product of shape[0..ndim) */
} cn_tensor;

/* A new zero-filled tensor. Every dimension must be >= 0 (0 gives an empty
 * tensor). The caller owns *out and frees it with cn_tensor_free. */
CN_API cn_status cn_tensor_new(cn_tensor **out, int ndim, const int64_t *shape);

/* Frees a tensor from cn_tensor_new (or a reader); NULL is a no-op. */
CN_API void cn_tensor_free(cn_tensor *t);

/* Element count of a shape, overflow-checked: CN_ERR_OVERFLOW if it does not
 * fit in size_t or int64_t (nor 8 bytes an element), CN_ERR_INVALID_ARG for
 * a negative dimension. The product of the non-zero dimensions must fit even
 * when a zero makes the count 0, so that no partial product of an accepted
 * shape overflows. */
CN_API cn_status cn_shape_numel(int ndim, const int64_t *shape, size_t *out);

/* *out = a * b, or CN_ERR_OVERFLOW (message names `what`). */
CN_API cn_status cn_size_mul(size_t a, size_t b, size_t *out, const char *what);

/* Writes "[2,28,28,1]" into buf (always NUL-terminated); returns buf. */
CN_API char *cn_shape_str(int ndim, const int64_t *shape, char *buf, size_t len);

/* 64-byte aligned allocation for kernels and workspaces; NULL on failure or
 * zero size. Release with cn_free. Large blocks ask for huge pages. */
CN_API void *cn_alloc(size_t bytes);
CN_API void cn_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
