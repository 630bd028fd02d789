"""Train the fashion classifier: a backbone pre-trained on ImageNet (Xception by default; train/backbone.py),
a new head, the top of the base fine-tuned.

    python -m train.train                        # preset auto: gpu if the backend sees one, else cpu
    python -m train.train --preset frozen        # the head alone on the frozen base
    KERAS_BACKEND=jax python -m train.train --preset gpu
    python -m train.train --help                 # every setting (train/config.py)

Two phases, best epoch by validation accuracy across both: the head alone
on the frozen base (Adam), then the head and the top of the base together
(Adam, cosine decay). Below the first trainable layer nothing changes, so on
a CPU the frozen part runs once per image and augmented view and training
reads its cached activations (features.py); on a GPU the whole model runs
on images, with a fresh augmented view every step. Either way the kept
checkpoint is the full image -> logits Keras model (.h5), evaluated on the
test split and described in run.json and report.json.
"""

import json
import logging
import math
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from train.noise import drop_tensorflow_noise

if __name__ == "__main__":  # make train: before TensorFlow loads and logs its start-up lines
    drop_tensorflow_noise()

import keras  # noqa: E402
import numpy as np  # noqa: E402

from lambda_fn.preprocess import PIXELS_VERSION  # noqa: E402
from project.progress import Progress, duration  # noqa: E402
from train import model as models  # noqa: E402
from train.backbone import weights_identity  # noqa: E402
from train.budget import Stage, forward_gflop, machine_gflops, settle, stage, table  # noqa: E402
from train.config import TrainConfig, as_dict, parse_args  # noqa: E402
from train.data import check_classes_present, file_digest, read_images, scan_dataset  # noqa: E402
from train.features import (  # noqa: E402
    CacheKey,
    FrozenLayers,
    cached_activations,
    frozen_layers,
    missing_views,
    trunk_file,
)
from train.report import evaluate, plot_confusion, plot_curves  # noqa: E402
from train.reviewed import shop_photos  # noqa: E402

log = logging.getLogger("train")


class EpochBatches(keras.utils.PyDataset):
    """Batches of make_batch(indices, epoch) and one-hot targets; shuffled anew each epoch if shuffle."""

    def __init__(self, make_batch, targets: np.ndarray, batch_size: int, seed: int, shuffle=True, **kwargs):
        super().__init__(**kwargs)
        self.make_batch, self.targets, self.batch_size, self.shuffle = make_batch, targets, batch_size, shuffle
        self.rng = np.random.default_rng(seed)
        self.epoch, self.order = 0, self.new_order()

    def new_order(self) -> np.ndarray:
        return self.rng.permutation(len(self.targets)) if self.shuffle else np.arange(len(self.targets))

    def __len__(self):
        return math.ceil(len(self.targets) / self.batch_size)

    def __getitem__(self, i):
        indices = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        return self.make_batch(indices, self.epoch), self.targets[indices]

    def on_epoch_end(self):
        self.epoch += 1
        self.order = self.new_order()


class BestCheckpoint(keras.callbacks.Callback):
    """Keeps exactly one file: the full model at the best validation accuracy so far.

    Whatever is being fitted (the head on cached features, the top of the base
    on cached activations, or the model on images), the saved model is the
    full image -> logits one.
    """

    def __init__(self, full_model: keras.Model, directory: Path, stem: str):
        super().__init__()
        self.full_model, self.directory, self.stem = full_model, Path(directory), stem
        self.best_accuracy, self.best_epoch = -1.0, 0
        self.best_path: Path | None = None  # None until an epoch ends
        self.best_weights: list | None = None

    def on_epoch_end(self, epoch, logs=None):
        accuracy = logs["val_accuracy"]
        if accuracy <= self.best_accuracy:
            return
        path = self.directory / f"{self.stem}_{epoch + 1:02d}_{accuracy:.3f}.h5"
        self.full_model.save(path)
        if self.best_path and self.best_path != path:
            self.best_path.unlink()
        self.best_accuracy, self.best_epoch, self.best_path = accuracy, epoch + 1, path
        self.best_weights = self.full_model.get_weights()
        log.info("epoch %d: new best val_accuracy %.3f -> %s", epoch + 1, accuracy, path.name)


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = getattr(self, "seconds", [])  # one timer spans both phases

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(round(time.perf_counter() - self.started, 3))


class EpochProgress(keras.callbacks.Callback):
    """The progress display within each epoch (batches done, rate, time left), and a line when it ends with its
    figures and what is left of the phase: fit runs with verbose=0, as Keras' own display says neither."""

    def __init__(self, phase: str):
        super().__init__()
        self.phase = phase
        self.seconds: list[float] = []  # each epoch's, for the time left in the phase

    def on_epoch_begin(self, epoch, logs=None):
        last = self.params["epochs"]
        self.epoch = Progress(log, f"{self.phase}, epoch {epoch + 1} of {last}", self.params["steps"], "batches")

    def on_train_batch_end(self, batch, logs=None):
        self.epoch.advance()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(self.epoch.clock() - self.epoch.started)
        figures = ", ".join(f"{name} {value:.4f}" for name, value in (logs or {}).items())
        left = (self.params["epochs"] - epoch - 1) * sum(self.seconds) / len(self.seconds)
        log.info(
            "epoch %d: %s (%s; at most %s left in %s)",
            epoch + 1,
            figures,
            duration(self.seconds[-1]),
            duration(left),
            self.phase,
        )


def one_hot(labels, n_classes: int) -> np.ndarray:
    return np.eye(n_classes, dtype=np.float32)[np.asarray(labels)]


@dataclass
class FillPlan:
    """The cache's stores training reads (the training split's views, then validation) and what they lack."""

    frozen: FrozenLayers
    keys: dict  # (split, view) -> CacheKey
    digests: dict  # split -> its files' sha256, read once
    work: int  # image-views missing from the stores: what the fill computes


def plan_fill(config: TrainConfig, net: models.Models, items, weights_id: str) -> FillPlan:
    backbone = config.backbone_entry
    trunk = trunk_file(config.cache, backbone.name, weights_id, config.size, net.cut)
    frozen = frozen_layers(net.trunk, trunk, config.batch_size)
    views = range(1, config.views + 1) if config.augment else [0]
    keys = {
        (split, view): CacheKey(
            backbone.name,
            weights_id,
            config.size,
            config.interpolation,
            net.cut,
            view,
            config.augmentation_seed if view else None,
            frozen.engine,
        )
        for split, view in [*[("train", v) for v in views], ("validation", 0)]
    }
    digests = {split: [file_digest(i.path) for i in items[split]] for split in ("train", "validation")}
    work = sum(missing_views(digests[split], key, config.cache) for (split, _), key in keys.items())
    return FillPlan(frozen, keys, digests, work)


def cache_inputs(config: TrainConfig, plan: FillPlan, classes, items):
    """Training and validation batches of cached activations at the cut; the stores filled first."""
    progress = Progress(log, f"the cache's fill on {plan.frozen.engine}", plan.work, "image-views")

    def store_for(split, view):
        key, preprocess = plan.keys[split, view], config.backbone_entry.preprocess
        digests = plan.digests[split]
        return cached_activations(plan.frozen, items[split], classes, key, config.cache, preprocess, progress, digests)

    views = [store_for(*split_view) for split_view in plan.keys if split_view[0] == "train"]
    stores, kept, digests = [v[0] for v in views], views[0][1], views[0][2]
    if any(v[2] != digests for v in views):
        raise RuntimeError("augmented views disagree on which training images are readable")
    val_store, val_kept, val_digests, val_stats = store_for("validation", 0)

    def train_batch(indices, epoch):  # image i in epoch e is seen through view (e + i) mod K
        rows = np.empty((len(indices), *stores[0].shape), np.float32)
        view_of = (epoch + indices) % len(stores)
        for v, store in enumerate(stores):
            mine = np.flatnonzero(view_of == v)
            if len(mine):
                rows[mine] = store.read([digests[indices[k]] for k in mine])
        return rows

    n = len(classes)
    train = EpochBatches(train_batch, one_hot([i.label for i in kept], n), config.batch_size, config.seed)
    val = EpochBatches(
        lambda idx, _: val_store.read([val_digests[k] for k in idx]),
        one_hot([i.label for i in val_kept], n),
        config.batch_size,
        config.seed,
        shuffle=False,
    )
    stats = {
        "cut": plan.keys["validation", 0].cut,
        "train": [v[3] for v in views],
        "validation": val_stats,
        "bytes": sum(len(s) * s.row_bytes for s in [*stores, val_store]),
    }
    return train, val, stats


def image_inputs(config: TrainConfig, classes, items):
    """Training and validation batches of uint8 pixels, held in memory; the model augments and scales them."""
    n, batches = len(classes), {}
    for split in ("train", "validation"):
        images, kept, skipped = read_images(items[split], config.size, config.interpolation)
        check_classes_present(kept, items[split], classes)
        # threads index the next batches while the accelerator runs this one
        batches[split] = EpochBatches(
            lambda idx, _, images=images: images[idx],
            one_hot([i.label for i in kept], n),
            config.batch_size,
            config.seed,
            shuffle=split == "train",
            workers=4,
        )
    return batches["train"], batches["validation"], {"cut": "images"}


def fit_phases(config: TrainConfig, net: models.Models, train, val, callbacks, best: BestCheckpoint | None) -> dict:
    """The head on the frozen base, then (if set) the top of the base too, from the best head."""
    net.base.trainable = False
    models.compile_for_training(net.trainable, config.head_lr)
    history = net.trainable.fit(
        train, validation_data=val, epochs=config.head_epochs, verbose=0, callbacks=[*callbacks, EpochProgress("head")]
    ).history
    first_trainable = config.first_trainable
    if first_trainable is None or not config.fine_tune_epochs:
        return history
    if best is not None:
        net.full.set_weights(best.best_weights)  # fine-tune from the best head, not the last one
    models.unfreeze_from(net.base, first_trainable)
    schedule = keras.optimizers.schedules.CosineDecay(
        config.fine_tune_lr, len(train) * config.fine_tune_epochs, alpha=config.fine_tune_lr_floor
    )
    models.compile_for_training(net.trainable, schedule)
    tuned = net.trainable.fit(
        train,
        validation_data=val,
        initial_epoch=config.head_epochs,
        verbose=0,
        epochs=config.head_epochs + config.fine_tune_epochs,
        callbacks=[*callbacks, *patience(config), EpochProgress("fine-tuning")],
    ).history
    return {key: history[key] + tuned[key] for key in history}


def patience(config: TrainConfig) -> list[keras.callbacks.Callback]:
    """Fine-tuning's stop once validation accuracy has not improved for fine_tune_patience epochs."""
    if not config.fine_tune_patience:
        return []
    return [keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=config.fine_tune_patience)]


def evaluate_on_test(checkpoint: Path, items, classes, config: TrainConfig) -> dict:
    """Evaluate the saved best checkpoint itself (reloaded from disk) on the test split, from images."""
    images, kept, skipped = read_images(items["test"], config.size, config.interpolation)
    best = keras.models.load_model(checkpoint)
    x = config.backbone_entry.preprocess(images.astype(np.float32))
    report = evaluate(
        best.predict(x, batch_size=config.batch_size, verbose=0), np.array([i.label for i in kept]), classes
    )
    report["skipped"] = [str(p) for p in skipped]
    return report


def run_metadata(config: TrainConfig, classes, weights_id) -> dict:
    """What a later stage needs to reproduce the model's input exactly, and how it was trained."""
    backbone = config.backbone_entry
    return {
        "classes": classes,
        "backbone": backbone.name,
        "input_size": config.size,
        "interpolation": config.interpolation,
        "image_loader": f"lambda_fn/preprocess.py decode_image and pixels, version {PIXELS_VERSION}",
        "weights": str(config.weights),
        "weights_identity": weights_id,
        "config": as_dict(config),
        "keras_version": keras.__version__,
        "keras_backend": keras.backend.backend(),
    }


def point_latest_at(run: Path) -> None:
    """<runs>/latest -> this run's folder: what make convert converts, whatever the backbone and version."""
    link, temporary = run.parent / "latest", run.parent / f".latest-{os.getpid()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(run.name)
    os.replace(temporary, link)  # atomic: a reader sees the old run or the new one


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


@dataclass
class Prepared:
    """What a run trains on: the dataset, the model, and its inputs (the cache filled)."""

    classes: list[str]
    items: dict
    weights_id: str
    net: models.Models
    train_batches: Any
    val_batches: Any
    stats: dict
    budget: list[Stage]  # the stages' work and estimates (empty where the images train on an accelerator)
    rate_gflops: float
    reviewed: dict | None  # the shop's reviewed photos: how many trained, were held out, refused (train/reviewed.py)


def training_budget(config: TrainConfig, net: models.Models, items, fill_work: int, rate: float) -> list[Stage]:
    """What each stage of make train computes, in GFLOP, and its estimate at this machine's rate."""
    top, full = forward_gflop(net.trainable), forward_gflop(net.full)
    seen, shares = len(items["train"]) + len(items["validation"]), config.backbone_entry.efficiency
    fill = fill_work * forward_gflop(net.trunk)
    head = config.head_epochs * seen * top
    stages = [
        stage("the cache's fill", f"{fill_work:,} image-views", fill, "fill", rate, shares),
        stage("head", f"{config.head_epochs} epochs x {seen:,} images", head, "head", rate, shares),
    ]
    if config.first_trainable and config.fine_tune_epochs:
        # a training image costs about three forward passes (forward, then backward: gradients and weights)
        tuned = config.fine_tune_epochs * (3 * len(items["train"]) + len(items["validation"])) * top
        work = f"at most {config.fine_tune_epochs} epochs x {seen:,} images"
        stages.append(stage("fine-tuning", work, tuned, "fine-tuning", rate, shares))
    test = len(items["test"])
    return [*stages, stage("test", f"{test:,} images", test * full, "test", rate, shares)]


def prepare(config: TrainConfig) -> Prepared:
    classes, items = scan_dataset(config.data)
    shop = shop_photos(config.reviewed, classes, items, config.cache, ("train",)) if config.reviewed else None
    if shop:  # the reviewed photos train beside the dataset's, read and cached as they are
        items = {**items, "train": items["train"] + shop.train}
    weights_id = weights_identity(config.weights, config.seed)
    net = models.build(config.backbone_entry, config, len(classes))
    budget, rate, started = [], 0.0, time.perf_counter()
    if config.input == "cache":  # a CPU's recipe: the estimates are a CPU's (budget.py)
        plan, rate = plan_fill(config, net, items, weights_id), machine_gflops()
        budget = training_budget(config, net, items, plan.work, rate)
        log.info("%s", table(budget, rate, "make train's budget"))
        train_batches, val_batches, stats = cache_inputs(config, plan, classes, items)
    else:
        train_batches, val_batches, stats = image_inputs(config, classes, items)
    stats["seconds"] = round(time.perf_counter() - started, 2)
    reviewed = shop.record() if shop else None
    return Prepared(classes, items, weights_id, net, train_batches, val_batches, stats, budget, rate, reviewed)


def train(config: TrainConfig) -> dict:
    keras.utils.set_random_seed(config.seed)
    out, stem = config.run_dir, f"{config.backbone}_v{config.version}"
    out.mkdir(parents=True, exist_ok=True)
    for earlier in out.glob(f"{stem}_*.h5"):  # a run of version N replaces the last one
        log.info("removing %s, from an earlier run of version %d", earlier.name, config.version)
        earlier.unlink()
    scope, replicas = models.data_parallel()
    log.info("preset %s on %s, %d replica(s)", config.preset, keras.backend.backend(), replicas)
    with scope:
        prepared = prepare(config)
        classes, items, net = prepared.classes, prepared.items, prepared.net
        meta = {**run_metadata(config, classes, prepared.weights_id), "reviewed": prepared.reviewed}
        write_json(out / "run.json", meta)
        best, timer = BestCheckpoint(net.full, out, stem), EpochTimer()
        history = fit_phases(config, net, prepared.train_batches, prepared.val_batches, [best, timer], best)
    history["seconds"] = timer.seconds
    assert best.best_path is not None, "training ran no epoch"

    meta.update(
        best_checkpoint=best.best_path.name,
        best_epoch=best.best_epoch,
        best_val_accuracy=round(best.best_accuracy, 4),
        replicas=replicas,
        inputs=prepared.stats,
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    )  # Linux: kB
    write_json(out / "history.json", history)
    plot_curves(history, out / "curves.png")

    started = time.perf_counter()
    report = {**meta, "history": history, "test": evaluate_on_test(best.best_path, items, classes, config)}
    if prepared.budget:
        head, tuning = timer.seconds[: config.head_epochs], timer.seconds[config.head_epochs :]
        actual = {"fill": prepared.stats["seconds"], "head": sum(head), "fine-tuning": sum(tuning)}
        actual["test"] = time.perf_counter() - started  # by EFFICIENCY's kinds (budget.py)
        meta["budget"] = report["budget"] = settle(prepared.budget, actual, prepared.rate_gflops)
        log.info("%s", table(prepared.budget, prepared.rate_gflops, "make train, estimated and actual"))
    write_json(out / "run.json", meta)
    plot_confusion(report["test"]["confusion_matrix"], classes, out / "confusion.png")
    write_json(out / "report.json", report)
    point_latest_at(out)
    log.info(
        "best %s (epoch %d, val %.3f); test accuracy %.3f",
        best.best_path.name,
        best.best_epoch,
        best.best_accuracy,
        report["test"]["accuracy"],
    )
    return report


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # .h5 is this project's checkpoint format on purpose (the course's, loadable anywhere):
    # drop Keras' "legacy HDF5" advice, printed at every new best epoch.
    logging.getLogger("absl").addFilter(lambda record: "HDF5 file" not in record.getMessage())
    train(parse_args(argv))


if __name__ == "__main__":
    main()
