"""Image bytes -> pixels -> the model's input, in numpy and Pillow alone (no TensorFlow in the Lambda).

The one way this project makes pixels: training (train/data.py), its activation cache, the conversion gate
and the Lambda all call decode_image and pixels here. A file is decoded with its bombs refused, turned
upright (EXIF orientation, lambda_fn/orientation.py), made RGB (transparent pixels on white), and
stretched to size x size with the Pillow filter its model.json names (keras.utils.load_img's convention:
no crop). What a backbone then expects of those pixels is named in model.json too ("preprocessing") and
made by INPUTS.
"""

import io
import math
import warnings

import numpy as np
from PIL import Image

from lambda_fn.errors import RequestError
from lambda_fn.orientation import upright
from lambda_fn.structure import check_structure

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I")
BYTES_PER_PIXEL = 4  # whatever its mode, an image becomes RGB(A) before resizing: 4 bytes a pixel in Pillow
MAX_ASPECT = 20  # longest side over shortest: clothes photos are near 1:1; 1 x 40,000,000 is an attack
# Pillow itself refuses, from the header, images over twice its warning limit (None would turn that off)
PILLOW_REFUSES_OVER = 2 * (Image.MAX_IMAGE_PIXELS or 0)
# Raise this when pixels() returns anything different for any file: the activation cache is keyed by it.
# 2: EXIF orientation and transparency on white in training too (1 was training's own loader).
# 3: Orientation read alone from the raw EXIF (lambda_fn/orientation.py): malformed EXIF is as stored.
PIXELS_VERSION = 3
# Pillow's resampling filters by the names keras.utils.load_img accepts (model.json "interpolation")
RESIZES = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
# model.json "preprocessing" -> the model's input made of the pixels (float32, 0..255); train/backbone.py names
# one for each backbone, and the conversion gate checks that the one here equals the backbone's own
INPUTS = {
    "xception": lambda x: x / 127.5 - 1.0,  # keras.applications.xception.preprocess_input: [-1, 1]
    "none": lambda x: x,  # the model rescales inside itself (EfficientNetV2's include_preprocessing)
}


def decoded_bytes(image: Image.Image) -> int:
    return image.width * image.height * BYTES_PER_PIXEL


def scaled_bytes(image: Image.Image, scale: int) -> int:
    return math.ceil(image.width / scale) * math.ceil(image.height / scale) * BYTES_PER_PIXEL


def decode_image(data: bytes, max_bytes: int) -> Image.Image:
    """Bytes -> a fully decoded Pillow image, refusing non-images and bombs before decoding them.

    The budget is the memory the image takes as RGB(A), the form it passes
    through before resizing. A JPEG over it is decoded at 1/2, 1/4 or 1/8
    scale (libjpeg's own reduction) when that fits; anything else over it,
    or thinner than 1:20, is refused from its header alone. So are files
    whose structure would cost the decoder more than their pixels show
    (lambda_fn/structure.py), and formats Pillow decodes in Python (RLE BMP).
    """
    check_structure(data, max_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the explicit checks below decide
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError:  # over twice Pillow's own limit: refused before we see the size
        raise RequestError(
            "image_too_large",
            f"the image has over {PILLOW_REFUSES_OVER} pixels; at most {max_bytes // BYTES_PER_PIXEL} are accepted",
        ) from None
    except (OSError, SyntaxError, ValueError):  # UnidentifiedImageError is an OSError
        raise RequestError(
            "not_an_image", f"the data is not an image in an accepted format ({', '.join(ACCEPTED_FORMATS)})"
        ) from None
    if max(image.size) > MAX_ASPECT * min(image.size):
        raise RequestError(
            "image_too_large",
            f"the image is {image.width}x{image.height}; sides further apart than 1:{MAX_ASPECT} are not accepted",
        )
    python_decoders = {tile.codec_name for tile in image.tile} & set(Image.DECODERS)
    if python_decoders:
        raise RequestError(
            "not_an_image",
            f"{image.format} images compressed as {', '.join(sorted(python_decoders))} are not accepted "
            "(Pillow decodes them in Python, too slowly); send a JPEG, PNG or WebP",
        )
    if decoded_bytes(image) > max_bytes and image.format == "JPEG":
        # libjpeg scales by 1/s and rounds up; draft() picks the largest s with size // s >= the size it is asked
        scale = next((s for s in (2, 4, 8) if scaled_bytes(image, s) <= max_bytes), 8)
        image.draft(image.mode, (max(image.width // scale, 1), max(image.height // scale, 1)))
    if decoded_bytes(image) > max_bytes:
        raise RequestError(
            "image_too_large",
            f"the image is {image.width}x{image.height} pixels, "
            f"{decoded_bytes(image)} bytes decoded; at most {max_bytes} "
            f"({max_bytes // BYTES_PER_PIXEL} pixels) are accepted",
        )
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as err:
        raise RequestError("not_an_image", f"the {image.format} image is truncated or corrupt ({err})") from None
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Any mode (L, LA, P, RGBA, CMYK, 16-bit ...) as 8-bit RGB.

    Transparent pixels become white, the usual background of a product
    photo, rather than whatever colour they happen to store. RGB images (all
    the training data) pass through untouched, as in load_img.
    """
    if image.mode == "RGB":
        return image
    if image.mode in SIXTEEN_BIT_MODES:  # Pillow's own conversion clips 16-bit values at 255
        image = Image.fromarray((np.asarray(image, dtype=np.float32) / 257).round().astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))  # one RGB copy and the alpha band, not three RGBA copies
        return white
    return image.convert("RGB")


def pixels(image: Image.Image, size: int, interpolation: str) -> np.ndarray:
    """A decoded image -> uint8 size x size x 3: upright, RGB, stretched with the named filter."""
    rgb = to_rgb(upright(image))  # phone photos store their rotation in EXIF
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), RESIZES[interpolation])
    return np.asarray(rgb, dtype=np.uint8)


def model_input(image: Image.Image, size: int, interpolation: str, preprocessing: str) -> np.ndarray:
    """A decoded image -> the model's input: float32, with a batch axis."""
    return INPUTS[preprocessing](pixels(image, size, interpolation).astype(np.float32))[np.newaxis]
