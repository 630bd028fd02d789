"""The variants convert makes, in one table: each name and how its .tflite is made from the SavedModel, from it
alone or calibrated on representative training images too (convert.Source.representative: decoded once a
conversion, only where a calibrated variant is asked for). A new variant is a row here, and a value of the
template's ModelVariant (tests/infra/test_template.py checks that they agree).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convert import int8
from train.export import converter, tflite_bytes


@dataclass(frozen=True)
class Plain:
    """Made from the SavedModel alone."""

    make: Callable[[Path], bytes]


@dataclass(frozen=True)
class Calibrated:
    """int8 whose activations' ranges come from representative training images."""

    make: Callable[[Path, np.ndarray], bytes]


def float16(saved_model: Path) -> bytes:
    """float16 weights, computed in float32."""
    import tensorflow as tf

    halved = converter(saved_model, optimised=True)
    halved.target_spec.supported_types = [tf.float16]
    return halved.convert()


def int8_dynamic(saved_model: Path) -> bytes:
    """int8 weights, activations quantised as they come (dynamic range)."""
    return converter(saved_model, optimised=True).convert()


VARIANTS: dict[str, Plain | Calibrated] = {
    "float32": Plain(tflite_bytes),  # the reference: the gate holds it to Keras' own answers
    "float16": Plain(float16),
    "int8-dynamic": Plain(int8_dynamic),
    "int8-full": Calibrated(int8.full),  # every op in int8
    "int8-mixed": Calibrated(int8.mixed),  # int8 but for the first quarter of the layers, kept in float
}
