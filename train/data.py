"""The dataset on disk, and how one image file becomes a model input.

A dataset folder holds train/, validation/ and test/, one sub-folder per
class. Class names are the sorted folder names, so the label order
(dress=0 ... t-shirt=9) is the same on every machine and in every split.
"""

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from lambda_fn.errors import RequestError
from lambda_fn.preprocess import ACCEPTED_FORMATS, decode_image, pixels
from lambda_fn.settings import DEFAULT_MAX_DECODED_BYTES
from project.paths import ARTIFACTS

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"  # the dataset and weights a real user downloads
CACHE = ARTIFACTS / "cache"  # the activation cache (train/features.py)
SHARED_DATA = SHARED / "data" / "clothing-dataset-small"
DATASET_URL = "https://github.com/alexeygrigorev/clothing-dataset-small"
SPLITS = ("train", "validation", "test")
# what a dataset's images may be: the suffixes Pillow registers for the formats the service decodes
IMAGE_SUFFIXES = {suffix for suffix, kind in Image.registered_extensions().items() if kind in ACCEPTED_FORMATS}


class DatasetError(ValueError):
    """The dataset folder is not usable; the message says why and where."""


@dataclass(frozen=True)
class Item:
    path: Path
    label: int


def default_data_dir() -> Path:
    """$FASHION_DATA, else the copy beside the project, else ./clothing-dataset-small."""
    if "FASHION_DATA" in os.environ:
        return Path(os.environ["FASHION_DATA"])
    return SHARED_DATA if SHARED_DATA.is_dir() else REPO_ROOT / "clothing-dataset-small"


def scan_dataset(root: Path) -> tuple[list[str], dict[str, list[Item]]]:
    """List every split's image files; class names are the sorted folder names."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist; get it with: git clone {DATASET_URL}")
    classes_by_split = {}
    for split in SPLITS:
        if not (root / split).is_dir():
            raise DatasetError(f"dataset {root} has no '{split}' folder; expected {', '.join(SPLITS)}")
        classes_by_split[split] = sorted(d.name for d in (root / split).iterdir() if d.is_dir())
    classes = classes_by_split["train"]
    if not classes:
        raise DatasetError(f"{root / 'train'} has no class folders")
    for split, names in classes_by_split.items():
        if names != classes:
            raise DatasetError(f"classes differ between splits: train has {classes}, {split} has {names}")
    items: dict[str, list[Item]] = {}
    for split in SPLITS:
        items[split] = []
        for label, name in enumerate(classes):
            files = sorted(p for p in (root / split / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise DatasetError(f"class '{name}' has no images in {root / split / name}")
            items[split] += [Item(p, label) for p in files]
    return classes, items


def load_image(path: Path, size: int, interpolation: str) -> np.ndarray:
    """A file's pixels exactly as the Lambda makes them from its bytes (lambda_fn/preprocess.py): upright, RGB,
    stretched to size x size with the named filter. Returns uint8 HxWx3."""
    return pixels(decode_image(Path(path).read_bytes(), DEFAULT_MAX_DECODED_BYTES, at_least=size), size, interpolation)


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_images(items: list[Item], size: int, interpolation: str):
    """Decode every item, skipping unreadable files with a warning.

    Returns (images uint8 NxHxWx3, kept items, skipped paths); callers check
    with check_classes_present that no class was emptied.
    """
    images, kept, skipped = [], [], []
    for item in items:
        try:
            images.append(load_image(item.path, size, interpolation))
            kept.append(item)
        except (OSError, RequestError) as err:  # an unreadable file, or one the service would refuse
            log.warning("skipping %s: not a readable image (%s)", item.path, err)
            skipped.append(item.path)
    return np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8), kept, skipped


def check_classes_present(kept: list[Item], items: list[Item], classes: list[str]) -> None:
    missing = sorted({i.label for i in items} - {i.label for i in kept})
    if missing:
        names = ", ".join(classes[label] for label in missing)
        raise DatasetError(f"no readable images left in class {names} after skipping unreadable files")
