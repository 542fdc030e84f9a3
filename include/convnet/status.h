/* convnet/status.h - status codes and the per-thread error message.
 *
 * Every fallible convnet function returns a cn_status. On failure it also
 * stores a one-line message that says what was wrong and why, e.g.
 *     "conv2d: C_in=6 not divisible by groups=4"
 * which cn_last_error() returns. The message lives in thread-local storage
 * owned by the library; it stays valid until the next failing call on the
 * same thread. Library functions never print, abort or exit.
 */
#ifndef CONVNET_STATUS_H
#define CONVNET_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CN_API __attribute__((visibility("default")))
#else
#define CN_API
#endif

typedef enum cn_status {
    CN_OK = 0,
    CN_ERR_INVALID_ARG,  /* a parameter or shape the operation cannot take */
    CN_ERR_OVERFLOW,     /* a size product does not fit in size_t / int64 */
    CN_ERR_NO_MEMORY,    /* an allocation failed */
    CN_ERR_IO,           /* open/read/write/rename failed (errno in message) */
    CN_ERR_FORMAT,       /* a file is malformed, truncated or inconsistent */
    CN_ERR_UNSUPPORTED,  /* valid input that convnet does not handle */
    CN_ERR_NUMERIC,      /* a NaN or infinity where anomaly detection forbids one */
    CN_STATUS_COUNT
} cn_status;

/* A short constant name for a status ("invalid argument"). Never NULL. */
CN_API const char *cn_status_str(cn_status s);

/* The message of the last failure on this thread ("" if none yet).
 * Owned by the library; do not free. */
CN_API const char *cn_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
