"""The served model: model.tflite and the model.json beside it, on the LiteRT interpreter.

The conversion stage's parity gate runs its candidates through this same
class, so what was verified is what serves.
"""

import json
import threading
from pathlib import Path

import numpy as np

try:
    from ai_edge_litert.interpreter import Interpreter  # LiteRT, the successor of tflite-runtime
except ImportError:
    try:
        from tflite_runtime.interpreter import Interpreter  # the course's runtime (Python <= 3.11)
    except ImportError:
        from tensorflow.lite import Interpreter  # development only: there is no TensorFlow in the image

PREPROCESSING = "xception"  # the convention lambda_fn/preprocess.py reproduces (train/backbone.py names it)


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
        if self.meta["preprocessing"] != PREPROCESSING:
            raise ValueError(
                f"{bundle / 'model.json'} asks for {self.meta['preprocessing']!r} preprocessing; this "
                f"function implements {PREPROCESSING!r} (lambda_fn/preprocess.py): add the backbone's there"
            )
        self.labels: list[str] = self.meta["labels"]
        self.input_size: int = self.meta["input_size"]
        self.interpolation: str = self.meta["interpolation"]
        self.interpreter = Interpreter(model_path=str(bundle / "model.tflite"), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self.lock = threading.Lock()  # an interpreter runs one invocation at a time

    def logits(self, x: np.ndarray) -> np.ndarray:
        """x: one preprocessed image, float32 of shape (1, size, size, 3). Returns (1, n_classes)."""
        with self.lock:
            self.interpreter.set_tensor(self.input_index, x)
            self.interpreter.invoke()
            return self.interpreter.get_tensor(self.output_index).copy()
