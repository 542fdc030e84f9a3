/* Fuzzes cn_image_decode (stb's PNG, JPEG, BMP, TGA and GIF decoders behind
 * convnet's size checks): a decoded image is [H, W, C] with C in 1..4 (1
 * when gray was asked for) and values in 0..255. Small images then go
 * through one of the filters, whose reflect padding has its own size rules.
 * The length's low bits pick gray and the filter, so no input byte is
 * spent on them. */
#include "fuzz.h"

#include <math.h>

#include "convnet/convnet.h"

int cn_fuzz_image(const uint8_t *data, size_t size)
{
    int gray = (int)(size & 1);
    cn_tensor *img = NULL;
    cn_status s = cn_image_decode(data, size, gray, &img);
    if (s != CN_OK) {
        CN_FUZZ_CHECK(img == NULL);
        CN_FUZZ_CHECK(cn_last_error()[0] != '\0');
        return 0;
    }
    CN_FUZZ_CHECK(img != NULL && img->ndim == 3);
    CN_FUZZ_CHECK(img->shape[0] >= 1 && img->shape[1] >= 1);
    CN_FUZZ_CHECK(img->shape[2] >= 1 && img->shape[2] <= 4);
    if (gray) CN_FUZZ_CHECK(img->shape[2] == 1);
    CN_FUZZ_CHECK(img->size == (size_t)(img->shape[0] * img->shape[1] * img->shape[2]));
    for (size_t i = 0; i < img->size; i++)
        CN_FUZZ_CHECK(img->data[i] >= 0.0f && img->data[i] <= 255.0f);

    if (img->size <= 4096) {
        static const cn_filter_spec specs[] = {
            {CN_FILTER_GAUSSIAN, 0.3f, NULL}, {CN_FILTER_BOX, 3.0f, NULL},
            {CN_FILTER_SOBEL_X, 0.0f, NULL},  {CN_FILTER_SOBEL_Y, 0.0f, NULL},
            {CN_FILTER_SOBEL, 0.0f, NULL},    {CN_FILTER_LAPLACIAN, 0.0f, NULL},
            {CN_FILTER_SHARPEN, 0.0f, NULL},  {CN_FILTER_BOX, 5.0f, NULL},
        };
        const cn_filter_spec *f = &specs[(size >> 1) % (sizeof specs / sizeof specs[0])];
        cn_tensor *out = NULL;
        s = cn_image_filter(NULL, f, img, &out);
        if (s == CN_OK) {
            CN_FUZZ_CHECK(out != NULL && out->ndim == 3);
            CN_FUZZ_CHECK(out->shape[0] == img->shape[0] && out->shape[1] == img->shape[1]);
            CN_FUZZ_CHECK(out->shape[2] == img->shape[2]);
            for (size_t i = 0; i < out->size; i++) CN_FUZZ_CHECK(isfinite(out->data[i]));
            cn_tensor_free(out);
        } else {
            CN_FUZZ_CHECK(out == NULL);
            /* Only a kernel wider than the image is refused. */
            CN_FUZZ_CHECK(img->shape[0] <= 2 || img->shape[1] <= 2);
        }
    }
    cn_tensor_free(img);
    return 0;
}

CN_FUZZ_ENTRY(cn_fuzz_image)
