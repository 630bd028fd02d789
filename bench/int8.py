"""int8 through the unchanged gate: each way of making an int8 model tried on one trained run, gated as it serves.

    python -m bench.int8 artifacts/runs/latest [--data DIR]

Each method's .tflite goes through convert.convert's own gate (convert.gate_candidate: the Lambda's
interpreter class on LiteRT, top-1 agreement with Keras >= 99% on validation, test accuracy at most 0.5
points below float32's), the thresholds untouched. The methods: today's int8-full (calibrated on 100
random training images), the same on a set stratified by class and on a larger one (LARGER_PER_CLASS a
class), then the converter's quantization debugger (convert/int8.py) and three choices of layers kept in
float (int8-mixed, no longer integer-only): the first conv and the head's dense layers, the layers with the
largest error over their int8 step, and the first quarter of the graph (the highest resolutions).
The debugger's table lists the layers it found furthest from float. Latencies are single-image, one thread, on
this machine's CPU class (named below): not Lambda's where it is not AVX2 alone, and arm64 (Graviton2), where
int8's dot-product kernels would pay most, is not measured here.
"""

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

os.environ["KERAS_BACKEND"] = "tensorflow"  # as convert.convert: the converter reads TensorFlow graphs

import numpy as np  # noqa: E402

from bench.results import Field, Table, record  # noqa: E402
from convert import int8  # noqa: E402
from convert.convert import (  # noqa: E402
    Source,
    Split,
    convert_variant,
    gate_candidate,
    load_split,
    read_source,
)
from project.progress import Progress  # noqa: E402
from train.data import file_digest  # noqa: E402
from train.export import export_saved_model  # noqa: E402

BEFORE_IMAGES = 100  # int8-full's calibration before this bench: a random draw of training images
LARGER_PER_CLASS = 100  # a larger set, every class alike: do more images move int8-full's ranges?
LISTED_LAYERS = 10  # the debugger's worst layers shown
WORST_LAYERS = 5  # one choice of layers kept in float: the debugger's worst

METHODS = [
    Field("method", "method"),
    Field("variant", "variant"),
    Field("float_ops", "ops in float", "ops"),
    Field("size_mb", "size (MB)", "MB", "{:.1f}"),
    Field("agreement", "top-1 agreement, validation", "fraction", "{:.2%}"),
    Field("test_agreement", "top-1 agreement, test", "fraction", "{:.2%}"),
    Field("test_accuracy", "test accuracy", "fraction", "{:.4f}"),
    Field("drop_points", "points below float32", "points", "{:+.2f}"),
    Field("latency_ms", "latency 1 thread (ms)", "ms", "{:.1f}"),
    Field("convert_s", "conversion (s)", "s", "{:.0f}"),
    Field("gate", "gate"),
]
LAYERS = [
    Field("op", "op"),
    Field("layer", "layer (its output tensor's first name)"),
    Field("error_per_scale", "RMSE / scale (0.29: rounding alone)", "ratio", "{:.2f}"),
]

log = logging.getLogger("bench.int8")


def random_draw(source: Source, n: int = BEFORE_IMAGES) -> np.ndarray:
    """int8-full's representative set before this bench: a seeded random draw of training images."""
    train = source.items["train"]
    chosen = np.random.default_rng(0).choice(len(train), size=min(n, len(train)), replace=False)
    return load_split(source.meta, [train[k] for k in chosen])[0]


def larger_set(source: Source) -> np.ndarray:
    """LARGER_PER_CLASS training images of each class (all of a smaller class), preprocessed."""
    return load_split(source.meta, int8.stratified(source.items["train"], LARGER_PER_CLASS))[0]


def edges(errors: list[int8.LayerError]) -> list[str]:
    """The first op (the stem's conv, on the raw input) and the head's dense layers."""
    return [errors[0].tensor] + [e.tensor for e in errors[1:] if e.op == "FULLY_CONNECTED"]


@dataclass(frozen=True)
class Method:
    name: str
    variant: str  # the name it would serve under: int8-full only where every op is integer
    make: Callable[[], bytes]  # its .tflite


def methods(saved_model: Path, source: Source) -> tuple[list[Method], Callable[[], list[int8.LayerError]]]:
    """Each method, made when called; and the debugger's errors per layer (run once, by the first that needs it)."""
    representative = source.representative
    per_class = f"{int8.REPRESENTATIVE_PER_CLASS} per class ({len(representative)} images)"
    debugged = cache(lambda: int8.debugger(saved_model, representative))
    errors = cache(lambda: int8.layer_errors(debugged()))

    def in_float(tensors: Callable[[], list[str]]) -> Callable[[], bytes]:
        return lambda: int8.with_float_layers(debugged(), tensors())

    made = [
        Method(f"{BEFORE_IMAGES} random training images (before)", "int8-full", lambda: before(saved_model, source)),
        Method(per_class, "int8-full", lambda: int8.full(saved_model, representative)),
        Method(f"{LARGER_PER_CLASS} per class", "int8-full", lambda: int8.full(saved_model, larger_set(source))),
        Method(f"{per_class}, first conv and dense layers in float", "int8-mixed", in_float(lambda: edges(errors()))),
        Method(f"{per_class}, the {WORST_LAYERS} worst layers in float", "int8-mixed", in_float(worst_of(errors))),
        Method(f"{per_class}, the first quarter of the layers in float", "int8-mixed", in_float(first_of(errors))),
    ]
    return made, errors


def worst_of(errors: Callable[[], list[int8.LayerError]]) -> Callable[[], list[str]]:
    return lambda: [e.tensor for e in int8.worst(errors(), WORST_LAYERS)]


def first_of(errors: Callable[[], list[int8.LayerError]]) -> Callable[[], list[str]]:
    """int8-mixed's choice (int8.first_layers): the stem and the first blocks, at the highest resolutions."""
    return lambda: int8.first_layers(errors())


def layer_name(tensor: str) -> str:
    """A fused op's output tensor as the layer that names it first: model/base/layer/op -> layer
    ("block1a_dw_activation_1"), model/layer/op -> layer; a tensor named otherwise, as it is."""
    parts = tensor.split(";")[0].split("/")
    return parts[2] if len(parts) > 3 else parts[-2] if len(parts) > 1 else parts[0]


def before(saved_model: Path, source: Source) -> bytes:
    return int8.full(saved_model, random_draw(source))


def row(method: str, variant: str, tflite: bytes, parity: dict, reference: dict, seconds: float | None) -> dict:
    return {
        "method": method,
        "variant": variant,
        "float_ops": len(int8.float_ops(tflite)),
        "size_mb": parity["size_bytes"] / 1e6,
        "agreement": parity["top1_agreement"],
        "test_agreement": parity["test_top1_agreement"],
        "test_accuracy": parity["test_accuracy"],
        "drop_points": round((parity["test_accuracy"] - reference["test_accuracy"]) * 100, 2),
        "latency_ms": parity["latency_ms_1_thread"],
        "convert_s": None if seconds is None else round(seconds),
        "gate": "pass" if parity["passed"] else "refused: " + "; ".join(parity["failures"]),
    }


def measure(run: Path, data: Path | None) -> tuple[list[dict], list[int8.LayerError], Source]:
    keras_model, (x_val, y_val), (x_test, y_test), source = read_source(run, None, data, None)
    val = Split(x_val, y_val, keras_model.predict(x_val, verbose=0))
    test = Split(x_test, y_test, keras_model.predict(x_test, verbose=0))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        export_saved_model(keras_model, tmp / "saved_model")
        made, errors = methods(tmp / "saved_model", source)
        progress = Progress(log, "the gates on LiteRT", (1 + len(made)) * (len(y_val) + len(y_test)), "images")
        reference = convert_variant("float32", tmp, val, test, None, progress, source)
        float32 = (tmp / "float32" / "model.tflite").read_bytes()
        records = [row("float32 (the reference)", "float32", float32, reference, reference, None)]
        for k, method in enumerate(made):
            started = time.perf_counter()
            tflite = method.make()
            seconds = time.perf_counter() - started
            candidate = tmp / f"method-{k}"
            candidate.mkdir()
            (candidate / "model.tflite").write_bytes(tflite)
            parity = gate_candidate(method.variant, candidate, val, test, reference, progress, source)
            records.append(row(method.name, method.variant, tflite, parity, reference, seconds))
            log.info("%s: %s", method.name, records[-1]["gate"])
        return records, errors(), source


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a training run folder (its best checkpoint and run.json)")
    p.add_argument("--data", type=Path, help="dataset folder (default: the one training used)")
    args = p.parse_args(argv)
    records, errors, source = measure(args.run, args.data)
    layers = [
        {"op": e.op, "layer": layer_name(e.tensor), "error_per_scale": round(e.error_per_scale, 3)}
        for e in int8.worst(errors, LISTED_LAYERS)
    ]
    passed = [r["method"] for r in records[1:] if r["gate"] == "pass"]
    notes = [
        f"{source.meta['backbone']}, {len(errors)} quantised layers; "
        + (f"passed the gate: {', '.join(passed)}" if passed else "no method passed the gate"),
        "latencies: this machine's CPU class only; arm64 (Lambda's Graviton2) is not measured here",
    ]
    tables = [
        Table("methods", METHODS, records, "Each method through the gate"),
        Table("layers", LAYERS, layers, "The debugger's worst layers (error over one int8 step)"),
    ]
    model = {"name": source.checkpoint.stem, "sha256": file_digest(source.checkpoint)}
    record(__spec__.name, argv, "int8 through the gate", tables, notes, model)


if __name__ == "__main__":
    main()
