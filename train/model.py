"""The course's make_model, split at the first trainable layer so that what is frozen can run once.

The full model is  image -> backbone -> global average pool -> head,  and the
head (Dense -> Dropout -> Dense logits) is its own small Keras model nested
inside it. What training fits is built from the very same layer objects:

- input=cache: `trainable` maps the activations at the cut (what the frozen
  layers below it output, cached by features.py) to logits, through the top
  of the base and the head; `trunk` computes those activations from images;
- input=images: `trainable` maps raw pixels to logits: augmentation (on the
  accelerator), the input spec's normalisation (Normalise), then the full model.

So fitting `trainable` updates the layers the full image -> logits
checkpoint holds: no weights are copied.
"""

from contextlib import nullcontext
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from lambda_fn.preprocess import InputSpec
from train.augmentation import RandomCourseAugmentation
from train.backbone import Backbone, make_base
from train.config import TrainConfig

POOLED = "pooled"  # the cut that caches the pooled features of the whole frozen base


@dataclass
class Models:
    full: keras.Model  # preprocessed image -> logits: checkpointed, converted, served
    base: keras.Model  # the backbone (frozen, or its top unfrozen for fine-tuning)
    trainable: keras.Model  # what fit() trains (see the module's docstring)
    trunk: keras.Model | None  # input=cache: preprocessed image -> activations at the cut
    cut: str  # the cache's name for where trunk stops: a layer name, or "pooled"


class Normalise(keras.layers.Layer):
    """InputSpec.normalise on the device: the spec's channel order, mean and std, the same float32 arithmetic
    (the images path's; the cache's fill and the test split call InputSpec.normalise itself)."""

    def __init__(self, spec: InputSpec, **kwargs):
        super().__init__(**kwargs)
        self.bgr = spec.channels == "BGR"
        self.mean, self.std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)

    def call(self, x):
        x = ops.flip(x, axis=-1) if self.bgr else x
        return (x - self.mean) / self.std


def make_head(n_features: int, inner: int, dropout: float, n_classes: int) -> keras.Model:
    features = keras.Input(shape=(n_features,), name="features")
    x = keras.layers.Dense(inner, activation="relu")(features)
    x = keras.layers.Dropout(dropout)(x)
    logits = keras.layers.Dense(n_classes)(x)  # logits: the loss applies softmax itself
    return keras.Model(features, logits, name="head")


def build(backbone: Backbone, config: TrainConfig, n_classes: int) -> Models:
    base = make_base(backbone, config.weights, config.size)
    head = make_head(base.output_shape[-1], config.inner, config.dropout, n_classes)
    images = keras.Input(shape=base.input_shape[1:], name="images")
    # training=False runs the base in inference mode, so its BatchNormalization
    # layers keep ImageNet's statistics, even when the top of the base is
    # unfrozen for fine-tuning (small batches would otherwise wreck them).
    pooled = keras.layers.GlobalAveragePooling2D()(base(images, training=False))
    full = keras.Model(images, head(pooled), name=f"{backbone.name}_fashion")

    if config.input == "images":
        pixels = keras.Input(shape=base.input_shape[1:], dtype="uint8", name="pixels")
        x = ops.cast(pixels, "float32")  # uint8 crosses to the device: a quarter of float32's bytes
        if config.augment:  # identity outside training steps
            x = RandomCourseAugmentation(seed=config.seed, augmentation=config.augmentation)(x)
        trainable = keras.Model(
            pixels, full(Normalise(backbone.input_spec(config.size, config.interpolation))(x)), name="trainer"
        )
        return Models(full, base, trainable, trunk=None, cut="images")

    layer = config.first_trainable
    if layer is None:
        trunk = keras.Model(images, pooled, name="trunk")
        return Models(full, base, head, trunk, cut=POOLED)
    cut_tensor = base.get_layer(layer).input
    try:
        top = keras.Model(cut_tensor, base.output, name="top")  # the same layers, called on a new input
    except ValueError as err:
        raise ValueError(
            f"cannot cache at {config.fine_tune_from} ({layer}): the layers above it need more than "
            f"its input (a skip connection); use --input images, or a cut at a block boundary"
        ) from err
    activations = keras.Input(shape=cut_tensor.shape[1:], name="activations")
    top_pooled = keras.layers.GlobalAveragePooling2D()(top(activations, training=False))
    trainable = keras.Model(activations, head(top_pooled), name="top_and_head")
    trunk = keras.Model(base.input, cut_tensor, name="trunk")
    return Models(full, base, trainable, trunk, cut=layer)


def unfreeze_from(base: keras.Model, layer_name: str) -> None:
    """Make layer_name and every later layer of the base trainable (BatchNorm stays frozen: see build)."""
    base.trainable = True
    first = [layer.name for layer in base.layers].index(layer_name)
    for k, layer in enumerate(base.layers):
        layer.trainable = k >= first and not isinstance(layer, keras.layers.BatchNormalization)


def compile_for_training(model: keras.Model, learning_rate, label_smoothing: float) -> None:
    """Adam at learning_rate (a number or a schedule), cross-entropy on the logits with the targets smoothed by
    label_smoothing (0: one-hot), accuracy."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing),
        metrics=["accuracy"],
    )


def data_parallel():
    """(a scope to build and train in, replicas): every visible GPU, else every CPU device, as one.

    jax: Keras' own DataParallel; tensorflow: MirroredStrategy; torch: one
    device (Keras has no data-parallel distribution for torch; run it under
    torchrun with your own DistributedDataParallel if you need several).
    """
    backend = keras.backend.backend()
    if backend == "torch":
        return nullcontext(), 1
    if backend == "jax":
        devices = keras.distribution.list_devices()  # the GPUs, else the CPU devices
        if len(devices) < 2:
            return nullcontext(), 1
        return keras.distribution.DataParallel(devices=devices).scope(), len(devices)
    import tensorflow as tf

    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        return nullcontext(), 1
    return tf.distribute.MirroredStrategy([d.name for d in devices]).scope(), len(devices)
