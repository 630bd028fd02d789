"""int8 below float32: the images that calibrate its ranges, the converter's quantization debugger's error per layer,
and what is made of them (issue 43; docs/int8.md shows what each method did to EfficientNet-Lite2).

The debugger (tf.lite.experimental.QuantizationDebugger) runs the int8 model with each op's float twin beside it
and reports, per op, how far int8 strays from float on the op's own input. Its error over the output's scale
(one int8 step) is about 0.29 (1/sqrt(12)) for an op rounded ideally: a layer well above it loses more than
rounding, and is the candidate to keep in float (`denylisted_nodes`). A model with any op kept in float is no
longer integer-only, so it is its own variant (`int8-mixed`: the first quarter of the layers in float), never
`int8-full`.
"""

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from train.data import Item
from train.export import calibrating_converter

REPRESENTATIVE_PER_CLASS = 30  # training images per class that calibrate int8's ranges, every class alike
DEBUG_IMAGES = 30  # of those, the images the debugger runs its float twin of every op on
FLOAT_SHARE = 0.25  # int8-mixed: the first quarter of the quantised layers (the highest resolutions) in float
EDGE_OPS = ("QUANTIZE", "DEQUANTIZE")  # the float input and output's conversions: every variant has them


def stratified(items: list[Item], per_class: int, seed: int = 0) -> list[Item]:
    """A seeded sample of per_class items of each label (all of a smaller class), in label order: the ranges
    are calibrated on every class alike, not on the larger classes' share of a random draw."""
    rng = np.random.default_rng(seed)
    chosen: list[Item] = []
    for label in sorted({i.label for i in items}):
        of_label = [i for i in items if i.label == label]
        picked = rng.choice(len(of_label), size=min(per_class, len(of_label)), replace=False)
        chosen += [of_label[k] for k in sorted(picked)]
    return chosen


def debugger(saved_model: Path, representative: np.ndarray, images: int = DEBUG_IMAGES):
    """The quantization debugger on the calibrated model, run on `images` representative images spread evenly
    over them (they come in label order: the first ones would all be one class)."""
    import tensorflow as tf

    spread = representative[np.linspace(0, len(representative) - 1, min(images, len(representative))).astype(int)]
    found = tf.lite.experimental.QuantizationDebugger(
        converter=calibrating_converter(saved_model, representative),
        debug_dataset=lambda: ([x[None]] for x in spread),
    )
    found.run()
    return found


@dataclass(frozen=True)
class LayerError:
    """One quantised op's own error (float twin vs int8 on the same input), over its output's int8 step."""

    op: str  # CONV_2D, DEPTHWISE_CONV_2D, ADD, FULLY_CONNECTED, ...
    tensor: str  # its output tensor: the name denylisted_nodes takes
    error_per_scale: float  # root mean squared error / scale: about 0.29 where int8 only rounds
    scale: float


def layer_errors(found) -> list[LayerError]:
    """Each quantised op's error, in the graph's order (the first conv first, the logits last)."""
    dump = io.StringIO()
    found.layer_statistics_dump(dump)
    dump.seek(0)
    return [
        LayerError(row["op_name"], row["tensor_name"], math.sqrt(float(row["mean_squared_error"])) / scale, scale)
        for row in csv.DictReader(dump)
        if (scale := float(row["scale"])) > 0
    ]


def worst(errors: list[LayerError], n: int) -> list[LayerError]:
    return sorted(errors, key=lambda e: e.error_per_scale, reverse=True)[:n]


def with_float_layers(found, tensors: list[str]) -> bytes:
    """The debugger's calibrated model quantised to int8 but for the ops writing these tensors, kept in float.
    The debugger is instrumented anew for them: read its layer_errors before."""
    import tensorflow as tf

    found.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=tensors)
    return found.get_nondebug_quantized_model()


def float_ops(tflite: bytes) -> list[str]:
    """The ops that compute in float (beyond the input's quantisation and the output's dequantisation):
    empty for an integer-only model."""
    from tensorflow.lite.tools import flatbuffer_utils, visualize

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))
    names = {code: visualize.BuiltinCodeToName(op.builtinCode) for code, op in enumerate(model.operatorCodes)}
    found = []
    for graph in model.subgraphs:
        floats = {k for k, t in enumerate(graph.tensors) if t.type == 0}  # TensorType.FLOAT32
        for op in graph.operators:
            name = names[op.opcodeIndex]
            if name not in EDGE_OPS and floats & {*op.inputs, *op.outputs}:
                found.append(name)
    return found


def first_layers(errors: list[LayerError], share: float = FLOAT_SHARE) -> list[str]:
    """The output tensors of the first share of the quantised layers, in the graph's order: the stem and the
    first blocks, where the debugger finds the largest errors and the feature maps are largest."""
    return [e.tensor for e in errors[: int(len(errors) * share)]]


def full(saved_model: Path, representative: np.ndarray) -> bytes:
    """int8-full: every op in int8, calibrated on these images; input and output stay float32 (quantised at the
    edges) so the Lambda feeds every variant alike."""
    import tensorflow as tf

    integer = calibrating_converter(saved_model, representative)
    integer.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return integer.convert()


def mixed(saved_model: Path, representative: np.ndarray) -> bytes:
    """int8-mixed: int8 calibrated on these images, but for the first FLOAT_SHARE of its layers, kept in float
    (the one choice of float layers that passed EfficientNet-Lite2's gate: docs/int8.md)."""
    found = debugger(saved_model, representative)
    return with_float_layers(found, first_layers(layer_errors(found)))
