"""The served model: model.tflite and the model.json beside it, on the LiteRT interpreter.

The conversion stage's parity gate runs its candidates through this same
class, so what was verified is what serves.
"""

import json
import logging
import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import numpy as np

from lambda_fn.preprocess import InputSpec

try:
    from ai_edge_litert.interpreter import Interpreter  # LiteRT, the successor of tflite-runtime

    RUNTIME = "ai-edge-litert"
except ImportError:
    # the course's runtime (Python <= 3.11). TensorFlow is no fallback: 2.20+ ships no tf.lite.Interpreter.
    from tflite_runtime.interpreter import Interpreter

    RUNTIME = "tflite-runtime"
RUNTIME_VERSION = version(RUNTIME)
# tflite-runtime numbers its releases as TensorFlow does, the scale of a model's min_runtime_version;
# LiteRT numbers its own, so for it the interpreter's own refusal to load is the check.
TENSORFLOW_NUMBERED = ("tflite-runtime",)


@contextmanager
def native_stderr_as_records():
    """The runtime's C++ code writes to file descriptor 2 ("INFO: Created TensorFlow Lite XNNPACK delegate
    for CPU."): in Lambda a raw line in a JSON log stream. While it builds, fd 2 goes to a file, and what it
    wrote is logged afterwards as records, one a line."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode(errors="replace").splitlines():
                if line.strip():
                    logging.getLogger("fashion.runtime").info(line.strip(), extra={"runtime": RUNTIME})


def release(text: str) -> tuple[int, ...]:
    """'2.14.0' -> (2, 14, 0); pre-release tails ('2.21.0rc1') are ignored."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match:
        raise ValueError(f"{text!r} is not a version number")
    return tuple(int(part or 0) for part in match.groups())


def runtime_cannot_serve(needed: str | None, runtime: str = RUNTIME, runtime_version: str = RUNTIME_VERSION) -> bool:
    """Whether a TensorFlow-numbered runtime is older than the model's min_runtime_version."""
    return needed is not None and runtime in TENSORFLOW_NUMBERED and release(runtime_version) < release(needed)


def needs_newer_runtime(model_file: Path, needed: str | None) -> str:
    return (
        f"{model_file} needs a TensorFlow Lite runtime of release {needed or 'unknown'} or later (tflite-runtime >= "
        f"{needed or '?'}, or ai-edge-litert); this function runs on {RUNTIME} {RUNTIME_VERSION}: "
        "serve a variant it can run (float32 runs on any) or install a newer runtime"
    )


class Model:
    """One interpreter, its tensor indices and its labels, loaded once."""

    def __init__(self, bundle: Path, threads: int | None = None):
        bundle = Path(bundle)
        if not (bundle / "model.json").is_file() or not (bundle / "model.tflite").is_file():
            raise FileNotFoundError(
                f"no serving bundle (model.tflite and model.json) in {bundle}: "
                "run `make run`, or point MODEL_DIR at a bundle folder"
            )
        self.meta = json.loads((bundle / "model.json").read_text())
        if "calibration" not in self.meta or "input" not in self.meta:
            raise ValueError(
                f"{bundle / 'model.json'} has no input spec or no calibration (a bundle made before them): "
                "convert the checkpoint again (make convert)"
            )
        try:
            self.input = InputSpec.from_json(self.meta["input"])  # what the model takes, as data
        except (ValueError, TypeError) as err:
            raise ValueError(f"{bundle / 'model.json'}: {err}") from None
        self.labels: list[str] = self.meta["labels"]
        # lambda_fn/confidence.py: the logits' divisor, and the calibrated probability an answer must reach
        self.temperature: float = self.meta["calibration"]["temperature"]
        self.min_confidence: float = self.meta["calibration"]["min_confidence"]
        model_file, needed = bundle / "model.tflite", self.meta.get("min_runtime_version")
        if runtime_cannot_serve(needed):
            raise RuntimeError(needs_newer_runtime(model_file, needed))
        try:
            with native_stderr_as_records():
                self.interpreter = Interpreter(model_path=str(model_file), num_threads=threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            if "find op for builtin opcode" not in str(err):  # an op version this runtime lacks; else not ours to say
                raise
            raise RuntimeError(f"{needs_newer_runtime(model_file, needed)} ({err})") from err
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self.lock = threading.Lock()  # an interpreter runs one invocation at a time

    def input_of(self, data: bytes, max_bytes: int) -> np.ndarray:
        """An image file's bytes -> this model's input, as model.json says (lambda_fn/preprocess.py)."""
        return self.input.model_input(data, max_bytes)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """x: one preprocessed image, float32 of shape (1, size, size, 3). Returns (1, n_classes)."""
        with self.lock:
            self.interpreter.set_tensor(self.input_index, x)
            self.interpreter.invoke()
            return self.interpreter.get_tensor(self.output_index).copy()
