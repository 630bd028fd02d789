"""Seconds per fine-tuning epoch: the same layers trained on cached activations against on images (one run).

    python -m bench.training [--images 32] [--epochs 2] [train.train flags, e.g. --preset cpu]

Both fine-tune the preset's top of the base (and the head) on the same
training images, a class-balanced subset of --images per class, with the
same augmentation and make train's recipe (train/fine_tune.py, its schedule
spanning --epochs); the cached path reads the activations at the cut (filled
first, and timed), the other recomputes the frozen layers every step. The
last epoch of each is timed (the first includes tracing), and scaled to the
whole training split.
"""

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import keras

from bench.results import Field, Table, record
from train.budget import fine_tuning_epoch_gflop, forward_gflop
from train.callbacks import EpochTimer
from train.config import parse_args
from train.data import scan_dataset
from train.fine_tune import fine_tune
from train.train import prepare


def subset(data: Path, out: Path, per_class: int) -> Path:
    """A dataset of symlinks: per_class images of each class in train, a few in validation and test."""
    for split, count in (("train", per_class), ("validation", 4), ("test", 1)):
        for folder in sorted((data / split).iterdir()):
            (out / split / folder.name).mkdir(parents=True)
            for f in sorted(folder.iterdir())[:count]:
                (out / split / folder.name / f.name).symlink_to(f.resolve())
    return out


@dataclass
class EpochTiming:
    """One fine-tuning run's last epoch, as the benches report it."""

    seconds: float  # the last epoch, its validation included (the first traces)
    prepare_s: float  # preparing the inputs: the cache filled (what it lacked) or the images decoded
    images: int  # training images an epoch shows
    input_s: float  # the host producing one epoch's batches without the model
    gflop: float  # an epoch's work as make train's budget counts it (train/budget.py)


def fine_tune_epoch_seconds(config, epochs: int) -> EpochTiming:
    """config's fine-tuning run for epochs on its data, the last epoch timed."""
    keras.utils.set_random_seed(config.seed)
    prepared = prepare(config)
    train_batches, stats, timer = prepared.train_batches, prepared.stats, EpochTimer()
    fine_tune(replace(config, fine_tune_epochs=epochs), prepared.net, train_batches, prepared.val_batches, [timer])
    started = time.perf_counter()
    for k in range(len(train_batches)):
        train_batches[k]
    input_s = time.perf_counter() - started
    images, validated = len(train_batches.targets), len(prepared.val_batches.targets)
    gflop = fine_tuning_epoch_gflop(forward_gflop(prepared.net.trainable), images, validated)
    return EpochTiming(timer.seconds[-1], stats["seconds"], images, input_s, gflop)


FIELDS = [
    Field("path", "fine-tuning the same layers"),
    Field("epoch_s", "seconds per epoch (measured)", "s"),
    Field("full_epoch_s", "per epoch of the full split", "s"),
]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=32, help="training images per class")
    p.add_argument("--epochs", type=int, default=2)
    own, rest = p.parse_known_args(sys.argv[1:] if argv is None else argv)
    config = parse_args(rest if "--preset" in rest else ["--preset", "cpu", *rest])
    if config.fine_tune_from is None:
        p.error(f"preset {config.preset!r} fine-tunes nothing: bench.training times fine-tuning (--fine-tune-from)")
    full_train = len(scan_dataset(config.data)[1]["train"])
    with tempfile.TemporaryDirectory() as tmp:
        data = subset(config.data, Path(tmp) / "data", own.images)
        cached = replace(config, data=data, input="cache", cache=Path(tmp) / "cache")
        on_cache = fine_tune_epoch_seconds(cached, own.epochs)
        started = time.perf_counter()
        on_images = fine_tune_epoch_seconds(replace(cached, input="images"), own.epochs)
        images_total = time.perf_counter() - started
    cached_s, fill_s, n, cached_input_s = on_cache.seconds, on_cache.prepare_s, on_cache.images, on_cache.input_s
    images_s, images_input_s = on_images.seconds, on_images.input_s
    scale = full_train / n
    rows = [
        ["on images (frozen layers recomputed every step)", round(images_s, 1), round(images_s * scale)],
        ["on cached activations at the cut", round(cached_s, 1), round(cached_s * scale)],
        [f"one-off: filling the cache ({config.views} views + validation)", round(fill_s, 1), round(fill_s * scale)],
        [
            "input alone, images (uint8, augmented on the device)",
            round(images_input_s, 2),
            round(images_input_s * scale, 1),
        ],
        ["input alone, cached (pread)", round(cached_input_s, 2), round(cached_input_s * scale, 1)],
    ]
    records = [dict(zip([f.key for f in FIELDS], row, strict=True)) for row in rows]
    notes = [
        f"backend {keras.backend.backend()}; {config.size}x{config.size}; fine-tuning from {config.fine_tune_from} "
        f"({config.first_trainable}); {n} training images, the last of {own.epochs} epochs, scaled to {full_train}",
        f"on cached activations fine-tuning is {images_s / cached_s:.1f}x faster per epoch; one run (the images "
        f"path took {images_total:.0f} s in all)",
    ]
    title = "Fine-tuning on cached activations against on images"
    record(__spec__.name, argv, title, [Table("paths", FIELDS, records)], notes)


if __name__ == "__main__":
    main()
