/* Fuzzes cn_idx_decode on raw and gzipped IDX images: a decoded array has
 * count = product of its dims elements, all readable and convertible. */
#include "fuzz.h"

#include "convnet/convnet.h"

int cn_fuzz_idx(const uint8_t *data, size_t size)
{
    cn_idx *a = NULL;
    cn_status s = cn_idx_decode(data, size, &a);
    if (s != CN_OK) {
        CN_FUZZ_CHECK(a == NULL);
        CN_FUZZ_CHECK(cn_last_error()[0] != '\0');
        return 0;
    }
    CN_FUZZ_CHECK(a != NULL);
    CN_FUZZ_CHECK(a->ndim >= 1 && a->ndim <= CN_IDX_MAX_DIMS);
    size_t n = 1;
    for (int i = 0; i < CN_IDX_MAX_DIMS; i++) {
        CN_FUZZ_CHECK(a->dims[i] >= (i < a->ndim ? 0 : 1));
        if (i >= a->ndim) CN_FUZZ_CHECK(a->dims[i] == 1);
        n *= (size_t)a->dims[i];
    }
    CN_FUZZ_CHECK(n == a->count);
    CN_FUZZ_CHECK((a->count == 0) == (a->data == NULL));
    volatile double sink = 0;
    for (size_t i = 0; i < a->count; i++) sink += cn_idx_get(a, i);
    (void)sink;
    if (a->count) {
        float *f = malloc(a->count * sizeof *f);
        if (f) {
            cn_idx_to_float(a, f);
            free(f);
        }
    }
    cn_idx_free(a);
    return 0;
}

CN_FUZZ_ENTRY(cn_fuzz_idx)
