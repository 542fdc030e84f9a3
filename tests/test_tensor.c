/* Tensors and checked sizes. */
#include <string.h>

#include "testlib.h"

static void new_tensor_is_zero_filled_and_aligned(void)
{
    int64_t shape[4] = {2, 3, 4, 5};
    cn_tensor *t;
    CHECK_OK(cn_tensor_new(&t, 4, shape));
    CHECK(t->size == 120, "size %zu", t->size);
    CHECK(((uintptr_t)t->data & 63) == 0, "data not 64-byte aligned");
    for (size_t i = 0; i < t->size; i++) CHECK(t->data[i] == 0.0f, "element %zu not zero", i);
    CHECK(t->shape[4] == 1, "unused dims are 1");
    cn_tensor_free(t);
}

static void empty_dimension_gives_empty_tensor(void)
{
    int64_t shape[2] = {0, 7};
    cn_tensor *t;
    CHECK_OK(cn_tensor_new(&t, 2, shape));
    CHECK(t->size == 0 && t->data == NULL, "size %zu", t->size);
    cn_tensor_free(t);
}

static void shapes_that_wrap_are_rejected_before_allocation(void)
{
    const int64_t wraps[][3] = {
        {46341, 46341, 1},            /* > 2^31 elements: fine for size_t, so accepted below */
        {INT64_C(1) << 32, INT64_C(1) << 32, 1},   /* 2^64 wraps to 0 */
        {INT64_C(1) << 62, 4, 1},                  /* 2^64 again */
        {INT64_C(3037000500), INT64_C(3037000500), 1}, /* just over 2^63 */
        {INT64_C(1) << 61, 1, 1},                  /* fits int64 but not x8 bytes */
    };
    size_t n;
    CHECK_OK(cn_shape_numel(3, wraps[0], &n));
    CHECK(n == (size_t)46341 * 46341, "46341^2 computed as %zu", n);
    for (int i = 1; i < 5; i++) {
        cn_tensor *t = (cn_tensor *)1;
        cn_status s = cn_tensor_new(&t, 3, wraps[i]);
        CHECK(s == CN_ERR_OVERFLOW, "shape %d: status %s", i, cn_status_str(s));
        CHECK(t == NULL, "no tensor on failure");
        CHECK(strstr(cn_last_error(), "overflow") != NULL, "message: %s", cn_last_error());
    }
}

static void negative_dims_and_too_many_dims_are_invalid(void)
{
    int64_t neg[2] = {3, -1}, six[6] = {1, 1, 1, 1, 1, 1};
    cn_tensor *t;
    CHECK(cn_tensor_new(&t, 2, neg) == CN_ERR_INVALID_ARG, "negative dim accepted");
    CHECK(strstr(cn_last_error(), "-1") != NULL, "message names the value: %s", cn_last_error());
    CHECK(cn_tensor_new(&t, 6, six) == CN_ERR_INVALID_ARG, "6 dims accepted");
}

static void size_mul_detects_overflow(void)
{
    size_t r;
    CHECK_OK(cn_size_mul(1u << 20, 1u << 20, &r, "test"));
    CHECK(r == (size_t)1 << 40, "product %zu", r);
    CHECK(cn_size_mul(SIZE_MAX / 2, 3, &r, "bytes") == CN_ERR_OVERFLOW, "overflow missed");
    CHECK(strstr(cn_last_error(), "bytes") != NULL, "message names the quantity");
}

static void rng_is_reproducible_per_context(void)
{
    cn_ctx a, b;
    cn_ctx_init(&a);
    cn_ctx_init(&b);
    cn_rng_seed(&a, 42);
    cn_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) CHECK(cn_rng_u64(&a) == cn_rng_u64(&b), "draw %d differs", i);
    double s = 0, s2 = 0;
    for (int i = 0; i < 20000; i++) {
        double v = cn_rng_normal(&a);
        s += v;
        s2 += v * v;
    }
    CHECK(s / 20000 < 0.05 && s / 20000 > -0.05, "normal mean %g", s / 20000);
    CHECK(s2 / 20000 > 0.95 && s2 / 20000 < 1.05, "normal variance %g", s2 / 20000);
}

int main(void)
{
    TL_RUN(new_tensor_is_zero_filled_and_aligned);
    TL_RUN(empty_dimension_gives_empty_tensor);
    TL_RUN(shapes_that_wrap_are_rejected_before_allocation);
    TL_RUN(negative_dims_and_too_many_dims_are_invalid);
    TL_RUN(size_mul_detects_overflow);
    TL_RUN(rng_is_reproducible_per_context);
    return tl_summary();
}
