"""A mutation fuzzer of the decode path: small real images of every accepted format (EXIF, progressive, palette,
animation), bytes replaced, inserted and cut, through the handler. Every outcome is a prediction or a 4xx/5xx
of the caller's kind, never internal_error. Bounded: a few hundred mutants a run (the review ran 90,000)."""

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.inputs import encode, exif_block, noise, non_interleaved_jpeg, png_with_raw_profile, with_exif

PHOTO = noise((24, 16))
SEEDS = {
    "jpeg-exif": with_exif(PHOTO, "JPEG", exif_block(6)),
    "jpeg-progressive": encode(PHOTO, "JPEG", progressive=True),
    "jpeg-non-interleaved": non_interleaved_jpeg(24, 16),
    "jpeg-cmyk": encode(PHOTO.convert("CMYK"), "JPEG"),
    "png-exif": with_exif(PHOTO, "PNG", exif_block(3)),
    "png-raw-profile": png_with_raw_profile(PHOTO, exif_block(8)),
    "png-palette": encode(PHOTO.convert("P"), "PNG", transparency=0),
    "webp-exif": with_exif(PHOTO, "WEBP", exif_block(5)),
    "webp-lossless": encode(PHOTO.convert("RGBA"), "WEBP", lossless=True),
    "gif-animated": encode(PHOTO, "GIF", save_all=True, append_images=[PHOTO.rotate(90)], comment=b"c" * 300),
    "bmp": encode(PHOTO, "BMP"),
}


@st.composite
def mutants(draw) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.sampled_from([0x00, 0xFF, 0x01, 0x7F, 0x80, 0xD8, 0xDA, 0xE1, draw(st.integers(0, 255))]))
        if kind == "replace":
            data[at] = byte
        elif kind == "insert":
            data[at:at] = bytes([byte]) * draw(st.integers(1, 4))
        elif len(data) > 8:
            del data[at : at + draw(st.integers(1, 16))]
    if draw(st.booleans()):
        data = data[: draw(st.integers(8, len(data)))]
    return bytes(data)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_seed_is_classified(app, name):
    assert "label" in app.lambda_handler({"image": base64.b64encode(SEEDS[name]).decode()}, None)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutants())
def test_no_mutant_gets_a_500(app, data):
    body = app.lambda_handler({"image": base64.b64encode(data).decode()}, None)
    assert "label" in body or body["error"]["code"] != "internal_error", body
