/* convnet/image.h - images in and out, and classic filters as convolutions.
 *
 *     cn_tensor *img, *out;
 *     cn_image_read("in.png", 0, &img);               // [H, W, C] floats in [0,255]
 *     cn_filter_spec f = {CN_FILTER_GAUSSIAN, 2.0f};
 *     cn_image_filter(ctx, &f, img, &out);            // same size, reflect padding
 *     cn_image_write_png("out.png", out);             // clamped and rounded to 0..255
 *
 * Decoding uses stb_image (Debian's libstb-dev). Images are checked before
 * any pixel buffer is allocated: width and height at most 1,000,000 and at
 * most 2^28 pixels. Channels C are 1 (gray), 2 (gray+alpha), 3 (RGB) or 4.
 * Ownership: tensors returned through out-parameters belong to the caller.
 */
#ifndef CONVNET_IMAGE_H
#define CONVNET_IMAGE_H

#include "context.h"
#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads PNG/JPEG/BMP/... into a [H, W, C] tensor of values 0..255.
 * gray = 1 converts to one channel (ITU-R 601 luma, stb's weights). */
CN_API cn_status cn_image_read(const char *path, int gray, cn_tensor **out);
/* The [H, W, C] shape cn_image_read would return (C = 1 with gray), from
 * the file's header and the same checks, without decoding any pixel: what a
 * caller needs to budget memory before reading. */
CN_API cn_status cn_image_info(const char *path, int gray, int64_t *h, int64_t *w, int64_t *c);
/* Decodes an in-memory image the same way. */
CN_API cn_status cn_image_decode(const void *buf, size_t len, int gray, cn_tensor **out);
/* Writes a [H, W, C] (or [H, W]) tensor as PNG, values clamped to 0..255 and
 * rounded; atomic like every convnet writer. */
CN_API cn_status cn_image_write_png(const char *path, const cn_tensor *img);

typedef enum cn_filter_kind {
    CN_FILTER_GAUSSIAN = 0,  /* param: sigma > 0; kernel 2*ceil(3*sigma)+1 */
    CN_FILTER_BOX,           /* param: odd size K >= 1 */
    CN_FILTER_SOBEL_X,       /* horizontal derivative (responds to vertical edges) */
    CN_FILTER_SOBEL_Y,
    CN_FILTER_SOBEL,         /* gradient magnitude, scaled to span 0..255 */
    CN_FILTER_LAPLACIAN,
    CN_FILTER_SHARPEN,
    CN_FILTER_KERNEL,        /* user kernel, see cn_filter_spec.kernel */
    CN_FILTER_KIND_COUNT
} cn_filter_kind;

typedef struct cn_filter_spec {
    cn_filter_kind kind;
    float param;                 /* sigma or box size */
    const cn_tensor *kernel;     /* CN_FILTER_KERNEL: [KH, KW] (odd sizes), borrowed */
} cn_filter_spec;

/* The 2D kernel of a filter ([KH, KW]); the caller owns *out. For
 * CN_FILTER_SOBEL it is the x kernel. */
CN_API cn_status cn_filter_kernel(const cn_filter_spec *f, cn_tensor **out);

/* Runs the filter on every channel of img [H, W, C] as a depthwise
 * convolution with reflect padding (size kept). The caller owns *out. */
CN_API cn_status cn_image_filter(cn_ctx *ctx, const cn_filter_spec *f, const cn_tensor *img,
                                 cn_tensor **out);

#ifdef __cplusplus
}
#endif
#endif
