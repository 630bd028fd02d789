"""One inference engine timed in a fresh process: `python -m bench.engines ENGINE MODEL X.npy THREADS RUNS [WARM_UP]`.

Run by bench.inference with each engine's own Python (the engines live in different virtual environments), so
that the import-to-first-prediction time is what a Lambda's cold start would pay. Prints one JSON line: the
wall-clock time of the first prediction's end (the parent knows when it started the process), the first
invoke's duration, the warm durations and the logits. Imports nothing but the engine it runs.
"""

import json
import sys
import time
from pathlib import Path


def litert(model: Path, threads: int):
    """The serving Model (LiteRT, or tflite-runtime where that is what the environment holds) on a bundle variant."""
    from lambda_fn.model import Model

    return Model(model, threads).logits


def onnxruntime(model: Path, threads: int):
    """tflite2onnx writes the graph channels-first: the NHWC input is transposed on the way in (counted)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    (entry,) = session.get_inputs()
    channels_first = entry.shape[1] == 3
    return lambda x: session.run(None, {entry.name: x.transpose(0, 3, 1, 2) if channels_first else x})[0]


def openvino(model: Path, threads: int, precision: str = "f32"):
    """OpenVINO reads the .tflite itself. f32 unless asked: on a CPU with BF16 it would otherwise pick bf16."""
    import openvino as ov

    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision}
    compiled = ov.Core().compile_model(str(model), "CPU", config)
    return lambda x: compiled(x)[0]


def openvino_bf16(model: Path, threads: int):
    """The same graph computed in bfloat16 (AVX512_BF16 or AMX), the weights and activations rounded to it."""
    return openvino(model, threads, "bf16")


def tensorflow(model: Path, threads: int):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    serve = tf.saved_model.load(str(model)).signatures["serve"]
    return lambda x: next(iter(serve(tf.constant(x)).values())).numpy()


ENGINES = {
    "litert": litert,
    "onnxruntime": onnxruntime,
    "openvino": openvino,
    "openvino-bf16": openvino_bf16,
    "tensorflow": tensorflow,
}
WARM_UP = 3  # invokes after the first, untimed: caches and thread pools settle


def main(argv: list[str]) -> None:
    engine, model, inputs, threads, runs = argv[0], Path(argv[1]), Path(argv[2]), int(argv[3]), int(argv[4])
    warm_up = int(argv[5]) if len(argv) > 5 else WARM_UP  # 0: one invoke alone (bench.avx2_answers, emulated)
    import numpy as np

    x = np.load(inputs)
    run = ENGINES[engine](model, threads)
    started = time.perf_counter()
    logits = np.asarray(run(x))
    first = time.perf_counter() - started
    first_done = time.time()
    for _ in range(warm_up):
        run(x)
    warm = []
    for _ in range(runs):
        started = time.perf_counter()
        run(x)
        warm.append(time.perf_counter() - started)
    print(json.dumps({"first_done": first_done, "first_s": first, "warm_s": warm, "logits": logits.ravel().tolist()}))


if __name__ == "__main__":
    main(sys.argv[1:])
