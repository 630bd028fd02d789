"""What the frozen part of the base computes, once per image and view, cached on disk.

Below the first trainable layer the base is frozen and runs in inference
mode, so for a given image and augmented view its output never changes, and
on a CPU it is almost all of an epoch's cost. Each image therefore goes
through that part once and training reads the stored activations:

- cut "pooled": the frozen base's pooled 2048 features (the head alone trains);
- cut = a layer name: the input of that layer, e.g. the 19x19x728 tensor
  entering block 13 of Xception at 299x299 (the top of the base trains too).

A store is one folder per key (backbone, weights, size, resize filter, cut,
view, augmentation seed); inside it, entries are keyed by the sha256 of the
image file, so an edited image is recomputed and an unchanged one is not.
Rows are stored in float16 and read back a batch at a time (store.py): the
training process holds a batch, never the cache.
View 0 is the plain image, views 1..K augmented copies (augmentation.py).

The frozen layers never train, so nothing needs them in a training framework: on the TensorFlow backend the
fill runs them on LiteRT with every core (exported once per backbone, weights, size and cut, and kept in the
cache folder as trunk-*.tflite), faster on a CPU than Keras' predict (bench.fill) and the engine that serves.
Other backends run them in Keras. The engine is part of the key: their activations differ in rounding.

    python -m train.features --prune     # drop entries of images no longer in the dataset
"""

import argparse
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lambda_fn.preprocess import PIXELS_VERSION
from project.progress import Progress
from train.augmentation import augmented_views
from train.data import CACHE, Item, check_classes_present, default_data_dir, file_digest, read_images, scan_dataset
from train.export import export_saved_model, tflite_bytes
from train.reviewed import FOLDER as REVIEWED_PHOTOS
from train.store import ActivationStore

log = logging.getLogger(__name__)

CHUNK = 128  # images decoded and pushed through the base at a time (bounds memory at 299x299)


@dataclass(frozen=True)
class CacheKey:
    """Everything that changes a cached activation, besides the image itself."""

    backbone: str
    weights: str
    size: int
    interpolation: str
    cut: str
    view: int
    augmentation_seed: int | None  # None for view 0
    engine: str  # what ran the frozen layers (FrozenLayers.engine)
    pixels: int = PIXELS_VERSION  # how a file becomes pixels (lambda_fn/preprocess.py): a change invalidates

    def folder(self, root: Path) -> Path:
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]
        return Path(root) / f"{self.backbone}-{self.size}-{self.cut}-view{self.view}-{digest}"


def trunk_file(root: Path, backbone: str, weights: str, size: int, cut: str) -> Path:
    """Where the frozen layers, exported for LiteRT, are kept: one file per what changes them."""
    identity = json.dumps([backbone, weights, size, cut]).encode()
    return Path(root) / f"trunk-{backbone}-{size}-{cut}-{hashlib.sha256(identity).hexdigest()[:16]}.tflite"


@dataclass
class FrozenLayers:
    """The trunk as the fill runs it: preprocessed images -> activations at the cut."""

    engine: str
    run: Callable[[np.ndarray], np.ndarray]


def frozen_layers(trunk, path: Path, batch_size: int) -> FrozenLayers:
    """On LiteRT with every core where the trunk exports to TFLite (the TensorFlow backend), else in Keras."""
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        return FrozenLayers(f"keras-{backend}", lambda x: trunk.predict(x, batch_size=batch_size, verbose=0))
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            data = tflite_bytes(export_saved_model(trunk, Path(tmp) / "saved_model"))
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(data)
        os.replace(partial, path)  # whole or absent: a fill stopped mid-export leaves nothing to trust
        log.info("the frozen layers exported for LiteRT: %s (%.0f MB)", path.name, len(data) / 1e6)
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=os.cpu_count())
    interpreter.allocate_tensors()
    (entry,), (exit_,) = interpreter.get_input_details(), interpreter.get_output_details()

    def run(images: np.ndarray) -> np.ndarray:
        rows = []
        for image in images:  # one at a time: XNNPACK's threads split each image's work
            interpreter.set_tensor(entry["index"], image[None])
            interpreter.invoke()
            rows.append(interpreter.get_tensor(exit_["index"])[0])  # a copy
        return np.stack(rows)

    return FrozenLayers("litert", run)


def view_rng(seed: int, view: int, digest: str) -> np.random.Generator:
    """The same image gets the same augmented view v on every run, in any order."""
    return np.random.default_rng([seed, view, int(digest[:15], 16)])


def missing_views(digests: list[str], key: CacheKey, cache_dir: Path) -> int:
    """How many of the images (by file digest) the store for key lacks: the fill's work."""
    store = ActivationStore(key.folder(cache_dir))
    return sum(d not in store for d in digests)


def fill(
    store: ActivationStore,
    frozen: FrozenLayers,
    items: list[Item],
    digests: list[str],
    key: CacheKey,
    preprocess,
    progress: Progress | None,
) -> list[Path]:
    """Push the images missing from store through the frozen layers. Returns unreadable paths."""
    missing = [k for k, d in enumerate(digests) if d not in store]
    progress = progress or Progress(log, f"the fill of view {key.view} on {frozen.engine}", len(missing), "images")
    skipped = []
    for start in range(0, len(missing), CHUNK):
        chunk = missing[start : start + CHUNK]
        images, kept, bad = read_images([items[k] for k in chunk], key.size, key.interpolation)
        skipped += bad
        kept_digests = [digests[k] for k in chunk if items[k].path not in bad]
        if key.augmentation_seed is not None and len(images):  # an augmented view (view 0 is the image as is)
            images = augmented_views(images, [view_rng(key.augmentation_seed, key.view, d) for d in kept_digests])
        if len(images):
            store.append(kept_digests, frozen.run(preprocess(np.asarray(images, np.float32))))
        progress.advance(len(chunk))
    return skipped


def cached_activations(
    frozen: FrozenLayers,
    items: list[Item],
    classes: list[str],
    key: CacheKey,
    cache_dir: Path,
    preprocess,
    progress: Progress | None = None,
    digests: list[str] | None = None,
):
    """Fill the store for items (only what is missing; progress: one display across several stores; digests:
    the items' file digests where the caller has them). Returns (store, kept items, their digests, stats)."""
    store = ActivationStore(key.folder(cache_dir))
    digests = digests or [file_digest(i.path) for i in items]
    started, before = time.perf_counter(), len([d for d in digests if d in store])
    skipped = fill(store, frozen, items, digests, key, preprocess, progress)
    kept = [(i, d) for i, d in zip(items, digests, strict=True) if d in store]
    check_classes_present([i for i, _ in kept], items, classes)
    stats = {
        "cached": before,
        "computed": len(kept) - before,
        "skipped": [str(p) for p in skipped],
        "seconds": round(time.perf_counter() - started, 2),
    }
    return store, [i for i, _ in kept], [d for _, d in kept], stats


def prune(cache_dir: Path, data: Path) -> int:
    """Drop, from every store under cache_dir, the entries of images no longer in the dataset at data (the shop's
    reviewed photos, kept beside the stores by train/reviewed.py, stay, and so do their entries)."""
    _, items = scan_dataset(data)
    photos = Path(cache_dir) / REVIEWED_PHOTOS
    live = {file_digest(i.path) for split in items.values() for i in split} | {p.stem for p in photos.glob("*")}
    stores = [folder for folder in sorted(Path(cache_dir).glob("*/")) if folder != photos]
    freed = sum(ActivationStore(folder).prune(live) for folder in stores)
    for folder in stores:
        if not any(folder.glob("shard-*")):
            for f in folder.iterdir():
                f.unlink()
            folder.rmdir()
    return freed


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prune", action="store_true", required=True, help="remove entries of images not in --data")
    p.add_argument("--cache", type=Path, default=CACHE, help="cache folder")
    p.add_argument("--data", type=Path, default=default_data_dir(), help="dataset folder (env FASHION_DATA)")
    args = p.parse_args(argv)
    print(f"pruned {args.cache}: {prune(args.cache, args.data) / 1e6:.1f} MB freed")


if __name__ == "__main__":
    main()
