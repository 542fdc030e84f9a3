/* Image decoding and PNG encoding through stb (Debian's libstb).
 * Untrusted files are sized from their header (stbi_info_from_memory)
 * before stb allocates any pixels, so a 20-byte file cannot ask for 16 GiB. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* stb's decoders and PNG encoder from Debian's libstb-dev headers, compiled
 * here as static functions: configured so they cannot assert, exit or touch
 * files, limited to the formats we read, and invisible to the library's
 * users (no clash with their own copy of stb). */
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_TGA
#define STBI_ONLY_GIF
#define STBI_ASSERT(x) ((void)0)
/* Zeroed allocations: a JPEG scan may name a Huffman table that no DHT
 * defined, and stb then decodes with its never-initialised heap copy,
 * reading values[] at whatever index the garbage gives
 * (fuzz/regressions/image/jpeg_scan_uses_undefined_huffman_table). A zeroed
 * table decodes every code as symbol 0: a flat grey image instead. */
#define STBI_MALLOC(size) calloc(1, size)
#define STBI_REALLOC(p, size) stb_realloc(p, size)
#define STBI_FREE(p) free(p)
#include <stdlib.h>
/* stb inflates a PNG's image data into a buffer that it doubles for as
 * long as the stream goes on, whatever the header says: a 3.5 MB PNG of
 * deflated zeros declaring 1x1 pixel had it allocate 2 GiB and inflate for
 * 11 s (a decompression bomb; the bytes past the image are then ignored).
 * Its reallocations come here and stop at the budget decode_stb sets from
 * the header, per thread, for the one decode it runs. */
static _Thread_local size_t stb_budget;   /* bytes; 0: no limit */
static _Thread_local int stb_over_budget; /* a reallocation was refused */
static void *stb_realloc(void *p, size_t size)
{
    if (stb_budget && size > stb_budget) {
        stb_over_budget = 1;
        return NULL;
    }
    return realloc(p, size);
}
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#define STBIW_ASSERT(x) ((void)0)
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmisleading-indentation"
#pragma GCC diagnostic ignored "-Wtype-limits"
#endif
/* A corrupt JPEG can make stb's decoder overflow int arithmetic (the DC
 * predictor summed over blocks, times the quantizer: fuzz/regressions/image/
 * jpeg_dc_predictor_overflows_int), which wraps harmlessly into a wrong
 * pixel and which stb 2.28 refuses; Debian's copy is compiled with wrapping
 * signed arithmetic (GCC) or without UBSan's overflow check (clang), so that
 * make test-sanitize and make fuzz keep reporting everything else. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((no_sanitize("signed-integer-overflow"))), \
                             apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("wrapv")
#endif
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic pop
/* Reported at the end of the file: prototypes of stb functions the options
 * above compile out. */
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

#include "convnet/image.h"
#include "convnet/io.h"
#include "internal.h"

#define IMG_MAX_SIDE 1000000               /* pixels along either axis */
/* H*W: 1 GiB of floats per channel. The fuzz build (make fuzz) lowers it so
 * that every input decodes in milliseconds. */
#ifndef IMG_MAX_PIXELS
#define IMG_MAX_PIXELS (INT64_C(1) << 28)
#endif
/* stb fills the pixels of a truncated file with zeros and a GIF's canvas may
 * dwarf its frames, so an 18-byte TGA header alone could ask for 2^28
 * pixels (5 GiB once converted to floats; fuzz/regressions/image/). No
 * valid PNG, JPEG, GIF, BMP or TGA gets near this many pixels per byte of
 * file (a one-bit PNG at deflate's best ratio, 1032:1, gets 8,256), so a
 * larger claim is refused before stb allocates anything; the other formats
 * get tighter bounds (max_pixels_per_byte). */
#define IMG_MAX_PIXELS_PER_BYTE 16384
#define IMG_MAX_FILE ((size_t)256 << 20)   /* bytes of an encoded image file */

/* Checks a width x height x channels triple against convnet's limits. `name`
 * prefixes the message ("image: PATH: " or "image: "). */
static cn_status check_size(const char *name, int64_t w, int64_t h, int64_t c)
{
    if (w < 1 || h < 1)
        return cn__err(CN_ERR_FORMAT, "%simage size %lldx%lld (WxH) is empty", name,
                       (long long)w, (long long)h);
    if (w > IMG_MAX_SIDE || h > IMG_MAX_SIDE || w * h > IMG_MAX_PIXELS)
        return cn__err(CN_ERR_FORMAT,
                       "%simage size %lldx%lld (WxH) is over the limit (sides <= %d, "
                       "<= %lld pixels)",
                       name, (long long)w, (long long)h, IMG_MAX_SIDE, (long long)IMG_MAX_PIXELS);
    if (c < 1 || c > 4)
        return cn__err(CN_ERR_FORMAT, "%s%lld channels (expected 1 to 4)", name, (long long)c);
    return CN_OK;
}

/* stb_image (Debian's 2022-09 snapshot) builds a JPEG Huffman table from its
 * 16 code-length counts without checking that they total at most 256, and
 * then writes past its 257-entry arrays: a heap overflow from a 200-byte
 * file, found by fuzz/fuzz_image.c (upstream stb_image 2.28 checks it).
 * This walks the markers the way stb reads them - skipping anything that is
 * not 0xFF, as stb does between segments and in entropy-coded data, and
 * reading a DHT's tables as far as stb would, with zeros past the end - so
 * that every table stb could build is seen here first. 0 if one has more
 * than 256 codes. */
static int jpeg_tables_ok(const unsigned char *p, size_t len)
{
    /* stb takes 0xFF, any number of 0xFF fill bytes, then 0xD8 as SOI. */
    size_t i = 0;
    while (i < len && p[i] == 0xFF) i++;
    if (i == 0 || i >= len || p[i] != 0xD8) return 1;
    i++;
    while (i < len) {
        if (p[i++] != 0xFF) continue;
        while (i < len && p[i] == 0xFF) i++;
        if (i >= len) break;
        unsigned m = p[i++];
        /* Stuffed zeros, restart markers, SOI and TEM have no length. */
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue;
        if (m == 0xD9 || i + 1 >= len) break;
        size_t seg = (size_t)p[i] << 8 | p[i + 1];
        if (m == 0xC4) {
            long left = (long)seg - 2;
            size_t q = i + 2;
            while (left > 0 && q < len && p[q] >> 4 <= 1 && (p[q] & 15) <= 3) {
                unsigned n = 0;
                for (size_t k = q + 1; k <= q + 16 && k < len; k++) n += p[k];
                if (n > 256) return 0;
                q += 17 + n;
                left -= 17 + (long)n;
            }
        }
        i += seg;
    }
    return 1;
}

/* stb copies a PNG's IDAT chunks into a buffer it allocates at the first
 * non-empty one. An empty IDAT before that has it compute NULL + 0 and call
 * memcpy(NULL, p, 0), undefined behaviour that UBSan reports; an IDAT
 * longer than the rest of the file has it allocate the claimed length (up
 * to 2 GiB) before finding out (both found by fuzz/fuzz_image.c). stb
 * refuses the second kind anyway, and the first carries nothing and no
 * encoder writes one, so both are refused here first. Walks the chunks as
 * stb does; 0 for either kind. */
static int png_chunks_ok(const unsigned char *p, size_t len)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (len < 8 || memcmp(p, sig, 8) != 0) return 1;
    int have_data = 0;
    for (size_t i = 8; len - i >= 8;) {
        size_t n = (size_t)p[i] << 24 | (size_t)p[i + 1] << 16 | (size_t)p[i + 2] << 8 | p[i + 3];
        const unsigned char *type = p + i + 4;
        int idat = !memcmp(type, "IDAT", 4);
        if (idat && (n > len - i - 8 || (n == 0 && !have_data))) return 0;
        have_data |= idat;
        /* The CRC follows; stb does not check it. */
        if (!memcmp(type, "IEND", 4) || n > len - i - 8 || len - i - 8 - n < 4) break;
        i += 8 + n + 4;
    }
    return 1;
}

/* stb keeps the palette of a PNG or BMP in an uninitialised 256-entry
 * array on its stack and fills only the entries the file has, so a pixel
 * whose index is past them (invalid, unchecked by stb) copies stack memory
 * into the image - and from there into any PNG written from it (found by
 * running the fuzz corpus under valgrind: fuzz/regressions/image/
 * png_index_past_palette, bmp_index_past_palette). Such files are decoded
 * from a copy with the palette padded with black to 256 entries. */

/* A copy of p[0..len) with n zero bytes inserted at `at`, or NULL. */
static unsigned char *with_zeros(const unsigned char *p, size_t len, size_t at, size_t n)
{
    unsigned char *c = calloc(1, len + n);
    if (!c) return NULL;
    memcpy(c, p, at);
    memcpy(c + at + n, p + at, len - at);
    return c;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* *copy: a PNG's first PLTE chunk grown to 768 bytes (stb checks no CRC);
 * NULL when the file needs none. */
static cn_status png_pad_palette(const unsigned char *p, size_t len, const char *name,
                                 unsigned char **copy, size_t *copy_len)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (len < 8 || memcmp(p, sig, 8) != 0) return CN_OK;
    for (size_t i = 8; len - i >= 8;) {
        size_t n = be32(p + i);
        if (!memcmp(p + i + 4, "PLTE", 4)) {
            /* stb refuses other lengths itself. */
            if (n >= 768 || n % 3 != 0 || n > len - i - 8) return CN_OK;
            if (!(*copy = with_zeros(p, len, i + 8 + n, 768 - n)))
                return cn__err(CN_ERR_NO_MEMORY, "%sout of memory", name);
            const unsigned char plte_len[4] = {0, 0, 768 >> 8, 768 & 255};
            memcpy(*copy + i, plte_len, 4);
            *copy_len = len + 768 - n;
            return CN_OK;
        }
        if (!memcmp(p + i + 4, "IEND", 4) || n > len - i - 8 || len - i - 8 - n < 4) break;
        i += 8 + n + 4;
    }
    return CN_OK;
}

/* The same for a BMP of 1, 4 or 8 bits per pixel, whose palette size stb
 * derives from the pixel data's offset (header bytes 10..13) exactly as
 * computed here: the zeros go after the palette and the offset grows by as
 * much. A palette that would end before it starts leaves every entry
 * uninitialised: refused. */
static cn_status bmp_pad_palette(const unsigned char *p, size_t len, const char *name,
                                 unsigned char **copy, size_t *copy_len)
{
    if (len < 2 || p[0] != 'B' || p[1] != 'M') return CN_OK;
    /* The header as stb reads it: zeros past the end of the file. */
    unsigned char head[30] = {0};
    memcpy(head, p, CN__MIN(len, sizeof head));
    int64_t offset = (int32_t)le32(head + 10), hsz = (int32_t)le32(head + 14);
    int os2 = hsz == 12;
    int bpp = head[os2 ? 24 : 28] | head[os2 ? 25 : 29] << 8;
    if (offset < 0 || bpp >= 16 || (!os2 && hsz != 40 && hsz != 56 && hsz != 108 && hsz != 124))
        return CN_OK; /* no palette, or stb refuses the file */
    int64_t entry = os2 ? 3 : 4, room = os2 ? offset - 38 : offset - 14 - hsz;
    int64_t psize = room < 0 ? -1 : room / entry;
    if (psize > 255) return CN_OK;
    if (psize <= 0)
        return cn__err(CN_ERR_FORMAT, "%snot a readable image (a BMP with %lld palette entries)",
                       name, (long long)psize);
    size_t at = (size_t)(14 + hsz + psize * entry), n = (size_t)((256 - psize) * entry);
    if (at > len) return CN_OK; /* the palette runs past the end: stb reads zeros */
    if (!(*copy = with_zeros(p, len, at, n)))
        return cn__err(CN_ERR_NO_MEMORY, "%sout of memory", name);
    uint32_t moved = (uint32_t)(offset + (int64_t)n);
    for (int k = 0; k < 4; k++) (*copy)[10 + k] = (unsigned char)(moved >> 8 * k);
    *copy_len = len + n;
    return CN_OK;
}

static cn_status decode_stb(const unsigned char *buf, size_t len, size_t file_len, int gray,
                            const char *name, cn_tensor **out);

/* What a file must pass before stb looks at it (decode and cn_image_info). */
static cn_status prechecks(const void *buf, size_t len, const char *name)
{
    /* stb takes an int length (and a padded palette adds up to 1024 bytes). */
    if (len > INT_MAX - 1024)
        return cn__err(CN_ERR_UNSUPPORTED, "%s%zu bytes is too large to decode", name, len);
    if (!buf && len) return cn__err(CN_ERR_INVALID_ARG, "%sbuffer is NULL", name);
    if (!jpeg_tables_ok(buf, len))
        return cn__err(CN_ERR_FORMAT, "%snot a readable image (a JPEG Huffman table has more "
                       "than 256 codes)", name);
    if (!png_chunks_ok(buf, len))
        return cn__err(CN_ERR_FORMAT,
                       "%snot a readable image (a PNG IDAT chunk is empty or truncated)", name);
    return CN_OK;
}

static cn_status decode(const void *buf, size_t len, int gray, const char *name, cn_tensor **out)
{
    *out = NULL;
    cn_status s = prechecks(buf, len, name);
    if (s) return s;
    unsigned char *copy = NULL;
    size_t copy_len = 0;
    s = png_pad_palette(buf, len, name, &copy, &copy_len);
    if (!s && !copy) s = bmp_pad_palette(buf, len, name, &copy, &copy_len);
    if (!s) s = decode_stb(copy ? copy : buf, copy ? copy_len : len, len, gray, name, out);
    free(copy);
    return s;
}

/* The most pixels a valid file of its format describes per byte, with a
 * margin: stb fills the missing pixels of a truncated file with zeros, so
 * without this a 606-byte TGA declaring 32639 x 127 pixels had it
 * "decode" four million of them (found by tests/test_malformed_cli.c).
 * PNG: deflate's 1032:1 of 1-bit pixels, 8,256; GIF: 12-bit LZW codes for
 * runs of up to 4,096 pixels, 2,730, and a canvas may dwarf its frames
 * (both IMG_MAX_PIXELS_PER_BYTE); JPEG: at least a bit per 8x8 block
 * (progressive DC scans; baseline needs two), 512; TGA: a run-length
 * packet of 128 pixels in 2 bytes, 64; BMP, which stb reads uncompressed,
 * 8 (1 bit per pixel). Four to eight times those, by the first bytes as
 * stb tells the formats apart (TGA, which has no signature, is tried last). */
static int64_t max_pixels_per_byte(const unsigned char *p, size_t len)
{
    if (len >= 2 && p[0] == 0xFF && (p[1] == 0xD8 || p[1] == 0xFF)) return 2048;
    if (len >= 4 && (!memcmp(p, "\x89PNG", 4) || !memcmp(p, "GIF8", 4)))
        return IMG_MAX_PIXELS_PER_BYTE;
    if (len >= 2 && p[0] == 'B' && p[1] == 'M') return 64;
    return 256;
}

/* The header's width, height and channels, checked against the limits
 * before anything is decoded: buf is what stb reads, file_len the size of
 * the file it came from. */
static cn_status header_size(const unsigned char *buf, size_t len, size_t file_len,
                             const char *name, int64_t *w_out, int64_t *h_out, int64_t *c_out)
{
    /* stb refuses a PNG of 0 pixels or over 2^30 pixel bytes itself, but
     * its reason is lost when it goes on to try the other formats ("unknown
     * image type"): the IHDR's size is checked here first, so that the
     * message names it. */
    if (len >= 24 && !memcmp(buf, "\x89PNG\r\n\x1a\n", 8) && !memcmp(buf + 12, "IHDR", 4)) {
        cn_status s = check_size(name, be32(buf + 16), be32(buf + 20), 1);
        if (s) return s;
    }
    int w, h, c;
    if (!stbi_info_from_memory(buf, (int)len, &w, &h, &c)) {
        const char *why = stbi_failure_reason();
        return cn__err(CN_ERR_FORMAT, "%snot a readable image (%s)", name, why ? why : "unknown");
    }
    /* stb's header reader gives a top-down BMP a negative height (its
     * loader flips the sign), so the size is the magnitude. */
    int64_t info_h = h < 0 ? -(int64_t)h : h;
    cn_status s = check_size(name, w, info_h, c);
    if (s) return s;
    if (w * info_h > (int64_t)file_len * max_pixels_per_byte(buf, len))
        return cn__err(CN_ERR_FORMAT,
                       "%simage size %dx%lld (WxH) is implausible for a %zu-byte file "
                       "(truncated?)", name, w, (long long)info_h, file_len);
    *w_out = w, *h_out = info_h, *c_out = c;
    return CN_OK;
}

/* decode() after its checks: buf is what stb reads, file_len the size of
 * the file it came from. */
static cn_status decode_stb(const unsigned char *buf, size_t len, size_t file_len, int gray,
                            const char *name, cn_tensor **out)
{
    int64_t hw, hh, hc;
    cn_status s = header_size(buf, len, file_len, name, &hw, &hh, &hc);
    if (s) return s;

    /* A PNG's inflated data is at most a filter byte and 2 bytes (16 bits)
     * per sample per row; Adam7's passes add a filter byte and rounding per
     * pass row, and stb doubles its buffer: twice that, plus slack. */
    stb_budget = (size_t)hh * (size_t)(1 + 2 * hw * hc) * 2 + ((size_t)1 << 20);
    stb_over_budget = 0;
    int w, h, want = gray ? 1 : 0, got;
    unsigned char *px = stbi_load_from_memory(buf, (int)len, &w, &h, &got, want);
    const int over = stb_over_budget;
    stb_budget = 0;
    if (!px && over)
        return cn__err(CN_ERR_FORMAT,
                       "%scannot decode: the compressed pixel data inflates far past the size "
                       "of the %lldx%lld (WxH) image its header declares (a decompression bomb?)",
                       name, (long long)hw, (long long)hh);
    if (!px) {
        const char *why = stbi_failure_reason();
        /* stb reports allocation failures as "outofmem". */
        cn_status st = why && strcmp(why, "outofmem") == 0 ? CN_ERR_NO_MEMORY : CN_ERR_FORMAT;
        return cn__err(st, "%scannot decode (%s)", name, why ? why : "unknown");
    }
    int64_t C = want ? want : got;
    /* The full decode must agree with the header we sized it by. */
    s = check_size(name, w, h, C);
    if (s) {
        stbi_image_free(px);
        return s;
    }
    int64_t shape[3] = {h, w, C};
    cn_tensor *t;
    s = cn_tensor_new(&t, 3, shape);
    if (s) {
        stbi_image_free(px);
        return s;
    }
    for (size_t i = 0; i < t->size; i++) t->data[i] = px[i];
    stbi_image_free(px);
    *out = t;
    return CN_OK;
}

cn_status cn_image_decode(const void *buf, size_t len, int gray, cn_tensor **out)
{
    return decode(buf, len, gray, "image: ", out);
}

/* Keeps a file function's reason but says that the image code called it;
 * the reason may or may not name the path already. */
static cn_status reprefix(cn_status s, const char *path)
{
    char why[400];
    snprintf(why, sizeof why, "%s", cn_last_error());
    if (strstr(why, path)) return cn__err(s, "image: %s", why);
    return cn__err(s, "image: %s: %s", path, why);
}

cn_status cn_image_info(const char *path, int gray, int64_t *h, int64_t *w, int64_t *c)
{
    if (!path || !h || !w || !c)
        return cn__err(CN_ERR_INVALID_ARG, "image: path or an output is NULL");
    void *data;
    size_t len;
    cn_status s = cn_file_read_all(path, IMG_MAX_FILE, &data, &len);
    if (s) return reprefix(s, path);
    char name[300];
    snprintf(name, sizeof name, "image: %s: ", path);
    /* decode()'s checks, then the header; the pixels are left alone. */
    s = prechecks(data, len, name);
    if (!s) s = header_size(data, len, len, name, w, h, c);
    if (!s && gray) *c = 1;
    free(data);
    return s;
}

cn_status cn_image_read(const char *path, int gray, cn_tensor **out)
{
    *out = NULL;
    if (!path) return cn__err(CN_ERR_INVALID_ARG, "image: path is NULL");
    void *data;
    size_t len;
    cn_status s = cn_file_read_all(path, IMG_MAX_FILE, &data, &len);
    if (s) return reprefix(s, path);
    char name[300];
    snprintf(name, sizeof name, "image: %s: ", path);
    s = decode(data, len, gray, name, out);
    free(data);
    return s;
}

/* A growing byte buffer for stbi_write_png_to_func, which cannot report
 * failure itself: `failed` records a lost realloc. */
typedef struct membuf {
    unsigned char *data;
    size_t len, cap;
    int failed;
} membuf;

static void membuf_append(void *ctx, void *data, int size)
{
    membuf *m = ctx;
    if (m->failed || size <= 0) return;
    size_t n = (size_t)size;
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->len + n) cap *= 2;
        unsigned char *p = realloc(m->data, cap);
        if (!p) {
            m->failed = 1;
            return;
        }
        m->data = p, m->cap = cap;
    }
    memcpy(m->data + m->len, data, n);
    m->len += n;
}

static unsigned char to_byte(float v)
{
    if (!(v > 0.0f)) return 0;  /* negatives and NaN */
    if (v >= 255.0f) return 255;
    return (unsigned char)(v + 0.5f);
}

cn_status cn_image_write_png(const char *path, const cn_tensor *img)
{
    if (!path || !img) return cn__err(CN_ERR_INVALID_ARG, "image: path or image is NULL");
    if (img->ndim != 2 && img->ndim != 3) {
        char sh[160];
        return cn__err(CN_ERR_INVALID_ARG, "image: %s: expected [H,W,C] or [H,W], got %s", path,
                       cn_shape_str(img->ndim, img->shape, sh, sizeof sh));
    }
    int64_t H = img->shape[0], W = img->shape[1], C = img->ndim == 3 ? img->shape[2] : 1;
    char name[300];
    snprintf(name, sizeof name, "image: %s: ", path);
    cn_status s = check_size(name, W, H, C);
    if (s) return s == CN_ERR_FORMAT ? cn__err(CN_ERR_INVALID_ARG, "%s", cn_last_error()) : s;
    /* stb reads H*W*C bytes: the size must agree (a hand-filled struct may not). */
    if (img->size != (size_t)(H * W * C) || !img->data) {
        char sh[160];
        return cn__err(CN_ERR_INVALID_ARG, "image: %s: shape %s has %lld elements, but size is %zu%s",
                       path, cn_shape_str(img->ndim, img->shape, sh, sizeof sh),
                       (long long)H * W * C, img->size, img->data ? "" : " and data is NULL");
    }

    size_t n = img->size;
    unsigned char *px = malloc(n);
    if (!px) return cn__err(CN_ERR_NO_MEMORY, "image: %s: cannot allocate %zu bytes", path, n);
    for (size_t i = 0; i < n; i++) px[i] = to_byte(img->data[i]);

    membuf m = {0};
    int ok = stbi_write_png_to_func(membuf_append, &m, (int)W, (int)H, (int)C, px,
                                    (int)(W * C));
    free(px);
    if (!ok || m.failed) {
        free(m.data);
        return cn__err(CN_ERR_NO_MEMORY, "image: %s: out of memory while encoding PNG", path);
    }
    s = cn_file_write_atomic(path, m.data, m.len);
    free(m.data);
    return s ? reprefix(s, path) : CN_OK;
}
