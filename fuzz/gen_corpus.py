#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora, fuzz/corpus/NAME/: a few small valid
files of each format and near-valid ones that stop just short of a check
(named bad_*: they must be refused; odd_*: either way;
tests/test_fuzz_regressions.c checks that the others decode).
Everything is built here byte by byte (no NumPy, PIL or torch needed), so
the seeds are reproducible: python3 fuzz/gen_corpus.py rewrites them."""
import gzip
import json
import os
import shutil
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- .npy -----------------------------------------------------------------

def npy(descr, shape, payload, version=1, fortran=False, header=None):
    if header is None:
        shp = "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        header = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
            descr, "True" if fortran else "False", shp)
    pre = 10 if version == 1 else 12
    h = header.encode("latin1")
    pad = (-(pre + len(h) + 1)) % 64
    h = h + b" " * pad + b"\n"
    lenfield = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([version, 0]) + lenfield + h + payload


def f4(*v):
    return struct.pack("<%df" % len(v), *v)


def gen_npy():
    put("npy", "f4_2x3", npy("<f4", (2, 3), f4(1, 2, 3, -4, 0.5, 1e30)))
    put("npy", "f8_scalar", npy("<f8", (), struct.pack("<d", 3.25)))
    put("npy", "i4_1d", npy("<i4", (4,), struct.pack("<4i", -1, 0, 7, 2**31 - 1)))
    put("npy", "i8_2x1", npy("<i8", (2, 1), struct.pack("<2q", -2**63, 2**62)))
    put("npy", "u1_4d", npy("|u1", (1, 2, 2, 1), bytes([0, 1, 128, 255])))
    put("npy", "f4_empty", npy("<f4", (0, 3), b""))
    put("npy", "f4_5d", npy("<f4", (1, 1, 1, 1, 2), f4(1, 2)))
    put("npy", "v2_f4", npy("<f4", (2,), f4(1, 2), version=2))
    put("npy", "v3_f4", npy("<f4", (1,), f4(1), version=3))
    # near-valid
    put("npy", "bad_truncated", npy("<f4", (2, 3), f4(1, 2, 3)))
    put("npy", "bad_trailing", npy("<f4", (1,), f4(1, 2)))
    put("npy", "bad_fortran", npy("<f4", (2, 2), f4(1, 2, 3, 4), fortran=True))
    put("npy", "bad_bigendian", npy(">f4", (1,), b"\x3f\x80\x00\x00"))
    put("npy", "bad_complex", npy("<c8", (1,), f4(1, 0)))
    put("npy", "bad_6d", npy("<f4", (1, 1, 1, 1, 1, 1), f4(1)))
    put("npy", "bad_overflow", npy("<f4", (2**62, 2**62), b""))
    put("npy", "bad_negative", npy("<f4", (-1,), b""))
    put("npy", "bad_header_past_end", npy("<f4", (1,), f4(1))[:40])
    put("npy", "bad_dict", npy("", (), b"", header="{'descr': '<f4', 'shape': (1,), 'fortran_order': False, 'x': 1}"))
    put("npy", "bad_version", b"\x93NUMPY\x04\x00\x00\x00")


# ---- IDX ------------------------------------------------------------------

def idx(code, dims, payload):
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def gen_idx():
    put("idx", "u8_images", idx(0x08, (2, 3, 3), bytes(range(18))))
    put("idx", "u8_labels", idx(0x08, (5,), bytes([0, 1, 2, 9, 3])))
    put("idx", "i8", idx(0x09, (3,), bytes([0x80, 0, 0x7F])))
    put("idx", "i16", idx(0x0B, (2,), struct.pack(">2h", -300, 300)))
    put("idx", "i32", idx(0x0C, (1, 2), struct.pack(">2i", -2**31, 12345)))
    put("idx", "f32", idx(0x0D, (2,), struct.pack(">2f", 1.5, -1e-3)))
    put("idx", "f64", idx(0x0E, (1, 1, 1, 1), struct.pack(">d", 1e300)))
    put("idx", "u8_empty", idx(0x08, (0, 28, 28), b""))
    put("idx", "gz_images", gzip.compress(idx(0x08, (1, 4, 4), bytes(range(16))), mtime=0))
    put("idx", "gz_labels", gzip.compress(idx(0x08, (3,), bytes([1, 2, 3])), mtime=0))
    # near-valid
    put("idx", "bad_truncated", idx(0x08, (2, 3, 3), bytes(10)))
    put("idx", "bad_trailing", idx(0x08, (2,), bytes(3)))
    put("idx", "bad_type", idx(0x0A, (1,), bytes(1)))
    put("idx", "bad_ndim0", bytes([0, 0, 8, 0]))
    put("idx", "bad_ndim5", idx(0x08, (1, 1, 1, 1, 1), bytes(1)))
    put("idx", "bad_huge", idx(0x0E, (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), b""))
    put("idx", "bad_gz_truncated", gzip.compress(idx(0x08, (64,), bytes(64)), mtime=0)[:20])
    put("idx", "bad_gz_short", gzip.compress(idx(0x08, (10000,), bytes(100)), mtime=0))
    put("idx", "bad_gz_bomb", gzip.compress(idx(0x08, (10,), bytes(100000)), mtime=0))


# ---- safetensors ----------------------------------------------------------

def st(header, data=b"", raw_header=None):
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + data


def gen_safetensors():
    put("safetensors", "one_f32", st({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, f4(1, 2)))
    put("safetensors", "all_dtypes", st({
        "__metadata__": {"model": "lenet", "epoch": "3"},
        "a": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]},
        "b": {"dtype": "F64", "shape": [1, 1], "data_offsets": [8, 16]},
        "c": {"dtype": "F32", "shape": [2, 1, 1], "data_offsets": [16, 24]},
        "d": {"dtype": "I32", "shape": [1], "data_offsets": [24, 28]},
        "e": {"dtype": "U8", "shape": [4], "data_offsets": [28, 32]},
    }, struct.pack("<qd", -5, 0.25) + f4(3, 4) + struct.pack("<i", -7) + bytes([1, 2, 3, 4])))
    put("safetensors", "empty_and_scalar", st({
        "empty": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]},
        "scalar": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},
    }, f4(9)))
    put("safetensors", "no_tensors", st({"__metadata__": {"k": "v\u00e9\\n"}}))
    put("safetensors", "escapes", st(None, f4(1), raw_header=
        b'{"w\\u00e9\\ud83d\\ude00\\"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'))
    put("safetensors", "five_dims", st({"t": {"dtype": "U8", "shape": [1, 1, 1, 1, 2], "data_offsets": [0, 2]}}, b"\x01\x02"))
    # near-valid
    put("safetensors", "bad_overlap", st({
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, f4(1, 2)))
    put("safetensors", "bad_hole", st({
        "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
        "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}, f4(1, 2, 3)))
    put("safetensors", "bad_size", st({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, f4(1, 2)))
    put("safetensors", "bad_dtype", st({"a": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]}}, b"\0\0"))
    put("safetensors", "bad_6d", st({"a": {"dtype": "U8", "shape": [1] * 6, "data_offsets": [0, 1]}}, b"\0"))
    put("safetensors", "bad_duplicate", st(None, f4(1, 2), raw_header=
        b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'))
    put("safetensors", "bad_nul_name", st(None, f4(1), raw_header=
        b'{"a\\u0000b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'))
    put("safetensors", "bad_utf8", st(None, f4(1), raw_header=
        b'{"a\xc3\x28":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'))
    put("safetensors", "bad_deep", st(None, raw_header=b'{"__metadata__":' + b"[" * 20 + b"]" * 20 + b"}"))
    put("safetensors", "bad_big_number", st({"a": {"dtype": "F32", "shape": [2**53 + 1], "data_offsets": [0, 4]}}, f4(1)))
    put("safetensors", "bad_extra_key", st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": 1}}, f4(1)))
    put("safetensors", "bad_header_len", struct.pack("<Q", 2**40) + b"{}")
    put("safetensors", "bad_meta_value", st({"__metadata__": {"k": 1}}))
    put("safetensors", "bad_trailing_json", st(None, raw_header=b'{} x'))
    put("safetensors", "bad_surrogate", st(None, raw_header=b'{"__metadata__":{"k":"\\ud800"}}'))


# ---- images ---------------------------------------------------------------

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(w, h, color, depth, rows, interlace=0, extra=b"", raw_idat=None):
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace)
    idat = raw_idat if raw_idat is not None else zlib.compress(rows, 9)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def png_rows(w, h, bpp, pixel, filters=(0,)):
    out = b""
    for y in range(h):
        out += bytes([filters[y % len(filters)]]) + bytes(pixel(x, y, c) & 255
                                                            for x in range(w) for c in range(bpp))
    return out


def png_adam7(w, h, bpp, pixel):
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    out = b""
    for x0, y0, dx, dy in passes:
        xs, ys = range(x0, w, dx), range(y0, h, dy)
        if not xs or not ys:
            continue
        for y in ys:
            out += b"\0" + bytes(pixel(x, y, c) & 255 for x in xs for c in range(bpp))
    return out


def bmp24(w, h, pixel, height_sign=1):
    stride = (w * 3 + 3) & ~3
    rows = b""
    for y in reversed(range(h)):
        r = bytes(pixel(x, y, c) & 255 for x in range(w) for c in (2, 1, 0))
        rows += r + b"\0" * (stride - len(r))
    info = struct.pack("<IiiHHIIiiII", 40, w, height_sign * h, 1, 24, 0, len(rows), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + len(rows), 0, 0, 54) + info + rows


def bmp8(w, h, idxs, palette):
    stride = (w + 3) & ~3
    rows = b""
    for y in reversed(range(h)):
        r = bytes(idxs[y * w:(y + 1) * w])
        rows += r + b"\0" * (stride - len(r))
    pal = b"".join(bytes([b, g, r, 0]) for r, g, b in palette)
    off = 54 + len(pal)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 0, len(rows), 0, 0, len(palette), 0)
    return b"BM" + struct.pack("<IHHI", off + len(rows), 0, 0, off) + info + pal + rows


def tga(w, h, kind, bpp, data, desc=0):
    return struct.pack("<BBBHHBHHHHBB", 0, 0, kind, 0, 0, 0, 0, 0, w, h, bpp, desc) + data


def gif(w, h, pixels, palette, gce=b""):
    """Uncompressed-style GIF: a clear code after every two literals keeps
    LZW codes 3 bits wide."""
    codes = [4]
    for i, p in enumerate(pixels):
        codes.append(p)
        if i % 2 == 1:
            codes.append(4)
    codes.append(5)
    bits, nbits, out = 0, 0, bytearray()
    for c in codes:
        bits |= c << nbits
        nbits += 3
        while nbits >= 8:
            out.append(bits & 255)
            bits >>= 8
            nbits -= 8
    if nbits:
        out.append(bits & 255)
    sub = b""
    for i in range(0, len(out), 255):
        chunk = bytes(out[i:i + 255])
        sub += bytes([len(chunk)]) + chunk
    pal = b"".join(bytes(c) for c in palette)
    return (b"GIF89a" + struct.pack("<HHBBB", w, h, 0x81, 0, 0) + pal + gce
            + b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x02" + sub + b"\0" + b"\x3b")


def jpeg(w, h, comps, blocks_bits, restart=0):
    """Baseline JPEG with tiny Huffman tables: DC symbols 0 ('00') and 4
    ('01' + 4 bits), AC only EOB ('0'). comps: list of (id, hv)."""
    def seg(marker, body):
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(body) + 2) + body
    out = b"\xff\xd8"
    out += seg(0xDB, b"\x00" + bytes([1] * 64))
    out += seg(0xC0, struct.pack(">BHHB", 8, h, w, len(comps)) + b"".join(bytes([i, hv, 0]) for i, hv in comps))
    dc = bytes([0, 2] + [0] * 14) + bytes([0, 4])
    ac = bytes([1] + [0] * 15) + bytes([0])
    out += seg(0xC4, b"\x00" + dc) + seg(0xC4, b"\x10" + ac)
    if restart:
        out += seg(0xDD, struct.pack(">H", restart))
    out += seg(0xDA, bytes([len(comps)]) + b"".join(bytes([i, 0]) for i, _ in comps) + b"\x00\x3f\x00")
    for n, bits in enumerate(blocks_bits):
        bits += "1" * ((-len(bits)) % 8)
        data = bytearray()
        for i in range(0, len(bits), 8):
            b = int(bits[i:i + 8], 2)
            data.append(b)
            if b == 0xFF:
                data.append(0)
        out += bytes(data)
        if n + 1 < len(blocks_bits):
            out += b"\xff" + bytes([0xD0 + n % 8])
    return out + b"\xff\xd9"


def gen_image():
    px = lambda x, y, c: (x * 40 + y * 70 + c * 90)
    put("image", "png_gray_3x3", png(3, 3, 0, 8, png_rows(3, 3, 1, px)))
    put("image", "png_rgb_filters", png(4, 5, 2, 8, png_rows(4, 5, 3, px, filters=(0, 1, 2, 3, 4))))
    put("image", "png_rgba_2x2", png(2, 2, 6, 8, png_rows(2, 2, 4, px)))
    put("image", "png_gray_alpha", png(2, 3, 4, 8, png_rows(2, 3, 2, px)))
    put("image", "png_gray16", png(2, 2, 0, 16, png_rows(2, 2, 2, px)))
    put("image", "png_gray1", png(9, 2, 0, 1, b"\0\xaa\x80\0\x55\x00"))
    put("image", "png_palette_trns", png(3, 2, 3, 8, png_rows(3, 2, 1, lambda x, y, c: (x + y) % 3),
                                         extra=png_chunk(b"PLTE", bytes([255, 0, 0, 0, 255, 0, 0, 0, 255]))
                                         + png_chunk(b"tRNS", bytes([128]))))
    put("image", "png_adam7_5x5", png(5, 5, 2, 8, png_adam7(5, 5, 3, px), interlace=1))
    put("image", "bmp24_3x2", bmp24(3, 2, px))
    put("image", "bmp24_topdown", bmp24(2, 2, px, height_sign=-1))
    put("image", "bmp8_palette", bmp8(3, 3, [0, 1, 0, 1, 0, 1, 0, 1, 1], [(0, 0, 0), (255, 128, 0)]))
    put("image", "tga_rgb", tga(2, 2, 2, 24, bytes(px(i, 0, c) & 255 for i in range(4) for c in range(3))))
    put("image", "tga_gray_rle", tga(4, 2, 11, 8, bytes([0x83, 200, 0x01, 5, 6, 0x81, 9])))
    put("image", "tga_rgba_topleft", tga(1, 2, 2, 32, bytes([1, 2, 3, 4, 5, 6, 7, 8]), desc=0x28))
    put("image", "gif_2x2", gif(2, 2, [0, 1, 2, 3], [(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)]))
    put("image", "gif_gce_3x1", gif(3, 1, [1, 0, 1], [(9, 9, 9), (200, 100, 0), (0, 0, 0), (1, 1, 1)],
                                    gce=b"\x21\xf9\x04\x01\x00\x00\x00\x00"))
    put("image", "jpeg_gray_8x8", jpeg(8, 8, [(1, 0x11)], ["01" + "1111" + "0"]))
    put("image", "jpeg_gray_restart", jpeg(16, 8, [(1, 0x11)], ["01" + "0000" + "0", "00" + "0"], restart=1))
    put("image", "jpeg_420_16x16", jpeg(16, 16, [(1, 0x22), (2, 0x11), (3, 0x11)],
                                        ["".join(["011111" + "0", "00" + "0", "010000" + "0", "00" + "0",
                                                  "00" + "0", "011000" + "0"])]))
    # near-valid: truncated, lying headers, sizes at and over the limits. stb
    # decodes truncated BMP, GIF and JPEG files (missing pixels are zeros):
    # odd_* seeds may decode or not, bad_* ones must be refused.
    good = png(4, 5, 2, 8, png_rows(4, 5, 3, px))
    put("image", "bad_png_truncated", good[:60])
    put("image", "bad_png_huge_header", png(16384, 16384, 0, 8, b"", raw_idat=zlib.compress(b"\0" * 64)))
    put("image", "bad_png_too_big", png(1000001, 1, 0, 8, b"\0" * 4))
    put("image", "bad_png_zero", png(0, 5, 0, 8, b""))
    put("image", "odd_bmp_truncated", bmp24(3, 2, px)[:60])
    put("image", "odd_gif_truncated", gif(2, 2, [0, 1, 2, 3], [(0, 0, 0)] * 4)[:30])
    put("image", "odd_jpeg_truncated", jpeg(8, 8, [(1, 0x11)], ["01" + "1111" + "0"])[:150])
    put("image", "bad_not_an_image", b"GIF87a\x00")


# ---- CLI arguments --------------------------------------------------------

def gen_cli():
    cases = {
        "conv2d_full": ["conv2d", "--input", "x.npy", "--weight", "w.npy", "--bias", "b.npy", "--stride", "2,1",
                        "--padding", "1,0,2,1", "--dilation", "2", "--groups", "2", "--padding-mode", "reflect",
                        "--output", "y.npy", "--grad-output", "gy.npy", "--grad-input", "gx.npy",
                        "--grad-weight", "gw.npy", "--grad-bias=gb.npy"],
        "conv2d_same": ["conv2d", "--input=x.npy", "--weight=w.npy", "--padding", "same", "--output", "y.npy"],
        "conv2d_missing_value": ["conv2d", "--input", "--weight", "w.npy"],
        "pool2d_max": ["pool2d", "--type", "max", "--input", "x.npy", "--kernel", "3", "--stride", "2",
                       "--padding", "1", "--ceil-mode", "--output", "y.npy", "--grad-output", "gy.npy",
                       "--grad-input", "gx.npy"],
        "pool2d_avg": ["pool2d", "--type=avg", "--input", "x.npy", "--kernel", "2,3", "--no-count-include-pad",
                       "--dilation", "1,2", "--output", "y.npy"],
        "filter_gaussian": ["filter", "--gaussian", "2.5", "--gray", "in.png", "out.png"],
        "filter_kernel": ["filter", "--kernel", "k.npy", "--", "-in.png", "out.png"],
        "filter_box": ["filter", "--box", "3", "in.jpg", "out.png"],
        "train": ["train", "--model", "resnet", "--epochs", "2", "--batch-size", "8", "--optimizer", "sgd",
                  "--lr", "0.1", "--momentum", "0.9", "--nesterov", "--weight-decay", "0", "--schedule", "cosine",
                  "--schedule-epochs", "3", "--augment", "--seed", "7", "--threads", "1", "--save", "m.st",
                  "--json", "--limit", "10"],
        "train_resume": ["train", "--data", "d", "--resume", "m.st", "--epochs", "3"],
        "eval": ["eval", "--load", "m.safetensors", "--json"],
        "predict": ["predict", "--load", "m.safetensors", "a.png", "b.jpg"],
        "help": ["help", "conv2d"],
        "sub_help": ["pool2d", "--kernel", "-1", "--help"],
        "version": ["--version"],
        "unknown": ["frobnicate", "--x"],
        "bench": ["bench", "--problem", "1 8 8 4 4 3 3 1 1 1 1 1 1 1", "--pass", "fwd,bwd_data", "--threads",
                  "1,2", "--reps", "3", "--json", "--no-memory"],
        "viz": ["viz", "saliency", "--load", "m.safetensors", "--index", "3", "-o", "s.png"],
    }
    for name, words in cases.items():
        put("cli_args", name, "\0".join(words).encode())


if __name__ == "__main__":
    shutil.rmtree(ROOT, ignore_errors=True)
    gen_npy()
    gen_idx()
    gen_safetensors()
    gen_image()
    gen_cli()
