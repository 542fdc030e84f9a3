/* Status names and the thread-local error message. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static _Thread_local char last_error[512];

static const char *const status_names[] = {
    "ok", "invalid argument", "size overflow", "out of memory",
    "i/o error", "malformed file", "unsupported", "non-finite value",
};
_Static_assert(sizeof status_names / sizeof status_names[0] == CN_STATUS_COUNT,
               "one name per cn_status");

const char *cn_status_str(cn_status s)
{
    if ((unsigned)s >= CN_STATUS_COUNT) return "unknown status";
    return status_names[s];
}

const char *cn_last_error(void) { return last_error; }

/* The name in parentheses: src/core/internal.h may define a cn__err macro. */
cn_status (cn__err)(cn_status s, const char *fmt, ...)
{
    /* Format into a copy first: callers may pass cn_last_error() itself as
     * an argument to wrap a lower-level message. */
    char msg[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(last_error, msg, sizeof msg);
    return s;
}
