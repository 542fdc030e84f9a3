/* Malformed images through `convnet filter` (the .npy, safetensors and IDX
 * corpora: test_malformed_cli.c; the shared generators and runner:
 * malformed.h). From valid seeds made here - a PNG, a baseline JPEG, a BMP,
 * a run-length TGA and a GIF of one random 16x12 pattern - generators build
 * a few hundred broken variants with the seeded generator (CN_TEST_SEED):
 * PNG IHDR sizes of 1,000,001 x 1 and 65535 x 65535 and other impossible
 * fields, chunk lengths up to 2^32-1, missing and repeated chunks, IDAT
 * decompression bombs, JPEG SOF sizes up to 65535 x 65535 and impossible
 * components, sampling and tables, Huffman tables of more than 256 codes,
 * BMP, TGA and GIF headers with giant or empty sizes and impossible depths,
 * truncations at every chunk and marker, bit flips and stamped bytes. Each
 * goes to `convnet filter` with one of its filters and must get one clear
 * error line and exit 1 or 2 - or, still a valid image, exit 0 - within
 * seconds, under a 1 GiB address-space limit, never by a signal. */
#include "malformed.h"

/* ---- images -------------------------------------------------------------------- */

enum { IMG_PNG, IMG_JPEG, IMG_BMP, IMG_TGA, IMG_GIF, IMG_ROLES };
static const char *const img_ext[IMG_ROLES] = {"png", "jpg", "bmp", "tga", "gif"};
enum { IW = 16, IH = 12 };
static unsigned char seed_rgb[IH * IW * 3];

/* A PNG with IHDR (w, h, depth, colour type, interlace) and the raw rows
 * deflated into one IDAT (split into pieces of `split` bytes if > 0). */
static bytes png_file(uint32_t w, uint32_t h, int depth, int ctype, int interlace, const bytes *raw,
                      size_t split)
{
    bytes b = {0};
    put(&b, "\x89PNG\r\n\x1a\n", 8);
    unsigned char ihdr[13];
    set_be32(ihdr, w), set_be32(ihdr + 4, h);
    ihdr[8] = (unsigned char)depth, ihdr[9] = (unsigned char)ctype, ihdr[10] = 0, ihdr[11] = 0;
    ihdr[12] = (unsigned char)interlace;
    chunk(&b, "IHDR", ihdr, 13);
    if (ctype == 3) {
        unsigned char plte[48];
        for (int i = 0; i < 48; i++) plte[i] = (unsigned char)(i * 5);
        chunk(&b, "PLTE", plte, 48);
    }
    uLongf zn = compressBound((uLong)raw->n);
    unsigned char *z = malloc(zn);
    if (!z || compress2(z, &zn, raw->p, (uLong)raw->n, 9) != Z_OK) abort();
    for (size_t at = 0; at < zn;) {
        size_t k = split && zn - at > split ? split : zn - at;
        chunk(&b, "IDAT", z + at, k);
        at += k;
    }
    free(z);
    chunk(&b, "IEND", NULL, 0);
    return b;
}

/* Raw PNG rows of the seed pattern: filter byte f, then channels c. */
static bytes png_rows(int w, int h, int c, int filter)
{
    bytes r = {0};
    for (int y = 0; y < h; y++) {
        put8(&r, (unsigned)filter);
        for (int x = 0; x < w * c; x++) put8(&r, seed_rgb[(y % IH) * IW * 3 + (x % (IW * 3))]);
    }
    return r;
}

/* Offsets of a PNG's chunks (up to max). */
static int png_chunks(const bytes *b, size_t *at, int max)
{
    int n = 0;
    for (size_t i = 8; i + 12 <= b->n && n < max;) {
        at[n++] = i;
        i += 12 + be32(b->p + i);
    }
    return n;
}

static void fix_crc(bytes *b, size_t chunk_at)
{
    size_t n = be32(b->p + chunk_at);
    set_be32(b->p + chunk_at + 8 + n, (uint32_t)crc32(0, b->p + chunk_at + 4, (uInt)(n + 4)));
}

/* Offsets of a JPEG's markers (the byte after 0xFF), up to max. */
static int jpeg_markers(const bytes *b, size_t *at, unsigned char *type, int max)
{
    int n = 0;
    for (size_t i = 2; i + 4 <= b->n && n < max;) {
        if (b->p[i] != 0xff) break;
        at[n] = i + 1, type[n] = b->p[i + 1], n++;
        if (b->p[i + 1] == 0xda) break; /* the scan follows */
        i += 2 + ((size_t)b->p[i + 2] << 8 | b->p[i + 3]);
    }
    return n;
}

static int jpeg_find(const bytes *b, unsigned char type)
{
    size_t at[32];
    unsigned char t[32];
    int n = jpeg_markers(b, at, t, 32);
    for (int i = 0; i < n; i++)
        if (t[i] == type) return (int)at[i];
    return -1;
}

/* A GIF89a: a w x h screen with a 4-colour table and one frame of fw x fh at
 * (0,0), its pixels (at most IW x IH of them) as LZW literals with a clear
 * code after every two, so the code size stays 3 bits. */
static bytes gif_file(unsigned w, unsigned h, unsigned fw, unsigned fh, int lzw_min)
{
    bytes b = {0};
    unsigned char q[2];
    put_str(&b, "GIF89a");
    set_le16(q, w), put(&b, q, 2);
    set_le16(q, h), put(&b, q, 2);
    put8(&b, 0x81), put8(&b, 0), put8(&b, 0);
    static const unsigned char pal[12] = {0, 0, 0, 255, 0, 0, 0, 255, 0, 255, 255, 255};
    put(&b, pal, 12);
    put8(&b, 0x2c);
    set_le16(q, 0), put(&b, q, 2), put(&b, q, 2);
    set_le16(q, fw), put(&b, q, 2);
    set_le16(q, fh), put(&b, q, 2);
    put8(&b, 0);
    put8(&b, (unsigned)lzw_min);
    bytes codes = {0};
    uint32_t acc = 0;
    int bits = 0;
#define EMIT(code)                                                                                 \
    do {                                                                                           \
        acc |= (uint32_t)(code) << bits, bits += 3;                                                \
        while (bits >= 8) put8(&codes, acc & 255), acc >>= 8, bits -= 8;                           \
    } while (0)
    EMIT(4);
    /* at most the seed's pixels: a declared 65535 x 65535 frame gets them */
    for (unsigned i = 0; i < fw * fh && i < IW * IH; i++) {
        EMIT(seed_rgb[i % sizeof seed_rgb] & 3);
        if (i % 2 == 1) EMIT(4);
    }
    EMIT(5);
#undef EMIT
    if (bits) put8(&codes, acc & 255);
    for (size_t at = 0; at < codes.n; at += 255) {
        size_t k = codes.n - at < 255 ? codes.n - at : 255;
        put8(&b, (unsigned)k);
        put(&b, codes.p + at, k);
    }
    free(codes.p);
    put8(&b, 0);
    put8(&b, 0x3b);
    return b;
}

/* A baseline JPEG of the seed pattern, DC only: one quantisation table of
 * 16s, a DC Huffman table of 12 four-bit codes (categories 0-11) and an AC
 * table whose one code, '0', is end-of-block; components of 1x1 sampling
 * interleaved block by block. Made here rather than with stb_image_write,
 * whose JPEG encoder shifts negative ints (UBSan). */
static bytes jpeg_file(int comps)
{
    bytes b = {0};
    static const unsigned char soi[] = {0xff, 0xd8};
    put(&b, soi, 2);
    put8(&b, 0xff), put8(&b, 0xdb), put8(&b, 0), put8(&b, 67), put8(&b, 0);
    for (int i = 0; i < 64; i++) put8(&b, 16);
    put8(&b, 0xff), put8(&b, 0xc0), put8(&b, 0), put8(&b, (unsigned)(8 + 3 * comps)), put8(&b, 8);
    put8(&b, IH >> 8), put8(&b, IH & 255), put8(&b, IW >> 8), put8(&b, IW & 255),
        put8(&b, (unsigned)comps);
    for (int k = 0; k < comps; k++) put8(&b, (unsigned)(k + 1)), put8(&b, 0x11), put8(&b, 0);
    /* DHT: DC table 0 (12 codes of length 4), AC table 0 (EOB, length 1) */
    put8(&b, 0xff), put8(&b, 0xc4), put8(&b, 0), put8(&b, 2 + 17 + 12 + 17 + 1);
    put8(&b, 0x00);
    for (int i = 0; i < 16; i++) put8(&b, i == 3 ? 12 : 0);
    for (int i = 0; i < 12; i++) put8(&b, (unsigned)i);
    put8(&b, 0x10);
    for (int i = 0; i < 16; i++) put8(&b, i == 0 ? 1 : 0);
    put8(&b, 0x00);
    put8(&b, 0xff), put8(&b, 0xda), put8(&b, 0), put8(&b, (unsigned)(6 + 2 * comps)),
        put8(&b, (unsigned)comps);
    for (int k = 0; k < comps; k++) put8(&b, (unsigned)(k + 1)), put8(&b, 0x00);
    put8(&b, 0), put8(&b, 63), put8(&b, 0);
    uint32_t acc = 0;
    int bits = 0, pred[3] = {0, 0, 0};
#define BITS(v, n)                                                                                 \
    do {                                                                                           \
        acc = acc << (n) | ((uint32_t)(v) & ((1u << (n)) - 1)), bits += (n);                       \
        while (bits >= 8) {                                                                        \
            unsigned char o_ = (unsigned char)(acc >> (bits - 8));                                 \
            put8(&b, o_), bits -= 8;                                                               \
            if (o_ == 0xff) put8(&b, 0);                                                           \
        }                                                                                          \
    } while (0)
    for (int by = 0; by < (IH + 7) / 8; by++)
        for (int bx = 0; bx < (IW + 7) / 8; bx++)
            for (int k = 0; k < comps; k++) {
                int sum = 0;
                for (int y = 0; y < 8; y++)
                    for (int x = 0; x < 8; x++) {
                        int yy = by * 8 + y < IH ? by * 8 + y : IH - 1,
                            xx = bx * 8 + x < IW ? bx * 8 + x : IW - 1;
                        sum += seed_rgb[(yy * IW + xx) * 3 + k] - 128;
                    }
                int dc = sum / 128, diff = dc - pred[k], mag = diff < 0 ? -diff : diff, cat = 0;
                pred[k] = dc;
                while (mag >> cat) cat++;
                BITS(cat, 4); /* the code of category cat is cat, 4 bits */
                if (cat) BITS(diff < 0 ? diff + (1 << cat) - 1 : diff, cat);
                BITS(0, 1); /* end of block */
            }
    if (bits) BITS(0x7f, 8 - bits);
#undef BITS
    put8(&b, 0xff), put8(&b, 0xd9);
    return b;
}

/* A 24-bit BMP (BITMAPINFOHEADER, rows bottom-up, padded to 4 bytes). */
static bytes bmp_file(void)
{
    size_t row = (IW * 3 + 3) / 4 * 4;
    bytes b = {0};
    unsigned char h[54] = {'B', 'M'};
    set_le32(h + 2, (uint32_t)(54 + row * IH)), set_le32(h + 10, 54), set_le32(h + 14, 40);
    set_le32(h + 18, IW), set_le32(h + 22, IH), set_le16(h + 26, 1), set_le16(h + 28, 24);
    set_le32(h + 34, (uint32_t)(row * IH));
    put(&b, h, 54);
    for (int y = IH - 1; y >= 0; y--) {
        for (int x = 0; x < IW; x++)
            for (int k = 2; k >= 0; k--) put8(&b, seed_rgb[(y * IW + x) * 3 + k]);
        for (size_t k = IW * 3; k < row; k++) put8(&b, 0);
    }
    return b;
}

/* A run-length TGA (type 10, 24 bits), one raw packet per row, top-down. */
static bytes tga_file(void)
{
    bytes b = {0};
    unsigned char h[18] = {0, 0, 10};
    set_le16(h + 12, IW), set_le16(h + 14, IH), h[16] = 24, h[17] = 0x20;
    put(&b, h, 18);
    for (int y = 0; y < IH; y++) {
        put8(&b, IW - 1);
        for (int x = 0; x < IW; x++)
            for (int k = 2; k >= 0; k--) put8(&b, seed_rgb[(y * IW + x) * 3 + k]);
    }
    return b;
}

static bytes img_seed[IMG_ROLES];

static void img_make_seeds(void)
{
    for (int i = 0; i < IH * IW * 3; i++) seed_rgb[i] = (unsigned char)rnd(256);
    bytes raw = png_rows(IW, IH, 3, 0);
    img_seed[IMG_PNG] = png_file(IW, IH, 8, 2, 0, &raw, 0);
    free(raw.p);
    img_seed[IMG_JPEG] = jpeg_file(3);
    img_seed[IMG_BMP] = bmp_file();
    img_seed[IMG_TGA] = tga_file();
    img_seed[IMG_GIF] = gif_file(IW, IH, IW, IH, 2);
}

static const char *const *img_stage(const variant *v)
{
    static const char *args[12];
    static char in[512], out[512];
    char name[32];
    snprintf(name, sizeof name, "mal.%s", img_ext[v->role]);
    tl_path(in, sizeof in, name);
    tl_path(out, sizeof out, "mal-out.png");
    write_file(in, &v->data);
    static const char *const filters[][2] = {{"--gaussian", "1"}, {"--box", "3"},
                                             {"--sobel", NULL},   {"--laplacian", NULL},
                                             {"--sharpen", NULL}, {"--sobel-x", NULL}};
    /* The variant picks the filter, so a rerun repeats it. */
    size_t f = v->data.n % 6;
    int n = 0;
    args[n++] = "filter", args[n++] = filters[f][0];
    if (filters[f][1]) args[n++] = filters[f][1];
    if (v->data.n % 5 == 0) args[n++] = "--gray";
    args[n++] = in, args[n++] = out;
    args[n] = NULL;
    return args;
}

static void png_corpus(corpus *c)
{
    const bytes *seed = &img_seed[IMG_PNG];
    /* IHDR sizes: past the side limit (1,000,001 x 1), past the pixel limit
     * (65535 x 65535), empty, negative as int32, and sizes the file is far
     * too small for. */
    static const uint32_t sizes[][3] = {
        {1000001, 1, 1},     {65535, 65535, 1},   {0, 12, 0},
        {16, 0, 0},          {0x7fffffffu, 1, 0}, {0xffffffffu, 0xffffffffu, 0},
        {0x80000000u, 1, 0}, {1000000, 1, 0},     {1, 1000000, 0},
        {16384, 16384, 1},   {46341, 46341, 0},   {65536, 65536, 0},
        {17, 12, 0},         {16, 13, 0}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        bytes b = copy_of(seed->p, seed->n);
        set_be32(b.p + 16, sizes[i][0]), set_be32(b.p + 20, sizes[i][1]);
        fix_crc(&b, 8);
        add(c, IMG_PNG, 1, b, "PNG IHDR %ux%u", sizes[i][0], sizes[i][1])->essential =
            (int)sizes[i][2];
    }
    /* IHDR fields no PNG has. */
    static const struct {
        int at, value;
        const char *what;
    } fields[] = {{24, 0, "depth 0"},
                  {24, 3, "depth 3"},
                  {24, 7, "depth 7"},
                  {24, 9, "depth 9"},
                  {24, 32, "depth 32"},
                  {24, 255, "depth 255"},
                  {25, 1, "colour type 1"},
                  {25, 5, "colour type 5"},
                  {25, 7, "colour type 7"},
                  {25, 255, "colour type 255"},
                  {25, 3, "colour type 3 without PLTE"},
                  {26, 1, "compression 1"},
                  {27, 1, "filter method 1"},
                  {28, 2, "interlace 2"},
                  {28, 255, "interlace 255"}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        bytes b = copy_of(seed->p, seed->n);
        b.p[fields[i].at] = (unsigned char)fields[i].value;
        fix_crc(&b, 8);
        add(c, IMG_PNG, 1, b, "PNG IHDR %s", fields[i].what);
    }
    {
        bytes b = copy_of(seed->p, seed->n);
        b.p[28] = 1;
        fix_crc(&b, 8);
        add(c, IMG_PNG, 0, b, "PNG IHDR interlace 1 over non-interlaced rows");
        b = copy_of(seed->p, seed->n);
        b.p[29] ^= 0xff;
        add(c, IMG_PNG, 0, b, "PNG IHDR CRC wrong");
    }
    /* Chunk lengths: IHDR's, IDAT's up to 2^32-1. */
    size_t at[16];
    int nc = png_chunks(seed, at, 16);
    static const uint32_t lens[] = {0, 12, 14, 0x7fffffffu, 0x80000000u, 0xffffffffu};
    for (size_t i = 0; i < 6; i++) {
        bytes b = copy_of(seed->p, seed->n);
        set_be32(b.p + 8, lens[i]);
        add(c, IMG_PNG, 1, b, "PNG IHDR length %u", lens[i]);
        b = copy_of(seed->p, seed->n);
        set_be32(b.p + at[1], lens[i]);
        add(c, IMG_PNG, i > 0, b, "PNG IDAT length %u", lens[i])->essential = i == 5;
    }
    /* Chunk order and presence. */
    {
        bytes b = {0};
        put(&b, seed->p, 8);
        put(&b, seed->p + at[1], seed->n - at[1]);
        add(c, IMG_PNG, 1, b, "PNG without IHDR");
        b = splice(seed, at[1], at[2] - at[1], NULL, 0);
        add(c, IMG_PNG, 1, b, "PNG without IDAT");
        b = copy_of(seed->p, at[nc - 1]);
        add(c, IMG_PNG, 1, b, "PNG without IEND");
        b = splice(seed, at[1], 0, seed->p + 8, 25);
        add(c, IMG_PNG, 0, b, "PNG with IHDR twice");
        bytes e = {0};
        chunk(&e, "IDAT", NULL, 0);
        b = splice(seed, at[1], 0, e.p, e.n);
        add(c, IMG_PNG, 1, b, "PNG with an empty IDAT first");
        free(e.p);
        e = (bytes){0};
        chunk(&e, "PLTE", "\1\2\3\4\5", 5);
        b = splice(seed, at[1], 0, e.p, e.n);
        add(c, IMG_PNG, 0, b, "PNG with a 5-byte PLTE");
        free(e.p);
        e = (bytes){0};
        chunk(&e, "abCD", "xyz", 3);
        b = splice(seed, at[1], 0, e.p, e.n);
        add(c, IMG_PNG, 0, b, "PNG with an unknown ancillary chunk");
        free(e.p);
        e = (bytes){0};
        chunk(&e, "ABCD", "xyz", 3);
        b = splice(seed, at[1], 0, e.p, e.n);
        add(c, IMG_PNG, 1, b, "PNG with an unknown critical chunk");
        free(e.p);
    }
    /* Rows: a filter byte that does not exist, too few rows, the zlib
     * header wrong; the image data in 1-byte IDAT chunks (valid); palette
     * indices past a 16-entry palette (valid: padded with black). */
    for (int f = 5; f <= 255; f += 125) {
        bytes raw = png_rows(IW, IH, 3, f);
        add(c, IMG_PNG, 1, png_file(IW, IH, 8, 2, 0, &raw, 0), "PNG rows with filter byte %d", f);
        free(raw.p);
    }
    {
        bytes raw = png_rows(IW, IH - 1, 3, 0);
        add(c, IMG_PNG, 1, png_file(IW, IH, 8, 2, 0, &raw, 0), "PNG one row short");
        free(raw.p);
        raw = png_rows(IW, IH, 3, 0);
        add(c, IMG_PNG, 0, png_file(IW, IH, 8, 2, 0, &raw, 1), "PNG in 1-byte IDAT chunks");
        add(c, IMG_PNG, 0, png_file(IW, IH, 8, 6, 0, &raw, 0), "PNG RGB rows under an RGBA header");
        free(raw.p);
        raw = png_rows(IW, IH, 1, 0);
        add(c, IMG_PNG, 0, png_file(IW, IH, 8, 3, 0, &raw, 0),
            "PNG palette indices past 16 entries");
        add(c, IMG_PNG, 0, png_file(IW, IH, 8, 0, 0, &raw, 0), "gray PNG");
        add(c, IMG_PNG, 1, png_file(IW, IH, 16, 3, 0, &raw, 0), "PNG palette of depth 16");
        free(raw.p);
        bytes b = copy_of(seed->p, seed->n);
        b.p[at[1] + 8] = 0x79;
        fix_crc(&b, at[1]);
        add(c, IMG_PNG, 1, b, "PNG zlib header wrong");
    }
    /* Decompression bombs: 32 MiB inflating out of a 16x12 image's IDAT;
     * 1 MiB extra (allowed: stb ignores what follows the rows). */
    for (int k = 0; k < 2; k++) {
        bytes rows = png_rows(IW, IH, 3, 0);
        bytes z = deflate_zeros(rows.p, rows.n, k ? (size_t)1 << 16 : (size_t)32 << 20, 15);
        bytes b = {0};
        put(&b, seed->p, at[1]);
        chunk(&b, "IDAT", z.p, z.n);
        chunk(&b, "IEND", NULL, 0);
        add(c, IMG_PNG, !k, b,
            k ? "PNG with 64 KiB past its rows" : "PNG decompression bomb: 32 MiB past its rows")
            ->essential = !k;
        free(rows.p), free(z.p);
    }
    /* Generic damage: cuts at every chunk's start, type, data and CRC. */
    size_t cuts[64];
    int ncut = 0;
    for (int i = 0; i < nc && ncut < 60; i++) {
        size_t n = be32(seed->p + at[i]);
        if (i == nc - 1) break; /* stb reads no further than IEND's type */
        cuts[ncut++] = at[i], cuts[ncut++] = at[i] + 4, cuts[ncut++] = at[i] + 8;
        cuts[ncut++] = at[i] + 8 + n / 2, cuts[ncut++] = at[i] + 8 + n;
    }
    cuts[ncut++] = 0, cuts[ncut++] = 4, cuts[ncut++] = 7;
    damage(c, IMG_PNG, seed, "PNG", cuts, ncut, 1, 41, 40, 20, 0);
}

static void jpeg_corpus(corpus *c)
{
    const bytes *seed = &img_seed[IMG_JPEG];
    int sof = jpeg_find(seed, 0xc0), dqt = jpeg_find(seed, 0xdb), dht = jpeg_find(seed, 0xc4),
        sos = jpeg_find(seed, 0xda);
    if (sof < 0 || dqt < 0 || dht < 0 || sos < 0) abort(); /* stb's baseline JPEG changed */
    /* SOF0: marker at sof, then length(2) precision(1) height(2) width(2)
     * components(1), per component id, sampling, table. */
    static const unsigned sizes[][3] = {{0, 16, 1},          {12, 0, 0},        {65535, 65535, 1},
                                        {0x8000, 0x8000, 0}, {16384, 16384, 1}, {65500, 16, 0},
                                        {13, 17, 0}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        bytes b = copy_of(seed->p, seed->n);
        b.p[sof + 4] = (unsigned char)(sizes[i][0] >> 8), b.p[sof + 5] = (unsigned char)sizes[i][0];
        b.p[sof + 6] = (unsigned char)(sizes[i][1] >> 8), b.p[sof + 7] = (unsigned char)sizes[i][1];
        add(c, IMG_JPEG, i < 5, b, "JPEG SOF %ux%u (HxW)", sizes[i][0], sizes[i][1])->essential =
            (int)sizes[i][2];
    }
    static const struct {
        int off, value, must_fail; /* off 1: the 16-bit length */
        const char *what;
    } fields[] = {
        {8, 0, 1, "0 components"},          {8, 2, 1, "2 components"},
        {8, 5, 1, "5 components"},          {8, 255, 1, "255 components"},
        {3, 12, 1, "precision 12"},         {3, 0, 1, "precision 0"},
        {10, 0x00, 1, "sampling 0x0"},      {10, 0x50, 1, "sampling 5x0"},
        {10, 0xff, 1, "sampling 15x15"},    {11, 4, 1, "quant table 4"},
        {11, 255, 1, "quant table 255"},    {1, 0, 1, "SOF length 0"},
        {1, 1, 1, "SOF length 1"},          {1, 2, 1, "SOF length 2"},
        {1, 0xffff, 0, "SOF length 65535"}, {0, 0xc2, 0, "progressive SOF2 over a baseline scan"},
        {0, 0xc3, 1, "lossless SOF3"},      {0, 0xc9, 1, "arithmetic SOF9"},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        bytes b = copy_of(seed->p, seed->n);
        if (fields[i].off == 1) b.p[sof + 1] = (unsigned char)(fields[i].value >> 8);
        b.p[sof + fields[i].off + (fields[i].off == 1)] = (unsigned char)fields[i].value;
        add(c, IMG_JPEG, fields[i].must_fail, b, "JPEG %s", fields[i].what);
    }
    /* DQT and DHT: table ids, precision, lengths; a Huffman table of more
     * than 256 codes (stb's heap overflow, refused by convnet). */
    const struct {
        int *at;
        int off, value, must_fail;
        const char *what;
    } tables[] = {
        {&dqt, 3, 0x04, 1, "DQT table id 4"},     {&dqt, 3, 0x10, 0, "DQT 16-bit precision"},
        {&dqt, 3, 0xf0, 1, "DQT precision 15"},   {&dqt, 2, 0, 1, "DQT length 0"},
        {&dht, 3, 0x04, 1, "DHT table id 4"},     {&dht, 3, 0x20, 1, "DHT class 2"},
        {&dht, 2, 0, 1, "DHT length 0"},          {&sos, 3, 0, 1, "SOS with 0 components"},
        {&sos, 3, 5, 1, "SOS with 5 components"}, {&sos, 4, 0x77, 1, "SOS naming component 0x77"},
    };
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        bytes b = copy_of(seed->p, seed->n);
        b.p[*tables[i].at + tables[i].off] = (unsigned char)tables[i].value;
        if (tables[i].off == 2) b.p[*tables[i].at + 1] = 0; /* both length bytes */
        add(c, IMG_JPEG, tables[i].must_fail, b, "JPEG %s", tables[i].what);
    }
    for (int k = 0; k < 3; k++) {
        bytes b = copy_of(seed->p, seed->n);
        memset(b.p + dht + 4, k == 0 ? 0xff : k == 1 ? 0x11 : 0x00, 16);
        add(c, IMG_JPEG, k < 2, b, "JPEG DHT counts %s",
            k == 0   ? "255 each"
            : k == 1 ? "17 each (272 codes)"
                     : "all 0")
            ->essential = k < 2;
    }
    /* Markers removed, repeated, cut. */
    size_t mat[32];
    unsigned char mt[32];
    int nm = jpeg_markers(seed, mat, mt, 32);
    for (int i = 0; i < nm; i++) {
        size_t start = mat[i] - 1,
               len = mt[i] == 0xda ? seed->n - 2 - start
                                   : 2 + ((size_t)seed->p[mat[i] + 1] << 8 | seed->p[mat[i] + 2]);
        bytes b = splice(seed, start, len, NULL, 0);
        /* stb decodes a JPEG without a scan (to black), not one without a frame */
        add(c, IMG_JPEG, mt[i] == 0xc0, b, "JPEG without marker 0x%02x #%d", mt[i], i);
        if (mt[i] == 0xc0 || mt[i] == 0xda) continue;
        b = splice(seed, start, 0, seed->p + start, len);
        add(c, IMG_JPEG, 0, b, "JPEG with marker 0x%02x #%d twice", mt[i], i);
    }
    {
        bytes b = splice(seed, (size_t)sof - 1, 0, seed->p + sof - 1,
                         2 + ((size_t)seed->p[sof + 1] << 8 | seed->p[sof + 2]));
        add(c, IMG_JPEG, 0, b, "JPEG with two SOF0");
        static const unsigned char dri[] = {0xff, 0xdd, 0, 4, 0, 1};
        b = splice(seed, (size_t)sos - 1, 0, dri, 6);
        add(c, IMG_JPEG, 0, b, "JPEG with a restart interval of 1 and no RST markers");
        b = copy_of(seed->p, 2);
        add(c, IMG_JPEG, 1, b, "JPEG of SOI alone");
    }
    size_t cuts[40];
    int ncut = 0;
    for (int i = 0; i < nm && ncut < 36; i++) cuts[ncut++] = mat[i] - 1, cuts[ncut++] = mat[i] + 2;
    cuts[ncut++] = 0, cuts[ncut++] = 1;
    damage(c, IMG_JPEG, seed, "JPEG", cuts, ncut, 1, (size_t)sos + 12, 40, 20, 0);
    /* cuts after the scan's start may decode (stb fills missing data) */
    for (int i = 0; i < c->n; i++)
        if (c->v[i].role == IMG_JPEG && strstr(c->v[i].what, "cut to") &&
            c->v[i].data.n >= (size_t)sos + 12)
            c->v[i].must_fail = 0;
}

static void bmp_tga_gif_corpus(corpus *c)
{
    const bytes *bmp = &img_seed[IMG_BMP], *tga = &img_seed[IMG_TGA];
    /* BMP: BITMAPFILEHEADER (14) then BITMAPINFOHEADER: size 14, width 18,
     * height 22, planes 26, bpp 28, compression 30. */
    static const struct {
        int off, bytes;
        uint32_t value;
        int must_fail, essential;
        const char *what;
    } bf[] = {
        {18, 4, 0, 1, 0, "width 0"},
        {22, 4, 0, 1, 0, "height 0"},
        {18, 4, 0xffffffffu, 1, 0, "width -1"},
        {18, 4, 0x7fffffffu, 1, 0, "width 2^31-1"},
        {18, 4, 1000001, 1, 1, "width 1000001"},
        {22, 4, 0x80000000u, 1, 1, "height -2^31"},
        {22, 4, (uint32_t)-IH, 0, 0, "height -12 (top-down)"},
        {18, 4, 65535, 1, 0, "width 65535 and height"},
        {28, 2, 0, 1, 0, "0 bits per pixel"},
        {28, 2, 7, 1, 0, "7 bits per pixel"},
        {28, 2, 33, 1, 0, "33 bits per pixel"},
        {28, 2, 64, 1, 0, "64 bits per pixel"},
        {28, 2, 1, 0, 0, "1 bit per pixel"},
        {28, 2, 8, 0, 0, "8 bits per pixel"},
        {28, 2, 16, 0, 0, "16 bits per pixel"},
        {28, 2, 32, 0, 0, "32 bits per pixel"},
        {30, 4, 1, 1, 0, "RLE8 compression"},
        {30, 4, 2, 1, 0, "RLE4 compression"},
        {30, 4, 4, 1, 0, "JPEG compression"},
        {30, 4, 3, 0, 0, "bitfields compression"},
        {14, 4, 0, 1, 0, "header size 0"},
        {14, 4, 12, 0, 0, "OS/2 header size 12"},
        {14, 4, 999, 1, 0, "header size 999"},
        {10, 4, 0xffffffffu, 0, 0, "pixel offset 2^32-1"},
        {10, 4, 0, 0, 0, "pixel offset 0"},
        {26, 2, 0, 0, 0, "0 planes"},
        {46, 4, 0xffffffffu, 0, 0, "2^32-1 palette colours"},
    };
    for (size_t i = 0; i < sizeof bf / sizeof bf[0]; i++) {
        bytes b = copy_of(bmp->p, bmp->n);
        if (bf[i].bytes == 4)
            set_le32(b.p + bf[i].off, bf[i].value);
        else
            set_le16(b.p + bf[i].off, bf[i].value);
        if (i == 7) set_le32(b.p + 22, 65535);
        add(c, IMG_BMP, bf[i].must_fail, b, "BMP %s", bf[i].what)->essential = bf[i].essential;
    }
    size_t bcuts[] = {0, 1, 2, 10, 14, 18, 22}, bcuts_late[] = {28, 30, 53, 54, 100};
    damage(c, IMG_BMP, bmp, "BMP", bcuts, 7, 1, 54, 25, 10, 0);
    damage(c, IMG_BMP, bmp, "BMP", bcuts_late, 5, 0, 54, 0, 0, 0);
    /* TGA: id length 0, colour map type 1, image type 2, colour map spec
     * 3..7, x/y origin 8..11, width 12, height 14, bpp 16, descriptor 17. */
    static const struct {
        int off, bytes;
        unsigned value, must_fail, essential;
        const char *what;
    } tf[] = {
        {12, 2, 0, 1, 0, "width 0"},
        {14, 2, 0, 1, 0, "height 0"},
        {12, 2, 65535, 1, 1, "width 65535 and height"},
        {12, 2, 16384, 1, 0, "width 16384 and height"},
        {16, 1, 0, 1, 0, "0 bits per pixel"},
        {16, 1, 7, 1, 0, "7 bits per pixel"},
        {16, 1, 64, 1, 0, "64 bits per pixel"},
        {2, 1, 0, 1, 0, "image type 0 (no image)"},
        {2, 1, 4, 1, 0, "image type 4"},
        {2, 1, 12, 1, 0, "image type 12"},
        {2, 1, 255, 1, 0, "image type 255"},
        {1, 1, 1, 0, 0, "a colour map with no entries"},
        {0, 1, 255, 0, 0, "id length 255"},
        {17, 1, 0xff, 0, 0, "descriptor 0xff"},
    };
    for (size_t i = 0; i < sizeof tf / sizeof tf[0]; i++) {
        bytes b = copy_of(tga->p, tga->n);
        if (tf[i].bytes == 2)
            set_le16(b.p + tf[i].off, tf[i].value);
        else
            b.p[tf[i].off] = (unsigned char)tf[i].value;
        if (i == 2 || i == 3) set_le16(b.p + 14, tf[i].value);
        add(c, IMG_TGA, (int)tf[i].must_fail, b, "TGA %s", tf[i].what)->essential =
            (int)tf[i].essential;
    }
    size_t tcuts[] = {0, 1, 2, 12}, tcuts_late[] = {16, 17, 18, 100};
    damage(c, IMG_TGA, tga, "TGA", tcuts, 4, 1, 18, 20, 10, 0);
    damage(c, IMG_TGA, tga, "TGA", tcuts_late, 4, 0, 18, 0, 0, 0);
    /* GIF: the screen and the frame against each other and the limits; the
     * LZW code size; the colour table. */
    static const struct {
        unsigned w, h, fw, fh;
        int lzw, must_fail, essential;
        const char *what;
    } gf[] = {
        {0, 0, IW, IH, 2, 0, 0, "screen 0x0"},
        {65535, 65535, IW, IH, 2, 1, 1, "screen 65535x65535"},
        {16384, 16384, IW, IH, 2, 1, 0, "screen 16384x16384"},
        {IW, IH, IW + 1, IH, 2, 1, 0, "frame wider than the screen"},
        {IW, IH, 0, 0, 2, 0, 0, "frame 0x0"},
        {IW, IH, 65535, 65535, 2, 1, 0, "frame 65535x65535"},
        {IW, IH, IW, IH, 0, 0, 0, "LZW code size 0"},
        {IW, IH, IW, IH, 12, 0, 0, "LZW code size 12"},
        {IW, IH, IW, IH, 13, 1, 0, "LZW code size 13"},
        {IW, IH, IW, IH, 255, 1, 0, "LZW code size 255"},
        {IW, IH, 4, 4, 2, 0, 0, "4x4 frame on the screen"},
    };
    for (size_t i = 0; i < sizeof gf / sizeof gf[0]; i++)
        add(c, IMG_GIF, gf[i].must_fail, gif_file(gf[i].w, gf[i].h, gf[i].fw, gf[i].fh, gf[i].lzw),
            "GIF %s", gf[i].what)
            ->essential = gf[i].essential;
    {
        bytes b = copy_of(img_seed[IMG_GIF].p, img_seed[IMG_GIF].n);
        b.p[10] = 0x01; /* no global colour table */
        add(c, IMG_GIF, 1, b, "GIF without its colour table flag");
        b = copy_of(img_seed[IMG_GIF].p, img_seed[IMG_GIF].n);
        memcpy(b.p, "GIF88a", 6);
        add(c, IMG_GIF, 1, b, "GIF88a");
        b = copy_of(img_seed[IMG_GIF].p, img_seed[IMG_GIF].n);
        b.p[36] = 0xff; /* the first sub-block claims 255 bytes */
        add(c, IMG_GIF, 0, b, "GIF sub-block running past the end");
    }
    /* Cut in the header, refused; cut later, stb shows what it has. */
    size_t gcuts[] = {0, 3, 6, 10}, gcuts_late[] = {13, 25, 31, 37};
    damage(c, IMG_GIF, &img_seed[IMG_GIF], "GIF", gcuts, 4, 1, 37, 20, 10, 0);
    damage(c, IMG_GIF, &img_seed[IMG_GIF], "GIF", gcuts_late, 4, 0, 37, 0, 0, 0);
    add(c, IMG_PNG, 1, copy_of((const unsigned char *)"not an image at all", 19), "text");
    add(c, IMG_PNG, 1, copy_of((const unsigned char *)"", 0), "empty file");
}

/* ---- the corpus run ------------------------------------------------------------ */

static void malformed_images_fed_to_filter_fail_cleanly(void)
{
    print_seed_once();
    img_make_seeds();
    for (int k = 0; k < IMG_ROLES; k++) {
        const tl_cli_result *r =
            tl_cli_limited(img_stage(&(variant){.role = k, .data = img_seed[k]}), limits());
        CHECK(r->status == 0, "the seed %s fails: %s", img_ext[k], r->err);
    }
    corpus c = {.format = "images -> filter"};
    png_corpus(&c);
    jpeg_corpus(&c);
    bmp_tga_gif_corpus(&c);
    run_corpus(&c, img_stage);
    corpus_free(&c);
}

/* ---- regressions for what the corpus found ------------------------------------- */

static void decoders_stop_a_png_whose_data_inflates_past_its_size(void)
{
    /* A 16x12 PNG whose IDAT inflates to 32 MiB: refused once the data
     * passes what its header allows, not after inflating all of it (a
     * 3.5 MB file of this kind made stb allocate 2 GiB and work for 11 s). */
    if (!img_seed[IMG_PNG].n) img_make_seeds();
    bytes rows = png_rows(IW, IH, 3, 0);
    bytes z = deflate_zeros(rows.p, rows.n, (size_t)32 << 20, 15);
    bytes b = {0};
    put(&b, img_seed[IMG_PNG].p, 33);
    chunk(&b, "IDAT", z.p, z.n);
    chunk(&b, "IEND", NULL, 0);
    cn_tensor *t = NULL;
    cn_status s = cn_image_decode(b.p, b.n, 0, &t);
    CHECK(s == CN_ERR_FORMAT && strstr(cn_last_error(), "decompression bomb"), "decode: %s: %s",
          cn_status_str(s), cn_last_error());
    free(rows.p), free(z.p), free(b.p);
}

int main(void)
{
    TL_RUN(malformed_images_fed_to_filter_fail_cleanly);
    TL_RUN(decoders_stop_a_png_whose_data_inflates_past_its_size);
    for (int k = 0; k < IMG_ROLES; k++) free(img_seed[k].p);
    return tl_summary();
}
