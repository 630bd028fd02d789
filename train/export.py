"""Keras model -> TFLite: the route Keras 3 and TensorFlow document, for conversion and for the cache's fill.

Keras 3 `model.export(..., format="tf_saved_model")`, then `tf.lite.TFLiteConverter.from_saved_model`;
`TFLiteConverter.from_keras_model` relies on Keras 2 internals and fails or misbehaves on Keras 3 models.
"""

from pathlib import Path

import numpy as np


def export_saved_model(model, folder: Path) -> Path:
    model.export(str(folder), format="tf_saved_model", verbose=False)
    return folder


# What tflite_bytes makes; int8-mixed (layers kept in float) is made by convert/int8.py from calibrating_converter
PLAIN_VARIANTS = ("float32", "float16", "int8-dynamic", "int8-full")


def calibrating_converter(saved_model: Path, representative: np.ndarray):
    """The converter set for post-training int8 with ranges from these images (each a batch of one)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[None]] for x in representative)
    return converter


def tflite_bytes(saved_model: Path, variant: str = "float32", representative: np.ndarray | None = None) -> bytes:
    """One of PLAIN_VARIANTS of the SavedModel as a .tflite file's bytes."""
    import tensorflow as tf

    if variant not in PLAIN_VARIANTS:
        raise ValueError(
            f"tflite_bytes makes {', '.join(PLAIN_VARIANTS)}, not {variant!r} (int8-mixed: convert/int8.py)"
        )
    if variant == "int8-full":
        assert representative is not None, "int8-full is calibrated on representative images"
        # Every op in int8, calibrated on training images; input and output stay
        # float32 (quantised at the edges) so the Lambda feeds every variant alike.
        converter = calibrating_converter(saved_model, representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return converter.convert()
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # alone: dynamic-range int8 weights
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()
