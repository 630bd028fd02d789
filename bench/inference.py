"""Single-image latency: each TFLite variant on LiteRT (1 thread, all threads) against Keras
model.predict and the same model as a TensorFlow SavedModel; achieved GFLOP/s against this
machine's single-thread float32 matrix-multiply rate.

    .venv/bin/python -m bench.inference [--runs 30]

The reference rate is numpy's sgemm with OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE unset in that measurement alone: some machines set them so
that older OpenBLAS builds pick safe kernels, which holds a current one to
AVX2 even on AVX-512 processors. threadpoolctl reports which kernel ran.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import BUNDLE, REPO, machine, median_ms, sample_images, timed
from lambda_fn.model import Model
from lambda_fn.preprocess import decode_image, model_input
from train.backbone import BACKBONES

MATMUL_PROBE = """
import json, time, numpy as np, threadpoolctl
a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32); b = a.copy()
a @ b
times = []
for _ in range(10):
    t = time.perf_counter(); a @ b; times.append(time.perf_counter() - t)
blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"][0]
print(json.dumps({"gflops": 2 * 2048 ** 3 / min(times) / 1e9, "kernel": f"{blas['internal_api']} {blas['version']} "
                  f"{blas.get('architecture')}, {blas['num_threads']} thread"}))
"""


def matmul_one_thread() -> dict:
    """{"gflops", "kernel"}: numpy's single-thread sgemm 2048^3 with the OpenBLAS overrides unset."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    return json.loads(subprocess.check_output([sys.executable, "-c", MATMUL_PROBE], env=env, text=True))


def vector_extensions() -> str:
    flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    return " ".join(sorted(f for f in flags if f.startswith(("avx", "fma", "amx"))))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=30)
    args = p.parse_args(argv)
    import keras
    import tensorflow as tf

    variants = sorted(d for d in BUNDLE.iterdir() if (d / "model.tflite").is_file())
    meta = json.loads((BUNDLE / "float32" / "model.json").read_text())
    size = meta["input_size"]
    image = sample_images(1)[0]
    x = model_input(decode_image(image.read_bytes(), 10**8), size, meta["interpolation"], meta["preprocessing"])
    backbone = BACKBONES[meta["backbone"]]
    gflop = backbone.gflop * (size / backbone.size) ** 2  # convolutions scale with the pixels
    matmul = matmul_one_thread()
    peak = round(matmul["gflops"], 1)
    rows = []
    for variant in variants:
        for threads in (1, os.cpu_count()):
            model = Model(variant, threads)
            timed(model.logits, x, repeat=3)
            ms = median_ms(timed(model.logits, x, repeat=args.runs))
            rows.append((f"LiteRT {variant.name}", threads, ms))

    checkpoint = next(REPO.glob(f"artifacts/runs/*/{meta['source_checkpoint']}"))
    keras_model = keras.models.load_model(checkpoint, compile=False)
    timed(lambda v: keras_model.predict(v, verbose=0), x, repeat=3)
    rows.append(
        (
            "Keras model.predict",
            os.cpu_count(),
            median_ms(timed(lambda v: keras_model.predict(v, verbose=0), x, repeat=args.runs)),
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        keras_model.export(Path(tmp) / "sm", format="tf_saved_model", verbose=False)
        serve = tf.saved_model.load(str(Path(tmp) / "sm")).signatures["serve"]
        tensor = tf.constant(x)
        timed(serve, tensor, repeat=3)
        rows.append(
            ("TF SavedModel (serve signature)", os.cpu_count(), median_ms(timed(serve, tensor, repeat=args.runs)))
        )

    base = next(ms for name, threads, ms in rows if name == "LiteRT float32" and threads == 1)
    print(f"machine: {machine()}; vector extensions: {vector_extensions()}")
    print(f"model {meta['name']}, input {size}x{size} ({gflop:.1f} GFLOP/image); median of {args.runs}")
    print(
        f"single-thread float32 matmul (numpy sgemm 2048, OPENBLAS_CORETYPE/L2_SIZE unset): {peak} GFLOP/s "
        f"on {matmul['kernel']}"
    )
    print("| runtime | threads | latency (ms) | vs LiteRT float32, 1 thread | GFLOP/s | of 1-thread matmul peak |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, threads, ms in rows:
        achieved = gflop / (ms / 1000)
        print(
            f"| {name} | {threads} | {ms} | {base / ms:.2f}x | {achieved:.1f} | "
            f"{achieved / (peak * threads):.0%} (of {threads}x) |"
        )


if __name__ == "__main__":
    main()
