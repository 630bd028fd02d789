"""EXIF Orientation read alone from the raw bytes (lambda_fn/orientation.py), in every container that carries it."""

import base64
import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from harness.inputs import encode, exif_block, noise, png_with_raw_profile, with_exif
from lambda_fn.orientation import exif_orientation, raw_exif, upright

PHOTO = noise((40, 20))  # taller than wide once turned by 5-8: any mistake shows in the size or the pixels
BROKEN = b"Exif\x00\x00not a TIFF header at all"  # the review's 132-byte WebP: Pillow raised SyntaxError, a 500


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "raw profile"])
@pytest.mark.parametrize("value", range(1, 9))
def test_every_orientation_in_every_container_turns_as_pillow_does(fmt, value, order):
    exif = exif_block(value, order=order)
    data = png_with_raw_profile(PHOTO, exif) if fmt == "raw profile" else with_exif(PHOTO, fmt, exif)
    ours, pillows = upright(opened(data)), ImageOps.exif_transpose(opened(data))
    assert ours.size == pillows.size and np.array_equal(np.asarray(ours), np.asarray(pillows))


def test_xmp_orientation_counts_when_exif_has_none():
    xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
    assert upright(opened(encode(PHOTO, "JPEG", xmp=xmp))).size == (20, 40)
    assert upright(opened(encode(PHOTO, "JPEG", xmp=xmp, exif=exif_block(1)))).size == (40, 20)  # EXIF's first


@pytest.mark.parametrize(
    "exif",
    [
        b"Exif\x00\x00",
        BROKEN,
        b"Exif\x00\x00II*\x00\xff\xff\xff\xff",  # IFD0 beyond the end
        exif_block(6)[:-10],  # the entry table cut short
        exif_block(9),  # no such orientation
        exif_block(6).replace(b"\x12\x01\x03\x00\x01\x00", b"\x12\x01\x03\x00\x02\x00"),  # two values, not one
    ],
)
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_malformed_exif_means_as_stored(exif, fmt):
    assert exif_orientation(exif) in (None, 1)
    assert upright(opened(with_exif(PHOTO, fmt, exif))).size == PHOTO.size


def test_millions_of_rationals_are_not_parsed(app):
    """The review's 9.5 MB PNG eXIf (20 s of CPU in Pillow's getexif()), as PNG, WebP and a raw profile: only
    IFD0's entry table is read. bench.hostile measures the CPU."""
    exif = exif_block(6, rationals=1_000_000)
    profile = exif_block(6, rationals=50_000)  # Pillow refuses text chunks over 1 MB decompressed: 800 KB of hex
    for data in (with_exif(PHOTO, "PNG", exif), with_exif(PHOTO, "WEBP", exif), png_with_raw_profile(PHOTO, profile)):
        image = opened(data)
        assert len(raw_exif(image)) > 400_000 and upright(image).size == (20, 40)
        body = app.lambda_handler({"image": base64.b64encode(data).decode()}, None)
        assert "label" in body, body


def test_pillow_never_parses_the_exif_on_the_way_in(app, monkeypatch):
    """Pillow's getexif() parses every tag (20 s for the review's PNG): the decode path must not call it on a
    PNG or a WebP, whose EXIF has no size limit. (A JPEG's is one APP1 segment, at most 64 KB: Pillow reads its
    DPI from it when it opens the file, a bounded cost.)"""

    def refused(self):
        raise AssertionError("getexif() called")

    photos = [with_exif(PHOTO, fmt, exif_block(6, rationals=1000)) for fmt in ("PNG", "WEBP")]
    monkeypatch.setattr(Image.Image, "getexif", refused)  # (saving them above may use it)
    for data in photos:
        body = app.lambda_handler({"image": base64.b64encode(data).decode()}, None)
        assert "label" in body, body


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_a_photo_with_broken_exif_is_classified_and_trained_on(app, fmt, tmp_path):
    from train.data import Item, read_images

    data = with_exif(PHOTO, fmt, BROKEN)
    body = app.lambda_handler({"image": base64.b64encode(data).decode()}, None)
    assert "label" in body, body
    (tmp_path / f"broken.{fmt.lower()}").write_bytes(data)
    images, kept, skipped = read_images([Item(tmp_path / f"broken.{fmt.lower()}", 0)], 16, "bilinear")
    assert images.shape == (1, 16, 16, 3) and not skipped
