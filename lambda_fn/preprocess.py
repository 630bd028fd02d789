"""Image bytes -> pixels -> the model's input, in numpy and Pillow alone (no TensorFlow in the Lambda).

The one way this project makes pixels: training (train/data.py), its activation cache, the conversion gate
and the Lambda all call decode_image and pixels here. A file is decoded with its bombs refused, turned
upright (EXIF orientation, lambda_fn/orientation.py), made RGB (transparent pixels on white), and
stretched to size x size with the Pillow filter its model.json names (keras.utils.load_img's convention:
no crop). What a backbone then expects of those pixels is data too: an InputSpec (size, filter, per-channel
mean and std, channel order, this code's PIXELS_VERSION), which the backbone registry declares
(train/backbone.py), model.json records verbatim ("input") and the Lambda applies: no backbone has code here.
"""

import io
import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from lambda_fn.errors import RequestError
from lambda_fn.orientation import upright
from lambda_fn.structure import check_structure

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
# Pillow opens a JPEG that carries an MPF index (APP2: phones' gain-map and burst photos) as MPO: its first image
# is the JPEG itself, decoded the same way
JPEG_FORMATS = ("JPEG", "MPO")
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I")
BYTES_PER_PIXEL = 4  # whatever its mode, an image becomes RGB(A) before resizing: 4 bytes a pixel in Pillow
MAX_ASPECT = 20  # longest side over shortest: clothes photos are near 1:1; 1 x 40,000,000 is an attack
# Pillow itself refuses, from the header, images over twice its warning limit (None would turn that off)
PILLOW_REFUSES_OVER = 2 * (Image.MAX_IMAGE_PIXELS or 0)
# Raise this when pixels() returns anything different for any file: the activation cache is keyed by it.
# 2: EXIF orientation and transparency on white in training too (1 was training's own loader).
# 3: Orientation read alone from the raw EXIF (lambda_fn/orientation.py): malformed EXIF is as stored.
# 4: a JPEG is decoded reduced in the DCT domain (1/2, 1/4, 1/8) to no less than the model's input size.
# 5: an MPO (a JPEG with an MPF index) is decoded reduced as its JPEG is (it was decoded in full); a lossless
#    JPEG, which libjpeg cannot reduce, in full (it was refused as corrupt).
PIXELS_VERSION = 5
JPEG_SCALES = (1, 2, 4, 8)  # the reductions libjpeg decodes at: 1/s of each side
# Pillow's resampling filters by the names keras.utils.load_img accepts (model.json "interpolation")
RESIZES = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
CHANNEL_ORDERS = ("RGB", "BGR")  # BGR: the Caffe-trained backbones (ResNet50's "caffe" mode)


@dataclass(frozen=True)
class InputSpec:
    """A model's input, as data (model.json "input"; timm's pretrained_cfg, torchvision's weight transforms):
    a file's pixels as `pixels` makes them (upright RGB 0..255, by the code of `pixels_version`), stretched to
    size x size with the Pillow filter `interpolation`, in `channels` order, then (x - mean) / std per channel."""

    size: int
    interpolation: str  # a RESIZES name
    mean: tuple[float, float, float]  # per channel, in `channels` order, on the 0..255 scale
    std: tuple[float, float, float]
    channels: str = "RGB"
    pixels_version: int = PIXELS_VERSION

    def __post_init__(self):
        problems = []
        if not (isinstance(self.size, int) and self.size >= 1):
            problems.append(f"size {self.size!r} is not a whole number of pixels")
        if self.interpolation not in RESIZES:
            problems.append(f"interpolation {self.interpolation!r} is not one of {sorted(RESIZES)}")
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != 3 or not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
                problems.append(f"{name} {values!r} is not three numbers")
        if len(self.std) == 3 and 0 in self.std:
            problems.append(f"std {self.std!r} has a zero")
        if self.channels not in CHANNEL_ORDERS:
            problems.append(f"channels {self.channels!r} is not one of {CHANNEL_ORDERS}")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_json(cls, data: dict) -> "InputSpec":
        """model.json's "input", refusing unknown fields, missing ones, and pixels made by other code."""
        known = {"size", "interpolation", "mean", "std", "channels", "pixels_version"}
        unknown, missing = sorted(set(data) - known), sorted(known - set(data))
        if unknown or missing:
            raise ValueError(f"input spec: unknown fields {unknown}, missing {missing} (it has {sorted(data)})")
        if data["pixels_version"] != PIXELS_VERSION:
            raise ValueError(
                f"the bundle was converted and gated with pixels of version {data['pixels_version']}; this code "
                f"makes version {PIXELS_VERSION} (lambda_fn/preprocess.py): convert the checkpoint again"
            )
        return cls(**{**data, "mean": tuple(data["mean"]), "std": tuple(data["std"])})

    def to_json(self) -> dict:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 or float pixels (..., 3), RGB -> float32 (x - mean) / std in this spec's channel order."""
        x = np.asarray(pixels, np.float32)
        x = x[..., ::-1] if self.channels == "BGR" else x
        return ((x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)).astype(np.float32)

    def model_input(self, data: bytes, max_bytes: int) -> np.ndarray:
        """An image file's bytes -> the model's input: float32, with a batch axis (decoded no larger than
        this size needs, within max_bytes: decode_image)."""
        return self.of_image(decode_image(data, max_bytes, at_least=self.size))

    def of_image(self, image: Image.Image) -> np.ndarray:
        """A decoded image (decode_image with at_least=size) -> the model's input."""
        return self.normalise(pixels(image, self.size, self.interpolation))[np.newaxis]


def decoded_bytes(image: Image.Image) -> int:
    return image.width * image.height * BYTES_PER_PIXEL


def scaled_bytes(image: Image.Image, scale: int) -> int:
    return math.ceil(image.width / scale) * math.ceil(image.height / scale) * BYTES_PER_PIXEL


def decode_image(data: bytes, max_bytes: int, *, at_least: int | None) -> Image.Image:
    """Bytes -> a decoded Pillow image, refusing non-images and bombs before decoding them.

    A JPEG (or MPO) is decoded at the smallest of libjpeg's scales (1, 1/2, 1/4,
    1/8) that keeps both sides at least `at_least` pixels (the model's input size;
    None: full size), a lossless JPEG (which libjpeg cannot reduce) in full.
    The reduction happens in the DCT domain, before the
    pixels exist: a 2.6 MP phone photo is decoded and resized in a third of
    the time, where with EfficientNet-Lite2 those steps were over a third of
    the request (bench.request_split).
    Training and the gate decode the same way (the dataset's 400x533 photos
    are not reduced at 299, 260 or 224; 1/2 at 200 and below, as at 150).

    The budget is the memory the image takes as RGB(A), the form it passes
    through before resizing. A JPEG over it is decoded at 1/2, 1/4 or 1/8
    scale when that fits; anything else over it,
    or thinner than 1:20, is refused from its header alone. So are files
    whose structure would cost the decoder more than their pixels show
    (lambda_fn/structure.py), and formats Pillow decodes in Python (RLE BMP).
    """
    structure = check_structure(data, max_bytes)
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
    if image.format in JPEG_FORMATS and not structure.lossless:
        scale = jpeg_scale(image, max_bytes, at_least)
        if scale > 1:  # libjpeg scales by 1/s and rounds up; draft() picks the largest s with size // s >= asked
            image.draft(image.mode, (max(image.width // scale, 1), max(image.height // scale, 1)))
    if decoded_bytes(image) > max_bytes:
        raise RequestError(
            "image_too_large",
            f"the image is {image.width}x{image.height} pixels, "
            f"{decoded_bytes(image)} bytes decoded; at most {max_bytes} "
            f"({max_bytes // BYTES_PER_PIXEL} pixels) are accepted"
            + ("; a lossless JPEG cannot be decoded reduced" if structure.lossless else ""),
        )
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as err:
        raise RequestError("not_an_image", f"the {image.format} image is truncated or corrupt ({err})") from None
    return image


def jpeg_scale(image: Image.Image, max_bytes: int, at_least: int | None) -> int:
    """The reduction to decode a JPEG at: the largest that keeps both sides >= at_least, or more if the
    budget needs it."""
    fits = [s for s in JPEG_SCALES if at_least is not None and min(image.size) // s >= at_least] or [1]
    within_budget = next((s for s in JPEG_SCALES if scaled_bytes(image, s) <= max_bytes), JPEG_SCALES[-1])
    return max(fits[-1], within_budget)


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
