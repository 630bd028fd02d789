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

Read top to bottom, a run is: prepare (the model, and its inputs: inputs.py,
the cache's plan and fill in features.py, the budget in budget.py), fit_phases
(the head, then fine_tune.py's recipe, which the benches share), then the test
split and the run's files (train).
"""

import json
import logging
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
from train import model as models  # noqa: E402
from train.backbone import weights_identity  # noqa: E402
from train.budget import MachineRate, Stage, machine_rate, settle, table, training_budget  # noqa: E402
from train.callbacks import BestCheckpoint, EpochProgress, EpochTimer  # noqa: E402
from train.config import TrainConfig, as_dict, parse_args  # noqa: E402
from train.data import read_images, scan_dataset  # noqa: E402
from train.features import plan_fill  # noqa: E402
from train.fine_tune import fine_tune  # noqa: E402
from train.inputs import cache_inputs, image_inputs  # noqa: E402
from train.report import evaluate, plot_confusion, plot_curves  # noqa: E402
from train.reviewed import shop_photos  # noqa: E402

log = logging.getLogger("train")


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
    rate: MachineRate | None  # the machine's, measured where the budget is (a CPU's recipe)
    reviewed: dict | None  # the shop's reviewed photos: how many trained, were held out, refused (train/reviewed.py)


def prepare(config: TrainConfig) -> Prepared:
    """The dataset scanned, the model built, and what fit() reads: the cache filled (input=cache, with the
    run's budget printed first) or the images decoded (input=images)."""
    classes, items = scan_dataset(config.data)
    shop = shop_photos(config.reviewed, classes, items, config.cache, ("train",)) if config.reviewed else None
    if shop:  # the reviewed photos train beside the dataset's, read and cached as they are
        items = {**items, "train": items["train"] + shop.train}
    repeated = {item.path for item in shop.train} if shop else set()  # config.reviewed_repeats times an epoch
    weights_id = weights_identity(config.backbone_entry, config.weights, config.seed)
    net = models.build(config.backbone_entry, config, len(classes))
    budget, rate, started = [], None, time.perf_counter()
    if config.input == "cache":  # a CPU's recipe: the estimates are a CPU's (budget.py)
        plan, rate = plan_fill(config, net.trunk, net.cut, items, weights_id), machine_rate()
        extra = (config.reviewed_repeats - 1) * len(repeated)  # the repeats' images, each epoch
        budget = training_budget(config, net, items, plan.work, rate, extra)
        log.info("%s", table(budget, rate, "make train's budget"))
        train_batches, val_batches, stats = cache_inputs(config, plan, classes, items, repeated)
    else:
        train_batches, val_batches, stats = image_inputs(config, classes, items, repeated)
    stats["seconds"] = round(time.perf_counter() - started, 2)
    reviewed = {**shop.record(), "repeats": config.reviewed_repeats} if shop else None
    return Prepared(classes, items, weights_id, net, train_batches, val_batches, stats, budget, rate, reviewed)


def fit_phases(config: TrainConfig, net: models.Models, train, val, callbacks, best: BestCheckpoint | None) -> dict:
    """The head on the frozen base, then (if set) the top of the base too, from the best head (fine_tune.py)."""
    net.base.trainable = False
    models.compile_for_training(net.trainable, config.head_lr, config.label_smoothing)
    history = net.trainable.fit(
        train, validation_data=val, epochs=config.head_epochs, verbose=0, callbacks=[*callbacks, EpochProgress("head")]
    ).history
    if config.first_trainable is None or not config.fine_tune_epochs:
        return history
    if best is not None:
        net.full.set_weights(best.best_weights)  # fine-tune from the best head, not the last one
    tuned = fine_tune(config, net, train, val, callbacks, initial_epoch=config.head_epochs)
    return {key: history[key] + tuned[key] for key in history}


def evaluate_on_test(checkpoint: Path, items, classes, config: TrainConfig) -> dict:
    """Evaluate the saved best checkpoint itself (reloaded from disk) on the test split, from images."""
    images, kept, skipped = read_images(items["test"], config.size, config.interpolation)
    best = keras.models.load_model(checkpoint)
    x = config.input_spec.normalise(images)  # what the Lambda feeds the converted model
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
    if prepared.budget and prepared.rate:
        head, tuning = timer.seconds[: config.head_epochs], timer.seconds[config.head_epochs :]
        actual = {"fill": prepared.stats["seconds"], "head": sum(head), "fine-tuning": sum(tuning)}
        actual["test"] = time.perf_counter() - started  # by EFFICIENCY's kinds (budget.py)
        meta["budget"] = report["budget"] = settle(prepared.budget, actual, prepared.rate)
        log.info("%s", table(prepared.budget, prepared.rate, "make train, estimated and actual"))
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
