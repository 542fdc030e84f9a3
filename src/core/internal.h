/* src/core/internal.h - helpers shared between library files (cn__ names,
 * hidden from the shared library's exports). */
#ifndef CONVNET_INTERNAL_H
#define CONVNET_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "convnet/context.h"
#include "convnet/status.h"
#include "convnet/tensor.h"

#if defined(__GNUC__)
#define CN__HIDDEN __attribute__((visibility("hidden")))
#define CN__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CN__HIDDEN
#define CN__PRINTF(a, b)
#endif

/* Records a printf-style message for cn_last_error() and returns s, so that
 * error paths read `return cn__err(CN_ERR_INVALID_ARG, "conv2d: ...", ...);`. */
CN__HIDDEN cn_status cn__err(cn_status s, const char *fmt, ...) CN__PRINTF(2, 3);
#ifdef __clang_analyzer__
/* For the static analyzer only (make lint's clang-tidy pass with
 * clang-analyzer-*): it does not look into variadic functions, so without
 * this it cannot know that cn__err returns s, follows `return cn__err(...)`
 * as if it could return CN_OK, and reports the unset out-parameters of a
 * failed call. Compiled code never sees this macro. */
#define cn__err(s, ...) (cn__err((s), __VA_ARGS__), (s))
#endif

/* Overflow-checked products of non-negative int64 values: 0 on success,
 * -1 if the product does not fit in int64 (or a factor is negative). */
CN__HIDDEN int cn__mul_i64(int64_t a, int64_t b, int64_t *out);

/* ctx may be NULL: the thread count to use (>= 1). */
CN__HIDDEN int cn__threads(const cn_ctx *ctx);

/* Compiles a plain, vectorisable loop function three times (AVX-512,
 * AVX2+FMA, baseline x86-64) and picks one at load time from the CPU's
 * features. Only for leaf functions: OpenMP's outlined parallel bodies do
 * not inherit it, so parallel loops call a CN__MULTIVERSION row function.
 * -DCN_NO_MULTIVERSION builds the baseline alone (the sanitizer build does,
 * so the tests cover it too). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(CN_NO_MULTIVERSION) && !defined(__SANITIZE_ADDRESS__)
#define CN__MULTIVERSION \
    __attribute__((noinline, target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CN__MULTIVERSION
#endif

#define CN__MIN(a, b) ((a) < (b) ? (a) : (b))
#define CN__MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
