/* Fuzzes cn_npy_decode: any byte string either decodes to a tensor whose
 * shape and size agree (every element readable) or fails with a message. */
#include "fuzz.h"

#include "convnet/convnet.h"

int cn_fuzz_npy(const uint8_t *data, size_t size)
{
    cn_tensor *t = NULL;
    cn_status s = cn_npy_decode(data, size, &t);
    if (s != CN_OK) {
        CN_FUZZ_CHECK(t == NULL);
        CN_FUZZ_CHECK(cn_last_error()[0] != '\0');
        return 0;
    }
    CN_FUZZ_CHECK(t != NULL);
    CN_FUZZ_CHECK(t->ndim >= 0 && t->ndim <= CN_MAX_DIMS);
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        CN_FUZZ_CHECK(t->shape[i] >= 0);
        n *= (size_t)t->shape[i];
    }
    CN_FUZZ_CHECK(n == t->size);
    /* The data must cover size floats (ASan checks the reads); the input
     * held at least one byte per element. */
    CN_FUZZ_CHECK(t->size <= size);
    volatile float sink = 0;
    for (size_t i = 0; i < t->size; i++) sink += t->data[i];
    (void)sink;
    cn_tensor_free(t);
    return 0;
}

CN_FUZZ_ENTRY(cn_fuzz_npy)
