"""The one EXIF tag a photo's pixels need: Orientation (0x0112), read from the raw bytes, nothing else parsed.

Phones store a photo as the sensor saw it and say in EXIF how to turn it upright. Pillow's getexif() and
ImageOps.exif_transpose parse every tag of every IFD to find it: EXIF of huge RATIONAL or SHORT arrays costs
seconds of CPU and hundreds of MB (20 s for a 9.5 MB PNG's eXIf chunk), and EXIF without a valid TIFF header
raises SyntaxError. Here only IFD0's entry table is walked (12 bytes an entry, at most 65,535 of them), and
anything malformed means "as stored": a photo is never refused for its metadata.

The EXIF comes from wherever Pillow's decoders leave it raw: JPEG APP1, PNG eXIf and WebP EXIF chunks
(info["exif"]), and the hex "Raw profile type exif" text chunk that ImageMagick writes into PNGs.
"""

import binascii
import re
import struct

from PIL import Image

ORIENTATION_TAG = 0x0112
SHORT = 3
# Orientation -> the transposition that makes the stored pixels upright (EXIF 2.3, as ImageOps.exif_transpose)
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
RAW_PROFILE = "Raw profile type exif"  # ImageMagick's: "\nexif\n   <length>\n<hex, in lines>"
# Without EXIF's tag, XMP's (as Pillow's getexif also reads it): a regex, run in C, over the packet as stored
XMP_ORIENTATION = re.compile(rb'tiff:Orientation(?:="|>)([0-9])')
XMP_KEYS = ("xmp", "XML:com.adobe.xmp")  # JPEG/WebP/PNG iTXt, as Pillow's decoders leave them


def raw_exif(image: Image.Image) -> bytes:
    """The image's EXIF block as its container stores it ("Exif\\0\\0" and/or a TIFF header), or b""."""
    exif = image.info.get("exif")
    if isinstance(exif, bytes):
        return exif
    profile = image.info.get(RAW_PROFILE)
    if isinstance(profile, str):
        try:
            return binascii.unhexlify("".join(profile.split("\n")[3:]).replace(" ", ""))
        except (binascii.Error, ValueError):
            return b""
    return b""


def exif_orientation(exif: bytes) -> int | None:
    """EXIF Orientation from an EXIF block: 1-8 (1 for a value out of range), or None when the block is absent,
    malformed or has no such tag."""
    tiff = exif[6:] if exif[:6] == b"Exif\x00\x00" else exif
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(tiff[:4])
    if order is None or len(tiff) < 8:
        return None
    (ifd,) = struct.unpack_from(order + "I", tiff, 4)
    if ifd + 2 > len(tiff):
        return None
    (entries,) = struct.unpack_from(order + "H", tiff, ifd)
    for k in range(entries):
        at = ifd + 2 + 12 * k
        if at + 12 > len(tiff):
            return None
        tag, kind, count = struct.unpack_from(order + "HHI", tiff, at)
        if tag == ORIENTATION_TAG:
            (value,) = struct.unpack_from(order + "H", tiff, at + 8)
            return value if kind == SHORT and count == 1 and value in UPRIGHT else 1
    return None


def xmp_orientation(image: Image.Image) -> int:
    """Orientation from the XMP packet (1 when it has none)."""
    for key in XMP_KEYS:
        packet = image.info.get(key)
        packet = packet.encode(errors="replace") if isinstance(packet, str) else packet
        found = XMP_ORIENTATION.search(packet) if isinstance(packet, bytes) else None
        if found:
            return int(found.group(1))
    return 1


def upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF (else XMP) Orientation says (itself when there is nothing to turn)."""
    found = exif_orientation(raw_exif(image))
    turn = UPRIGHT.get(found if found is not None else xmp_orientation(image))
    return image.transpose(turn) if turn is not None else image
