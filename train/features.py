"""What the frozen part of the base computes, once per image and view, cached on disk.

Below the first trainable layer the base is frozen and runs in inference
mode, so for a given image and augmented view its output never changes, and
on a CPU it is almost all of an epoch's cost. Each image therefore goes
through that part once and training reads the stored activations:

- cut "pooled": the frozen base's pooled 2048 features (the head alone trains);
- cut = a layer name: the input of that layer, e.g. the 19x19x728 tensor
  entering block 13 of Xception at 299x299 (the top of the base trains too).

A store is one folder per key (backbone, weights, size, resize filter, cut,
view, augmentation and its seed); inside it, entries are keyed by the sha256 of the
image file, so an edited image is recomputed and an unchanged one is not.
Rows are stored in float16 and read back a batch at a time (store.py): the
training process holds a batch, never the cache.
View 0 is the plain image, views 1..K augmented copies (augmentation.py). A run reads the training split's K
views, image i in epoch e through view (e + i) mod K, and validation's view 0 (plan_fill, fill_stores).

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
from typing import TYPE_CHECKING

import numpy as np

from lambda_fn.preprocess import PIXELS_VERSION
from project.progress import Progress
from train.augmentation import AUGMENTATIONS, COURSE, augmented_views
from train.data import CACHE, Item, check_classes_present, default_data_dir, file_digest, read_images, scan_dataset
from train.export import export_saved_model, tflite_bytes
from train.reviewed import FOLDER as REVIEWED_PHOTOS
from train.store import ActivationStore

if TYPE_CHECKING:
    import keras

    from train.config import TrainConfig

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
    augmentation: str | None = None  # the views' (augmentation.py's AUGMENTATIONS); None for view 0

    def folder(self, root: Path) -> Path:
        identity = asdict(self)
        if identity["augmentation"] in (None, COURSE.name):  # as keys were before there was a choice: kept valid
            del identity["augmentation"]
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
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
    normalise: Callable[[np.ndarray], np.ndarray],
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
            rngs = [view_rng(key.augmentation_seed, key.view, d) for d in kept_digests]
            images = augmented_views(images, rngs, AUGMENTATIONS[key.augmentation or COURSE.name])
        if len(images):
            store.append(kept_digests, frozen.run(normalise(images)))
        progress.advance(len(chunk))
    return skipped


def cached_activations(
    frozen: FrozenLayers,
    items: list[Item],
    classes: list[str],
    key: CacheKey,
    cache_dir: Path,
    normalise: Callable[[np.ndarray], np.ndarray],
    progress: Progress | None = None,
    digests: list[str] | None = None,
):
    """Fill the store for items (only what is missing; normalise: the run's InputSpec.normalise; progress: one
    display across several stores; digests: the items' file digests where the caller has them).
    Returns (store, kept items, their digests, stats)."""
    store = ActivationStore(key.folder(cache_dir))
    digests = digests or [file_digest(i.path) for i in items]
    started, before = time.perf_counter(), len([d for d in digests if d in store])
    skipped = fill(store, frozen, items, digests, key, normalise, progress)
    kept = [(i, d) for i, d in zip(items, digests, strict=True) if d in store]
    check_classes_present([i for i, _ in kept], items, classes)
    stats = {
        "cached": before,
        "computed": len(kept) - before,
        "skipped": [str(p) for p in skipped],
        "seconds": round(time.perf_counter() - started, 2),
    }
    return store, [i for i, _ in kept], [d for _, d in kept], stats


def cache_keys(config: "TrainConfig", weights_id: str, cut: str, engine: str) -> dict[tuple[str, int], CacheKey]:
    """The stores a run reads, by (split, view): the training split's augmented views 1..K (view 0 alone
    without augmentation), then validation's view 0 (the plain view: one store whatever the augmentation)."""
    views = range(1, config.views + 1) if config.augment else [0]
    return {
        (split, view): CacheKey(
            config.backbone,
            weights_id,
            config.size,
            config.interpolation,
            cut,
            view,
            config.augmentation_seed if view else None,
            engine,
            augmentation=config.augmentation if view else None,
        )
        for split, view in [*[("train", v) for v in views], ("validation", 0)]
    }


@dataclass
class FillPlan:
    """The stores a run reads (cache_keys) and what they lack."""

    frozen: FrozenLayers
    keys: dict[tuple[str, int], CacheKey]
    digests: dict[str, list[str]]  # split -> its files' sha256, read once
    work: int  # image-views missing from the stores: what the fill computes


def plan_fill(config: "TrainConfig", trunk: "keras.Model", cut: str, items, weights_id: str) -> FillPlan:
    """The frozen layers below cut ready to run (exported once), the stores' keys, and the fill's work."""
    frozen = frozen_layers(
        trunk, trunk_file(config.cache, config.backbone, weights_id, config.size, cut), config.batch_size
    )
    keys = cache_keys(config, weights_id, cut, frozen.engine)
    digests = {split: [file_digest(i.path) for i in items[split]] for split in ("train", "validation")}
    work = sum(missing_views(digests[split], key, config.cache) for (split, _), key in keys.items())
    return FillPlan(frozen, keys, digests, work)


@dataclass
class CachedSplit:
    """A split's filled stores, one per view, and the images they hold."""

    stores: list[ActivationStore]
    kept: list[Item]
    digests: list[str]  # the kept images' file digests: their rows' keys in every store
    stats: list[dict]  # each store's fill (cached_activations)

    def repeated(self, counts: np.ndarray) -> "CachedSplit":
        """The split with kept image k appearing counts[k] times in a row: copy c of an image at i is seen through
        view (epoch + i + c) mod K, so the copies of an epoch see different views (all of them if counts <= K)."""
        order = np.repeat(np.arange(len(self.kept)), counts)
        return CachedSplit(self.stores, [self.kept[k] for k in order], [self.digests[k] for k in order], self.stats)

    def rows(self, indices: np.ndarray, epoch: int) -> np.ndarray:
        """The activations of kept images `indices` in `epoch`: image i seen through view (epoch + i) mod K."""
        rows = np.empty((len(indices), *self.stores[0].row_shape), np.float32)
        view_of = (epoch + indices) % len(self.stores)
        for v, store in enumerate(self.stores):
            mine = np.flatnonzero(view_of == v)
            if len(mine):
                rows[mine] = store.read([self.digests[indices[k]] for k in mine])
        return rows


def fill_stores(config: "TrainConfig", plan: FillPlan, classes: list[str], items) -> dict[str, CachedSplit]:
    """Fill what the plan's stores lack (one progress display for all), and each split's stores."""
    progress = Progress(log, f"the cache's fill on {plan.frozen.engine}", plan.work, "image-views")
    splits = {}
    for split in ("train", "validation"):
        filled = [
            cached_activations(
                plan.frozen,
                items[split],
                classes,
                key,
                config.cache,
                config.input_spec.normalise,
                progress,
                plan.digests[split],
            )
            for (of, _), key in plan.keys.items()
            if of == split
        ]
        digests = filled[0][2]
        if any(f[2] != digests for f in filled):
            raise RuntimeError(f"the cached views of the {split} split disagree on which images are readable")
        splits[split] = CachedSplit([f[0] for f in filled], filled[0][1], digests, [f[3] for f in filled])
    return splits


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
