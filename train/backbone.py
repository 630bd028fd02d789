"""The one place that knows the pre-trained backbones.

Adding a backbone means adding one Backbone here: its constructor, the
normalisation its ImageNet weights expect (per-channel mean and std, channel
order: data, which model.json carries to the Lambda as its input spec, so
serving needs no code of its own), its input size, the layers that
fine-tuning may start from and which of them each preset uses, and the Keras
file of its ImageNet weights. Everything else (the model, the feature cache,
the presets, the run folder, the Lambda's model.json) reads it from here.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
from keras.applications import efficientnet_v2, xception

from lambda_fn.preprocess import InputSpec
from train.data import SHARED, file_digest


@dataclass(frozen=True)
class Backbone:
    name: str
    constructor: Callable[..., keras.Model]  # keras.applications-style: (weights, include_top, input_shape)
    preprocess: Callable  # pixels 0..255 -> what the ImageNet weights expect (Keras' own function) ...
    mean: tuple[float, float, float]  # ... as data: (x - mean) / std per channel (the conversion checks they agree)
    std: tuple[float, float, float]
    size: int  # the input size the weights were trained at
    min_size: int  # the smallest input the architecture accepts
    # name -> first trainable layer: fine-tuning unfreezes that layer and every one after it
    cuts: dict[str, str]
    # what each preset fine-tunes from, by role: "cached" (the CPU preset: a block boundary near the top, so
    # that the activations below it can be cached), "images" (the GPU preset: deeper, trained on images)
    roles: dict[str, str]
    shared_weights: Path  # ImageNet weights (include_top=False) beside the project
    gflop: float  # the base's forward pass at `size`, multiply-adds counted as 2 (bench/inference.py)
    channels: str = "RGB"  # the channel order the weights expect

    def input_spec(self, size: int, interpolation: str) -> InputSpec:
        """What a model on this backbone takes at this size: model.json's "input"."""
        return InputSpec(size, interpolation, self.mean, self.std, self.channels)


XCEPTION = Backbone(
    name="xception",
    constructor=xception.Xception,
    # Xception's ImageNet weights were trained on pixels scaled to [-1, 1]:
    # x / 127.5 - 1. Feed it [0, 1] or [0, 255] and the features are garbage.
    preprocess=xception.preprocess_input,
    mean=(127.5, 127.5, 127.5),
    std=(127.5, 127.5, 127.5),
    size=299,
    min_size=71,
    cuts={
        # blocks 13-14, 16 layers, 2.0 of the base's 16.7 GFLOP per image at 299x299;
        # the cut is a block boundary, so one 19x19x728 tensor feeds everything above it
        "block13": "block13_sepconv1_act",
        "block12": "block12_sepconv1_act",  # 26 layers, also a block boundary
        "block11": "block11_sepconv1_act",  # 36 layers, also a block boundary
        # 40 layers, 4.7 GFLOP: the last conv of block 10 upward (inside a residual
        # block: the skip connection needs the block's input too, so it cannot be cached)
        "block10_sepconv3": "block10_sepconv3_act",
    },
    roles={"cached": "block13", "images": "block10_sepconv3"},
    shared_weights=SHARED / "weights" / "xception_imagenet_notop.weights.h5",
    gflop=16.7,
)

EFFICIENTNETV2B0 = Backbone(
    name="efficientnetv2b0",
    constructor=efficientnet_v2.EfficientNetV2B0,
    # Its rescaling is a layer inside the model (include_preprocessing=True): it takes pixels 0..255 as they
    # are, and preprocess_input is a pass-through.
    preprocess=efficientnet_v2.preprocess_input,
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
    size=224,
    min_size=32,
    cuts={
        # each the first layer of a block whose input is one tensor (the previous block's add): cacheable
        "block6h": "block6h_expand_conv",  # 4 layers and the top conv above the cut, at 7x7
        "block6e": "block6e_expand_conv",  # 49 layers
        "block5a": "block5a_expand_conv",  # 194 layers, from 14x14
    },
    roles={"cached": "block6h", "images": "block6e"},
    shared_weights=SHARED / "weights" / "efficientnetv2-b0_notop.weights.h5",  # not there: Keras downloads it
    gflop=1.4,  # the paper's 0.72 billion multiply-adds at 224x224: about a twelfth of Xception's
)

BACKBONES = {b.name: b for b in [XCEPTION, EFFICIENTNETV2B0]}
DEFAULT_BACKBONE = XCEPTION.name  # what make run trains


def default_weights(backbone: Backbone) -> str:
    """$FASHION_WEIGHTS, else the copy beside the project, else 'imagenet' (Keras downloads it)."""
    if "FASHION_WEIGHTS" in os.environ:
        return os.environ["FASHION_WEIGHTS"]
    return str(backbone.shared_weights) if backbone.shared_weights.is_file() else "imagenet"


def weights_identity(weights: str | None, seed: int) -> str:
    """What the base's weights are, for the feature cache key."""
    if weights is None:
        return f"random-init-seed-{seed}"
    if weights == "imagenet":
        return f"imagenet-keras-{keras.__version__}"
    return "sha256:" + file_digest(Path(weights))


def make_base(backbone: Backbone, weights: str | None, size: int) -> keras.Model:
    """The backbone without its ImageNet classifier, frozen."""
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise FileNotFoundError(f"base weights {weights} not found; pass a .weights.h5 file, 'imagenet' or 'none'")
    base = backbone.constructor(weights=weights, include_top=False, input_shape=(size, size, 3))
    base.trainable = False
    return base
