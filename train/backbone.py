"""The one place that knows the pre-trained backbone.

Adding a backbone means adding one Backbone here: its constructor, the
preprocessing its ImageNet weights expect, its input size, the layers that
fine-tuning may start from, and the Keras file of its ImageNet weights.
Everything else (the model, the feature cache, the presets, the Lambda's
model.json) reads it from here.
"""

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
from keras.applications import xception

from train.data import SHARED


@dataclass(frozen=True)
class Backbone:
    name: str
    constructor: Callable[..., keras.Model]  # keras.applications-style: (weights, include_top, input_shape)
    preprocess: Callable  # pixels 0..255 -> what the ImageNet weights expect
    preprocessing: str  # that, in words, for model.json and the Lambda
    size: int  # the input size the weights were trained at
    min_size: int  # the smallest input the architecture accepts
    # name -> first trainable layer: fine-tuning unfreezes that layer and every one after it
    cuts: dict[str, str]
    shared_weights: Path  # ImageNet weights (include_top=False) beside the project


XCEPTION = Backbone(
    name="xception",
    constructor=xception.Xception,
    # Xception's ImageNet weights were trained on pixels scaled to [-1, 1]:
    # x / 127.5 - 1. Feed it [0, 1] or [0, 255] and the features are garbage.
    preprocess=xception.preprocess_input,
    preprocessing="xception",
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
    shared_weights=SHARED / "weights" / "xception_imagenet_notop.weights.h5",
)

BACKBONES = {b.name: b for b in [XCEPTION]}


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
    return "sha256:" + hashlib.sha256(Path(weights).read_bytes()).hexdigest()


def make_base(backbone: Backbone, weights: str | None, size: int) -> keras.Model:
    """The backbone without its ImageNet classifier, frozen."""
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise FileNotFoundError(f"base weights {weights} not found; pass a .weights.h5 file, 'imagenet' or 'none'")
    base = backbone.constructor(weights=weights, include_top=False, input_shape=(size, size, 3))
    base.trainable = False
    return base
