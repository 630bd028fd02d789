"""The course's make_model, split so that the frozen base can run once.

The full model is  image -> Xception base -> global average pool -> head,
and the head (Dense -> Dropout -> Dense logits) is its own small Keras model
nested inside it. Training the head on cached pooled features therefore
updates the very layers the full model uses: no weights are copied.
"""

import hashlib
import os
from pathlib import Path

import keras
import tensorflow as tf
from keras.applications.xception import Xception

from train.data import SHARED

SHARED_WEIGHTS = SHARED / "weights" / "xception_imagenet_notop.weights.h5"


def default_weights() -> str:
    """$FASHION_WEIGHTS, else the copy beside the project, else 'imagenet' (Keras downloads it)."""
    if "FASHION_WEIGHTS" in os.environ:
        return os.environ["FASHION_WEIGHTS"]
    return str(SHARED_WEIGHTS) if SHARED_WEIGHTS.is_file() else "imagenet"


def weights_identity(weights: str | None, seed: int) -> str:
    """What the base's weights are, for the feature cache key."""
    if weights is None or weights == "none":
        return f"random-init-seed-{seed}"
    if weights == "imagenet":
        return f"imagenet-keras-{keras.__version__}"
    return "sha256:" + hashlib.sha256(Path(weights).read_bytes()).hexdigest()


def make_base(weights: str | None, size: int) -> keras.Model:
    """Xception without its ImageNet classifier, frozen."""
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise FileNotFoundError(f"base weights {weights} not found; pass a .weights.h5 file or 'imagenet'")
    base = Xception(weights=weights, include_top=False, input_shape=(size, size, 3))
    base.trainable = False
    return base


def make_model(base: keras.Model, inner: int, dropout: float, n_classes: int):
    """Returns (model, head, extractor): images -> logits, features -> logits, images -> features."""
    features = keras.Input(shape=(base.output_shape[-1],), name="features")
    x = keras.layers.Dense(inner, activation="relu")(features)
    x = keras.layers.Dropout(dropout)(x)
    logits = keras.layers.Dense(n_classes)(x)  # logits: the loss applies softmax itself
    head = keras.Model(features, logits, name="head")

    images = keras.Input(shape=base.input_shape[1:], name="images")
    # training=False runs the base in inference mode, so its BatchNormalization
    # layers keep ImageNet's statistics, even when the top of the base is later
    # unfrozen for fine-tuning (small batches would otherwise wreck them).
    pooled = keras.layers.GlobalAveragePooling2D()(base(images, training=False))
    model = keras.Model(images, head(pooled), name="xception_fashion")
    extractor = keras.Model(images, pooled, name="xception_features")
    return model, head, extractor


def compile_for_training(model: keras.Model, learning_rate: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def unfreeze_top(base: keras.Model, n_layers: int) -> None:
    """Make the last n_layers of the base trainable (BatchNorm stays frozen: see make_model)."""
    base.trainable = True
    for layer in base.layers[:-n_layers]:
        layer.trainable = False
    for layer in base.layers[-n_layers:]:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def distribution_strategy() -> tf.distribute.Strategy:
    """Mirror across devices when more than one is visible (GPUs, else logical CPUs)."""
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    if len(devices) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.get_strategy()
