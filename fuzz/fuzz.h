/* fuzz/fuzz.h - the fuzz targets' entry points, shared by libFuzzer and the
 * regression test.
 *
 * Each fuzz/fuzz_NAME.c defines `int cn_fuzz_NAME(const uint8_t *, size_t)`,
 * which feeds one input to a decoder (or the CLI's parser), checks what a
 * successful decode promises, and frees everything. Built with
 * -fsanitize=fuzzer it also defines LLVMFuzzerTestOneInput (make fuzz);
 * built with CN_FUZZ_NO_ENTRY the entry points are plain functions that
 * tests/test_fuzz_regressions.c runs on every file in fuzz/regressions/NAME/.
 */
#ifndef CN_FUZZ_H
#define CN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int cn_fuzz_npy(const uint8_t *data, size_t size);
int cn_fuzz_idx(const uint8_t *data, size_t size);
int cn_fuzz_safetensors(const uint8_t *data, size_t size);
int cn_fuzz_image(const uint8_t *data, size_t size);
int cn_fuzz_cli_args(const uint8_t *data, size_t size);

/* A broken promise of the library is a crash, so that libFuzzer keeps the
 * input and the regression test fails on it. */
#define CN_FUZZ_CHECK(cond)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#ifdef CN_FUZZ_NO_ENTRY
#define CN_FUZZ_ENTRY(fn)
#else
#define CN_FUZZ_ENTRY(fn)                                                                          \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);                                  \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fn(data, size); }
#endif

#endif
