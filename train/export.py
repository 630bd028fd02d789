"""Keras model -> TFLite: the route Keras 3 and TensorFlow document, for conversion and for the cache's fill.

Keras 3 `model.export(..., format="tf_saved_model")`, then `tf.lite.TFLiteConverter.from_saved_model`;
`TFLiteConverter.from_keras_model` relies on Keras 2 internals and fails or misbehaves on Keras 3 models.
Each variant convert makes sets the converter its own way: convert/variants.py.
"""

from pathlib import Path

import numpy as np


def export_saved_model(model, folder: Path) -> Path:
    model.export(str(folder), format="tf_saved_model", verbose=False)
    return folder


def converter(saved_model: Path, optimised: bool = False):
    """The TFLite converter on the SavedModel; optimised: with the converter's default optimisation (alone, int8
    weights; with representative images, int8 activations too; with float16 types, float16 weights)."""
    import tensorflow as tf

    made = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if optimised:
        made.optimizations = [tf.lite.Optimize.DEFAULT]
    return made


def tflite_bytes(saved_model: Path) -> bytes:
    """The SavedModel as a float32 .tflite file's bytes (the cache's fill, and convert's float32)."""
    return converter(saved_model).convert()


def calibrating_converter(saved_model: Path, representative: np.ndarray):
    """The converter set for post-training int8 with ranges from these images (each a batch of one)."""
    calibrating = converter(saved_model, optimised=True)
    calibrating.representative_dataset = lambda: ([x[None]] for x in representative)
    return calibrating
