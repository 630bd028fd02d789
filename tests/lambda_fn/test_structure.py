"""Files whose structure costs the decoder more than their pixels show: refused from their bytes, before decoding."""

import pytest

from harness.inputs import (
    chunk_flood,
    encode,
    gif_extension_flood,
    marker_flood,
    noise,
    non_interleaved_jpeg,
    progressive_bomb,
    rle8_bmp,
    scan_flood,
)
from lambda_fn.errors import RequestError
from lambda_fn.preprocess import decode_image
from lambda_fn.structure import MAX_JPEG_SCANS, MAX_JPEG_SEGMENTS, MAX_PNG_CHUNKS, coefficient_bytes

BUDGET = 64 * 1024 * 1024  # MAX_DECODED_BYTES' default


def refusal(data: bytes) -> RequestError:
    with pytest.raises(RequestError) as caught:
        decode_image(data, BUDGET, at_least=None)
    return caught.value


def test_a_progressive_jpeg_counts_its_coefficients_against_the_budget():
    """The review's 13376x13376 CMYK progressive JPEG: 1.4 GB of coefficients, whatever draft() scales."""
    err = refusal(progressive_bomb(13376, 13376))
    assert (err.status, err.code) == (413, "image_too_large")
    assert "progressive" in err.message and "coefficients" in err.message and str(BUDGET) in err.message


@pytest.mark.parametrize("components", [3, 4])
@pytest.mark.parametrize("scans", ["all", "one"])
def test_a_baseline_jpeg_with_a_scan_per_component_counts_its_coefficients_too(components, scans):
    """The third review's 13376x13376 baseline JPEGs, each component in a scan of its own (1.07 and 1.41 GB):
    libjpeg buffers every coefficient once the first scan holds fewer components than the frame, so one such
    scan is enough."""
    data = non_interleaved_jpeg(13376, 13376, components)
    if scans == "one":
        data = data[: data.index(b"\xff\xda", data.index(b"\xff\xda") + 2)] + b"\xff\xd9"
    err = refusal(data)
    assert (err.status, err.code) == (413, "image_too_large") and "multi-scan" in err.message
    assert str(13376 * 13376 * components * 2) in err.message


def test_a_gif_behind_millions_of_empty_extensions_is_refused_an_ordinary_one_decodes():
    """Round 2's GIF of 3.3 M empty extension blocks (1.6 s of Pillow's Python parser): refused by counting."""
    err = refusal(gif_extension_flood(3_300_000))
    assert (err.status, err.code) == (413, "image_too_large") and "extension blocks" in err.message
    assert decode_image(gif_extension_flood(50), BUDGET, at_least=None).size == (64, 64)


def test_a_small_baseline_jpeg_with_a_scan_per_component_decodes():
    assert decode_image(non_interleaved_jpeg(640, 480), BUDGET, at_least=None).size == (640, 480)


def test_a_progressive_photo_of_ordinary_size_decodes():
    photo = encode(noise((1600, 1200)), "JPEG", progressive=True)
    assert decode_image(photo, BUDGET, at_least=None).size == (1600, 1200)


def test_coefficients_follow_the_sampling_factors():
    """4:2:0 YCbCr: luma at full size, chroma at a quarter: 1.5 blocks of 64 coefficients per 64 pixels."""
    jpeg = encode(noise((1024, 1024)), "JPEG", progressive=True, subsampling=2)
    at = jpeg.index(b"\xff\xc2")
    frame = jpeg[at + 4 : at + 2 + int.from_bytes(jpeg[at + 2 : at + 4], "big")]
    assert coefficient_bytes(frame) == (1024 * 1024 * 3 // 2) * 2


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: scan_flood(MAX_JPEG_SCANS + 1), f"over {MAX_JPEG_SCANS} scans"),
        (lambda: marker_flood(MAX_JPEG_SEGMENTS + 1), f"over {MAX_JPEG_SEGMENTS} marker segments"),
        (lambda: chunk_flood(MAX_PNG_CHUNKS + 1), f"over {MAX_PNG_CHUNKS} chunks"),
    ],
    ids=["scans", "jpeg-markers", "png-chunks"],
)
def test_floods_of_scans_markers_and_chunks_are_refused(make, words):
    err = refusal(make())
    assert (err.status, err.code) == (413, "image_too_large") and words in err.message


@pytest.mark.parametrize(
    "data", [scan_flood(20), marker_flood(50), chunk_flood(50)], ids=["scans", "jpeg-markers", "png-chunks"]
)
def test_the_same_structures_within_the_bounds_decode(data):
    assert decode_image(data, BUDGET, at_least=None).size in ((16, 16), (64, 64))


def test_an_rle_bmp_is_refused_as_pillow_decodes_it_in_python():
    err = refusal(rle8_bmp(300, 200))
    assert (err.status, err.code) == (422, "not_an_image") and "bmp_rle" in err.message


@pytest.mark.parametrize("width, height", [(8001, 6001), (8000, 6000), (8007, 6003)])
def test_a_large_jpeg_is_decoded_at_reduced_scale_whatever_its_sides(width, height):
    """draft() must be asked for size // scale: sides that are not multiples of 8 once fell to scale 1 (413)."""
    big = encode(noise((width, height)).resize((width, height)), "JPEG", quality=50)
    image = decode_image(big, BUDGET, at_least=None)
    assert image.size == (-(-width // 2), -(-height // 2))
