"""Train the fashion classifier: Xception pre-trained on ImageNet, frozen, with a new head.

    python -m train.train                       # 150x150, the quick model
    python -m train.train --size 299 --aug-views 4 --fine-tune-epochs 2

The head trains on cached features of the frozen base (see features.py),
which makes an epoch on a CPU take a second instead of minutes. Fine-tuning
(optional) unfreezes the top of the base and trains on images. The best
epoch by validation accuracy is kept as a full Keras .h5 model, evaluated on
the test split, and described in run.json and report.json.
"""

import argparse
import json
import logging
import math
import time
from pathlib import Path

import keras
import numpy as np
from keras.applications.xception import preprocess_input

from train import model as models
from train.data import INTERPOLATIONS, REPO_ROOT, augment, default_data_dir, read_images, scan_dataset
from train.features import cached_features
from train.report import evaluate, plot_confusion, plot_curves

# -- defaults (the course's best head at 150x150); every one is a flag --------
SIZE = 150                # input size: 150 for quick runs, 299 for the reference model
LEARNING_RATE = 0.001     # Adam, for the head
INNER = 100               # units in the head's hidden Dense layer
DROPOUT = 0.2             # dropout rate after it
EPOCHS = 10               # epochs of head training on cached features
BATCH_SIZE = 32
AUG_VIEWS = 0             # augmented views cached per training image (0: no augmentation)
FINE_TUNE_EPOCHS = 0      # epochs of fine-tuning the top of the base on images afterwards
FINE_TUNE_LAYERS = 16     # how many of the base's last layers fine-tuning unfreezes (block 14 and the end of block 13)
FINE_TUNE_LR = 1e-5       # small, so fine-tuning nudges rather than erases ImageNet features
INTERPOLATION = "bilinear"  # Pillow resize filter; recorded so serving resizes the same way
SEED = 1
VERSION = 1               # the N in xception_vN_<epoch>_<val_accuracy>.h5
OUT = REPO_ROOT / "artifacts" / "runs"
CACHE = REPO_ROOT / "artifacts" / "cache"

log = logging.getLogger("train")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=default_data_dir(), help="dataset folder (env FASHION_DATA)")
    p.add_argument("--weights", default=models.default_weights(),
                   help="base weights: a .weights.h5 file, 'imagenet' (downloads) or 'none' (env FASHION_WEIGHTS)")
    p.add_argument("--size", type=int, default=SIZE)
    p.add_argument("--learning-rate", type=float, default=LEARNING_RATE)
    p.add_argument("--inner", type=int, default=INNER)
    p.add_argument("--dropout", type=float, default=DROPOUT)
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--aug-views", type=int, default=AUG_VIEWS)
    p.add_argument("--fine-tune-epochs", type=int, default=FINE_TUNE_EPOCHS)
    p.add_argument("--fine-tune-layers", type=int, default=FINE_TUNE_LAYERS)
    p.add_argument("--fine-tune-lr", type=float, default=FINE_TUNE_LR)
    p.add_argument("--interpolation", choices=sorted(INTERPOLATIONS), default=INTERPOLATION)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--version", type=int, default=VERSION)
    p.add_argument("--out", type=Path, default=None, help="run folder (default: artifacts/runs/xception_vN)")
    p.add_argument("--cache", type=Path, default=CACHE, help="feature cache folder")
    args = p.parse_args(argv)
    if args.size < 71:
        p.error(f"--size {args.size} is too small: Xception needs at least 71 pixels")
    args.weights = None if args.weights == "none" else args.weights
    args.out = args.out or OUT / f"xception_v{args.version}"
    return args


class EpochBatches(keras.utils.PyDataset):
    """Shuffled batches; make_batch(indices, epoch) builds the inputs, so views can vary by epoch."""

    def __init__(self, make_batch, targets: np.ndarray, batch_size: int, seed: int):
        super().__init__()
        self.make_batch, self.targets, self.batch_size = make_batch, targets, batch_size
        self.rng = np.random.default_rng(seed)
        self.epoch, self.order = 0, self.rng.permutation(len(targets))

    def __len__(self):
        return math.ceil(len(self.targets) / self.batch_size)

    def __getitem__(self, i):
        indices = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        return self.make_batch(indices, self.epoch), self.targets[indices]

    def on_epoch_end(self):
        self.epoch += 1
        self.order = self.rng.permutation(len(self.targets))


class BestCheckpoint(keras.callbacks.Callback):
    """Keeps exactly one file: the full model at the best validation accuracy so far.

    Whatever is being fitted (the head on features, or the whole model when
    fine-tuning), the saved model is the full image -> logits one.
    """

    def __init__(self, full_model: keras.Model, directory: Path, version: int):
        super().__init__()
        self.full_model, self.directory, self.version = full_model, Path(directory), version
        self.best_accuracy, self.best_epoch, self.best_path, self.best_weights = -1.0, None, None, None

    def on_epoch_end(self, epoch, logs=None):
        accuracy = logs["val_accuracy"]
        if accuracy <= self.best_accuracy:
            return
        path = self.directory / f"xception_v{self.version}_{epoch + 1:02d}_{accuracy:.3f}.h5"
        self.full_model.save(path)
        if self.best_path and self.best_path != path:
            self.best_path.unlink()
        self.best_accuracy, self.best_epoch, self.best_path = accuracy, epoch + 1, path
        self.best_weights = self.full_model.get_weights()
        log.info("epoch %d: new best val_accuracy %.3f -> %s", epoch + 1, accuracy, path.name)


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(round(time.perf_counter() - self.started, 3))


def one_hot(labels, n_classes: int) -> np.ndarray:
    return np.eye(n_classes, dtype=np.float32)[np.asarray(labels)]


def extract_features(args, extractor, classes, items, weights_id):
    """Cached features: the training views (plain, or augmented 1..K) and the plain validation set."""
    def features(split, view):
        return cached_features(extractor, items[split], classes, cache_dir=args.cache, weights_id=weights_id,
                               size=args.size, interpolation=args.interpolation, view=view, seed=args.seed,
                               batch_size=args.batch_size, name=split)
    views = range(1, args.aug_views + 1) if args.aug_views else [0]
    train_views = [features("train", v) for v in views]
    val = features("validation", 0)
    kept = train_views[0][1]
    if any(t[1] != kept for t in train_views):
        raise RuntimeError("augmented views disagree on which training images are readable")
    stats = {"train": [t[2] for t in train_views], "validation": val[2]}
    return np.stack([t[0] for t in train_views]), kept, val[0], val[1], stats


def fit_head(head, train_views, train_labels, val_features, val_labels, args, callbacks, epochs=None):
    """Train the head on cached features; image i in epoch e sees view (e + i) mod K."""
    n_views, n_classes = len(train_views), head.output_shape[-1]
    batches = EpochBatches(lambda idx, epoch: train_views[(epoch + idx) % n_views, idx],
                           one_hot(train_labels, n_classes), args.batch_size, args.seed)
    return head.fit(batches, epochs=epochs or args.epochs, verbose=2, callbacks=callbacks,
                    validation_data=(val_features, one_hot(val_labels, n_classes)))


def fine_tune(model, base, items, args, callbacks, initial_epoch):
    """Unfreeze the top of the base and train the whole model on (augmented) images."""
    models.unfreeze_top(base, args.fine_tune_layers)
    models.compile_for_training(model, args.fine_tune_lr)
    train_images, train_kept, _ = read_images(items["train"], args.size, args.interpolation)
    val_images, val_kept, _ = read_images(items["validation"], args.size, args.interpolation)
    n_classes = model.output_shape[-1]
    rng = np.random.default_rng(args.seed)

    def make_batch(indices, epoch):
        images = train_images[indices]
        if args.aug_views:
            images = np.stack([augment(im, rng) for im in images])
        return preprocess_input(images.astype(np.float32))

    batches = EpochBatches(make_batch, one_hot([i.label for i in train_kept], n_classes), args.batch_size, args.seed)
    val = (preprocess_input(val_images.astype(np.float32)), one_hot([i.label for i in val_kept], n_classes))
    return model.fit(batches, validation_data=val, verbose=2, callbacks=callbacks,
                     initial_epoch=initial_epoch, epochs=initial_epoch + args.fine_tune_epochs)


def evaluate_on_test(checkpoint: Path, items, classes, args) -> dict:
    """Evaluate the saved best checkpoint itself (reloaded from disk) on the test split."""
    images, kept, skipped = read_images(items["test"], args.size, args.interpolation)
    best = keras.models.load_model(checkpoint)
    logits = best.predict(preprocess_input(images.astype(np.float32)), batch_size=args.batch_size, verbose=0)
    report = evaluate(logits, np.array([i.label for i in kept]), classes)
    report["skipped"] = [str(p) for p in skipped]
    return report


def run_metadata(args, classes, weights_id) -> dict:
    """What a later stage needs to reproduce the model's input exactly, and how it was trained."""
    return {
        "classes": classes,
        "input_size": args.size,
        "interpolation": args.interpolation,
        "preprocessing": "xception: x / 127.5 - 1 (keras.applications.xception.preprocess_input)",
        "image_loader": "Pillow: convert('RGB'), resize((size, size), interpolation) as keras.utils.load_img",
        "weights": str(args.weights), "weights_identity": weights_id,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "keras_version": keras.__version__,
    }


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def train(args) -> dict:
    keras.utils.set_random_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for earlier in args.out.glob(f"xception_v{args.version}_*.h5"):  # a run of version N replaces the last one
        log.info("removing %s, from an earlier run of version %d", earlier.name, args.version)
        earlier.unlink()
    classes, items = scan_dataset(args.data)
    weights_id = models.weights_identity(args.weights, args.seed)
    meta = run_metadata(args, classes, weights_id)
    write_json(args.out / "run.json", meta)

    strategy = models.distribution_strategy()
    log.info("classes %s; training on %d replica(s)", classes, strategy.num_replicas_in_sync)
    with strategy.scope():
        base = models.make_base(args.weights, args.size)
        model, head, extractor = models.make_model(base, args.inner, args.dropout, len(classes))
        models.compile_for_training(head, args.learning_rate)

    started = time.perf_counter()
    train_views, train_kept, val_features, val_kept, cache_stats = extract_features(
        args, extractor, classes, items, weights_id)
    extraction_seconds = time.perf_counter() - started

    best, timer = BestCheckpoint(model, args.out, args.version), EpochTimer()
    history = fit_head(head, train_views, [i.label for i in train_kept], val_features,
                       [i.label for i in val_kept], args, [best, timer]).history
    history["seconds"] = timer.seconds
    if args.fine_tune_epochs:
        model.set_weights(best.best_weights)  # fine-tune from the best head, not the last one
        with strategy.scope():
            tuned = fine_tune(model, base, items, args, [best, timer], initial_epoch=args.epochs).history
        tuned["seconds"] = timer.seconds
        history = {key: history[key] + tuned[key] for key in history}

    meta.update(best_checkpoint=best.best_path.name, best_epoch=best.best_epoch,
                best_val_accuracy=round(best.best_accuracy, 4), replicas=strategy.num_replicas_in_sync,
                feature_cache=cache_stats, feature_seconds=round(extraction_seconds, 2))
    write_json(args.out / "run.json", meta)
    write_json(args.out / "history.json", history)
    plot_curves(history, args.out / "curves.png")

    report = {**meta, "history": history, "test": evaluate_on_test(best.best_path, items, classes, args)}
    plot_confusion(report["test"]["confusion_matrix"], classes, args.out / "confusion.png")
    write_json(args.out / "report.json", report)
    log.info("best %s (epoch %d, val %.3f); test accuracy %.3f", best.best_path.name, best.best_epoch,
             best.best_accuracy, report["test"]["accuracy"])
    return report


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # .h5 is this project's checkpoint format on purpose (the course's, loadable anywhere):
    # drop Keras' "legacy HDF5" advice, printed at every new best epoch.
    logging.getLogger("absl").addFilter(lambda record: "HDF5 file" not in record.getMessage())
    train(parse_args(argv))


if __name__ == "__main__":
    main()
