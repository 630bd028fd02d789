"""Generated image datasets: small, and separable by colour, so a tiny run learns something in one epoch."""

from pathlib import Path

import numpy as np
from PIL import Image

TINY_CLASSES = ["t-shirt", "dress", "hat"]  # created out of order: the label order must still be sorted
TINY_COLOURS = {"dress": (200, 30, 30), "hat": (30, 200, 30), "t-shirt": (30, 30, 200)}


def write_image(path: Path, colour, rng: np.random.Generator, size=(96, 80)) -> None:
    """A JPEG of one colour with noise and a stripe, so classes differ but images are not identical."""
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, size=(size[1], size[0], 3)), 0, 255).astype(np.uint8)
    pixels[size[1] // 3 : size[1] // 2] = 255 - pixels[size[1] // 3 : size[1] // 2]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)


def make_tiny_dataset(root: Path, per_split=(6, 3, 3), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for split, count in zip(("train", "validation", "test"), per_split, strict=True):
        for name in TINY_CLASSES:
            for k in range(count):
                write_image(root / split / name / f"{name}-{k}.jpg", TINY_COLOURS[name], rng)
    return root


def tiny_training_flags(root: Path, *flags: str, per_split=(3, 2, 2)) -> list[str]:
    """Training flags for a small run on a fresh tiny dataset under root: random base weights, 71x71, one epoch
    of each phase, the run in root/run and its cache in root/cache. Later flags win (argparse keeps the last)."""
    data = make_tiny_dataset(root / "data", per_split=per_split)
    settings = {"data": data, "weights": "none", "size": 71, "batch-size": 4, "head-epochs": 1}
    settings |= {"fine-tune-epochs": 1, "views": 2, "out": root / "run", "cache": root / "cache"}
    return [*(part for name, value in settings.items() for part in (f"--{name}", str(value))), *flags]
