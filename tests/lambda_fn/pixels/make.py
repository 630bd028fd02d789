"""Writes the sample images whose pixels() digest pins PIXELS_VERSION (tests/lambda_fn/test_preprocess.py).

    .venv/bin/python -m tests.lambda_fn.pixels.make

One file per path through decode_image and pixels: EXIF rotation, transparency, 16 bits, CMYK, a palette,
progressive, decoded reduced, an MPO, a lossless JPEG, WebP. Each is a few KB of smooth patterns with some
detail (the filters differ on it). Written once and committed: the digest is of these bytes, so rewriting them
with another Pillow or libjpeg means checking pixels() did not change before updating the digest.
"""

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from harness.inputs import lossless_jpeg

HERE = Path(__file__).parent


def pattern(width: int, height: int) -> np.ndarray:
    """uint8 RGB: gradients with a checkered band, so both smooth areas and edges are resampled."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) * 127 // (width + height)], -1)
    band = (y > height // 3) & (y < height // 2)
    rgb[band] = np.where(((x[band] // 4 + y[band] // 4) % 2)[:, None] == 1, 230, 20)
    return rgb.astype(np.uint8)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def samples() -> dict[str, bytes]:
    photo = Image.fromarray(pattern(96, 64))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: turned upright by pixels()
    alpha = Image.fromarray((pattern(64, 64)[..., 0] // 64 * 85).astype(np.uint8))
    transparent = Image.fromarray(pattern(64, 64)).convert("RGBA")
    transparent.putalpha(alpha)
    gradient = np.linspace(0, 65535, 80 * 60, dtype=np.uint16).reshape(60, 80)
    large = Image.fromarray(pattern(640, 480))  # decoded at 1/4 for the smaller input, 1/2 for the larger
    return {
        "exif-rotated.jpg": encoded(photo, "JPEG", exif=exif, quality=90),
        "transparent.png": encoded(transparent, "PNG"),
        "gray16.png": encoded(Image.fromarray(gradient), "PNG"),
        "cmyk.jpg": encoded(photo.convert("CMYK"), "JPEG", quality=90),
        "palette.gif": encoded(photo.convert("P", palette=Image.Palette.ADAPTIVE), "GIF"),
        "progressive.jpg": encoded(photo, "JPEG", progressive=True, quality=90),
        "large.jpg": encoded(large, "JPEG", quality=30),
        "gain-map.jpg": encoded(large, "MPO", save_all=True, append_images=[photo], quality=30),
        "lossless.jpg": lossless_jpeg(pattern(80, 60)),
        "photo.webp": encoded(photo, "WEBP", quality=90),
    }


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    for name, data in samples().items():
        (HERE / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")
