/* Tensors, checked sizes and aligned allocation. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>

#include "convnet/tensor.h"
#include "internal.h"

#define CN__ALIGN 64
#define CN__HUGE_MIN (4u << 20)  /* ask for huge pages from 4 MiB up */

int cn__mul_i64(int64_t a, int64_t b, int64_t *out)
{
    if (a < 0 || b < 0) return -1;
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r)) return -1;
    *out = r;
    return 0;
}

cn_status cn_size_mul(size_t a, size_t b, size_t *out, const char *what)
{
    size_t r;
    if (__builtin_mul_overflow(a, b, &r) || r > (size_t)INT64_MAX)
        return cn__err(CN_ERR_OVERFLOW, "%s: size %zu x %zu overflows", what ? what : "size", a,
                       b);
    *out = r;
    return CN_OK;
}

char *cn_shape_str(int ndim, const int64_t *shape, char *buf, size_t len)
{
    if (!buf || len == 0) return buf;
    size_t at = 0;
    buf[0] = '\0';
    at += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (at < len) snprintf(buf + at, len - at, "]");
    return buf;
}

cn_status cn_shape_numel(int ndim, const int64_t *shape, size_t *out)
{
    if (ndim < 0 || ndim > CN_MAX_DIMS)
        return cn__err(CN_ERR_INVALID_ARG, "tensor: ndim=%d outside 0..%d", ndim, CN_MAX_DIMS);
    /* The product of the non-zero dimensions must fit even when a zero makes
     * the element count 0: then every partial product of a valid shape (a
     * stride, the rows before an axis) fits too, in any order, and
     * [2^32,2^32,0] is refused as [0,2^32,2^32] is. */
    int64_t n = 1;
    int empty = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return cn__err(CN_ERR_INVALID_ARG, "tensor: dimension %d is negative (%lld)", i,
                           (long long)shape[i]);
        if (shape[i] == 0) empty = 1;
        else if (cn__mul_i64(n, shape[i], &n)) {
            char s[160];
            return cn__err(CN_ERR_OVERFLOW, "tensor: element count of shape %s overflows",
                           cn_shape_str(ndim, shape, s, sizeof s));
        }
    }
    /* The byte count must fit too, so that callers can multiply by 8. */
    if ((uint64_t)n > SIZE_MAX / 8) {
        char s[160];
        return cn__err(CN_ERR_OVERFLOW, "tensor: byte size of shape %s overflows",
                       cn_shape_str(ndim, shape, s, sizeof s));
    }
    *out = empty ? 0 : (size_t)n;
    return CN_OK;
}

void *cn_alloc(size_t bytes)
{
    if (bytes == 0 || bytes > SIZE_MAX - CN__ALIGN) return NULL;
    size_t rounded = (bytes + CN__ALIGN - 1) / CN__ALIGN * CN__ALIGN;
    void *p = aligned_alloc(CN__ALIGN, rounded);
#ifdef MADV_HUGEPAGE /* a Linux name: CMakeLists defines _DEFAULT_SOURCE here for it */
    /* Huge pages spare activation-sized buffers most TLB misses (resnet
     * training: 2-5% less CPU time) and, where the memory was used
     * before, most of the cost of first touch (measured on the development
     * VM: 0.4 us a 4 KiB page against 1.6). test_tensor checks the request. */
    if (p && rounded >= CN__HUGE_MIN) {
        uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
        uintptr_t e = ((uintptr_t)p + rounded) & ~(uintptr_t)4095;
        if (e > a) madvise((void *)a, e - a, MADV_HUGEPAGE);
    }
#endif
    return p;
}

void cn_free(void *p) { free(p); }

cn_status cn_tensor_new(cn_tensor **out, int ndim, const int64_t *shape)
{
    *out = NULL;
    size_t n;
    cn_status s = cn_shape_numel(ndim, shape, &n);
    if (s) return s;
    cn_tensor *t = calloc(1, sizeof *t);
    if (!t) return cn__err(CN_ERR_NO_MEMORY, "tensor: out of memory");
    t->ndim = ndim;
    for (int i = 0; i < CN_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 1;
    t->size = n;
    if (n) {
        t->data = cn_alloc(n * sizeof(float));
        if (!t->data) {
            free(t);
            return cn__err(CN_ERR_NO_MEMORY, "tensor: cannot allocate %zu floats", n);
        }
        memset(t->data, 0, n * sizeof(float));
    }
    *out = t;
    return CN_OK;
}

void cn_tensor_free(cn_tensor *t)
{
    if (!t) return;
    cn_free(t->data);
    free(t);
}
