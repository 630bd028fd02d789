"""Seconds per epoch: the cached-feature fast path against plain model.fit on images (one run, same data).

    .venv/bin/python -m bench.training [--size 150] [--epochs 3]

Both train the same head on the same training images with the base frozen;
plain fit recomputes the base for every image every epoch, the fast path
reads its cached output. The one-off cost of filling the cache is reported too.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
from keras.applications.xception import preprocess_input

from bench.common import machine
from train import model as models
from train.data import read_images, scan_dataset
from train.train import EpochBatches, EpochTimer, extract_features, fit_head, one_hot, parse_args


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=int, default=150)
    p.add_argument("--epochs", type=int, default=3)
    own = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        args = parse_args(["--size", str(own.size), "--cache", str(Path(tmp) / "cache"), "--epochs", str(own.epochs)])
        classes, items = scan_dataset(args.data)
        keras.utils.set_random_seed(args.seed)
        base = models.make_base(args.weights, args.size)
        model, head, extractor = models.make_model(base, args.inner, args.dropout, len(classes))

        started = time.perf_counter()
        views, kept, val_features, val_kept, _ = extract_features(args, extractor, classes, items, "bench")
        cache_fill = time.perf_counter() - started
        models.compile_for_training(head, args.learning_rate)
        fast = EpochTimer()
        fit_head(head, views, [i.label for i in kept], val_features, [i.label for i in val_kept], args, [fast])

        images, kept, _ = read_images(items["train"], args.size, args.interpolation)
        val_images, val_kept, _ = read_images(items["validation"], args.size, args.interpolation)
        x = preprocess_input(images.astype(np.float32))
        val = (preprocess_input(val_images.astype(np.float32)), one_hot([i.label for i in val_kept], len(classes)))
        model, _, _ = models.make_model(base, args.inner, args.dropout, len(classes))  # a fresh head
        models.compile_for_training(model, args.learning_rate)
        plain = EpochTimer()
        batches = EpochBatches(lambda idx, epoch: x[idx], one_hot([i.label for i in kept], len(classes)),
                               args.batch_size, args.seed)
        model.fit(batches, validation_data=val, epochs=own.epochs, verbose=2, callbacks=[plain])

    fast_s, plain_s = statistics.median(fast.seconds), statistics.median(plain.seconds)
    print(f"machine: {machine()}; {len(kept)} training + {len(val_kept)} validation images at {args.size}x{args.size}; "
          f"median of {own.epochs} epochs")
    print("| path | seconds per epoch |")
    print("| --- | --- |")
    print(f"| plain model.fit on images (base recomputed) | {plain_s:.2f} |")
    print(f"| fast path: head on cached features | {fast_s:.3f} |")
    print(f"| speed-up per epoch | {plain_s / fast_s:.0f}x |")
    print(f"| one-off: filling the feature cache (train + validation) | {cache_fill:.1f} |")


if __name__ == "__main__":
    main()
