import numpy as np
import pytest
from PIL import Image

from lambda_fn.errors import RequestError
from lambda_fn.preprocess import decode_image, to_rgb, xception_input

MAX_PIXELS = 40_000_000


@pytest.mark.tensorflow
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest", "bicubic"])
def test_serving_input_is_bit_identical_to_training_on_real_images(real_images, interpolation):
    """The Lambda's numpy path == xception.preprocess_input(training loader), exactly."""
    from keras.applications.xception import preprocess_input
    from train.data import load_image

    for path in real_images:
        served = xception_input(decode_image(path.read_bytes(), MAX_PIXELS), 150, interpolation)
        trained = preprocess_input(load_image(path, 150, interpolation).astype(np.float32))
        assert served.dtype == np.float32 and served.shape == (1, 150, 150, 3)
        np.testing.assert_array_equal(served[0], trained)


@pytest.mark.parametrize("name", ["gray.png", "gray-alpha.png", "rgba.png", "palette.png", "cmyk.jpg",
                                  "gray16.png", "photo.webp"])
def test_every_mode_becomes_rgb_in_range(image_files, name):
    x = xception_input(decode_image(image_files[name].read_bytes(), MAX_PIXELS), 71, "bilinear")
    assert x.shape == (1, 71, 71, 3) and x.dtype == np.float32
    assert -1.0 <= x.min() < x.max() <= 1.0


def test_transparent_pixels_become_white():
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert np.asarray(to_rgb(clear)).min() == 255


def test_sixteen_bit_grey_keeps_its_range(image_files):
    rgb = np.asarray(to_rgb(decode_image(image_files["gray16.png"].read_bytes(), MAX_PIXELS)))
    assert rgb.min() == 0 and rgb.max() == 255  # Pillow's own conversion would clip nearly all to 255
    assert (rgb < 128).mean() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("name, code, words", [
    ("text.jpg", "not_an_image", "not an image in an accepted format (JPEG, PNG, WEBP, GIF, BMP)"),
    ("truncated.jpg", "not_an_image", "truncated or corrupt"),
    ("bomb.png", "image_too_large", "at most 40000000 are accepted"),
    ("big.png", "image_too_large", "8000x6000 = 48000000 pixels; at most 40000000 are accepted"),
])
def test_bad_images_are_refused_with_a_reason(image_files, name, code, words):
    with pytest.raises(RequestError) as caught:
        decode_image(image_files[name].read_bytes(), MAX_PIXELS)
    assert caught.value.code == code and words in caught.value.message
