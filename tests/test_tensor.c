/* Tensors and checked sizes. */
#include <stdint.h>
#include <stdio.h>
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

/* A large allocation is marked for transparent huge pages (VmFlags "hg"
 * in /proc/self/smaps), which cuts both first-touch and TLB costs of
 * activation-sized buffers; a small one is not. Linux only: skipped where
 * there is no smaps. */
static int smaps_flag(const void *p, const char *flag)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int in = 0, found = 0;
    const unsigned long a = (unsigned long)(uintptr_t)p;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
            in = a >= lo && a < hi;
        else if (in && !strncmp(line, "VmFlags:", 8))
            found = strstr(line, flag) != NULL;
    }
    fclose(f);
    return found;
}

static void large_allocations_ask_for_huge_pages(void)
{
    const size_t big = (size_t)16 << 20;
    char *p = cn_alloc(big), *q = cn_alloc(4096);
    CHECK(p && q, "cn_alloc failed");
    if (smaps_flag(p, "hg") >= 0) {
        /* the middle of the buffer: its first page may share a mapping */
        CHECK(smaps_flag(p + big / 2, " hg") == 1, "16 MiB buffer not madvised for huge pages");
        CHECK(smaps_flag(q, " hg") == 0, "4 KiB buffer madvised for huge pages");
    }
    cn_free(p), cn_free(q);
}

int main(void)
{
    TL_RUN(new_tensor_is_zero_filled_and_aligned);
    TL_RUN(empty_dimension_gives_empty_tensor);
    TL_RUN(shapes_that_wrap_are_rejected_before_allocation);
    TL_RUN(negative_dims_and_too_many_dims_are_invalid);
    TL_RUN(size_mul_detects_overflow);
    TL_RUN(rng_is_reproducible_per_context);
    TL_RUN(large_allocations_ask_for_huge_pages);
    return tl_summary();
}
