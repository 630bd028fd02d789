import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from PIL import Image

from harness.inputs import lossless_jpeg
from lambda_fn import settings
from lambda_fn.errors import RequestError
from lambda_fn.preprocess import PIXELS_VERSION, InputSpec, decode_image, pixels, to_rgb

MAX_BYTES = settings.load({}).max_decoded_bytes  # the service's default budget
XCEPTION_71 = InputSpec(71, "bilinear", (127.5,) * 3, (127.5,) * 3)  # the tiny models' input: [-1, 1]


@pytest.mark.tensorflow
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest", "bicubic"])
def test_serving_input_is_training_input_on_real_images(real_images, interpolation):
    """The Lambda's input spec on its pixels == the backbone's own preprocessing (Keras) of the training loader's
    pixels, to float32 rounding ((x - 127.5) / 127.5 rounds once, Keras' x / 127.5 - 1 twice)."""
    from train.backbone import XCEPTION
    from train.data import load_image

    spec = XCEPTION.input_spec(150, interpolation)
    for path in real_images:
        served = spec.model_input(path.read_bytes(), MAX_BYTES)
        trained = XCEPTION.preprocess(load_image(path, 150, interpolation).astype(np.float32))
        assert served.dtype == np.float32 and served.shape == (1, 150, 150, 3)
        np.testing.assert_allclose(served[0], trained, rtol=0, atol=2e-7)


@pytest.mark.parametrize(
    "name", ["gray.png", "gray-alpha.png", "rgba.png", "palette.png", "cmyk.jpg", "gray16.png", "photo.webp"]
)
def test_every_mode_becomes_rgb_in_range(image_files, name):
    x = XCEPTION_71.model_input(image_files[name].read_bytes(), MAX_BYTES)
    assert x.shape == (1, 71, 71, 3) and x.dtype == np.float32
    assert -1.0 <= x.min() < x.max() <= 1.0


def test_transparent_pixels_become_white():
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert np.asarray(to_rgb(clear)).min() == 255


def test_sixteen_bit_grey_keeps_its_range(image_files):
    rgb = np.asarray(to_rgb(decode_image(image_files["gray16.png"].read_bytes(), MAX_BYTES, at_least=None)))
    assert rgb.min() == 0 and rgb.max() == 255  # Pillow's own conversion would clip nearly all to 255
    assert (rgb < 128).mean() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize(
    "name, code, words",
    [
        ("text.jpg", "not_an_image", "not an image in an accepted format (JPEG, PNG, WEBP, GIF, BMP)"),
        ("truncated.jpg", "not_an_image", "truncated or corrupt"),
        ("bomb.png", "image_too_large", "over 178956970 pixels; at most 16777216 are accepted"),
        ("big.png", "image_too_large", "8000x6000 pixels, 192000000 bytes decoded; at most 67108864"),
        ("rgba-6300.png", "image_too_large", "6300x6300 pixels, 158760000 bytes decoded; at most 67108864"),
        ("thin.png", "image_too_large", "1x30000; sides further apart than 1:20 are not accepted"),
    ],
)
def test_bad_images_are_refused_with_a_reason(image_files, name, code, words):
    with pytest.raises(RequestError) as caught:
        decode_image(image_files[name].read_bytes(), MAX_BYTES, at_least=None)
    assert caught.value.code == code and words in caught.value.message


@pytest.mark.parametrize("name", ["big.png", "rgba-6300.png", "thin.png", "bomb.png"])
def test_what_is_refused_is_refused_before_decoding(image_files, name, monkeypatch):
    from PIL import ImageFile

    def no_decoding(self):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(RequestError) as caught:
        decode_image(image_files[name].read_bytes(), MAX_BYTES, at_least=None)
    assert caught.value.code == "image_too_large"


def test_a_jpeg_over_the_budget_is_decoded_reduced(tmp_path):
    from PIL import Image

    photo = tmp_path / "24mp.jpg"
    Image.new("RGB", (6000, 4000), (120, 60, 30)).save(photo, quality=80)  # 96 MB decoded in full
    image = decode_image(photo.read_bytes(), MAX_BYTES, at_least=None)
    assert image.size == (3000, 2000)  # libjpeg's 1/2 scale: 24 MB
    assert XCEPTION_71.of_image(image).shape == (1, 71, 71, 3)


def test_training_reads_a_phone_photo_upright_and_a_cutout_on_white(tmp_path):
    """train/data.py's loader is the serving one: EXIF orientation and transparency handled the same."""
    from train.data import load_image

    tall = np.zeros((40, 20, 3), np.uint8)
    tall[:10] = 255  # a white band at the top of the upright photo
    sideways = Image.fromarray(np.ascontiguousarray(np.rot90(tall, k=1)))  # as the camera stored it: 20 x 40
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    sideways.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    upright = load_image(tmp_path / "phone.jpg", 40, "nearest")  # stretched to 40 x 40: the band is rows 0-9
    assert upright[:8].mean() > 200 and upright[12:].mean() < 50, "the photo was read sideways"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "cutout.png")
    assert load_image(tmp_path / "cutout.png", 8, "nearest").min() == 255


def test_an_input_spec_normalises_per_channel_in_its_order():
    pixels = np.array([[[10, 20, 30]]], np.uint8)
    rgb = InputSpec(1, "bilinear", (10.0, 20.0, 30.0), (1.0, 2.0, 5.0))
    np.testing.assert_array_equal(rgb.normalise(pixels), [[[0.0, 0.0, 0.0]]])
    bgr = InputSpec(1, "bilinear", (30.0, 20.0, 10.0), (1.0, 1.0, 1.0), channels="BGR")  # caffe-style
    np.testing.assert_array_equal(bgr.normalise(pixels), [[[0.0, 0.0, 0.0]]])
    assert InputSpec.from_json(rgb.to_json()) == rgb and rgb.normalise(pixels).dtype == np.float32


@examples(max_examples=25, deadline=None)
@given(
    width=st.integers(8, 2400), height=st.integers(8, 2400), at_least=st.sampled_from([None, 71, 150, 224, 260, 299])
)
def test_a_jpeg_is_decoded_no_smaller_than_the_model_needs(width, height, at_least):
    """Both decoded sides stay >= the input size, at the largest reduction that keeps them so (or full size)."""
    from lambda_fn.preprocess import JPEG_SCALES, MAX_ASPECT

    assume(max(width, height) <= MAX_ASPECT * min(width, height))  # thinner ones are refused from the header
    data = io.BytesIO()
    Image.new("RGB", (width, height), (90, 140, 200)).save(data, "JPEG")
    image = decode_image(data.getvalue(), MAX_BYTES, at_least=at_least)
    scale = next(s for s in JPEG_SCALES if image.size == (-(-width // s), -(-height // s)))  # libjpeg rounds up
    if at_least is None or min(width, height) < 2 * at_least:
        assert image.size == (width, height)
        return
    assert min(image.size) >= at_least
    assert scale == JPEG_SCALES[-1] or min(width, height) // (2 * scale) < at_least  # the next one would not fit


def test_the_reduced_decode_makes_nearly_the_full_decodes_pixels(real_images):
    """A 4x upscaled real photo (about 3.4 MP): decoded at 1/4 in the DCT domain and stretched, it is within a
    level or so of the full decode on average (bench.request_split measures the time it saves)."""
    from lambda_fn.preprocess import pixels

    for path in real_images[:3]:
        photo = Image.open(path)
        big = io.BytesIO()
        photo.resize((photo.width * 4, photo.height * 4), Image.Resampling.LANCZOS).save(big, "JPEG", quality=90)
        reduced = decode_image(big.getvalue(), MAX_BYTES, at_least=260)
        full = decode_image(big.getvalue(), MAX_BYTES, at_least=None)
        assert reduced.size == (photo.width, photo.height) and full.size == (photo.width * 4, photo.height * 4)
        a, b = (pixels(image, 260, "bilinear").astype(np.float32) for image in (reduced, full))
        assert np.abs(a - b).mean() < 1.5


def test_an_mpo_is_decoded_reduced_to_the_pixels_of_its_jpeg():
    """#39 R4-3: phones' gain-map photos carry an MPF index (APP2), and Pillow opens them as MPO: they skipped the
    reduction (0.17 s, +68 MB for a 4000x4000). Now the same scale and pixels as the file without its index."""
    y, x = np.mgrid[0:4000, 0:4000]
    photo = Image.fromarray(np.stack([x % 251, y % 241, (x // 16 + y // 16) % 256], -1).astype(np.uint8))
    out = io.BytesIO()
    photo.save(out, "MPO", save_all=True, append_images=[photo.resize((500, 500))], quality=80)
    mpo = out.getvalue()
    index = mpo.index(b"\xff\xe2")  # the MPF segment: without it the same bytes open as a plain JPEG
    jpeg = mpo[:index] + mpo[index + 2 + int.from_bytes(mpo[index + 2 : index + 4], "big") :]
    assert Image.open(io.BytesIO(mpo)).format == "MPO" and Image.open(io.BytesIO(jpeg)).format == "JPEG"
    for at_least in (224, 600):
        reduced, plain = (decode_image(data, MAX_BYTES, at_least=at_least) for data in (mpo, jpeg))
        assert reduced.size == plain.size == (4000 // (8 if at_least == 224 else 4),) * 2
        np.testing.assert_array_equal(np.asarray(reduced), np.asarray(plain))


def gradient_with_detail(width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // (width - 1), y * 255 // (height - 1), (x * y) % 256], -1).astype(np.uint8)
    rgb[height // 4 : height // 2, width // 4 : width // 2] = np.random.default_rng(0).integers(0, 256, 3)
    return rgb


def test_a_lossless_jpeg_is_decoded_in_full_as_libjpeg_cannot_reduce_it():
    """#39 R4-2: libjpeg refuses to scale a lossless (SOF3) JPEG: reduced, it was a 422 "truncated or corrupt".
    Now decoded at full size (its pixels exactly), within the same budget, and refused by name beyond it."""
    source = gradient_with_detail(640, 600)
    data = lossless_jpeg(source)
    image = decode_image(data, MAX_BYTES, at_least=260)  # 260 would reduce any other JPEG of 600 to 1/2
    assert image.size == (640, 600)
    np.testing.assert_array_equal(np.asarray(image), source)
    with pytest.raises(RequestError) as caught:
        decode_image(data, 640 * 600 * 4 - 1, at_least=260)
    assert (
        caught.value.code == "image_too_large" and "a lossless JPEG cannot be decoded reduced" in caught.value.message
    )
    grey = gradient_with_detail(64, 48)[..., 0]
    np.testing.assert_array_equal(np.asarray(decode_image(lossless_jpeg(grey), MAX_BYTES, at_least=None)), grey)


# -- PIXELS_VERSION, pinned (#38 item 5) -------------------------------------------------------------------------

SAMPLES = Path(__file__).parent / "pixels"  # written by tests/lambda_fn/pixels/make.py, committed
SIZES = ((71, "bilinear"), (224, "bicubic"))
# sha256 of pixels() (after decode_image at that size) on every sample at SIZES, by the PIXELS_VERSION that made
# them: a change of what pixels() returns needs a new version, which the activation cache and bundles are keyed by
PIXELS_DIGESTS = {5: "71f2f585f29bff630fd39fb2c68d3baf1c02c76bbb594c33a2f7ef7d73a04596"}


def sample_images() -> list[Path]:
    return sorted(path for path in SAMPLES.iterdir() if path.is_file() and path.suffix != ".py")


def pixels_digest() -> str:
    digest = hashlib.sha256()
    for path in sample_images():
        for size, interpolation in SIZES:
            digest.update(
                pixels(decode_image(path.read_bytes(), MAX_BYTES, at_least=size), size, interpolation).tobytes()
            )
    return digest.hexdigest()


def test_pixels_version_pins_what_pixels_makes():
    assert PIXELS_DIGESTS.get(PIXELS_VERSION) == pixels_digest(), (
        "pixels() changed: bump PIXELS_VERSION and add its digest"
    )


def test_the_pinned_samples_take_every_path():
    """The samples hold what their names say: the digest covers reduction, MPO, lossless, rotation, 16 bits..."""
    decoded = {path.name: decode_image(path.read_bytes(), MAX_BYTES, at_least=71) for path in sample_images()}
    assert len(decoded) == 10 and max(path.stat().st_size for path in sample_images()) <= 20 * 1024
    assert decoded["large.jpg"].size == decoded["gain-map.jpg"].size == (160, 120)  # 640x480 at 1/4
    assert decoded["gain-map.jpg"].format == "MPO" and decoded["lossless.jpg"].size == (80, 60)
    assert decoded["exif-rotated.jpg"].getexif()[0x0112] == 6 and decoded["gray16.png"].mode in ("I;16", "I")
    assert decoded["transparent.png"].mode == "RGBA" and decoded["progressive.jpg"].info["progressive"]
