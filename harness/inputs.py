"""Image bytes the decoder must survive: bombs that fit every size limit, floods of scans, markers and chunks.

Each function builds its file from first principles (struct, zlib, Pillow's encoder), so a test or a
benchmark states the attack's size, not a sample someone sent.
"""

import io
import struct
import zlib

import numpy as np
from PIL import Image


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int, rgba=False) -> bytes:
    """A valid PNG (1-bit grey, or 8-bit RGBA) that is small on the wire and width x height pixels decoded."""

    row = b"\x00" + bytes(width * 4 if rgba else (width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8 if rgba else 1, 6 if rgba else 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def noise(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    bands = len(mode)
    pixels = np.random.default_rng(1).integers(0, 256, (size[1], size[0], bands), dtype=np.uint8)
    return Image.fromarray(pixels if bands > 1 else pixels[..., 0], mode)


def jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The same JPEG with its frame header (SOF) claiming another size: what a decoder allocates for."""
    at = next(k for k in range(2, len(jpeg)) if jpeg[k] == 0xFF and jpeg[k + 1] in (0xC0, 0xC1, 0xC2))
    return jpeg[: at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9 :]


def progressive_bomb(width: int, height: int, mode: str = "CMYK") -> bytes:
    """A progressive JPEG whose header says width x height: libjpeg holds its whole coefficient buffer."""
    return jpeg_with_size(encode(noise((64, 64), mode), "JPEG", progressive=True), width, height)


def scan_flood(scans: int) -> bytes:
    """A progressive JPEG whose last scan is repeated until it has this many scans: each is a pass."""
    jpeg = encode(noise((16, 16)), "JPEG", progressive=True)
    last_scan = jpeg.rindex(b"\xff\xda")
    extra = scans - jpeg.count(b"\xff\xda")
    return jpeg[:last_scan] + jpeg[last_scan:-2] * (extra + 1) + b"\xff\xd9"


def marker_flood(markers: int) -> bytes:
    """A small JPEG behind this many empty APP15 segments, each parsed in Python by Pillow."""
    jpeg = encode(noise((64, 64)), "JPEG")
    return jpeg[:2] + b"\xff\xef\x00\x02" * markers + jpeg[2:]


def chunk_flood(chunks: int) -> bytes:
    """A small PNG with this many private ancillary chunks before its image data."""
    png = encode(noise((64, 64)), "PNG")
    return png[:33] + png_chunk(b"prVt", b"") * chunks + png[33:]


def rle8_bmp(width: int, height: int) -> bytes:
    """An RLE8-compressed BMP (Pillow decodes these in Python): runs of 255 pixels, row after row."""
    row = b"\xff\x01" * (width // 255) + bytes([width % 255, 2]) * (width % 255 > 0) + b"\x00\x00"
    data = row * height + b"\x00\x01"
    palette = b"".join(bytes([k, k, k, 0]) for k in range(256))
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(data), 2835, 2835, 256, 0)
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset) + info + palette + data


def corrupt_exif_jpeg() -> bytes:
    """A JPEG whose EXIF names an orientation tag with more values than the segment holds: Pillow warns."""
    tiff = b"II*\x00\x08\x00\x00\x00" + struct.pack("<HHHII", 1, 0x0112, 3, 1000, 0x7FFF) + b"\x00\x00\x00\x00"
    exif = b"Exif\x00\x00" + tiff
    jpeg = encode(noise((64, 64)), "JPEG")
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + jpeg[2:]


def jpeg_segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def non_interleaved_jpeg(width: int, height: int, components: int = 3) -> bytes:
    """A baseline (not progressive) JPEG with each component in a scan of its own, built by hand: one flat
    8x8 block a scan (Huffman tables of one code each), so the file is tiny whatever size its header claims.
    libjpeg buffers every coefficient of the whole image for any multi-scan file, progressive or not."""
    frame = struct.pack(">BHHB", 8, height, width, components)
    frame += b"".join(struct.pack(">BBB", k + 1, 0x11, 0) for k in range(components))
    one_code = bytes([1] + [0] * 15) + b"\x00"  # one code of length 1: category 0 (DC), end of block (AC)
    tables = b"\x00" + one_code + b"\x10" + one_code
    scans = b"".join(
        jpeg_segment(0xDA, struct.pack(">BBBBBB", 1, k + 1, 0x00, 0, 63, 0)) + b"\x3f" for k in range(components)
    )
    quantisation = jpeg_segment(0xDB, b"\x00" + bytes([1] * 64))
    return b"\xff\xd8" + quantisation + jpeg_segment(0xC0, frame) + jpeg_segment(0xC4, tables) + scans + b"\xff\xd9"


def exif_block(orientation: int | None = None, rationals: int = 0, order: str = "<") -> bytes:
    """EXIF ("Exif\\0\\0" and a TIFF header) whose IFD0 holds an Orientation and, if asked, an ImageDescription-like
    tag of `rationals` RATIONAL values: what costs Pillow's getexif() seconds when there are millions."""
    entries = []
    if orientation is not None:
        entries.append(struct.pack(order + "HHIHH", 0x0112, 3, 1, orientation, 0))
    data_at = 8 + 2 + 12 * (len(entries) + bool(rationals)) + 4
    if rationals:
        entries.append(struct.pack(order + "HHII", 0x011A, 5, rationals, data_at))  # XResolution, as an array
    header = (b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "I", 8)
    ifd = struct.pack(order + "H", len(entries)) + b"".join(entries) + struct.pack(order + "I", 0)
    return b"Exif\x00\x00" + header + ifd + struct.pack(order + "II", 1, 1) * rationals


def with_exif(image: Image.Image, fmt: str, exif: bytes) -> bytes:
    """The image encoded as fmt (JPEG: APP1, PNG: eXIf, WEBP: its EXIF chunk) carrying these EXIF bytes as they are."""
    return encode(image, fmt, exif=exif)


def png_with_raw_profile(image: Image.Image, exif: bytes) -> bytes:
    """A PNG carrying EXIF as ImageMagick does: a zTXt "Raw profile type exif" of hex lines."""
    from PIL import PngImagePlugin

    text = exif.hex()
    lines = "\n".join(text[k : k + 72] for k in range(0, len(text), 72))
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", f"\nexif\n{len(exif):8d}\n{lines}\n", zip=True)
    return encode(image, "PNG", pnginfo=info)


def gif_extension_flood(blocks: int) -> bytes:
    """A 64x64 GIF (no global colour table) behind this many empty comment extensions."""
    gif = encode(noise((64, 64)).convert("L"), "GIF")
    flags = gif[10]
    first = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    return gif[:first] + b"\x21\xfe\x00" * blocks + gif[first:]


# JPEG's standard luminance DC table (ITU T.81 K.3): how many codes of each length 1-16, for categories 0-11
DC_CODE_COUNTS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)


def lossless_jpeg(pixels: np.ndarray) -> bytes:
    """A lossless JPEG (SOF3, predictor 1: the sample to the left; the first column's: the one above) of uint8
    pixels (height, width) or (height, width, components), built byte by byte: Pillow cannot write one, and
    libjpeg decodes one only at full size. Each difference is a Huffman code of its bit length, then its bits."""
    samples = pixels.reshape(pixels.shape[0], pixels.shape[1], -1).astype(np.int32)
    height, width, components = samples.shape
    predicted = np.empty_like(samples)
    predicted[:, 1:], predicted[1:, 0], predicted[0, 0] = samples[:, :-1], samples[:-1, 0], 128
    difference = (samples - predicted).ravel()  # interleaved: each pixel's components in turn
    category = np.ceil(np.log2(np.abs(difference) + 1)).astype(np.int64)  # bits of |difference|
    extra = np.where(difference >= 0, difference, difference - 1) & ((1 << category) - 1)
    codes: list[int] = []
    lengths: list[int] = []
    code = 0
    for length, count in enumerate(DC_CODE_COUNTS, 1):
        codes += range(code, code + count)
        lengths += [length] * count
        code = (code + count) << 1
    value = (np.asarray(codes)[category] << category) | extra
    size = np.asarray(lengths)[category] + category
    place = np.arange(16)
    bits = (value[:, None] >> (size[:, None] - 1 - place)) & 1
    stream = bits[place < size[:, None]].astype(np.uint8)
    stream = np.concatenate([stream, np.ones(-len(stream) % 8, np.uint8)])  # padded with 1-bits
    entropy = np.packbits(stream).tobytes().replace(b"\xff", b"\xff\x00")
    frame = struct.pack(">BHHB", 8, height, width, components) + b"".join(
        struct.pack(">BBB", k + 1, 0x11, 0) for k in range(components)
    )
    table = b"\x00" + bytes(DC_CODE_COUNTS) + bytes(range(12))
    scan = struct.pack(">B", components) + b"".join(struct.pack(">BB", k + 1, 0) for k in range(components))
    scan += struct.pack(">BBB", 1, 0, 0)  # predictor 1, (no end of selection), no point transform
    return (
        b"\xff\xd8"
        + jpeg_segment(0xC3, frame)
        + jpeg_segment(0xC4, table)
        + jpeg_segment(0xDA, scan)
        + entropy
        + b"\xff\xd9"
    )


def exif_of_rationals(size: int) -> bytes:
    """EXIF of about `size` bytes whose IFD0 holds a ResolutionUnit and an XResolution of RATIONALs filling it: what
    Pillow's JPEG plugin parses at open for the DPI (no JFIF density), a Python object per 8 bytes."""
    count = max(size - 46, 8) // 8
    entries = struct.pack("<HHIHH", 0x0128, 3, 1, 2, 0) + struct.pack("<HHII", 0x011A, 5, count, 34)
    tiff = b"II*\x00" + struct.pack("<IH", 8, 2) + entries + bytes(4) + struct.pack("<II", 72, 1) * count
    return b"Exif\x00\x00" + tiff


def app1_exif_segments(exif: bytes, size: int = 65_000) -> bytes:
    """EXIF split over APP1 segments of `size` bytes, each after the first "Exif\\0\\0" and the next part: Pillow 13
    joins them into one block."""
    tiff = exif[6:]
    return b"".join(jpeg_segment(0xE1, b"Exif\x00\x00" + tiff[k : k + size]) for k in range(0, len(tiff), size))


def photoshop_resources(size: int) -> bytes:
    """An APP13 body of `size` bytes of empty Photoshop resources (12 bytes each): Pillow parses each in Python."""
    return b"Photoshop 3.0\x00" + b"8BIM\x04\x04\x00\x00\x00\x00\x00\x00" * (max(size - 14, 0) // 12)


# A JPEG's metadata by kind: kind -> (count, size) -> the segments (or stray bytes) to put after its SOI
JPEG_METADATA = {
    "exif": lambda count, size: app1_exif_segments(exif_of_rationals(count * size), size),
    "xmp extension": lambda count, size: (
        jpeg_segment(0xE1, b"http://ns.adobe.com/xmp/extension/\x00" + bytes(size)) * count
    ),
    "icc profile": lambda count, size: b"".join(
        jpeg_segment(0xE2, b"ICC_PROFILE\x00" + bytes([k + 1, count]) + bytes(size)) for k in range(count)
    ),
    "photoshop": lambda count, size: jpeg_segment(0xED, photoshop_resources(size)) * count,
    "comment": lambda count, size: jpeg_segment(0xFE, b"c" * size) * count,
    "tables": lambda count, size: jpeg_segment(0xDB, (b"\x00" + bytes(range(1, 65))) * max(size // 65, 1)) * count,
    "stray bytes": lambda count, size: b"\x01" * (count * size),
}


def with_jpeg_metadata(jpeg: bytes, metadata: bytes) -> bytes:
    """The JPEG with these segments right after its SOI (and JFIF header, if any)."""
    at = 2 + (2 + int.from_bytes(jpeg[4:6], "big") if jpeg[2:4] == b"\xff\xe0" else 0)
    return jpeg[:at] + metadata + jpeg[at:]


def png_metadata(kind: bytes, count: int) -> bytes:
    """`count` PNG chunks of a metadata kind: the compressed ones (zTXt, iTXt with its flag set, iCCP) 1 KB each,
    inflating to 1 MB (Pillow's MAX_TEXT_CHUNK, inflated at open however small the chunk); the others 1 KB."""
    inflating = zlib.compress(bytes(1 << 20), 9)
    body = {
        b"iCCP": b"icc\x00\x00" + inflating,
        b"zTXt": b"Comment\x00\x00" + inflating,
        b"iTXt": b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + inflating,
        b"tEXt": b"Comment\x00" + b"a" * 1000,
        b"eXIf": exif_of_rationals(1000)[6:],
    }[kind]
    return png_chunk(kind, body) * count


def with_png_metadata(png: bytes, chunks: bytes) -> bytes:
    """The PNG with these chunks right after its header (IHDR)."""
    return png[:33] + chunks + png[33:]
