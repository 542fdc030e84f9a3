/* convnet/safetensors.h - checkpoints in Hugging Face's safetensors format.
 *
 * Writing: collect tensors and string metadata, then write one file
 * atomically (temp file, fsync, rename).
 *
 *     cn_st_writer *w;
 *     if (cn_st_writer_new(&w) != CN_OK) ...
 *     int64_t ws[4] = {3, 3, 1, 8};
 *     cn_st_writer_add(w, "conv1.weight", 4, ws, weights);   // borrowed until write
 *     cn_st_writer_add_i64(w, "optim.step", 0, NULL, &step);
 *     cn_st_writer_meta(w, "epoch", "12");
 *     cn_status s = cn_st_writer_write(w, "ckpt.safetensors");
 *     cn_st_writer_free(w);
 *
 * Reading: open checks the whole file before returning, then lookups are
 * cheap and cannot find anything inconsistent.
 *
 *     cn_st_file *f;
 *     if (cn_st_open("ckpt.safetensors", &f) != CN_OK) puts(cn_last_error());
 *     cn_st_read_f32(f, "conv1.weight", weights, 72);    // checks the count
 *     const char *epoch = cn_st_meta(f, "epoch");        // NULL if absent
 *     cn_st_close(f);
 *
 * The format (https://github.com/huggingface/safetensors):
 *     N        u64 little-endian: the header's length in bytes
 *     header   N bytes of UTF-8 JSON, an object mapping each tensor name to
 *              {"dtype":"F32","shape":[2,3],"data_offsets":[begin,end]} and
 *              optionally "__metadata__" to an object of string values
 *     data     the tensors' bytes, little-endian, C order; offsets count
 *              from the start of this buffer
 *
 * Files written here match the reference implementation byte for byte:
 * "__metadata__" first, then tensors by descending dtype alignment (I64,
 * F64, F32, I32, U8) and by name (bytewise) within a dtype, offsets
 * contiguous from 0, the header padded with spaces to a multiple of 8 so
 * that every tensor's data is aligned to its element size in the file.
 * Metadata keys are written sorted (the reference leaves them in hash order).
 *
 * Reading accepts dtypes F32, F64, I64, I32 and U8 and at most CN_MAX_DIMS
 * dimensions (others: CN_ERR_UNSUPPORTED). Everything else that is wrong is
 * CN_ERR_FORMAT with a message "safetensors: PATH: what and why": a header
 * length over 100,000,000 bytes or past the end of the file, JSON that is
 * not one object (strict RFC 8259: valid UTF-8, valid escapes, nesting at
 * most 16 deep, nothing but whitespace after it), entries that do not have
 * exactly the keys dtype, shape and data_offsets, integers that are negative
 * or above 2^53, sizes that overflow, a byte range that does not hold
 * exactly shape x dtype size, tensors that leave holes or overlap, data
 * beyond the last tensor, empty or duplicate names, metadata values that are
 * not strings, and names or metadata containing "\u0000". No buffer is
 * sized from a number in the header: the file itself (read whole, at most
 * 16 GiB) bounds every allocation.
 */
#ifndef CONVNET_SAFETENSORS_H
#define CONVNET_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cn_st_dtype {
    CN_ST_F32 = 0,
    CN_ST_F64,
    CN_ST_I64,
    CN_ST_I32,
    CN_ST_U8,
    CN_ST_DTYPE_COUNT
} cn_st_dtype;

/* "F32", "F64", "I64", "I32", "U8"; NULL for an invalid value. */
CN_API const char *cn_st_dtype_name(cn_st_dtype t);
/* Bytes per element (4, 8, 8, 4, 1); 0 for an invalid value. */
CN_API size_t cn_st_dtype_size(cn_st_dtype t);

/* ---- writing ------------------------------------------------------------ */

typedef struct cn_st_writer cn_st_writer;

/* An empty writer; the caller owns *out and frees it with cn_st_writer_free. */
CN_API cn_status cn_st_writer_new(cn_st_writer **out);

/* Adds a tensor of ndim (0..CN_MAX_DIMS) dimensions, C order, host floats.
 * The name and shape are copied; the data is BORROWED: it must stay valid
 * and unchanged until cn_st_writer_write returns (it is read only there).
 * data may be NULL only when the shape has no elements. Errors
 * (CN_ERR_INVALID_ARG): an empty name, a name that is not valid UTF-8,
 * "__metadata__", a name added before, a negative dimension. */
CN_API cn_status cn_st_writer_add(cn_st_writer *w, const char *name, int ndim, const int64_t *shape,
                                  const float *data);
/* The same for other element types, with the same borrowing rule: U8 for
 * byte blobs such as generator states, I64 for counters. */
CN_API cn_status cn_st_writer_add_u8(cn_st_writer *w, const char *name, int ndim,
                                     const int64_t *shape, const uint8_t *data);
CN_API cn_status cn_st_writer_add_i64(cn_st_writer *w, const char *name, int ndim,
                                      const int64_t *shape, const int64_t *data);
/* Any dtype; data holds numel * cn_st_dtype_size(dtype) bytes in host order. */
CN_API cn_status cn_st_writer_add_raw(cn_st_writer *w, const char *name, cn_st_dtype dtype,
                                      int ndim, const int64_t *shape, const void *data);

/* Sets metadata key to value (both copied, both valid UTF-8; a later call
 * with the same key replaces the value). */
CN_API cn_status cn_st_writer_meta(cn_st_writer *w, const char *key, const char *value);

/* Writes everything added so far to path atomically: on failure an existing
 * file at path is left as it was. The whole file is built in memory first.
 * The writer stays usable (and still borrows the data) afterwards. */
CN_API cn_status cn_st_writer_write(cn_st_writer *w, const char *path);

/* Frees the writer and its copies (never the borrowed data); NULL is a no-op. */
CN_API void cn_st_writer_free(cn_st_writer *w);

/* ---- reading ------------------------------------------------------------ */

typedef struct cn_st_file cn_st_file;

/* A tensor as stored in an open file. */
typedef struct cn_st_info {
    const char *name; /* owned by the file */
    cn_st_dtype dtype;
    int ndim;                   /* 0..CN_MAX_DIMS */
    int64_t shape[CN_MAX_DIMS]; /* unused trailing entries are 1 */
    size_t numel;               /* product of shape[0..ndim) */
    size_t nbytes;              /* numel * cn_st_dtype_size(dtype) */
    /* The elements inside the file's buffer, in host byte order (the file
     * stores little-endian), valid until cn_st_close. Aligned to the
     * element size when the writer aligned them (this one and the
     * reference do); a file from elsewhere may not be, so copy with memcpy
     * or use cn_st_read_*. NULL if empty. */
    const void *data;
} cn_st_info;

/* Reads and validates the whole file (see the top of this header). On
 * success the caller owns *out and releases it with cn_st_close; on failure
 * *out is NULL. */
CN_API cn_status cn_st_open(const char *path, cn_st_file **out);

/* Number of tensors; names are indexed 0..count-1 in bytewise order. */
CN_API size_t cn_st_count(const cn_st_file *f);
/* The i-th name (owned by the file), or NULL if i >= count. */
CN_API const char *cn_st_name(const cn_st_file *f, size_t i);

/* Describes the tensor called name; CN_ERR_INVALID_ARG if there is none. */
CN_API cn_status cn_st_get(const cn_st_file *f, const char *name, cn_st_info *info);

/* Copies the tensor called name into dst as floats: F32 as is, F64 rounded
 * to the nearest float. n must equal its element count. Integer dtypes are
 * refused (CN_ERR_INVALID_ARG), so that a counter is never silently read as
 * a weight. */
CN_API cn_status cn_st_read_f32(const cn_st_file *f, const char *name, float *dst, size_t n);
/* Copies an integer tensor (I64, I32 or U8, widened exactly) into dst;
 * n must equal its element count. */
CN_API cn_status cn_st_read_i64(const cn_st_file *f, const char *name, int64_t *dst, size_t n);

/* The metadata value for key (owned by the file), or NULL if absent. */
CN_API const char *cn_st_meta(const cn_st_file *f, const char *key);
/* Number of metadata entries and the i-th key (bytewise order), for listing. */
CN_API size_t cn_st_meta_count(const cn_st_file *f);
CN_API const char *cn_st_meta_key(const cn_st_file *f, size_t i);

/* Frees the file and everything it owns; NULL is a no-op. */
CN_API void cn_st_close(cn_st_file *f);

#ifdef __cplusplus
}
#endif
#endif
