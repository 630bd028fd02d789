"""What a file's structure will cost its decoder, read from the bytes before any decoder runs.

The decoded-size budget (MAX_DECODED_BYTES) bounds the pixels, but a few
costs do not show in the pixel count, and a small file can make them huge:

- A progressive (or any multi-scan) JPEG is decoded through a coefficient
  buffer of the whole image at full size, 2 bytes per coefficient, however
  far libjpeg scales the output down: a 1.4 MB CMYK file of 13376x13376
  takes 1.4 GB. It is counted against the same budget as the pixels.
  libjpeg decides "multi-scan" at the first scan: progressive, or a scan
  holding fewer components than the frame (a baseline file with each
  component in a scan of its own) - so a single such scan is enough.
- Each progressive scan is another pass over that buffer (~35 bytes of file,
  ~2 ms at 4096x4096): 16,000 of them are half a minute of CPU. Their number
  is bounded.
- Pillow parses JPEG marker segments, PNG chunks and the GIF blocks before
  the first image one by one in Python (2.5 M empty APP15 markers are 5 s
  and 324 MB; 3.3 M empty GIF extensions 1.6 s): their number is bounded.
- What those segments hold is parsed at open too, before any limit of the
  project applies, so its bytes are bounded where Pillow does more than copy
  them (docs/limits.md):
  - JPEG, before the first scan (libjpeg, in C, reads the rest): the EXIF of
    every APP1 joined and parsed whole for the DPI when there is no JFIF
    density (70 APP1s, 4.6 MB: 1.4 s, +92 MB); Photoshop resources (APP13),
    the MPF index (APP2), quantisation tables and frame headers, a Python
    step every 3 to 65 bytes (10 MB of frame headers: 0.8 s, +280 MB); and
    bytes between segments, read one at a time. Together at most
    MAX_JPEG_PARSED_BYTES. A budget, not stripping the segments: the bytes
    libjpeg decodes stay the sender's, and the limit names what it refuses.
    XMP, ICC profiles, comments and other APPn are copied, not parsed: only
    the file size bounds them (Google's depth photos carry MBs of XMP).
  - PNG: each zTXt, compressed iTXt and iCCP chunk is inflated, up to
    Pillow's MAX_TEXT_CHUNK (1 MB) however small it is (4,000 iCCP chunks of
    1 KB: 8.7 s of zlib): what they may inflate to is bounded.
  - GIF: the extensions before the first image (comments, XMP, ICC, NETSCAPE)
    are bounded by their sub-blocks, above. WebP's EXIF, XMP and ICCP chunks
    are copied by libwebp, in C; BMP has no metadata (its palette: at most
    65,536 entries, Pillow's own limit).

Real photos sit far inside these bounds: a camera JPEG has about a dozen
segments and 1 scan, a progressive one 10 scans, a PNG a few chunks per MB;
a camera's EXIF is one APP1 of at most 64 KB, a PNG has an ICC profile and a
few text chunks.
"""

import math
import re
import struct
from collections import Counter
from dataclasses import dataclass

from PIL.PngImagePlugin import MAX_TEXT_CHUNK

from lambda_fn.errors import RequestError

MAX_JPEG_SCANS = 64  # libjpeg's progressive scripts use 10 (colour) or 6 (grey); mozjpeg's stay under 20
MAX_JPEG_SEGMENTS = 1000  # markers other than scans: APPn (ICC profiles split in 64 KB), DQT, DHT per scan ...
MAX_PNG_CHUNKS = 4096  # encoders write IDAT in 8-64 KB chunks: a 10 MB PNG has at most ~1,300
COEFFICIENT_BYTES = 2  # libjpeg's JCOEF
# The next marker: 0xFF then anything but a stuffed 0x00 or a restart marker (both belong to a scan's
# entropy-coded data) or another 0xFF (fill: the marker is after it). The regex runs in C, ~2 ms a MB.
NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
PROGRESSIVE_SOF = {0xC2, 0xC6, 0xCA, 0xCE}
LOSSLESS_SOF = {0xC3, 0xC7, 0xCB, 0xCF}  # spatial (not DCT) coding: libjpeg decodes these only at full size
SOS, EOI, DQT, DHP = 0xDA, 0xD9, 0xDB, 0xDE
# What Pillow parses in Python at open, before the first scan, besides counting segments: a name for each kind of
# segment it does more than copy (Pillow's JpegImagePlugin: APP, SOF, DQT and _read_dpi_from_exif, MPO's _getmp).
# A camera's EXIF is one APP1 of at most 64 KB (its standard's limit); its tables and frame header are under 1 KB;
# Photoshop's resources (paths, a thumbnail) and an MPF index tens of KB. At this budget the costliest kind (EXIF
# of RATIONAL arrays, one Python object each) takes ~0.05 s.
MAX_JPEG_PARSED_BYTES = 256 * 1024
PARSED_APP = {
    (0xE1, b"Exif\x00\x00"): "EXIF",
    (0xED, b"Photoshop 3.0\x00"): "Photoshop resources",
    (0xE2, b"MPF\x00"): "MPF index",
}
STRAY = "bytes between segments"  # Pillow steps over them one at a time (libjpeg skips them as corrupt data)
# A PNG's zTXt, compressed iTXt and iCCP chunks are inflated at open (or at load, after the image data) up to
# Pillow's MAX_TEXT_CHUNK each. Deflate expands at most ~1032:1, so a chunk may inflate to min(1032 x its size,
# MAX_TEXT_CHUNK). A PNG carries an ICC profile and a few compressed text chunks (ImageMagick's raw EXIF, IPTC
# and XMP profiles): 8 of them at the cap. Inflating this much takes ~20 ms.
DEFLATE_MAX_RATIO = 1032
MAX_PNG_INFLATED_BYTES = 8 * MAX_TEXT_CHUNK
INFLATED_CHUNKS = (b"zTXt", b"iTXt", b"iCCP")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
# Before its first image a GIF has a few extensions (graphics control, a looping NETSCAPE block, a comment), each
# of 255-byte sub-blocks: 1,000 sub-blocks (255 KB of metadata) is far beyond any encoder's
MAX_GIF_SUB_BLOCKS = 1000
GIF_EXTENSION, GIF_IMAGE = 0x21, 0x2C


@dataclass(frozen=True)
class Structure:
    """What the walk learnt that Pillow does not report."""

    lossless: bool = False  # a lossless JPEG: libjpeg refuses to decode it reduced


def too_costly(what: str) -> RequestError:
    return RequestError("image_too_large", what)


def check_structure(data: bytes, max_decoded_bytes: int) -> Structure:
    """Refuse (413) a JPEG, PNG or GIF whose structure would cost its decoder more than the limits allow."""
    if data[:2] == b"\xff\xd8":
        return check_jpeg(data, max_decoded_bytes)
    if data[:8] == PNG_SIGNATURE:
        check_png(data)
    elif data[:6] in GIF_SIGNATURES:
        check_gif(data)
    return Structure()


def coefficient_bytes(frame: bytes) -> int:
    """A whole-image coefficient buffer for the frame (SOF segment body): every component's 8x8 blocks,
    padded to whole MCUs as libjpeg allocates them."""
    height, width, count = struct.unpack_from(">HHB", frame, 1)
    sampling = [(frame[7 + 3 * k] >> 4, frame[7 + 3 * k] & 15) for k in range(count) if 8 + 3 * k < len(frame)]
    if not sampling or not height:
        return 0  # libjpeg refuses such a frame itself, before it allocates anything
    h_max, v_max = max(max(h for h, _ in sampling), 1), max(max(v for _, v in sampling), 1)
    total = 0
    for h, v in sampling:
        blocks_wide = math.ceil(math.ceil(width * h / h_max) / 8)
        blocks_high = math.ceil(math.ceil(height * v / v_max) / 8)
        total += math.ceil(blocks_wide / max(h, 1)) * max(h, 1) * math.ceil(blocks_high / max(v, 1)) * max(v, 1)
    return total * 64 * COEFFICIENT_BYTES


def check_jpeg(data: bytes, max_decoded_bytes: int) -> Structure:
    """Walk the marker segments (skipping each scan's entropy-coded data in C, with a regex), counting."""
    position, segments, scans, frame, marker_of_frame, partial = 2, 0, 0, b"", 0, False
    parsed = ParsedBytes()  # what Pillow parses before the first scan
    while position + 4 <= len(data):
        if data[position] != 0xFF or data[position + 1] in (0xFF, 0x00) or 0xD0 <= data[position + 1] <= 0xD7:
            found = NEXT_MARKER.search(data, position)  # fill bytes or garbage: libjpeg skips to a marker
            if not scans:
                parsed.add(STRAY, (found.start() if found else len(data)) - position)
            if not found:
                break
            position = found.start()
            continue
        marker = data[position + 1]
        if marker == EOI:
            break
        length = struct.unpack_from(">H", data, position + 2)[0]
        body = data[position + 4 : position + 2 + length]
        position += 2 + length
        if marker == SOS:
            scans += 1
            partial = partial or bool(frame and body and body[0] < frame[5])  # fewer components than the frame
            if scans > MAX_JPEG_SCANS:
                raise too_costly(f"the JPEG has over {MAX_JPEG_SCANS} scans, the most accepted")
            found = NEXT_MARKER.search(data, position)
            position = found.start() if found else len(data)
            continue
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise too_costly(f"the JPEG has over {MAX_JPEG_SEGMENTS} marker segments, the most accepted")
        if not scans:
            parsed.add(parsed_kind(marker, body), len(body))
        if marker in SOF_MARKERS and not frame and len(body) >= 6:
            frame, marker_of_frame = body, marker
    parsed.check()
    progressive = marker_of_frame in PROGRESSIVE_SOF
    if frame and (progressive or partial or scans > 1):
        needed = coefficient_bytes(frame)
        if needed > max_decoded_bytes:
            raise too_costly(
                f"the JPEG is {'progressive' if progressive else 'multi-scan'}: decoding it holds {needed} bytes of "
                f"coefficients at any scale; at most {max_decoded_bytes} are accepted (a baseline JPEG is decoded "
                "at reduced scale instead)"
            )
    return Structure(lossless=marker_of_frame in LOSSLESS_SOF)


def parsed_kind(marker: int, body: bytes) -> str | None:
    """The kind of a segment whose bytes Pillow parses at open, or None for one it only copies (or skips)."""
    if marker == DQT:
        return "quantisation tables"
    if marker in SOF_MARKERS or marker == DHP:  # Pillow reads DHP as a frame header
        return "frame headers"
    return next((kind for (app, prefix), kind in PARSED_APP.items() if marker == app and body.startswith(prefix)), None)


class ParsedBytes:
    """The bytes of each kind Pillow parses at open, refused (413) together over MAX_JPEG_PARSED_BYTES."""

    def __init__(self):
        self.bytes: Counter[str] = Counter()
        self.segments: Counter[str] = Counter()

    def add(self, kind: str | None, count: int) -> None:
        if kind is None or count <= 0:
            return
        self.bytes[kind] += count
        self.segments[kind] += kind != STRAY

    def check(self) -> None:
        if self.bytes.total() > MAX_JPEG_PARSED_BYTES:
            largest, size = self.bytes.most_common(1)[0]
            where = f" in {self.segments[largest]} segments" if largest != STRAY else ""
            raise too_costly(
                f"the JPEG holds {self.bytes.total()} bytes of metadata that its decoder parses before the image "
                f"({largest}: {size} bytes{where}); at most {MAX_JPEG_PARSED_BYTES} are accepted, of EXIF, Photoshop "
                "resources, MPF index, tables, frame headers and bytes between segments together (a camera writes "
                "one EXIF segment of at most 64 KB)"
            )


def check_png(data: bytes) -> None:
    """Count the chunks (length, type, data, CRC each) up to IEND, and what the compressed metadata may inflate to."""
    position, chunks, inflated, compressed = len(PNG_SIGNATURE), 0, 0, 0
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        if kind in INFLATED_CHUNKS and inflates(data, kind, position + 8, min(position + 8 + length, len(data))):
            inflated += min(DEFLATE_MAX_RATIO * length, MAX_TEXT_CHUNK)
            compressed += 1
            if inflated > MAX_PNG_INFLATED_BYTES:
                raise too_costly(
                    f"the PNG's compressed metadata chunks (zTXt, iTXt, iCCP) may inflate to over "
                    f"{MAX_PNG_INFLATED_BYTES} bytes (its first {compressed} to {inflated}), the most accepted (each "
                    f"up to {MAX_TEXT_CHUNK}: a photo has an ICC profile and a few text chunks)"
                )
        position += 12 + length
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise too_costly(f"the PNG has over {MAX_PNG_CHUNKS} chunks, the most accepted")
        if kind == b"IEND":
            break


def inflates(data: bytes, kind: bytes, start: int, end: int) -> bool:
    """Whether Pillow inflates this chunk: zTXt and iCCP always; iTXt when its compression flag (after the
    keyword's NUL) is set."""
    if kind != b"iTXt":
        return True
    flag = data.find(b"\x00", start, end) + 1
    return 0 < flag < end and data[flag] != 0


def check_gif(data: bytes) -> None:
    """Count the extension blocks' sub-blocks (a length byte and its data; an empty one ends a block) up to the
    first image, which Pillow decodes in C."""
    flags = data[10] if len(data) > 10 else 0
    position = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # screen descriptor, global colour table
    sub_blocks = 0
    while position < len(data) and data[position] == GIF_EXTENSION:
        position += 2  # the introducer and the extension's label
        while position < len(data):
            sub_blocks += 1
            if sub_blocks > MAX_GIF_SUB_BLOCKS:
                raise too_costly(f"the GIF has over {MAX_GIF_SUB_BLOCKS} extension blocks before its image")
            size = data[position]
            position += 1 + size
            if size == 0:
                break
