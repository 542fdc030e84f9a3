/* Fuzzes the safetensors reader. There is only cn_st_open(path), so the
 * input goes into an anonymous memory file (memfd) opened through
 * /proc/self/fd: nothing touches the disk, and the file lives as long as
 * the process (the regression test runs this in-process too). A file that opens must answer
 * every lookup consistently: names sorted and found, sizes that agree,
 * data readable through the typed readers, metadata keys found. */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "convnet/convnet.h"

static void st_check_file(const cn_st_file *f)
{
    size_t n = cn_st_count(f);
    CN_FUZZ_CHECK(cn_st_name(f, n) == NULL);
    for (size_t i = 0; i < n; i++) {
        const char *name = cn_st_name(f, i);
        CN_FUZZ_CHECK(name != NULL && name[0] != '\0');
        if (i) CN_FUZZ_CHECK(strcmp(cn_st_name(f, i - 1), name) < 0);
        cn_st_info info;
        CN_FUZZ_CHECK(cn_st_get(f, name, &info) == CN_OK);
        CN_FUZZ_CHECK(strcmp(info.name, name) == 0);
        CN_FUZZ_CHECK(info.ndim >= 0 && info.ndim <= CN_MAX_DIMS);
        size_t numel = 1;
        for (int d = 0; d < info.ndim; d++) numel *= (size_t)info.shape[d];
        CN_FUZZ_CHECK(numel == info.numel);
        CN_FUZZ_CHECK(info.nbytes == info.numel * cn_st_dtype_size(info.dtype));
        CN_FUZZ_CHECK((info.data == NULL) == (info.nbytes == 0));
        volatile unsigned char sink = 0;
        for (size_t b = 0; b < info.nbytes; b++) sink ^= ((const unsigned char *)info.data)[b];
        (void)sink;
        /* +1 so that an empty tensor still gets a non-NULL buffer. */
        if (info.dtype == CN_ST_F32 || info.dtype == CN_ST_F64) {
            float *dst = malloc((info.numel + 1) * sizeof *dst);
            if (dst) {
                CN_FUZZ_CHECK(cn_st_read_f32(f, name, dst, info.numel) == CN_OK);
                CN_FUZZ_CHECK(cn_st_read_f32(f, name, dst, info.numel + 1) != CN_OK);
                CN_FUZZ_CHECK(cn_st_read_i64(f, name, NULL, info.numel) != CN_OK);
                free(dst);
            }
        } else {
            int64_t *dst = malloc((info.numel + 1) * sizeof *dst);
            if (dst) {
                CN_FUZZ_CHECK(cn_st_read_i64(f, name, dst, info.numel) == CN_OK);
                CN_FUZZ_CHECK(cn_st_read_i64(f, name, dst, info.numel + 1) != CN_OK);
                CN_FUZZ_CHECK(cn_st_read_f32(f, name, NULL, info.numel) != CN_OK);
                free(dst);
            }
        }
    }
    size_t nm = cn_st_meta_count(f);
    CN_FUZZ_CHECK(cn_st_meta_key(f, nm) == NULL);
    for (size_t i = 0; i < nm; i++) {
        const char *key = cn_st_meta_key(f, i);
        CN_FUZZ_CHECK(key != NULL);
        CN_FUZZ_CHECK(cn_st_meta(f, key) != NULL);
    }
    cn_st_info info;
    CN_FUZZ_CHECK(cn_st_get(f, "", &info) != CN_OK);
}

int cn_fuzz_safetensors(const uint8_t *data, size_t size)
{
    /* One memory file for the whole run, rewritten for each input. */
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("cn-fuzz-st", MFD_CLOEXEC);
        CN_FUZZ_CHECK(fd >= 0);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    CN_FUZZ_CHECK(ftruncate(fd, 0) == 0);
    for (size_t done = 0; done < size;) {
        ssize_t w = pwrite(fd, data + done, size - done, (off_t)done);
        CN_FUZZ_CHECK(w > 0);
        done += (size_t)w;
    }
    cn_st_file *f = NULL;
    cn_status s = cn_st_open(path, &f);
    if (s != CN_OK) {
        CN_FUZZ_CHECK(f == NULL);
        CN_FUZZ_CHECK(cn_last_error()[0] != '\0');
        return 0;
    }
    CN_FUZZ_CHECK(f != NULL);
    st_check_file(f);
    cn_st_close(f);
    return 0;
}

CN_FUZZ_ENTRY(cn_fuzz_safetensors)
