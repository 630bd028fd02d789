"""Inference: the served model on LiteRT beside the engines a user would pick instead, one image at a time.

    python -m bench.inference [--bundle artifacts/bundle] [--runs 30]

Each engine runs in a fresh process of its own environment on the same model, the same input and the same
thread counts (1 and every core): LiteRT, what the Lambda serves, on every variant of the bundle;
tflite-runtime 2.14, the course's runtime (.venv-tflite-runtime); ONNX Runtime on an ONNX graph converted from
the float32 .tflite by tflite2onnx, and OpenVINO reading that .tflite itself (both from .venv-engines: `make
engines`), on a CPU with bfloat16 instructions also in bfloat16; TensorFlow on the SavedModel exported from
the same checkpoint. Latency is the median and 90th percentile of warm invokes; GFLOP/s is the model's work
per image over the median; its share is of this machine's single-thread sgemm rate (numpy, OPENBLAS_CORETYPE
and OPENBLAS_L2_SIZE unset in that measurement alone: some machines set them so that older OpenBLAS builds
pick safe kernels) times the threads. "vs fastest" compares rows of the same thread count. The first invoke,
and the time from the process's start to its first prediction (imports, model load, first invoke), are what a
Lambda's cold start would pay. Every engine's logits are compared with LiteRT float32's. Whether a Lambda's
CPU has bfloat16 instructions is not known in advance: a bfloat16 row is what this CPU offers, not a promise.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.bill import LATENCY
from bench.common import checkpoint_of, parser, percentile_ms, python_for_serving, sample_images
from bench.results import Field, Table, bfloat16, model_of, record
from harness import REPO
from lambda_fn.preprocess import InputSpec
from lambda_fn.settings import DEFAULT_MAX_DECODED_BYTES
from train.backbone import BACKBONES
from train.budget import sgemm_one_thread
from train.export import export_saved_model

TFLITE_RUNTIME_PYTHON = REPO / ".venv-tflite-runtime" / "bin" / "python"
ENGINES_PYTHON = REPO / ".venv-engines" / "bin" / "python"
AGREEMENT = 1e-3  # max |logit difference| from LiteRT float32 for a float32 engine: summation order, nothing more


def time_engine(python: Path, engine: str, model: Path, inputs: Path, threads: int, runs: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.time()
    out = subprocess.run(
        [str(python), "-m", "bench.engines", engine, str(model), str(inputs), str(threads), str(runs)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(f"{engine} on {model} failed:\n{out.stderr[-2000:]}")
    timing = json.loads(out.stdout.strip().splitlines()[-1])
    return {**timing, "to_first_s": timing["first_done"] - started}


def exported(bundle: Path, tmp: Path) -> dict[str, Path]:
    """The float32 model for the other engines: ONNX from the .tflite, a SavedModel from the checkpoint."""
    float32 = bundle / "float32"
    models = {"openvino": float32 / "model.tflite"}
    if ENGINES_PYTHON.exists():
        onnx = tmp / "model.onnx"
        convert = [
            "-c",
            "import sys, tflite2onnx; tflite2onnx.convert(sys.argv[1], sys.argv[2])",
            str(float32 / "model.tflite"),
            str(onnx),
        ]
        subprocess.run([str(ENGINES_PYTHON), *convert], check=True, capture_output=True)
        models["onnxruntime"] = onnx
    checkpoint = checkpoint_of(float32)
    if checkpoint:
        import keras

        models["tensorflow"] = export_saved_model(keras.models.load_model(checkpoint, compile=False), tmp / "saved")
    return models


@dataclass
class Candidate:
    engine: str  # as the table names it
    variant: str
    python: Path  # the environment it runs in
    runner: str  # bench.engines' name for it
    model: Path | None  # None: could not be made here


def candidates(bundle: Path, models: dict[str, Path]) -> list[Candidate]:
    litert = [
        Candidate("LiteRT", v.name, python_for_serving(), "litert", v)
        for v in sorted(bundle.iterdir())
        if (v / "model.tflite").is_file()
    ]
    bf16 = bool(bfloat16())  # a CPU that computes in bfloat16: OpenVINO runs the float32 graph in it
    return litert + [
        Candidate("tflite-runtime 2.14", "float32", TFLITE_RUNTIME_PYTHON, "litert", bundle / "float32"),
        Candidate("ONNX Runtime", "float32", ENGINES_PYTHON, "onnxruntime", models.get("onnxruntime")),
        Candidate("OpenVINO", "float32", ENGINES_PYTHON, "openvino", models.get("openvino")),
        *([Candidate("OpenVINO", "bfloat16", ENGINES_PYTHON, "openvino-bf16", models.get("openvino"))] if bf16 else []),
        Candidate("TensorFlow SavedModel", "float32", Path(sys.executable), "tensorflow", models.get("tensorflow")),
    ]


def row(c: Candidate, threads: int, timing: dict, fastest: float, reference: np.ndarray, gflop: float, sgemm: float):
    median = statistics.median(timing["warm_s"])
    rate = gflop / median
    return {
        "engine": c.engine,
        "model": c.variant,
        "threads": threads,
        "median_ms": round(median * 1000, 1),
        "p90_ms": percentile_ms(timing["warm_s"], 0.9),
        "gflops": round(rate, 1),
        # int8 kernels are not sgemm's: no share for them
        "sgemm_share": round(rate / (sgemm * threads), 4) if c.variant.startswith("float") else None,
        "vs_fastest": round(median / fastest, 4),
        "first_invoke_ms": round(timing["first_s"] * 1000),
        "to_first_prediction_ms": round(timing["to_first_s"] * 1000),
        "logit_diff": float(np.abs(np.array(timing["logits"]) - reference).max()),
    }


FIELDS = [
    Field("engine", "engine"),
    Field("model", "model"),
    Field("threads", "threads", "threads"),
    Field("median_ms", "median (ms)", "ms"),
    Field("p90_ms", "p90 (ms)", "ms"),
    Field("gflops", "GFLOP/s", "GFLOP/s"),
    Field("sgemm_share", "of sgemm x threads", "fraction", "{:.0%}"),
    Field("vs_fastest", "vs fastest", "ratio", "{:.2f}x"),
    Field("first_invoke_ms", "first invoke (ms)", "ms"),
    Field("to_first_prediction_ms", "process start to first prediction (ms)", "ms"),
    Field("logit_diff", "max abs logit diff vs LiteRT float32", "logit", "{:.1e}"),
]


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--runs", type=int, default=30)
    args = p.parse_args(argv)
    meta = json.loads((args.bundle / "float32" / "model.json").read_text())
    spec = InputSpec.from_json(meta["input"])
    x = spec.model_input(sample_images(1)[0].read_bytes(), DEFAULT_MAX_DECODED_BYTES)
    backbone = BACKBONES[meta["backbone"]]
    gflop = backbone.gflop * (spec.size / backbone.size) ** 2  # convolutions scale with the pixels
    sgemm, cores = sgemm_one_thread(), os.cpu_count() or 1
    timings: list[tuple[Candidate, int, dict]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        np.save(tmp / "x.npy", x)
        runnable = candidates(args.bundle, exported(args.bundle, tmp))
        missing = [c.engine for c in runnable if c.model is None or not c.python.exists()]
        for c in runnable:
            for threads in sorted({1, cores}) if c.engine not in missing else ():
                assert c.model is not None  # not missing
                timings.append(
                    (c, threads, time_engine(c.python, c.runner, c.model, tmp / "x.npy", threads, args.runs))
                )
    reference = np.array(next(t["logits"] for c, _, t in timings if (c.engine, c.variant) == ("LiteRT", "float32")))
    medians = [(threads, statistics.median(t["warm_s"])) for _, threads, t in timings]
    records = [
        row(c, threads, t, min(m for th, m in medians if th == threads), reference, gflop, sgemm)
        for c, threads, t in timings
    ]
    others = [r for r in records if r["engine"] != "LiteRT" and r["threads"] == cores]
    best = min(others, key=lambda r: r["median_ms"]) if others else None
    served = next(r for r in records if (r["engine"], r["model"], r["threads"]) == ("LiteRT", "float32", cores))
    notes = [
        f"{gflop:.1f} GFLOP per image at {spec.size}x{spec.size}; single-thread sgemm rate "
        f"{sgemm:.1f} GFLOP/s; median and p90 of {args.runs} warm invokes",
    ]
    if best:
        faster = best["median_ms"] < served["median_ms"] / 1.15
        verdict = "more than 15% faster: worth a look (switching is a decision for later)" if faster else "within 15%"
        notes.append(
            f"on {cores} threads the fastest other engine is {best['engine']} {best['model']} at {best['median_ms']} "
            f"ms against LiteRT float32's {served['median_ms']} ms: {verdict}"
        )
    notes += [f"not measured, its environment or model is missing here: {', '.join(missing)}"] if missing else []
    notes += [
        f"{r['engine']} differs from LiteRT float32 by more than {AGREEMENT}"
        for r in records
        if r["model"] == "float32" and r["logit_diff"] > AGREEMENT  # the other variants are rounded on purpose
    ]
    title = "Inference: LiteRT beside the engines a user would pick instead"
    tables = [Table(LATENCY, FIELDS, records)]
    record(__spec__.name, argv, title, tables, notes, model_of(args.bundle / "float32"))


if __name__ == "__main__":
    main()
