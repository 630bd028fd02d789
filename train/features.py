"""Pooled features of the frozen base, computed once per image and cached on disk.

On a CPU the frozen base is over 99% of an epoch's cost, and it gives the same
output for the same image every epoch. So each image goes through the base
once per (size, interpolation, weights, view) and the head trains on the
cached 2048-number vectors.

Entries are keyed by the sha256 of the image file, so an edited image is
recomputed and an unchanged one is not; the cache file's name is a hash of
everything else that changes the features (size, interpolation, weights,
view). View 0 is the plain image, views 1..K are augmented copies.
"""

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
from keras.applications.xception import preprocess_input

from train.data import Item, augment, check_classes_present, file_digest, read_images

log = logging.getLogger(__name__)

CHUNK = 256  # images decoded and pushed through the base at a time (bounds memory at 299x299)


def cache_path(cache_dir: Path, weights_id: str, size: int, interpolation: str, view: int, seed: int) -> Path:
    fields = {"weights": weights_id, "size": size, "interpolation": interpolation, "view": view,
              "augmentation_seed": seed if view else None}
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"features-{size}-view{view}-{key}.npz"


def view_rng(seed: int, view: int, digest: str) -> np.random.Generator:
    """The same image gets the same augmented view v on every run, in any order."""
    return np.random.default_rng([seed, view, int(digest[:15], 16)])


def load_cache(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    with np.load(path) as f:
        return dict(zip(f["digests"].tolist(), f["features"]))


def save_cache(path: Path, cache: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, digests=np.array(list(cache)), features=np.stack(list(cache.values())))
    os.replace(tmp, path)  # a run killed mid-write never leaves a corrupt cache


def compute_features(extractor, images: np.ndarray, batch_size: int) -> np.ndarray:
    return extractor.predict(preprocess_input(images.astype(np.float32)), batch_size=batch_size, verbose=0)


def cached_features(extractor, items: list[Item], classes: list[str], *, cache_dir: Path, weights_id: str,
                    size: int, interpolation: str, view: int, seed: int, batch_size: int, name: str):
    """Features for items (computing only the missing ones). Returns (features, kept items, stats)."""
    path = cache_path(cache_dir, weights_id, size, interpolation, view, seed)
    cache = load_cache(path)
    digests = [file_digest(i.path) for i in items]
    missing = [k for k, d in enumerate(digests) if d not in cache]
    started, skipped = time.perf_counter(), []
    for start in range(0, len(missing), CHUNK):
        chunk = missing[start:start + CHUNK]
        images, _, bad = read_images([items[k] for k in chunk], size, interpolation)
        skipped += bad
        kept_digests = [digests[k] for k in chunk if items[k].path not in bad]
        if view and len(images):
            images = np.stack([augment(im, view_rng(seed, view, d)) for im, d in zip(images, kept_digests)])
        if len(images):
            cache.update(zip(kept_digests, compute_features(extractor, images, batch_size)))
        done, elapsed = start + len(chunk), time.perf_counter() - started
        log.info("%s view %d: %d/%d new images through the base (%.1f img/s)",
                 name, view, done, len(missing), done / elapsed)
    if len(missing) > len(skipped):
        save_cache(path, cache)
    kept = [i for i, d in zip(items, digests) if d in cache]
    check_classes_present(kept, items, classes)
    stats = {"cached": len(items) - len(missing), "computed": len(missing) - len(skipped),
             "skipped": [str(p) for p in skipped], "seconds": round(time.perf_counter() - started, 2)}
    return np.stack([cache[d] for d in digests if d in cache]), kept, stats
