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

Real photos sit far inside these bounds: a camera JPEG has about a dozen
segments and 1 scan, a progressive one 10 scans, a PNG a few chunks per MB.
"""

import math
import re
import struct

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
SOS, EOI = 0xDA, 0xD9
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
# Before its first image a GIF has a few extensions (graphics control, a looping NETSCAPE block, a comment), each
# of 255-byte sub-blocks: 1,000 sub-blocks (255 KB of metadata) is far beyond any encoder's
MAX_GIF_SUB_BLOCKS = 1000
GIF_EXTENSION, GIF_IMAGE = 0x21, 0x2C


def too_costly(what: str) -> RequestError:
    return RequestError("image_too_large", what)


def check_structure(data: bytes, max_decoded_bytes: int) -> None:
    """Refuse (413) a JPEG or PNG whose structure would cost its decoder more than the limits allow."""
    if data[:2] == b"\xff\xd8":
        check_jpeg(data, max_decoded_bytes)
    elif data[:8] == PNG_SIGNATURE:
        check_png(data)
    elif data[:6] in GIF_SIGNATURES:
        check_gif(data)


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


def check_jpeg(data: bytes, max_decoded_bytes: int) -> None:
    """Walk the marker segments (skipping each scan's entropy-coded data in C, with a regex), counting."""
    position, segments, scans, frame, progressive, partial = 2, 0, 0, b"", False, False
    while position + 4 <= len(data):
        if data[position] != 0xFF or data[position + 1] in (0xFF, 0x00) or 0xD0 <= data[position + 1] <= 0xD7:
            found = NEXT_MARKER.search(data, position)  # fill bytes or garbage: libjpeg skips to a marker
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
        if marker in SOF_MARKERS and not frame and len(body) >= 6:
            frame, progressive = body, marker in PROGRESSIVE_SOF
    if frame and (progressive or partial or scans > 1):
        needed = coefficient_bytes(frame)
        if needed > max_decoded_bytes:
            raise too_costly(
                f"the JPEG is {'progressive' if progressive else 'multi-scan'}: decoding it holds {needed} bytes of "
                f"coefficients at any scale; at most {max_decoded_bytes} are accepted (a baseline JPEG is decoded "
                "at reduced scale instead)"
            )


def check_png(data: bytes) -> None:
    """Count the chunks (length, type, data, CRC each) up to IEND."""
    position, chunks = len(PNG_SIGNATURE), 0
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        position += 12 + length
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise too_costly(f"the PNG has over {MAX_PNG_CHUNKS} chunks, the most accepted")
        if kind == b"IEND":
            break


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
