/* convnet/io.h - NumPy .npy files.
 *
 *     cn_tensor *t;
 *     if (cn_npy_read("x.npy", &t) != CN_OK) fprintf(stderr, "%s\n", cn_last_error());
 *     ...
 *     cn_npy_write("y.npy", t);          // atomic: temp file, fsync, rename
 *     cn_tensor_free(t);
 *
 * Reading accepts format versions 1.0, 2.0 (and 3.0), C order, dtypes
 * float32 ('<f4'), float64, int32, int64 and uint8 ('<f8' '<i4' '<i8' '|u1'),
 * all converted to float32, up to CN_MAX_DIMS dimensions. Fortran order,
 * big-endian data, object and other dtypes are rejected with a message. The
 * header is checked against the file's length before any data is allocated.
 * Writing produces format 1.0 '<f4' C order (2.0 if the header needs it).
 */
#ifndef CONVNET_IO_H
#define CONVNET_IO_H

#include <stddef.h>

#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads a file; on success the caller owns *out (cn_tensor_free). */
CN_API cn_status cn_npy_read(const char *path, cn_tensor **out);
/* Decodes an in-memory .npy image of len bytes; the caller owns *out. */
CN_API cn_status cn_npy_decode(const void *buf, size_t len, cn_tensor **out);
/* Writes t atomically to path. */
CN_API cn_status cn_npy_write(const char *path, const cn_tensor *t);

/* Writes len bytes to path atomically: a temp file in the same directory,
 * fsync, rename over path, fsync of the directory. On any failure the old
 * file (if any) is left untouched and the temp file removed. */
CN_API cn_status cn_file_write_atomic(const char *path, const void *data, size_t len);
/* Reads a whole file (at most max_len bytes, else CN_ERR_FORMAT). The caller
 * frees *data with free(). */
CN_API cn_status cn_file_read_all(const char *path, size_t max_len, void **data, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
