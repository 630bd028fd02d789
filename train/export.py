"""Keras model -> TFLite: the route Keras 3 and TensorFlow document, for conversion and for the cache's fill.

Keras 3 `model.export(..., format="tf_saved_model")`, then `tf.lite.TFLiteConverter.from_saved_model`;
`TFLiteConverter.from_keras_model` relies on Keras 2 internals and fails or misbehaves on Keras 3 models.
"""

from pathlib import Path

import numpy as np


def export_saved_model(model, folder: Path) -> Path:
    model.export(str(folder), format="tf_saved_model", verbose=False)
    return folder


def tflite_bytes(saved_model: Path, variant: str = "float32", representative: np.ndarray | None = None) -> bytes:
    """One variant (convert.convert's VARIANTS) of the SavedModel as a .tflite file's bytes."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # alone: dynamic-range int8 weights
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == "int8-full":
        assert representative is not None, "int8-full is calibrated on representative images"
        # Every op in int8, calibrated on training images; input and output stay
        # float32 (quantised at the edges) so the Lambda feeds every variant alike.
        converter.representative_dataset = lambda: ([x[None]] for x in representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()
