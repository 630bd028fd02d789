"""Convert a training checkpoint to TFLite and prove the converted model is the same model.

    python -m convert.convert artifacts/runs/latest               # the last training run's best checkpoint
    python -m convert.convert path/to/model.h5 --run-json path/to/run.json

Route: Keras 3 SavedModel, then the TFLite converter (train/export.py, which the cache's fill shares), set as
each variant needs (convert/variants.py).

Parity gate: the same real images (by default the whole validation split),
each file's bytes made into the model's input by the Lambda's own code
(lambda_fn/preprocess.py: decode, pixels, the preprocessing model.json
names; training reads its images with the same code), go through the Keras model and through each candidate on the
Lambda's own interpreter class (lambda_fn.model.Model on LiteRT). A
candidate that fails its thresholds is not written; if float32 fails, the
exit status is 1.
"""

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

# The converter reads TensorFlow graphs: convert on TensorFlow whichever
# backend trained the checkpoint (an .h5 is the same from all of them).
os.environ["KERAS_BACKEND"] = "tensorflow"

from train.noise import drop_tensorflow_noise  # noqa: E402

if __name__ == "__main__":  # make convert: before TensorFlow loads and logs its start-up lines
    drop_tensorflow_noise()

from convert import int8  # noqa: E402
from convert.calibrate import TARGET_PRECISION, BadTarget, calibrate, checked_target  # noqa: E402
from convert.variants import VARIANTS, Calibrated  # noqa: E402
from lambda_fn.confidence import calibrated  # noqa: E402
from lambda_fn.model import Model  # noqa: E402
from lambda_fn.preprocess import InputSpec  # noqa: E402
from lambda_fn.pretraffic import write_checks  # noqa: E402
from project.paths import BUNDLE  # noqa: E402
from project.progress import Progress  # noqa: E402
from train import budget as budgets  # noqa: E402
from train.backbone import BACKBONES  # noqa: E402
from train.data import Item, file_digest, read_images, scan_dataset  # noqa: E402
from train.export import export_saved_model  # noqa: E402
from train.reviewed import ReviewedError, shop_photos  # noqa: E402

# -- defaults -----------------------------------------------------------------
OUT = BUNDLE
# What a plain run converts. int8-full has failed its gate on every model so far, ask for it with --variants:
# Xception's (97.6-98.8% agreement against 99%: docs/benchmarks-history.md; it costs minutes there), and
# EfficientNet-Lite2's too, though built for integer quantisation (seed 1: 99.4% agreement but 0.8 points of
# test accuracy lost; seed 2: 98.8% agreement; bench.seeds; bench.int8: 98.8% with any representative set).
# int8-mixed (int8 but for the first quarter of the layers, in float) passed on one Lite2 model (bench.int8,
# docs/int8.md), and costs the debugger's run: ask for it with --variants too.
DEFAULT_VARIANTS = ["float32", "float16", "int8-dynamic"]
FLOAT32_MAX_LOGIT_DIFF = 1e-4  # float32 must match Keras to float rounding ...
FLOAT32_MAX_PROBABILITY_DIFF = 1e-4  # ... give the same calibrated probabilities ...
FLOAT32_MIN_AGREEMENT = 1.0  # ... and agree on every top-1
SMALL_MIN_AGREEMENT = 0.99  # smaller variants: top-1 agreement with Keras
SMALL_MAX_ACCURACY_DROP = 0.005  # and test accuracy at most 0.5 points below float32
LATENCY_RUNS = 20  # single-image invokes timed per variant (median reported)
# What model.json's "calibration" holds: what the Lambda reads (lambda_fn/model.py), and the promise's proof (on
# which photos, how many, the bound, the confidence, the coverage; why it fell back); the figures stay in "parity"
SERVED_CALIBRATION = (
    "method",
    "temperature",
    "min_confidence",
    "target_precision",
    "confidence",
    "fitted_on",
    "proof",
    "fallback",
)
# A candidate's model.json while its gate runs: the raw softmax, every answer confident
UNCALIBRATED = {"method": "none", "temperature": 1.0, "min_confidence": 0.0, "target_precision": None}
CHECK_PHOTOS_PER_CLASS = 1  # validation photos per class in the bundle, for the PreTraffic hook

log = logging.getLogger("convert")


class ConversionError(Exception):
    """The checkpoint or its metadata cannot be converted; the message says why."""


def resolve_checkpoint(source: Path, run_json: Path | None) -> tuple[Path, dict]:
    """A run folder (its best checkpoint) or a .h5/.keras file, with the run's metadata."""
    source = Path(source)
    if source.is_dir():
        run_json = run_json or source / "run.json"
    elif run_json is None:
        run_json = source.parent / "run.json"
    if not Path(run_json).is_file():
        raise ConversionError(f"no run metadata at {run_json}: pass a training run folder or --run-json")
    meta = json.loads(Path(run_json).read_text())
    checkpoint = source / meta.get("best_checkpoint", "") if source.is_dir() else source
    if not checkpoint.is_file():
        raise ConversionError(f"checkpoint {checkpoint} does not exist")
    if checkpoint.suffix not in (".h5", ".keras"):
        raise ConversionError(f"checkpoint {checkpoint} is not a .h5 or .keras Keras model file")
    return checkpoint, meta


def load_keras_model(checkpoint: Path):
    import keras

    try:
        return keras.models.load_model(checkpoint, compile=False)
    except Exception as err:  # h5py, zipfile and Keras raise many kinds for a bad file
        raise ConversionError(f"cannot read {checkpoint} as a Keras model: {err}") from err


def input_spec(meta: dict) -> InputSpec:
    """What the served model takes: the backbone's normalisation (train/backbone.py) at the run's size and filter."""
    return BACKBONES[meta["backbone"]].input_spec(meta["input_size"], meta["interpolation"])


def load_split(meta: dict, items: list) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Each image file's bytes through the serving path: the pixels the Lambda makes of them (training's
    loader is that code) and the input spec model.json will carry (lambda_fn/preprocess.py InputSpec), so the
    gate's input is exactly what the Lambda would feed its model. Unreadable files are skipped with a
    warning. The Keras model gets the same input: training normalised with this very spec (InputSpec.normalise),
    and tests/train/test_backbone.py checks each registry entry's numbers against its weights' own preprocessing.

    Returns (x float32, labels, skipped paths).
    """
    spec = input_spec(meta)
    images, kept, skipped = read_images(items, spec.size, spec.interpolation)
    x = spec.normalise(images)
    return x, np.array([i.label for i in kept]), [str(p) for p in skipped]


def scan_for(meta: dict, data: Path) -> dict:
    """The dataset's splits, refusing a dataset whose classes are not the model's."""
    classes, items = scan_dataset(data)
    if classes != meta["classes"]:
        raise ConversionError(f"dataset {data} has classes {classes}, the model was trained on {meta['classes']}")
    return items


def tflite_logits(model, x: np.ndarray, progress: Progress) -> np.ndarray:
    """One image at a time, as the Lambda runs it."""
    rows = [np.zeros((0, len(model.labels)), np.float32)]  # no images (every reviewed photo refused): no rows
    for image in x:
        rows.append(model.logits(image[None]))
        progress.advance()
    return np.concatenate(rows)


def single_image_latency_ms(bundle: Path, x: np.ndarray) -> float:
    model = Model(bundle, threads=1)
    model.logits(x[:1])  # warm-up: first invoke prepares the delegate
    times = []
    for _ in range(LATENCY_RUNS):
        started = time.perf_counter()
        model.logits(x[:1])
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


@dataclass(frozen=True)
class Split:
    """One split as the gate reads it: the serving input, the true labels, and the Keras model's logits."""

    x: np.ndarray
    labels: np.ndarray
    keras: np.ndarray


@dataclass(frozen=True)
class Source:
    """The checkpoint being converted, and what every variant's bundle takes from it."""

    checkpoint: Path
    meta: dict  # its run.json
    items: dict  # the dataset's splits (int8-full and int8-mixed calibrate their ranges on training images)
    skipped: list[str]  # gate images that could not be read
    # the reviewed photos training did not see (input, labels), and those of none of the classes (input)
    shop: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    shop_photos: dict | None = None  # how many shop photos trained and proved (model.json "shop_photos")
    target_precision: float = TARGET_PRECISION  # the precision "confident" promises (convert --target-precision)

    @cached_property
    def representative(self) -> np.ndarray:
        """The training images int8 calibrates on (representative_images): decoded the first time a variant asks,
        once a conversion however many int8 variants share them (a few hundred images on the real dataset)."""
        return representative_images(self.meta, self.items["train"])


def gate(
    variant: str,
    val: Split,
    lite_val: np.ndarray,
    test: Split,
    lite_test: np.ndarray,
    reference: dict | None,
    lite_shop: tuple[np.ndarray, np.ndarray] | None = None,
    lite_none: np.ndarray | None = None,
    target: float = TARGET_PRECISION,
):
    """The parity figures, the variant's calibration (fitted on its own served logits: the shop's reviewed photos'
    where they prove the promise of `target` precision, else validation's), and whether they pass this variant's
    thresholds (the gate reads validation; `reference` is float32's figures)."""
    calibration = calibrate(lite_val, val.labels, lite_test, test.labels, lite_shop, lite_none, target)
    temperature, min_confidence = calibration["temperature"], calibration["min_confidence"]
    keras_p, lite_p = calibrated(val.keras, temperature), calibrated(lite_val, temperature)
    figures = {
        "images": int(len(val.labels)),
        "max_abs_logit_diff": float(np.abs(val.keras - lite_val).max()),
        "max_abs_probability_diff": float(np.abs(keras_p - lite_p).max()),  # calibrated, as served
        "top1_agreement": float((val.keras.argmax(1) == lite_val.argmax(1)).mean()),
        "confident_agreement": float(((keras_p.max(1) >= min_confidence) == (lite_p.max(1) >= min_confidence)).mean()),
        "keras_accuracy": float((val.keras.argmax(1) == val.labels).mean()),
        "tflite_accuracy": float((lite_val.argmax(1) == val.labels).mean()),
        "test_images": int(len(test.labels)),
        "test_top1_agreement": float((test.keras.argmax(1) == lite_test.argmax(1)).mean()),
        "test_accuracy": float((lite_test.argmax(1) == test.labels).mean()),
    }
    failures = []
    if variant == "float32":
        if figures["max_abs_logit_diff"] > FLOAT32_MAX_LOGIT_DIFF:
            failures.append(
                f"max abs logit difference {figures['max_abs_logit_diff']:.3g} > {FLOAT32_MAX_LOGIT_DIFF:g}"
            )
        if figures["max_abs_probability_diff"] > FLOAT32_MAX_PROBABILITY_DIFF:
            failures.append(
                f"max abs calibrated probability difference {figures['max_abs_probability_diff']:.3g} "
                f"> {FLOAT32_MAX_PROBABILITY_DIFF:g}"
            )
        if figures["top1_agreement"] < FLOAT32_MIN_AGREEMENT:
            failures.append(f"top-1 agreement {figures['top1_agreement']:.2%} < {FLOAT32_MIN_AGREEMENT:.0%}")
    else:
        assert reference is not None, "float32 is converted first: the smaller variants' reference"
        if figures["top1_agreement"] < SMALL_MIN_AGREEMENT:
            failures.append(f"top-1 agreement {figures['top1_agreement']:.2%} < {SMALL_MIN_AGREEMENT:.0%}")
        drop = reference["test_accuracy"] - figures["test_accuracy"]
        if drop > SMALL_MAX_ACCURACY_DROP:
            failures.append(
                f"test accuracy {drop * 100:.2f} points below float32 (> {SMALL_MAX_ACCURACY_DROP * 100:g})"
            )
    return {**figures, "passed": not failures, "failures": failures}, calibration


def min_runtime_version(tflite: Path) -> str:
    """The oldest TensorFlow Lite runtime (a tensorflow or tflite-runtime version) with every op version the
    model uses: the converter works it out op by op and writes it into the model's metadata."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(tflite))
    for entry in model.metadata or []:
        if entry.name == b"min_runtime_version":
            return bytes(model.buffers[entry.buffer].data).rstrip(b"\0").decode()
    raise ConversionError(f"{tflite} has no min_runtime_version metadata: which runtimes can serve it is unknown")


def bundle_meta(variant: str, checkpoint: Path, meta: dict) -> dict:
    """Everything the Lambda needs, so it guesses nothing."""
    return {
        "name": f"{checkpoint.stem}-{variant}",
        "variant": variant,
        "backbone": meta["backbone"],  # for a reader and the benches (its work per image); serving needs only the below
        "labels": meta["classes"],
        "input": input_spec(meta).to_json(),  # size, filter, mean, std, channels, pixels' version: the Lambda's
        "input_dtype": "float32",
        "source_checkpoint": checkpoint.name,
        "source_sha256": file_digest(checkpoint),
    }


def shop_split(meta: dict, reviewed: Path, items: dict) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], dict]:
    """The reviewed photos held out of training (train/reviewed.py) and those of none of the classes, read as the
    gate reads validation (the Lambda's path, load_split), and model.json's account of the shop's photos. A photo
    the run trained on is refused too: the proof needs photos the model has not seen, whatever file or rule the
    run used. Returns ((input, labels, input of the photos of none of the classes), the account)."""
    trained = meta.get("reviewed") or {}
    shop = shop_photos(reviewed, meta["classes"], items, Path(meta["config"]["cache"]), ("calibration", "none"))
    unseen = [item for item in shop.calibration if item.path.stem not in trained.get("trained_sha256", [])]
    x, labels, skipped = load_split(meta, unseen)
    x_none, _, skipped_none = load_split(meta, [Item(path, -1) for path in shop.not_these])  # no label to check
    record = {
        "training": {k: v for k, v in trained.items() if k != "trained_sha256"} or None,
        "calibration": {
            "file": str(reviewed),
            "photos": int(len(labels)),
            "trained_on_by_this_run": len(shop.calibration) - len(unseen),
            "unreadable": skipped + skipped_none,
            "refused": shop.refused,
            "none": shop.none,  # "not one of these classes": no label to check an answer against
        },
    }
    return (x, labels, x_none), record


def read_source(
    source: Path,
    run_json: Path | None,
    data: Path | None,
    reviewed: Path | None,
    target_precision: float = TARGET_PRECISION,
) -> tuple[Any, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], Source]:
    """The checkpoint, its validation and test splits read as the Lambda reads them ((input, labels) each), and
    what every variant takes from it (with reviewed, the shop's held-out photos; the precision promised)."""
    checkpoint, meta = resolve_checkpoint(source, run_json)
    keras_model = load_keras_model(checkpoint)
    data = Path(data or meta["config"]["data"])
    items = scan_for(meta, data)
    x_val, y_val, skipped_val = load_split(meta, items["validation"])
    x_test, y_test, skipped_test = load_split(meta, items["test"])
    shop, shop_record = shop_split(meta, reviewed, items) if reviewed else (None, None)
    if shop_record is None and meta.get("reviewed"):
        log.warning(
            "the run trained on %s: pass --reviewed to prove the promise on its held-out photos",
            meta["reviewed"]["file"],
        )
    source_info = Source(checkpoint, meta, items, skipped_val + skipped_test, shop, shop_record, target_precision)
    return keras_model, (x_val, y_val), (x_test, y_test), source_info


def convert(
    source: Path,
    out: Path,
    variants=DEFAULT_VARIANTS,
    run_json: Path | None = None,
    data: Path | None = None,
    reviewed: Path | None = None,
    target_precision: float = TARGET_PRECISION,
) -> dict:
    """Convert, gate and write each passing variant to out/<variant>/ (with reviewed, a reviewed-labels file:
    the promise proven on its photos training did not see; target_precision: the share of confident answers
    promised right, BadTarget outside (0, 1)). Returns a summary per variant."""
    target_precision = checked_target(target_precision)  # before any work
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ConversionError(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    keras_model, (x_val, y_val), (x_test, y_test), source_info = read_source(
        source, run_json, data, reviewed, target_precision
    )
    order = ["float32"] + [v for v in variants if v != "float32"]  # float32 is the reference
    shop = source_info.shop
    images = len(y_val) + len(y_test) + (len(shop[1]) + len(shop[2]) if shop else 0)
    trained = source_info.meta.get("budget")  # a run of make train: its rate, its stages estimated and actual
    rate = budgets.MachineRate.from_json(trained) if trained else budgets.machine_rate()
    passes = len(order) + 1  # each variant's, and Keras' reference pass
    work = passes * images * budgets.forward_gflop(keras_model)
    shares = BACKBONES[source_info.meta["backbone"]].efficiency
    what = f"{passes} passes x {images} images"
    budget = [budgets.stage("conversion and the gates", what, work, "conversion", rate, shares)]
    log.info("%s", budgets.table(budget, rate, "make convert's budget"))
    started = time.perf_counter()
    val = Split(x_val, y_val, keras_model.predict(x_val, verbose=0))
    test = Split(x_test, y_test, keras_model.predict(x_test, verbose=0))
    log.info("converting %s; gate on %d validation images", source_info.checkpoint.name, len(y_val))
    progress = Progress(log, "the gates on LiteRT", len(order) * images, "images")

    summary: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        export_saved_model(keras_model, tmp / "saved_model")
        for variant in order:
            summary[variant] = convert_variant(variant, tmp, val, test, summary.get("float32"), progress, source_info)
            if variant in variants:
                publish(tmp / variant, out / variant, summary[variant])
    out.mkdir(parents=True, exist_ok=True)
    (out / "conversion.json").write_text(json.dumps(summary, indent=2) + "\n")
    budget[0].actual_s = round(time.perf_counter() - started, 1)
    if trained:
        stages = [*budgets.from_json(trained["stages"]), *budget]
        log.info("%s", budgets.table(stages, rate, "make run, estimated and actual"))
    return summary


def convert_variant(variant: str, tmp: Path, val: Split, test: Split, reference, progress, source: Source) -> dict:
    """One variant from the SavedModel in tmp, gated (gate_candidate); its bundle is left in tmp/<variant> with a
    complete model.json. Returns its parity figures."""
    candidate = tmp / variant
    candidate.mkdir()
    (candidate / "model.tflite").write_bytes(variant_bytes(variant, tmp / "saved_model", source))
    return gate_candidate(variant, candidate, val, test, reference, progress, source)


def variant_bytes(variant: str, saved_model: Path, source: Source) -> bytes:
    """The variant's .tflite, made as convert/variants.py says; a calibrated one's int8 ranges from training
    images (Source.representative)."""
    made = VARIANTS[variant]
    if isinstance(made, Calibrated):
        return made.make(saved_model, source.representative)
    return made.make(saved_model)


def gate_candidate(variant: str, candidate: Path, val: Split, test: Split, reference, progress, source: Source) -> dict:
    """The model.tflite in candidate run on the Lambda's own interpreter class (every core), gated as `variant`
    and calibrated; candidate/model.json written complete. Returns its parity figures."""
    import tensorflow as tf

    info = bundle_meta(variant, source.checkpoint, source.meta)
    (candidate / "model.json").write_text(json.dumps({**info, "calibration": UNCALIBRATED}))
    served = Model(candidate, threads=os.cpu_count())
    lite_val, lite_test = tflite_logits(served, val.x, progress), tflite_logits(served, test.x, progress)
    lite_shop, lite_none = None, None
    if source.shop:
        lite_shop = (tflite_logits(served, source.shop[0], progress), source.shop[1])
        lite_none = tflite_logits(served, source.shop[2], progress)
    parity, calibration = gate(
        variant, val, lite_val, test, lite_test, reference, lite_shop, lite_none, source.target_precision
    )
    parity["latency_ms_1_thread"] = single_image_latency_ms(candidate, val.x)
    parity["size_bytes"] = (candidate / "model.tflite").stat().st_size
    parity["calibration"] = calibration
    info.update(
        checks=check_photos(candidate, source, val.labels, calibrated(lite_val, calibration["temperature"])),
        calibration={k: calibration[k] for k in SERVED_CALIBRATION},
        tflite_sha256=file_digest(candidate / "model.tflite"),
        min_runtime_version=min_runtime_version(candidate / "model.tflite"),  # lambda_fn/model.py checks it
        # each figure once: what serves is in "calibration" above, the measurements behind it here
        parity={**parity, "calibration": {k: v for k, v in calibration.items() if k not in SERVED_CALIBRATION}},
        skipped_images=source.skipped,
        shop_photos=source.shop_photos,
        tensorflow_version=tf.__version__,
    )
    (candidate / "model.json").write_text(json.dumps(info, indent=2) + "\n")
    return parity


def check_photos(bundle: Path, source: Source, truth: np.ndarray, probabilities: np.ndarray) -> list[dict]:
    """A validation photo per class (one the variant answers right where there is one) and its answer, copied into
    the bundle: what the PreTraffic hook asks a new version before it takes traffic (lambda_fn/pretraffic.py)."""
    kept = [i for i in source.items["validation"] if str(i.path) not in source.skipped]  # the rows of val
    classes, answers = source.meta["classes"], probabilities.argmax(1)
    chosen = []
    for label in range(len(classes)):
        rows = [k for k in range(len(kept)) if truth[k] == label]
        right = [k for k in rows if answers[k] == label]
        chosen += (right or rows)[:CHECK_PHOTOS_PER_CLASS]
    photos = [(kept[k].path, classes[truth[k]]) for k in chosen]
    given = [(classes[answers[k]], float(probabilities[k].max())) for k in chosen]
    return write_checks(bundle, photos, given)


def publish(candidate: Path, destination: Path, parity: dict) -> None:
    """A variant that passed its gate replaces the one at destination; one that failed removes it."""
    shutil.rmtree(destination, ignore_errors=True)  # never leave an earlier model under this name
    if not parity["passed"]:
        log.error("%s refused by the parity gate: %s", candidate.name, "; ".join(parity["failures"]))
        return
    shutil.copytree(candidate, destination)


def representative_images(meta: dict, train_items: list) -> np.ndarray:
    """A seeded sample of training images, every class alike, preprocessed, to calibrate int8 ranges."""
    return load_split(meta, int8.stratified(train_items, int8.REPRESENTATIVE_PER_CLASS))[0]


def table(summary: dict) -> str:
    lines = [
        "| variant | size (MB) | max abs logit diff | top-1 agreement val / test | val accuracy "
        "| test accuracy | test ECE raw -> calibrated | confident on test: share, accuracy "
        "| latency 1 thread (ms) | gate |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for variant, p in summary.items():
        test = p["calibration"]["test"]
        confident_accuracy = test["calibrated"]["confident_accuracy"]
        lines.append(
            f"| {variant} | {p['size_bytes'] / 1e6:.1f} | {p['max_abs_logit_diff']:.2g} "
            f"| {p['top1_agreement']:.2%} / {p['test_top1_agreement']:.2%} | {p['tflite_accuracy']:.3f} "
            f"| {p['test_accuracy']:.3f} | {test['raw']['ece']:.3f} -> {test['calibrated']['ece']:.3f} "
            f"| {test['calibrated']['confident_coverage']:.1%}, "
            f"{'-' if confident_accuracy is None else f'{confident_accuracy:.1%}'} "
            f"| {p['latency_ms_1_thread']} | {'pass' if p['passed'] else 'FAIL: ' + '; '.join(p['failures'])} |"
        )
    return "\n".join(lines)


def promise(calibration: dict) -> str:
    """One line: what "confident" promises, on which photos it was proven, or why nothing is confident."""
    proof, fallback = calibration["proof"], calibration["fallback"]
    if not proof["proven"]:
        return f"promise: none proven; {fallback}"
    line = (
        f"promise: confident answers (p >= {proof['min_confidence']:.6f}) right >= "
        f"{proof['target_precision'] * 100:g}% with {proof['confidence']:.0%} confidence, "
        f"proven on {proof['images']} {proof['photos']} photos: "
        f"{proof['right']} of {proof['confident']} confident answers right, lower bound {proof['bound']:.4f}, "
        f"coverage {proof['coverage']:.1%}"
    )
    outside = calibration.get("not_these_classes")
    if outside:
        line += f"; of {outside['photos']} photos of none of these classes, {outside['answered_confident']} confident"
    return line + (f" ({fallback})" if fallback else "")


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, help="a training run folder, or a .h5/.keras checkpoint")
    p.add_argument("--out", type=Path, default=OUT, help="bundle folder; each variant goes in a sub-folder")
    p.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated, from {list(VARIANTS)} (default: %(default)s)",
    )
    p.add_argument("--run-json", type=Path, help="the run's metadata (default: run.json beside the checkpoint)")
    p.add_argument("--data", type=Path, help="dataset folder for the gate (default: the one training used)")
    p.add_argument(
        "--reviewed",
        type=Path,
        help="a reviewed-labels file: the temperature and threshold fitted and proven on its photos training did "
        "not see (the half train/reviewed.py holds out), where they prove one; else on validation",
    )
    p.add_argument(
        "--target-precision",
        type=float,
        default=TARGET_PRECISION,
        help="the share of confident answers promised right, proven with 95%% confidence: a number between 0 and 1 "
        "(default: %(default)s); a lower one is proven on fewer photos (docs/shop-loop.md)",
    )
    args = p.parse_args(argv)
    try:
        summary = convert(
            args.source,
            args.out,
            args.variants.split(","),
            args.run_json,
            args.data,
            args.reviewed,
            args.target_precision,
        )
    except (ConversionError, ReviewedError, BadTarget) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(table(summary))
    print(promise(summary["float32"]["calibration"]))
    if not summary["float32"]["passed"]:
        print(f"error: float32 refused: {'; '.join(summary['float32']['failures'])}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
