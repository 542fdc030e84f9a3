/* Whole-file reads and atomic whole-file writes.
 *
 * Messages name the path and read well on their own ("cannot open x.npy:
 * No such file or directory") as well as behind a caller's "npy: " prefix. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convnet/io.h"
#include "internal.h"

/* read()/write() counts above SSIZE_MAX are implementation-defined, and
 * Linux moves at most ~2 GiB per call anyway. */
#define IO_CHUNK ((size_t)1 << 30)

static ssize_t read_retry(int fd, void *buf, size_t n)
{
    ssize_t r;
    do r = read(fd, buf, n < IO_CHUNK ? n : IO_CHUNK);
    while (r < 0 && errno == EINTR);
    return r;
}

cn_status cn_file_read_all(const char *path, size_t max_len, void **data, size_t *len)
{
    if (!data || !len) return cn__err(CN_ERR_INVALID_ARG, "file: data or len is NULL");
    *data = NULL;
    *len = 0;
    if (!path) return cn__err(CN_ERR_INVALID_ARG, "file: path is NULL");

    int fd;
    do fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return cn__err(CN_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return cn__err(CN_ERR_IO, "cannot stat %s: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return cn__err(CN_ERR_IO, "cannot read %s: %s", path, strerror(EISDIR));
    }

    /* A regular file's size sizes the buffer and lets an oversized file be
     * refused before anything is allocated. Pipes and /proc files report 0
     * or nothing useful, so for them the buffer grows as data arrives; in
     * both cases the read stops at max_len, so a growing file cannot make
     * it unbounded. */
    size_t cap = 0;
    if (S_ISREG(st.st_mode) && st.st_size > 0) {
        if ((uintmax_t)st.st_size > max_len) {
            close(fd);
            return cn__err(CN_ERR_FORMAT, "%s: file is %jd bytes, more than the limit of %zu",
                           path, (intmax_t)st.st_size, max_len);
        }
        cap = (size_t)st.st_size;
    } else {
        cap = CN__MIN((size_t)65536, max_len);
    }
    unsigned char *buf = malloc(cap ? cap : 1);
    if (!buf) {
        close(fd);
        return cn__err(CN_ERR_NO_MEMORY, "%s: cannot allocate %zu bytes to read it", path, cap);
    }

    size_t n = 0;
    cn_status s = CN_OK;
    for (;;) {
        if (n == cap) {
            /* Full: probe one byte before growing, so a regular file read to
             * its stat size never doubles the buffer just to see EOF. */
            unsigned char extra;
            ssize_t r = read_retry(fd, &extra, 1);
            if (r < 0) {
                s = cn__err(CN_ERR_IO, "cannot read %s: %s", path, strerror(errno));
                break;
            }
            if (r == 0) break;
            if (cap >= max_len) {
                s = cn__err(CN_ERR_FORMAT, "%s: file is more than the limit of %zu bytes",
                            path, max_len);
                break;
            }
            size_t grown = cap == 0            ? CN__MIN((size_t)4096, max_len)
                           : cap <= max_len / 2 ? cap * 2
                                                : max_len;
            unsigned char *nb = realloc(buf, grown);
            if (!nb) {
                s = cn__err(CN_ERR_NO_MEMORY, "%s: cannot allocate %zu bytes to read it", path,
                            grown);
                break;
            }
            buf = nb;
            cap = grown;
            buf[n++] = extra;
            continue;
        }
        ssize_t r = read_retry(fd, buf + n, cap - n);
        if (r < 0) {
            s = cn__err(CN_ERR_IO, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    if (s) {
        free(buf);
        return s;
    }
    *data = buf;
    *len = n;
    return CN_OK;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n < IO_CHUNK ? n : IO_CHUNK);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The rename is durable only once the directory entry is on disk. Some
 * file systems cannot fsync a directory (EINVAL) and a directory may be
 * writable without being readable (open fails): the data itself is synced
 * and renamed by then, so those cases are not failures. */
static cn_status sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = strdup(".");
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        dir = malloc(n + 1);
        if (dir) {
            memcpy(dir, path, n);
            dir[n] = '\0';
        }
    }
    if (!dir) return cn__err(CN_ERR_NO_MEMORY, "%s: out of memory", path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cn_status s = CN_OK;
    if (fd >= 0) {
        int r;
        do r = fsync(fd);
        while (r != 0 && errno == EINTR);
        if (r != 0 && errno != EINVAL && errno != ENOTSUP)
            s = cn__err(CN_ERR_IO, "%s was written but syncing directory %s failed: %s", path,
                        dir, strerror(errno));
        close(fd);
    }
    free(dir);
    return s;
}

cn_status cn_file_write_atomic(const char *path, const void *data, size_t len)
{
    if (!path || !*path) return cn__err(CN_ERR_INVALID_ARG, "file: empty or NULL path");
    if (!data && len) return cn__err(CN_ERR_INVALID_ARG, "%s: data is NULL", path);

    /* Same directory as the target, so that rename() stays within one file
     * system and is atomic. */
    static const char suffix[] = ".tmp.XXXXXX";
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof suffix);
    if (!tmp) return cn__err(CN_ERR_NO_MEMORY, "%s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, suffix, sizeof suffix);

    int fd = mkstemp(tmp);
    if (fd < 0) {
        cn_status s = cn__err(CN_ERR_IO, "cannot create a temp file next to %s: %s", path,
                              strerror(errno));
        free(tmp);
        return s;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);

    cn_status s = CN_OK;
    /* mkstemp creates 0600; outputs are meant to be shared like any file. */
    if (fchmod(fd, 0644) != 0)
        s = cn__err(CN_ERR_IO, "cannot set the mode of %s: %s", tmp, strerror(errno));
    else if (write_all(fd, data, len) != 0)
        s = cn__err(CN_ERR_IO, "cannot write %s (temp %s): %s", path, tmp, strerror(errno));
    else {
        int r;
        do r = fsync(fd);
        while (r != 0 && errno == EINTR);
        if (r != 0)
            s = cn__err(CN_ERR_IO, "cannot sync %s (temp %s): %s", path, tmp, strerror(errno));
    }
    /* close() can report a deferred write error (NFS); it is never retried
     * because Linux releases the descriptor even when it fails. */
    if (close(fd) != 0 && !s)
        s = cn__err(CN_ERR_IO, "cannot close %s (temp %s): %s", path, tmp, strerror(errno));
    if (!s && rename(tmp, path) != 0)
        s = cn__err(CN_ERR_IO, "cannot replace %s: %s", path, strerror(errno));
    if (s) {
        unlink(tmp);
        free(tmp);
        return s;
    }
    free(tmp);
    return sync_parent_dir(path);
}
