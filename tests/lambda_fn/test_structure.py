"""Files whose structure costs the decoder more than their pixels show: refused from their bytes, before decoding."""

import cProfile
import io
import pstats
from dataclasses import dataclass
from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, event, given, settings, target
from hypothesis import strategies as st
from PIL import Image, ImageCms, PngImagePlugin

from harness.inputs import (
    JPEG_METADATA,
    chunk_flood,
    encode,
    exif_of_rationals,
    gif_extension_flood,
    jpeg_segment,
    marker_flood,
    noise,
    non_interleaved_jpeg,
    photoshop_resources,
    png_metadata,
    png_with_raw_profile,
    progressive_bomb,
    rle8_bmp,
    scan_flood,
    with_jpeg_metadata,
    with_png_metadata,
)
from lambda_fn.errors import RequestError
from lambda_fn.fetch import FetchLimits
from lambda_fn.preprocess import decode_image, pixels
from lambda_fn.structure import (
    MAX_JPEG_PARSED_BYTES,
    MAX_JPEG_SCANS,
    MAX_JPEG_SEGMENTS,
    MAX_PNG_CHUNKS,
    MAX_PNG_INFLATED_BYTES,
    check_structure,
    coefficient_bytes,
)

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


# -- metadata Pillow parses at open (#39 R4-1 and its class) ---------------------------------------------------


@dataclass
class Work:
    """What decoding a file cost before and in Pillow, in units that do not depend on the machine's speed."""

    opened: int = 0  # times Image.open ran (0: refused from the bytes alone)
    calls: int = 0  # function calls, Python's and C's, while decode_image ran: Pillow parses metadata in Python
    inflated: int = 0  # bytes the PNG plugin inflated from zTXt, iTXt and iCCP chunks


# Pillow's costliest parse is EXIF of RATIONALs (1.8 calls a byte, an object per 8 bytes); the rest of a decode
# makes a few hundred calls, and each segment some tens
MAX_CALLS = 2 * MAX_JPEG_PARSED_BYTES + 50 * MAX_JPEG_SEGMENTS


def decode_measured(data: bytes, at_least: int | None = None) -> tuple[Image.Image | RequestError, Work]:
    work, opening, inflating = Work(), Image.open, PngImagePlugin._safe_zlib_decompress

    def counted_open(*args, **kwargs):
        work.opened += 1
        return opening(*args, **kwargs)

    def counted_inflate(compressed: bytes) -> bytes:
        try:
            text = inflating(compressed)
        except ValueError:  # over MAX_TEXT_CHUNK: that much was inflated first
            work.inflated += PngImagePlugin.MAX_TEXT_CHUNK
            raise
        work.inflated += len(text)
        return text

    profile = cProfile.Profile()
    with (
        mock.patch.object(Image, "open", counted_open),
        mock.patch.object(PngImagePlugin, "_safe_zlib_decompress", counted_inflate),
    ):
        profile.enable()
        try:
            outcome: Image.Image | RequestError = decode_image(data, BUDGET, at_least=at_least)
        except RequestError as err:
            outcome = err
        finally:
            profile.disable()
    work.calls = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
    return outcome, work


def small_jpeg() -> bytes:
    """64x32, with a JFIF header of no density: Pillow then parses the EXIF at open for the DPI."""
    return encode(noise((64, 32)), "JPEG")


def test_exif_split_over_70_app1_segments_is_refused_before_pillow_sees_it():
    """The review's file: 4.4 MB of EXIF in 70 APP1s, which Pillow 13 joins and parses whole (1.2 s, +92 MB)."""
    data = with_jpeg_metadata(small_jpeg(), JPEG_METADATA["exif"](70, 65_000))
    outcome, work = decode_measured(data)
    assert isinstance(outcome, RequestError) and (outcome.status, outcome.code) == (413, "image_too_large")
    assert "EXIF: 4550" in outcome.message and "in 70 segments" in outcome.message
    assert f"at most {MAX_JPEG_PARSED_BYTES} are accepted" in outcome.message
    assert work.opened == 0


@pytest.mark.parametrize(
    "kind, name",
    [
        ("exif", "EXIF"),
        ("photoshop", "Photoshop resources"),
        ("tables", "quantisation tables"),
        ("stray bytes", "bytes between segments"),
    ],
)
def test_each_kind_pillow_parses_is_bounded_and_named(kind, name):
    """Past the budget each kind is refused by name; within it, Pillow's work is bounded (MAX_CALLS)."""
    over, work = decode_measured(with_jpeg_metadata(small_jpeg(), JPEG_METADATA[kind](5, 60_000)))
    assert isinstance(over, RequestError) and over.code == "image_too_large" and work.opened == 0
    assert f"({name}: " in over.message
    within, work = decode_measured(with_jpeg_metadata(small_jpeg(), JPEG_METADATA[kind](4, 60_000)))
    assert isinstance(within, Image.Image) and within.size == (64, 32) and work.calls < MAX_CALLS


def test_a_pile_of_frame_headers_is_refused_before_pillow_makes_a_tuple_per_three_bytes():
    """Pillow appends a tuple for every 3 bytes of every frame header before the first scan: 10 MB of them were
    0.8 s and +280 MB, before libjpeg refused the file."""
    jpeg = small_jpeg()
    at = jpeg.index(b"\xff\xc0")
    frame = jpeg[at + 4 : at + 2 + int.from_bytes(jpeg[at + 2 : at + 4], "big")]
    frames = jpeg_segment(0xC0, frame + b"\x01\x11\x00" * 21_000) * 150
    outcome, work = decode_measured(jpeg[:at] + frames + jpeg[at:])
    assert isinstance(outcome, RequestError) and "frame headers: 9" in outcome.message and work.opened == 0


@pytest.mark.parametrize("kind", ["xmp extension", "icc profile", "comment"])
def test_metadata_pillow_only_copies_is_bounded_by_the_file_size_alone(kind):
    """Google's depth photos carry MBs of XMP extension segments; ICC profiles and comments are copied too."""
    outcome, work = decode_measured(with_jpeg_metadata(small_jpeg(), JPEG_METADATA[kind](100, 65_000)))
    assert isinstance(outcome, Image.Image) and work.calls < MAX_CALLS


def test_a_png_of_iccp_chunks_each_inflating_to_a_megabyte_is_refused_before_pillow():
    """4,000 iCCP chunks of 1 KB: Pillow inflated each to 1 MB, 8.7 s of zlib for a 4 MB file."""
    outcome, work = decode_measured(with_png_metadata(encode(noise((64, 64)), "PNG"), png_metadata(b"iCCP", 4000)))
    assert isinstance(outcome, RequestError) and (outcome.status, outcome.code) == (413, "image_too_large")
    assert f"may inflate to over {MAX_PNG_INFLATED_BYTES} bytes" in outcome.message and work.opened == 0


jpeg_metadata = st.lists(
    st.tuples(st.sampled_from(sorted(JPEG_METADATA)), st.integers(1, 100), st.integers(1, 65_000)), max_size=3
)


@settings(max_examples=40, deadline=None)
@given(metadata=jpeg_metadata)
def test_whatever_metadata_a_jpeg_carries_pillows_work_at_open_is_bounded(metadata):
    """Any mix of metadata segments (EXIF at its costliest: RATIONAL arrays), in any number and size up to the
    fetch's 10 MB: refused before Pillow opens the file, or decoded (or refused as corrupt) within MAX_CALLS."""
    data = with_jpeg_metadata(
        small_jpeg(), b"".join(JPEG_METADATA[kind](count, size) for kind, count, size in metadata)
    )
    assume(len(data) <= FetchLimits.max_bytes)
    outcome, work = decode_measured(data)
    event("refused" if work.opened == 0 else "opened")
    if isinstance(outcome, RequestError) and outcome.code == "image_too_large":
        assert work.opened == 0, outcome.message
    else:
        target(float(work.calls))  # Hypothesis then looks for the costliest file that is opened
        assert work.calls < MAX_CALLS


png_kinds = st.sampled_from([b"iCCP", b"zTXt", b"iTXt", b"tEXt", b"eXIf"])


@settings(max_examples=30, deadline=None)
@given(metadata=st.lists(st.tuples(png_kinds, st.integers(1, 40)), max_size=4))
def test_whatever_metadata_a_png_carries_pillow_inflates_a_bounded_amount(metadata):
    png = encode(noise((64, 64)), "PNG")
    outcome, work = decode_measured(with_png_metadata(png, b"".join(png_metadata(k, n) for k, n in metadata)))
    event("refused" if work.opened == 0 else "opened")
    if isinstance(outcome, RequestError):
        assert outcome.code == "image_too_large" and work.opened == 0, outcome.message
    else:
        assert work.inflated <= MAX_PNG_INFLATED_BYTES and work.calls < MAX_CALLS


# -- real photos carry metadata within every bound ---------------------------------------------------------------


def test_every_photo_of_the_dataset_is_within_the_structure_bounds(shared_data):
    photos = sorted(shared_data.rglob("*.jpg"))
    assert len(photos) > 3000
    for path in photos:
        check_structure(path.read_bytes(), BUDGET)


def phone_photo() -> bytes:
    """A phone's photo as it comes: 2000x1500, EXIF (IFD0, Exif IFD with a 40 KB maker note, GPS) turning it
    upright, a 300 KB ICC profile in 5 APP2s, XMP, IPTC in Photoshop resources, an MPF index and a gain map
    (so Pillow opens it as MPO), and 2 MB of XMP extension segments (a depth map), no JFIF density."""
    y, x = np.mgrid[0:1500, 0:2000]
    photo = Image.fromarray(np.stack([x % 256, y % 256, (x // 8 + y // 8) % 256], -1).astype(np.uint8))
    exif = Image.Exif()
    exif.update({0x010F: "Phone maker", 0x0110: "Phone", 0x0112: 6, 0x011A: 72.0, 0x011B: 72.0, 0x0128: 2})
    exif.get_ifd(0x8769).update({0x927C: bytes(40_000), 0x829A: 1 / 120, 0x8827: 100})
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 22.0, 0.0), 3: "E", 4: (4.0, 53.0, 0.0)})
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    out = io.BytesIO()
    gain_map = photo.resize((500, 375))
    photo.save(
        out, "MPO", save_all=True, append_images=[gain_map], exif=exif, icc_profile=icc + bytes(300_000), xmp=xmp
    )
    iptc = jpeg_segment(0xED, photoshop_resources(2_000))
    return with_jpeg_metadata(out.getvalue(), iptc + JPEG_METADATA["xmp extension"](32, 65_000))


def test_a_phone_photo_with_all_its_metadata_decodes_reduced_and_upright():
    data = phone_photo()
    image, work = decode_measured(data, at_least=260)
    assert isinstance(image, Image.Image) and image.format == "MPO" and image.size == (500, 375)
    assert pixels(image, 260, "bilinear").shape == (260, 260, 3) and work.calls < MAX_CALLS
    assert Image.open(io.BytesIO(data)).getexif()[0x0112] == 6


def test_a_png_with_an_icc_profile_and_raw_exif_and_xmp_profiles_decodes():
    png = png_with_raw_profile(noise((300, 200)), exif_of_rationals(60_000))  # ImageMagick's zTXt
    png = with_png_metadata(png, png_metadata(b"iCCP", 1) + png_metadata(b"iTXt", 1) + png_metadata(b"zTXt", 3))
    image, work = decode_measured(png)
    assert isinstance(image, Image.Image) and image.size == (300, 200) and work.inflated <= MAX_PNG_INFLATED_BYTES
